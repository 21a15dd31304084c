//! The very same `.wasm` in a third host: Node.js, through the `js/` package (jco, with the
//! `nats` client as its transport), driven by `tests/jco/run.mjs`. Both hosts sink the example dataset into one nats-server; what the
//! Node host publishes must equal what the wasmtime host publishes, byte for byte.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nats_sink::{Column, Rows, SinkRuntime, Span, Value};
use nats_sink_cli::input::parse_line;
use nats_sink_guest::schema::Schema;
use nats_sink_tests::*;
use serde_json::{json, Value as Json};

const WAIT: Duration = Duration::from_secs(20);

/// Packed rows in the JSON form `tests/jco/run.mjs` reads: each value `{tag, val}`, 64-bit
/// numbers as strings, floats as text (so NaN and the infinities survive), spans as
/// `{start, len}`; the ends and the data as arrays of numbers.
fn rows_json(rows: &Rows) -> Json {
    let tagged = |tag: &str, val: Json| json!({"tag": tag, "val": val});
    let span = |s: &Span| json!({"start": s.start, "len": s.len});
    let values: Json = Json::Array(
        rows.values
            .iter()
            .map(|v| match v {
                Value::Null => json!({"tag": "null"}),
                Value::Boolean(b) => tagged("boolean", json!(b)),
                Value::Int16(n) => tagged("int16", json!(n)),
                Value::Int32(n) => tagged("int32", json!(n)),
                Value::Int64(n) => tagged("int64", json!(n.to_string())),
                Value::Float32(n) => tagged("float32", json!(n.to_string())),
                Value::Float64(n) => tagged("float64", json!(n.to_string())),
                Value::Decimal(s) => tagged("decimal", span(s)),
                Value::Text(s) => tagged("text", span(s)),
                Value::Date(n) => tagged("date", json!(n)),
                Value::Time(n) => tagged("time", json!(n.to_string())),
                Value::Timestamp(n) => tagged("timestamp", json!(n.to_string())),
                Value::Timestamptz(n) => tagged("timestamptz", json!(n.to_string())),
                Value::Interval(i) => tagged(
                    "interval",
                    json!({"months": i.months, "days": i.days, "micros": i.micros.to_string()}),
                ),
                Value::Bytea(s) => tagged("bytea", span(s)),
                Value::Jsonb(s) => tagged("jsonb", span(s)),
                Value::Serial(n) => tagged("serial", json!(n.to_string())),
                Value::Uuid((hi, lo)) => tagged("uuid", json!([hi.to_string(), lo.to_string()])),
                Value::List(r) => tagged("list", json!({"start": r.start, "len": r.len})),
                Value::Struct(r) => tagged("struct", json!({"start": r.start, "len": r.len})),
            })
            .collect(),
    );
    json!({"values": values, "ends": rows.ends, "data": rows.data})
}

/// The example dataset as rows, with its columns.
fn example_rows() -> (Vec<Column>, Rows) {
    let schema_file: Json = serde_json::from_str(
        &std::fs::read_to_string(repo_file("examples/all_types.schema.json")).unwrap(),
    )
    .unwrap();
    let columns: Vec<Column> = schema_file["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Column {
            name: c["name"].as_str().unwrap().into(),
            data_type: c["type"].as_str().unwrap().into(),
        })
        .collect();
    let schema = Schema::parse(
        columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str())),
    )
    .unwrap();
    let input = std::fs::read_to_string(repo_file("examples/all_types.jsonl")).unwrap();
    let rows = input
        .lines()
        .enumerate()
        .map(|(i, line)| parse_line(&schema, i as u64 + 1, line).unwrap())
        .collect();
    (columns, rows)
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (run ./setup.sh)"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The package's transpiled component, which `just build` makes.
fn node_host_ready() {
    assert!(
        repo_file("js/component/nats-sink.js").exists(),
        "js/component is missing: run `just build` (after ./setup.sh's npm ci in js/)"
    );
}

/// `tests/jco/run.mjs`: the Node host opens the sink with `options`, writes `rows`, flushes.
async fn node_sink(work: &Path, columns: &[Column], rows: &Rows, options: Vec<(String, String)>) {
    let rows_path = work.join("rows.json");
    let columns_json: Vec<Json> = columns
        .iter()
        .map(|c| json!({"name": c.name, "dataType": c.data_type}))
        .collect();
    std::fs::write(
        &rows_path,
        json!({"columns": columns_json, "rows": rows_json(rows)}).to_string(),
    )
    .unwrap();
    let options_path = work.join("options.json");
    let node_options: Vec<[String; 2]> = options.into_iter().map(|(k, v)| [k, v]).collect();
    std::fs::write(&options_path, serde_json::to_string(&node_options).unwrap()).unwrap();
    let node = tokio::task::spawn_blocking({
        let script = repo_file("tests/jco/run.mjs");
        move || {
            run(
                Command::new("node")
                    .arg(script)
                    .arg(&rows_path)
                    .arg(&options_path)
                    .current_dir(Path::new(env!("CARGO_MANIFEST_DIR"))),
                "node run.mjs",
            )
        }
    });
    tokio::time::timeout(Duration::from_secs(60), node)
        .await
        .expect("the Node host finished within 60 s")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_host_publishes_exactly_what_the_wasmtime_host_publishes() {
    let work = tempfile::tempdir().unwrap();
    node_host_ready();

    let (columns, rows) = example_rows();
    let server = NatsServer::start();
    let client = server.client().await;
    let mut from_wasmtime = client.subscribe("wasmtime.rows").await.unwrap();
    let mut from_node = client.subscribe("node.rows").await.unwrap();
    client.flush().await.unwrap();

    let runtime = SinkRuntime::load(component_path()).unwrap();
    let mut sink = runtime
        .open(&plain_options(&server, "wasmtime.rows"), &columns)
        .await
        .unwrap();
    sink.begin_checkpoint(1).await.unwrap();
    sink.write(&rows).await.unwrap();
    sink.flush().await.unwrap();

    let options = plain_options(&server, "node.rows");
    node_sink(work.path(), &columns, &rows, options).await;

    let wasmtime = collect(&mut from_wasmtime, rows.len(), WAIT).await;
    let node = collect(&mut from_node, rows.len(), WAIT).await;
    assert_eq!(wasmtime.len(), rows.len());
    assert_eq!(node.len(), rows.len());
    for (i, (a, b)) in wasmtime.iter().zip(&node).enumerate() {
        assert_eq!(
            a.payload,
            b.payload,
            "row {i} differs:\nwasmtime: {}\nnode:     {}",
            String::from_utf8_lossy(&a.payload),
            String::from_utf8_lossy(&b.payload)
        );
    }
}

/// Issue 15: the Node host honours `allow_create_stream` as the wasmtime host does: the stream
/// the guest names, with its limits, holding every row.
#[tokio::test(flavor = "multi_thread")]
async fn the_node_host_creates_the_requested_stream() {
    let work = tempfile::tempdir().unwrap();
    node_host_ready();
    let (columns, rows) = example_rows();
    let server = NatsServer::start_jetstream();
    let mut options = plain_options(&server, "node.created");
    options.extend(nats_sink_tests::options(&[
        ("allow_create_stream", "true"),
        ("max_messages", "5000"),
        ("max_message_size", "65536"),
        ("max_consumers", "4"),
    ]));
    node_sink(work.path(), &columns, &rows, options).await;

    let name = nats_sink_guest::stream::stream_name("node.created");
    let js = async_nats::jetstream::new(server.client().await);
    let mut stream = js
        .get_stream(&name)
        .await
        .expect("the Node host created it");
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.subjects, vec!["node.created".to_string()]);
    assert_eq!(info.config.max_messages, 5000);
    assert_eq!(info.config.max_message_size, 65536);
    assert_eq!(info.config.max_consumers, 4);
    assert_eq!(info.config.max_bytes, -1);
    assert_eq!(info.state.messages, rows.len() as u64);
}
