//! The guest compiled natively over the host's transport: the "native" mode and the encoding baseline.

use super::*;

/// A transport for the native sink that keeps or drops what it is given.
#[derive(Default)]
pub(crate) struct Discard {
    pub(crate) keep: bool,
    pub(crate) kept: Vec<Vec<u8>>,
    pub(crate) messages: u64,
}

impl nats_sink_guest::sink::Transport for Discard {
    fn publish(&mut self, batch: guest::Batch) -> Result<(), guest::TransportError> {
        self.messages += batch.messages.len() as u64;
        if self.keep {
            let messages = nats_sink_guest::batch::unpack(&batch).expect("a well-formed batch");
            self.kept.extend(messages.into_iter().map(|m| m.payload));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), guest::TransportError> {
        Ok(())
    }
    /// No server: nats-server's default, which the benchmark's rows are far below.
    fn max_payload(&mut self) -> u64 {
        1 << 20
    }
}

pub(crate) fn options(url: &str, subject: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    [
        ("server_url", url),
        ("subject", subject),
        ("connect_mode", "plain"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub(crate) fn native_sink<T: nats_sink_guest::sink::Transport>(
    columns: &[Column],
    extra: &[(&str, &str)],
    transport: T,
) -> nats_sink_guest::sink::Publisher<T> {
    let guest_columns: Vec<guest::Column> = columns
        .iter()
        .map(|c| guest::Column {
            name: c.name.clone(),
            data_type: c.data_type.clone(),
        })
        .collect();
    let (config, schema) =
        nats_sink_guest::sink::prepare(&options("127.0.0.1:4222", "bench", extra), &guest_columns)
            .expect("valid bench options");
    nats_sink_guest::sink::Publisher::new(config, schema, transport)
}

/// The host's transport, driven synchronously as the native sink's `Transport`.
pub(crate) struct Blocking<'a> {
    pub(crate) runtime: &'a tokio::runtime::Runtime,
    pub(crate) connection: NatsConnection,
}

/// The same batch in the host's generated types (both come from the one WIT record).
pub(crate) fn to_host_batch(b: guest::Batch) -> nats_sink::wit::Batch {
    use nats_sink::wit as h;
    h::Batch {
        data: h::PackedBytes {
            words: b.data.words,
            len: b.data.len,
        },
        header_names: b.header_names,
        headers: b
            .headers
            .into_iter()
            .map(|x| h::Header {
                name: x.name,
                value_start: x.value_start,
                value_len: x.value_len,
            })
            .collect(),
        messages: b
            .messages
            .into_iter()
            .map(|m| h::Message {
                subject_start: m.subject_start,
                subject_len: m.subject_len,
                payload_start: m.payload_start,
                payload_len: m.payload_len,
                headers_start: m.headers_start,
                headers_len: m.headers_len,
            })
            .collect(),
    }
}

pub(crate) fn to_guest_error(e: nats_sink::wit::TransportError) -> guest::TransportError {
    use nats_sink::wit::TransportError as H;
    let failure = |f: nats_sink::Failure| guest::Failure {
        message: f.message,
        core_in_doubt: f.core_in_doubt,
    };
    match e {
        H::Connection(f) => guest::TransportError::Connection(failure(f)),
        H::Publish(f) => guest::TransportError::Publish(failure(f)),
        H::Timeout(f) => guest::TransportError::Timeout(failure(f)),
    }
}

impl nats_sink_guest::sink::Transport for Blocking<'_> {
    fn publish(&mut self, batch: guest::Batch) -> Result<(), guest::TransportError> {
        self.runtime
            .block_on(self.connection.publish(to_host_batch(batch)))
            .map_err(to_guest_error)
    }
    fn flush(&mut self) -> Result<(), guest::TransportError> {
        self.runtime
            .block_on(self.connection.flush())
            .map_err(to_guest_error)
    }
    fn max_payload(&mut self) -> u64 {
        self.connection.max_payload()
    }
}

pub(crate) fn to_host_connect(c: guest::ConnectConfig) -> nats_sink::wit::ConnectConfig {
    use nats_sink::wit as h;
    h::ConnectConfig {
        servers: c.servers,
        auth: match c.auth {
            guest::Auth::None => h::Auth::None,
            guest::Auth::UserPassword(up) => h::Auth::UserPassword(h::UserPassword {
                username: up.username,
                password: up.password,
            }),
            guest::Auth::Credential(cr) => h::Auth::Credential(h::Credential {
                jwt: cr.jwt,
                nkey_seed: cr.nkey_seed,
            }),
            guest::Auth::Token(token) => h::Auth::Token(token),
            guest::Auth::CredentialsFile(path) => h::Auth::CredentialsFile(path),
            guest::Auth::Nkey(seed) => h::Auth::Nkey(seed),
        },
        tls: c.tls.map(|tls| h::Tls {
            ca_file: tls.ca_file,
            cert_file: tls.cert_file,
            key_file: tls.key_file,
        }),
        connect_timeout_ms: c.connect_timeout_ms,
        flush_timeout_ms: c.flush_timeout_ms,
        delivery: h::Delivery {
            ack_timeout_ms: c.delivery.ack_timeout_ms,
            max_in_flight: c.delivery.max_in_flight,
            max_attempts: c.delivery.max_attempts,
            max_elapsed_ms: c.delivery.max_elapsed_ms,
            initial_backoff_ms: c.delivery.initial_backoff_ms,
            max_backoff_ms: c.delivery.max_backoff_ms,
        },
        create_stream: c.create_stream.map(|r| h::StreamRequest {
            name: r.name,
            subject: r.subject,
            max_bytes: r.max_bytes,
            max_messages: r.max_messages,
            max_messages_per_subject: r.max_messages_per_subject,
            max_consumers: r.max_consumers,
            max_message_size: r.max_message_size,
        }),
        kv: c.kv.map(|kv| h::KvBucket {
            name: kv.name,
            create_with_history: kv.create_with_history,
        }),
    }
}
