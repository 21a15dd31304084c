// JavaScript values as the WIT `rows` layout (see wit/nats-sink.wit): every value of every
// row in one list, every text and byte value in one buffer. A value is taken only where it
// converts exactly; anything else is refused, naming its column, never changed.

const encoder = new TextEncoder();
const INT_RANGE = {
  smallint: [-(2n ** 15n), 2n ** 15n - 1n, 'int16'],
  integer: [-(2n ** 31n), 2n ** 31n - 1n, 'int32'],
  bigint: [-(2n ** 63n), 2n ** 63n - 1n, 'int64'],
  serial: [-(2n ** 63n), 2n ** 63n - 1n, 'serial'],
};
const MICROS_PER_DAY = 86_400_000_000n;

/** A value refused for its column (`path`), with the reason. */
export class ValueRefused extends Error {
  constructor(column, message) {
    super(message);
    this.column = column;
  }
}

const DATE = /^(-?\d{4,})-(\d{2})-(\d{2})$/;
const TIME = /^(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;
const ZONE = /(Z|[+-]\d{2}:?\d{2})$/i;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Days since 1970-01-01 of a proleptic Gregorian date, or null when it is no real date. */
function days(y, m, d) {
  const t = new Date(0);
  t.setUTCFullYear(y, m - 1, d); // a day past its month rolls over, and is caught below
  if (t.getUTCFullYear() !== y || t.getUTCMonth() !== m - 1 || t.getUTCDate() !== d) return null;
  return Math.floor(t.getTime() / 86_400_000);
}

function timeMicros(text) {
  const t = TIME.exec(text);
  if (!t) return null;
  const [h, mi, s] = [Number(t[1]), Number(t[2]), Number(t[3])];
  if (h > 23 || mi > 59 || s > 59) return null;
  return BigInt(((h * 60 + mi) * 60 + s) * 1_000_000) + BigInt((t[4] ?? '').padEnd(6, '0') || '0');
}

/** `YYYY-MM-DD[ T]HH:MM:SS[.ffffff]` as microseconds, or null. */
function localMicros(text) {
  const cut = text.search(/[ T]/);
  if (cut < 0) return null;
  const d = DATE.exec(text.slice(0, cut));
  const t = timeMicros(text.slice(cut + 1));
  if (!d || t === null) return null;
  const n = days(Number(d[1]), Number(d[2]), Number(d[3]));
  return n === null ? null : BigInt(n) * MICROS_PER_DAY + t;
}

export class RowsBuilder {
  constructor() {
    this.values = [];
    this.ends = [];
    this.parts = [];
    this.dataLength = 0;
    this.ops = []; // each row's WIT `op`
  }

  get length() {
    return this.ends.length;
  }

  span(bytes) {
    const s = { start: this.dataLength, len: bytes.length };
    this.parts.push(bytes);
    this.dataLength += bytes.length;
    return s;
  }

  /** Append one row with its WIT `op`: an object by column name, or an array in schema order. */
  push(columns, row, op = 'insert') {
    const before = { values: this.values.length, parts: this.parts.length, data: this.dataLength };
    try {
      const given = Array.isArray(row) ? row : null;
      if (given && given.length !== columns.length) throw new ValueRefused('', `the row has ${given.length} values for ${columns.length} columns`);
      if (!given) {
        if (row === null || typeof row !== 'object') throw new ValueRefused('', 'a row is an object by column name or an array in schema order');
        const names = new Set(columns.map(([n]) => n));
        const extra = Object.keys(row).find((k) => !names.has(k));
        if (extra !== undefined) throw new ValueRefused(extra, 'no column has this name');
      }
      const values = columns.map(([name], i) => (given ? given[i] : row[name]));
      this.pushRun(columns.map(([name, ty], i) => [name, ty, values[i]]), '');
      this.ends.push(this.values.length);
      this.ops.push(op);
    } catch (e) {
      this.values.length = before.values;
      this.parts.length = before.parts;
      this.dataLength = before.data;
      throw e;
    }
  }

  /** A run of values at consecutive slots, their children after them. */
  pushRun(items, prefix) {
    const start = this.values.length;
    for (let k = 0; k < items.length; k += 1) this.values.push(null);
    items.forEach(([name, ty, v], k) => {
      this.values[start + k] = this.value(ty, v, prefix === '' ? name : `${prefix}${name}`, start);
    });
  }

  value(ty, v, path, rowStart) {
    if (v === null || v === undefined) return { tag: 'null' };
    const refuse = (why) => { throw new ValueRefused(path, why); };
    if (ty.kind === 'list') {
      if (!Array.isArray(v)) refuse('a list column takes an array');
      const start = this.values.length - this.rowStart();
      this.pushRun(v.map((e, i) => [`[${i}]`, ty.element, e]), path);
      return { tag: 'list', val: { start, len: v.length } };
    }
    if (ty.kind === 'struct') {
      if (typeof v !== 'object' || Array.isArray(v)) refuse('a struct column takes an object by field name');
      const names = new Set(ty.fields.map(([n]) => n));
      const extra = Object.keys(v).find((k) => !names.has(k));
      if (extra !== undefined) refuse(`the struct has no field \`${extra}\``);
      const start = this.values.length - this.rowStart();
      this.pushRun(ty.fields.map(([n, t]) => [`.${n}`, t, v[n]]), path);
      return { tag: 'struct', val: { start, len: ty.fields.length } };
    }
    return this.base(ty.name, v, refuse);
  }

  rowStart() {
    return this.ends.length === 0 ? 0 : this.ends[this.ends.length - 1];
  }

  text(v, refuse) {
    if (typeof v !== 'string') refuse(`takes a string, not ${typeof v}`);
    if (!v.isWellFormed()) refuse('the string holds a lone surrogate, which is not Unicode text');
    return this.span(encoder.encode(v));
  }

  base(name, v, refuse) {
    switch (name) {
      case 'boolean':
        if (typeof v !== 'boolean') refuse(`takes true or false, not ${typeof v}`);
        return { tag: 'boolean', val: v };
      case 'smallint': case 'integer': case 'bigint': case 'serial': {
        const [lo, hi, tag] = INT_RANGE[name];
        let n;
        if (typeof v === 'bigint') n = v;
        else if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
        else refuse(typeof v === 'number' ? `${v} is not an integer a double holds exactly (use a BigInt)` : `takes an integer, not ${typeof v}`);
        if (n < lo || n > hi) refuse(`${n} is out of range for ${name}`);
        return { tag, val: tag === 'int64' || tag === 'serial' ? n : Number(n) };
      }
      case 'real':
        if (typeof v !== 'number') refuse(`takes a number, not ${typeof v}`);
        if (!Number.isNaN(v) && Math.fround(v) !== v) refuse(`${v} is not exactly a 32-bit float`);
        return { tag: 'float32', val: v };
      case 'double precision':
        if (typeof v !== 'number') refuse(`takes a number, not ${typeof v}`);
        return { tag: 'float64', val: v };
      case 'numeric':
        if (typeof v === 'bigint') return { tag: 'decimal', val: this.span(encoder.encode(v.toString())) };
        if (typeof v === 'number') refuse('takes its exact text (a string) or a BigInt: a double is not a decimal number');
        return { tag: 'decimal', val: this.text(v, refuse) };
      case 'varchar':
        return { tag: 'text', val: this.text(v, refuse) };
      case 'bytea':
        if (!(v instanceof Uint8Array)) refuse('takes a Uint8Array (or a Buffer)');
        return { tag: 'bytea', val: this.span(v.slice()) };
      case 'jsonb': {
        if (typeof v === 'string') return { tag: 'jsonb', val: this.text(v, refuse) };
        let json;
        try {
          json = JSON.stringify(v);
        } catch (e) {
          refuse(`cannot be written as JSON: ${e.message}`);
        }
        if (json === undefined) refuse('cannot be written as JSON');
        return { tag: 'jsonb', val: this.span(encoder.encode(json)) };
      }
      case 'date': {
        if (v instanceof Date) {
          const t = v.getTime();
          if (!Number.isFinite(t) || t % 86_400_000 !== 0) refuse('a Date for a date column must be a UTC midnight');
          return { tag: 'date', val: t / 86_400_000 };
        }
        const d = typeof v === 'string' ? DATE.exec(v) : null;
        const n = d && days(Number(d[1]), Number(d[2]), Number(d[3]));
        if (n === null || n < -(2 ** 31) || n >= 2 ** 31) refuse('takes `YYYY-MM-DD` or a Date at UTC midnight');
        return { tag: 'date', val: n };
      }
      case 'time': {
        const t = typeof v === 'bigint' ? v : typeof v === 'string' ? timeMicros(v) : null;
        if (t === null || t < 0n || t >= MICROS_PER_DAY) refuse('takes `HH:MM:SS[.ffffff]` or microseconds since midnight as a BigInt');
        return { tag: 'time', val: t };
      }
      case 'timestamp': case 'timestamptz': {
        let t = null;
        if (typeof v === 'bigint') t = v;
        else if (v instanceof Date && Number.isFinite(v.getTime())) t = BigInt(v.getTime()) * 1000n;
        else if (typeof v === 'string') {
          const zone = ZONE.exec(v);
          if (name === 'timestamp' && !zone) t = localMicros(v);
          if (name === 'timestamptz' && zone) {
            const local = localMicros(v.slice(0, zone.index));
            const z = zone[1].toUpperCase() === 'Z' ? 0 : (zone[1][0] === '-' ? -1 : 1) * (Number(zone[1].slice(1, 3)) * 60 + Number(zone[1].slice(-2)));
            t = local === null ? null : local - BigInt(z) * 60_000_000n;
          }
        }
        if (t === null || t < -(2n ** 63n) || t >= 2n ** 63n) {
          refuse(name === 'timestamp'
            ? 'takes `YYYY-MM-DD HH:MM:SS[.ffffff]` without a zone, a Date, or microseconds as a BigInt'
            : 'takes `YYYY-MM-DD HH:MM:SS[.ffffff]` with a zone (`Z`, `+02:00`), a Date, or microseconds as a BigInt');
        }
        return { tag: name, val: t };
      }
      case 'interval': {
        const ok = v && typeof v === 'object' && Number.isInteger(v.months) && Number.isInteger(v.days)
          && Math.abs(v.months) < 2 ** 31 && Math.abs(v.days) < 2 ** 31 && typeof v.micros === 'bigint';
        if (!ok) refuse('takes {months, days, micros} (integers, micros a BigInt)');
        return { tag: 'interval', val: { months: v.months, days: v.days, micros: BigInt.asIntN(64, v.micros) === v.micros ? v.micros : refuse('micros out of range') } };
      }
      case 'uuid': {
        if (typeof v !== 'string' || !UUID.test(v)) refuse('takes a uuid as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`');
        const hex = v.replaceAll('-', '');
        return { tag: 'uuid', val: [BigInt(`0x${hex.slice(0, 16)}`), BigInt(`0x${hex.slice(16)}`)] };
      }
      default:
        return refuse(`the Node host cannot take values of type ${name}`);
    }
  }

  /** The WIT `rows` record. */
  record() {
    const data = new Uint8Array(this.dataLength);
    let at = 0;
    for (const p of this.parts) {
      data.set(p, at);
      at += p.length;
    }
    // No ops at all when every row is an insert, as the WIT allows.
    const ops = this.ops.some((op) => op !== 'insert') ? this.ops : [];
    return { values: this.values, ends: Uint32Array.from(this.ends), data, ops };
  }
}
