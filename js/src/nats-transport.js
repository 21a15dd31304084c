// The transport the guest imports, on nats.js. jco calls imports synchronously while nats.js
// works asynchronously, so (as the Python host does) the host connects before the guest's
// `open`, the import's `publish` only checks and buffers a batch, and the messages are sent
// after the guest's `write` returns and confirmed after its `flush` returns: a JetStream ack
// where a stream captures the subject, otherwise a server round trip. Every wait is bounded by
// the connect-config's timeouts and delivery budget.

import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, headers as natsHeaders, jwtAuthenticator, nkeyAuthenticator, ErrorCode } from 'nats';
import { ConnectionError, PublishError, SinkError, TimeoutError } from './errors.js';
import { POLICY, controlHeadersRefusal, headerNameRefusal, headerValueRefusal, kvKeyPrefix, kvKeysFilter, kvSubjectRefusal, subjectRefusal } from './policy.js';
import { decodeUserinfo, parseEntry, redact } from './server-url.js';
import { unpack as unpackBytes, wordsFor } from './packed.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** `promise`, or `onTimeout()` thrown once `ms` pass; the timer never outlives it. */
export async function within(ms, promise, onTimeout) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A WIT `batch` as messages, every span and index checked and every subject and header
 * checked by the shared rules (they come from the guest). With `kvBucket`, that bucket's key
 * subjects (`$KV.<bucket>.<key>`) are allowed too. Throws a PublishError. */
export function unpack(batch, kvBucket = null) {
  const { headerNames, headers: all, messages } = batch;
  const refuse = (why) => new PublishError(`the host refused the component's batch: ${why}`);
  const data = unpackBytes(batch.data);
  if (data === null) {
    throw refuse(`its data is packed wrong: ${batch.data.len} bytes are packed in ${wordsFor(batch.data.len)} words, not the ${batch.data.words.length} given`);
  }
  const span = (start, len, what) => {
    if (start + len > data.length) throw refuse(`its ${what} span ${start}+${len} is outside the batch's ${data.length} bytes`);
    return data.subarray(start, start + len);
  };
  const text = (bytes, what) => {
    try {
      return utf8.decode(bytes);
    } catch {
      throw refuse(`a ${what} that is not UTF-8`);
    }
  };
  for (const name of headerNames) {
    const why = headerNameRefusal(name);
    if (why) throw refuse(`header name ${JSON.stringify(name)} ${why}`);
  }
  const kvPrefix = kvBucket !== null ? kvKeyPrefix(kvBucket) : null;
  const out = [];
  for (const m of messages) {
    const subject = text(span(m.subjectStart, m.subjectLen, 'subject'), 'subject');
    const why = kvBucket !== null ? kvSubjectRefusal(subject, kvBucket) : subjectRefusal(subject);
    if (why) throw refuse(`subject ${JSON.stringify(subject)} ${why}`);
    let h;
    const pairs = [];
    if (m.headersLen > 0) {
      if (m.headersStart + m.headersLen > all.length) throw refuse('a header run outside the batch');
      h = natsHeaders();
      for (const x of all.slice(m.headersStart, m.headersStart + m.headersLen)) {
        const name = headerNames[x.name];
        if (name === undefined) throw refuse(`header name index ${x.name} outside the batch`);
        const value = text(span(x.valueStart, x.valueLen, 'header value'), 'header value');
        const bad = headerValueRefusal(value);
        if (bad) throw refuse(`header ${name}'s value ${bad}`);
        h.append(name, value);
        pairs.push([name, value]);
      }
    }
    const payload = span(m.payloadStart, m.payloadLen, 'payload');
    const onKvKey = kvPrefix !== null && subject.startsWith(kvPrefix);
    const control = controlHeadersRefusal(onKvKey, payload.length, pairs);
    if (control) throw refuse(`on subject ${JSON.stringify(subject)}: ${control}`);
    // A copy: the guest's buffer is reused by the next crossing.
    out.push({ subject, payload: payload.slice(), headers: h });
  }
  return out;
}

/** nats.js connect options for a WIT connect-config (already checked against the policy). */
function connectOptions(config) {
  const opts = {
    servers: config.servers.map((s) => parseEntry(s, POLICY)).map((e) => `${e.host}:${e.port}`),
    timeout: config.connectTimeoutMs,
    maxReconnectAttempts: -1, // the delivery budget decides how long a flush waits
    reconnectTimeWait: 100,
    waitOnFirstConnect: false,
  };
  if (config.tls) {
    // `some`: TLS or not at all (nats.js refuses a server without it when `tls` is set).
    const tls = {};
    if (config.tls.caFile) tls.caFile = config.tls.caFile;
    if (config.tls.certFile) tls.certFile = config.tls.certFile;
    if (config.tls.keyFile) tls.keyFile = config.tls.keyFile;
    opts.tls = tls;
  }
  const { auth } = config;
  switch (auth.tag) {
    case 'user-password': opts.user = auth.val.username; opts.pass = auth.val.password; break;
    case 'token': opts.token = auth.val; break;
    case 'nkey': opts.authenticator = nkeyAuthenticator(encoder.encode(auth.val)); break;
    case 'credential': opts.authenticator = jwtAuthenticator(auth.val.jwt, encoder.encode(auth.val.nkeySeed)); break;
    case 'credentials-file': opts.authenticator = credsAuthenticator(readFileSync(auth.val)); break;
    default: {
      // User info in a server entry authenticates, as in NATS URLs.
      const info = config.servers.map((s) => parseEntry(s, POLICY).userinfo).find((u) => u);
      if (info) {
        const colon = info.indexOf(':');
        if (colon >= 0) {
          opts.user = decodeUserinfo(info.slice(0, colon));
          opts.pass = decodeUserinfo(info.slice(colon + 1));
        } else opts.token = decodeUserinfo(info);
      }
    }
  }
  return opts;
}

/** Every secret a connect-config carries, so no message quotes one. */
function secrets(config) {
  const { auth } = config;
  const found = [];
  if (typeof auth.val === 'string') found.push(auth.val);
  else if (auth.val) found.push(auth.val.password, auth.val.jwt, auth.val.nkeySeed);
  for (const s of config.servers) {
    const at = s.lastIndexOf('@');
    if (at > 0) found.push(s.slice(0, at));
  }
  return found.filter((s) => typeof s === 'string' && s.length >= 3);
}

/** KV bucket `name`'s stream as NATS clients create it, and as the Rust host does
 * (host/src/kv.rs): every key's subject, `history` values per key, rollups allowed, deletes
 * through the API denied, new values refused when full, direct gets, one replica. */
export function bucketConfig(name, history) {
  return {
    name: `KV_${name}`,
    subjects: [kvKeysFilter(name)],
    max_msgs_per_subject: history,
    max_bytes: -1,
    max_msgs: -1,
    max_msg_size: -1,
    allow_rollup_hdrs: true,
    deny_delete: true,
    deny_purge: false,
    allow_direct: true,
    discard: 'new',
    num_replicas: 1,
  };
}

const RETRYABLE = new Set([ErrorCode.Timeout, ErrorCode.NoResponders, ErrorCode.ConnectionClosed, ErrorCode.Disconnect, ErrorCode.ConnectionRefused]);

/** One NATS connection for one sink. */
export class NatsTransport {
  constructor() {
    this.nc = null;
    this.config = null;
    this.outbox = [];
    this.outboxAt = 0;
    this.acks = [];
    this.routes = new Map(); // subject -> a stream captures it
    this.refusals = []; // what the server refused (-ERR) since the last flush
    this.droppedSinceFlush = false;
    this.coreSinceFlush = false;
    this.inFlight = 0;
    this.freed = [];
    this.kvBucket = null; // an upsert sink's bucket, once it is found or created
    // An upsert sink's last unconfirmed send per key subject: the next on that subject waits for it.
    this.lastOnSubject = new Map();
  }

  masked(text) {
    let out = String(text);
    for (const s of secrets(this.config)) out = out.split(s).join('***');
    return out;
  }

  // -- before the guest's open ---------------------------------------------------------------
  async connect(config) {
    this.config = config;
    const shown = redact(config.servers.join(','));
    try {
      this.nc = await within(config.connectTimeoutMs + 100, connect(connectOptions(config)),
        () => new ConnectionError(`no connection to ${shown} within ${config.connectTimeoutMs} ms`));
    } catch (e) {
      if (e instanceof SinkError) throw e;
      throw new ConnectionError(`cannot connect to ${shown}: ${this.masked(e && e.message)}`);
    }
    this.watch().catch(() => {}); // ends with the connection
    if (config.createStream) await this.ensureStream(config.createStream);
    if (config.kv) {
      await this.ensureBucket(config.kv);
      this.kvBucket = config.kv.name;
    }
  }

  /** The history of KV bucket `bucket` (values kept per key), or null when it does not exist.
   * A stream `KV_<bucket>` that does not capture `$KV.<bucket>.>` is refused: puts to it would
   * be stored nowhere. */
  async bucketHistory(jsm, bucket) {
    const stream = `KV_${bucket.name}`;
    const keys = kvKeysFilter(bucket.name);
    let info;
    try {
      info = await jsm.streams.info(stream);
    } catch (e) {
      if (e.api_error && e.api_error.err_code === 10059) return null; // stream not found
      if (e.code === ErrorCode.NoResponders || e.code === '503') {
        throw new PublishError(`KV bucket \`${bucket.name}\`: the server has no JetStream, and a KV bucket is a JetStream stream`);
      }
      throw new PublishError(`could not tell whether KV bucket \`${bucket.name}\` exists: ${e.message}`);
    }
    const subjects = info.config.subjects ?? [];
    if (!subjects.includes(keys)) {
      throw new PublishError(`stream ${stream} exists but does not capture \`${keys}\` (its subjects: ${subjects.join(', ')}), so it is not KV bucket \`${bucket.name}\`: nothing put would be stored`);
    }
    return info.config.max_msgs_per_subject;
  }

  /** The bucket, created when it is missing and the options allow it (`createWithHistory`);
   * otherwise a PublishError that says how to get one. Before the guest opens. */
  async ensureBucket(bucket) {
    const jsm = await this.jsm();
    if (await this.bucketHistory(jsm, bucket) !== null) return;
    if (bucket.createWithHistory == null) {
      throw new PublishError(`KV bucket \`${bucket.name}\` does not exist; create it (\`nats kv add ${bucket.name}\`) or set allow_create_stream = true`);
    }
    try {
      await jsm.streams.add(bucketConfig(bucket.name, bucket.createWithHistory));
    } catch (e) {
      // Another sink may have created it between the lookup and now.
      if (await this.bucketHistory(jsm, bucket) !== null) return;
      throw new PublishError(`allow_create_stream: could not create KV bucket \`${bucket.name}\`: ${e.message}`);
    }
  }

  /** Server refusals and lost connections, as nats.js reports them apart from any call. */
  async watch() {
    for await (const s of this.nc.status()) {
      if (s.type === 'error') this.refusals.push(String(s.data && s.data.message ? s.data.message : s.data));
      if (s.type === 'disconnect') this.droppedSinceFlush = true;
    }
  }

  ackTimeout() {
    return this.config.delivery.ackTimeoutMs;
  }

  /** With allow_create_stream: create the requested stream, with its limits, unless a stream
   * already captures its subject. Before the guest opens, so before the first publish. */
  async ensureStream(request) {
    const jsm = await this.jsm();
    if (await this.findStream(jsm, request.subject)) return;
    const limit = (name, v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new PublishError(`allow_create_stream: ${name} ${v} is beyond what this host sends exactly`);
      return n;
    };
    try {
      await jsm.streams.add({
        name: request.name,
        subjects: [request.subject],
        max_bytes: limit('max_bytes', request.maxBytes),
        max_msgs: limit('max_messages', request.maxMessages),
        max_msgs_per_subject: limit('max_messages_per_subject', request.maxMessagesPerSubject),
        max_consumers: limit('max_consumers', request.maxConsumers),
        max_msg_size: limit('max_message_size', request.maxMessageSize),
      });
    } catch (e) {
      // Another sink may have created it since the lookup: then it captures the subject.
      if (await this.findStream(jsm, request.subject)) return;
      throw new PublishError(`allow_create_stream: could not create stream ${request.name} for \`${request.subject}\`: ${e.message}`);
    }
  }

  async jsm() {
    try {
      return await this.nc.jetstreamManager({ timeout: this.ackTimeout(), checkAPI: false });
    } catch (e) {
      throw new PublishError(`JetStream is not available: ${e.message}`);
    }
  }

  /** Whether a stream captures `subject`: false when none does or there is no JetStream. */
  async findStream(jsm, subject) {
    try {
      await jsm.streams.find(subject);
      return true;
    } catch (e) {
      if (e.code === ErrorCode.Timeout) throw new TimeoutError(`${subject}: no answer within ${this.ackTimeout()} ms (ack_timeout_ms) to the lookup of the stream that captures it`);
      return false; // no stream matches, no responders (no JetStream), or JetStream disabled
    }
  }

  async capturedByStream(subject) {
    // The bucket's stream, found or created when the sink connected.
    if (this.kvBucket !== null && subject.startsWith(kvKeyPrefix(this.kvBucket))) return true;
    if (!this.routes.has(subject)) {
      const jsm = await this.nc.jetstreamManager({ timeout: this.ackTimeout(), checkAPI: false }).catch(() => null);
      this.routes.set(subject, jsm ? await this.findStream(jsm, subject) : false);
    }
    return this.routes.get(subject);
  }

  // -- the import, as the guest calls it (synchronously) -------------------------------------
  publish(batch) {
    // One by one: a spread of a whole batch's messages passes V8's limit on arguments.
    for (const m of unpack(batch, this.kvBucket)) this.outbox.push(m);
  }

  maxPayload() {
    // What the server announced; the guest refuses a row whose message would not fit.
    return BigInt(this.nc?.info?.max_payload ?? 0);
  }

  // -- after the guest's calls return --------------------------------------------------------
  /** Send what the guest published: core messages at once, JetStream ones with their acks
   * pipelined up to max-in-flight (a writer that outruns the server waits here). */
  async send() {
    const maxInFlight = Math.max(1, this.config.delivery.maxInFlight);
    // `outboxAt` is the first message not yet handed on: a failure leaves it and the rest.
    while (this.outboxAt < this.outbox.length) {
      const m = this.outbox[this.outboxAt];
      if (await this.capturedByStream(m.subject)) {
        while (this.inFlight >= maxInFlight) await new Promise((resolve) => this.freed.push(resolve));
        this.inFlight += 1;
        const earlier = this.kvBucket !== null ? this.lastOnSubject.get(m.subject) : undefined;
        const ack = this.ackedAfter(earlier, m).finally(() => {
          this.inFlight -= 1;
          const next = this.freed.shift();
          if (next) next();
        });
        ack.catch(() => {}); // awaited in confirm; never an unhandled rejection meanwhile
        this.acks.push(ack);
        if (this.kvBucket !== null) {
          this.lastOnSubject.set(m.subject, ack);
          // Settled: nothing to wait for any more (and the map stays as small as what is in flight).
          ack.then(() => { if (this.lastOnSubject.get(m.subject) === ack) this.lastOnSubject.delete(m.subject); }, () => {});
        }
      } else {
        try {
          this.nc.publish(m.subject, m.payload, { headers: m.headers });
        } catch (e) {
          if (e.code === ErrorCode.MaxPayloadExceeded) throw new PublishError(`${m.subject}: ${m.payload.length} bytes exceed the server's max_payload`);
          throw new ConnectionError(`${m.subject}: not sent: ${e.message}`);
        }
        this.coreSinceFlush = true;
      }
      this.outboxAt += 1;
    }
    this.outbox = [];
    this.outboxAt = 0;
  }

  /** For an upsert sink, `m` not sent at all before `earlier` (the previous message on its
   * key) is confirmed: a key's messages are then stored in write order whatever is resent
   * (docs/upsert.md). */
  async ackedAfter(earlier, m) {
    if (earlier !== undefined) {
      try {
        await earlier;
      } catch {
        // Sending this one could let a resend of the earlier value land after it.
        throw new PublishError(`${m.subject}: not sent, since an earlier message on its key was not confirmed`);
      }
    }
    return this.acked(m);
  }

  /** One JetStream message until its ack, sent again within the delivery budget: at most
   * `max-attempts` sends of this message, within `max-elapsed-ms` of its first failure. */
  async acked(m) {
    const d = this.config.delivery;
    const js = this.nc.jetstream({ timeout: this.ackTimeout() });
    let backoff = d.initialBackoffMs;
    let attempts = 0;
    let firstFailure = null;
    for (;;) {
      attempts += 1;
      let cause;
      try {
        await js.publish(m.subject, m.payload, { headers: m.headers, timeout: this.ackTimeout() });
        return;
      } catch (e) {
        const retryable = RETRYABLE.has(e.code) || (e.api_error && e.api_error.code === 503) || e.code === '503';
        if (!retryable) {
          if (e.code === ErrorCode.MaxPayloadExceeded) throw new PublishError(`${m.subject}: ${m.payload.length} bytes exceed the server's max_payload`);
          throw new PublishError(`${m.subject}: the stream refused the message: ${e.message}`);
        }
        cause = e;
      }
      const denied = this.refusals.find((r) => /permissions violation/i.test(r));
      if (denied) throw new PublishError(`${m.subject}: ${denied}`);
      const now = Date.now();
      firstFailure ??= now;
      if (attempts >= d.maxAttempts || now - firstFailure >= d.maxElapsedMs) {
        const Kind = cause.code === ErrorCode.Timeout ? TimeoutError : ConnectionError;
        throw new Kind(`${m.subject}: no ack after ${attempts} sends over ${now - firstFailure} ms (the retry budget); last cause: ${cause.message}`);
      }
      await sleep(backoff / 2 + Math.random() * (backoff / 2));
      backoff = Math.min(backoff * 2, d.maxBackoffMs);
    }
  }

  /** Every JetStream ack, then a server round trip; within the flush timeout. */
  async confirm() {
    const limit = this.config.flushTimeoutMs;
    // Core NATS acks nothing: a lost connection or a silent server leaves these in doubt.
    const coreInDoubt = this.coreSinceFlush;
    try {
      await within(limit, this.confirmAll(), () => new TimeoutError(`flush not confirmed within ${limit} ms (flush_timeout_ms)`));
    } catch (e) {
      if ((e instanceof ConnectionError || e instanceof TimeoutError) && coreInDoubt) e.coreInDoubt = true;
      throw e;
    }
  }

  async confirmAll() {
    const acks = this.acks.splice(0);
    const results = await Promise.allSettled(acks);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason instanceof SinkError ? failed.reason : new ConnectionError(`a message was not confirmed: ${failed.reason}`);
    try {
      await within(Math.max(this.ackTimeout(), 1000), this.nc.flush(), () => new TimeoutError('the server did not answer the flush round trip'));
    } catch (e) {
      this.raiseIfDropped();
      if (e instanceof SinkError) throw e;
      throw new ConnectionError(`the flush round trip failed: ${e.message}`);
    }
    // A refusal (-ERR) travels apart from the round trip and can trail it by a moment.
    await sleep(2);
    const refusals = this.refusals.splice(0);
    if (refusals.length > 0) throw new PublishError(`the server refused a message: ${refusals[0]}`);
    this.raiseIfDropped();
    this.coreSinceFlush = false;
    this.droppedSinceFlush = false;
  }

  /** Core NATS has no acks: what was in the socket when it broke may be gone. */
  raiseIfDropped() {
    if (this.coreSinceFlush && this.droppedSinceFlush) {
      throw new ConnectionError('the connection dropped since the last flush; core messages may be lost');
    }
  }

  async close() {
    this.outbox = [];
    this.outboxAt = 0;
    this.lastOnSubject.clear();
    if (this.nc && !this.nc.isClosed()) {
      await within(5000, this.nc.close(), () => new TimeoutError('close')).catch(() => {});
    }
  }
}
