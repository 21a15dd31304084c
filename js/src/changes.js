// Rows with their operation, for `Sink.writeChanges`: RisingWave's `Op`, as the WIT's `op`.

/** The operations a change may name (an update is `update_delete` then `update_insert`). */
export const OPS = Object.freeze(['insert', 'delete', 'update_delete', 'update_insert']);

/** A change that is not `[op, row]` / `{op, row}` with a known op. */
export class NotAChange extends Error {}

/** `[op, row]` or `{op, row}` as the WIT op's name and the row; nothing else is guessed at. */
export function splitChange(change) {
  let op;
  let row;
  if (Array.isArray(change) && change.length === 2) [op, row] = change;
  else if (change !== null && typeof change === 'object' && !Array.isArray(change) && 'op' in change && 'row' in change
    && Object.keys(change).length === 2) ({ op, row } = change);
  else throw new NotAChange('a change is [op, row] or {op, row}');
  if (!OPS.includes(op)) throw new NotAChange(`the operation ${JSON.stringify(op) ?? String(op)} is not one of ${OPS.map((o) => `'${o}'`).join(', ')}`);
  return [op.replace('_', '-'), row];
}
