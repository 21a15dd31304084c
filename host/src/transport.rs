//! The transport the guest imports, over async-nats: connect, publish, and a flush that
//! returns only when every message since the previous flush is confirmed.
//!
//! JetStream messages are pipelined: up to `max-in-flight` await their acks while more are
//! sent, and a writer beyond that waits for the oldest ack. A message whose send or ack fails
//! in a way that can pass (no ack in time, the connection dropped, no stream leader for a
//! moment) is kept and sent again after a backoff, once the client has reconnected, until the
//! `delivery` budget is spent. A failure that cannot pass (permission, max_payload, the
//! stream's limits) ends the call at once. Nothing is dropped without an error.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{
    GetStreamByNameError, GetStreamByNameErrorKind, PublishError, PublishErrorKind,
};
use async_nats::jetstream::publish::PublishAck;
use async_nats::{ConnectOptions, Event, HeaderMap, ServerAddr, Subject};
use bytes::Bytes;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use nats_sink_rules::server_url::{self, redact};
use nats_sink_rules::span::within;
use tokio::sync::Notify;

use crate::bindings::transport::{Auth, Batch, ConnectConfig, Delivery, Span, Tls, TransportError};

/// How messages on one subject are confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No stream captures the subject: core publish, confirmed by a server round trip.
    Core,
    /// A stream captures the subject: JetStream publish, confirmed by its ack.
    JetStream { stream: String },
}

/// What one connection knows of a subject.
struct KnownSubject {
    route: Route,
    clearance: Clearance,
}

/// Whether the server has had its chance to refuse core messages on a subject. It reports a
/// refusal (a missing permission) as an error event, which can trail the flush's echo; the
/// first flush after a subject's first message, on each connection, waits it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clearance {
    /// No core message since the connection (re)connected, or the last attempt failed.
    Unseen,
    /// Published since the last flush, which will wait for error reports.
    Listed,
    /// A flush waited for error reports and saw none: later flushes need only the echo.
    Cleared,
}

/// What the connection's event callback saw.
struct Events {
    server_errors: Vec<String>,
    /// Disconnects since the last flush.
    disconnects: usize,
    /// Disconnects since the connection opened.
    drops: u64,
    connected: bool,
}

/// The connection's events, and a way to wait for the next one.
struct EventLog {
    events: Mutex<Events>,
    changed: Notify,
}

impl EventLog {
    fn new() -> EventLog {
        EventLog {
            events: Mutex::new(Events {
                server_errors: Vec::new(),
                disconnects: 0,
                drops: 0,
                connected: true,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Events> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, event: Event) {
        let mut events = self.lock();
        match event {
            Event::ServerError(e) => events.server_errors.push(e.to_string()),
            Event::Disconnected => {
                events.disconnects += 1;
                events.drops += 1;
                events.connected = false;
            }
            Event::Connected => events.connected = true,
            _ => return,
        }
        drop(events);
        self.changed.notify_waiters();
    }

    fn is_connected(&self) -> bool {
        self.lock().connected
    }

    fn drops(&self) -> u64 {
        self.lock().drops
    }

    /// Remove and return the first server error that `matches`.
    fn take_server_error(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        let mut events = self.lock();
        let i = events.server_errors.iter().position(|e| matches(e))?;
        Some(events.server_errors.remove(i))
    }

    /// Return once `ready` gives a value, checking after every event.
    async fn wait_for<T>(&self, mut ready: impl FnMut(&EventLog) -> Option<T>) -> T {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before the check, so an event between the two is not missed.
            notified.as_mut().enable();
            if let Some(value) = ready(self) {
                return value;
            }
            notified.await;
        }
    }

    /// Return once a server error that `matches` has arrived, removing it.
    async fn server_error(&self, matches: impl Fn(&str) -> bool) -> String {
        self.wait_for(|log| log.take_server_error(&matches)).await
    }

    async fn connected(&self) {
        self.wait_for(|log| log.is_connected().then_some(())).await
    }
}

/// Counters a caller can read at any time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransportStats {
    pub messages: u64,
    pub payload_bytes: u64,
    pub flushes: u64,
    /// JetStream messages sent again after a failure that could pass.
    pub resent: u64,
}

/// A JetStream message kept until its ack arrives, so that it can be sent again.
struct Outgoing {
    subject: Subject,
    headers: Option<HeaderMap>,
    payload: Bytes,
}

impl Outgoing {
    /// The guest's batch as messages, every span, index, subject and header checked first:
    /// what a guest hands over is input, and must not make the host publish to a wildcard,
    /// write a malformed header line, or read outside the batch. Payloads and subjects become
    /// slices of the batch's one buffer, so a message costs no copy of them.
    fn unpack(batch: Batch) -> Result<Vec<Outgoing>, TransportError> {
        let refuse = |what: String| {
            TransportError::Publish(format!("the sink produced an invalid message: {what}"))
        };
        let data = Bytes::from(batch.data);
        let slice = |span: &Span, what: &str| {
            within(span.start, span.len, data.len())
                .map(|range| data.slice(range))
                .ok_or_else(|| {
                    refuse(format!(
                        "its {what} span {}+{} is outside the batch's {} bytes",
                        span.start,
                        span.len,
                        data.len()
                    ))
                })
        };
        let names = batch
            .header_names
            .iter()
            .map(|name| match name.parse::<async_nats::HeaderName>() {
                Ok(parsed) if !name.is_empty() => Ok(parsed),
                _ => Err(refuse(format!("header name {name:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Messages on one subject usually share its span: check it once.
        let mut last_subject: Option<((u32, u32), Subject)> = None;
        let mut messages = Vec::with_capacity(batch.messages.len());
        for message in &batch.messages {
            let key = (message.subject.start, message.subject.len);
            let subject = match &last_subject {
                Some((seen, subject)) if *seen == key => subject.clone(),
                _ => {
                    let subject = Subject::from_utf8(slice(&message.subject, "subject")?)
                        .map_err(|_| refuse("a subject that is not UTF-8".into()))?;
                    nats_sink_rules::nats_names::check_subject(&subject)
                        .map_err(|why| refuse(format!("subject {:?} {why}", subject.as_str())))?;
                    last_subject = Some((key, subject.clone()));
                    subject
                }
            };
            let headers = match message.headers.len {
                0 => None,
                len => {
                    let run = within(message.headers.start, len, batch.headers.len())
                        .map(|range| &batch.headers[range])
                        .ok_or_else(|| refuse("a header run outside the batch".into()))?;
                    let mut map = HeaderMap::new();
                    for header in run {
                        let name = names.get(header.name as usize).ok_or_else(|| {
                            refuse(format!(
                                "header name index {} outside the batch",
                                header.name
                            ))
                        })?;
                        let value = slice(&header.value, "header value")?;
                        let value = std::str::from_utf8(&value)
                            .ok()
                            .and_then(|v| v.parse::<async_nats::HeaderValue>().ok())
                            .ok_or_else(|| {
                                refuse(format!(
                                    "header {name} has a value with a line break or not in UTF-8"
                                ))
                            })?;
                        map.append(name.clone(), value);
                    }
                    Some(map)
                }
            };
            messages.push(Outgoing {
                subject,
                headers,
                payload: slice(&message.payload, "payload")?,
            });
        }
        Ok(messages)
    }
}

type PendingAck = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// What one failed send or ack calls for.
enum SendFailure {
    /// May pass: send the message again, within the budget. The text is the cause.
    Retry(String),
    /// Cannot pass: report it.
    Fatal(TransportError),
}

/// A run of failures that could pass, from the first until every message is acked again.
struct Episode {
    started: Instant,
    /// Sends so far of the messages being retried, counting the first.
    attempts: u32,
    cause: String,
}

/// One NATS connection, owned by one sink.
pub struct NatsConnection {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    subjects: HashMap<String, KnownSubject>,
    /// Core subjects published since the last flush that are not yet cleared.
    uncleared: Vec<String>,
    /// Acks awaited, oldest first, and the messages they confirm, in the same order.
    in_flight: FuturesOrdered<PendingAck>,
    awaiting: VecDeque<Outgoing>,
    /// Disconnects already accounted for: after another, awaited acks cannot arrive.
    drops_seen: u64,
    /// JetStream messages to send again, in the order they were first sent.
    resend: VecDeque<Outgoing>,
    episode: Option<Episode>,
    /// Core messages published since the last flush.
    unconfirmed_core: u64,
    events: Arc<EventLog>,
    /// Inbox that core flushes echo through; its subscriber sees our echo after the server
    /// has processed every earlier publish on this connection.
    echo_subject: String,
    echo: async_nats::Subscriber,
    delivery: Delivery,
    flush_timeout: Duration,
    stats: TransportStats,
}

/// How long the first flush of a core subject waits, after the echo, for the server's error
/// reports to reach the event callback.
const ERROR_REPORT_GRACE: Duration = Duration::from_millis(2);

/// Subjects whose route is remembered at once.
const MAX_CACHED_ROUTES: usize = 10_000;

fn connection_error(message: impl std::fmt::Display) -> TransportError {
    TransportError::Connection(message.to_string())
}

/// `servers` for a message: the first few, then how many more, so that a list of 1,000
/// entries does not make a 16 KB error.
pub fn list_servers(servers: &[String]) -> String {
    const SHOWN: usize = 3;
    let shown = redact(&servers[..servers.len().min(SHOWN)].join(","));
    match servers.len().saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// The wait before connection attempt `attempts` (from 1) when `servers` entries are tried in
/// turn: none during the first pass, so every entry gets its turn within the connect timeout,
/// then doubling per pass up to 4 s, as async-nats does per attempt.
fn reconnect_delay(attempts: usize, servers: usize) -> Duration {
    let pass = attempts.saturating_sub(1) / servers.max(1);
    if pass == 0 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(pass).unwrap_or(u32::MAX).min(12);
    Duration::from_millis(1u64 << exponent).min(Duration::from_secs(4))
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

/// The wait before resend number `attempt` (1 for the first): doubled each time up to the
/// maximum, then drawn from its upper half so that many sinks do not resend in step.
pub fn backoff(delivery: &Delivery, attempt: u32) -> Duration {
    let doubled = u64::from(delivery.initial_backoff_ms)
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
    let ceiling = doubled.min(delivery.max_backoff_ms.into());
    Duration::from_millis(ceiling / 2 + fastrand::u64(0..=ceiling - ceiling / 2))
}

/// The servers as async-nats takes them, without user info (which it would not use, and
/// might log), and the first entry's user info, which authenticates as in NATS URLs.
fn server_addrs(
    entries: &[String],
) -> Result<(Vec<ServerAddr>, Option<server_url::UserInfo>), TransportError> {
    let mut addrs = Vec::with_capacity(entries.len());
    let mut credentials = None;
    for (i, text) in entries.iter().enumerate() {
        let bad = |why: String| connection_error(format!("server entry {}: {why}", i + 1));
        let entry = match server_url::parse(text)
            .map_err(|e| bad(e.to_string()))?
            .as_slice()
        {
            [entry] => entry.clone(),
            _ => return Err(bad("not one `host:port` entry".into())),
        };
        if credentials.is_none() {
            credentials = entry.credentials();
        }
        let addr = format!("nats://{}", entry.address());
        addrs.push(addr.parse::<ServerAddr>().map_err(|e| bad(e.to_string()))?);
    }
    Ok((addrs, credentials))
}

/// Options that authenticate with a URL's user info: `user:password@` or `token@`.
fn url_auth(credentials: Option<server_url::UserInfo>) -> ConnectOptions {
    match credentials {
        None => ConnectOptions::new(),
        Some(server_url::UserInfo::UserPassword(user, password)) => {
            ConnectOptions::new().user_and_password(user, password)
        }
        Some(server_url::UserInfo::Token(token)) => ConnectOptions::with_token(token),
    }
}

/// Every secret the connection sends: passwords, tokens, JWTs and seeds, from `auth` or
/// from the URL user info it authenticates with.
fn secrets_of(auth: &Auth, url_credentials: Option<&server_url::UserInfo>) -> Vec<String> {
    let mut secrets = match auth {
        Auth::UserPassword(up) => vec![up.password.clone()],
        Auth::Credential(cred) => vec![cred.jwt.clone(), cred.nkey_seed.clone()],
        Auth::Token(token) | Auth::Nkey(token) => vec![token.clone()],
        Auth::None | Auth::CredentialsFile(_) => Vec::new(),
    };
    match url_credentials {
        Some(server_url::UserInfo::UserPassword(_, password)) => secrets.push(password.clone()),
        Some(server_url::UserInfo::Token(token)) => secrets.push(token.clone()),
        None => {}
    }
    secrets
}

/// `text` with every secret of three characters or more replaced by `***` (shorter ones would
/// mangle the message and are no secret worth the name).
fn masked(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| secret.len() >= 3)
        .fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

/// `error` with any text the far end sent cut short and escaped: a server that is not a
/// NATS server (say an SSH daemon) is named as such, not quoted at length.
fn far_end_safe(error: &str) -> String {
    const SERVER_SAID: &str = "invalid server operation";
    match error.find(SERVER_SAID) {
        None => error.to_string(),
        Some(at) => {
            let said = error[at + SERVER_SAID.len()..].trim_start_matches([':', ' ']);
            let excerpt: String = said
                .chars()
                .take(16)
                .collect::<String>()
                .escape_debug()
                .to_string();
            format!("the server did not speak NATS (it began with `{excerpt}`…)")
        }
    }
}

/// What a TLS failure means for the options, where rustls's words leave it unclear.
fn tls_hint(error: &str, tls_required: bool) -> &'static str {
    if error.contains("UnknownIssuer") {
        " (the server's certificate is not signed by the CA in `tls.ca` nor by a system root)"
    } else if tls_required && error.contains("InvalidContentType") {
        // rustls reads a plain-text server's INFO line as a corrupt record.
        " (TLS is required, but the server answered in plain text: is TLS enabled on it?)"
    } else {
        ""
    }
}

/// Require TLS, trusting `tls`'s CA besides the system's roots and presenting its client
/// certificate. Each file is checked here so a wrong path names its option.
fn with_tls(options: ConnectOptions, tls: Tls) -> Result<ConnectOptions, TransportError> {
    let readable = |option: &str, path: &str| {
        crate::preflight::tls_file(option, path)
            .map(|()| std::path::PathBuf::from(path))
            .map_err(|why| connection_error(format!("option `{option}`: {why}")))
    };
    let mut options = options.require_tls(true);
    if let Some(ca) = &tls.ca_file {
        options = options.add_root_certificates(readable("tls.ca", ca)?);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        options =
            options.add_client_certificate(readable("tls.cert", cert)?, readable("tls.key", key)?);
    }
    Ok(options)
}

impl NatsConnection {
    pub async fn connect(config: ConnectConfig) -> Result<NatsConnection, TransportError> {
        let connect_timeout = millis(config.connect_timeout_ms);
        let delivery = config.delivery;
        let ack_timeout = millis(delivery.ack_timeout_ms);
        let (servers, url_credentials) = server_addrs(&config.servers)?;
        let secrets = secrets_of(&config.auth, url_credentials.as_ref());

        let options = match config.auth {
            Auth::None => url_auth(url_credentials),
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
            Auth::Token(token) => ConnectOptions::with_token(token),
            Auth::Nkey(seed) => {
                nkeys::KeyPair::from_seed(&seed)
                    .map_err(|_| connection_error("option `nkey` is not a valid NKey seed"))?;
                ConnectOptions::with_nkey(seed)
            }
            Auth::CredentialsFile(path) => crate::preflight::credentials_file(&path)
                .map_err(|why| connection_error(format!("option `credentials_file`: {why}")))?,
        };
        let tls_required = config.tls.is_some();
        let options = match config.tls {
            None => options,
            Some(tls) => with_tls(options, tls)?,
        };
        let events = Arc::new(EventLog::new());
        let sink_events = events.clone();
        // async-nats reconnects on its own, to the given servers and those the cluster
        // advertises, without a limit; the delivery budget decides how long a flush waits.
        // Each entry gets a share of the connect timeout, so that unreachable entries before
        // a live one cannot use it all up.
        let entries = config.servers.len().max(1);
        let per_entry = (connect_timeout / entries as u32).max(Duration::from_millis(50));
        let options = options
            .name("nats-sink")
            .connection_timeout(per_entry.min(connect_timeout))
            .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, entries))
            .request_timeout(Some(ack_timeout))
            .event_callback(move |event| {
                let events = sink_events.clone();
                async move { events.record(event) }
            });

        let servers_text = list_servers(&config.servers);
        let client = match tokio::time::timeout(connect_timeout, options.connect(servers)).await {
            Err(_) => {
                return Err(TransportError::Timeout(format!(
                    "could not connect to {servers_text} within {} ms",
                    connect_timeout.as_millis()
                )))
            }
            Ok(Err(e)) => {
                // A hostile far end can echo our CONNECT line, credentials and all, in its error.
                let reason = masked(&far_end_safe(&e.to_string()), &secrets);
                let hint = tls_hint(&reason, tls_required);
                return Err(connection_error(format!(
                    "could not connect to {servers_text}: {reason}{hint}"
                )));
            }
            Ok(Ok(client)) => client,
        };
        let jetstream = async_nats::jetstream::ContextBuilder::new()
            .timeout(ack_timeout)
            // Our own bound is `max-in-flight`; this one only guards against a leak.
            .max_ack_inflight(delivery.max_in_flight as usize + 1)
            .backpressure_on_inflight(true)
            .build(client.clone());
        // Before anything is published, so that the first message already has its stream.
        if let Some(request) = &config.create_stream {
            crate::stream::ensure(&jetstream, request).await?;
        }
        let echo_subject = client.new_inbox();
        let echo = client
            .subscribe(echo_subject.clone())
            .await
            .map_err(|e| connection_error(format!("subscribing to the flush inbox: {e}")))?;
        Ok(NatsConnection {
            client,
            jetstream,
            subjects: HashMap::new(),
            uncleared: Vec::new(),
            in_flight: FuturesOrdered::new(),
            awaiting: VecDeque::new(),
            drops_seen: 0,
            resend: VecDeque::new(),
            episode: None,
            unconfirmed_core: 0,
            events,
            echo_subject,
            echo,
            delivery,
            flush_timeout: millis(config.flush_timeout_ms),
            stats: TransportStats::default(),
        })
    }

    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    /// The largest message the server now connected to takes (payload and headers).
    pub fn max_payload(&self) -> u64 {
        self.client.server_info().max_payload as u64
    }

    /// The client, for callers that need more of the server than publishing (health checks).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.jetstream
    }

    /// Return once the server reports an error that `matches`, removing it.
    pub(crate) async fn server_error(&self, matches: impl Fn(&str) -> bool) -> String {
        self.events.server_error(matches).await
    }

    /// Where messages on `subject` go, asked of JetStream once per subject.
    pub async fn route(&mut self, subject: &str) -> Result<Route, TransportError> {
        if let Some(known) = self.subjects.get(subject) {
            return Ok(known.route.clone());
        }
        let lookup = self.jetstream.stream_by_subject(subject);
        // A user who may not publish to the JetStream API gets no reply, only a permission
        // error from the server: watch for it rather than wait out the request timeout.
        let denied = self
            .events
            .server_error(|e| e.contains("Permissions Violation") && e.contains("$JS.API"));
        let found = tokio::select! {
            found = lookup => found,
            _ = denied => {
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
        // Subjects filled from rows can be many; a full cache starts over rather than grow.
        if self.subjects.len() >= MAX_CACHED_ROUTES {
            self.subjects.clear();
        }
        let known = KnownSubject {
            route: route.clone(),
            clearance: Clearance::Unseen,
        };
        self.subjects.insert(subject.to_string(), known);
        Ok(route)
    }

    pub async fn publish(&mut self, batch: Batch) -> Result<(), TransportError> {
        let result = self.publish_all(batch).await;
        if result.is_err() {
            self.forget_unconfirmed();
        }
        result
    }

    async fn publish_all(&mut self, batch: Batch) -> Result<(), TransportError> {
        for outgoing in Outgoing::unpack(batch)? {
            let size = outgoing.payload.len() as u64;
            let subject = outgoing.subject.as_str();
            let is_jetstream = |route: &Route| matches!(route, Route::JetStream { .. });
            let (jetstream, clearance) = match self.subjects.get(subject) {
                Some(known) => (is_jetstream(&known.route), known.clearance),
                None => (is_jetstream(&self.route(subject).await?), Clearance::Unseen),
            };
            if jetstream {
                self.publish_jetstream(outgoing).await?;
            } else {
                if clearance == Clearance::Unseen {
                    self.list_for_clearance(subject.to_string());
                }
                self.publish_core(outgoing).await?;
            }
            self.stats.messages += 1;
            self.stats.payload_bytes += size;
        }
        Ok(())
    }

    /// Note a core subject whose next flush must wait for the server's error reports.
    fn list_for_clearance(&mut self, subject: String) {
        if let Some(known) = self.subjects.get_mut(&subject) {
            known.clearance = Clearance::Listed;
        }
        self.uncleared.push(subject);
    }

    /// Move the subjects listed since the last flush to `to`: `Cleared` once a flush saw no
    /// error for them, `Unseen` when it failed.
    fn settle_clearance(&mut self, to: Clearance) {
        for subject in self.uncleared.drain(..) {
            if let Some(known) = self.subjects.get_mut(&subject) {
                known.clearance = to;
            }
        }
    }

    async fn publish_jetstream(&mut self, message: Outgoing) -> Result<(), TransportError> {
        // Backpressure: the oldest ack first, so memory stays bounded.
        while self.in_flight.len() >= self.delivery.max_in_flight as usize {
            self.settle_oldest().await?;
        }
        match self.send_jetstream(message).await {
            Ok(()) => Ok(()),
            Err((SendFailure::Fatal(e), _)) => Err(e),
            Err((SendFailure::Retry(cause), message)) => {
                self.note_failure(cause);
                self.resend.push_back(message);
                self.recover().await
            }
        }
    }

    async fn publish_core(&mut self, message: Outgoing) -> Result<(), TransportError> {
        let wait = millis(self.delivery.ack_timeout_ms);
        let size = message.payload.len();
        let subject = message.subject.clone();
        let sent = match message.headers {
            Some(h) => {
                tokio::time::timeout(
                    wait,
                    self.client
                        .publish_with_headers(message.subject, h, message.payload),
                )
                .await
            }
            None => {
                tokio::time::timeout(wait, self.client.publish(message.subject, message.payload))
                    .await
            }
        };
        match sent {
            // The client buffers while it reconnects; a full buffer means the server is gone.
            Err(_) => Err(TransportError::Timeout(format!(
                "could not hand a message on `{subject}` to the connection within ack_timeout_ms ({} ms): the server is unreachable",
                wait.as_millis()
            ))),
            Ok(Err(e)) => Err(TransportError::Publish(format!("{e} ({size} bytes)"))),
            Ok(Ok(())) => {
                self.unconfirmed_core += 1;
                Ok(())
            }
        }
    }

    /// Send one JetStream message and queue its ack; on failure, hand the message back.
    async fn send_jetstream(&mut self, message: Outgoing) -> Result<(), (SendFailure, Outgoing)> {
        let wait = millis(self.delivery.ack_timeout_ms);
        let (subject, payload) = (message.subject.clone(), message.payload.clone());
        let sent = match &message.headers {
            Some(h) => {
                tokio::time::timeout(
                    wait,
                    self.jetstream
                        .publish_with_headers(subject, h.clone(), payload),
                )
                .await
            }
            None => tokio::time::timeout(wait, self.jetstream.publish(subject, payload)).await,
        };
        match sent {
            Err(_) => Err((
                SendFailure::Retry(format!(
                    "the connection took no message for {} ms (it is down or reconnecting)",
                    wait.as_millis()
                )),
                message,
            )),
            Ok(Err(e)) => Err((self.classify(&message.subject, e), message)),
            Ok(Ok(ack)) => {
                self.in_flight
                    .push_back(std::future::IntoFuture::into_future(ack));
                self.awaiting.push_back(message);
                Ok(())
            }
        }
    }

    /// Whether a JetStream send or ack failure can pass.
    fn classify(&self, subject: &str, error: PublishError) -> SendFailure {
        let refused = |e: &PublishError| {
            SendFailure::Fatal(TransportError::Publish(format!(
                "JetStream refused a message on `{subject}`: {e}"
            )))
        };
        match error.kind() {
            PublishErrorKind::TimedOut => {
                // A user without permission gets no ack, only the server's error.
                let denied = self.events.take_server_error(|e| {
                    e.contains("Permissions Violation") && e.contains(&format!("\"{subject}\""))
                });
                match denied {
                    Some(e) => SendFailure::Fatal(TransportError::Publish(format!(
                        "the server refused a message on `{subject}`: {e}"
                    ))),
                    None => SendFailure::Retry(format!(
                        "no ack within ack_timeout_ms ({} ms)",
                        self.delivery.ack_timeout_ms
                    )),
                }
            }
            PublishErrorKind::BrokenPipe => {
                SendFailure::Retry("the connection closed before the ack arrived".into())
            }
            PublishErrorKind::StreamNotFound => SendFailure::Retry(
                "no stream answered (a stream leader election, or a server restarting)".into(),
            ),
            PublishErrorKind::MaxAckPending => {
                SendFailure::Retry("too many acks outstanding".into())
            }
            PublishErrorKind::Other if is_transient(&error) => {
                SendFailure::Retry(format!("JetStream is unavailable for a moment: {error}"))
            }
            _ => refused(&error),
        }
    }

    fn note_failure(&mut self, cause: String) {
        tracing::trace!(%cause, "delivery failure that can pass");
        self.episode
            .get_or_insert_with(|| Episode {
                started: Instant::now(),
                attempts: 1,
                cause: String::new(),
            })
            .cause = cause;
    }

    /// The outcome of one ack: a message to send again is queued, not an error.
    fn on_ack(
        &mut self,
        message: Outgoing,
        result: Result<PublishAck, PublishError>,
    ) -> Result<(), TransportError> {
        let Err(error) = result else {
            return Ok(());
        };
        match self.classify(&message.subject, error) {
            SendFailure::Fatal(e) => Err(e),
            SendFailure::Retry(cause) => {
                self.note_failure(cause);
                self.resend.push_back(message);
                Ok(())
            }
        }
    }

    /// Take in the oldest ack; or, once the connection has dropped, queue every message still
    /// awaiting one for a resend, since replies to the old connection never arrive (a stream
    /// drops the copies it already holds by their message id).
    async fn take_next_ack(&mut self) -> Result<(), TransportError> {
        let seen = self.drops_seen;
        let events = self.events.clone();
        let dropped = events.wait_for(|log| (log.drops() > seen).then_some(()));
        let next = tokio::select! {
            // Acks that already arrived count before a drop that came after them.
            biased;
            next = self.in_flight.next() => next,
            () = dropped => {
                self.drops_seen = self.events.drops();
                self.note_failure("the connection dropped while acks were awaited".into());
                self.in_flight = FuturesOrdered::new();
                self.resend.extend(self.awaiting.drain(..));
                return Ok(());
            }
        };
        match (next, self.awaiting.pop_front()) {
            (Some(result), Some(message)) => self.on_ack(message, result),
            _ => Ok(()),
        }
    }

    /// Wait for the oldest ack; a failure that can pass starts recovery.
    async fn settle_oldest(&mut self) -> Result<(), TransportError> {
        self.take_next_ack().await?;
        if self.resend.is_empty() {
            Ok(())
        } else {
            self.recover().await
        }
    }

    /// Send again every message whose send or ack failed, after a backoff and once the client
    /// is connected, until every message is acked or the budget is spent.
    async fn recover(&mut self) -> Result<(), TransportError> {
        loop {
            // The acks still outstanding say which other messages need another send.
            while !self.in_flight.is_empty() {
                self.take_next_ack().await?;
            }
            if self.resend.is_empty() {
                if let Some(episode) = self.episode.take() {
                    tracing::info!(
                        cause = %episode.cause,
                        attempts = episode.attempts,
                        elapsed_ms = episode.started.elapsed().as_millis() as u64,
                        "delivery recovered"
                    );
                }
                return Ok(());
            }
            let (attempts, elapsed) = match &self.episode {
                Some(e) => (e.attempts, e.started.elapsed()),
                None => (1, Duration::ZERO),
            };
            let budget = millis(self.delivery.max_elapsed_ms);
            if attempts >= self.delivery.max_attempts || elapsed >= budget {
                return Err(self.give_up());
            }
            let remaining = budget - elapsed;
            tokio::time::sleep(backoff(&self.delivery, attempts).min(remaining)).await;
            // Sending into a connection that is down would only fill the client's buffer.
            let remaining = budget.saturating_sub(self.episode_elapsed());
            if tokio::time::timeout(remaining, self.events.connected())
                .await
                .is_err()
            {
                return Err(self.give_up());
            }
            if let Some(episode) = &mut self.episode {
                episode.attempts += 1;
            }
            let mut queue = std::mem::take(&mut self.resend).into_iter();
            tracing::debug!(messages = queue.len(), attempt = attempts + 1, cause = %self.episode.as_ref().map_or("", |e| e.cause.as_str()), "resending");
            while let Some(message) = queue.next() {
                self.stats.resent += 1;
                match self.send_jetstream(message).await {
                    Ok(()) => {}
                    Err((SendFailure::Fatal(e), _)) => return Err(e),
                    Err((SendFailure::Retry(cause), message)) => {
                        self.note_failure(cause);
                        self.resend.push_back(message);
                        self.resend.extend(queue);
                        break;
                    }
                }
            }
        }
    }

    fn episode_elapsed(&self) -> Duration {
        self.episode
            .as_ref()
            .map_or(Duration::ZERO, |e| e.started.elapsed())
    }

    /// The error once the budget is spent, naming what was tried and why it failed.
    fn give_up(&mut self) -> TransportError {
        let unconfirmed = self.resend.len() + self.in_flight.len();
        let (attempts, elapsed, cause) = match self.episode.take() {
            Some(e) => (e.attempts, e.started.elapsed(), e.cause),
            None => (0, Duration::ZERO, String::from("unknown")),
        };
        let message = format!(
            "gave up on {unconfirmed} unconfirmed JetStream message(s) after {attempts} send(s) over {} ms (retry budget: {} sends, {} ms); last failure: {cause}",
            elapsed.as_millis(),
            self.delivery.max_attempts,
            self.delivery.max_elapsed_ms,
        );
        self.forget_unconfirmed();
        if self.events.is_connected() {
            TransportError::Timeout(message)
        } else {
            connection_error(format!("the server stayed unreachable: {message}"))
        }
    }

    /// After an error, nothing since the last flush counts as confirmed; the caller replays.
    fn forget_unconfirmed(&mut self) {
        self.in_flight = FuturesOrdered::new();
        self.awaiting.clear();
        self.resend.clear();
        self.episode = None;
        self.unconfirmed_core = 0;
        self.settle_clearance(Clearance::Unseen);
    }

    /// Confirm everything since the last flush: all JetStream acks (resending what can be),
    /// then a round trip for core messages, then no server error or disconnect in between.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        let limit = self.flush_timeout;
        let result = match tokio::time::timeout(limit, self.confirm_all()).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(format!(
                "the flush did not finish within flush_timeout_ms ({} ms); {} JetStream message(s) unconfirmed",
                limit.as_millis(),
                self.in_flight.len() + self.resend.len()
            ))),
        };
        match result {
            Ok(()) => self.stats.flushes += 1,
            Err(_) => self.forget_unconfirmed(),
        }
        result
    }

    async fn confirm_all(&mut self) -> Result<(), TransportError> {
        while !self.in_flight.is_empty() || !self.resend.is_empty() {
            self.settle_oldest().await?;
        }
        let result = self.confirm_core().await;
        self.unconfirmed_core = 0;
        result
    }

    async fn confirm_core(&mut self) -> Result<(), TransportError> {
        if self.unconfirmed_core > 0 {
            let wait = millis(self.delivery.ack_timeout_ms);
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
                let refused = events.server_error(|e| e.contains(&echo_subject));
                tokio::select! {
                    received = echo.next() => received.map(|_| ()).ok_or_else(|| connection_error("flush: the connection closed")),
                    _ = refused => Ok(()),
                }
            };
            match tokio::time::timeout(wait, round_trip).await {
                Err(_) => {
                    return Err(TransportError::Timeout(format!(
                    "the server did not confirm {} core message(s) within ack_timeout_ms ({} ms)",
                    self.unconfirmed_core,
                    wait.as_millis()
                )))
                }
                Ok(result) => result?,
            }
            // The echo and the event callback travel separately; let the callback catch up
            // with errors the connection read before the echo. A subject new to this
            // connection gets a longer wait: that is when a refusal shows.
            for _ in 0..8 {
                tokio::task::yield_now().await;
            }
            if !self.uncleared.is_empty() {
                tokio::time::sleep(ERROR_REPORT_GRACE).await;
            }
        }
        let (errors, disconnects) = {
            let mut events = self.events.lock();
            let errors = std::mem::take(&mut events.server_errors);
            (errors, std::mem::take(&mut events.disconnects))
        };
        if disconnects > 0 {
            // A new connection may carry other permissions: every subject is cleared again.
            for known in self.subjects.values_mut() {
                known.clearance = Clearance::Unseen;
            }
        }
        if let Some(first) = errors.first() {
            return Err(TransportError::Publish(format!(
                "the server reported: {first}"
            )));
        }
        if disconnects > 0 && self.unconfirmed_core > 0 {
            return Err(connection_error(
                "the connection dropped since the last flush; core NATS messages sent before it may be lost (core NATS has no acks: replay them, or use a JetStream stream)",
            ));
        }
        self.settle_clearance(Clearance::Cleared);
        Ok(())
    }
}

/// The JetStream API error behind a publish failure, where the server sent one.
pub(crate) fn jetstream_error(error: &PublishError) -> Option<&async_nats::jetstream::Error> {
    std::error::Error::source(error)?.downcast_ref::<async_nats::jetstream::Error>()
}

/// True for JetStream errors that mean "not now" rather than "no": 503s and cluster states.
fn is_transient(error: &PublishError) -> bool {
    use async_nats::jetstream::ErrorCode;
    let Some(js) = jetstream_error(error) else {
        return false;
    };
    js.code() == 503
        || [
            ErrorCode::CLUSTER_NOT_AVAILABLE,
            ErrorCode::CLUSTER_NOT_LEADER,
            ErrorCode::CLUSTER_NOT_ACTIVE,
        ]
        .contains(&js.error_code())
}

/// True when JetStream is not enabled on the server: its API has no responders.
pub(crate) fn is_no_responders(e: &(dyn std::error::Error + 'static)) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::transport::{Header, Message};

    /// A batch of one message on `subject` with `headers`, laid out as a guest would.
    fn batch(subject: &str, pairs: &[(&str, &str)]) -> Batch {
        let mut data = subject.as_bytes().to_vec();
        let span = |data: &mut Vec<u8>, bytes: &[u8]| {
            let start = data.len() as u32;
            data.extend_from_slice(bytes);
            Span {
                start,
                len: bytes.len() as u32,
            }
        };
        let payload = span(&mut data, b"{}");
        let headers: Vec<Header> = pairs
            .iter()
            .enumerate()
            .map(|(i, (_, value))| Header {
                name: i as u32,
                value: span(&mut data, value.as_bytes()),
            })
            .collect();
        Batch {
            data,
            header_names: pairs.iter().map(|(name, _)| name.to_string()).collect(),
            messages: vec![Message {
                subject: Span {
                    start: 0,
                    len: subject.len() as u32,
                },
                payload,
                headers: Span {
                    start: 0,
                    len: headers.len() as u32,
                },
            }],
            headers,
        }
    }

    #[test]
    fn a_bad_batch_from_the_guest_is_an_error_not_a_panic() {
        let refused = |b: Batch| match Outgoing::unpack(b) {
            Err(TransportError::Publish(why)) => why,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        };
        assert!(refused(batch("", &[])).contains("subject \"\""));
        assert!(refused(batch("orders.*", &[])).contains("wildcard"));
        assert!(refused(batch("a b", &[])).contains("whitespace"));
        assert!(refused(batch("ok", &[("Bad:Name", "v")])).contains("header name"));
        assert!(refused(batch("ok", &[("", "v")])).contains("header name"));
        assert!(refused(batch("ok", &[("X-Id", "a\r\nPUB x 1")])).contains("line break"));
        let mut outside = batch("ok", &[]);
        outside.messages[0].payload.len = 1000;
        assert!(refused(outside).contains("payload span 2+1000 is outside the batch's 4 bytes"));
        let mut overflow = batch("ok", &[]);
        overflow.messages[0].subject = Span {
            start: u32::MAX,
            len: u32::MAX,
        };
        assert!(refused(overflow).contains("outside the batch"));
        let mut bad_index = batch("ok", &[("X-A", "v")]);
        bad_index.headers[0].name = 7;
        assert!(refused(bad_index).contains("header name index 7"));
        let mut bad_run = batch("ok", &[("X-A", "v")]);
        bad_run.messages[0].headers.start = 3;
        assert!(refused(bad_run).contains("header run outside the batch"));
        let mut not_utf8 = batch("ok", &[]);
        not_utf8.data[0] = 0xff;
        assert!(refused(not_utf8).contains("not UTF-8"));

        let fine = Outgoing::unpack(batch("orders.eu", &[("Nats-Msg-Id", "s:1:0")])).unwrap();
        assert_eq!(fine[0].subject.as_str(), "orders.eu");
        assert_eq!(&fine[0].payload[..], b"{}");
        assert_eq!(
            fine[0]
                .headers
                .as_ref()
                .unwrap()
                .get("Nats-Msg-Id")
                .map(|v| v.as_str()),
            Some("s:1:0")
        );
    }

    fn delivery(initial: u32, max: u32) -> Delivery {
        Delivery {
            ack_timeout_ms: 1000,
            max_in_flight: 16,
            max_attempts: 10,
            max_elapsed_ms: 60_000,
            initial_backoff_ms: initial,
            max_backoff_ms: max,
        }
    }

    fn any_span() -> impl proptest::strategy::Strategy<Value = Span> {
        use proptest::prelude::*;
        prop_oneof![
            (0u32..48, 0u32..48).prop_map(|(start, len)| Span { start, len }),
            (any::<u32>(), any::<u32>()).prop_map(|(start, len)| Span { start, len }),
        ]
    }

    proptest::proptest! {
        /// The host's checks of a guest's batch: any batch is messages or a refusal.
        #[test]
        fn any_batch_from_the_guest_is_messages_or_a_refusal(
            data in proptest::prop_oneof![
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..48),
                proptest::strategy::Strategy::prop_map("[a-z.*> \r\n:é]{0,48}", String::into_bytes),
            ],
            header_names in proptest::collection::vec("[A-Za-z: é-]{0,6}", 0..3),
            headers in proptest::collection::vec((0u32..4, any_span()), 0..4),
            messages in proptest::collection::vec((any_span(), any_span(), any_span()), 0..4),
        ) {
            use proptest::prelude::*;
            let batch = Batch {
                data,
                header_names,
                headers: headers
                    .into_iter()
                    .map(|(name, value)| Header { name, value })
                    .collect(),
                messages: messages
                    .into_iter()
                    .map(|(subject, payload, headers)| Message { subject, payload, headers })
                    .collect(),
            };
            let count = batch.messages.len();
            match Outgoing::unpack(batch) {
                Ok(out) => prop_assert_eq!(out.len(), count),
                Err(TransportError::Publish(why)) => {
                    prop_assert!(why.starts_with("the sink produced an invalid message"))
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }

    /// Issue 16: 30 dead entries before a live one never connected; 1,000 made a 16 KB error.
    #[test]
    fn every_entry_is_tried_before_any_backoff_and_lists_are_short() {
        for attempt in 1..=30 {
            assert_eq!(reconnect_delay(attempt, 30), Duration::ZERO);
        }
        assert_eq!(reconnect_delay(31, 30), Duration::from_millis(2));
        assert_eq!(reconnect_delay(61, 30), Duration::from_millis(4));
        assert_eq!(reconnect_delay(usize::MAX, 30), Duration::from_secs(4));
        assert_eq!(reconnect_delay(2, 1), Duration::from_millis(2));
        let servers: Vec<String> = (0..1000).map(|i| format!("127.0.0.1:{i}")).collect();
        assert_eq!(
            list_servers(&servers),
            "127.0.0.1:0,127.0.0.1:1,127.0.0.1:2 and 997 more"
        );
        assert_eq!(list_servers(&servers[..2]), "127.0.0.1:0,127.0.0.1:1");
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let d = delivery(100, 2_000);
        for _ in 0..200 {
            for (attempt, ceiling) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (5, 1_600),
                (6, 2_000),
                (40, 2_000),
            ] {
                let wait = backoff(&d, attempt).as_millis() as u64;
                assert!(
                    (ceiling / 2..=ceiling).contains(&wait),
                    "attempt {attempt}: {wait} ms outside {}..={ceiling}",
                    ceiling / 2
                );
            }
        }
        // Jitter: not every wait is the same.
        let waits: std::collections::HashSet<_> = (0..50).map(|_| backoff(&d, 4)).collect();
        assert!(waits.len() > 1);
        // The smallest settings still give a wait, never a panic or an overflow.
        assert!(backoff(&delivery(1, 1), u32::MAX) <= Duration::from_millis(1));
        assert!(backoff(&delivery(60_000, 600_000), u32::MAX) <= Duration::from_secs(600));
    }
}
