//! Upsert into a NATS KV bucket (issue 30), against real `nats-server` processes: a changelog
//! sunk through server crashes and late acks leaves the bucket equal to the final table, each
//! key's history in write order; and each way it can be refused says why.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use nats_sink::{Datum, HostError, Op, Rows, SinkError, SinkRuntime};
use nats_sink_tests::*;

const KEYS: i64 = 3_000;
const ROUNDS: i64 = 4;
const BATCH: usize = 500;
const WAIT: Duration = Duration::from_secs(60);

fn upsert_options(url: &str, bucket: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut pairs = options(&[
        ("server_url", url),
        ("connect_mode", "plain"),
        ("type", "upsert"),
        ("kv.bucket", bucket),
        ("primary_key", "id"),
    ]);
    pairs.extend(options(extra));
    pairs
}

fn schema() -> Vec<nats_sink::Column> {
    columns(&[("id", "bigint"), ("version", "bigint"), ("name", "varchar")])
}

/// The JSON the sink writes for a row: keys sorted, as the append-only sink writes it.
fn json(id: i64, version: i64) -> String {
    format!("{{\"id\":{id},\"name\":\"k{id}-v{version}\",\"version\":{version}}}")
}

fn row(id: i64, version: i64) -> Vec<Datum> {
    vec![
        Datum::Bigint(id),
        Datum::Bigint(version),
        Datum::Varchar(format!("k{id}-v{version}")),
    ]
}

/// A changelog over `KEYS` keys: each round inserts the keys not live, updates the live ones,
/// and deletes every third; the final table is what it leaves.
/// Rows with their operations, in write order.
type Changes = Vec<(Op, Vec<Datum>)>;

fn changelog() -> (Changes, BTreeMap<i64, String>) {
    let mut live: BTreeMap<i64, i64> = BTreeMap::new();
    let mut changes = Vec::new();
    let mut version = 0;
    for round in 0..ROUNDS {
        for id in 0..KEYS {
            version += 1;
            match live.get(&id).copied() {
                None => {
                    changes.push((Op::Insert, row(id, version)));
                    live.insert(id, version);
                }
                Some(old) if (id + round) % 3 == 0 => {
                    changes.push((Op::Delete, row(id, old)));
                    live.remove(&id);
                }
                Some(old) => {
                    changes.push((Op::UpdateDelete, row(id, old)));
                    changes.push((Op::UpdateInsert, row(id, version)));
                    live.insert(id, version);
                }
            }
        }
    }
    let table = live.into_iter().map(|(id, v)| (id, json(id, v))).collect();
    (changes, table)
}

/// The bucket's live keys and values, read with another client.
pub(crate) async fn bucket_contents(
    store: &async_nats::jetstream::kv::Store,
) -> BTreeMap<i64, String> {
    let mut keys = store.keys().await.expect("list the keys");
    let mut contents = BTreeMap::new();
    while let Some(key) = tokio::time::timeout(WAIT, keys.next())
        .await
        .expect("keys in time")
    {
        let key = key.expect("a key");
        let value = store.get(&key).await.expect("get").expect("a live key");
        contents.insert(
            key.parse().expect("an integer key"),
            String::from_utf8(value.to_vec()).expect("JSON text"),
        );
    }
    contents
}

/// What a watcher of every key sees as each key's last entry: its value, or none if deleted.
pub(crate) async fn watched_last(
    store: &async_nats::jetstream::kv::Store,
) -> BTreeMap<i64, Option<String>> {
    let mut watch = store.watch_with_history(">").await.expect("watch");
    let mut last = BTreeMap::new();
    loop {
        let entry = tokio::time::timeout(WAIT, watch.next())
            .await
            .expect("the watcher delivers in time")
            .expect("the watch goes on")
            .expect("an entry");
        let value = match entry.operation {
            Operation::Put => Some(String::from_utf8(entry.value.to_vec()).unwrap()),
            Operation::Delete | Operation::Purge => None,
        };
        last.insert(entry.key.parse().unwrap(), value);
        // The last entry of the history the watch started with.
        if entry.delta == 0 {
            return last;
        }
    }
}

/// Inserts, updates and deletes over 3,000 keys, sunk while the server is killed and
/// restarted twice and frozen past `ack_timeout_ms` once: the bucket holds exactly the final
/// table, a watcher agrees, and every key's history (kept whole: kv.history = 64) is in the
/// order it was written, so no resend brought an old value back.
#[tokio::test(flavor = "multi_thread")]
async fn a_changelog_through_restarts_and_late_acks_leaves_exactly_the_final_table() {
    let mut server = NatsServer::start_jetstream();
    let url = server.url();
    let (changes, table) = changelog();
    let options = upsert_options(
        &url,
        "TABLE",
        &[
            ("allow_create_stream", "true"),
            ("kv.history", "64"),
            ("ack_timeout_ms", "300"),
            ("retry.max_elapsed_ms", "60000"),
            ("max_in_flight", "256"),
        ],
    );
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let mut sink = runtime.open(&options, &schema()).await.unwrap();
    let checkpoints = Arc::new(AtomicU64::new(0));
    let total = changes.len();
    // Batches of about BATCH rows; an update pair never straddles two.
    let mut batches: Vec<Rows> = vec![Rows::new()];
    for (op, values) in &changes {
        let last = batches.last_mut().unwrap();
        last.push_with_op(*op, values);
        if last.len() >= BATCH && *op != Op::UpdateDelete {
            batches.push(Rows::new());
        }
    }
    let done = checkpoints.clone();
    let writer = tokio::spawn(async move {
        for (checkpoint, rows) in batches.iter().enumerate() {
            sink.begin_checkpoint(checkpoint as u64 + 1).await.unwrap();
            sink.write(rows).await.unwrap();
            sink.flush().await.unwrap();
            done.store(checkpoint as u64 + 1, Ordering::SeqCst);
        }
        let sent = sink.metrics().snapshot();
        sink.close().await.unwrap();
        sent
    });
    let batches = total.div_ceil(BATCH) as u64 - 1;
    let wait_for = |n: u64| {
        let checkpoints = checkpoints.clone();
        async move {
            let deadline = Instant::now() + WAIT;
            while checkpoints.load(Ordering::SeqCst) < n {
                assert!(Instant::now() < deadline, "checkpoint {n} not reached");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(batches / 4).await;
    server.kill();
    assert!(tokio::task::block_in_place(|| server.restart()));
    wait_for(batches / 2).await;
    // Frozen: every ack now comes back later than ack_timeout_ms, and is sent again.
    server.pause();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    server.resume();
    wait_for(3 * batches / 4).await;
    server.kill();
    assert!(tokio::task::block_in_place(|| server.restart()));
    let sent = tokio::time::timeout(Duration::from_secs(180), writer)
        .await
        .expect("the changelog is sunk in time")
        .expect("every checkpoint confirmed");

    let js = async_nats::jetstream::new(server.client().await);
    let store = js.get_key_value("TABLE").await.unwrap();
    let contents = bucket_contents(&store).await;
    assert_eq!(contents.len(), table.len());
    assert!(contents == table, "the bucket differs from the final table");
    let watched = watched_last(&store).await;
    let watched_live: BTreeMap<i64, String> = watched
        .iter()
        .filter_map(|(k, v)| Some((*k, v.clone()?)))
        .collect();
    assert!(watched_live == table, "a watcher's last values differ");
    assert_eq!(watched.len() as i64, KEYS, "every key was written");

    // Each key's history, oldest first: versions only ever grow.
    let mut stream = js.get_stream("KV_TABLE").await.unwrap();
    let stored = stream.info().await.unwrap().state.messages;
    let messages = stream_messages(&js, "KV_TABLE", WAIT).await;
    assert_eq!(messages.len() as u64, stored);
    let mut latest: BTreeMap<String, i64> = BTreeMap::new();
    for message in &messages {
        if message.payload.is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        let version = value["version"].as_i64().unwrap();
        let before = latest.insert(message.subject.to_string(), version);
        assert!(
            before.is_none_or(|b| b <= version),
            "{}: version {version} stored after {before:?}",
            message.subject
        );
    }
    // The columns of docs/delivery.md's fault table: messages sent (first sends and
    // resends), messages in the stream, duplicates, outcome.
    println!(
        "PROOF | upsert into a KV bucket: {total} changes over {KEYS} keys, server killed (SIGKILL) and restarted twice, frozen past ack_timeout_ms once | {} | {stored} | 0 | the bucket equals the final table ({} live keys), a watcher agrees, every key's history in write order |",
        sent.messages + sent.retries,
        table.len()
    );
}

/// Runs `rows` through an upsert sink on `bucket` and returns the write's error.
async fn refused_write(
    runtime: &SinkRuntime,
    options: &[(String, String)],
    rows: &Rows,
) -> SinkError {
    let mut sink = runtime.open(options, &schema()).await.unwrap();
    match sink.write(rows).await {
        Err(HostError::Sink(e)) => e,
        other => panic!("not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_keys_bad_operations_and_missing_columns_are_refused_naming_row_and_column() {
    let server = NatsServer::start_jetstream();
    let url = server.url();
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let create = [("allow_create_stream", "true")];

    // A varchar key with a space: no KV key can hold it, so it is refused by name...
    let mut by_name = upsert_options(&url, "KEYS", &create);
    by_name.retain(|(k, _)| k != "primary_key");
    by_name.push(("primary_key".into(), "name".into()));
    let mut rows = Rows::new();
    rows.push(&[
        Datum::Bigint(1),
        Datum::Bigint(1),
        Datum::Varchar("ok".into()),
    ]);
    rows.push(&[
        Datum::Bigint(2),
        Datum::Bigint(1),
        Datum::Varchar("a b".into()),
    ]);
    let err = refused_write(&runtime, &by_name, &rows).await;
    let SinkError::InvalidRow(problem) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (problem.row, problem.column.as_str()),
        (1, "name"),
        "{err:?}"
    );
    assert!(
        problem.message.contains("key_encoding = 'base64url'"),
        "{err:?}"
    );
    // ...and with base64url it is encoded, reversibly.
    by_name.push(("key_encoding".into(), "base64url".into()));
    let mut sink = runtime.open(&by_name, &schema()).await.unwrap();
    sink.write(&rows).await.unwrap();
    sink.flush().await.unwrap();
    let js = async_nats::jetstream::new(server.client().await);
    let store = js.get_key_value("KEYS").await.unwrap();
    assert!(
        store.get("YSBi").await.unwrap().is_some(),
        "`a b` as base64url"
    );

    // An update-delete without its update-insert.
    let mut rows = Rows::new();
    rows.push_with_op(Op::Insert, &row(1, 1));
    rows.push_with_op(Op::UpdateDelete, &row(1, 1));
    rows.push_with_op(Op::Delete, &row(1, 1));
    let err = refused_write(&runtime, &upsert_options(&url, "KEYS", &[]), &rows).await;
    assert!(
        matches!(&err, SinkError::InvalidRow(p) if p.row == 1 && p.message.contains("update-insert")),
        "{err:?}"
    );

    // An append-only sink takes inserts only.
    let mut append = plain_options(&server, "rows");
    let mut rows = Rows::new();
    rows.push_with_op(Op::Insert, &row(1, 1));
    rows.push_with_op(Op::Delete, &row(1, 1));
    let mut sink = runtime.open(&append, &schema()).await.unwrap();
    let err = sink.write(&rows).await.unwrap_err();
    assert!(err.to_string().contains("force_append_only"), "{err}");
    append.push(("force_append_only".into(), "true".into()));
    let mut sink = runtime.open(&append, &schema()).await.unwrap();
    sink.write(&rows).await.unwrap();

    // A primary key column the schema lacks.
    let mut missing = upsert_options(&url, "KEYS", &[]);
    missing.retain(|(k, _)| k != "primary_key");
    missing.push(("primary_key".into(), "id,region".into()));
    let err = runtime.open(&missing, &schema()).await.err().unwrap();
    assert!(
        matches!(&err, HostError::Sink(SinkError::InvalidOptions(p)) if p[0].name == "primary_key" && p[0].message.contains("`region`")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_bucket_and_a_user_without_permission_fail_with_exit_1_and_say_why() {
    let server = NatsServer::with_config(
        "jetstream { store_dir: \"{dir}/js\" }\n\
         authorization { users = [\n\
           { user: admin, password: admin-pw }\n\
           { user: reader, password: reader-pw, permissions: { publish: { deny: [\"$KV.PRICES.>\"] } } }\n\
         ] }",
    );
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(
        dir.path(),
        &[("id", "bigint"), ("version", "bigint"), ("name", "varchar")],
    );
    let input = dir.path().join("rows.jsonl");
    std::fs::write(&input, "{\"id\":1,\"version\":1,\"name\":\"a\"}\n").unwrap();
    let run = |user: &str, password: &str| {
        let mut args = vec![
            "run".to_string(),
            "--schema".into(),
            schema.display().to_string(),
            "--input".into(),
            input.display().to_string(),
        ];
        let mut options = upsert_options(&url, "PRICES", &[("ack_timeout_ms", "1000")]);
        options.retain(|(k, _)| k != "connect_mode");
        options.extend(nats_sink_tests::options(&[
            ("connect_mode", "user_and_password"),
            ("username", user),
            ("password", password),
        ]));
        args.extend(with_args(&options));
        args
    };

    let out = cli(run("admin", "admin-pw"), "", WAIT).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("KV bucket `PRICES` does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("allow_create_stream"), "{stderr}");

    let admin = async_nats::ConnectOptions::new()
        .user_and_password("admin".into(), "admin-pw".into())
        .connect(&url)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(admin);
    // A stream named as the bucket's but not capturing its keys is no bucket: the puts would
    // go out on core NATS and be stored nowhere, so the run fails before sending any.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KV_PRICES".into(),
        subjects: vec!["fake.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let out = cli(run("admin", "admin-pw"), "", WAIT).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not capture `$KV.PRICES.>`"),
        "{stderr}"
    );
    js.delete_stream("KV_PRICES").await.unwrap();
    js.create_stream(nats_sink::kv::bucket_config("PRICES", 1))
        .await
        .unwrap();
    let out = cli(run("admin", "admin-pw"), "", WAIT).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(run("reader", "reader-pw"), "", WAIT).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains("permission"), "{stderr}");
    assert!(stderr.contains("$KV.PRICES.1"), "{stderr}");
}

/// `--sql` with `FORMAT UPSERT ENCODE JSON (key_format = ...)`: JSON Lines rows are inserts,
/// each a put at its key, so the bucket holds each key's last row.
#[tokio::test(flavor = "multi_thread")]
async fn a_format_upsert_statement_sinks_json_lines_into_a_bucket() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(
        dir.path(),
        &[("id", "bigint"), ("version", "bigint"), ("name", "varchar")],
    );
    let statement = format!(
        "CREATE SINK s FROM t WITH (connector = 'nats', server_url = '{}', connect_mode = 'plain', \
         primary_key = 'id', kv.bucket = 'SQL', allow_create_stream = 'true') \
         FORMAT UPSERT ENCODE JSON (key_format = 'row/{{id}}')",
        server.url()
    );
    let lines = format!("{}\n{}\n{}\n", json(1, 1), json(2, 1), json(1, 2));
    let args = vec![
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
        "--sql".into(),
        statement,
    ];
    let out = cli(args, &lines, WAIT).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let js = async_nats::jetstream::new(server.client().await);
    let store = js.get_key_value("SQL").await.unwrap();
    let value = |key: &'static str| {
        let store = store.clone();
        async move {
            store
                .get(key)
                .await
                .unwrap()
                .map(|v| String::from_utf8(v.to_vec()).unwrap())
        }
    };
    assert_eq!(value("row/1").await, Some(json(1, 2)));
    assert_eq!(value("row/2").await, Some(json(2, 1)));
}

/// The order-per-key rule itself: with the server frozen, a second value of a key is not sent
/// while the first is unconfirmed (its acks time out and it is resent, still first), so the
/// publish cannot return; thawed, both are stored in write order. Before the rule, the
/// publish returned at once with both values in the client's buffer, and a resend of the
/// first could land after the second.
#[tokio::test(flavor = "multi_thread")]
async fn a_later_value_of_a_key_waits_until_the_earlier_one_is_acked() {
    use nats_sink::transport::NatsConnection;
    use nats_sink::wit::{Auth, ConnectConfig, Delivery, KvBucket};
    use nats_sink::OutgoingMessage;

    let server = NatsServer::start_jetstream();
    let js = async_nats::jetstream::new(server.client().await);
    js.create_stream(nats_sink::kv::bucket_config("ORDER", 64))
        .await
        .unwrap();
    let config = ConnectConfig {
        servers: vec![server.url()],
        auth: Auth::None,
        tls: None,
        connect_timeout_ms: 5_000,
        flush_timeout_ms: 60_000,
        delivery: Delivery {
            ack_timeout_ms: 200,
            max_in_flight: 64,
            max_attempts: 1_000,
            max_elapsed_ms: 60_000,
            initial_backoff_ms: 50,
            max_backoff_ms: 200,
        },
        create_stream: None,
        kv: Some(KvBucket {
            name: "ORDER".into(),
            create_with_history: None,
        }),
    };
    let mut connection = NatsConnection::connect(config).await.unwrap();
    let value = |position: u32, text: &str| OutgoingMessage {
        subject: "$KV.ORDER.k".into(),
        headers: vec![(
            "Nats-Msg-Id".parse().unwrap(),
            format!("order-test:1:{position}").parse().unwrap(),
        )],
        payload: text.to_string().into(),
    };
    // The route is known before the freeze.
    connection
        .publish_messages(vec![value(0, "v0")])
        .await
        .unwrap();
    connection.flush().await.unwrap();

    server.pause();
    let mut publish = tokio::spawn(async move {
        let result = connection
            .publish_messages(vec![value(1, "v1"), value(2, "v2")])
            .await;
        (connection, result)
    });
    // Ten ack timeouts: the second value is still held back behind the first.
    let early = tokio::time::timeout(Duration::from_secs(2), &mut publish).await;
    assert!(
        early.is_err(),
        "the publish returned while the key's first value was unconfirmed"
    );
    server.resume();
    let (mut connection, result) = tokio::time::timeout(WAIT, publish)
        .await
        .expect("the publish ends once the server thaws")
        .unwrap();
    result.unwrap();
    connection.flush().await.unwrap();
    let stored: Vec<String> = stream_messages(&js, "KV_ORDER", WAIT)
        .await
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(stored, ["v0", "v1", "v2"]);
}

/// Outside check: `check` said "ok: the sink creates it" for a bucket whose keys another
/// stream already captured, and `run` then failed creating it. Both now say why at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_another_stream_overlaps_is_refused_by_check_and_run() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("CATCH", &["$KV.STOLEN.>"]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(
        dir.path(),
        &[("id", "bigint"), ("version", "bigint"), ("name", "varchar")],
    );
    let input = dir.path().join("rows.jsonl");
    std::fs::write(&input, "{\"id\":1,\"version\":1,\"name\":\"a\"}\n").unwrap();
    let options = upsert_options(&server.url(), "STOLEN", &[("allow_create_stream", "true")]);
    for command in ["check", "run"] {
        let mut args = vec![command.to_string()];
        if command == "run" {
            args.extend(["--schema".to_string(), schema.display().to_string()]);
            args.extend(["--input".to_string(), input.display().to_string()]);
        }
        args.extend(with_args(&options));
        let out = cli(args, "", WAIT).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{command}: {stdout}{stderr}");
        assert!(
            format!("{stdout}{stderr}").contains("stream CATCH already captures"),
            "{command}: {stdout}{stderr}"
        );
    }
}
