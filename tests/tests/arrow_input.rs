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
use nats_sink_tests::*;

const WAIT: Duration = Duration::from_secs(20);
/// Rows of the example dataset each test sends: several batches of the sizes used below.
const ROWS: usize = 300;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn columns_of(schema_path: &Path) -> Vec<Column> {
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    file["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Column {
            name: c["name"].as_str().unwrap().into(),
            data_type: c["type"].as_str().unwrap().into(),
        })
        .collect()
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
    let columns = columns_of(&schema);
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
    let columns: Vec<Column> = columns_of(&repo_file("examples/all_types.schema.json"))
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

#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_value_stops_after_the_rows_before_it() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "smallint")]);
    let parquet = dir.path().join("ids.parquet");
    // Row 4 does not fit a smallint; it is in the second checkpoint (two rows each).
    write_parquet(&parquet, &[ids(&[1, 2, 3]), ids(&[70_000, 5])]);
    let (out, payloads) = sink(
        &server,
        "OOR",
        &parquet,
        Some(&schema),
        &["--batch-size", "2"],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("row 4, column `id`"), "{stderr}");
    assert!(stderr.contains("3 rows confirmed"), "{stderr}");
    assert_eq!(payloads.len(), 3, "{stderr}");
}

/// Rows carried past a refused checkpoint come after the refused row: none of them is sent.
/// The file's batches (3 rows, then 3) cut at 2 rows a checkpoint leave row 5 carried past
/// the checkpoint of rows 3 and 4, which row 4 fails; before the one read loop, the carry
/// was delivered after the failure.
#[tokio::test(flavor = "multi_thread")]
async fn rows_carried_past_a_refused_row_are_not_sent() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "smallint")]);
    let file = dir.path().join("ids.arrow");
    write_ipc_file(&file, &[ids(&[1, 2, 3]), ids(&[70_000, 5, 6])]);
    let (out, payloads) = sink(
        &server,
        "CARRY",
        &file,
        Some(&schema),
        &["--batch-size", "2"],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("row 4, column `id`"), "{stderr}");
    assert!(stderr.contains("3 rows confirmed"), "{stderr}");
    assert_eq!(payloads.len(), 3, "{stderr}");
}

/// Writes record batches to a file in one format.
type WriteFile = fn(&Path, &[RecordBatch]);

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

#[tokio::test(flavor = "multi_thread")]
async fn state_with_columnar_input_is_refused() {
    let server = NatsServer::start_jetstream();
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("ids.parquet");
    write_parquet(&parquet, &[ids(&[1, 2])]);
    let state = dir.path().join("state.json");
    let state = state.display().to_string();
    let (out, payloads) = sink(&server, "ST", &parquet, None, &["--state", &state]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--state is not supported with Parquet input"),
        "{stderr}"
    );
    assert!(payloads.is_empty());
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
