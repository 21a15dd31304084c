//! `run --input-format debezium` (issue 30) against real `nats-server` processes: a Debezium
//! changelog (snapshot reads, creates, updates with and without `before`, deletes and their
//! tombstones, changes of primary key, some lines in Kafka Connect's envelope) sunk into a KV
//! bucket leaves it equal to the final table; each malformed change stops the run (exit 2)
//! naming its line and field, after the lines before it are confirmed; and a run killed
//! twice and resumed with `--state` past the duplicate window stores every change once, in
//! order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nats_sink_tests::*;

use crate::upsert::{bucket_contents, watched_last};

const WAIT: Duration = Duration::from_secs(120);

/// A row of the table as a Debezium event carries it (columns in any order).
fn event_row(id: i64, version: i64) -> String {
    format!("{{\"version\":{version},\"id\":{id},\"name\":\"k{id}-v{version}\"}}")
}

/// The JSON the sink puts for a row: keys sorted.
fn stored_row(id: i64, version: i64) -> String {
    format!("{{\"id\":{id},\"name\":\"k{id}-v{version}\",\"version\":{version}}}")
}

/// A changelog's lines, the table it leaves, and the messages an upsert sink writes for it.
struct Changelog {
    text: String,
    lines: usize,
    table: BTreeMap<i64, String>,
    messages: u64,
    tombstones: usize,
    /// Messages written through each change, in order (tombstones are no change).
    written_through: Vec<u64>,
}

impl Changelog {
    /// Messages written once the first `changes` changes are.
    fn written_after(&self, changes: usize) -> u64 {
        changes
            .checked_sub(1)
            .map_or(0, |i| self.written_through[i])
    }
}

/// Debezium events over `keys` keys in `rounds` rounds: the first round reads (snapshot) or
/// creates every key; later ones delete every third live key (each delete followed by its
/// tombstone, as Kafka writes it), move every seventh to a new primary key (an update whose
/// `before` holds the old key), and update the rest (a quarter without `before`). Every third
/// event is wrapped in Kafka Connect's `{"schema":...,"payload":...}`.
fn changelog(keys: i64, rounds: i64) -> Changelog {
    let mut live: BTreeMap<i64, i64> = BTreeMap::new();
    let mut lines: Vec<String> = Vec::new();
    let mut messages = 0;
    let mut tombstones = 0;
    let mut written_through = Vec::new();
    let mut version = 0;
    let event = |lines: &mut Vec<String>,
                 op: &str,
                 before: Option<String>,
                 after: Option<String>| {
        let body = format!(
            "{{\"before\":{},\"after\":{},\"source\":{{\"connector\":\"postgresql\",\"table\":\"orders\"}},\"op\":\"{op}\",\"ts_ms\":1700000000000}}",
            before.as_deref().unwrap_or("null"),
            after.as_deref().unwrap_or("null"),
        );
        let line = match lines.len() % 3 {
            0 => format!("{{\"schema\":{{\"type\":\"struct\",\"name\":\"shop.orders.Envelope\"}},\"payload\":{body}}}"),
            _ => body,
        };
        lines.push(line);
    };
    for round in 0..rounds {
        for id in 0..keys {
            version += 1;
            match live.get(&id).copied() {
                None => {
                    let op = if round == 0 && id % 2 == 0 { "r" } else { "c" };
                    event(&mut lines, op, None, Some(event_row(id, version)));
                    live.insert(id, version);
                    messages += 1;
                }
                Some(old) if (id + round) % 3 == 0 => {
                    // PostgreSQL's default replica identity: the key alone.
                    let before = match id % 5 {
                        0 => format!("{{\"id\":{id}}}"),
                        _ => event_row(id, old),
                    };
                    event(&mut lines, "d", Some(before), None);
                    lines.push(match id % 2 {
                        0 => "null".into(),
                        _ => "{\"schema\":null,\"payload\":null}".into(),
                    });
                    live.remove(&id);
                    messages += 1;
                    tombstones += 1;
                }
                Some(old) if (id + round) % 7 == 1 => {
                    let moved = id + 1_000_000 * (round + 1);
                    event(
                        &mut lines,
                        "u",
                        Some(event_row(id, old)),
                        Some(event_row(moved, version)),
                    );
                    live.remove(&id);
                    live.insert(moved, version);
                    // The old key's delete, then the new key's put.
                    messages += 2;
                }
                Some(old) => {
                    let before = (id % 4 != 0).then(|| event_row(id, old));
                    event(&mut lines, "u", before, Some(event_row(id, version)));
                    live.insert(id, version);
                    messages += 1;
                }
            }
            written_through.push(messages);
        }
    }
    let table = live
        .into_iter()
        .map(|(id, v)| (id, stored_row(id, v)))
        .collect();
    let mut text = lines.join("\n");
    text.push('\n');
    Changelog {
        text,
        lines: lines.len(),
        table,
        messages,
        tombstones,
        written_through,
    }
}

fn schema(dir: &Path) -> PathBuf {
    schema_file(
        dir,
        &[("id", "bigint"), ("version", "bigint"), ("name", "varchar")],
    )
}

fn upsert_options(url: &str, bucket: &str) -> Vec<(String, String)> {
    options(&[
        ("server_url", url),
        ("connect_mode", "plain"),
        ("type", "upsert"),
        ("kv.bucket", bucket),
        ("primary_key", "id"),
    ])
}

fn run_args(
    schema: &Path,
    input: &Path,
    options: &[(String, String)],
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--schema",
        &schema.display().to_string(),
        "--input",
        &input.display().to_string(),
        "--input-format",
        "debezium",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(with_args(options));
    args
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every value stored in `stream`, per subject in stream order: each key's versions must
/// only grow, and each stored once, so no change was applied twice or out of order.
async fn assert_history_in_order(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    let messages = stream_messages(js, stream, WAIT).await;
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    for message in &messages {
        if message.payload.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let version = value["version"].as_i64().unwrap();
        let before = latest.insert(message.subject.to_string(), version);
        assert!(
            before.is_none_or(|b| b < version),
            "{}: version {version} stored after {before:?}",
            message.subject
        );
    }
    messages.len() as u64
}

/// A changelog of about 14,000 events over 3,000 keys, sunk with the CLI: the bucket holds
/// exactly the final table read back with another client, a watcher's last values agree, and
/// the stream holds one message per change (a change of key: two), each key's in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_debezium_changelog_leaves_the_bucket_equal_to_the_final_table() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let log = changelog(3_000, 4);
    let input = dir.path().join("orders.debezium.jsonl");
    std::fs::write(&input, &log.text).unwrap();
    let mut options = upsert_options(&server.url(), "ORDERS");
    options.extend(nats_sink_tests::options(&[
        ("allow_create_stream", "true"),
        ("kv.history", "64"),
    ]));
    let out = cli(
        run_args(&schema(dir.path()), &input, &options, &[]),
        "",
        WAIT,
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let tombstones = log.tombstones;
    assert!(
        stderr.contains(&format!("{tombstones} Debezium tombstone(s) skipped")),
        "{stderr}"
    );

    let js = async_nats::jetstream::new(server.client().await);
    let store = js.get_key_value("ORDERS").await.unwrap();
    let contents = bucket_contents(&store).await;
    assert_eq!(contents.len(), log.table.len());
    assert!(
        contents == log.table,
        "the bucket differs from the final table"
    );
    let watched: BTreeMap<i64, String> = watched_last(&store)
        .await
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    assert!(watched == log.table, "a watcher's last values differ");
    let stored = assert_history_in_order(&js, "KV_ORDERS").await;
    assert_eq!(stored, log.messages, "one message per change");
    println!(
        "debezium: {} lines ({tombstones} tombstones) over 3,000 keys | {stored} | {} keys live | 0 out of order | bucket = final table |",
        log.lines,
        log.table.len()
    );
}

/// Each malformed change is bad input: exit 2 naming its line and field; the changes before
/// it are confirmed (in the bucket), the one after it is not sent. `--sql` with FORMAT UPSERT
/// takes Debezium input as `--with` does.
#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_change_stops_the_run_with_exit_2_naming_its_line_and_field() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema(dir.path());
    let good = |id: i64| format!("{{\"op\":\"c\",\"after\":{}}}", event_row(id, 1));
    let cases: [(&str, &str); 7] = [
        (
            r#"{"op":"x","after":{"id":9}}"#,
            r#"line 4: op: unknown operation "x""#,
        ),
        (
            r#"{"payload":{"op":"c","before":null,"after":null}}"#,
            "line 4: payload.after: missing or null",
        ),
        (
            r#"{"op":"u","before":{"id":1}}"#,
            "line 4: after: missing or null",
        ),
        (
            r#"{"op":"d","before":null,"after":{"id":1}}"#,
            "line 4: before: missing or null",
        ),
        (
            r#"{"op":"c","after":{"id":null,"version":1}}"#,
            "line 4: after.id: the primary key is null",
        ),
        (
            r#"{"op":"d","before":{"version":1}}"#,
            "line 4: before: primary key column `id` is missing",
        ),
        (
            r#"{"op":"c","after":{"id":"seven"}}"#,
            "line 4, column `after.id`: expected a 64-bit integer",
        ),
    ];
    let js = async_nats::jetstream::new(server.client().await);
    for (case, (bad, expected)) in cases.iter().enumerate() {
        let bucket = format!("BAD{case}");
        let input = dir.path().join(format!("{bucket}.jsonl"));
        std::fs::write(
            &input,
            format!(
                "{}\n{}\n{}\n{bad}\n{}\n",
                good(1),
                good(2),
                good(3),
                good(99)
            ),
        )
        .unwrap();
        let args = if case == 0 {
            let statement = format!(
                "CREATE SINK s FROM t WITH (connector = 'nats', server_url = '{}', connect_mode = 'plain', \
                 primary_key = 'id', kv.bucket = '{bucket}', allow_create_stream = 'true') FORMAT UPSERT ENCODE JSON",
                server.url()
            );
            let mut args = run_args(&schema, &input, &[], &[]);
            args.extend(["--sql".to_string(), statement]);
            args
        } else {
            let mut options = upsert_options(&server.url(), &bucket);
            options.push(("allow_create_stream".into(), "true".into()));
            run_args(&schema, &input, &options, &[])
        };
        let out = cli(args, "", WAIT).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{bad}: expected {expected:?} in {stderr}"
        );
        assert!(stderr.contains("3 rows confirmed"), "{bad}: {stderr}");
        let store = js.get_key_value(&bucket).await.unwrap();
        let contents = bucket_contents(&store).await;
        let keys: Vec<i64> = contents.keys().copied().collect();
        assert_eq!(
            keys,
            [1, 2, 3],
            "{bad}: the lines before it, and nothing after"
        );
    }

    // An append-only sink refuses a delete unless force_append_only drops it.
    server
        .create_stream(NatsServer::stream_config("ROWS", &["rows"]))
        .await;
    let input = dir.path().join("deletes.jsonl");
    std::fs::write(
        &input,
        format!(
            "{}\n{}\n{{\"op\":\"d\",\"before\":{{\"id\":1}}}}\n{}\n",
            good(1),
            good(2),
            good(3)
        ),
    )
    .unwrap();
    let out = cli(
        run_args(&schema, &input, &plain_options(&server, "rows"), &[]),
        "",
        WAIT,
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("force_append_only"), "{stderr}");
    assert_eq!(stream_count(&server.url(), "ROWS").await, Some(2));
    let mut forced = plain_options(&server, "rows");
    forced.push(("force_append_only".into(), "true".into()));
    let out = cli(run_args(&schema, &input, &forced, &[]), "", WAIT).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Lines 1 and 2 again (dropped as duplicates within the window), the delete dropped,
    // line 4 written.
    assert_eq!(stream_count(&server.url(), "ROWS").await, Some(3));
}

/// What a killed run sinks, and what it must leave.
struct Killed<'a> {
    /// `--input-format`.
    format: &'a str,
    input: &'a str,
    bucket: &'a str,
    /// Values the bucket keeps per key.
    history: u8,
    table: &'a BTreeMap<i64, String>,
    /// Messages the input makes, each stored once.
    messages: u64,
    /// Messages stored when the sink is killed, the first time and the second: each in the
    /// middle of a batch, so that part of it is stored.
    kill_at: [u64; 2],
}

/// Sink the input into a bucket whose stream's duplicate window is 1 s, killing the sink
/// (SIGKILL) twice, once `kill_at` messages are stored, and rerunning it
/// with the same `--state` after the window, to the end. The bucket must then equal the
/// table, a watcher agree, and the stream have stored each message once (its last sequence
/// is their number), each key's kept history in order. Returns the runs' `resuming:` lines.
async fn killed_twice_then_resumed(killed: Killed<'_>) -> Vec<String> {
    let Killed {
        format,
        input,
        bucket,
        history,
        table,
        messages,
        kill_at,
    } = killed;
    let server = NatsServer::start_jetstream();
    let js = async_nats::jetstream::new(server.client().await);
    js.create_stream(async_nats::jetstream::stream::Config {
        duplicate_window: Duration::from_secs(1),
        ..nats_sink::kv::bucket_config(bucket, history)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("changes.jsonl");
    std::fs::write(&path, input).unwrap();
    let state = dir.path().join("run.state");
    let mut args = run_args(
        &schema(dir.path()),
        &path,
        &upsert_options(&server.url(), bucket),
        &[
            "--batch-size",
            "300",
            "--state",
            &state.display().to_string(),
        ],
    );
    let at = args.iter().position(|a| a == "debezium").unwrap();
    args[at] = format.to_string();
    let stream = format!("KV_{bucket}");
    let resumes = kill_twice_then_finish(&js, &stream, &args, kill_at).await;

    let store = js.get_key_value(bucket).await.unwrap();
    let contents = bucket_contents(&store).await;
    assert!(
        contents == *table,
        "the bucket differs from the final table"
    );
    let watched: BTreeMap<i64, String> = watched_last(&store)
        .await
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    assert!(watched == *table, "a watcher's last values differ");
    assert_eq!(
        stored_ever(&js, &stream).await,
        messages,
        "each change stored once"
    );
    if history > 1 {
        assert_history_in_order(&js, &stream).await;
    }
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(recorded["in_flight"], serde_json::Value::Null);
    resumes
}

/// Run the CLI with `args`, kill it (SIGKILL) once `stream` has stored `kill_at[0]`
/// messages and again at `kill_at[1]`, each time waiting out the stream's 1 s duplicate
/// window, then rerun it to the end, which must succeed. Returns the runs' `resuming:` lines.
async fn kill_twice_then_finish(
    js: &async_nats::jetstream::Context,
    stream: &str,
    args: &[String],
    kill_at: [u64; 2],
) -> Vec<String> {
    let mut earlier = Vec::new();
    for threshold in kill_at {
        let mut run = spawn_cli_run(args);
        let deadline = Instant::now() + WAIT;
        while stored_ever(js, stream).await < threshold {
            assert!(
                run.is_running(),
                "the CLI ended before {threshold} messages"
            );
            assert!(
                Instant::now() < deadline,
                "{threshold} messages not reached"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        run.kill_hard();
        earlier.push(text(&finish(run).await.stderr));
        // Past the duplicate window: the stream would keep a replayed message again.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    let out = finish(spawn_cli_run(args)).await;
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stderr}\nearlier runs:\n{earlier:#?}"
    );
    let resumes: Vec<String> = earlier
        .iter()
        .map(String::as_str)
        .chain([stderr.as_str()])
        .flat_map(str::lines)
        .filter(|l| l.contains("resuming:"))
        .map(str::to_string)
        .collect();
    for line in &resumes {
        eprintln!("{line}");
    }
    resumes
}

/// Messages `stream` has stored since it was made, those its history dropped included.
async fn stored_ever(js: &async_nats::jetstream::Context, stream: &str) -> u64 {
    let attempt = async {
        let mut stream = js.get_stream(stream).await.ok()?;
        Some(stream.info().await.ok()?.state.last_sequence)
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// The sink killed (SIGKILL) twice while it sinks a changelog of about 30,000 lines into a
/// bucket whose stream's duplicate window is 1 s, and rerun with the same `--state` after
/// the window: the bucket equals the final table, and each change is stored exactly once, in
/// order per key. Replaying the batch in flight whole would store again, after the window,
/// the values of it already stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_run_resumed_with_its_state_stores_each_change_once_in_order() {
    let log = changelog(3_000, 8);
    let resumes = killed_twice_then_resumed(Killed {
        format: "debezium",
        input: &log.text,
        bucket: "RESUMED",
        history: 64,
        table: &log.table,
        messages: log.messages,
        // Half way through a batch of 300 changes.
        kill_at: [log.written_after(6_150), log.written_after(15_150)],
    })
    .await;
    println!(
        // The columns of docs/delivery.md's fault table (a killed run prints no summary, so
        // its sends are not known).
        "PROOF | Debezium changelog into a KV bucket: the sink killed (SIGKILL) 2× during {} lines, duplicate window 1 s, rerun with --state after 1.5 s | — | {} | 0 | each change stored once and in order, the bucket equals the final table; {} of 2 reruns replayed the batch in flight leaving out what was stored |",
        log.lines,
        log.messages,
        resumes.iter().filter(|l| l.contains("leaving out")).count()
    );
}

/// The same for JSON Lines into an upsert sink keeping one value per key: rows are puts, and
/// each of 100 keys is written three times in every batch, so a crash leaves only a key's
/// last stored value of the batch in the stream. The replay must leave out the key's earlier
/// values too (they are gone, not unsent): sending one would bring an old value back.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_json_lines_upsert_run_resumes_exactly_too() {
    let (keys, rounds) = (100, 240);
    let mut input = String::new();
    let mut table = BTreeMap::new();
    for version in 1..=keys * rounds {
        let id = (version - 1) % keys;
        input.push_str(&event_row(id, version));
        input.push('\n');
        table.insert(id, stored_row(id, version));
    }
    let resumes = killed_twice_then_resumed(Killed {
        format: "jsonl",
        input: &input,
        bucket: "PUTS",
        history: 1,
        table: &table,
        messages: (keys * rounds) as u64,
        kill_at: [6_150, 15_150],
    })
    .await;
    assert!(
        resumes.iter().all(|l| !l.contains("unknown")),
        "{resumes:#?}"
    );
}

/// Debezium input into an append-only stream with `force_append_only`: deletes make no
/// message, so a line is not a message; killed twice and resumed with `--state` past the
/// duplicate window, the stream holds every create, read and update's new row exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_append_only_debezium_run_resumes_exactly_once() {
    let server = NatsServer::start_jetstream();
    let js = server
        .create_stream(async_nats::jetstream::stream::Config {
            duplicate_window: Duration::from_secs(1),
            ..NatsServer::stream_config("CHANGES", &["changes"])
        })
        .await;
    let log = changelog(3_000, 8);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("changes.jsonl");
    std::fs::write(&input, &log.text).unwrap();
    let state = dir.path().join("run.state");
    let mut options = plain_options(&server, "changes");
    options.push(("force_append_only".into(), "true".into()));
    let args = run_args(
        &schema(dir.path()),
        &input,
        &options,
        &[
            "--batch-size",
            "300",
            "--state",
            &state.display().to_string(),
        ],
    );
    // Every change but a delete is one message: its new row, as an insert.
    let mut expected: Vec<i64> = Vec::new();
    for line in log.text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let event = event.get("payload").unwrap_or(&event);
        if let Some(version) = event["after"]["version"].as_i64() {
            expected.push(version);
        }
    }
    let quarter = expected.len() as u64 / 4;
    // A kill can land just after a batch began and before any of it was stored: that rerun
    // replays the batch whole (the stream's last message is the batch before's), which is
    // exact too, so either resume is right; what is asserted is the stream below.
    kill_twice_then_finish(&js, "CHANGES", &args, [quarter + 150, 2 * quarter + 150]).await;
    let stored: Vec<i64> = stream_messages(&js, "CHANGES", WAIT)
        .await
        .iter()
        .map(|m| {
            let row: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            row["version"].as_i64().unwrap()
        })
        .collect();
    // In write order, each once.
    assert!(
        stored == expected,
        "{} stored, {} expected; out of order, lost or twice",
        stored.len(),
        expected.len()
    );
}

/// Outside check: a rerun with the same `--state` but another `key_format` or `key_encoding`
/// resumed, and the bucket ended with keys under both names. The state records what makes a
/// key, and refuses a run that makes them otherwise.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_resumed_with_other_key_options_is_refused() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let log = changelog(20, 1);
    let input = dir.path().join("orders.debezium.jsonl");
    std::fs::write(&input, &log.text).unwrap();
    let state = dir.path().join("run.state");
    let state_arg = ["--state", state.to_str().unwrap()];
    let mut options = upsert_options(&server.url(), "KEYS");
    options.extend(nats_sink_tests::options(&[("allow_create_stream", "true")]));
    let first = cli(
        run_args(&schema(dir.path()), &input, &options, &state_arg),
        "",
        WAIT,
    )
    .await;
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    for (key, value) in [("key_format", "k/{id}"), ("key_encoding", "base64url")] {
        let mut changed = options.clone();
        changed.extend(nats_sink_tests::options(&[(key, value)]));
        let rerun = cli(
            run_args(&schema(dir.path()), &input, &changed, &state_arg),
            "",
            WAIT,
        )
        .await;
        let stderr = text(&rerun.stderr);
        assert_eq!(rerun.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains(&format!("{key}={value}")), "{stderr}");
    }
}
