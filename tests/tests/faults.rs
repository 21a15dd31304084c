//! Delivery under faults: real `nats-server` processes crashed, restarted, clustered and
//! refusing, on loopback; every wait bounded. Each fault test prints its row of the proof
//! table in docs/delivery.md (`just faults` collects them).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nats_sink::{ClosedAfter, Datum, HostError, Rows, SinkError, SinkRuntime};
use nats_sink_tests::*;

const CLI_LIMIT: Duration = Duration::from_secs(180);
const READ_LIMIT: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `rows` JSON lines `{"id":i,"name":"row-i"}` and their schema, in `dir`.
fn dataset(dir: &Path, rows: usize) -> (PathBuf, PathBuf) {
    let schema = schema_file(dir, &[("id", "bigint"), ("name", "varchar")]);
    let mut lines = String::with_capacity(rows * 32);
    for i in 0..rows {
        lines.push_str(&format!("{{\"id\":{i},\"name\":\"row-{i}\"}}\n"));
    }
    let input = dir.join("rows.jsonl");
    std::fs::write(&input, lines).expect("write the dataset");
    (schema, input)
}

fn run_args(schema: &Path, input: &Path, options: &[(String, String)]) -> Vec<String> {
    let mut args = vec![
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
        "--input".into(),
        input.display().to_string(),
        "--batch-size".into(),
        "1024".into(),
    ];
    args.extend(with_args(options));
    args
}

/// `nats-sink check` with these options.
async fn check(options: &[(String, String)]) -> std::process::Output {
    let mut args = vec!["check".to_string()];
    args.extend(with_args(options));
    cli(args, "", CLI_LIMIT).await
}

/// How the stream's rows came out: how many, how many distinct ids, which ids are missing.
struct Tally {
    messages: usize,
    duplicates: usize,
    missing: Vec<u64>,
}

async fn tally(js: &async_nats::jetstream::Context, stream: &str, expected: u64) -> Tally {
    let messages = stream_messages(js, stream, READ_LIMIT).await;
    let mut seen = HashSet::new();
    for m in &messages {
        let row: serde_json::Value = serde_json::from_slice(&m.payload).expect("a JSON row");
        seen.insert(row["id"].as_u64().expect("an id"));
    }
    Tally {
        messages: messages.len(),
        duplicates: messages.len() - seen.len(),
        missing: (0..expected).filter(|i| !seen.contains(i)).collect(),
    }
}

/// Rows confirmed and messages sent (first sends plus resends), from the CLI's summary.
fn sent_from_summary(stderr: &str) -> u64 {
    let number_before = |word: &str| -> u64 {
        stderr
            .split(word)
            .next()
            .and_then(|head| head.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let first = number_before(" messages,");
    let resent = if stderr.contains(" resent after failures") {
        number_before(" resent after failures")
    } else {
        0
    };
    first + resent
}

/// The longest recovery the sink logged: from a message's first failure to every message
/// acked again.
fn longest_recovery(stderr: &str) -> Duration {
    for line in stderr.lines().filter(|l| l.contains("nats_sink::")) {
        eprintln!("sink log: {line}");
    }
    stderr
        .lines()
        .filter(|l| l.contains("delivery recovered"))
        .filter_map(|l| {
            l.split("elapsed_ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .max()
        .map(Duration::from_millis)
        .unwrap_or_default()
}

/// One row of the proof table in docs/delivery.md.
fn proof(fault: &str, sent: u64, in_stream: usize, duplicates: usize, outcome: &str) {
    println!("PROOF | {fault} | {sent} | {in_stream} | {duplicates} | {outcome} |");
}

/// Wait until `stream` on `url` holds at least `count` messages while the CLI runs.
async fn wait_for_count(url: &str, stream: &str, count: u64, run: &mut CliRun) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if stream_count(url, stream).await.unwrap_or(0) >= count {
            return;
        }
        assert!(
            run.is_running(),
            "the CLI ended before the stream held {count} rows"
        );
        assert!(
            Instant::now() < deadline,
            "the stream did not reach {count} rows"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_crashes_of_a_single_server_lose_and_duplicate_nothing() {
    const ROWS: u64 = 100_000;
    let mut server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("ROWS", &["rows"]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (schema, input) = dataset(dir.path(), ROWS as usize);
    let mut run = spawn_cli_run(&run_args(&schema, &input, &plain_options(&server, "rows")));

    let url = server.url();
    for threshold in [20_000, 50_000, 80_000] {
        wait_for_count(&url, "ROWS", threshold, &mut run).await;
        server.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            tokio::task::block_in_place(|| server.restart()),
            "the server did not come back:\n{}",
            server.log()
        );
    }
    let out = finish(run).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("100000 rows confirmed"), "{stderr}");

    let js = async_nats::jetstream::new(server.client().await);
    let tally = tally(&js, "ROWS", ROWS).await;
    assert_eq!(tally.missing, Vec::<u64>::new(), "rows lost");
    assert_eq!(tally.duplicates, 0, "duplicates kept");
    assert_eq!(tally.messages, ROWS as usize);
    proof(
        "single server crashed (SIGKILL), down 0.3 s and restarted, 3× during 100,000 rows",
        sent_from_summary(&stderr),
        tally.messages,
        tally.duplicates,
        &format!(
            "≤ {:.1} s per crash",
            longest_recovery(&stderr).as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_leader_lost_in_a_three_node_cluster() {
    const ROWS: u64 = 50_000;
    let mut cluster = Cluster::start(3);
    let js = cluster
        .create_stream(async_nats::jetstream::stream::Config {
            num_replicas: 3,
            ..NatsServer::stream_config("ROWS", &["rows"])
        })
        .await;
    let leader = js
        .get_stream("ROWS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("the stream has a leader");
    // The sink knows only the leader: after it goes, the client must find the others through
    // what the cluster advertised.
    let leader_url = cluster.node(&leader).url();
    let survivor_url = cluster
        .servers
        .iter()
        .map(NatsServer::url)
        .find(|u| *u != leader_url)
        .unwrap();
    let options = options(&[
        ("server_url", &leader_url),
        ("subject", "rows"),
        ("connect_mode", "plain"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (schema, input) = dataset(dir.path(), ROWS as usize);
    let mut run = spawn_cli_run(&run_args(&schema, &input, &options));

    wait_for_count(&leader_url, "ROWS", 15_000, &mut run).await;
    cluster.node(&leader).kill();

    let out = finish(run).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let client = async_nats::connect(&survivor_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let tally = tally(&js, "ROWS", ROWS).await;
    assert_eq!(tally.missing, Vec::<u64>::new(), "rows lost");
    assert_eq!(tally.duplicates, 0, "duplicates kept");
    proof(
        "R3 stream leader crashed (SIGKILL) in a 3-node cluster during 50,000 rows",
        sent_from_summary(&stderr),
        tally.messages,
        tally.duplicates,
        &format!("{:.1} s", longest_recovery(&stderr).as_secs_f64()),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_replayed_leaves_each_row_once() {
    const ROWS: u64 = 30_000;
    let mut server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("ROWS", &["rows"]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (schema, input) = dataset(dir.path(), ROWS as usize);
    let mut options = plain_options(&server, "rows");
    options.extend(nats_sink_tests::options(&[
        ("ack_timeout_ms", "500"),
        ("retry.max_elapsed_ms", "1500"),
    ]));
    let args = run_args(&schema, &input, &options);

    // The first run loses its server part way and gives up within its retry budget.
    let mut run = spawn_cli_run(&args);
    let url = server.url();
    wait_for_count(&url, "ROWS", 8_000, &mut run).await;
    server.kill();
    let out = finish(run).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("retry budget"), "{stderr}");
    assert!(stderr.contains("rerun the same input"), "{stderr}");
    let first_sent = sent_from_summary(&stderr);

    // The rerun sends every row again; the stream keeps the ones it already had once.
    assert!(tokio::task::block_in_place(|| server.restart()));
    let held = stream_count(&url, "ROWS").await.unwrap();
    assert!(held > 0 && held < ROWS, "{held}");
    let replayed = Instant::now();
    let out = finish(spawn_cli_run(&args)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let js = async_nats::jetstream::new(server.client().await);
    let tally = tally(&js, "ROWS", ROWS).await;
    assert_eq!(tally.missing, Vec::<u64>::new(), "rows lost");
    assert_eq!(tally.duplicates, 0, "replayed rows kept twice");
    proof(
        &format!("run failed after its server crashed ({held} rows held), rerun from the start"),
        first_sent + sent_from_summary(&stderr),
        tally.messages,
        tally.duplicates,
        &format!("rerun took {:.1} s", replayed.elapsed().as_secs_f64()),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn row_over_max_payload_fails_at_once_and_earlier_rows_are_in_the_stream() {
    let server = NatsServer::start_jetstream();
    let js = server
        .create_stream(NatsServer::stream_config("BIG", &["big"]))
        .await;
    let big = "y".repeat(1_100_000);
    let lines = format!("{{\"v\":\"a\"}}\n{{\"v\":\"b\"}}\n{{\"v\":\"{big}\"}}\n");
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("v", "varchar")]);
    let mut args = vec![
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
        "--batch-size".into(),
        "2".into(),
    ];
    args.extend(with_args(&plain_options(&server, "big")));
    let started = Instant::now();
    let out = cli(args, &lines, CLI_LIMIT).await;
    let stderr = text(&out.stderr);
    // It can never be delivered: bad input at its line, after the rows before it.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 3: its message is")
            && stderr.contains("over the server's max_payload of 1048576 bytes"),
        "{stderr}"
    );
    assert!(stderr.contains("2 rows confirmed"), "{stderr}");
    // Not sent, so not retried: a size the server refuses now it refuses forever.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!stderr.contains("resent"), "{stderr}");
    let held: Vec<_> = stream_messages(&js, "BIG", READ_LIMIT)
        .await
        .iter()
        .map(|m| text(&m.payload))
        .collect();
    assert_eq!(held, vec![r#"{"v":"a"}"#, r#"{"v":"b"}"#]);
    proof(
        "a row over max_payload (1 MiB) after 2 good rows",
        sent_from_summary(&stderr),
        held.len(),
        0,
        &format!(
            "exit 2 at once, naming the line and the limit ({:.1} s); not sent",
            started.elapsed().as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_password_and_missing_permission_fail_fast_and_say_why() {
    let server = NatsServer::with_config(
        "jetstream { store_dir: \"{dir}/js\" }\n\
         authorization { users = [\n\
           { user: admin, password: admin-pw }\n\
           { user: sinker, password: sinker-pw, permissions: { publish: { deny: [\"orders.>\"] } } }\n\
         ] }",
    );
    let url = server.url();
    let admin = async_nats::ConnectOptions::new()
        .user_and_password("admin".into(), "admin-pw".into())
        .connect(&url)
        .await
        .unwrap();
    let admin_js = async_nats::jetstream::new(admin);
    admin_js
        .create_stream(NatsServer::stream_config("ORDERS", &["orders.>"]))
        .await
        .unwrap();
    let sinker = |password: &str| {
        options(&[
            ("server_url", &url),
            ("subject", "orders.eu"),
            ("connect_mode", "user_and_password"),
            ("username", "sinker"),
            ("password", password),
            ("ack_timeout_ms", "1000"),
        ])
    };
    let dir = tempfile::tempdir().unwrap();
    let (schema, input) = dataset(dir.path(), 10);

    // Wrong password: refused while connecting, with the server's reason and no secret.
    let started = Instant::now();
    let out = finish(spawn_cli_run(&run_args(
        &schema,
        &input,
        &sinker("not-the-pw"),
    )))
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("authorization violation"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-pw"),
        "the password leaked: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // Measured, not assumed: what the summary counts as sent (none is printed when the run
    // fails before anything is sent) and what the stream holds.
    let held = tally(&admin_js, "ORDERS", 10).await;
    assert_eq!(held.messages, 0, "rows stored without authenticating");
    proof(
        "wrong password",
        sent_from_summary(&stderr),
        held.messages,
        held.duplicates,
        &format!(
            "exit 1 at open: authorization violation ({:.1} s)",
            started.elapsed().as_secs_f64()
        ),
    );

    // No permission on the stream's subject: the first flush fails naming the subject, after
    // one ack timeout rather than the whole retry budget.
    let started = Instant::now();
    let out = finish(spawn_cli_run(&run_args(
        &schema,
        &input,
        &sinker("sinker-pw"),
    )))
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Permissions Violation for Publish to \"orders.eu\""),
        "{stderr}"
    );
    assert!(!stderr.contains("resent"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    let held = tally(&admin_js, "ORDERS", 10).await;
    assert_eq!(held.messages, 0, "a refused publish was stored");
    proof(
        "no permission to publish on the stream's subject",
        sent_from_summary(&stderr),
        held.messages,
        held.duplicates,
        &format!(
            "exit 1 at the first flush: permissions violation ({:.1} s); no retry",
            started.elapsed().as_secs_f64()
        ),
    );

    // `check` says the same before anything is sent.
    let out = check(&sinker("sinker-pw")).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("route        JetStream stream ORDERS"),
        "{stdout}"
    );
    assert!(stdout.contains("publish      denied"), "{stdout}");
    assert!(
        text(&out.stderr).contains("error: no permission to publish on `orders.eu`"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn core_messages_lost_with_the_connection_are_flagged_core_in_doubt() {
    let mut server = NatsServer::start();
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let mut options = plain_options(&server, "core.lost");
    options.extend(nats_sink_tests::options(&[("ack_timeout_ms", "1000")]));
    let mut sink = runtime
        .open(&options, &columns(&[("id", "bigint")]))
        .await
        .unwrap();
    let rows = |from: i64| -> Rows { (from..from + 3).map(|i| vec![Datum::Bigint(i)]).collect() };
    sink.write(&rows(0)).await.unwrap();
    sink.flush().await.unwrap();
    sink.write(&rows(3)).await.unwrap();
    // The connection breaks with these core messages unconfirmed.
    server.kill();
    assert!(tokio::task::block_in_place(|| server.restart()));
    let err = sink
        .flush()
        .await
        .expect_err("core NATS cannot vouch for rows 3-5");
    match &err {
        HostError::Sink(SinkError::Connection(f) | SinkError::Timeout(f)) => {
            assert!(f.core_in_doubt, "{f:?}")
        }
        other => panic!("{other:?}"),
    }
    // Closed after that failure, its flag kept: the CLI replays on it, by type alone.
    match sink.write(&rows(6)).await {
        Err(HostError::Sink(SinkError::Closed(closure))) => {
            assert!(
                matches!(
                    closure.after,
                    ClosedAfter::Connection | ClosedAfter::Timeout
                ),
                "{closure:?}"
            );
            assert!(closure.cause.core_in_doubt, "{closure:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_gone_for_good_fails_the_flush_within_the_retry_budget() {
    let mut server = NatsServer::start_jetstream();
    let js = server
        .create_stream(NatsServer::stream_config("ROWS", &["rows"]))
        .await;
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let schema = columns(&[("id", "bigint")]);
    let mut options = plain_options(&server, "rows");
    options.extend(nats_sink_tests::options(&[
        ("ack_timeout_ms", "500"),
        ("retry.max_elapsed_ms", "2000"),
    ]));
    let mut sink = runtime.open(&options, &schema).await.unwrap();
    let rows = |from: i64| -> Rows { (from..from + 100).map(|i| vec![Datum::Bigint(i)]).collect() };
    sink.begin_checkpoint(1).await.unwrap();
    sink.write(&rows(0)).await.unwrap();
    sink.flush().await.unwrap();
    // What the stream holds is read while the server is up; nothing after this can reach it.
    let held = tally(&js, "ROWS", 100).await;
    assert_eq!(held.messages, 100);
    assert_eq!(held.duplicates, 0);

    server.kill();
    let started = Instant::now();
    sink.begin_checkpoint(2).await.unwrap();
    let outcome = match sink.write(&rows(100)).await {
        Ok(()) => sink.flush().await,
        Err(e) => Err(e),
    };
    let elapsed = started.elapsed();
    let err = outcome.expect_err("nothing can be confirmed without a server");
    let message = err.to_string();
    assert!(!err.is_input_error(), "{message}");
    assert!(message.contains("stayed unreachable"), "{message}");
    assert!(message.contains("retry budget"), "{message}");
    // The budget (2 s) plus one ack timeout and one backoff, not the 120 s flush bound.
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    // JetStream messages, resent within the budget: no core message is in doubt.
    let failure = match &err {
        HostError::Sink(e) => e.failure().cloned(),
        _ => None,
    };
    assert!(failure.is_some_and(|f| !f.core_in_doubt), "{err:?}");
    // The sink stays closed rather than pretend the next flush means anything, and says why.
    match sink.flush().await {
        Err(HostError::Sink(SinkError::Closed(closure))) => {
            assert!(
                matches!(closure.after, ClosedAfter::Connection),
                "{closure:?}"
            );
            assert!(!closure.cause.core_in_doubt, "{closure:?}");
        }
        other => panic!("{other:?}"),
    }
    // Sent: first sends plus resends, as the sink counted them.
    let sent = sink.metrics().snapshot();
    proof(
        "server stopped for good after 100 confirmed rows (retry budget 2 s)",
        sent.messages + sent.retries,
        held.messages,
        held.duplicates,
        &format!(
            "flush fails in {:.1} s: \"the server stayed unreachable … retry budget\"",
            elapsed.as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_server_route_and_permission() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("ROWS", &["rows"]))
        .await;
    let out = check(&plain_options(&server, "rows")).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("nats-server") || stdout.contains("server "),
        "{stdout}"
    );
    assert!(stdout.contains("max_payload  1048576 bytes"), "{stdout}");
    assert!(
        stdout.contains("route        JetStream stream ROWS (acked, duplicate window 120 s)"),
        "{stdout}"
    );
    assert!(stdout.contains("publish      allowed"), "{stdout}");
    assert!(stdout.contains("ok: ready"), "{stdout}");
    // The probe is refused by the stream, so it leaves nothing behind.
    assert_eq!(stream_count(&server.url(), "ROWS").await, Some(0));

    let out = check(&plain_options(&server, "elsewhere")).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("route        core NATS"), "{stdout}");

    let out = check(&options(&[
        ("server_url", &format!("127.0.0.1:{}", free_port())),
        ("subject", "rows"),
        ("connect_mode", "plain"),
        ("connect_timeout_ms", "1000"),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("could not connect"),
        "{}",
        text(&out.stderr)
    );
}
