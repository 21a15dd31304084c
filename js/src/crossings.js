// A write's rows in bounded crossings into the component: each crossing holds at most
// CROSSING_ROWS rows and CROSSING_IN_BYTES of their bytes, and at most CROSSING_OUT_BYTES of
// what the guest can publish for them (bounded from the row without encoding it), so the
// host's memory (the crossing, and the messages waiting to be sent) stays bounded whatever
// the write's size.

import { RowsBuilder, ValueRefused } from './rows.js';
import { NotAChange, splitChange } from './changes.js';
import { InvalidRow } from './errors.js';

export const CROSSING_ROWS = 1024;
export const CROSSING_IN_BYTES = 256 << 10;
export const CROSSING_OUT_BYTES = 8 << 20;
const MAX_SUBJECT_BYTES = 4000;
const MESSAGE_OVERHEAD = 160; // a message id, the header framing
const IN_PER_VALUE = 32;

/** How much text a row's values can become, from the schema and the options' templates. */
export function bounds(columns, options) {
  const names = [];
  const walk = (ty) => {
    if (ty.kind === 'struct') for (const [n, t] of ty.fields) { names.push(n); walk(t); }
    if (ty.kind === 'list') walk(ty.element);
  };
  for (const [n, t] of columns) { names.push(n); walk(t); }
  const longest = Math.max(0, ...names.map((n) => Buffer.byteLength(n)));
  const templates = options.filter(([k]) => k === 'subject' || k.startsWith('headers.'));
  return {
    perValue: 4 + 6 * longest + 40, // key, escapes, and a scalar's longest text
    headers: templates.filter(([k]) => k !== 'subject').length,
    fixed: templates.reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0) + MESSAGE_OVERHEAD,
  };
}

/** The rows in crossings: `{first, rows, refused}`; a row refused here ends the write. With
 * `changes`, each item is `[op, row]` or `{op, row}`, and an update pair never straddles two
 * crossings (the guest takes the pair within one batch). */
export function* crossings(columns, rows, b, maxPayload, { changes = false } = {}) {
  let batch = new RowsBuilder();
  let first = 0;
  let index = 0;
  let inBytes = 0;
  let outBytes = 0;
  let held = null; // the last row, where it starts and its bounds, while it is an update-delete
  for (const item of rows) {
    const values = batch.values.length;
    const data = batch.dataLength;
    let op = 'insert';
    let row = item;
    try {
      if (changes) [op, row] = splitChange(item);
      batch.push(columns, row, op);
    } catch (e) {
      if (e instanceof NotAChange) {
        yield { first, rows: batch, refused: new InvalidRow(index, '', e.message) };
        return;
      }
      if (!(e instanceof ValueRefused)) throw e;
      yield { first, rows: batch, refused: new InvalidRow(index, e.column, e.message) };
      return;
    }
    const rowValues = batch.values.length - values;
    const rowBytes = batch.dataLength - data;
    const text = 6 * rowBytes + b.perValue * rowValues;
    const rowOut = Math.min((1 + b.headers) * text + Math.min(text, MAX_SUBJECT_BYTES) + b.fixed, maxPayload + MAX_SUBJECT_BYTES + MESSAGE_OVERHEAD);
    const rowIn = rowBytes + IN_PER_VALUE * rowValues;
    if (batch.length > 1 && (inBytes + rowIn > CROSSING_IN_BYTES || outBytes + rowOut > CROSSING_OUT_BYTES || batch.length > CROSSING_ROWS)) {
      // This row starts the next crossing (with its update-delete, if it is an update-insert):
      // rebuild it there.
      const carried = op === 'update-insert' && held !== null && batch.length > 2;
      const cut = carried ? held : { values, data };
      batch.values.length = cut.values;
      batch.ends.length -= carried ? 2 : 1;
      batch.ops.length = batch.ends.length;
      truncate(batch, cut.data);
      yield { first, rows: batch, refused: null };
      batch = new RowsBuilder();
      first = index - (carried ? 1 : 0);
      inBytes = 0;
      outBytes = 0;
      if (carried) {
        batch.push(columns, held.row, 'update-delete');
        inBytes = held.rowIn;
        outBytes = held.rowOut;
      }
      batch.push(columns, row, op);
    }
    held = op === 'update-delete' ? { row, values, data, rowIn, rowOut } : null;
    inBytes += rowIn;
    outBytes += rowOut;
    index += 1;
  }
  if (batch.length > 0) yield { first, rows: batch, refused: null };
}

function truncate(batch, dataLength) {
  let total = 0;
  let keep = 0;
  while (keep < batch.parts.length && total + batch.parts[keep].length <= dataLength) {
    total += batch.parts[keep].length;
    keep += 1;
  }
  batch.parts.length = keep;
  batch.dataLength = total;
}
