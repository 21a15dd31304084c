// node tests/jco/run.mjs ROWS_JSON OPTIONS_JSON
//
// The example dataset through the Node host package (js/): opens a sink with the options,
// writes the rows in one batch and flushes. The rows arrive packed as the WIT `rows` layout
// (as JSON: see tests/tests/jco.rs), so they go to the guest's `write` as they are, then
// through the package's own transport (send, then confirm in `flush`), as `Sink.write` does.
import { readFileSync } from 'node:fs';
import { open } from '../../js/src/index.js';

const [rowsPath, optionsPath] = process.argv.slice(2);
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

const sink = await open(options, columns.map((c) => [c.name, c.dataType]));
sink.beginCheckpoint(1n);
sink.handle.write({
  values: rows.values.map(value),
  ends: Uint32Array.from(rows.ends),
  data: Uint8Array.from(rows.data),
  ops: [],
});
await sink.transport.send();
await sink.flush();
await sink.close();
console.log(`node host: ${rows.ends.length} rows published and confirmed`);
