// `server_url` entries as the host reads them for its policy: `[nats://|tls://][user[:pw]@]host:port`.
// The guest validates the option; the host reads the user's own text again, never the
// guest's reading of it. An entry it cannot read names nothing (fail closed).

/** One entry: `{userinfo, host, port, tls, address}` (`address` is `host:port`, host lower-cased), or null. */
export function parseEntry(text, policy) {
  let rest = text.trim();
  let tls = false;
  const scheme = rest.indexOf('://');
  if (scheme >= 0) {
    const name = rest.slice(0, scheme).toLowerCase();
    if (policy.reach.tls_schemes.includes(name)) tls = true;
    else if (!policy.reach.plain_schemes.includes(name)) return null;
    rest = rest.slice(scheme + 3);
  }
  const at = rest.lastIndexOf('@');
  const userinfo = at >= 0 ? rest.slice(0, at) : null;
  const hostport = at >= 0 ? rest.slice(at + 1) : rest;
  if (userinfo === '' || /[/?#]/.test(hostport)) return null;
  const colon = hostport.lastIndexOf(':');
  if (colon <= 0) return null;
  const host = hostport.slice(0, colon);
  const portText = hostport.slice(colon + 1);
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  if (host.includes(':') && !(host.startsWith('[') && host.endsWith(']'))) return null;
  return { userinfo, host, port, tls, address: `${host.toLowerCase()}:${port}` };
}

/** Every entry of `server_url`, or null when one cannot be read. */
export function parseServers(raw, policy) {
  const entries = raw.split(',').map((e) => parseEntry(e, policy));
  return entries.every((e) => e !== null) ? entries : null;
}

/** `text` with the user info of every entry masked: `user:***@host`, `***@host`. */
export function redact(text) {
  return text
    .split(',')
    .map((entry) => {
      const scheme = entry.indexOf('://');
      const prefix = scheme >= 0 ? entry.slice(0, scheme + 3) : '';
      const rest = scheme >= 0 ? entry.slice(scheme + 3) : entry;
      const at = rest.lastIndexOf('@');
      if (at < 0) return entry;
      const info = rest.slice(0, at);
      const masked = info.includes(':') ? `${info.slice(0, info.indexOf(':'))}:***` : '***';
      return `${prefix}${masked}@${rest.slice(at + 1)}`;
    })
    .join(',');
}

/** A `%XX`-escaped part of user info, decoded; null when an escape is broken. */
export function decodeUserinfo(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}
