//! Beyond RisingWave's NATS sink: TLS, token / creds file / nkey auth, subjects and headers
//! from the row, and encoding modes, each through the CLI against a real `nats-server`.

use std::time::Duration;

use nats_sink_tests::*;

const CLI_LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Run the CLI's `run` with a schema and JSON Lines on stdin, in batches of 3.
async fn sink_lines(
    options: &[(String, String)],
    columns: &[(&str, &str)],
    lines: &str,
) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), columns);
    let mut args = vec![
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
        "--batch-size".into(),
        "3".into(),
    ];
    args.extend(with_args(options));
    cli(args, lines, CLI_LIMIT).await
}

fn with(base: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = base.to_vec();
    all.extend(options(extra));
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_the_right_ca_delivers_and_a_wrong_or_missing_ca_is_refused() {
    let pki = Pki::new();
    let server = NatsServer::with_config(&pki.server_config(false));
    let client = pki.client(&server).await;
    let mut sub = client.subscribe("secure.rows").await.unwrap();
    client.flush().await.unwrap();
    let base = plain_options(&server, "secure.rows");

    let ca = pki.path("ca");
    let out = sink_lines(
        &with(&base, &[("tls.ca", &ca)]),
        &[("id", "integer")],
        "{\"id\":1}\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = collect(&mut sub, 1, WAIT).await;
    assert_eq!(text(&got[0].payload), r#"{"id":1}"#);

    // Signed by another CA: refused, and the error says it is the certificate.
    let other = pki.path("other-ca");
    let quick = [("tls.ca", other.as_str()), ("connect_timeout_ms", "3000")];
    let out = sink_lines(&with(&base, &quick), &[("id", "integer")], "{\"id\":2}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("connection:")
            && stderr.contains("not signed by the CA in `tls.ca` nor by a system root"),
        "{stderr}"
    );

    // No CA at all: the server demands TLS, the system's roots do not know the test CA.
    let out = sink_lines(
        &with(&base, &[("connect_timeout_ms", "3000")]),
        &[("id", "integer")],
        "{\"id\":3}\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));

    // A CA file that is not there names its option.
    let out = sink_lines(
        &with(&base, &[("tls.ca", "/nonexistent/ca.pem")]),
        &[("id", "integer")],
        "{\"id\":4}\n",
    )
    .await;
    let stderr = text(&out.stderr);
    // A bad option (exit 2), found before connecting.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("option `tls.ca`: `/nonexistent/ca.pem`"),
        "{stderr}"
    );
    // Only the first row arrived.
    assert!(collect(&mut sub, 1, Duration::from_millis(300))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_required_refuses_a_plain_server() {
    let server = NatsServer::start();
    let base = plain_options(&server, "rows");
    let out = sink_lines(
        &with(
            &base,
            &[("tls.required", "true"), ("connect_timeout_ms", "3000")],
        ),
        &[("id", "integer")],
        "{\"id\":1}\n",
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("TLS is required, but the server answered in plain text"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = Pki::new();
    let server = NatsServer::with_config(&pki.server_config(true));
    let client = pki.client(&server).await;
    let mut sub = client.subscribe("mtls.rows").await.unwrap();
    client.flush().await.unwrap();
    let base = plain_options(&server, "mtls.rows");
    let (ca, cert, key) = (pki.path("ca"), pki.path("client"), pki.path("client-key"));

    let tls = [
        ("tls.ca", ca.as_str()),
        ("tls.cert", &cert),
        ("tls.key", &key),
    ];
    let out = sink_lines(&with(&base, &tls), &[("id", "integer")], "{\"id\":1}\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&collect(&mut sub, 1, WAIT).await[0].payload),
        r#"{"id":1}"#
    );

    // Without the client certificate the server closes the connection.
    let out = sink_lines(
        &with(&base, &[("tls.ca", &ca), ("connect_timeout_ms", "3000")]),
        &[("id", "integer")],
        "{\"id\":2}\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(collect(&mut sub, 1, Duration::from_millis(300))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_nkey_and_creds_file_modes_authenticate() {
    // Token.
    let server = NatsServer::with_config("authorization { token: \"t0ken-s3cret\" }");
    let url = server.url();
    let token = |value: &str| {
        options(&[
            ("server_url", &url),
            ("subject", "auth.rows"),
            ("connect_mode", "token"),
            ("token", value),
            ("connect_timeout_ms", "3000"),
        ])
    };
    let out = sink_lines(&token("t0ken-s3cret"), &[("id", "integer")], "{\"id\":1}\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = sink_lines(&token("wrong-t0ken"), &[("id", "integer")], "{\"id\":1}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains("authorization"), "{stderr}");
    assert!(
        !stderr.contains("wrong-t0ken"),
        "the token leaked: {stderr}"
    );

    // An NKey seed alone: the server knows the user's public key.
    let user = nkeys::KeyPair::new_user();
    let seed = user.seed().unwrap();
    let server = NatsServer::with_config(&format!(
        "authorization {{ users: [ {{ nkey: \"{}\" }} ] }}",
        user.public_key()
    ));
    let url = server.url();
    let nkey = |value: &str| {
        options(&[
            ("server_url", &url),
            ("subject", "auth.rows"),
            ("connect_mode", "nkey"),
            ("nkey", value),
            ("connect_timeout_ms", "3000"),
        ])
    };
    let out = sink_lines(&nkey(&seed), &[("id", "integer")], "{\"id\":1}\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stranger = nkeys::KeyPair::new_user().seed().unwrap();
    let out = sink_lines(&nkey(&stranger), &[("id", "integer")], "{\"id\":1}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains(&stranger), "the seed leaked: {stderr}");

    // A .creds file, as nsc writes it, against an operator-mode server.
    let operator = Operator::new();
    let server = NatsServer::with_config(&operator.server_config());
    let url = server.url();
    let (jwt, seed) = operator.user(None);
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("sink.creds");
    std::fs::write(&creds, creds_file_text(&jwt, &seed)).unwrap();
    let creds_file = |path: &str| {
        options(&[
            ("server_url", &url),
            ("subject", "auth.rows"),
            ("connect_mode", "creds_file"),
            ("credentials_file", path),
            ("connect_timeout_ms", "3000"),
        ])
    };
    let path = creds.display().to_string();
    let out = sink_lines(&creds_file(&path), &[("id", "integer")], "{\"id\":1}\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let missing = dir.path().join("missing.creds").display().to_string();
    let out = sink_lines(&creds_file(&missing), &[("id", "integer")], "{\"id\":1}\n").await;
    let stderr = text(&out.stderr);
    // Bad options (exit 2), found before connecting.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("option `credentials_file`: `") && stderr.contains("missing.creds"),
        "{stderr}"
    );
    std::fs::write(&creds, "not a creds file").unwrap();
    let out = sink_lines(&creds_file(&path), &[("id", "integer")], "{\"id\":1}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not a .creds file"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn subjects_and_headers_from_rows_route_each_row_and_a_bad_value_stops_at_its_line() {
    let server = NatsServer::start_jetstream();
    let js = server
        .create_stream(NatsServer::stream_config("ORDERS", &["orders.>"]))
        .await;
    let base = plain_options(&server, "orders.{region}.{status}");
    let opts = with(
        &base,
        &[
            ("headers.X-Source", "nats-sink"),
            ("headers.X-Order", "order-{id}"),
        ],
    );
    // Batches of 3: line 5's region would add a subject token, so lines 1-4 are delivered.
    let lines = [
        r#"{"id":1,"region":"eu","status":"new"}"#,
        r#"{"id":2,"region":"us","status":"paid"}"#,
        r#"{"id":3,"region":"eu","status":"paid"}"#,
        r#"{"id":4,"region":"ap","status":"new"}"#,
        r#"{"id":5,"region":"us.east","status":"new"}"#,
        r#"{"id":6,"region":"eu","status":"new"}"#,
    ]
    .join("\n");
    let columns = [
        ("id", "integer"),
        ("region", "varchar"),
        ("status", "varchar"),
    ];
    let out = sink_lines(&opts, &columns, &lines).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "line 5, column `region`: value \"us.east\" cannot fill `{region}`: it contains `.`"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("4 rows confirmed; 4 messages"), "{stderr}");

    let stored = stream_messages(&js, "ORDERS", WAIT).await;
    let seen: Vec<(String, String, String)> = stored
        .iter()
        .map(|m| {
            let headers = m.headers.as_ref().expect("headers");
            assert_eq!(
                headers.get("X-Source").map(|v| v.as_str()),
                Some("nats-sink")
            );
            assert!(headers.get("Nats-Msg-Id").is_some());
            let order = headers
                .get("X-Order")
                .map(|v| v.to_string())
                .unwrap_or_default();
            (m.subject.to_string(), order, text(&m.payload))
        })
        .collect();
    assert_eq!(
        seen.iter()
            .map(|(s, o, _)| (s.as_str(), o.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("orders.eu.new", "order-1"),
            ("orders.us.paid", "order-2"),
            ("orders.eu.paid", "order-3"),
            ("orders.ap.new", "order-4"),
        ]
    );
    assert_eq!(seen[0].2, r#"{"id":1,"region":"eu","status":"new"}"#);

    // `check` knows the subject is per row and does not probe a made-up one.
    let mut args = vec!["check".to_string()];
    args.extend(with_args(&base));
    let out = cli(args, "", CLI_LIMIT).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("route        per subject"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn handling_modes_change_the_payload_and_bad_modes_exit_2() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("modes").await.unwrap();
    client.flush().await.unwrap();
    let base = plain_options(&server, "modes");
    let columns = [
        ("d", "date"),
        ("t", "time"),
        ("ts", "timestamp"),
        ("tz", "timestamptz"),
        ("j", "jsonb"),
    ];
    let line = r#"{"d":"2024-02-29","t":"01:02:03.5","ts":"2024-02-29 01:02:03.5","tz":"2024-02-29T01:02:03.5Z","j":{"a":[1,"x"]}}"#;
    let modes = [
        ("date.handling.mode", "string"),
        ("time.handling.mode", "string"),
        ("timestamp.handling.mode", "string"),
        ("timestamptz.handling.mode", "utc_string"),
        ("jsonb.handling.mode", "dynamic"),
    ];
    let out = sink_lines(&with(&base, &modes), &columns, line).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let numeric = [
        ("date.handling.mode", "from_epoch"),
        ("timestamptz.handling.mode", "milli"),
    ];
    let out = sink_lines(&with(&base, &numeric), &columns, line).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = sink_lines(&base, &columns, line).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let got: Vec<String> = collect(&mut sub, 3, WAIT)
        .await
        .iter()
        .map(|m| text(&m.payload))
        .collect();
    assert_eq!(
        got,
        vec![
            r#"{"d":"2024-02-29","j":{"a":[1,"x"]},"t":"01:02:03.500000","ts":"2024-02-29 01:02:03.500000","tz":"2024-02-29T01:02:03.500000Z"}"#,
            r#"{"d":19782,"j":"{\"a\": [1, \"x\"]}","t":3723000,"ts":1709168523500,"tz":1709168523500}"#,
            // RisingWave's NATS output (keys sorted bytewise), unchanged by default.
            r#"{"d":738945,"j":"{\"a\": [1, \"x\"]}","t":3723000,"ts":1709168523500,"tz":"2024-02-29 01:02:03.500000"}"#,
        ]
    );

    let out = sink_lines(
        &with(&base, &[("jsonb.handling.mode", "tree")]),
        &columns,
        line,
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "option `jsonb.handling.mode`: must be one of `string`, `dynamic`, got `tree`"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_sink_statement_gives_the_options_and_unsupported_formats_exit_2() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("sql.eu").await.unwrap();
    client.flush().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(
        dir.path(),
        &[
            ("id", "integer"),
            ("region", "varchar"),
            ("tz", "timestamptz"),
        ],
    );
    let run = |statement: String| {
        let args = vec![
            "run".to_string(),
            "--schema".into(),
            schema.display().to_string(),
            "--sql".into(),
            statement,
        ];
        cli(
            args,
            "{\"id\":1,\"region\":\"eu\",\"tz\":\"2024-02-29T01:02:03Z\"}\n",
            CLI_LIMIT,
        )
    };
    let statement = |format: &str, subject: &str| {
        format!(
            "CREATE SINK orders_out FROM orders WITH (\n  connector = 'nats',\n  server_url = '{}',\n  subject = '{subject}',\n  connect_mode = 'plain',\n  \"headers.X-Sink\" = 'orders_out'\n) {format};",
            server.url()
        )
    };

    let out = run(statement(
        "FORMAT PLAIN ENCODE JSON (force_append_only = 'true', timestamptz.handling.mode = 'utc_string')",
        "sql.{region}",
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = collect(&mut sub, 1, WAIT).await;
    assert_eq!(
        text(&got[0].payload),
        r#"{"id":1,"region":"eu","tz":"2024-02-29T01:02:03.000000Z"}"#
    );
    let headers = got[0].headers.as_ref().expect("headers");
    assert_eq!(
        headers.get("X-Sink").map(|v| v.as_str()),
        Some("orders_out")
    );

    let out = run(statement("FORMAT DEBEZIUM ENCODE JSON", "sql.eu")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--sql: FORMAT DEBEZIUM is not supported: use FORMAT PLAIN"),
        "{stderr}"
    );
    // FORMAT UPSERT is an upsert sink: it takes a bucket and a key, not a subject.
    let out = run(statement("FORMAT UPSERT ENCODE JSON", "sql.eu")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kv.bucket") && stderr.contains("subject"),
        "{stderr}"
    );
    // The statement parses, the component refuses an option, and says which.
    let out = run(statement("FORMAT PLAIN ENCODE JSON", "sql.*")).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("option `subject`: `sql.*` contains a wildcard"),
        "{stderr}"
    );
    let out = run("CREATE SINK s FROM t WITH (connector = 'nats'".into()).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--sql: sql parser error: Expected"),
        "{stderr}"
    );
    assert!(stderr.contains("at the end of the statement"), "{stderr}");
    assert!(collect(&mut sub, 1, Duration::from_millis(300))
        .await
        .is_empty());
}

/// Issue 26: RisingWave's everyday `AS SELECT * FROM t WITH (...)` was refused (`t WITH (...)`
/// read as a table hint), unquoted `-1` did not parse, `SECRET "pw"` looked up `"pw"`, and an
/// options file saved with a byte order mark named its first key with the mark in it.
#[tokio::test(flavor = "multi_thread")]
async fn risingwaves_as_select_form_delivers_with_secrets_and_an_options_file() {
    let server = NatsServer::start_jetstream();
    let client = server.client().await;
    let mut sub = client.subscribe("sql.as").await.unwrap();
    client.flush().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let options_file = dir.path().join("sink.options");
    std::fs::write(
        &options_file,
        format!("\u{FEFF}server_url = {}\nsecret.pw = true\n", server.url()),
    )
    .unwrap();
    std::fs::set_permissions(
        &options_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let statement = "CREATE SINK s AS SELECT * FROM t WITH (connector = 'nats', \
                     subject = 'sql.as', connect_mode = 'plain', allow_create_stream = SECRET \"pw\", \
                     max_bytes = -1) \
                     FORMAT PLAIN ENCODE JSON";
    let args = vec![
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
        "--options-file".into(),
        options_file.display().to_string(),
        "--sql".into(),
        statement.into(),
    ];
    let out = cli(args, "{\"id\":1}\n{\"id\":2}\n", CLI_LIMIT).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(collect(&mut sub, 2, WAIT).await.len(), 2);
}

/// Issue 26: a memory limit the component cannot even start within exited 1, as a delivery
/// failure; it is bad usage (exit 2), and says which option.
#[tokio::test(flavor = "multi_thread")]
async fn a_memory_limit_too_small_to_start_is_bad_usage() {
    let describe = vec![
        "--memory-limit-mib".to_string(),
        "1".into(),
        "describe".into(),
    ];
    let mut validate = describe.clone();
    validate[2] = "validate".into();
    validate.extend(["--with".into(), "subject=a".into()]);
    for args in [describe, validate] {
        let command = args[2].clone();
        let out = cli(args, "", CLI_LIMIT).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("--memory-limit-mib"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_served_while_the_sink_runs_and_summed_up_at_the_end() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let port = free_port();
    let mut args = vec![
        "run".to_string(),
        "--schema".into(),
        schema.display().to_string(),
        "--batch-size".into(),
        "1".into(),
        "--metrics-addr".into(),
        format!("127.0.0.1:{port}"),
    ];
    args.extend(with_args(&plain_options(&server, "metered")));
    let (feed, chunks) = std::sync::mpsc::channel();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = spawn_cli_fed(&args, chunks);
    feed.send((1..=5).map(|i| format!("{{\"id\":{i}}}\n")).collect())
        .unwrap();

    // Scrape while stdin is still open: five rows, each its own flushed batch.
    let deadline = std::time::Instant::now() + WAIT;
    let scraped = loop {
        let scraped = tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
            .await
            .unwrap()
            .unwrap_or_default();
        if scraped.lines().any(|l| l == "nats_sink_flushes_total 5") {
            break scraped;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 5 flushes in:\n{scraped}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for line in [
        "nats_sink_rows_total 5",
        "nats_sink_messages_total 5",
        "nats_sink_payload_bytes_total 40",
        "nats_sink_retries_total 0",
        "nats_sink_flush_duration_seconds_count 5",
    ] {
        assert!(
            scraped.lines().any(|l| l == line),
            "{line} not in\n{scraped}"
        );
    }
    assert!(
        scraped.contains("# TYPE nats_sink_flush_duration_seconds histogram"),
        "{scraped}"
    );
    let missing = tokio::task::spawn_blocking(move || http_get(port, "/other"))
        .await
        .unwrap();
    assert_eq!(missing.as_deref(), Some("not found; try /metrics\n"));

    // A line the CLI cannot read stops the run; it never reached the sink, so the summary
    // counts the five rows and nothing refused.
    feed.send("{\"id\":\"six\"}\n".into()).unwrap();
    drop(feed);
    let out = tokio::task::spawn_blocking(move || run.wait(CLI_LIMIT))
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("metrics: rows 5 accepted, 0 refused; messages 5; bytes 40; retries 0; errors 0; flushes 5"),
        "{stderr}"
    );
}
