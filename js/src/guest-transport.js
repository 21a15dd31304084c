// The `nats:sink/transport` import for one sink: the WIT resource `connection`, backed by the
// sink's NatsTransport. The guest's `open` is checked against the host's policy (the Reach of
// the user's options) and must ask for the very connection the host made.

import { PublishError, SinkError, witTag } from './errors.js';

function fail(tag, message, coreInDoubt = false) {
  const e = new Error(message);
  e.payload = { tag, val: { message, coreInDoubt } };
  return e;
}

const same = (a, b) => JSON.stringify(a, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)) === JSON.stringify(b, (_, v) => (typeof v === 'bigint' ? `${v}n` : v));

/** The `Connection` class the component imports, bound to `state` ({transport, reach}). */
export function connectionClass(state) {
  return class Connection {
    static open(config) {
      const why = state.reach.refusal(config);
      if (why) throw fail('connection', why);
      const { transport } = state;
      if (!transport || !transport.nc) throw fail('connection', 'no connection: the host connects before the component opens');
      if (!same(config, transport.config)) {
        throw fail('connection', "the host's policy refused the component's connect-config: it differs from the one its `resolve` gave, which the host connected with");
      }
      return new Connection();
    }

    publish(batch) {
      try {
        state.transport.publish(batch);
      } catch (e) {
        const err = e instanceof SinkError ? e : new PublishError(String(e && e.message));
        throw fail(witTag(err), err.message, err.coreInDoubt === true);
      }
    }

    flush() {
      // Confirmation follows in the transport's `confirm`, once the guest's flush has returned.
    }

    maxPayload() {
      return state.transport.maxPayload();
    }
  };
}
