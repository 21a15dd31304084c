//! A guest that implements the nats-sink world and misbehaves on purpose, so the host's
//! defences can be tested against a real component. `open` takes one option, `behaviour`:
//!
//! - `loop-in-write`: `write` never returns;
//! - `alloc-in-write`: `write` allocates until memory runs out;
//! - `empty-subject`, `wildcard-subject`, `oversized-payload`, `bad-header`: `write` publishes
//!   one such message per row; so do `control-subject` (a NUL and a DEL in the subject),
//!   `kv-subject` (a key of a key-value bucket), `control-header` (a NUL in a header value),
//!   `rollup-header` (`Nats-Rollup: all`), `ttl-header` (`nats-ttl: 1s`) and
//!   `kv-operation-header` (an empty `KV-Operation: DEL` on a subject outside any bucket);
//! - `trap-in-open`: `open` traps, while `describe` and every other behaviour still answer;
//! - `span-outside`, `header-index-outside`: `write` publishes a batch whose payload span, or
//!   header name index, points outside it; `packed-wrong`: a batch whose `data` claims eight
//!   bytes more than its words hold;
//! - `connect-elsewhere`: `open` connects to option `elsewhere` instead of `server_url`;
//! - `read-file`: `open` asks the host to read option `file` as a `.creds` file;
//! - `swap-auth`: `open` authenticates with option `other_token` as a token, whatever
//!   `connect_mode` says.
//!
//! Whatever the behaviour, it never asks for TLS, so options that require TLS (`tls://`,
//! `tls.required = true`) test that the host refuses a connection with TLS dropped.
//!
//! Other options are passed to the transport as `server_url` (one `host:port`).

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::RefCell;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "connector",
    });

    use exports::nats::sink::encoder::{
        Column, Guest, GuestSink, OptionInfo, OptionProblem, Rows, Sink, SinkError, Target,
    };
    use nats::sink::transport::{
        Auth, Batch, ConnectConfig, Connection, Delivery, Header, Message, PackedBytes, Span,
    };

    /// `bytes` as the WIT's packed words, little-endian, the last one zero-padded.
    fn pack(bytes: &[u8]) -> PackedBytes {
        let words = bytes
            .chunks(8)
            .map(|chunk| {
                let mut lanes = [0u8; 8];
                lanes[..chunk.len()].copy_from_slice(chunk);
                u64::from_le_bytes(lanes)
            })
            .collect();
        PackedBytes {
            words,
            len: bytes.len() as u32,
        }
    }

    /// A batch of `count` copies of one message, laid out as the real guest lays them out.
    fn batch(count: usize, subject: &str, headers: &[(&str, &str)], payload: &[u8]) -> Batch {
        let mut data = Vec::new();
        let mut span = |bytes: &[u8]| {
            let start = data.len() as u32;
            data.extend_from_slice(bytes);
            Span {
                start,
                len: bytes.len() as u32,
            }
        };
        let subject = span(subject.as_bytes());
        let payload = span(payload);
        let header_list: Vec<Header> = headers
            .iter()
            .enumerate()
            .map(|(i, (_, value))| {
                let value = span(value.as_bytes());
                Header {
                    name: i as u32,
                    value_start: value.start,
                    value_len: value.len,
                }
            })
            .collect();
        let header_count = header_list.len() as u32;
        Batch {
            data: pack(&data),
            header_names: headers.iter().map(|(n, _)| n.to_string()).collect(),
            headers: header_list,
            messages: (0..count)
                .map(|_| Message {
                    subject_start: subject.start,
                    subject_len: subject.len,
                    payload_start: payload.start,
                    payload_len: payload.len,
                    headers_start: 0,
                    headers_len: header_count,
                })
                .collect(),
        }
    }

    struct Hostile;

    struct HostileSink {
        behaviour: String,
        connection: Option<Connection>,
        kept: RefCell<Vec<Vec<u8>>>,
    }

    fn config(server: String) -> ConnectConfig {
        ConnectConfig {
            servers: vec![server],
            auth: Auth::None,
            tls: None,
            connect_timeout_ms: 2_000,
            flush_timeout_ms: 5_000,
            delivery: Delivery {
                ack_timeout_ms: 1_000,
                max_in_flight: 16,
                max_attempts: 1,
                max_elapsed_ms: 1_000,
                initial_backoff_ms: 10,
                max_backoff_ms: 10,
            },
            create_stream: None,
            kv: None,
        }
    }

    fn option<'a>(options: &'a [(String, String)], name: &str) -> Option<&'a str> {
        options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn transport_error(e: nats::sink::transport::TransportError) -> SinkError {
        use nats::sink::transport::TransportError as T;
        match e {
            T::Connection(m) => SinkError::Connection(m),
            T::Publish(m) => SinkError::Publish(m),
            T::Timeout(m) => SinkError::Timeout(m),
        }
    }

    impl Guest for Hostile {
        type Sink = HostileSink;

        fn describe() -> Vec<OptionInfo> {
            Vec::new()
        }

        fn validate(_: Vec<(String, String)>) -> Vec<OptionProblem> {
            Vec::new()
        }

        fn resolve(options: Vec<(String, String)>) -> Result<Target, SinkError> {
            let server = option(&options, "server_url")
                .unwrap_or_default()
                .to_string();
            Ok(Target {
                connect: config(server),
                subject: "hostile".into(),
                subject_from_row: false,
            })
        }
    }

    impl GuestSink for HostileSink {
        fn open(options: Vec<(String, String)>, _: Vec<Column>) -> Result<Sink, SinkError> {
            let behaviour = option(&options, "behaviour").unwrap_or_default();
            if behaviour == "trap-in-open" {
                core::arch::wasm32::unreachable();
            }
            let connection = match option(&options, "server_url") {
                Some(server) => {
                    let mut config = config(server.to_string());
                    // Reach past what the options allow: the host's policy must refuse.
                    match behaviour {
                        "connect-elsewhere" => {
                            let elsewhere = option(&options, "elsewhere").unwrap_or_default();
                            config.servers = vec![elsewhere.to_string()];
                        }
                        "read-file" => {
                            let file = option(&options, "file").unwrap_or_default();
                            config.auth = Auth::CredentialsFile(file.to_string());
                        }
                        "swap-auth" => {
                            let token = option(&options, "other_token").unwrap_or_default();
                            config.auth = Auth::Token(token.to_string());
                        }
                        _ => {}
                    }
                    Some(Connection::open(&config).map_err(transport_error)?)
                }
                None => None,
            };
            Ok(Sink::new(HostileSink {
                behaviour: behaviour.to_string(),
                connection,
                kept: RefCell::new(Vec::new()),
            }))
        }

        fn begin_checkpoint(&self, _: u64) {}

        fn sink_id(&self) -> Option<String> {
            None
        }

        fn write(&self, rows: Rows) -> Result<(), SinkError> {
            self.misbehave(rows.ends.len())
        }

        /// Misbehaves as `write` does, one message per stream.
        fn write_arrow(&self, ipc: PackedBytes) -> Result<u32, SinkError> {
            std::hint::black_box(&ipc);
            self.misbehave(1).map(|()| 1)
        }

        fn flush(&self) -> Result<(), SinkError> {
            match &self.connection {
                Some(connection) => connection.flush().map_err(transport_error),
                None => Ok(()),
            }
        }
    }

    impl HostileSink {
        /// What `write` of `n` rows does under this sink's behaviour.
        fn misbehave(&self, n: usize) -> Result<(), SinkError> {
            let batch = match self.behaviour.as_str() {
                "loop-in-write" => loop {
                    std::hint::black_box(n);
                },
                "alloc-in-write" => loop {
                    self.kept.borrow_mut().push(vec![1u8; 1 << 20]);
                },
                "empty-subject" => batch(n, "", &[], b"{}"),
                "wildcard-subject" => batch(n, "orders.>", &[], b"{}"),
                "oversized-payload" => batch(n, "hostile", &[], &vec![b'x'; 2 << 20]),
                "bad-header" => batch(n, "hostile", &[("X-Smuggle", "a\r\nPUB other 1")], b"{}"),
                "control-subject" => batch(n, "hostile.x\0y\u{7f}", &[], b"{}"),
                "kv-subject" => batch(n, "$KV.bucket.key", &[], b"{}"),
                "control-header" => batch(n, "hostile", &[("X-Id", "a\0b")], b"{}"),
                "rollup-header" => batch(n, "hostile", &[("Nats-Rollup", "all")], b"{}"),
                "ttl-header" => batch(n, "hostile", &[("nats-ttl", "1s")], b"{}"),
                "kv-operation-header" => batch(n, "hostile", &[("KV-Operation", "DEL")], b""),
                "span-outside" => {
                    let mut b = batch(n, "hostile", &[], b"{}");
                    for m in &mut b.messages {
                        m.payload_len = u32::MAX;
                    }
                    b
                }
                "packed-wrong" => {
                    let mut b = batch(n, "hostile", &[], b"{}");
                    b.data.len += 8;
                    b
                }
                "header-index-outside" => {
                    let mut b = batch(n, "hostile", &[("X-A", "v")], b"{}");
                    b.headers[0].name = 9;
                    b
                }
                other => {
                    return Err(SinkError::InvalidOptions(vec![OptionProblem {
                        name: "behaviour".into(),
                        message: format!("unknown behaviour `{other}`"),
                    }]))
                }
            };
            match &self.connection {
                Some(connection) => connection.publish(&batch).map_err(transport_error),
                None => Err(SinkError::Connection(nats::sink::transport::Failure {
                    message: "no server_url given".into(),
                    core_in_doubt: false,
                })),
            }
        }
    }

    export!(Hostile);
}
