//! The transport the guest imports, over async-nats: connect, publish, and a flush that
//! returns only when every message since the previous flush is confirmed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{
    GetStreamByNameError, GetStreamByNameErrorKind, PublishAckFuture,
};
use async_nats::{ConnectOptions, Event, HeaderMap, ServerAddr};
use futures::StreamExt;

use crate::bindings::transport::{Auth, ConnectConfig, Message, TransportError};

/// Acks awaited before another JetStream publish is sent; bounds memory and keeps the pipe full.
const MAX_PENDING_ACKS: usize = 4096;

/// How messages on one subject are confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No stream captures the subject: core publish, confirmed by a server round trip.
    Core,
    /// A stream captures the subject: JetStream publish, confirmed by its ack.
    JetStream { stream: String },
}

/// What the connection's event callback saw since the last flush.
#[derive(Default)]
struct Events {
    server_errors: Vec<String>,
    disconnects: usize,
}

/// Counters a caller can read at any time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransportStats {
    pub messages: u64,
    pub payload_bytes: u64,
    pub flushes: u64,
}

/// One NATS connection, owned by one sink.
pub struct NatsConnection {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    routes: HashMap<String, Route>,
    pending_acks: VecDeque<(String, PublishAckFuture)>,
    /// Core messages published since the last flush.
    unconfirmed_core: u64,
    events: Arc<Mutex<Events>>,
    /// Inbox that core flushes echo through; its subscriber sees our echo after the server
    /// has processed every earlier publish on this connection.
    echo_subject: String,
    echo: async_nats::Subscriber,
    flush_timeout: Duration,
    stats: TransportStats,
}

fn connection_error(message: impl std::fmt::Display) -> TransportError {
    TransportError::Connection(message.to_string())
}

impl NatsConnection {
    pub async fn connect(config: ConnectConfig) -> Result<NatsConnection, TransportError> {
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms.into());
        let flush_timeout = Duration::from_millis(config.flush_timeout_ms.into());
        let servers = config
            .servers
            .iter()
            .map(|s| {
                format!("nats://{s}")
                    .parse::<ServerAddr>()
                    .map_err(|e| connection_error(format!("server `{s}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let options = match config.auth {
            Auth::None => ConnectOptions::new(),
            Auth::UserPassword(up) => {
                ConnectOptions::new().user_and_password(up.username, up.password)
            }
            Auth::Credential(cred) => {
                // The seed's text is never echoed: only the kind of problem is reported.
                let key_pair = nkeys::KeyPair::from_seed(&cred.nkey_seed)
                    .map_err(|_| connection_error("option `nkey` is not a valid NKey seed"))?;
                let key_pair = Arc::new(key_pair);
                ConnectOptions::with_jwt(cred.jwt, move |nonce| {
                    let key_pair = key_pair.clone();
                    async move { key_pair.sign(&nonce).map_err(async_nats::AuthError::new) }
                })
            }
        };
        let events = Arc::new(Mutex::new(Events::default()));
        let sink_events = events.clone();
        let options = options
            .name("nats-sink")
            .connection_timeout(connect_timeout)
            .request_timeout(Some(flush_timeout))
            .event_callback(move |event| {
                let events = sink_events.clone();
                async move {
                    let mut events = events.lock().unwrap_or_else(|p| p.into_inner());
                    match event {
                        Event::ServerError(e) => events.server_errors.push(e.to_string()),
                        Event::Disconnected => events.disconnects += 1,
                        _ => {}
                    }
                }
            });

        let servers_text = config.servers.join(",");
        let client = match tokio::time::timeout(connect_timeout, options.connect(servers)).await {
            Err(_) => {
                return Err(TransportError::Timeout(format!(
                    "could not connect to {servers_text} within {} ms",
                    connect_timeout.as_millis()
                )))
            }
            Ok(Err(e)) => {
                return Err(connection_error(format!(
                    "could not connect to {servers_text}: {e}"
                )))
            }
            Ok(Ok(client)) => client,
        };
        let jetstream = async_nats::jetstream::ContextBuilder::new()
            .timeout(flush_timeout)
            .max_ack_inflight(MAX_PENDING_ACKS)
            .build(client.clone());
        let echo_subject = client.new_inbox();
        let echo = client
            .subscribe(echo_subject.clone())
            .await
            .map_err(|e| connection_error(format!("subscribing to the flush inbox: {e}")))?;
        Ok(NatsConnection {
            client,
            jetstream,
            routes: HashMap::new(),
            pending_acks: VecDeque::new(),
            unconfirmed_core: 0,
            events,
            echo_subject,
            echo,
            flush_timeout,
            stats: TransportStats::default(),
        })
    }

    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    /// Where messages on `subject` go, asked of JetStream once per subject.
    pub async fn route(&mut self, subject: &str) -> Result<Route, TransportError> {
        if let Some(route) = self.routes.get(subject) {
            return Ok(route.clone());
        }
        let lookup = self.jetstream.stream_by_subject(subject);
        // A user who may not publish to the JetStream API gets no reply, only a permission
        // error from the server: watch for it rather than wait out the request timeout.
        let denied = wait_for_server_error(&self.events, |e| {
            e.contains("Permissions Violation") && e.contains("$JS.API")
        });
        let found = tokio::select! {
            found = lookup => found,
            () = denied => {
                tracing::debug!(subject, "no permission to use JetStream: core path");
                Err(GetStreamByNameError::new(GetStreamByNameErrorKind::NotFound))
            }
        };
        let route = match found {
            Ok(stream) => Route::JetStream { stream },
            Err(e) => match e.kind() {
                GetStreamByNameErrorKind::NotFound => Route::Core,
                // No JetStream on the server: the request has no responders.
                GetStreamByNameErrorKind::Request if is_no_responders(&e) => Route::Core,
                _ => {
                    return Err(TransportError::Publish(format!(
                        "could not tell whether a JetStream stream captures `{subject}`: {e}"
                    )))
                }
            },
        };
        tracing::debug!(subject, ?route, "delivery route");
        self.routes.insert(subject.to_string(), route.clone());
        Ok(route)
    }

    pub async fn publish(&mut self, messages: Vec<Message>) -> Result<(), TransportError> {
        for message in messages {
            let route = self.route(&message.subject).await?;
            let size = message.payload.len() as u64;
            let headers = (!message.headers.is_empty()).then(|| {
                let mut map = HeaderMap::new();
                for (name, value) in &message.headers {
                    map.append(name.as_str(), value.as_str());
                }
                map
            });
            match route {
                Route::Core => {
                    let result = match headers {
                        Some(h) => {
                            self.client
                                .publish_with_headers(message.subject, h, message.payload.into())
                                .await
                        }
                        None => {
                            self.client
                                .publish(message.subject, message.payload.into())
                                .await
                        }
                    };
                    result.map_err(|e| TransportError::Publish(format!("{e} ({size} bytes)")))?;
                    self.unconfirmed_core += 1;
                }
                Route::JetStream { .. } => {
                    if self.pending_acks.len() >= MAX_PENDING_ACKS {
                        self.await_oldest_ack().await?;
                    }
                    let subject = message.subject.clone();
                    let result = match headers {
                        Some(h) => {
                            self.jetstream
                                .publish_with_headers(message.subject, h, message.payload.into())
                                .await
                        }
                        None => {
                            self.jetstream
                                .publish(message.subject, message.payload.into())
                                .await
                        }
                    };
                    let ack = result
                        .map_err(|e| TransportError::Publish(format!("{e} ({size} bytes)")))?;
                    self.pending_acks.push_back((subject, ack));
                }
            }
            self.stats.messages += 1;
            self.stats.payload_bytes += size;
        }
        Ok(())
    }

    async fn await_oldest_ack(&mut self) -> Result<(), TransportError> {
        let Some((subject, ack)) = self.pending_acks.pop_front() else {
            return Ok(());
        };
        match ack.await {
            Ok(_) => Ok(()),
            Err(e) => Err(match e.kind() {
                async_nats::jetstream::context::PublishErrorKind::TimedOut => {
                    TransportError::Timeout(format!(
                        "no JetStream ack for a message on `{subject}` within {} ms",
                        self.flush_timeout.as_millis()
                    ))
                }
                _ => TransportError::Publish(format!(
                    "JetStream refused a message on `{subject}`: {e}"
                )),
            }),
        }
    }

    /// Confirm everything since the last flush: all JetStream acks, then a round trip for
    /// core messages, then no server error or disconnect in between.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        while !self.pending_acks.is_empty() {
            if let Err(e) = self.await_oldest_ack().await {
                self.pending_acks.clear();
                self.unconfirmed_core = 0;
                return Err(e);
            }
        }
        let result = self.confirm_core().await;
        self.unconfirmed_core = 0;
        result?;
        self.stats.flushes += 1;
        Ok(())
    }

    async fn confirm_core(&mut self) -> Result<(), TransportError> {
        if self.unconfirmed_core > 0 {
            let timeout = self.flush_timeout;
            let echo_subject = self.echo_subject.clone();
            let (client, echo, events) = (&self.client, &mut self.echo, &self.events);
            let round_trip = async {
                client
                    .publish(echo_subject.clone(), Default::default())
                    .await
                    .map_err(|e| connection_error(format!("flush: {e}")))?;
                client
                    .flush()
                    .await
                    .map_err(|e| connection_error(format!("flush: {e}")))?;
                // Either our echo comes back, or (for a user who may not publish to inboxes)
                // the server refuses it. Both come after the server processed every earlier
                // publish, and its errors reach the event callback in order.
                let refused = wait_for_server_error(events, |e| e.contains(&echo_subject));
                tokio::select! {
                    received = echo.next() => received.map(|_| ()).ok_or_else(|| connection_error("flush: the connection closed")),
                    () = refused => Ok(()),
                }
            };
            match tokio::time::timeout(timeout, round_trip).await {
                Err(_) => {
                    return Err(TransportError::Timeout(format!(
                        "the server did not confirm {} messages within {} ms",
                        self.unconfirmed_core,
                        timeout.as_millis()
                    )))
                }
                Ok(result) => result?,
            }
            // The echo and the event callback travel separately; let the callback catch up
            // with errors the connection read before the echo.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let errors = std::mem::take(&mut events.server_errors);
        let disconnects = std::mem::take(&mut events.disconnects);
        if let Some(first) = errors.first() {
            return Err(TransportError::Publish(format!(
                "the server reported: {first}"
            )));
        }
        if disconnects > 0 && self.unconfirmed_core > 0 {
            return Err(connection_error(
                "the connection dropped since the last flush; core NATS messages sent before it may be lost",
            ));
        }
        Ok(())
    }
}

/// Remove the first server error that `matches`; true if there was one.
fn take_server_error(events: &Mutex<Events>, matches: impl Fn(&str) -> bool) -> bool {
    let mut events = events.lock().unwrap_or_else(|p| p.into_inner());
    match events.server_errors.iter().position(|e| matches(e)) {
        Some(i) => {
            events.server_errors.remove(i);
            true
        }
        None => false,
    }
}

/// Return once a server error that `matches` has arrived, removing it from the events.
async fn wait_for_server_error(events: &Mutex<Events>, matches: impl Fn(&str) -> bool) {
    while !take_server_error(events, &matches) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// True when JetStream is not enabled on the server: its API has no responders.
fn is_no_responders(e: &(dyn std::error::Error + 'static)) -> bool {
    use async_nats::jetstream::context::{RequestError, RequestErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        // async-nats wraps the request's error in another of kind `Other`: look at every level.
        if err
            .downcast_ref::<RequestError>()
            .is_some_and(|r| r.kind() == RequestErrorKind::NoResponders)
        {
            return true;
        }
        source = err.source();
    }
    false
}
