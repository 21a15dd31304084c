//! Connecting: the server list, authentication (user info, tokens, NKeys, JWTs, .creds
//! files), TLS, reconnect pacing, and creating the stream a sink asks for.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{ConnectOptions, ServerAddr};
use futures::stream::FuturesOrdered;
use nats_sink_rules::server_url;

use super::events::EventLog;
use super::shared::{Listeners, SharedClient, SharedClients};
use super::wording::{connect_failure, connection_error, list_servers, secrets_of, tls_hint};
use super::{millis, NatsConnection, TransportStats};
use crate::bindings::transport::{Auth, ConnectConfig, Tls, TransportError};

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

impl SharedClient {
    /// Connect as `config` says (servers, authentication, TLS), within `connect_timeout` (its
    /// own, or what is left of it after waiting for another sink's connect).
    pub(super) async fn connect(
        config: &ConnectConfig,
        connect_timeout: Duration,
    ) -> Result<SharedClient, TransportError> {
        let ack_timeout = millis(config.delivery.ack_timeout_ms);
        let (servers, url_credentials) = server_addrs(&config.servers)?;
        let secrets = secrets_of(&config.auth, url_credentials.as_ref());

        let options = match config.auth.clone() {
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
        let options = match config.tls.clone() {
            None => options,
            Some(tls) => with_tls(options, tls)?,
        };
        let listeners = Arc::new(Listeners::default());
        let callback_listeners = listeners.clone();
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
                let listeners = callback_listeners.clone();
                async move { listeners.record(event) }
            });

        let servers_text = list_servers(&config.servers);
        let client = match tokio::time::timeout(connect_timeout, options.connect(servers)).await {
            Err(_) => {
                return Err(TransportError::timeout(format!(
                    "could not connect to {servers_text} within {} ms",
                    connect_timeout.as_millis()
                )))
            }
            Ok(Err(e)) => {
                // A hostile far end can echo our CONNECT line, credentials and all, in its error.
                let reason = connect_failure(&e, &secrets);
                let hint = tls_hint(&reason, tls_required);
                return Err(connection_error(format!(
                    "could not connect to {servers_text}: {reason}{hint}"
                )));
            }
            Ok(Ok(client)) => client,
        };
        Ok(SharedClient::new(client, listeners))
    }
}

impl NatsConnection {
    /// Connect as `config` says (servers, authentication, TLS) on a client of its own, and
    /// create the stream it asks for, within its connect timeout.
    pub async fn connect(config: ConnectConfig) -> Result<NatsConnection, TransportError> {
        let timeout = millis(config.connect_timeout_ms);
        let shared = Arc::new(SharedClient::connect(&config, timeout).await?);
        NatsConnection::over(shared, config).await
    }

    /// `connect`, on the client of `clients` that sinks with the same config share.
    pub async fn connect_shared(
        clients: &SharedClients,
        config: ConnectConfig,
    ) -> Result<NatsConnection, TransportError> {
        let shared = clients.client(&config).await?;
        NatsConnection::over(shared, config).await
    }

    /// A sink's connection over `shared`: its own JetStream context, flush inbox and event log.
    async fn over(
        shared: Arc<SharedClient>,
        config: ConnectConfig,
    ) -> Result<NatsConnection, TransportError> {
        let delivery = config.delivery;
        let ack_timeout = millis(delivery.ack_timeout_ms);
        let client = shared.client.clone();
        let events = Arc::new(EventLog::new());
        let echo_subject = client.new_inbox();
        // Claimed before anything is sent, so that no refusal of ours goes to a neighbour.
        events.own(&echo_subject);
        shared.listeners.join(&events);
        // Read after joining: a change from now on reaches the log as an event.
        events.set_connected(|| {
            client.connection_state() == async_nats::connection::State::Connected
        });
        let reports_seen = shared.listeners.reports();
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
        if let Some(bucket) = &config.kv {
            crate::kv::ensure(&jetstream, bucket).await?;
        }
        let echo = client
            .subscribe(echo_subject.clone())
            .await
            .map_err(|e| connection_error(format!("subscribing to the flush inbox: {e}")))?;
        Ok(NatsConnection {
            client,
            shared,
            reports_seen,
            jetstream,
            subjects: HashMap::new(),
            uncleared: Vec::new(),
            grace_due: false,
            in_flight: FuturesOrdered::new(),
            awaiting: VecDeque::new(),
            drops_seen: 0,
            resend: VecDeque::new(),
            episode: None,
            retries: super::retry::Retries::new(super::retry::Budget {
                max_attempts: delivery.max_attempts,
                max_elapsed: millis(delivery.max_elapsed_ms),
            }),
            unconfirmed_core: 0,
            since_flush: Default::default(),
            events,
            echo_subject,
            echo,
            delivery,
            flush_timeout: millis(config.flush_timeout_ms),
            stats: TransportStats::default(),
            unconfirmed_keys: config.kv.is_some().then(HashSet::new),
            kv_bucket: config.kv.map(|kv| kv.name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
