// The `nats:sink/transport` import, for Node.js. jco calls these synchronously, while
// the nats client connects and confirms asynchronously, so the host connects before the guest
// opens (see run.mjs), publishes synchronously (the client buffers), and confirms after the
// guest's flush returns, through `confirm()`. That is the one departure from the contract:
// `flush` itself returns before confirmation, and the host reports success only after it.

let connected = null;
const pending = [];

/** Hand over the connection the host made for `open` to use. */
export function useConnection(nc, jetstream) {
  connected = { nc, jetstream };
}

/** Await every JetStream ack and a server round trip for what was published so far. */
export async function confirm() {
  const acks = pending.splice(0);
  await Promise.all(acks);
  await connected.nc.flush();
}

/**
 * With `allow_create_stream` (the connect-config's `createStream`): create the requested stream,
 * with its limits, unless a stream already captures its subject. Runs before the guest opens,
 * since jco's imports cannot await.
 */
export async function ensureStream(nc, request) {
  if (!request) return;
  const jsm = await nc.jetstreamManager();
  try {
    await jsm.streams.find(request.subject);
    return;
  } catch (e) {
    if (!String(e && e.message).includes('no stream matches subject')) throw e;
  }
  // The limits are s64 (BigInt) or s32; the client sends JSON numbers, exact up to 2^53.
  const limit = (name, v) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new Error(`${name} ${v} is beyond what this host sends exactly`);
    return n;
  };
  await jsm.streams.add({
    name: request.name,
    subjects: [request.subject],
    max_bytes: limit('max_bytes', request.maxBytes),
    max_msgs: limit('max_messages', request.maxMessages),
    max_msgs_per_subject: limit('max_messages_per_subject', request.maxMessagesPerSubject),
    max_consumers: limit('max_consumers', request.maxConsumers),
    max_msg_size: limit('max_message_size', request.maxMessageSize),
  });
}

function fail(tag, message) {
  const e = new Error(message);
  e.payload = { tag, val: message };
  return e;
}

export class Connection {
  static open(config) {
    if (!connected) {
      throw fail('connection', `no connection to ${config.servers.join(',')}`);
    }
    return new Connection();
  }

  // A batch packs every subject, header value and payload into `data`; each message names
  // its parts by spans (see wit/nats-sink.wit).
  publish(batch) {
    const { nc, jetstream } = connected;
    const { data, headerNames, headers: all, messages } = batch;
    const text = new TextDecoder('utf-8', { fatal: true });
    const bytes = (s) => {
      if (s.start + s.len > data.length) {
        throw new Error(`span ${s.start}+${s.len} is outside the batch's ${data.length} bytes`);
      }
      return data.subarray(s.start, s.start + s.len);
    };
    for (const m of messages) {
      try {
        let h;
        if (m.headers.len > 0) {
          h = headers();
          for (const x of all.slice(m.headers.start, m.headers.start + m.headers.len)) {
            h.append(headerNames[x.name], text.decode(bytes(x.value)));
          }
        }
        const subject = text.decode(bytes(m.subject));
        const payload = bytes(m.payload);
        if (jetstream) {
          pending.push(jetstream.publish(subject, payload, { headers: h }));
        } else {
          nc.publish(subject, payload, { headers: h });
        }
      } catch (e) {
        throw fail('publish', String(e && e.message ? e.message : e));
      }
    }
  }

  flush() {}

  // What the server announced; the guest refuses a row whose message would not fit.
  maxPayload() {
    return BigInt(connected.nc.info?.max_payload ?? 1048576);
  }
}

import { headers } from 'nats';
