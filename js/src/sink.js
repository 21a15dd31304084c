// The async API: open a sink, write rows (or Arrow IPC), flush, close.

import { instantiate, DEFAULT_COMPONENT } from './component.js';
import { connectionClass } from './guest-transport.js';
import { Closed, closedAfter, ComponentError, ConnectionError, InvalidOptions, InvalidRow, InvalidSchema, OptionProblem, SinkError, fromWit } from './errors.js';
import { NatsTransport } from './nats-transport.js';
import { Reach } from './policy.js';
import { parseType } from './schema.js';
import { bounds, crossings } from './crossings.js';
import { pack } from './packed.js';

/** About how much of a Table's columns one writeArrow crossing carries. */
export const ARROW_CROSSING_BYTES = 1 << 20;

/** RisingWave's `Op::to_i16` of an update-delete, in a Table's `__op` field. */
const UPDATE_DELETE = 4;

/** A Table as IPC streams of about ARROW_CROSSING_BYTES each (by its columns' bytes a row),
 * a slice halved while its stream is over twice that; the first always goes, so the guest
 * checks the schema even of an empty table. A slice never ends between an update-delete and
 * its update-insert (the guest pairs them within one stream). Lazily, one stream at a time. */
function* arrowSlices(arrow, table) {
  const bytes = table.schema.fields.reduce((sum, f) => sum + (table.getChild(f.name)?.byteLength ?? 0), 0);
  const perRow = Math.max(1, bytes / Math.max(1, table.numRows));
  const ops = table.getChild('__op');
  let first = 0;
  // `rows` from `first`, moved off an update-delete at the slice's end.
  const wholePairs = (rows) => {
    const end = first + rows;
    if (ops === null || end >= table.numRows || Number(ops.get(end - 1)) !== UPDATE_DELETE) return rows;
    return rows > 1 ? rows - 1 : rows + 1;
  };
  do {
    let rows = wholePairs(Math.min(table.numRows - first, Math.max(1, Math.floor(ARROW_CROSSING_BYTES / perRow))));
    const smallest = wholePairs(Math.min(1, table.numRows - first));
    let ipc = arrow.tableToIPC(table.slice(first, first + rows), 'stream');
    while (ipc.length > 2 * ARROW_CROSSING_BYTES && rows > smallest) {
      rows = wholePairs(Math.max(smallest, Math.ceil(rows / 2)));
      ipc = arrow.tableToIPC(table.slice(first, first + rows), 'stream');
    }
    yield { first, rows, ipc };
    first += rows;
  } while (first < table.numRows);
}

/** Options as `[[key, value], ...]`, from an object, a Map or pairs; values as text. */
function pairs(options) {
  const items = options instanceof Map ? [...options] : Array.isArray(options) ? options : Object.entries(options);
  return items.map(([k, v]) => [String(k), typeof v === 'string' ? v : String(v)]);
}

/** A transport for instances that must not connect (describe, validate, schema errors). */
const unconnected = connectionClass({ reach: { refusal: () => 'no connection is made here' }, transport: null });

/** The guest's call, with a trap (or any throw that is not its own error) as ComponentError. */
function call(fn) {
  try {
    return fn();
  } catch (e) {
    if (e && Object.hasOwn(e, 'payload')) throw fromWit(e.payload);
    throw new ComponentError(`the component trapped: ${e && e.message}`);
  }
}

/** Every option the sink understands, from the component itself. */
export async function describe({ component = DEFAULT_COMPONENT } = {}) {
  const api = await instantiate(unconnected, component);
  return call(() => api.describe()).map((i) => ({ name: i.name, required: i.required, default: i.defaultValue, doc: i.doc }));
}

/** The component's problems with `given` (pairs). */
function problemsOf(api, given) {
  return call(() => api.validate(given)).map((p) => new OptionProblem(p.name, p.message));
}

/** Every problem with these options at once, the component's and this host's; an empty list
 * means they are valid here. */
export async function validate(options, { component = DEFAULT_COMPONENT } = {}) {
  const api = await instantiate(unconnected, component);
  return problemsOf(api, pairs(options));
}

/** Validate the options and the schema (`[[name, type], ...]`), connect, and open the sink.
 * `component` names another jco build of a nats-sink component (a directory). */
export async function open(options, schema, { component = DEFAULT_COMPONENT } = {}) {
  const given = pairs(options);
  const columnsWit = schema.map(([name, dataType]) => ({ name, dataType }));
  const probe = await instantiate(unconnected, component);
  const problems = problemsOf(probe, given);
  if (problems.length > 0) throw new InvalidOptions(problems);
  let columns;
  try {
    columns = schema.map(([name, text]) => [name, parseType(text)]);
  } catch {
    // The guest's own words for a schema this host could not read (it refuses before connecting).
    try {
      call(() => probe.Sink.open(given, columnsWit));
    } catch (e) {
      if (e instanceof InvalidSchema || e instanceof InvalidOptions) throw e;
    }
    throw new InvalidSchema('the schema could not be read');
  }
  const target = call(() => probe.resolve(given));
  const state = { reach: new Reach(given), transport: null };
  const why = state.reach.refusal(target.connect);
  if (why) throw new ConnectionError(why);
  const transport = new NatsTransport();
  try {
    await transport.connect(target.connect);
  } catch (e) {
    await transport.close();
    throw e;
  }
  state.transport = transport;
  try {
    const api = await instantiate(connectionClass(state), component);
    const handle = call(() => api.Sink.open(given, columnsWit));
    return new Sink(handle, transport, columns, bounds(columns, given));
  } catch (e) {
    await transport.close();
    throw e;
  }
}

/** An open sink. Not safe for concurrent use: await each call before the next. */
export class Sink {
  constructor(handle, transport, columns, rowBounds) {
    this.handle = handle;
    this.transport = transport;
    this.columns = columns;
    this.bounds = rowBounds;
    this.closed = null;
  }

  check() {
    if (this.closed !== null) throw new Closed(this.closed.message, this.closed.after, this.closed.coreInDoubt);
  }

  /** After a delivery failure the sink refuses further calls, so no later success hides it. */
  fail(e) {
    const err = e instanceof SinkError ? e : new ComponentError(`the host failed: ${e && e.message}`);
    this.closed = closedAfter(err, `the sink failed earlier (${err.message}); reopen it and replay since the last flush`);
    return err;
  }

  /** Start checkpoint `id` (a BigInt or a safe integer); rows from here carry `<sink_id>:<id>:<position>`. */
  beginCheckpoint(id) {
    this.check();
    try {
      call(() => this.handle.beginCheckpoint(BigInt(id)));
    } catch (e) {
      throw this.fail(e);
    }
  }

  /** The sink id message ids start with, or undefined when dedupe is off. */
  sinkId() {
    this.check();
    return call(() => this.handle.sinkId());
  }

  /** Encode and publish rows (objects by column name, or arrays in schema order). On
   * InvalidRow, the rows before the bad one were published and nothing at or after it. */
  async write(rows) {
    return this.writeRows(rows, false);
  }

  /** Encode and publish rows with their operation: `[op, row]` or `{op, row}`, `op` one of
   * `'insert'`, `'delete'`, `'update_delete'`, `'update_insert'` (an update is the old row's
   * `update_delete` right before the new row's `update_insert`). An upsert sink puts, deletes or
   * moves each row's key (docs/upsert.md); an append-only sink refuses anything but an insert
   * unless `force_append_only = true`. A change that is not such a pair, or one the guest
   * refuses, is InvalidRow counted across the whole input; the rows before it are published. */
  async writeChanges(changes) {
    return this.writeRows(changes, true);
  }

  async writeRows(rows, changes) {
    this.check();
    try {
      for (const crossing of crossings(this.columns, rows, this.bounds, Number(this.transport.maxPayload()), { changes })) {
        if (crossing.rows.length > 0) {
          let refused = null;
          try {
            call(() => this.handle.write(crossing.rows.record()));
          } catch (e) {
            refused = e;
          }
          await this.transport.send(); // what the guest published before any refusal
          if (refused instanceof InvalidRow) throw new InvalidRow(crossing.first + refused.row, refused.column, refused.reason);
          if (refused) throw refused;
        }
        if (crossing.refused) throw crossing.refused;
      }
    } catch (e) {
      if (e instanceof InvalidRow) throw e;
      throw this.fail(e);
    }
  }

  /** Encode and publish one Arrow IPC stream (a Uint8Array, or an apache-arrow Table, written
   * uncompressed as a stream), one message per row; the bytes `write` gives for the same rows.
   * A field named `__op` (unless the sink has a column of that name) gives each row's operation
   * as RisingWave's `Op::to_i16` numbers it: 1 insert, 2 delete, 3 update-insert, 4 update-delete.
   * A Table crosses in slices of about ARROW_CROSSING_BYTES of its columns, so the messages
   * waiting to be sent stay bounded; a Uint8Array crosses whole. Resolves to the number of rows
   * published. */
  async writeArrow(data) {
    this.check();
    let parts;
    if (data instanceof Uint8Array) {
      parts = [{ first: 0, rows: null, ipc: data }];
    } else {
      let arrow;
      try {
        arrow = await import('apache-arrow');
      } catch {
        throw new TypeError('writeArrow takes Arrow IPC stream bytes (a Uint8Array), or an apache-arrow Table with `apache-arrow` installed');
      }
      if (!(data instanceof arrow.Table)) throw new TypeError('writeArrow takes a Uint8Array of Arrow IPC stream bytes or an apache-arrow Table');
      parts = arrowSlices(arrow, data);
    }
    try {
      let count = 0;
      for (const part of parts) {
        let refused = null;
        let published = 0;
        try {
          const packed = pack(part.ipc);
          published = call(() => this.handle.writeArrow(packed));
        } catch (e) {
          refused = e;
        }
        await this.transport.send(); // what the guest published before any refusal
        if (!refused && part.rows !== null && published !== part.rows) {
          throw new ComponentError(`write-arrow published ${published} rows of a slice of ${part.rows}`);
        }
        count += published;
        if (refused instanceof InvalidRow) throw new InvalidRow(part.first + refused.row, refused.column, refused.reason);
        if (refused) throw refused;
      }
      return count;
    } catch (e) {
      if (e instanceof InvalidRow || e instanceof InvalidSchema) throw e; // nothing past it was published
      throw this.fail(e);
    }
  }

  /** Resolve once everything written since the last flush is confirmed. */
  async flush() {
    this.check();
    try {
      call(() => this.handle.flush());
      await this.transport.confirm();
    } catch (e) {
      throw this.fail(e);
    }
  }

  /** Close the connection. Unflushed rows are not confirmed: flush first. */
  async close() {
    if (this.closed !== null && this.closed.after === 'close') return;
    this.closed = new Closed('the sink was closed', 'close');
    try {
      this.handle[Symbol.dispose]?.();
    } catch {
      // an instance that trapped cannot drop its handle; both go with it
    }
    await this.transport.close();
  }
}
