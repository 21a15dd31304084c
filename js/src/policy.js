// What a sink's component may make the host reach, and which messages the host publishes.
// The rules are the Rust host's, read from policy.json (generated from the rules crate and
// host/src/policy.rs by tests/tests/conformance/policy_file.rs): not a copy written by hand.

import { readFileSync } from 'node:fs';
import { parseServers, redact } from './server-url.js';

export const POLICY = JSON.parse(readFileSync(new URL('./policy.json', import.meta.url), 'utf8'));

const isTrue = (v) => typeof v === 'string' && v.trim().toLowerCase() === 'true';

function refused(what) {
  return `the host's policy refused the component's ${what}; nothing was connected or read`;
}

function allowedList(kind, allowed) {
  return allowed.length === 0
    ? `the options name no ${kind} it may use`
    : `the options allow only ${allowed.join(', ')}`;
}

/** The WIT `auth` case as a comparable list: its tag, then its fields in the table's order. */
function authFields(auth) {
  switch (auth.tag) {
    case 'none': return ['none'];
    case 'user-password': return ['user-password', auth.val.username, auth.val.password];
    case 'credential': return ['credential', auth.val.jwt, auth.val.nkeySeed];
    default: return [auth.tag, auth.val];
  }
}

const AUTH_KIND = {
  none: 'no',
  'user-password': 'user and password',
  credential: 'JWT and NKey',
  token: 'token',
  'credentials-file': 'credentials file',
  nkey: 'NKey',
};

/** The servers, files, TLS and credentials one sink's options allow. */
export class Reach {
  /** What `options` (`[[key, value], ...]`, as the user gave them) name. */
  constructor(options, policy = POLICY) {
    const r = policy.reach;
    const value = (key) => {
      const found = options.find(([k]) => k === key);
      return found ? found[1] : undefined;
    };
    const named = parseServers(value(r.server_option) ?? '', policy) ?? [];
    this.servers = named.map((e) => e.address);
    this.entries = named.map((e) => `${e.userinfo ?? ''}\u0000${e.address}`);
    this.paths = r.file_options.map(value).filter((p) => p !== undefined);
    this.createStream = isTrue(value(r.create_stream_option));
    // The one bucket whose `$KV.<bucket>.` subjects the guest may publish to, as the Rust host reads it.
    this.kvBucket = value(r.kv.type_option) === r.kv.upsert_type ? (value(r.kv.bucket_option) ?? null) : null;
    this.tlsRequired = named.some((e) => e.tls)
      || isTrue(value(r.tls_required_option))
      || r.tls_file_options.some((key) => value(key) !== undefined);
    const mode = value(r.connect_mode_option) ?? r.default_connect_mode;
    const row = r.auth_modes.find((m) => m.mode === mode);
    this.auth = row ? [row.auth, ...row.options.map((key) => value(key) ?? '')] : null;
    this.authKind = row ? AUTH_KIND[row.auth] : null;
    this.policy = policy;
  }

  /** The reason to refuse `config` (a WIT connect-config), or null when it is within reach. */
  refusal(config) {
    const bucket = config.kv ? config.kv.name : null;
    if (bucket !== this.kvBucket) {
      if (bucket !== null && this.kvBucket !== null) return refused(`KV bucket \`${bucket}\`: the options name \`kv.bucket = '${this.kvBucket}'\`, and only that one may be used`);
      if (bucket !== null) return refused(`KV bucket \`${bucket}\`: the options do not say \`type = 'upsert'\` with a \`kv.bucket\``);
      return refused("connection without its KV bucket: the options say `type = 'upsert'`, which keeps each key in order");
    }
    const createsBucket = config.kv != null && config.kv.createWithHistory != null;
    if ((config.createStream || createsBucket) && !this.createStream) {
      return refused(`request to create a stream: the options do not say \`${this.policy.reach.create_stream_option} = true\``);
    }
    for (const entry of config.servers) {
      const parsed = parseServers(entry, this.policy);
      if (!parsed || parsed.length !== 1) {
        return refused(`server entry \`${redact(entry)}\`, which is not \`host:port\``);
      }
      const [e] = parsed;
      if (!this.servers.includes(e.address)) {
        return refused(`server \`${e.address}\`: ${allowedList('servers', this.servers)}`);
      }
      if (!this.entries.includes(`${e.userinfo ?? ''}\u0000${e.address}`)) {
        return refused(`user info for server \`${e.address}\`, which is not what \`server_url\` gives it`);
      }
    }
    const files = [];
    if (config.tls) {
      for (const [option, path] of [['tls.ca', config.tls.caFile], ['tls.cert', config.tls.certFile], ['tls.key', config.tls.keyFile]]) {
        if (path !== undefined && path !== null) files.push([option, path]);
      }
    }
    if (config.auth.tag === 'credentials-file') files.push(['credentials_file', config.auth.val]);
    for (const [option, path] of files) {
      if (!this.paths.includes(path)) {
        return refused(`reading \`${path}\` for \`${option}\`: ${allowedList('files', this.paths)}`);
      }
    }
    if (this.tlsRequired && !config.tls) {
      return refused('connection without TLS: the options require TLS (a `tls://` server, `tls.required = true` or a `tls.*` file)');
    }
    const asked = authFields(config.auth);
    const same = this.auth && asked.length === this.auth.length && asked.every((v, i) => v === this.auth[i]);
    if (!same) {
      const given = this.auth ? `${this.authKind} credentials, and only those may be used` : 'no credentials this host knows';
      return refused(`${AUTH_KIND[config.auth.tag] ?? 'unknown'} authentication: the options give ${given}`);
    }
    return null;
  }
}

function inRuns(runs, cp) {
  // Runs are sorted and disjoint: a binary search keeps a check linear in the text.
  let lo = 0;
  let hi = runs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < runs[mid][0]) hi = mid - 1;
    else if (cp > runs[mid][1]) lo = mid + 1;
    else return true;
  }
  return false;
}

const hex = (cp) => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

/** Why NATS or this sink refuses `subject` for publishing, or null. */
export function subjectRefusal(subject, policy = POLICY) {
  const why = literalSubjectRefusal(subject, policy);
  if (why) return why;
  const reserved = policy.messages.reserved_subject_prefixes.find((p) => subject.startsWith(p.prefix));
  if (reserved) return `is under \`${reserved.prefix}\`, where ${reserved.why}`;
  return null;
}

/** The subject prefix of `bucket`'s keys: `$KV.<bucket>.`. */
export function kvKeyPrefix(bucket, policy = POLICY) {
  return `${policy.reach.kv.subject_prefix}${bucket}.`;
}

/** The subject filter of every key of `bucket`: `$KV.<bucket>.>`. */
export function kvKeysFilter(bucket, policy = POLICY) {
  return `${kvKeyPrefix(bucket, policy)}>`;
}

/** As `subjectRefusal`, but a key of `bucket` (`$KV.<bucket>.<key>`) is allowed: a literal
 * subject whose key holds only ASCII letters, digits and what a NATS KV key may. */
export function kvSubjectRefusal(subject, bucket, policy = POLICY) {
  const prefix = kvKeyPrefix(bucket, policy);
  if (!subject.startsWith(prefix)) return subjectRefusal(subject, policy);
  const why = literalSubjectRefusal(subject, policy);
  if (why) return why;
  const key = subject.slice(prefix.length);
  const punctuation = policy.reach.kv.kv_key_punctuation;
  const bad = [...key].find((c) => !(/^[A-Za-z0-9]$/.test(c) || punctuation.includes(c)));
  return bad === undefined ? null : `has the key \`${key}\`, and a KV key cannot hold ${JSON.stringify(bad)}`;
}

/** Why `subject` is not a literal NATS subject, or null. */
function literalSubjectRefusal(subject, policy) {
  const m = policy.messages;
  if (subject.length === 0) return 'must not be empty';
  const bytes = Buffer.byteLength(subject, 'utf8');
  if (bytes > m.max_subject_bytes) {
    return `is ${bytes} bytes long; NATS's control line leaves room for at most ${m.max_subject_bytes}`;
  }
  for (const ch of subject) {
    const cp = ch.codePointAt(0);
    if (inRuns(m.whitespace, cp)) return `must not contain whitespace (found ${JSON.stringify(ch)})`;
  }
  for (const ch of subject) {
    const cp = ch.codePointAt(0);
    if (inRuns(m.control, cp)) return `must not contain a control character (found ${hex(cp)})`;
  }
  if (m.subject_wildcards.some((w) => subject.includes(w))) {
    return `\`${subject}\` contains a wildcard (\`*\` or \`>\`); publish subjects must be literal`;
  }
  if (subject.split(m.subject_token_separator).some((t) => t.length === 0)) {
    return `\`${subject}\` has an empty token (leading, trailing or double \`.\`)`;
  }
  return null;
}

/** Why a header name is refused, or null. */
export function headerNameRefusal(name, policy = POLICY) {
  if (name.length === 0) return 'is empty';
  for (const ch of name) {
    if (!policy.messages.header_name_ascii.includes(ch.codePointAt(0))) {
      return `\`${name}\` contains ${JSON.stringify(ch)}; use visible ASCII without \`:\``;
    }
  }
  return null;
}

/** Why a header value is refused, or null: no space NATS clients trim at either end, no line
 * break, no control character. */
export function headerValueRefusal(value, policy = POLICY) {
  const m = policy.messages;
  const chars = [...value];
  if (chars.length > 0 && (inRuns(m.header_space, chars[0].codePointAt(0)) || inRuns(m.header_space, chars[chars.length - 1].codePointAt(0)))) {
    return 'must not start or end with whitespace: NATS clients trim it';
  }
  if (m.header_value_line_breaks.some((b) => value.includes(b))) return 'must not contain a line break';
  for (const ch of chars) {
    const cp = ch.codePointAt(0);
    if (inRuns(m.control, cp)) return `must not contain a control character (found ${hex(cp)})`;
  }
  return null;
}

/**
 * Why the headers NATS acts on that one message carries are refused, or null (the rules
 * crate's `check_control_headers`): the message id anywhere, once; `KV-Operation: DEL|PURGE`
 * only on a key of the sink's bucket, with no payload; `Nats-Rollup: sub` only beside
 * `KV-Operation: PURGE`; no other `Nats-` header. Names are matched in any case.
 * `pairs` is a list of [name, value].
 */
export function controlHeadersRefusal(onKvKey, payloadLength, pairs, policy = POLICY) {
  const c = policy.messages.control_headers;
  const prefix = c.reserved_prefix.toLowerCase();
  const [id, op, rollupName] = [c.message_id, c.kv_operation, c.rollup].map((n) => n.toLowerCase());
  const seen = new Map();
  for (const [name, value] of pairs) {
    const lower = name.toLowerCase();
    if (!lower.startsWith(prefix) && lower !== op) continue;
    if (lower !== id && lower !== op && lower !== rollupName) {
      return `header \`${name}\` is one JetStream acts on (it can delete, expire or refuse messages), and the sink never sets it`;
    }
    if (seen.has(lower)) return `header \`${name}\` appears twice`;
    seen.set(lower, value);
  }
  const operation = seen.get(op);
  const rollup = seen.get(rollupName);
  if (operation !== undefined) {
    if (!onKvKey) return `header \`${c.kv_operation}\` is only for a key of the sink's KV bucket`;
    if (!c.kv_operations.includes(operation)) {
      return `header \`${c.kv_operation}: ${operation}\`; a sink writes only ${c.kv_operations.join(' or ')}`;
    }
    if (payloadLength !== 0) return `header \`${c.kv_operation}: ${operation}\` on a message with a payload`;
  }
  if (rollup !== undefined && (rollup !== c.kv_purge_rollup || operation !== c.kv_purge)) {
    return `header \`${c.rollup}: ${rollup}\`; only \`${c.rollup}: ${c.kv_purge_rollup}\` beside \`${c.kv_operation}: ${c.kv_purge}\` is allowed`;
  }
  return null;
}
