//! Host for the nats-sink component: loads it into wasmtime, provides its NATS transport
//! (async-nats), and opens sinks that encode rows in the sandbox and publish them.
//!
//! ```no_run
//! use nats_sink::{Column, Datum, Rows, SinkRuntime};
//!
//! # async fn example() -> Result<(), nats_sink::HostError> {
//! let runtime = SinkRuntime::load("target/nats-sink.wasm")?;
//! let options: Vec<(String, String)> = [
//!     ("connector", "nats"),
//!     ("server_url", "127.0.0.1:4222"),
//!     ("subject", "orders"),
//!     ("connect_mode", "plain"),
//! ]
//! .into_iter()
//! .map(|(k, v)| (k.to_string(), v.to_string()))
//! .collect();
//! let schema = vec![
//!     Column { name: "id".into(), data_type: "integer".into() },
//!     Column { name: "tags".into(), data_type: "varchar[]".into() },
//! ];
//! let mut sink = runtime.open(&options, &schema).await?;
//! let mut rows = Rows::new();
//! rows.push(&[Datum::Integer(1), Datum::List(vec![Datum::Varchar("new".into())])]);
//! sink.write(&rows).await?; // publishes {"id":1,"tags":["new"]}
//! sink.flush().await?;       // returns once NATS confirmed it
//! sink.close().await?;
//! # Ok(())
//! # }
//! ```

pub mod health;
pub mod input;
pub mod lines;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod resume;
pub mod runtime;
pub mod shutdown;
pub mod sql;
pub mod stream;
pub mod transport;
pub mod value;

/// Bindings generated from `wit/nats-sink.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "nats-sink-component",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "nats-sink:sink/transport.connection": crate::transport::NatsConnection,
        },
    });

    pub use self::nats_sink::sink::transport;
}

pub use bindings::exports::nats_sink::sink::sink::{
    ChildRange, Column, Interval, OptionInfo, OptionProblem, RowProblem, Rows, SinkError, Target,
    Value,
};
pub use bindings::transport::Span;
pub use metrics::{Metrics, MetricsSnapshot};
pub use policy::{OutboundPolicy, Reach};
pub use runtime::{
    describe_option_problem, describe_sink_error, describe_transport_error, HostError,
    RuntimeConfig, Sink, SinkRuntime, DEFAULT_CPU_LIMIT, DEFAULT_MEMORY_LIMIT,
};
pub use shutdown::{ShutdownOutcome, ShutdownReport};
pub use transport::{Route, TransportStats};
pub use value::Datum;

/// The component the build produces, next to the build's profile directory
/// (`target/nats-sink.wasm` for `target/debug/nats-sink`), or `NATS_SINK_COMPONENT`.
pub fn default_component_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("NATS_SINK_COMPONENT") {
        return path.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("nats-sink.wasm")))
        .unwrap_or_else(|| "target/nats-sink.wasm".into())
}
