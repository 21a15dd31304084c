//! Issue 16: no input crashes the sink, hangs it, or loses the rows it already accepted. Each
//! finding of the issue, run through the CLI against a real `nats-server` where it publishes.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nats_sink_tests::*;

const CLI_LIMIT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(10);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

/// `nats-sink run` over `lines` with a schema of `columns` and `extra` arguments.
async fn run(
    options: &[(String, String)],
    columns: &[(&str, &str)],
    extra: &[&str],
    lines: &str,
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), columns);
    let mut args = vec![
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.extend(with_args(options));
    cli(args, lines, CLI_LIMIT).await
}

/// `nats-sink run` with a schema file of exactly `schema_text`.
async fn run_with_schema_text(options: &[(String, String)], schema_text: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.json");
    std::fs::write(&path, schema_text).unwrap();
    let mut args = vec![
        "run".to_string(),
        "--schema".into(),
        path.display().to_string(),
    ];
    args.extend(with_args(options));
    cli(args, "{}\n", CLI_LIMIT).await
}

fn assert_no_panic(out: &Output) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert_ne!(out.status.code(), Some(101), "{err}");
    assert!(out.status.code().is_some(), "killed by a signal: {err}");
}

/// A row whose message is over the server's max_payload can never be delivered: it is bad
/// input (exit 2, its line and the limit), and the row before it is delivered and confirmed.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_max_payload_is_refused_after_the_rows_before_it_on_core_nats() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("big").await.unwrap();
    client.flush().await.unwrap();
    let big = "y".repeat(2 << 20);
    let lines = format!("{{\"v\":\"a\"}}\n{{\"v\":\"{big}\"}}\n{{\"v\":\"c\"}}\n");
    let out = run(
        &plain_options(&server, "big"),
        &[("v", "varchar")],
        &[],
        &lines,
    )
    .await;
    assert_no_panic(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 2:"), "{err}");
    assert!(
        err.contains("over the server's max_payload of 1048576 bytes"),
        "{err}"
    );
    assert!(err.contains("1 rows confirmed"), "{err}");
    assert!(!err.contains("rerun"), "{err}");
    let got = collect(&mut sub, 2, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].payload[..], br#"{"v":"a"}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_max_payload_is_refused_after_the_rows_before_it_on_jetstream() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("BIG", &["big"]))
        .await;
    let big = "y".repeat(2 << 20);
    let lines = format!("{{\"v\":\"a\"}}\n{{\"v\":\"b\"}}\n{{\"v\":\"{big}\"}}\n{{\"v\":\"c\"}}\n");
    let out = run(
        &plain_options(&server, "big"),
        &[("v", "varchar")],
        &[],
        &lines,
    )
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 3:") && err.contains("max_payload"),
        "{err}"
    );
    assert!(err.contains("2 rows confirmed"), "{err}");
    assert_eq!(stream_count(&server.url(), "BIG").await, Some(2));
}

/// A subject filled from a row past the control line's limit: the row is refused by column,
/// the row before it confirmed, and the summary counts it.
#[tokio::test(flavor = "multi_thread")]
async fn a_subject_too_long_for_the_control_line_is_refused_with_its_column() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("T", &["t.>"]))
        .await;
    let long = "r".repeat(10_000);
    let lines = format!(
        "{{\"region\":\"eu\",\"n\":1}}\n{{\"region\":\"{long}\",\"n\":2}}\n{{\"region\":\"us\",\"n\":3}}\n"
    );
    let started = Instant::now();
    let out = run(
        &plain_options(&server, "t.{region}"),
        &[("region", "varchar"), ("n", "integer")],
        &[],
        &lines,
    )
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 2, column `region`"), "{err}");
    assert!(err.contains("at most 4000"), "{err}");
    assert!(err.contains("1 rows confirmed"), "{err}");
    assert_eq!(stream_count(&server.url(), "T").await, Some(1));
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A fixed subject past the control line: `validate` and `run` both refuse it up front.
#[tokio::test(flavor = "multi_thread")]
async fn a_subject_too_long_fails_validate() {
    let subject = "s".repeat(5_000);
    let opts = options(&[
        ("server_url", "127.0.0.1:4222"),
        ("subject", &subject),
        ("connect_mode", "plain"),
    ]);
    let mut args = vec!["validate".to_string()];
    args.extend(with_args(&opts));
    let out = cli(args, "", CLI_LIMIT).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        text(&out.stdout).contains("5000 bytes long"),
        "{}",
        text(&out.stdout)
    );
}

/// Deep types are refused with the limit named, by the host and the guest alike, without a
/// trap, a stack overflow or an abort.
#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_types_are_refused_with_the_limit() {
    let opts = options(&[
        ("server_url", "127.0.0.1:1"),
        ("subject", "s"),
        ("connect_mode", "plain"),
    ]);
    for depth in [2_000, 10_000, 100_000] {
        let ty = "struct<a ".repeat(depth) + "integer" + &">".repeat(depth);
        let out = run(&opts, &[("v", &ty)], &[], "{}\n").await;
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("more than 100 deep"),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).len() < 1_000, "{}", stderr(&out));
    }
    let ty = "integer".to_string() + &"[]".repeat(10_000);
    let out = run(&opts, &[("v", &ty)], &[], "{}\n").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than 100 deep"),
        "{}",
        stderr(&out)
    );
}

/// The deepest type allowed works end to end, values included.
#[tokio::test(flavor = "multi_thread")]
async fn the_deepest_allowed_type_round_trips() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("deep").await.unwrap();
    client.flush().await.unwrap();
    let ty = "struct<a ".repeat(99) + "integer[]" + &">".repeat(99);
    let value = "{\"a\":".repeat(99) + "[1]" + &"}".repeat(99);
    let out = run(
        &plain_options(&server, "deep"),
        &[("v", &ty)],
        &[],
        &format!("{{\"v\":{value}}}\n"),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = collect(&mut sub, 1, WAIT).await;
    assert_eq!(text(&got[0].payload), format!("{{\"v\":{value}}}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_schema_text_is_an_error_not_a_panic() {
    let opts = options(&[
        ("server_url", "127.0.0.1:1"),
        ("subject", "s"),
        ("connect_mode", "plain"),
    ]);
    for (ty, expected) in [
        ("abcdeé", "unknown type `abcdeé`"),
        ("struct<a abcdeé>", "unknown type `abcdeé`"),
        ("struct<\"\" integer>", "empty struct field name"),
    ] {
        let out = run(&opts, &[("v", ty)], &[], "{}\n").await;
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{ty}: {}", stderr(&out));
    }
    let out = run_with_schema_text(
        &opts,
        r#"{"columns":[{"name":"v","type":"integer","nullable":true}]}"#,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown field `nullable`"),
        "{}",
        stderr(&out)
    );
    let out = run_with_schema_text(&opts, r#"{"colums":[]}"#).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown field `colums`"),
        "{}",
        stderr(&out)
    );
}

/// `--schema /dev/zero` read without end; now the read stops at 16 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_schema_file_is_refused() {
    let opts = options(&[
        ("server_url", "127.0.0.1:1"),
        ("subject", "s"),
        ("connect_mode", "plain"),
    ]);
    let mut args = vec!["run".to_string(), "--schema".into(), "/dev/zero".into()];
    args.extend(with_args(&opts));
    let started = Instant::now();
    let out = cli(args, "", CLI_LIMIT).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larger than 16 MiB"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A line past `--max-line-bytes` stops the run at that line; the rows before it arrive.
#[tokio::test(flavor = "multi_thread")]
async fn a_line_past_the_limit_stops_the_run_after_the_rows_before_it() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("lines").await.unwrap();
    client.flush().await.unwrap();
    let long = "z".repeat(5_000);
    let lines = format!("{{\"v\":\"a\"}}\n{{\"v\":\"{long}\"}}\n{{\"v\":\"c\"}}\n");
    let out = run(
        &plain_options(&server, "lines"),
        &[("v", "varchar")],
        &["--max-line-bytes", "1000"],
        &lines,
    )
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 2 is longer than 1000 bytes"), "{err}");
    assert!(err.contains("1 rows confirmed"), "{err}");
    assert_eq!(collect(&mut sub, 2, Duration::from_secs(2)).await.len(), 1);
}

/// A leading byte order mark is not data: the first row goes through.
#[tokio::test(flavor = "multi_thread")]
async fn a_leading_byte_order_mark_is_dropped() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("bom").await.unwrap();
    client.flush().await.unwrap();
    let out = run(
        &plain_options(&server, "bom"),
        &[("id", "integer")],
        &[],
        "\u{feff}{\"id\":1}\n{\"id\":2}\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(collect(&mut sub, 2, WAIT).await.len(), 2);
}

/// `--batch-size 1000000` over rows larger than the guest's memory in one call: batches are
/// also bounded by bytes, so every row arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_huge_batch_size_is_split_by_bytes() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("HUGE", &["huge"]))
        .await;
    let row = format!("{{\"v\":\"{}\"}}\n", "q".repeat(200));
    let rows = 150_000;
    let out = run(
        &plain_options(&server, "huge"),
        &[("v", "varchar")],
        &["--batch-size", "1000000", "--memory-limit-mib", "48"],
        &row.repeat(rows),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stream_count(&server.url(), "HUGE").await, Some(rows as u64));
}

/// 100,000 columns took 50 s before the first row.
#[tokio::test(flavor = "multi_thread")]
async fn a_schema_of_100000_columns_is_quick() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("wide").await.unwrap();
    client.flush().await.unwrap();
    let names: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    let columns: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "integer")).collect();
    let started = Instant::now();
    let out = run(
        &plain_options(&server, "wide"),
        &columns,
        &[],
        "{\"c0\":1,\"c99999\":2}\n",
    )
    .await;
    // Every other column is null: the message is about 1.4 MB, over the 1 MB max_payload,
    // which the guest says at once.
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("max_payload"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(collect(&mut sub, 1, Duration::from_millis(500))
        .await
        .is_empty());
}

/// 30 dead `server_url` entries before the live one: every entry is tried within the
/// connect timeout. A list of 1,000 dead entries gives a short error.
#[tokio::test(flavor = "multi_thread")]
async fn every_server_entry_is_tried_and_errors_list_a_few() {
    let server = NatsServer::start();
    let dead: Vec<String> = (0..30)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let urls = format!(
        "{},{}",
        dead.join(","),
        server.url().trim_start_matches("nats://")
    );
    let opts = options(&[
        ("server_url", &urls),
        ("subject", "many"),
        ("connect_mode", "plain"),
        ("connect_timeout_ms", "5000"),
    ]);
    for _ in 0..3 {
        let out = run(&opts, &[("id", "integer")], &[], "{\"id\":1}\n").await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }

    let dead: Vec<String> = (0..1000).map(|i| format!("127.0.0.1:{}", 1 + i)).collect();
    let opts = options(&[
        ("server_url", &dead.join(",")),
        ("subject", "many"),
        ("connect_mode", "plain"),
        ("connect_timeout_ms", "1000"),
    ]);
    let out = run(&opts, &[("id", "integer")], &[], "{\"id\":1}\n").await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("and 997 more"), "{}", stderr(&out));
    assert!(stderr(&out).len() < 2_000, "{}", stderr(&out));
}

/// Files named by options and malformed seeds are bad options: exit 2 from `run` and
/// `validate`, before connecting.
#[tokio::test(flavor = "multi_thread")]
async fn unreadable_files_and_bad_seeds_exit_2_in_run_and_validate() {
    let server = NatsServer::start();
    let url = server.url();
    let junk_seed = format!("SU{}", "A".repeat(56));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("connect_mode", "plain"), ("tls.ca", "/nonexistent/ca.pem")],
            "option `tls.ca`: `/nonexistent/ca.pem`",
        ),
        (
            vec![
                ("connect_mode", "creds_file"),
                ("credentials_file", "/nonexistent/user.creds"),
            ],
            "option `credentials_file`: `/nonexistent/user.creds`",
        ),
        (
            vec![("connect_mode", "nkey"), ("nkey", &junk_seed)],
            "option `nkey`: is not a user NKey seed",
        ),
    ];
    for (pairs, expected) in cases {
        let mut all = vec![("server_url", url.as_str()), ("subject", "files")];
        all.extend(pairs);
        let opts = options(&all);
        let out = run(&opts, &[("id", "integer")], &[], "{\"id\":1}\n").await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
        assert!(!stderr(&out).contains(&junk_seed));
        let mut args = vec!["validate".to_string()];
        args.extend(with_args(&opts));
        let out = cli(args, "", CLI_LIMIT).await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            text(&out.stdout).contains(expected),
            "{}",
            text(&out.stdout)
        );
    }
}

/// The CLI with its standard output and error going where the test says.
fn cli_to(args: &[&str], stdout: Stdio, stderr: Stdio, stdin: &str) -> std::process::ExitStatus {
    use std::io::Write as _;
    let mut child = Command::new(cli_path())
        .args(args)
        .env("NATS_SINK_COMPONENT", component_path())
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let deadline = Instant::now() + CLI_LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "nats-sink {args:?} hung");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn dev_full() -> Stdio {
    Stdio::from(
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap(),
    )
}

/// `describe | head -1`, output into /dev/full, `run … 2>/dev/full`: no panic, and the exit
/// code tells the outcome.
#[tokio::test(flavor = "multi_thread")]
async fn closed_pipes_and_full_disks_are_handled_quietly() {
    // A reader that has gone: the pipe's read end is closed before anything is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let errors = tempfile::NamedTempFile::new().unwrap();
    let status = cli_to(
        &["describe"],
        Stdio::from(writer),
        Stdio::from(errors.reopen().unwrap()),
        "",
    );
    let logged = std::fs::read_to_string(errors.path()).unwrap();
    assert_eq!(status.code(), Some(0), "{logged}");
    assert!(logged.is_empty(), "{logged}");

    let errors = tempfile::NamedTempFile::new().unwrap();
    let status = cli_to(
        &["describe"],
        dev_full(),
        Stdio::from(errors.reopen().unwrap()),
        "",
    );
    let logged = std::fs::read_to_string(errors.path()).unwrap();
    assert_eq!(status.code(), Some(1), "{logged}");
    assert!(logged.contains("writing to standard output"), "{logged}");
    assert!(!logged.contains("panicked"), "{logged}");

    let args = [
        "validate",
        "--with",
        "server_url=h:1",
        "--with",
        "subject=s",
        "--with",
        "connect_mode=plain",
    ];
    assert_eq!(cli_to(&args, dev_full(), Stdio::null(), "").code(), Some(1));
    let bad = ["validate", "--with", "subject=s"];
    assert_eq!(cli_to(&bad, dev_full(), Stdio::null(), "").code(), Some(2));

    // `run` that delivered everything exits 0 though its summary cannot be written.
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let args: Vec<String> = [
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
        "--with".into(),
        format!("server_url={}", server.url()),
        "--with".into(),
        "subject=full".into(),
        "--with".into(),
        "connect_mode=plain".into(),
    ]
    .into();
    let client = server.client().await;
    let mut sub = client.subscribe("full").await.unwrap();
    client.flush().await.unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli_to(&args, Stdio::null(), dev_full(), "{\"id\":1}\n{\"id\":2}\n")
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(collect(&mut sub, 2, WAIT).await.len(), 2);
}

/// An error quoting a huge input (a 1 MB key, a 1 MB number) stays a short line that still
/// names the line and ends with what was confirmed.
#[tokio::test(flavor = "multi_thread")]
async fn an_error_quoting_a_huge_input_stays_short() {
    let server = NatsServer::start();
    let key = "k".repeat(1 << 20);
    let number = "9".repeat(1 << 20);
    for bad in [
        format!("{{\"v\":\"ok\",\"{key}\":1}}"),
        format!("{{\"v\":\"ok\",\"n\":{number}}}"),
    ] {
        let lines = format!("{{\"v\":\"a\"}}\n{bad}\n");
        let out = run(
            &plain_options(&server, "short"),
            &[("v", "varchar"), ("n", "numeric")],
            &[],
            &lines,
        )
        .await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}", &err[..err.len().min(500)]);
        assert!(err.len() < 8_000, "{} bytes of stderr", err.len());
        assert!(err.contains("line 2"), "{}", &err[..err.len().min(3000)]);
        assert!(
            err.contains("bytes left out"),
            "{}",
            &err[..err.len().min(3000)]
        );
    }
}
