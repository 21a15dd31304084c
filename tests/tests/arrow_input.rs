//! The CLI reading Parquet and Arrow IPC files, against a real nats-server: the same rows
//! publish the same bytes as from JSON Lines (with the schema derived from the file, or given),
//! a value that does not fit stops the run (exit 2, naming its row) after the rows before it
//! are confirmed, and a truncated file is exit 2, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema as ArrowSchema};
use nats_sink::{Column, Datum};
use nats_sink_cli::input::parse_line;
use nats_sink_rules::schema::Schema;
use nats_sink_tests::arrow::record_batch;
use nats_sink_tests::streaming::RowTally;
use nats_sink_tests::*;

const WAIT: Duration = Duration::from_secs(20);
/// Rows of the example dataset each test sends: several batches of the sizes used below.
const ROWS: usize = 300;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The example dataset's first `ROWS` lines, keeping only `columns`: as a JSON Lines file and
/// as record batches of `batch_rows` rows (RisingWave's Arrow form of each type).
fn example_rows(dir: &Path, columns: &[Column], batch_rows: usize) -> (PathBuf, Vec<RecordBatch>) {
    let schema = Schema::parse(
        columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str())),
    )
    .unwrap();
    let source = std::fs::read_to_string(repo_file("examples/all_types.jsonl")).unwrap();
    let mut jsonl = String::new();
    let mut rows: Vec<Vec<Datum>> = Vec::new();
    for (index, line) in source.lines().take(ROWS).enumerate() {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).unwrap();
        object.retain(|key, _| columns.iter().any(|c| &c.name == key));
        let kept = serde_json::Value::Object(object).to_string();
        rows.push(parse_line(&schema, index as u64 + 1, &kept).unwrap());
        jsonl.push_str(&kept);
        jsonl.push('\n');
    }
    let path = dir.join("rows.jsonl");
    std::fs::write(&path, jsonl).unwrap();
    let batches = rows
        .chunks(batch_rows)
        .map(|chunk| record_batch(columns, chunk))
        .collect();
    (path, batches)
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.close().unwrap();
}

fn write_ipc_file(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = arrow_ipc::writer::FileWriter::try_new(file, &batches[0].schema()).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
}

fn write_ipc_stream(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(file, &batches[0].schema()).unwrap();
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
}

/// Run the CLI on `input` into a stream of its own; its output and the payloads stored.
async fn sink(
    server: &NatsServer,
    name: &str,
    input: &Path,
    schema: Option<&Path>,
    extra: &[&str],
) -> (std::process::Output, Vec<Vec<u8>>) {
    let js = server
        .create_stream(NatsServer::stream_config(name, &[name]))
        .await;
    let mut args = vec![
        "run".to_string(),
        "--input".into(),
        input.display().to_string(),
    ];
    if let Some(schema) = schema {
        args.extend(["--schema".to_string(), schema.display().to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(with_args(&plain_options(server, name)));
    let out = cli(args, "", WAIT).await;
    let payloads = stream_messages(&js, name, WAIT)
        .await
        .into_iter()
        .map(|m| m.payload.to_vec())
        .collect();
    (out, payloads)
}

#[tokio::test(flavor = "multi_thread")]
async fn arrow_ipc_file_and_stream_publish_what_json_lines_does() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let schema = repo_file("examples/all_types.schema.json");
    let columns = columns_of_schema_file(&schema);
    // Batches of 70 in the files, 64 rows a checkpoint: batches are cut and joined.
    let (jsonl, batches) = example_rows(dir.path(), &columns, 70);
    let file = dir.path().join("rows.arrow");
    write_ipc_file(&file, &batches);
    let stream = dir.path().join("rows.arrows");
    write_ipc_stream(&stream, &batches);
    let batch = ["--batch-size", "64"];

    let (out, expected) = sink(&server, "JL", &jsonl, Some(&schema), &batch).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(expected.len(), ROWS);
    // `serial` has no Arrow form of its own (it is int64): the schema is given.
    for (name, input) in [("IPCFILE", &file), ("IPCSTREAM", &stream)] {
        let (out, payloads) = sink(&server, name, input, Some(&schema), &batch).await;
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert!(
            payloads == expected,
            "{name}: the payloads differ from JSON Lines'"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn parquet_without_schema_publishes_what_json_lines_does() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    // Every example column Parquet holds and the file's schema names exactly: arrow-rs
    // writes no Parquet interval, and `serial` reads back as bigint.
    let columns: Vec<Column> = columns_of_schema_file(&repo_file("examples/all_types.schema.json"))
        .into_iter()
        .filter(|c| c.name != "ttl" && c.name != "seq")
        .collect();
    let pairs: Vec<(&str, &str)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str()))
        .collect();
    let schema = schema_file(dir.path(), &pairs);
    let (jsonl, batches) = example_rows(dir.path(), &columns, 100);
    let parquet = dir.path().join("rows.parquet");
    write_parquet(&parquet, &batches);

    let (out, expected) = sink(
        &server,
        "JL",
        &jsonl,
        Some(&schema),
        &["--batch-size", "64"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (out, payloads) = sink(&server, "PQ", &parquet, None, &["--batch-size", "64"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(payloads.len(), ROWS);
    assert!(payloads == expected, "the payloads differ from JSON Lines'");
}

fn ids(values: &[i64]) -> RecordBatch {
    let schema = Arc::new(ArrowSchema::new(vec![Field::new(
        "id",
        DataType::Int64,
        false,
    )]));
    let array: ArrayRef = Arc::new(Int64Array::from(values.to_vec()));
    RecordBatch::try_new(schema, vec![array]).unwrap()
}

/// Writes record batches to a file in one format.
type WriteFile = fn(&Path, &[RecordBatch]);

/// Row 4 does not fit a smallint, in the second checkpoint (two rows each): the run stops
/// there after the 3 rows before it. In the IPC file (batches of 3 rows cut at 2) row 5 is
/// carried past the checkpoint row 4 fails; it comes after the refused row, so it is not
/// sent either (before the one read loop, it was).
#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_value_stops_after_the_rows_before_it() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "smallint")]);
    let cases: [(&str, &str, WriteFile, [&[i64]; 2]); 2] = [
        (
            "OOR",
            "ids.parquet",
            write_parquet,
            [&[1, 2, 3], &[70_000, 5]],
        ),
        (
            "CARRY",
            "ids.arrow",
            write_ipc_file,
            [&[1, 2, 3], &[70_000, 5, 6]],
        ),
    ];
    for (name, file, write, [first, second]) in cases {
        let path = dir.path().join(file);
        write(&path, &[ids(first), ids(second)]);
        let (out, payloads) =
            sink(&server, name, &path, Some(&schema), &["--batch-size", "2"]).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains("row 4, column `id`"), "{file}: {stderr}");
        assert!(stderr.contains("3 rows confirmed"), "{file}: {stderr}");
        assert_eq!(payloads.len(), 3, "{file}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_files_are_exit_2() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let batches = [ids(&[1, 2, 3]), ids(&[4, 5, 6])];
    let cases: [(&str, &str, WriteFile); 3] = [
        ("TPQ", "t.parquet", write_parquet),
        ("TAF", "t.arrow", write_ipc_file),
        ("TAS", "t.arrows", write_ipc_stream),
    ];
    for (name, file, write) in cases {
        let path = dir.path().join(file);
        write(&path, &batches);
        let bytes = std::fs::read(&path).unwrap();
        // Cut inside the second batch's buffers (the stream ends with 8 bytes of end marker).
        std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
        let (out, payloads) = sink(&server, name, &path, None, &["--batch-size", "3"]).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains("input"), "{file}: {stderr}");
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
        // A stream is read as it comes: its whole first batch is delivered before the cut.
        if file.ends_with(".arrows") {
            assert_eq!(payloads.len(), 3, "{file}: {stderr}");
        }
    }
}

/// Rows `from..to` of the numbered dataset (`id`, `name` = "row-<id>"), as record batches
/// of `batch_rows` rows.
fn numbered(from: u64, to: u64, batch_rows: u64) -> Vec<RecordBatch> {
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    (from..to)
        .step_by(batch_rows as usize)
        .map(|start| {
            let ids: Vec<i64> = (start..(start + batch_rows).min(to))
                .map(|i| i as i64)
                .collect();
            let names: Vec<String> = ids.iter().map(|i| format!("row-{i}")).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(arrow_array::StringArray::from(names)),
            ];
            RecordBatch::try_new(schema.clone(), columns).unwrap()
        })
        .collect()
}

/// The run's arguments: `input` into subject `subject`, with `--state`.
fn state_args(
    server: &NatsServer,
    subject: &str,
    input: &Path,
    state: &Path,
    batch: &str,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--input",
        &input.display().to_string(),
        "--state",
        &state.display().to_string(),
        "--batch-size",
        batch,
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(with_args(&plain_options(server, subject)));
    args
}

/// How the rows came out in a stream: messages, and each row id's count.
async fn tally(server: &NatsServer, stream: &str) -> RowTally {
    let js = async_nats::jetstream::new(server.client().await);
    let mut tally = RowTally::default();
    for message in stream_messages(&js, stream, WAIT).await {
        tally.add(&message.payload);
    }
    tally
}

/// A Parquet file and an Arrow IPC file (its batches of 700 rows cut across checkpoints of
/// 1,000), each sunk with `--state` and killed (SIGKILL) twice mid-way into a stream whose
/// duplicate window is 1 s, then rerun after the window: every row exactly once. Each
/// rerun reads through its confirmed row (checking it) and the batch in flight (checking its
/// checkpoint id is the one sent, else it refuses), then skips what the stream holds of it.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_columnar_run_resumes_from_its_state_exactly_once() {
    const ROWS: u64 = 60_000;
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("rows.parquet");
    write_parquet(&parquet, &numbered(0, ROWS, 4096));
    let arrow = dir.path().join("rows.arrow");
    write_ipc_file(&arrow, &numbered(0, ROWS, 700));
    for (name, input) in [("KPQ", &parquet), ("KAF", &arrow)] {
        server
            .create_stream(async_nats::jetstream::stream::Config {
                duplicate_window: Duration::from_secs(1),
                ..NatsServer::stream_config(name, &[name])
            })
            .await;
        let state = dir.path().join(format!("{name}.state"));
        let args = state_args(&server, name, input, &state, "1000");
        let mut earlier = Vec::new();
        for threshold in [15_000, 35_000] {
            let mut run = spawn_cli_run(&args);
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while stream_count(&server.url(), name).await.unwrap_or(0) < threshold {
                assert!(
                    run.is_running(),
                    "{name}: the CLI ended before {threshold} rows"
                );
                assert!(
                    std::time::Instant::now() < deadline,
                    "{name}: {threshold} rows not reached"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            run.kill_hard();
            earlier.push(text(&finish(run).await.stderr));
            // Past the duplicate window: the stream would keep a replayed row twice.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        let out = finish(spawn_cli_run(&args)).await;
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {stderr}\nearlier runs: {earlier:#?}"
        );
        let tally = tally(&server, name).await;
        assert_eq!(tally.missing(ROWS), Vec::<u64>::new(), "{name}: rows lost");
        assert_eq!(tally.duplicates(), 0, "{name}: rows stored twice");
        assert_eq!(tally.messages as u64, ROWS);
        let recorded: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(recorded["confirmed"]["line"], ROWS, "{name}");
        assert_eq!(recorded["record_batches"], true, "{name}");
        assert_eq!(recorded["in_flight"], serde_json::Value::Null, "{name}");
        for line in earlier.iter().chain([&stderr]).flat_map(|e| e.lines()) {
            if line.contains("resuming:") {
                eprintln!("{name}: {line}");
            }
        }
    }
}

/// A state whose Parquet input changed under it is refused (exit 2, naming the state and
/// why) before anything is sent: a value of the confirmed row changed, the file shrank, or
/// another --batch-size counts its batches otherwise. So is `--state` with standard input.
#[tokio::test(flavor = "multi_thread")]
async fn a_columnar_state_whose_input_changed_is_refused() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("CHG", &["CHG"]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("rows.parquet");
    write_parquet(&parquet, &numbered(0, 100, 100));
    let state = dir.path().join("run.state");
    let args = state_args(&server, "CHG", &parquet, &state, "30");
    let out = cli(args.clone(), "", WAIT).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Run again: nothing is left to send.
    let out = cli(args.clone(), "", WAIT).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "100 rows confirmed (0 in this run, 100 by earlier runs with this --state); 0 messages"
        ),
        "{stderr}"
    );

    // The last row's name changed: same size, same schema.
    let mut changed = numbered(0, 100, 100);
    let names: Vec<String> = (0..100)
        .map(|i| match i {
            99 => "row-X9".to_string(),
            i => format!("row-{i}"),
        })
        .collect();
    changed[0] = RecordBatch::try_new(
        changed[0].schema(),
        vec![
            changed[0].column(0).clone(),
            Arc::new(arrow_array::StringArray::from(names)),
        ],
    )
    .unwrap();
    write_parquet(&parquet, &changed);
    let cases = [
        (args.clone(), "row 100 has other values now"),
        (
            state_args(&server, "CHG", &parquet, &state, "40"),
            "--batch-size 30, not 40",
        ),
    ];
    for (args, reason) in cases {
        let out = cli(args, "", WAIT).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("--state"), "{stderr}");
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }
    write_parquet(&parquet, &numbered(0, 50, 50));
    let out = cli(args.clone(), "", WAIT).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("it ends before row 100"), "{stderr}");
    let tally = tally(&server, "CHG").await;
    assert_eq!(
        (tally.messages, tally.duplicates()),
        (100, 0),
        "a refused run sent rows"
    );

    // Standard input cannot be read again.
    let mut args = vec![
        "run".to_string(),
        "--input".into(),
        "-".into(),
        "--input-format".into(),
        "arrows".into(),
        "--state".into(),
        dir.path().join("stdin.state").display().to_string(),
    ];
    args.extend(with_args(&plain_options(&server, "CHG")));
    let out = cli(args, "", WAIT).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--state needs a file input"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_lines_still_needs_a_schema() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("rows.jsonl");
    std::fs::write(&input, "{\"id\":1}\n").unwrap();
    let mut args = vec![
        "run".to_string(),
        "--input".into(),
        input.display().to_string(),
    ];
    // Refused before any connection: the port is never dialled.
    args.extend(with_args(&options(&[
        ("connector", "nats"),
        ("server_url", "nats://127.0.0.1:1"),
        ("subject", "s"),
    ])));
    let out = cli(args, "", WAIT).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--schema is needed"));
}
