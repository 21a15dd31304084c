//! Sinks with the same connect config share one NATS connection when the runtime's connector
//! is `NatsConnector::shared()` (issue 21; opt-in), against a real
//! `nats-server` whose monitoring endpoint counts the connections: each sink still delivers
//! all its rows in order, one sink's refusal fails it alone, and the last sink to close closes
//! the connection.

use std::time::Duration;

use nats_sink::wit::{Auth, ConnectConfig, Delivery};
use nats_sink::{Column, Datum, HostError, NatsConnector, Sink, SinkRuntime};
use nats_sink_tests::*;

const WAIT: Duration = Duration::from_secs(10);

/// A server with monitoring, and a user who may publish anywhere but `shared.denied` and
/// `shared.refused`.
fn server() -> (NatsServer, u16) {
    server_with("")
}

/// `server`, with `extra` config (JetStream).
fn server_with(extra: &str) -> (NatsServer, u16) {
    let monitor = free_port();
    let server = NatsServer::with_config(&format!(
        "{extra}\n\
         http: \"127.0.0.1:{monitor}\"\n\
         authorization {{ users = [\n\
           {{ user: admin, password: admin-pw }}\n\
           {{ user: sinker, password: sinker-pw, permissions: {{ publish: {{ deny: [\"shared.denied\", \"shared.refused\"] }} }} }}\n\
         ] }}"
    ));
    // The start-up readiness probe's connection can linger a moment: counts start from none.
    let deadline = std::time::Instant::now() + WAIT;
    while connections(monitor) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, monitor)
}

/// Options for the `sinker` user; `extra` makes a config differ.
fn sinker(server: &NatsServer, subject: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let url = server.url();
    let mut pairs = vec![
        ("server_url", url.as_str()),
        ("subject", subject),
        ("connect_mode", "user_and_password"),
        ("username", "sinker"),
        ("password", "sinker-pw"),
    ];
    pairs.extend_from_slice(extra);
    options(&pairs)
}

async fn admin(server: &NatsServer) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .user_and_password("admin".into(), "admin-pw".into())
        .connect(server.url())
        .await
        .unwrap()
}

fn schema() -> Vec<Column> {
    columns(&[("sink", "integer"), ("seq", "integer")])
}

fn rows(sink: i32, from: i32, count: i32) -> nats_sink::Rows {
    let rows: Vec<Vec<Datum>> = (from..from + count)
        .map(|seq| vec![Datum::Integer(sink), Datum::Integer(seq)])
        .collect();
    pack(&rows)
}

/// A runtime whose sinks share clients (sharing is opt-in).
fn sharing_runtime() -> SinkRuntime {
    SinkRuntime::load(component_path())
        .unwrap()
        .with_connector(std::sync::Arc::new(NatsConnector::shared()))
}

/// Client connections the server counts now.
fn connections(monitor: u16) -> u64 {
    let body = http_get(monitor, "/connz?limit=1").expect("the monitoring endpoint answers");
    serde_json::from_str::<serde_json::Value>(&body).unwrap()["total"]
        .as_u64()
        .expect("connz total")
}

/// The server's client connection ids now, in order: a connection closed and made again
/// gets a new id.
fn connection_ids(monitor: u16) -> Vec<u64> {
    let body = http_get(monitor, "/connz?limit=1024").expect("the monitoring endpoint answers");
    let connz: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut ids: Vec<u64> = connz["connections"]
        .as_array()
        .expect("connz connections")
        .iter()
        .map(|c| c["cid"].as_u64().expect("a connection id"))
        .collect();
    ids.sort_unstable();
    ids
}

/// Wait (bounded) until the server counts `want` connections; the count it last saw.
async fn settle_connections(monitor: u16, want: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = connections(monitor);
        if now == want || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each sink's `(sink, seq)` pairs from the received messages, in arrival order.
fn by_sink(messages: &[async_nats::Message], sinks: usize) -> Vec<Vec<i64>> {
    let mut seen = vec![Vec::new(); sinks];
    for message in messages {
        let row: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let sink = row["sink"].as_i64().unwrap() as usize;
        seen[sink].push(row["seq"].as_i64().unwrap());
    }
    seen
}

async fn write_and_flush(sink: &mut Sink, id: i32, from: i32, count: i32) -> Result<(), HostError> {
    sink.write(&rows(id, from, count)).await?;
    sink.flush().await
}

#[tokio::test(flavor = "multi_thread")]
async fn sinks_of_one_config_share_a_connection_and_each_delivers_in_order() {
    let (server, monitor) = server();
    let watcher = admin(&server).await;
    let mut arrivals = watcher.subscribe("shared.>").await.unwrap();
    watcher.flush().await.unwrap();
    let baseline = connections(monitor);

    const SINKS: usize = 12;
    const ROUNDS: i32 = 3;
    const PER_ROUND: i32 = 50;
    let runtime = sharing_runtime();
    let mut sinks = Vec::new();
    for i in 0..SINKS {
        let subject = format!("shared.s{}", i % 4);
        // A clone of the runtime shares its connections too.
        let runtime = runtime.clone();
        sinks.push(
            runtime
                .open(&sinker(&server, &subject, &[]), &schema())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        settle_connections(monitor, baseline + 1).await,
        baseline + 1,
        "{SINKS} sinks of one config use one connection"
    );

    // All write at once, interleaving on the one connection.
    let tasks: Vec<_> = sinks
        .into_iter()
        .enumerate()
        .map(|(i, mut sink)| {
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    write_and_flush(&mut sink, i as i32, round * PER_ROUND, PER_ROUND)
                        .await
                        .unwrap();
                }
                sink
            })
        })
        .collect();
    let mut sinks = Vec::new();
    for task in tasks {
        sinks.push(task.await.unwrap());
    }
    let total = SINKS * (ROUNDS * PER_ROUND) as usize;
    let received = collect(&mut arrivals, total, WAIT).await;
    let expected: Vec<i64> = (0..(ROUNDS * PER_ROUND) as i64).collect();
    for (i, seqs) in by_sink(&received, SINKS).iter().enumerate() {
        assert_eq!(seqs, &expected, "sink {i}: every row, in order");
    }
    for (i, sink) in sinks.iter().enumerate() {
        let counted = sink.metrics().snapshot();
        assert_eq!(
            counted.rows,
            (ROUNDS * PER_ROUND) as u64,
            "sink {i}: its own rows"
        );
        assert_eq!(counted.flushes, ROUNDS as u64, "sink {i}: its own flushes");
    }

    // The connection stays while any sink holds it, and goes with the last.
    let shared = connection_ids(monitor);
    let mut last = sinks.pop().unwrap();
    for sink in sinks {
        sink.close().await.unwrap();
    }
    // The last sink still delivers, over the very connection they shared: not a new one.
    write_and_flush(&mut last, SINKS as i32 - 1, ROUNDS * PER_ROUND, 1)
        .await
        .unwrap();
    let delivered = collect(&mut arrivals, 1, WAIT).await;
    assert_eq!(delivered.len(), 1, "the last sink's row arrives");
    assert_eq!(
        connection_ids(monitor),
        shared,
        "one sink still open keeps the connection"
    );
    last.close().await.unwrap();
    assert_eq!(
        settle_connections(monitor, baseline).await,
        baseline,
        "closing the last sink closes the connection"
    );

    // A sink opened afterwards connects again.
    let mut again = runtime
        .open(&sinker(&server, "shared.s0", &[]), &schema())
        .await
        .unwrap();
    write_and_flush(&mut again, 0, 0, 5).await.unwrap();
    assert_eq!(
        settle_connections(monitor, baseline + 1).await,
        baseline + 1
    );
}

/// Sharing is opt-in: by default every sink has a connection of its own.
#[tokio::test(flavor = "multi_thread")]
async fn by_default_each_sink_has_its_own_connection() {
    let (server, monitor) = server();
    let baseline = connections(monitor);
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let mut sinks = Vec::new();
    for i in 0..3 {
        let mut sink = runtime
            .open(&sinker(&server, "shared.s0", &[]), &schema())
            .await
            .unwrap();
        write_and_flush(&mut sink, i, 0, 5).await.unwrap();
        sinks.push(sink);
    }
    assert_eq!(
        settle_connections(monitor, baseline + 3).await,
        baseline + 3,
        "3 sinks of one config, not sharing, use 3 connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_configs_use_two_connections() {
    let (server, monitor) = server();
    let baseline = connections(monitor);
    let runtime = sharing_runtime();
    let mut sinks = Vec::new();
    for i in 0..6 {
        // Any field of the config makes another connection: here the ack timeout.
        let timeout = if i % 2 == 0 { "5000" } else { "6000" };
        let opts = sinker(&server, "shared.two", &[("ack_timeout_ms", timeout)]);
        sinks.push(runtime.open(&opts, &schema()).await.unwrap());
    }
    assert_eq!(
        settle_connections(monitor, baseline + 2).await,
        baseline + 2
    );
    for (i, sink) in sinks.iter_mut().enumerate() {
        write_and_flush(sink, i as i32, 0, 10).await.unwrap();
    }
    // Different credentials are a different config as well.
    let admin_opts = options(&[
        ("server_url", &server.url()),
        ("subject", "shared.two"),
        ("connect_mode", "user_and_password"),
        ("username", "admin"),
        ("password", "admin-pw"),
    ]);
    let admin_sink = runtime.open(&admin_opts, &schema()).await.unwrap();
    assert_eq!(
        settle_connections(monitor, baseline + 3).await,
        baseline + 3
    );
    drop(admin_sink);
    assert_eq!(
        settle_connections(monitor, baseline + 2).await,
        baseline + 2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_sink_fails_alone_and_its_neighbour_keeps_delivering() {
    let (server, monitor) = server();
    refused_alone(server, monitor).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_jetstream_a_refused_sink_fails_alone_and_its_neighbour_keeps_delivering() {
    let (server, monitor) = server_with("jetstream { store_dir: \"{dir}/js\" }");
    async_nats::jetstream::new(admin(&server).await)
        .create_stream(NatsServer::stream_config("SHARED", &["shared.>"]))
        .await
        .unwrap();
    refused_alone(server, monitor).await;
}

/// Two sinks on one connection, one denied its subject: it fails, the other delivers.
async fn refused_alone(server: NatsServer, monitor: u16) {
    let watcher = admin(&server).await;
    let mut allowed = watcher.subscribe("shared.ok").await.unwrap();
    watcher.flush().await.unwrap();
    let baseline = connections(monitor);

    let runtime = sharing_runtime();
    // A short ack timeout: on JetStream a refusal shows as an ack that never comes.
    let extra = [("ack_timeout_ms", "1000")];
    let mut refused = runtime
        .open(&sinker(&server, "shared.denied", &extra), &schema())
        .await
        .unwrap();
    let mut neighbour = runtime
        .open(&sinker(&server, "shared.ok", &extra), &schema())
        .await
        .unwrap();
    assert_eq!(
        settle_connections(monitor, baseline + 1).await,
        baseline + 1
    );

    // Both write before either flushes, so the refusals arrive while the neighbour's rows
    // are unconfirmed on the same connection.
    refused.write(&rows(0, 0, 20)).await.unwrap();
    neighbour.write(&rows(1, 0, 20)).await.unwrap();
    let error = refused
        .flush()
        .await
        .expect_err("publishing to a denied subject fails");
    let said = error.to_string();
    assert!(said.contains("Permissions Violation"), "{said}");
    assert!(said.contains("shared.denied"), "{said}");
    neighbour
        .flush()
        .await
        .expect("the neighbour's rows are confirmed");
    // The refused sink keeps failing; the neighbour keeps delivering on the same connection.
    for round in 1..4 {
        let again = write_and_flush(&mut refused, 0, round * 20, 20).await;
        assert!(
            again.is_err(),
            "round {round}: the refused sink fails again"
        );
        write_and_flush(&mut neighbour, 1, round * 20, 20)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the neighbour failed: {e}"));
    }
    let received = collect(&mut allowed, 80, WAIT).await;
    let expected: Vec<i64> = (0..80).collect();
    assert_eq!(
        by_sink(&received, 2)[1],
        expected,
        "every neighbour row, in order"
    );
    assert_eq!(connections(monitor), baseline + 1, "still one connection");
}

/// async-nats hands server errors to its event callback through 128 slots and drops what does
/// not fit: a neighbour's flood of refusals on the shared connection can drop this sink's own
/// refusal. Its flush must fail all the same, never confirm the refused row; and every sink on
/// the connection that published to a subject not yet cleared fails a flush that saw more
/// reports go by than async-nats surely passes on.
// One worker thread: the connection task reads a burst of refusals and queues them for the
// callback with no chance for the callback to run in between, as on a loaded machine.
#[tokio::test(flavor = "current_thread")]
async fn a_neighbours_flood_of_refusals_never_lets_a_refused_row_pass() {
    let (server, monitor) = server();
    let baseline = connections(monitor);
    let runtime = sharing_runtime();
    let extra = [("ack_timeout_ms", "5000")];
    for round in 0..5 {
        let mut flooder = runtime
            .open(&sinker(&server, "shared.denied", &extra), &schema())
            .await
            .unwrap();
        let mut victim = runtime
            .open(&sinker(&server, "shared.refused", &extra), &schema())
            .await
            .unwrap();
        let mut bystander = runtime
            .open(&sinker(&server, "shared.ok", &extra), &schema())
            .await
            .unwrap();
        // A sink whose subject a flush has cleared has no refusal to lose.
        let mut steady = runtime
            .open(&sinker(&server, "shared.steady", &extra), &schema())
            .await
            .unwrap();
        write_and_flush(&mut steady, 3, 0, 1).await.unwrap();
        assert_eq!(
            settle_connections(monitor, baseline + 1).await,
            baseline + 1,
            "round {round}: one shared connection"
        );
        // The victim's one refused row follows a thousand of the neighbour's refusals. The
        // flooder's own outcome is not the point (it fails at its flush).
        let _ = flooder.write(&rows(0, 0, 1000)).await;
        victim.write(&rows(1, 0, 1)).await.unwrap();
        bystander.write(&rows(2, 0, 1)).await.unwrap();
        steady.write(&rows(3, 1, 1)).await.unwrap();
        // Block the only worker: the server's refusals pile up unread, to be read in one
        // burst that overflows async-nats's 128-slot event queue (the flooder's, at least:
        // the victim's route lookup is a round trip, so its own refusal is seldom among the
        // dropped; the check stands whichever is dropped).
        std::thread::sleep(Duration::from_millis(300));
        let outcome = victim.flush().await;
        assert!(
            outcome.is_err(),
            "round {round}: the victim's refused row was confirmed"
        );
        // A sink that was not refused cannot tell either, once that many went by: the cost
        // of sharing with a sink that floods refusals.
        let said = bystander
            .flush()
            .await
            .expect_err("a flush amid a flood of dropped reports fails")
            .to_string();
        assert!(said.contains("cannot tell"), "round {round}: {said}");
        steady
            .flush()
            .await
            .unwrap_or_else(|e| panic!("round {round}: a cleared sink failed: {e}"));
        let _ = flooder.flush().await;
        drop((flooder, victim, bystander, steady));
        settle_connections(monitor, baseline).await;
    }
}

/// A user who may not use the JetStream API: each sink's route lookup is refused by the server
/// (no reply), and that refusal, matched by the exact API subject, goes to the sinks whose
/// lookups await it; both take the core path and deliver on the shared connection.
#[tokio::test(flavor = "multi_thread")]
async fn refused_route_lookups_reach_the_sinks_that_sent_them() {
    let monitor = free_port();
    let server = NatsServer::with_config(&format!(
        "jetstream {{ store_dir: \"{{dir}}/js\" }}\n\
         http: \"127.0.0.1:{monitor}\"\n\
         authorization {{ users = [\n\
           {{ user: admin, password: admin-pw }}\n\
           {{ user: sinker, password: sinker-pw, permissions: {{ publish: {{ deny: [\"$JS.API.>\"] }} }} }}\n\
         ] }}"
    ));
    let watcher = admin(&server).await;
    let mut arrivals = watcher.subscribe("shared.>").await.unwrap();
    watcher.flush().await.unwrap();

    let runtime = sharing_runtime();
    // Far longer than the test may take: a lookup that missed its refusal would wait it out.
    let extra = [("ack_timeout_ms", "30000")];
    let mut sinks = Vec::new();
    for i in 0..4 {
        let subject = format!("shared.js{i}");
        let opts = sinker(&server, &subject, &extra);
        sinks.push(runtime.open(&opts, &schema()).await.unwrap());
    }
    let started = std::time::Instant::now();
    // All at once, so that the lookups and their refusals overlap on the one connection.
    let batches: Vec<_> = (0..4).map(|i| rows(i, 0, 5)).collect();
    let writes = sinks
        .iter_mut()
        .zip(&batches)
        .map(|(sink, batch)| async move {
            sink.write(batch).await?;
            sink.flush().await
        });
    for (i, outcome) in futures::future::join_all(writes)
        .await
        .into_iter()
        .enumerate()
    {
        outcome.unwrap_or_else(|e| panic!("sink {i}: {e}"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the refused lookups ended at once, not at the request timeout"
    );
    let received = collect(&mut arrivals, 20, WAIT).await;
    let expected: Vec<i64> = (0..5).collect();
    for (i, seen) in by_sink(&received, 4).into_iter().enumerate() {
        assert_eq!(seen, expected, "sink {i}: every row, in order");
    }
}

fn connect_config(servers: Vec<String>, connect_timeout_ms: u32) -> ConnectConfig {
    ConnectConfig {
        servers,
        auth: Auth::UserPassword(nats_sink::wit::UserPassword {
            username: "sinker".into(),
            password: "sinker-pw".into(),
        }),
        tls: None,
        connect_timeout_ms,
        flush_timeout_ms: 5000,
        delivery: Delivery {
            ack_timeout_ms: 5000,
            max_in_flight: 16,
            max_attempts: 1,
            max_elapsed_ms: 5000,
            initial_backoff_ms: 1,
            max_backoff_ms: 1,
        },
        create_stream: None,
        kv: None,
    }
}

/// The last sink to let go of a client forgets its config too: the key holds the password.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_client_forgets_its_config() {
    use nats_sink::transport::{NatsConnection, SharedClients};
    let (server, _monitor) = server();
    let clients = SharedClients::default();
    let config = connect_config(vec![server.url()], 5000);
    let first = NatsConnection::connect_shared(&clients, config.clone())
        .await
        .unwrap();
    let second = NatsConnection::connect_shared(&clients, config)
        .await
        .unwrap();
    assert!(format!("{clients:?}").contains("configs: 1"), "{clients:?}");
    drop(first);
    assert!(format!("{clients:?}").contains("configs: 1"), "{clients:?}");
    drop(second);
    assert!(format!("{clients:?}").contains("configs: 0"), "{clients:?}");
}

/// A sink waiting for another with the same config to connect waits within its own connect
/// timeout: here the far end accepts and never speaks, so the first holds the slot throughout.
#[tokio::test(flavor = "multi_thread")]
async fn a_sink_queued_behind_a_hanging_connect_keeps_its_connect_timeout() {
    use nats_sink::transport::{NatsConnection, SharedClients};
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap().to_string();
    let clients = SharedClients::default();
    let slow = connect_config(vec![address.clone()], 3000);
    let quick = connect_config(vec![address], 3000);
    let first = tokio::spawn({
        let clients = clients.clone();
        async move { NatsConnection::connect_shared(&clients, slow).await.err() }
    });
    // The far end has the first's connection: the first is connecting, holding the slot.
    let held = tokio::task::spawn_blocking(move || {
        let accepted = silent.accept().map(|(stream, _)| stream);
        (silent, accepted)
    });
    let (silent, accepted) = tokio::time::timeout(WAIT, held)
        .await
        .expect("the first sink connects within 10 s")
        .unwrap();
    let _held_open = accepted.expect("accept the first's connection");
    let started = std::time::Instant::now();
    let queued = NatsConnection::connect_shared(&clients, quick).await;
    let waited = started.elapsed();
    assert!(queued.is_err(), "nothing to connect to");
    // The first's 3 s end ~2.8 s from here; the queued one's own 3 s end later, and its
    // timeout must not stack on the first's (6 s).
    assert!(waited < Duration::from_millis(4500), "waited {waited:?}");
    assert!(first.await.unwrap().is_some());
    drop(silent);
}
