// nats-sink from Node.js: the nats-sink WebAssembly component through jco, NATS through nats.js.
//
//   import * as natsSink from 'nats-sink';
//   const sink = await natsSink.open({ server_url: '127.0.0.1:4222', subject: 'orders', connect_mode: 'plain' },
//                                    [['id', 'integer'], ['tags', 'varchar[]']]);
//   sink.beginCheckpoint(7);
//   await sink.write([{ id: 1, tags: ['a'] }, [2, ['b']]]);
//   await sink.flush();
//   await sink.close();

//   // An upsert sink (type = 'upsert', primary_key, kv.bucket) takes changes:
//   await sink.writeChanges([['insert', { id: 1 }], ['delete', { id: 2 }]]);

export { open, describe, validate, Sink } from './sink.js';
export { OPS } from './changes.js';
export {
  SinkError, InvalidOptions, OptionProblem, InvalidSchema, InvalidRow, DeliveryError, ConnectionError,
  PublishError, TimeoutError, Closed, CLOSED_AFTER, ComponentError,
} from './errors.js';
