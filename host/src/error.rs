//! The runtime's errors, with kinds and sources as async-nats words its own: a caller matches
//! on a kind, reads the cause through `std::error::Error::source`, and every wording and
//! metric label is written here once.

use std::fmt;

use crate::bindings::encoder::{ClosedAfter, Closure, OptionProblem, SinkError};
use crate::bindings::transport::{Failure, TransportError};

/// Why a call into the runtime or a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The guest refused: options, schema, a row, or a delivery failure it reports.
    #[error("{}", describe_sink_error(.0))]
    Sink(SinkError),
    /// The component could not be loaded or linked, or a call into it trapped or hit a limit.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A record batch could not be written as an Arrow IPC stream (on the host, before the
    /// guest saw it).
    #[error("the record batch cannot be written as an Arrow IPC stream: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// What went wrong in the runtime, as a kind to match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeErrorKind {
    /// The component's file could not be read, or the compile cache could not be set up.
    Load,
    /// The bytes are not a component wasmtime can compile.
    Compile,
    /// The component does not fit the nats-sink world: an import the host lacks, an export
    /// it needs missing.
    Link,
    /// Instantiating the component failed.
    Instantiate,
    /// A call into the guest trapped.
    Trap,
    /// A call hit the sink's memory limit.
    MemoryLimit,
    /// A call hit the sink's CPU limit.
    CpuLimit,
}

/// A runtime failure: its kind, what the host was doing, and the error behind it.
#[derive(Debug)]
pub struct RuntimeError {
    kind: RuntimeErrorKind,
    context: String,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl RuntimeError {
    pub(crate) fn new(
        kind: RuntimeErrorKind,
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> RuntimeError {
        RuntimeError {
            kind,
            context: context.into(),
            source: source.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> RuntimeErrorKind {
        self.kind
    }

    /// The same error, with `prefix` before what the host was doing.
    pub(crate) fn within(mut self, prefix: impl fmt::Display) -> RuntimeError {
        self.context = format!("{prefix} ({})", self.context);
        self
    }
}

impl fmt::Display for RuntimeError {
    /// What the host was doing; the cause follows through `source`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

impl HostError {
    /// True when the problem is in what the caller passed (options, schema, a row), not delivery.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            HostError::Sink(
                SinkError::InvalidOptions(_)
                    | SinkError::InvalidSchema(_)
                    | SinkError::InvalidRow(_)
            )
        )
    }

    /// The `kind` label of this error in the `nats_sink_errors` metric.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            HostError::Sink(SinkError::InvalidOptions(_)) => "invalid_options",
            HostError::Sink(SinkError::InvalidSchema(_)) => "invalid_schema",
            HostError::Sink(SinkError::InvalidRow(_)) => "invalid_row",
            HostError::Sink(SinkError::Connection(_)) => "connection",
            HostError::Sink(SinkError::Publish(_)) => "publish",
            HostError::Sink(SinkError::Timeout(_)) => "timeout",
            HostError::Sink(SinkError::Closed(_)) => "closed",
            HostError::Runtime(_) => "runtime",
            HostError::Arrow(_) => "arrow",
        }
    }
}

/// `option `name`: message`, in the guest's own words for its option problems.
pub fn describe_option_problem(problem: &OptionProblem) -> String {
    nats_sink_rules::option_problem::OptionProblem {
        name: problem.name.clone(),
        message: problem.message.clone(),
    }
    .to_string()
}

/// One line per problem, naming the option, the column or the row; never a secret.
pub fn describe_sink_error(error: &SinkError) -> String {
    match error {
        SinkError::InvalidOptions(problems) => {
            let lines: Vec<String> = problems.iter().map(describe_option_problem).collect();
            format!("invalid options: {}", lines.join("; "))
        }
        SinkError::InvalidSchema(m) => format!("invalid schema: {m}"),
        SinkError::InvalidRow(p) if p.column.is_empty() => format!("row {}: {}", p.row, p.message),
        SinkError::InvalidRow(p) => format!("row {}: column `{}`: {}", p.row, p.column, p.message),
        SinkError::Connection(f) => delivery_failure("connection", &f.message),
        SinkError::Publish(f) => delivery_failure("publish", &f.message),
        SinkError::Timeout(f) => delivery_failure("timeout", &f.message),
        SinkError::Closed(c) => delivery_failure("closed", &c.cause.message),
    }
}

/// One line naming what failed, as `describe_sink_error` words the same cases.
pub fn describe_transport_error(error: &TransportError) -> String {
    match error {
        TransportError::Connection(f) => delivery_failure("connection", &f.message),
        TransportError::Publish(f) => delivery_failure("publish", &f.message),
        TransportError::Timeout(f) => delivery_failure("timeout", &f.message),
    }
}

impl Failure {
    /// A failure with no core NATS message in doubt.
    pub fn new(message: impl fmt::Display) -> Failure {
        Failure {
            message: message.to_string(),
            core_in_doubt: false,
        }
    }
}

impl TransportError {
    /// The connection could not be made or was lost.
    pub fn connection(message: impl fmt::Display) -> TransportError {
        TransportError::Connection(Failure::new(message))
    }

    /// A refusal that retrying cannot change.
    pub fn publish(message: impl fmt::Display) -> TransportError {
        TransportError::Publish(Failure::new(message))
    }

    /// Something did not answer in time.
    pub fn timeout(message: impl fmt::Display) -> TransportError {
        TransportError::Timeout(Failure::new(message))
    }

    /// The failure the case carries.
    pub fn failure(&self) -> &Failure {
        match self {
            TransportError::Connection(f)
            | TransportError::Publish(f)
            | TransportError::Timeout(f) => f,
        }
    }

    /// The same error, saying unconfirmed core NATS messages may be lost when `in_doubt`.
    /// A `publish` refusal stays as it is: a replay cannot change it.
    pub(crate) fn core_in_doubt_if(mut self, in_doubt: bool) -> TransportError {
        if let TransportError::Connection(f) | TransportError::Timeout(f) = &mut self {
            f.core_in_doubt |= in_doubt;
        }
        self
    }
}

impl SinkError {
    /// The delivery failure behind this error: the case's own for `connection`, `publish`
    /// and `timeout`, the closing one for `closed`; `None` for bad input.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            SinkError::Connection(f) | SinkError::Publish(f) | SinkError::Timeout(f) => Some(f),
            SinkError::Closed(closure) => Some(&closure.cause),
            SinkError::InvalidOptions(_)
            | SinkError::InvalidSchema(_)
            | SinkError::InvalidRow(_) => None,
        }
    }

    /// `closed`, by the caller: the sink was used after `close`.
    pub(crate) fn closed_by_caller() -> SinkError {
        SinkError::Closed(Closure {
            after: ClosedAfter::Close,
            cause: Failure::new("the sink was closed"),
        })
    }
}

/// A delivery failure's one wording, shared by the guest's errors and the transport's.
fn delivery_failure(kind: &str, message: &str) -> String {
    format!("{kind}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CLI prints an error with its sources; for a runtime error that must read as the
    /// host's context followed by wasmtime's own words, every cause once.
    #[test]
    fn a_runtime_error_reads_as_its_context_then_its_causes() {
        let cause = wasmtime::Error::msg("unknown import `hostile:extra/clock`").context("linking");
        let wasmtime_words = format!("{cause:#}");
        let error = RuntimeError::new(RuntimeErrorKind::Link, "does not fit", cause);
        assert_eq!(error.kind(), RuntimeErrorKind::Link);
        assert_eq!(error.to_string(), "does not fit");
        let chained = format!("{:#}", anyhow::Error::from(HostError::from(error)));
        assert_eq!(chained, format!("does not fit: {wasmtime_words}"));
        assert!(chained.contains("linking: unknown import"), "{chained}");
    }
}
