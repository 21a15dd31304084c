//! Whole-process figures: start-up with and without the compile cache, and peak memory of a CLI run.

use super::*;

/// Start-up: loading the component without and with the compile cache, in this process and
/// as a whole CLI process; and instantiating one sink from the pre-instantiated component.
pub(crate) fn startup(runs: usize, cli: &Path) -> serde_json::Value {
    let component = component_path();
    let cache = tempfile::tempdir().unwrap();
    let cached = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let time = |f: &dyn Fn()| {
        let started = Instant::now();
        f();
        started.elapsed().as_secs_f64()
    };
    let cold = median(
        (0..runs)
            .map(|_| time(&|| drop(SinkRuntime::load(&component).unwrap())))
            .collect(),
    );
    drop(SinkRuntime::load_with(&component, &cached).unwrap()); // fills the cache
    let warm = median(
        (0..runs.max(5))
            .map(|_| time(&|| drop(SinkRuntime::load_with(&component, &cached).unwrap())))
            .collect(),
    );
    let cli_time = |args: &[&str]| {
        median(
            (0..runs.max(5))
                .map(|_| {
                    time(&|| {
                        let out = Command::new(cli)
                            .args(args)
                            .arg("describe")
                            .env("NATS_SINK_COMPONENT", &component)
                            .output()
                            .expect("run the CLI");
                        assert!(out.status.success());
                    })
                })
                .collect(),
        )
    };
    let cache_arg = cache.path().display().to_string();
    let cli_cold = cli_time(&["--no-cache"]);
    let cli_warm = cli_time(&["--cache-dir", &cache_arg]);

    let runtime = SinkRuntime::load(&component).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let instantiate = rt.block_on(async {
        let calls = 500;
        let started = Instant::now();
        for _ in 0..calls {
            runtime.describe().await.unwrap();
        }
        started.elapsed().as_secs_f64() / calls as f64
    });
    json!({
        "load_cold_ms": cold * 1e3,
        "load_cached_ms": warm * 1e3,
        "cli_describe_cold_ms": cli_cold * 1e3,
        "cli_describe_cached_ms": cli_warm * 1e3,
        "instantiate_and_describe_ms": instantiate * 1e3,
    })
}

/// The realistic dataset's columns as a `--schema` file, and `rows` of its rows as JSON Lines
/// in the CLI's input forms, in `dir`.
fn realistic_files(dir: &Path, rows: usize) -> (PathBuf, PathBuf) {
    let schema = dir.join("schema.json");
    let data = realistic(1);
    std::fs::write(
        &schema,
        json!({"columns": data.columns.iter().map(|c| json!({"name": c.name, "type": c.data_type})).collect::<Vec<_>>()}).to_string(),
    )
    .unwrap();
    let input = dir.join("rows.jsonl");
    {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..rows {
            writeln!(
                out,
                r#"{{"order_id":{},"customer":"customer-{:06}@example.com","amount":"{}.{:02}","quantity":{},"unit_price":{},"created_at":"2024-03-01 12:00:{:02}.{:06}+00","ship_date":"2024-04-{:02}","status":"paid","tags":["priority","region-{}"],"gift":{},"attributes":{{"channel":"web","score":{}}},"ref":"5f0e1b2c-3d4e-4f50-8a9b-{:012x}"}}"#,
                1_000_000 + i,
                i * 7919 % 1_000_000,
                i % 10_000,
                i % 100,
                i % 17 + 1,
                (i % 1000) as f64 * 0.25 + 0.99,
                i % 60,
                i % 1_000_000,
                i % 28 + 1,
                i % 12,
                i % 3 == 0,
                i % 97,
                i,
            )
            .unwrap();
        }
    }
    (schema, input)
}

/// Peak resident memory of `nats-sink run` over `rows` rows from a file, on core NATS, with
/// the compile cache warm (a run that compiles the component first peaks at about 110 MiB
/// for the compile alone; start-up above measures that case).
pub(crate) fn peak_memory(cli: &Path, server: &NatsServer, rows: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (schema, input) = realistic_files(dir.path(), rows);
    let cache = dir.path().join("cache");
    let warmed = Command::new(cli)
        .arg("--cache-dir")
        .arg(&cache)
        .arg("describe")
        .env("NATS_SINK_COMPONENT", component_path())
        .output()
        .expect("run the CLI");
    assert!(warmed.status.success());
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("peak_kib=%M")
        .arg(cli)
        .arg("--cache-dir")
        .arg(&cache)
        .args(["run", "--schema"])
        .arg(&schema)
        .arg("--input")
        .arg(&input)
        .args(["--with", &format!("server_url={}", server.url())])
        .args([
            "--with",
            "subject=bench.memory",
            "--with",
            "connect_mode=plain",
        ])
        .env("NATS_SINK_COMPONENT", component_path())
        .output()
        .expect("run the CLI under /usr/bin/time");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kib: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_kib="))
        .and_then(|v| v.trim().parse().ok())
        .expect("peak memory from /usr/bin/time");
    (kib / 1024.0, rows as f64 / seconds)
}

/// The same rows written as Parquet (snappy, row groups of 8,192 rows, as pyarrow writes by
/// default), each JSON Lines row read by the CLI's own reader and laid out in its Arrow form.
fn parquet_of(schema_path: &Path, jsonl: &Path, out: &Path) {
    let columns = nats_sink_tests::columns_of_schema_file(schema_path);
    let schema = nats_sink_rules::schema::Schema::parse(
        columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str())),
    )
    .unwrap();
    let text = std::fs::read_to_string(jsonl).unwrap();
    let rows: Vec<Vec<Datum>> = text
        .lines()
        .enumerate()
        .map(|(i, line)| nats_sink_cli::input::parse_line(&schema, i as u64 + 1, line).unwrap())
        .collect();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(8192))
        .build();
    let mut writer = None;
    for chunk in rows.chunks(8192) {
        let batch = nats_sink_tests::arrow::record_batch(&columns, chunk);
        let writer = writer.get_or_insert_with(|| {
            parquet::arrow::ArrowWriter::try_new(
                std::fs::File::create(out).unwrap(),
                batch.schema(),
                Some(properties.clone()),
            )
            .unwrap()
        });
        writer.write(&batch).unwrap();
    }
    writer.expect("rows to write").close().unwrap();
}

/// The CLI over the same realistic rows from JSON Lines and from Parquet, on core NATS, in
/// paired rounds (the order alternating): each format's rows/s, and Parquet's over JSON
/// Lines' round by round. Whole processes, start-up included, as a user runs them.
pub(crate) fn cli_input_formats(
    cli: &Path,
    server: &NatsServer,
    rows: usize,
    rounds: usize,
) -> (Spread, Spread, Spread) {
    let dir = tempfile::tempdir().unwrap();
    let (schema, jsonl) = realistic_files(dir.path(), rows);
    let parquet = dir.path().join("rows.parquet");
    parquet_of(&schema, &jsonl, &parquet);
    let rate = |input: &Path, subject: &str| {
        let started = Instant::now();
        let out = Command::new(cli)
            .args(["run", "--schema"])
            .arg(&schema)
            .arg("--input")
            .arg(input)
            .args(["--with", &format!("server_url={}", server.url())])
            .args(["--with", &format!("subject={subject}")])
            .args(["--with", "connect_mode=plain"])
            .env("NATS_SINK_COMPONENT", component_path())
            .output()
            .expect("run the CLI");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        rows as f64 / started.elapsed().as_secs_f64()
    };
    let (mut from_jsonl, mut from_parquet) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for format in rotated(&["jsonl", "parquet"], round) {
            match format {
                "jsonl" => from_jsonl.push(rate(&jsonl, "bench.formats.jsonl")),
                _ => from_parquet.push(rate(&parquet, "bench.formats.parquet")),
            }
        }
    }
    let ratio = Spread::ratio_of(&from_parquet, &from_jsonl);
    (Spread::of(from_jsonl), Spread::of(from_parquet), ratio)
}

pub(crate) fn release_cli() -> PathBuf {
    let path = target_dir().join("release").join("nats-sink");
    assert!(
        path.exists(),
        "{} is missing: `just bench` builds it",
        path.display()
    );
    path
}
