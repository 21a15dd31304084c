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
//!
//! What is public:
//! - running sinks: [`SinkRuntime`] (`load`, limits, `open`, `describe`/`validate`/`resolve`,
//!   `reach`, `with_connector`, `instance`), [`Sink`], [`RuntimeConfig`] (with
//!   `pooled_instances` for wasmtime's pooling allocator), [`Datum`] and [`Rows`], the WIT
//!   types re-exported here, [`Metrics`];
//! - errors: [`HostError`], whose `Runtime` case is a [`RuntimeError`] with a
//!   [`RuntimeErrorKind`] and a source, and the `describe_*` wordings;
//! - the transport seam: [`Connector`] and [`Connection`] (what the host glue calls),
//!   [`OutgoingMessage`] (a checked message), [`NatsConnector`] (a connection per sink, or
//!   with [`NatsConnector::shared`] one per distinct connect config) and
//!   [`transport::NatsConnection`] (async-nats), and the transport's WIT types in [`wit`];
//! - typed delivery failures: every `connection`/`publish`/`timeout` carries a [`Failure`]
//!   (`core_in_doubt`), and `closed` a [`Closure`] saying what closed the sink ([`ClosedAfter`]);
//! - calling a component's exports directly: [`ComponentInstance`] and its [`Exports`].
//!
//! The generated bindings are private: every type above is re-exported here or in [`wit`], so
//! a change of the WIT's names stays behind these paths. `#![deny(missing_docs)]` covers the
//! re-exported WIT types too: their docs are the WIT's `///` comments, so every record field,
//! variant case and enum case of `wit/nats-sink.wit` needs one.
//! - what `nats-sink check` and `validate` use: [`health`], [`preflight`], [`stream`], and the
//!   outbound [`policy`].

#![deny(missing_docs)]

pub mod arrow;
mod bindings;
mod connector;
mod error;
mod exports;
mod guest_transport;
pub mod health;
pub mod kv;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod resume;
mod runtime;
mod sandbox;
mod shutdown;
pub mod stream;
pub mod transport;
mod value;

/// The arrow-rs release whose record batches [`Sink::write_arrow`] takes.
pub use arrow_array;
pub use bindings::encoder::{
    ChildRange, ClosedAfter, Closure, Column, Interval, Op, OptionInfo, OptionProblem, RowProblem,
    Rows, SinkError, Target, Value,
};
pub use bindings::transport::{Failure, PackedBytes, Span};

/// The types the component and its host exchange, as `wit/nats-sink.wit` defines them (its doc
/// comments are theirs). What an embedder needs is re-exported here and at the crate root; the
/// generated bindings stay private, so the WIT's package, interface and world names can
/// change behind these paths.
pub mod wit {
    pub use crate::bindings::encoder::{
        ChildRange, ClosedAfter, Closure, Column, Interval, Op, OptionInfo, OptionProblem,
        RowProblem, Rows, SinkError, Target, Value,
    };
    pub use crate::bindings::transport::{
        Auth, Batch, ConnectConfig, Credential, Delivery, Failure, Header, KvBucket, Message,
        PackedBytes, Span, StreamRequest, Tls, TransportError, UserPassword,
    };
}
pub use connector::{Connection, Connector, NatsConnector, OpenConnection, TransportFuture};
pub use error::{
    describe_option_problem, describe_sink_error, describe_transport_error, HostError,
    RuntimeError, RuntimeErrorKind,
};
pub use exports::Exports;
pub use metrics::{Metrics, MetricsSnapshot};
pub use policy::{OutboundPolicy, Reach};
pub use runtime::{
    ComponentInstance, RuntimeConfig, Sink, SinkRuntime, SinkState, DEFAULT_CPU_LIMIT,
    DEFAULT_MEMORY_LIMIT, MAX_COMPONENT_BYTES,
};
pub use shutdown::{ShutdownOutcome, ShutdownReport};
pub use transport::{OutgoingMessage, Route, TransportStats};
pub use value::Datum;

/// The Rust blocks of the README and `docs/`, compiled by `cargo test --doc`, so the embedding
/// examples people copy keep compiling.
#[cfg(doctest)]
mod documentation {
    #[doc = include_str!("../../README.md")]
    struct Readme;
    #[doc = include_str!("../../docs/hosts/rust.md")]
    struct RustHost;
    #[doc = include_str!("../../docs/hosts.md")]
    struct Hosts;
}

/// The component the build produces, next to the build's profile directory
/// (`target/nats-sink.wasm` for `target/debug/nats-sink`, and for an example in
/// `target/debug/examples/`), or `NATS_SINK_COMPONENT`.
pub fn default_component_path() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("NATS_SINK_COMPONENT") {
        return path.into();
    }
    let beside_the_build = std::env::current_exe().ok().and_then(|exe| {
        let profile_dir = exe.parent()?;
        // An example or a test binary sits one folder deeper, under the profile's.
        let profile_dir = match profile_dir.file_name()?.to_str()? {
            "examples" | "deps" => profile_dir.parent()?,
            _ => profile_dir,
        };
        Some(profile_dir.parent()?.join("nats-sink.wasm"))
    });
    beside_the_build.unwrap_or_else(|| "target/nats-sink.wasm".into())
}
