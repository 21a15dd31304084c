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

/** The NATS connection could not be made or was lost (the host's policy refusing a connect-config included). */
export class ConnectionError extends SinkError {}

/** A publish was refused or not confirmed (permission, max_payload, stream error, a message the host refuses). */
export class PublishError extends SinkError {}

/** Something did not answer within its time limit. */
export class TimeoutError extends SinkError {}

/** The sink was used after a failure or after close. */
export class Closed extends SinkError {}

/** A call into the component trapped; the sink is closed. */
export class ComponentError extends SinkError {}

const BY_TAG = {
  'invalid-schema': InvalidSchema,
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
  const Kind = BY_TAG[err.tag];
  if (!Kind) return new ComponentError(`the component returned an unknown error case \`${err.tag}\``);
  return new Kind(err.val);
}

/** The WIT `transport-error` case of one of ours, for handing back to the guest. */
export function witTag(e) {
  if (e instanceof TimeoutError) return 'timeout';
  if (e instanceof PublishError) return 'publish';
  return 'connection';
}
