// node run.mjs COMPONENT_JS_DIR ROWS_JSON OPTIONS_JSON
//
// Opens the transpiled nats-sink component with the options, writes the rows (the WIT `rows`
// layout, as JSON: see tests/tests/jco.rs) in one batch, flushes, and confirms.
import { readFileSync } from 'node:fs';
import { connect } from 'nats';
import { useConnection, confirm, ensureStream } from './transport.js';

const [componentDir, rowsPath, optionsPath] = process.argv.slice(2);
const sink = await import(`${componentDir}/nats-sink.js`);
const { encoder: api } = sink;
const options = JSON.parse(readFileSync(optionsPath, 'utf8'));
const { columns, rows } = JSON.parse(readFileSync(rowsPath, 'utf8'));

// WIT values from their JSON form: 64-bit numbers arrive as strings, floats as text, spans
// (text, numeric, bytea, jsonb) and child ranges as they are.
const big = (s) => BigInt(s);
function value(v) {
  switch (v.tag) {
    case 'null': return { tag: 'null' };
    case 'int64': case 'time': case 'timestamp': case 'timestamptz': case 'serial':
      return { tag: v.tag, val: big(v.val) };
    case 'float32': case 'float64': return { tag: v.tag, val: parseFloat(v.val) };
    case 'uuid': return { tag: 'uuid', val: [big(v.val[0]), big(v.val[1])] };
    case 'interval':
      return { tag: 'interval', val: { months: v.val.months, days: v.val.days, micros: big(v.val.micros) } };
    default: return { tag: v.tag, val: v.val };
  }
}

const target = api.resolve(options);
const nc = await connect({ servers: target.connect.servers, timeout: target.connect.connectTimeoutMs });
await ensureStream(nc, target.connect.createStream);
let jetstream = null;
try {
  const jsm = await nc.jetstreamManager();
  await jsm.streams.find(target.subject);
  jetstream = nc.jetstream();
} catch {
  // No JetStream, or no stream captures the subject: core publish.
}
useConnection(nc, jetstream);

const opened = api.Sink.open(options, columns);
opened.beginCheckpoint(1n);
opened.write({
  values: rows.values.map(value),
  ends: Uint32Array.from(rows.ends),
  data: Uint8Array.from(rows.data),
  ops: [],
});
opened.flush();
await confirm();
await nc.drain();
console.log(`jco host: ${rows.ends.length} rows published and confirmed`);
