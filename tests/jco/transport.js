// The `nats-sink:sink/transport` import, for Node.js. jco calls these synchronously, while
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

  publish(messages) {
    const { nc, jetstream } = connected;
    for (const m of messages) {
      const h = m.headers.length ? headers() : undefined;
      for (const [name, value] of m.headers) h.append(name, value);
      try {
        if (jetstream) {
          pending.push(jetstream.publish(m.subject, m.payload, { headers: h }));
        } else {
          nc.publish(m.subject, m.payload, { headers: h });
        }
      } catch (e) {
        throw fail('publish', String(e && e.message ? e.message : e));
      }
    }
  }

  flush() {}
}

import { headers } from 'nats';
