// Exceptions mirroring the WIT's `sink-error` variant, one class per case, as the Python
// host's `nats_sink.errors` does. A host acts on the class, never on the message text.

/** Every error the sink raises. */
export class SinkError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** One problem with one option: `name` is the option's key, `message` never holds a secret. */
export class OptionProblem {
  constructor(name, message) {
    this.name = name;
    this.message = message;
  }
}

/** The options are wrong; `problems` lists every problem found. */
export class InvalidOptions extends SinkError {
  constructor(problems) {
    super(problems.map((p) => `${p.name}: ${p.message}`).join('; '));
    this.problems = problems;
  }
}

/** An unknown type, a duplicate column, bad struct syntax; or Arrow data of a type a column cannot take. */
export class InvalidSchema extends SinkError {}

/** A row does not match the schema. `row` indexes the rows given to `write`; the rows before
 * it were published, it and the rows after it were not. */
export class InvalidRow extends SinkError {
  constructor(row, column, message) {
    super(`row ${row}${column ? `, column \`${column}\`` : ''}: ${message}`);
    this.row = row;
    this.column = column;
    this.reason = message;
  }
}

/**
 * A delivery failure, as the WIT's `failure` record carries it.
 *
 * `coreInDoubt` is true when core NATS messages sent since the last successful flush were not
 * confirmed and may be lost: core NATS keeps and resends nothing, so only replaying them on a
 * new connection can deliver them. Decide on the class and this flag, never on the text.
 */
export class DeliveryError extends SinkError {
  constructor(message, coreInDoubt = false) {
    super(message);
    /** @type {boolean} */
    this.coreInDoubt = coreInDoubt;
  }
}

/** The NATS connection could not be made or was lost (the host's policy refusing a connect-config included). */
export class ConnectionError extends DeliveryError {}

/** A publish was refused for good (permission, max_payload, a stream's limits, a message the host refuses). */
export class PublishError extends DeliveryError {}

/** Something did not answer within its time limit. */
export class TimeoutError extends DeliveryError {}

/** What can close a sink, as the WIT's `closed-after` names it. */
export const CLOSED_AFTER = Object.freeze(['close', 'connection', 'publish', 'timeout', 'interrupted']);

/**
 * The sink was used after a failure or after close.
 *
 * `after` says what closed it: `'close'` (the caller closed it), `'connection'`, `'publish'`
 * or `'timeout'` (the first delivery failure of that kind), or `'interrupted'` (a call that
 * trapped). `coreInDoubt` is the closing failure's flag (see `DeliveryError`).
 */
export class Closed extends SinkError {
  constructor(message, after = 'close', coreInDoubt = false) {
    super(message);
    if (!CLOSED_AFTER.includes(after)) throw new TypeError(`closed after \`${after}\`: not one of ${CLOSED_AFTER.join(', ')}`);
    /** @type {'close'|'connection'|'publish'|'timeout'|'interrupted'} */
    this.after = after;
    /** @type {boolean} */
    this.coreInDoubt = coreInDoubt;
  }
}

/** The `Closed` a sink raises once `err` has closed it. */
export function closedAfter(err, message) {
  const after = err instanceof ConnectionError ? 'connection'
    : err instanceof PublishError ? 'publish'
      : err instanceof TimeoutError ? 'timeout' : 'interrupted';
  return new Closed(message, after, err instanceof DeliveryError && err.coreInDoubt);
}

/** A call into the component trapped; the sink is closed. */
export class ComponentError extends SinkError {}

const BY_TAG = {
  connection: ConnectionError,
  publish: PublishError,
  timeout: TimeoutError,
  closed: Closed,
};

/** A `sink-error` variant (`{tag, val}`) as the guest returned it. */
export function fromWit(err) {
  if (err.tag === 'invalid-options') {
    return new InvalidOptions(err.val.map((p) => new OptionProblem(p.name, p.message)));
  }
  if (err.tag === 'invalid-row') return new InvalidRow(err.val.row, err.val.column, err.val.message);
  if (err.tag === 'invalid-schema') return new InvalidSchema(err.val);
  if (err.tag === 'closed') return new Closed(err.val.cause.message, err.val.after, err.val.cause.coreInDoubt);
  const Kind = BY_TAG[err.tag];
  if (!Kind) return new ComponentError(`the component returned an unknown error case \`${err.tag}\``);
  return new Kind(err.val.message, err.val.coreInDoubt);
}

/** The WIT `transport-error` case of one of ours, for handing back to the guest. */
export function witTag(e) {
  if (e instanceof TimeoutError) return 'timeout';
  if (e instanceof PublishError) return 'publish';
  return 'connection';
}
