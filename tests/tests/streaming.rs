//! The CLI as the end of a pipeline that never ends: rows of a slow producer delivered within
//! the linger bound, a clean stop on SIGTERM and SIGINT, resume with `--state` after the sink
//! itself is killed, and core NATS batches replayed when their server restarts. Real
//! `nats-server` processes on loopback, every wait bounded; each fault prints its row of the
//! proof table in docs/delivery.md (`just faults` collects them).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use nats_sink_tests::streaming::{numbered_dataset, numbered_row, RowTally};
use nats_sink_tests::*;

const CLI_LIMIT: Duration = Duration::from_secs(180);
const READ_LIMIT: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One row of the proof table in docs/delivery.md.
fn proof(fault: &str, sent: &str, in_stream: usize, duplicates: usize, outcome: &str) {
    println!("PROOF | {fault} | {sent} | {in_stream} | {duplicates} | {outcome} |");
}

/// Messages the CLI's summary says it sent (first sends plus resends).
fn sent_from_summary(stderr: &str) -> u64 {
    let number_before = |word: &str| -> u64 {
        stderr
            .split(word)
            .next()
            .and_then(|head| head.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let resent = match stderr.contains(" resent after failures") {
        true => number_before(" resent after failures"),
        false => 0,
    };
    number_before(" messages,") + resent
}

fn run_args(
    schema: &Path,
    input: &str,
    options: &[(String, String)],
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--schema",
        &schema.display().to_string(),
        "--input",
        input,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(with_args(options));
    args
}

fn spawn(args: &[String], feed: std::sync::mpsc::Receiver<String>) -> CliRun {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_cli_fed(&args, feed)
}

/// Wait (bounded) until the node at `node_url` knows of every subscription `client` has made
/// so far: a route carries a client's subscriptions in order, so once the node forwards a
/// message on a probe subscribed after them, it has the earlier ones too.
async fn interest_reached(client: &async_nats::Client, node_url: &str) {
    let probe_subject = client.new_inbox();
    let mut probe = client.subscribe(probe_subject.clone()).await.unwrap();
    client.flush().await.unwrap();
    let publisher = async_nats::connect(node_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        publisher
            .publish(probe_subject.clone(), "probe".into())
            .await
            .unwrap();
        publisher.flush().await.unwrap();
        if tokio::time::timeout(Duration::from_millis(100), probe.next())
            .await
            .is_ok()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the subscription did not reach {node_url} within 30 s"
        );
    }
}

/// Wait (bounded) until JetStream, asked through the node at `node_url`, lists its streams
/// as the sink's route lookup does: a cluster answers once it has elected its leader.
async fn jetstream_answers(node_url: &str) {
    let js = async_nats::jetstream::new(async_nats::connect(node_url).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut names = js.stream_names();
        match names.next().await {
            None | Some(Ok(_)) => return,
            Some(Err(e)) => assert!(
                Instant::now() < deadline,
                "JetStream did not answer through {node_url} within 30 s: {e}"
            ),
        }
    }
}

/// `spawn`, with the CLI logging each row it reads into its batch.
fn spawn_logging_reads(args: &[String], feed: std::sync::mpsc::Receiver<String>) -> CliRun {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_cli_with_env(
        &args,
        &[("NATS_SINK_LOG", "nats_sink=info,nats_sink::run=trace")],
        feed,
    )
}

/// Wait until a CLI from `spawn_logging_reads` has read line `line` into its batch.
fn wait_until_read(run: &mut CliRun, line: u64) {
    let needle = format!("row read line={line}");
    let read = tokio::task::block_in_place(|| run.wait_for_stderr(&needle, CLI_LIMIT));
    assert!(read, "the CLI did not read line {line}");
}

/// Wait until `stream` holds at least `count` messages, or `limit` passes; how long it took.
async fn until_count(url: &str, stream: &str, count: u64, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if stream_count(url, stream).await.unwrap_or(0) >= count {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

async fn stream_tally(js: &async_nats::jetstream::Context, stream: &str) -> RowTally {
    let mut tally = RowTally::default();
    for message in stream_messages(js, stream, READ_LIMIT).await {
        tally.add(&message.payload);
    }
    tally
}

/// A producer that writes 10 rows, pauses 3 s, and writes 10 more: each group is in the
/// stream within the linger bound (100 ms) and a margin, long before the pause ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_producers_rows_arrive_within_the_linger_bound() {
    let server = NatsServer::start_jetstream();
    let js = server
        .create_stream(NatsServer::stream_config("SLOW", &["slow"]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (schema, _) = numbered_dataset(dir.path(), 0);
    let (feed, chunks) = std::sync::mpsc::channel();
    let run = spawn(
        &run_args(&schema, "-", &plain_options(&server, "slow"), &[]),
        chunks,
    );
    let url = server.url();

    // The first group also waits for the CLI to start; it must still beat the pause.
    let written = Instant::now();
    feed.send((0..10).map(numbered_row).collect()).unwrap();
    let first = until_count(&url, "SLOW", 10, Duration::from_secs(3)).await;
    let first = first.expect("the first 10 rows were not in the stream before the pause ended");
    assert_eq!(stream_count(&url, "SLOW").await, Some(10));
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(written.elapsed())).await;

    feed.send((10..20).map(numbered_row).collect()).unwrap();
    let second = until_count(&url, "SLOW", 20, Duration::from_secs(3)).await;
    let second = second.expect("the second 10 rows were not in the stream within 3 s");
    // 100 ms of linger, and a loaded test machine's margin.
    assert!(second < Duration::from_millis(1100), "took {second:?}");
    drop(feed);
    let out = finish(run).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("20 rows confirmed"), "{stderr}");
    let tally = stream_tally(&js, "SLOW").await;
    assert_eq!(tally.missing(20), Vec::<u64>::new());
    assert_eq!(tally.duplicates(), 0);
    proof(
        "a producer writes 10 rows, pauses 3 s, writes 10 more (--linger-ms 100)",
        &sent_from_summary(&stderr).to_string(),
        tally.messages,
        tally.duplicates(),
        &format!(
            "each group stored before the next: {} ms (with start-up), then {} ms",
            first.as_millis(),
            second.as_millis()
        ),
    );
}

/// SIGTERM (and SIGINT) while the producer pauses: the rows read are delivered, the summary
/// names the confirmed line, and the exit code is the signal's. A long linger holds the rows
/// until the signal, so only the graceful stop can deliver them.
#[tokio::test(flavor = "multi_thread")]
async fn a_signal_during_a_pause_delivers_the_rows_read_and_says_so() {
    for (signal, code, subject) in [("TERM", 143, "term"), ("INT", 130, "int")] {
        let server = NatsServer::start_jetstream();
        let js = server
            .create_stream(NatsServer::stream_config("ROWS", &[subject]))
            .await;
        let dir = tempfile::tempdir().unwrap();
        let (schema, _) = numbered_dataset(dir.path(), 0);
        let (feed, chunks) = std::sync::mpsc::channel();
        let args = run_args(
            &schema,
            "-",
            &plain_options(&server, subject),
            &["--linger-ms", "600000"],
        );
        let mut run = spawn_logging_reads(&args, chunks);
        feed.send((0..10).map(numbered_row).collect()).unwrap();
        // Read and held (the batch is not full, and its linger is long).
        wait_until_read(&mut run, 10);
        assert_eq!(stream_count(&server.url(), "ROWS").await, Some(0));
        let signalled = Instant::now();
        run.signal(signal);
        // Standard input stays open: the stop is the signal's doing, not the input's end.
        let exited = tokio::task::block_in_place(|| run.wait_exit(CLI_LIMIT));
        let stopped = signalled.elapsed();
        assert!(exited, "the CLI did not stop on SIG{signal}");
        drop(feed);
        let out = finish(run).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("10 rows confirmed"), "{stderr}");
        assert!(stderr.contains("confirmed through line 10"), "{stderr}");
        let tally = stream_tally(&js, "ROWS").await;
        assert_eq!(tally.missing(10), Vec::<u64>::new());
        assert_eq!(tally.messages, 10);
        proof(
            &format!(
                "SIG{signal} while the producer pauses, 10 rows read and held by a 600 s linger"
            ),
            &sent_from_summary(&stderr).to_string(),
            tally.messages,
            tally.duplicates(),
            &format!(
                "delivered, summary says \"confirmed through line 10\", exit {code} in {:.2} s",
                stopped.as_secs_f64()
            ),
        );
    }
}

/// The sink itself is killed (SIGKILL) three times during 100,000 rows into a stream whose
/// duplicate window is 1 s, and rerun with the same `--state` after more than the window:
/// the stream ends with every row exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn the_sink_killed_three_times_resumes_from_its_state_exactly_once() {
    const ROWS: u64 = 100_000;
    let server = NatsServer::start_jetstream();
    let js = server
        .create_stream(async_nats::jetstream::stream::Config {
            duplicate_window: Duration::from_secs(1),
            ..NatsServer::stream_config("ROWS", &["rows"])
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (schema, input) = numbered_dataset(dir.path(), ROWS);
    let state = dir.path().join("run.state");
    let args = run_args(
        &schema,
        &input.display().to_string(),
        &plain_options(&server, "rows"),
        &["--state", &state.display().to_string()],
    );
    let url = server.url();
    let mut resumed = Vec::new();
    for threshold in [20_000, 50_000, 80_000] {
        let mut run = spawn_cli_run(&args);
        let deadline = Instant::now() + Duration::from_secs(90);
        while stream_count(&url, "ROWS").await.unwrap_or(0) < threshold {
            assert!(run.is_running(), "the CLI ended before {threshold} rows");
            assert!(Instant::now() < deadline, "{threshold} rows not reached");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        run.kill_hard();
        let out = finish(run).await;
        resumed.push(text(&out.stderr));
        // Past the duplicate window: the stream would keep a replayed row twice.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let rerun = Instant::now();
    let out = finish(spawn_cli_run(&args)).await;
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stderr}\nearlier runs:\n{resumed:#?}"
    );
    let resumes: Vec<&str> = resumed
        .iter()
        .map(String::as_str)
        .chain([stderr.as_str()])
        .flat_map(str::lines)
        .filter(|l| l.contains("resuming:"))
        .collect();
    for line in &resumes {
        eprintln!("{line}");
    }
    let tally = stream_tally(&js, "ROWS").await;
    assert_eq!(tally.missing(ROWS), Vec::<u64>::new(), "rows lost");
    assert_eq!(tally.duplicates(), 0, "rows stored twice");
    assert_eq!(tally.messages, ROWS as usize);
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(recorded["confirmed"]["line"], ROWS);
    assert_eq!(recorded["in_flight"], serde_json::Value::Null);
    proof(
        "the sink killed (SIGKILL) 3× during 100,000 rows, duplicate window 1 s, rerun with --state after 1.5 s",
        &format!("{} in the last run", sent_from_summary(&stderr)),
        tally.messages,
        tally.duplicates(),
        &format!(
            "exactly once; {} of 3 reruns found a batch in flight and skipped what the stream held of it; the last rerun took {:.1} s",
            resumes.iter().filter(|l| l.contains("the stream holds")).count(),
            rerun.elapsed().as_secs_f64()
        ),
    );
}

/// A core NATS server restarted under the sink (same port): the batch in doubt is replayed
/// on a new connection, every row reaches a subscriber that stays connected (on another node
/// of the cluster) at least once, and the message ids dedupe to exactly the input.
#[tokio::test(flavor = "multi_thread")]
async fn core_nats_server_restarted_replays_the_batch_in_doubt() {
    const ROWS: u64 = 50_000;
    let mut cluster = Cluster::start(3);
    let subscriber_url = cluster.servers[2].url();
    let client = async_nats::connect(&subscriber_url).await.unwrap();
    let mut subscriber = client.subscribe("core.rows").await.unwrap();
    client.flush().await.unwrap();
    // Interest travels over the routes: wait until it has reached the node the sink uses.
    interest_reached(&client, &cluster.servers[0].url()).await;
    // The sink asks JetStream whether a stream captures its subject: the cluster must have
    // elected its JetStream leader to answer.
    jetstream_answers(&cluster.servers[0].url()).await;
    let seen = Arc::new(Mutex::new((
        RowTally::default(),
        HashMap::<String, u64>::new(),
    )));
    let collector = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let row: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
                let id = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.as_str().to_string())
                    .expect("a message id");
                let mut seen = seen.lock().unwrap();
                seen.0.add(&message.payload);
                let previous = seen.1.insert(id.clone(), row["id"].as_u64().unwrap());
                assert!(
                    previous.is_none_or(|p| p == row["id"].as_u64().unwrap()),
                    "message id {id} on two rows"
                );
            }
        })
    };
    let count =
        |seen: &Arc<Mutex<(RowTally, HashMap<String, u64>)>>| seen.lock().unwrap().0.messages;

    let dir = tempfile::tempdir().unwrap();
    let (schema, input) = numbered_dataset(dir.path(), ROWS);
    let options = options(&[
        // Only the node that is restarted: the new connection must be made to it again.
        ("server_url", &cluster.servers[0].url()),
        ("subject", "core.rows"),
        ("connect_mode", "plain"),
    ]);
    let args = run_args(&schema, &input.display().to_string(), &options, &[]);
    let mut run = spawn_cli_run(&args);
    let deadline = Instant::now() + Duration::from_secs(90);
    while count(&seen) < 15_000 {
        if !run.is_running() {
            let out = finish(run).await;
            panic!(
                "the CLI ended before 15,000 rows ({} seen): {}",
                count(&seen),
                text(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "15,000 rows not reached");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = Instant::now();
    cluster.servers[0].kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(tokio::task::block_in_place(|| cluster.servers[0].restart()));
    let out = finish(run).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{ROWS} rows confirmed")),
        "{stderr}"
    );
    let recovered = killed.elapsed();

    // Let the subscriber take in the last messages: until nothing new comes for 500 ms.
    let quiet = Instant::now() + READ_LIMIT;
    let mut last = count(&seen);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count(&seen);
        if now == last || Instant::now() > quiet {
            break;
        }
        last = now;
    }
    collector.abort();
    let seen = seen.lock().unwrap();
    let (tally, ids) = (&seen.0, &seen.1);
    assert_eq!(tally.missing(ROWS), Vec::<u64>::new(), "rows lost");
    assert_eq!(
        ids.len() as u64,
        ROWS,
        "message ids do not dedupe to the input"
    );
    let mut rows: Vec<u64> = ids.values().copied().collect();
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(rows.len() as u64, ROWS);
    let replayed = stderr.contains("replayed on a new connection");
    // One set of counters spans every connection: the summary counts the sends before the
    // crash too.
    assert!(
        sent_from_summary(&stderr) >= ROWS,
        "the summary counts {} sends for {ROWS} rows: {stderr}",
        sent_from_summary(&stderr)
    );
    proof(
        "core NATS (no stream): the sink's server crashed (SIGKILL) and restarted on its port after 0.5 s, during 50,000 rows; subscriber on another node",
        &sent_from_summary(&stderr).to_string(),
        tally.messages,
        tally.duplicates(),
        &format!(
            "every row at least once, ids dedupe to exactly 50,000; {}; done {:.1} s after the crash",
            if replayed { "the batch in doubt replayed on a new connection" } else { "no batch was in doubt" },
            recovered.as_secs_f64()
        ),
    );
}

/// A JetStream stream `ROWS`, `rows` numbered rows in a file, and the arguments of a run of
/// them with `--state`.
struct StateRun {
    server: NatsServer,
    dir: tempfile::TempDir,
    schema: std::path::PathBuf,
    input: std::path::PathBuf,
    state: std::path::PathBuf,
    state_arg: String,
    args: Vec<String>,
}

impl StateRun {
    async fn new(rows: u64) -> StateRun {
        let server = NatsServer::start_jetstream();
        server
            .create_stream(NatsServer::stream_config("ROWS", &["rows"]))
            .await;
        let dir = tempfile::tempdir().unwrap();
        let (schema, input) = numbered_dataset(dir.path(), rows);
        let state = dir.path().join("run.state");
        let state_arg = state.display().to_string();
        let args = run_args(
            &schema,
            &input.display().to_string(),
            &plain_options(&server, "rows"),
            &["--state", &state_arg],
        );
        StateRun {
            server,
            dir,
            schema,
            input,
            state,
            state_arg,
            args,
        }
    }
}

/// A state whose input changed under it (shrunk, or other bytes at the confirmed line) is
/// refused with exit 2, naming the state file and why; so is `--state` with standard input.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_whose_input_changed_is_refused() {
    let StateRun {
        server,
        dir: _dir,
        schema,
        input,
        state: _,
        state_arg,
        args,
    } = StateRun::new(100).await;
    let out = finish(spawn_cli_run(&args)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Run again on the same input: nothing left to send.
    let out = finish(spawn_cli_run(&args)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "100 rows confirmed (0 in this run, 100 by earlier runs with this --state); 0 messages"
        ),
        "{stderr}"
    );

    let started = Instant::now();
    let all: String = (0..100).map(numbered_row).collect();
    let shrunk: String = (0..50).map(numbered_row).collect();
    std::fs::write(&input, shrunk).unwrap();
    let out = finish(spawn_cli_run(&args)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("--state {state_arg}")), "{stderr}");
    assert!(stderr.contains("shorter than that"), "{stderr}");
    let mut refused_sent = sent_from_summary(&stderr);

    std::fs::write(&input, all.replace("row-99", "row-X9")).unwrap();
    let out = finish(spawn_cli_run(&args)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 100 has other bytes now"), "{stderr}");
    refused_sent += sent_from_summary(&stderr);
    assert_eq!(refused_sent, 0, "a refused run sent messages");
    let held = stream_tally(&async_nats::jetstream::new(server.client().await), "ROWS").await;
    assert_eq!(held.messages, 100);
    assert_eq!(held.duplicates(), 0);

    let stdin_args = run_args(
        &schema,
        "-",
        &plain_options(&server, "rows"),
        &["--state", &state_arg],
    );
    let out = cli(stdin_args, &numbered_row(0), CLI_LIMIT).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--state needs a file input"));
    proof(
        "the input file shrank (100 → 50 rows) or changed at its confirmed line under --state",
        &refused_sent.to_string(),
        held.messages,
        held.duplicates(),
        &format!(
            "exit 2 naming the state file and why, nothing sent ({:.1} s)",
            started.elapsed().as_secs_f64() / 2.0
        ),
    );
}

/// The library's graceful stop: `Sink::shutdown` confirms what was written and closes; with
/// the server gone it reports the rows as not confirmed, within its deadline.
#[tokio::test(flavor = "multi_thread")]
async fn sink_shutdown_confirms_what_was_written_or_says_it_could_not() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("DOWN", &["down"]))
        .await;
    let runtime = nats_sink::SinkRuntime::load(component_path()).unwrap();
    let schema = columns(&[("id", "bigint")]);
    let rows = |from: i64| {
        pack(
            &(from..from + 100)
                .map(|i| vec![nats_sink::Datum::Bigint(i)])
                .collect::<Vec<_>>(),
        )
    };

    let mut sink = runtime
        .open(&plain_options(&server, "down"), &schema)
        .await
        .unwrap();
    sink.begin_checkpoint(1).await.unwrap();
    sink.write(&rows(0)).await.unwrap();
    let report = sink.shutdown(Duration::from_secs(10)).await.unwrap();
    assert!(report.is_confirmed(), "{report:?}");
    assert_eq!(report.rows_accepted, 100);
    assert_eq!(stream_count(&server.url(), "DOWN").await, Some(100));

    let mut options = plain_options(&server, "down");
    options.extend(nats_sink_tests::options(&[("ack_timeout_ms", "500")]));
    let mut sink = runtime.open(&options, &schema).await.unwrap();
    sink.begin_checkpoint(2).await.unwrap();
    // A first write and flush find the subject's route; then the server is frozen before the
    // next write, so no ack can come back before the deadline.
    sink.write(&rows(100)).await.unwrap();
    sink.flush().await.unwrap();
    server.pause();
    sink.write(&rows(200)).await.unwrap();
    let started = Instant::now();
    let report = sink.shutdown(Duration::from_secs(2)).await.unwrap();
    let took = started.elapsed();
    assert!(!report.is_confirmed(), "{report:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    server.resume();
}

/// A second signal while the rows read are being delivered stops at once, naming the lines
/// read but not confirmed, with the signal's exit code. (The server is frozen so that the
/// delivery cannot finish.)
#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_stops_at_once_and_names_the_unconfirmed_lines() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("ROWS", &["rows"]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (schema, _) = numbered_dataset(dir.path(), 0);
    let (feed, chunks) = std::sync::mpsc::channel();
    let args = run_args(
        &schema,
        "-",
        &plain_options(&server, "rows"),
        &["--linger-ms", "600000"],
    );
    let mut run = spawn_logging_reads(&args, chunks);
    feed.send((0..10).map(numbered_row).collect()).unwrap();
    wait_until_read(&mut run, 10);
    server.pause();
    run.signal("TERM");
    let taken = tokio::task::block_in_place(|| {
        run.wait_for_stderr("TERM: no more input is read", CLI_LIMIT)
    });
    assert!(taken, "the CLI did not take the first SIGTERM");
    assert!(
        run.is_running(),
        "the first signal's delivery cannot finish on a frozen server"
    );
    let second = Instant::now();
    run.signal("TERM");
    let exited = tokio::task::block_in_place(|| run.wait_exit(Duration::from_secs(10)));
    let stopped = second.elapsed();
    server.resume();
    assert!(exited, "a second SIGTERM did not stop the CLI");
    drop(feed);
    let out = finish(run).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("lines 1–10 read but not confirmed"),
        "{stderr}"
    );
    assert!(stderr.contains("confirmed through line 0"), "{stderr}");
    assert!(stopped < Duration::from_secs(2), "took {stopped:?}");
}

/// One run per state file: a second run while the first holds it is refused (exit 2), not
/// interleaved; and a state whose numbers cannot be true (more lines than bytes, as a hand
/// edit gives) is refused before anything is read or sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_file_serves_one_run_and_must_make_sense() {
    let StateRun {
        server,
        dir,
        schema: _,
        input: _,
        state,
        state_arg: _,
        args,
    } = StateRun::new(100).await;

    // Another run holds the state's lock: this one is refused and sends nothing.
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join(".run.state.lock"))
        .unwrap();
    held.try_lock().unwrap();
    let out = finish(spawn_cli_run(&args)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another nats-sink run is using it"),
        "{stderr}"
    );
    assert_eq!(stream_count(&server.url(), "ROWS").await, Some(0));
    drop(held);
    let out = finish(spawn_cli_run(&args)).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stream_count(&server.url(), "ROWS").await, Some(100));

    // A confirmed line past what the bytes can hold, near u64::MAX.
    let mut recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    recorded["confirmed"]["line"] = serde_json::json!(u64::MAX - 5);
    std::fs::write(&state, serde_json::to_vec(&recorded).unwrap()).unwrap();
    let out = finish(spawn_cli_run(&args)).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("inconsistent"), "{stderr}");
    assert_eq!(stream_count(&server.url(), "ROWS").await, Some(100));
}
