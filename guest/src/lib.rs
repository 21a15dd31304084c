//! The nats-sink guest: validates sink options, parses the schema and encodes rows as JSON.
//!
//! Built for `wasm32-unknown-unknown` it is the component the host loads (see `wit/`). Built
//! natively it is a plain library: the same option, schema and encoding logic, unit-tested with
//! `cargo test -p nats-sink-guest` and usable as a native baseline.

pub mod arrow;
pub mod batch;
mod changes;
pub mod encode;
mod json_num;
mod jsonb;
mod jsonb_fast;
pub mod option_specs;
pub mod options;
pub mod rows;
pub mod scalar;
pub mod sink;
pub mod stream;
pub mod template;
pub mod upsert;

// Rules the host applies too live in `nats-sink-rules`; re-exported under their old paths.
use nats_sink_rules::json_string as json_str;
pub use nats_sink_rules::span::within;
pub use nats_sink_rules::{schema, suggest};

/// Types generated from `wit/nats-sink.wit`, re-exported under short names.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "connector",
        // The guest's own `SinkError` compares its failures in tests.
        additional_derives: [PartialEq],
    });

    pub use exports::nats::sink::encoder::{
        ChildRange, ClosedAfter, Closure, Column, Interval, Op, OptionInfo, OptionProblem,
        RowProblem, Rows, SinkError, Target, Value,
    };
    pub use nats::sink::transport::{
        Auth, Batch, ConnectConfig, Credential, Delivery, Failure, Header, KvBucket, Message,
        PackedBytes, Span, StreamRequest, Tls, TransportError, UserPassword,
    };
}

use crate::options::{Auth, SinkConfig, OPTION_SPECS};

/// `describe`: every option with its doc.
pub fn describe() -> Vec<bindings::OptionInfo> {
    OPTION_SPECS
        .iter()
        .map(|s| bindings::OptionInfo {
            name: s.name.to_string(),
            required: s.required,
            default_value: s.default.to_string(),
            doc: s.doc.to_string(),
        })
        .collect()
}

/// `validate`: every option problem at once.
pub fn validate(options: &[(String, String)]) -> Vec<bindings::OptionProblem> {
    options::validate(options)
        .into_iter()
        .map(Into::into)
        .collect()
}

impl From<options::OptionProblem> for bindings::OptionProblem {
    fn from(p: options::OptionProblem) -> Self {
        bindings::OptionProblem {
            name: p.name,
            message: p.message,
        }
    }
}

impl From<sink::SinkError> for bindings::SinkError {
    fn from(e: sink::SinkError) -> Self {
        use bindings::SinkError as W;
        match e {
            sink::SinkError::InvalidOptions(problems) => {
                W::InvalidOptions(problems.into_iter().map(Into::into).collect())
            }
            sink::SinkError::InvalidSchema(e) => W::InvalidSchema(e.to_string()),
            sink::SinkError::InvalidRow { row, error } => W::InvalidRow(bindings::RowProblem {
                row,
                column: error.column,
                message: error.message,
            }),
            sink::SinkError::Connection(m) => W::Connection(m),
            sink::SinkError::Publish(m) => W::Publish(m),
            sink::SinkError::Timeout(m) => W::Timeout(m),
            sink::SinkError::Closed(m) => W::Closed(m),
        }
    }
}

/// `resolve`: what valid options connect to and publish on, without connecting.
pub fn resolve(options: &[(String, String)]) -> Result<bindings::Target, bindings::SinkError> {
    let config = SinkConfig::parse(options).map_err(sink::SinkError::InvalidOptions)?;
    Ok(bindings::Target {
        connect: connect_config(&config),
        subject_from_row: !config.subject_template.is_fixed(),
        subject: config.subject,
    })
}

/// What the host's transport needs to connect.
pub fn connect_config(config: &SinkConfig) -> bindings::ConnectConfig {
    bindings::ConnectConfig {
        servers: config.servers.clone(),
        auth: match &config.auth {
            Auth::Plain => bindings::Auth::None,
            Auth::UserPassword { username, password } => {
                bindings::Auth::UserPassword(bindings::UserPassword {
                    username: username.clone(),
                    password: password.clone(),
                })
            }
            Auth::Credential { jwt, nkey_seed } => {
                bindings::Auth::Credential(bindings::Credential {
                    jwt: jwt.clone(),
                    nkey_seed: nkey_seed.clone(),
                })
            }
            Auth::Token(token) => bindings::Auth::Token(token.clone()),
            Auth::CredentialsFile(path) => bindings::Auth::CredentialsFile(path.clone()),
            Auth::Nkey(seed) => bindings::Auth::Nkey(seed.clone()),
        },
        tls: config.tls.as_ref().map(|tls| bindings::Tls {
            ca_file: tls.ca.clone(),
            cert_file: tls.cert.clone(),
            key_file: tls.key.clone(),
        }),
        connect_timeout_ms: config.connect_timeout_ms,
        flush_timeout_ms: config.flush_timeout_ms,
        delivery: bindings::Delivery {
            ack_timeout_ms: config.delivery.ack_timeout_ms,
            max_in_flight: config.delivery.max_in_flight,
            max_attempts: config.delivery.max_attempts,
            max_elapsed_ms: config.delivery.max_elapsed_ms,
            initial_backoff_ms: config.delivery.initial_backoff_ms,
            max_backoff_ms: config.delivery.max_backoff_ms,
        },
        kv: match &config.kind {
            upsert::SinkKind::Upsert(upsert) => Some(bindings::KvBucket {
                name: upsert.bucket.clone(),
                create_with_history: config.create_stream.is_some().then_some(upsert.history),
            }),
            upsert::SinkKind::AppendOnly { .. } => None,
        },
        create_stream: config
            .create_stream
            .filter(|_| matches!(config.kind, upsert::SinkKind::AppendOnly { .. }))
            .map(|limits| {
                let subject = stream::captured_subject(&config.subject_template);
                bindings::StreamRequest {
                    name: stream::stream_name(&subject),
                    subject,
                    max_bytes: limits.max_bytes,
                    max_messages: limits.max_messages,
                    max_messages_per_subject: limits.max_messages_per_subject,
                    max_consumers: limits.max_consumers,
                    max_message_size: limits.max_message_size,
                }
            }),
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::RefCell;

    use crate::bindings::exports::nats::sink::encoder::{Guest, GuestSink, Sink};
    use crate::bindings::nats::sink::transport::Connection;
    use crate::bindings::{
        Batch, Column, OptionInfo, OptionProblem, PackedBytes, Rows, SinkError, Target,
        TransportError,
    };
    use crate::sink::{prepare, Publisher, Transport};

    impl Transport for Connection {
        fn publish(&mut self, batch: Batch) -> Result<(), TransportError> {
            Connection::publish(self, &batch)
        }
        fn flush(&mut self) -> Result<(), TransportError> {
            Connection::flush(self)
        }
        fn max_payload(&mut self) -> u64 {
            Connection::max_payload(self)
        }
    }

    struct Component;

    /// The exported resource; WIT methods take `&self`, hence the cell.
    struct ExportedSink(RefCell<Publisher<Connection>>);

    impl Guest for Component {
        type Sink = ExportedSink;

        fn describe() -> Vec<OptionInfo> {
            crate::describe()
        }

        fn validate(options: Vec<(String, String)>) -> Vec<OptionProblem> {
            crate::validate(&options)
        }

        fn resolve(options: Vec<(String, String)>) -> Result<Target, SinkError> {
            crate::resolve(&options)
        }
    }

    impl GuestSink for ExportedSink {
        fn open(options: Vec<(String, String)>, schema: Vec<Column>) -> Result<Sink, SinkError> {
            let (config, schema) = prepare(&options, &schema)?;
            let connection = Connection::open(&crate::connect_config(&config))
                .map_err(crate::sink::SinkError::from)?;
            Ok(Sink::new(ExportedSink(RefCell::new(Publisher::new(
                config, schema, connection,
            )))))
        }

        fn begin_checkpoint(&self, id: u64) {
            self.0.borrow_mut().begin_checkpoint(id)
        }

        fn sink_id(&self) -> Option<String> {
            self.0.borrow().sink_id().map(str::to_string)
        }

        fn write(&self, rows: Rows) -> Result<(), SinkError> {
            Ok(self.0.borrow_mut().write(&rows)?)
        }

        fn write_arrow(&self, ipc: PackedBytes) -> Result<u32, SinkError> {
            Ok(self.0.borrow_mut().write_arrow_packed(ipc)?)
        }

        fn flush(&self) -> Result<(), SinkError> {
            Ok(self.0.borrow_mut().flush()?)
        }
    }

    crate::bindings::export!(Component with_types_in crate::bindings);
}
