//! End to end: the built component and CLI against real `nats-server` processes on loopback.

use std::time::Duration;

use nats_sink::{Column, Datum, HostError, Rows, RuntimeErrorKind, SinkError, SinkRuntime};
use nats_sink_tests::*;

const CLI_LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn cli(args: Vec<String>, stdin: &str) -> std::process::Output {
    nats_sink_tests::cli(args, stdin, CLI_LIMIT).await
}

/// Run the CLI's `run` with a schema and JSON Lines on stdin.
async fn sink_lines(
    options: &[(String, String)],
    columns: &[(&str, &str)],
    lines: &str,
) -> std::process::Output {
    sink_lines_with(&["--batch-size", "3"], options, columns, lines).await
}

/// `run` with `flags`, the options and a schema of `columns`, fed `lines` on stdin.
async fn sink_lines_with(
    flags: &[&str],
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
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    args.extend(with_args(options));
    cli(args, lines).await
}

#[tokio::test(flavor = "multi_thread")]
async fn core_publish_delivers_every_row_in_order() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("orders.created").await.unwrap();
    client.flush().await.unwrap();

    let lines: String = (0..500)
        .map(|i| format!("{{\"id\":{i},\"note\":\"n{i}\"}}\n"))
        .collect();
    let out = sink_lines(
        &plain_options(&server, "orders.created"),
        &[("id", "integer"), ("note", "varchar")],
        &lines,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("500 rows confirmed; 500 messages"),
        "{}",
        text(&out.stderr)
    );

    let got = collect(&mut sub, 501, WAIT).await;
    assert_eq!(got.len(), 500);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            text(&m.payload),
            format!("{{\"id\":{i},\"note\":\"n{i}\"}}")
        );
    }
}

/// `--input` naming a pipe (here /dev/stdin, itself a pipe) reads it; only a resume seeks.
#[tokio::test(flavor = "multi_thread")]
async fn input_from_a_pipe_by_name_is_read() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("piped").await.unwrap();
    client.flush().await.unwrap();
    let out = sink_lines_with(
        &["--input", "/dev/stdin"],
        &plain_options(&server, "piped"),
        &[("id", "integer")],
        "{\"id\":1}\n{\"id\":2}\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = collect(&mut sub, 2, WAIT).await;
    let payloads: Vec<String> = got.iter().map(|m| text(&m.payload)).collect();
    assert_eq!(payloads, [r#"{"id":1}"#, r#"{"id":2}"#]);
}

/// `--state` resumes by seeking, which a pipe cannot: refused at once, not hung on a rerun.
#[tokio::test(flavor = "multi_thread")]
async fn state_with_a_pipe_for_input_is_refused() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("run.state");
    let out = sink_lines_with(
        &["--input", "/dev/stdin", "--state", state.to_str().unwrap()],
        &plain_options(&server, "piped"),
        &[("id", "integer")],
        "{\"id\":1}\n",
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("needs --input to name a regular file"),
        "{stderr}"
    );
    assert!(!state.exists(), "no state is written");
}

#[tokio::test(flavor = "multi_thread")]
async fn jetstream_stream_gets_every_row_acked() {
    let server = NatsServer::start_jetstream();
    let js = server
        .create_stream(NatsServer::stream_config("ROWS", &["rows.>"]))
        .await;

    let lines: String = (0..1000).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    let out = sink_lines(
        &plain_options(&server, "rows.in"),
        &[("id", "bigint")],
        &lines,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let mut stream = js.get_stream("ROWS").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1000);
    let first = stream.get_raw_message(1).await.unwrap();
    let last = stream.get_raw_message(1000).await.unwrap();
    assert_eq!(text(&first.payload), r#"{"id":0}"#);
    assert_eq!(text(&last.payload), r#"{"id":999}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_window_of_one_ack_still_delivers_everything_in_order_with_ids() {
    let server = NatsServer::start_jetstream();
    let js = server
        .create_stream(NatsServer::stream_config("ROWS", &["rows"]))
        .await;
    let lines: String = (0..300).map(|i| format!("{{\"id\":{i}}}\n")).collect();
    let mut options = plain_options(&server, "rows");
    options.extend(nats_sink_tests::options(&[
        ("max_in_flight", "1"),
        ("sink_id", "window-test"),
    ]));
    let out = sink_lines(&options, &[("id", "bigint")], &lines).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let held = stream_messages(&js, "ROWS", WAIT).await;
    let payloads: Vec<String> = held.iter().map(|m| text(&m.payload)).collect();
    let expected: Vec<String> = (0..300).map(|i| format!("{{\"id\":{i}}}")).collect();
    assert_eq!(payloads, expected);
    // Every row carries its id: this sink, its batch's checkpoint, its place in the batch.
    for (i, m) in held.iter().enumerate() {
        let id = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let parts: Vec<&str> = id.split(':').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0], "window-test");
        assert!(parts[1].parse::<u64>().is_ok(), "{id}");
        assert_eq!(parts[2], (i % 3).to_string(), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subject_without_stream_uses_core_path_on_jetstream_server() {
    let server = NatsServer::start_jetstream();
    let client = server.client().await;
    let js = server
        .create_stream(NatsServer::stream_config("OTHER", &["other.>"]))
        .await;
    let mut sub = client.subscribe("plain.rows").await.unwrap();
    client.flush().await.unwrap();

    let out = sink_lines(
        &plain_options(&server, "plain.rows"),
        &[("id", "integer")],
        "{\"id\":1}\n{\"id\":2}\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(collect(&mut sub, 2, WAIT).await.len(), 2);
    assert_eq!(
        js.get_stream("OTHER")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages,
        0
    );
}

/// A subscriber on `>` takes the JetStream lookup and never answers. The sink cannot tell a
/// slow JetStream (a leaf node's hub, an election) from none, so it never guesses core: the
/// run fails as a timeout that names the likely cause, with nothing published.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_catch_all_subscriber_makes_the_lookup_time_out_and_says_why() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut everything = client.subscribe(">").await.unwrap();
    client.flush().await.unwrap();
    let mut options = plain_options(&server, "plain.rows");
    options.push(("ack_timeout_ms".into(), "300".into()));
    options.push(("retry.max_attempts".into(), "1".into()));
    let out = sink_lines(&options, &[("id", "integer")], "{\"id\":1}\n{\"id\":2}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a subscriber on `>`"), "{stderr}");
    assert!(stderr.contains("0 rows confirmed"), "{stderr}");
    let seen = collect(&mut everything, 2, Duration::from_millis(500)).await;
    assert!(
        seen.iter()
            .all(|m| m.subject.starts_with("$JS.API.STREAM.NAMES")),
        "only lookups, no rows: {:?}",
        seen.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jetstream_rejection_fails_the_flush_with_the_reason() {
    // The stream accepts at most 100 bytes per message: acks for larger rows are errors.
    let server = NatsServer::start_jetstream();
    server
        .create_stream(async_nats::jetstream::stream::Config {
            max_message_size: 100,
            ..NatsServer::stream_config("SMALL", &["small"])
        })
        .await;
    let big = "x".repeat(200);
    let out = sink_lines(
        &plain_options(&server, "small"),
        &[("v", "varchar")],
        &format!("{{\"v\":\"{big}\"}}\n"),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("JetStream refused a message on `small`"),
        "{stderr}"
    );
    assert!(stderr.contains("message size exceeds maximum"), "{stderr}");
}

/// Issue 26: JetStream refused one row of a batch of ten (over the stream's
/// max_message_size) and the CLI reported the whole batch unconfirmed, though the other nine
/// were stored. Now the rows before it count as confirmed, the refused line is named, and so
/// is what became of the rows after it: with the acks all in flight (the default window) and
/// with one at a time (the refusal then stops the write, and the rows after it are not sent).
#[tokio::test(flavor = "multi_thread")]
async fn a_jetstream_refusal_mid_batch_names_its_row_and_confirms_the_others() {
    let big = "x".repeat(200);
    let lines: String = (1..=10)
        .map(|i| match i {
            6 => format!("{{\"id\":{i},\"v\":\"{big}\"}}\n"),
            _ => format!("{{\"id\":{i},\"v\":\"a\"}}\n"),
        })
        .collect();
    for (window, counts, stored_after, in_stream) in [
        (
            "4096",
            "it was message 6 of the 10 sent since the last flush: 9 of them are confirmed (stored in the stream), 1 refused; messages 1–5 are all confirmed",
            "(lines 7–10), 4 were stored as well",
            9,
        ),
        (
            "1",
            "it was message 6 of the 7 sent since the last flush: 5 of them are confirmed (stored in the stream), 1 refused, 1 not confirmed; messages 1–5 are all confirmed",
            "(lines 7–10), 0 were stored as well",
            5,
        ),
    ] {
        let server = NatsServer::start_jetstream();
        server
            .create_stream(async_nats::jetstream::stream::Config {
                max_message_size: 100,
                ..NatsServer::stream_config("SMALL", &["small"])
            })
            .await;
        let mut options = plain_options(&server, "small");
        options.extend(nats_sink_tests::options(&[("max_in_flight", window)]));
        let out = sink_lines_with(
            &["--batch-size", "10"],
            &options,
            &[("id", "integer"), ("v", "varchar")],
            &lines,
        )
        .await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for expected in [
            "line 6: JetStream refused its row",
            "JetStream refused a message on `small`",
            counts,
            stored_after,
            "rows through input line 5 (5 rows) are confirmed",
            "5 rows confirmed",
        ] {
            assert!(stderr.contains(expected), "window {window}: {expected:?} in {stderr}");
        }
        assert_eq!(
            stream_count(&server.url(), "SMALL").await,
            Some(in_stream),
            "window {window}"
        );
    }
}

/// Issue 26: NUL and DEL from a row were published inside a subject (`tp.x\0y`), NUL inside
/// a header value, and a row could fill a `$KV.` subject. Each is now a refused row naming its
/// column, after the rows before it are delivered.
#[tokio::test(flavor = "multi_thread")]
async fn control_characters_and_kv_subjects_from_a_row_are_refused() {
    for (line, expected) in [
        (
            r#"{"k":"x\u0000y","h":"a"}"#,
            "line 2, column `k`: value \"x\\0y\" cannot fill `{k}`: it must not contain a control character (found U+0000)",
        ),
        (
            r#"{"k":"x\u007fy","h":"a"}"#,
            "line 2, column `k`: value \"x\\u{7f}y\" cannot fill `{k}`: it must not contain a control character (found U+007F)",
        ),
        (
            r#"{"k":"ok","h":"a\u0000b"}"#,
            "line 2, column `h`: value \"a\\0b\" cannot fill `{h}`: it must not contain a control character (found U+0000)",
        ),
    ] {
        let server = NatsServer::start();
        let client = server.client().await;
        let mut sub = client.subscribe("tp.>").await.unwrap();
        client.flush().await.unwrap();
        let mut options = plain_options(&server, "tp.{k}");
        options.push(("headers.X-H".into(), "{h}".into()));
        let out = sink_lines(
            &options,
            &[("k", "varchar"), ("h", "varchar")],
            &format!("{{\"k\":\"first\",\"h\":\"a\"}}\n{line}\n"),
        )
        .await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
        let got = collect(&mut sub, 2, Duration::from_millis(500)).await;
        let subjects: Vec<&str> = got.iter().map(|m| m.subject.as_str()).collect();
        assert_eq!(subjects, ["tp.first"], "only the row before it");
    }
    // A subject under `$KV.` would overwrite a key of a bucket.
    let server = NatsServer::start();
    let options = plain_options(&server, "{k}.bucket.key");
    let out = sink_lines(&options, &[("k", "varchar")], "{\"k\":\"$KV\"}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 1, column `k`: the subject it makes is under `$KV.`"),
        "{stderr}"
    );
}

/// Issue 26: a jsonb value refused from a JSON Lines row named a line and a column inside the
/// value (`at line 1 column 9`), nowhere to be found in the input; now the byte of the value.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_jsonb_value_says_where_in_the_value() {
    let server = NatsServer::start();
    let out = sink_lines(
        &plain_options(&server, "docs"),
        &[("id", "integer"), ("doc", "jsonb")],
        "{\"id\":1,\"doc\":{\"a\":[1, 1e400]}}\n",
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "line 1, column `doc`: invalid jsonb: number out of range at byte 14 of the value"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("at line 1 column"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn row_over_max_payload_is_a_clear_error_and_earlier_rows_arrive() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("big").await.unwrap();
    client.flush().await.unwrap();
    let big = "y".repeat(1_100_000);
    let lines = format!("{{\"v\":\"a\"}}\n{{\"v\":\"b\"}}\n{{\"v\":\"c\"}}\n{{\"v\":\"{big}\"}}\n");
    let out = sink_lines(&plain_options(&server, "big"), &[("v", "varchar")], &lines).await;
    // It can never be delivered: bad input, refused with its line and the limit.
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("line 4: its message is"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stderr).contains("max_payload of 1048576 bytes"));
    // The first batch of three was confirmed before the oversized row was refused.
    let got = collect(&mut sub, 3, WAIT).await;
    assert_eq!(got.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_is_encoded_as_risingwave_does() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("types").await.unwrap();
    client.flush().await.unwrap();
    let columns = [
        ("b", "boolean"),
        ("si", "smallint"),
        ("i", "integer"),
        ("bi", "bigint"),
        ("r", "real"),
        ("d", "double precision"),
        ("n", "numeric"),
        ("v", "varchar"),
        ("dt", "date"),
        ("t", "time"),
        ("ts", "timestamp"),
        ("tz", "timestamptz"),
        ("iv", "interval"),
        ("by", "bytea"),
        ("j", "jsonb"),
        ("se", "serial"),
        ("u", "uuid"),
        ("l", "integer[][]"),
        ("st", "struct<a integer, b struct<c date>>"),
    ];
    let lines = concat!(
        r#"{"b":true,"si":-32768,"i":2147483647,"bi":-9223372036854775808,"r":1.1,"d":0.1,"n":"-12.340","#,
        r#""v":"héllo \"q\"","dt":"2024-02-29","t":"12:34:56.789","ts":"2024-02-29 12:34:56.789","#,
        r#""tz":"2024-02-29T12:34:56.789+02:00","iv":"1 year 2 mons 3 days 04:05:06.5","by":"\\xdeadbeef","#,
        r#""j":{"a":[1,"x"]},"se":255,"u":"123e4567-e89b-12d3-a456-426614174000","l":[[1,2],null,[]],"#,
        r#""st":{"a":1,"b":{"c":"2024-01-01"}}}"#,
        "\n",
        r#"{"r":"NaN","d":"-Infinity","n":"NaN"}"#,
        "\n",
        r#"{"n":1e3,"iv":"P-1Y-2M-3DT1H0M0S","d":1e300,"tz":"1969-12-31 23:59:59.999999Z"}"#,
        "\n",
    );
    // Schema-order keys (our option) keep this table readable; sorted keys are the default,
    // checked against RisingWave's vectors in tests/tests/risingwave.rs.
    let mut options = plain_options(&server, "types");
    options.push(("json.key_order".into(), "schema".into()));
    let out = sink_lines(&options, &columns, lines).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got: Vec<String> = collect(&mut sub, 3, WAIT)
        .await
        .iter()
        .map(|m| text(&m.payload))
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        concat!(
            r#"{"b":true,"si":-32768,"i":2147483647,"bi":-9223372036854775808,"r":1.100000023841858,"d":0.1,"#,
            r#""n":"-12.340","v":"héllo \"q\"","dt":738945,"t":45296000,"ts":1709210096789,"#,
            r#""tz":"2024-02-29 10:34:56.789000","iv":"P1Y2M3DT4H5M6.5S","by":"3q2+7w==","#,
            r#""j":"{\"a\": [1, \"x\"]}","se":"0x00000000000000ff","u":"123e4567-e89b-12d3-a456-426614174000","#,
            r#""l":[[1,2],null,[]],"st":{"a":1,"b":{"c":738886}}}"#
        )
    );
    assert_eq!(
        got[1],
        concat!(
            r#"{"b":null,"si":null,"i":null,"bi":null,"r":null,"d":null,"n":"NaN","v":null,"dt":null,"t":null,"#,
            r#""ts":null,"tz":null,"iv":null,"by":null,"j":null,"se":null,"u":null,"l":null,"st":null}"#
        )
    );
    assert!(got[2].contains(r#""n":"1000""#), "{}", got[2]);
    assert!(got[2].contains(r#""iv":"P-1Y-2M-3DT1H0M0S""#), "{}", got[2]);
    assert!(got[2].contains(r#""d":1e300"#), "{}", got[2]);
    assert!(
        got[2].contains(r#""tz":"1969-12-31 23:59:59.999999""#),
        "{}",
        got[2]
    );
}

/// Rows before a bad line are delivered and flushed; nothing after it is sent; exit code 2.
async fn assert_stops_at_bad_line(bad_line: &str, expected_error: &str) {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("rows").await.unwrap();
    client.flush().await.unwrap();
    // Batches of 3: rows 1-3 are one write, 4 shares a batch with the bad line 5.
    let lines = format!(
        "{{\"id\":1}}\n{{\"id\":2}}\n{{\"id\":3}}\n{{\"id\":4}}\n{bad_line}\n{{\"id\":6}}\n"
    );
    let out = sink_lines(
        &plain_options(&server, "rows"),
        &[("id", "integer"), ("tag", "varchar")],
        &lines,
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(expected_error),
        "expected {expected_error:?} in {stderr}"
    );
    assert!(stderr.contains("4 rows confirmed; 4 messages"), "{stderr}");
    let got: Vec<String> = collect(&mut sub, 5, Duration::from_secs(2))
        .await
        .iter()
        .map(|m| text(&m.payload))
        .collect();
    assert_eq!(
        got,
        (1..=4)
            .map(|i| format!("{{\"id\":{i},\"tag\":null}}"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_type_stops_at_its_line() {
    assert_stops_at_bad_line(
        r#"{"id":"five"}"#,
        "line 5, column `id`: expected a 32-bit integer, got a string \"five\"",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_column_stops_at_its_line() {
    assert_stops_at_bad_line(
        r#"{"id":5,"tga":"x"}"#,
        "line 5: unknown column `tga`; did you mean `tag`?",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_line_stops_at_its_line() {
    assert_stops_at_bad_line(r#"{"id":5,"#, "line 5, column 8: malformed JSON").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_and_password() {
    let server = NatsServer::with_config("authorization { user: sinker, password: \"s3cret-pw\" }");
    let url = server.url();
    let good = options(&[
        ("server_url", &url),
        ("subject", "auth.rows"),
        ("connect_mode", "user_and_password"),
        ("username", "sinker"),
        ("password", "s3cret-pw"),
    ]);
    let out = sink_lines(&good, &[("id", "integer")], "{\"id\":1}\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let bad = options(&[
        ("server_url", &url),
        ("subject", "auth.rows"),
        ("connect_mode", "user_and_password"),
        ("username", "sinker"),
        ("password", "wrong-pw-value"),
        ("connect_timeout_ms", "3000"),
    ]);
    let started = std::time::Instant::now();
    let out = sink_lines(&bad, &[("id", "integer")], "{\"id\":1}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("connection:") && stderr.to_lowercase().contains("authorization"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-pw-value"),
        "the password leaked: {stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn credential_mode_signs_the_nonce() {
    let operator = Operator::new();
    let server = NatsServer::with_config(&operator.server_config());
    let url = server.url();
    let (jwt, seed) = operator.user(None);
    // A subscriber of the same account sees the rows.
    let (sub_jwt, sub_seed) = operator.user(None);
    let key_pair = std::sync::Arc::new(nkeys::KeyPair::from_seed(&sub_seed).unwrap());
    let client = async_nats::ConnectOptions::with_jwt(sub_jwt, move |nonce| {
        let key_pair = key_pair.clone();
        async move { key_pair.sign(&nonce).map_err(async_nats::AuthError::new) }
    })
    .connect(&url)
    .await
    .unwrap();
    let mut sub = client.subscribe("cred.rows").await.unwrap();
    client.flush().await.unwrap();

    let opts = options(&[
        ("server_url", &url),
        ("subject", "cred.rows"),
        ("connect_mode", "credential"),
        ("jwt", &jwt),
        ("nkey", &seed),
    ]);
    let out = sink_lines(&opts, &[("id", "integer")], "{\"id\":7}\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = collect(&mut sub, 1, WAIT).await;
    assert_eq!(text(&got[0].payload), r#"{"id":7}"#);

    // A seed that does not match the JWT is refused by the server, and neither leaks.
    let (_, other_seed) = operator.user(None);
    let opts = options(&[
        ("server_url", &url),
        ("subject", "cred.rows"),
        ("connect_mode", "credential"),
        ("jwt", &jwt),
        ("nkey", &other_seed),
    ]);
    let out = sink_lines(&opts, &[("id", "integer")], "{\"id\":7}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains(&other_seed) && !stderr.contains(&jwt),
        "a secret leaked: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_publish_permission_fails_the_flush() {
    let operator = Operator::new();
    let server = NatsServer::with_config(&operator.server_config());
    let url = server.url();
    let (jwt, seed) = operator.user(Some(&["allowed.>"]));
    let credential_to = |subject: &str| {
        options(&[
            ("server_url", &url),
            ("subject", subject),
            ("connect_mode", "credential"),
            ("jwt", &jwt),
            ("nkey", &seed),
        ])
    };
    let opts = credential_to("denied.rows");
    let out = sink_lines(&opts, &[("id", "integer")], "{\"id\":1}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Permissions Violation for Publish to \"denied.rows\""),
        "{stderr}"
    );

    // Flushes on a subject the server has already let through skip the wait for its error
    // reports; a subject new to the connection still gets it, so its refusal fails its own
    // checkpoint (the third: batches of 3), not a later one.
    let opts = credential_to("{area}.rows");
    let lines =
        "{\"area\":\"allowed\"}\n".repeat(6) + "{\"area\":\"allowed\"}\n{\"area\":\"denied\"}\n";
    let out = sink_lines(&opts, &[("area", "varchar")], &lines).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Permissions Violation for Publish to \"denied.rows\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("rows through input line 6 (6 rows) are confirmed"),
        "{stderr}"
    );

    // Subjects under `$JS.API` are the server's commands (`$JS.API.STREAM.PURGE.x` would
    // empty a stream): refused before anything is sent.
    let opts = credential_to("$JS.API.audit");
    let out = sink_lines(&opts, &[("id", "integer")], "{\"id\":1}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("as a command, not as data"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_server_fails_within_the_connect_timeout() {
    let port = free_port();
    let url = format!("127.0.0.1:{port}");
    let opts = options(&[
        ("server_url", &url),
        ("subject", "x"),
        ("connect_mode", "plain"),
        ("connect_timeout_ms", "2000"),
    ]);
    let started = std::time::Instant::now();
    let out = sink_lines(&opts, &[("id", "integer")], "{\"id\":1}\n").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("could not connect to {url}")),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread")]
async fn option_errors_exit_2_and_name_the_option() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("subject", "s"), ("connect_mode", "plain")],
            "option `server_url`: required option is missing",
        ),
        (
            &[("server_url", "h:1"), ("connect_mode", "plain")],
            "option `subject`: required option is missing",
        ),
        (
            &[("server_url", "h:1"), ("subject", "s")],
            "option `connect_mode`: required option is missing",
        ),
        (
            &[
                ("server_url", "h"),
                ("subject", "s"),
                ("connect_mode", "plain"),
            ],
            "option `server_url`: entry 1 needs a port",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "a.*"),
                ("connect_mode", "plain"),
            ],
            "option `subject`: `a.*` contains a wildcard",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "a b"),
                ("connect_mode", "plain"),
            ],
            "option `subject`: must not contain whitespace",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "a..b"),
                ("connect_mode", "plain"),
            ],
            "option `subject`: `a..b` has an empty token",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "s"),
                ("connect_mode", "oauth"),
            ],
            "option `connect_mode`: unknown mode; use",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "s"),
                ("connect_mode", "user_and_password"),
                ("username", "u"),
            ],
            "option `password`: required when connect_mode is `user_and_password`",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "s"),
                ("connect_mode", "credential"),
                (
                    "nkey",
                    "SUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                ),
            ],
            "option `jwt`: required when connect_mode is `credential`",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "s"),
                ("connect_mode", "plain"),
                ("type", "retract"),
            ],
            "option `type`: must be `append-only` or `upsert`, got `retract`",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "s"),
                ("connect_mode", "plain"),
                ("connector", "kafka"),
            ],
            "option `connector`: must be `nats`",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "s"),
                ("connect_mode", "plain"),
                ("subjects", "x"),
            ],
            "option `subjects`: unknown option; did you mean `subject`?",
        ),
        (
            &[
                ("server_url", "h:1"),
                ("subject", "s"),
                ("connect_mode", "plain"),
                ("flush_timeout_ms", "-1"),
            ],
            "option `flush_timeout_ms`: must be a whole number",
        ),
    ];
    for (pairs, expected) in cases {
        let args: Vec<String> = std::iter::once("validate".to_string())
            .chain(with_args(&options(pairs)))
            .collect();
        let out = cli(args, "").await;
        assert_eq!(out.status.code(), Some(2), "{pairs:?}");
        assert!(
            text(&out.stdout).contains(expected),
            "{pairs:?}: expected {expected:?} in {}",
            text(&out.stdout)
        );
        // `run` refuses the same options with the same message, before connecting.
        let out = sink_lines(&options(pairs), &[("id", "integer")], "{\"id\":1}\n").await;
        assert_eq!(out.status.code(), Some(2), "{pairs:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{pairs:?}: {}",
            text(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_errors_exit_2_and_name_the_column() {
    let server = NatsServer::start();
    for (columns, expected) in [
        (
            &[("id", "intger")][..],
            "column `id`: unknown type `intger`; did you mean `integer`?",
        ),
        (
            &[("id", "integer"), ("id", "bigint")][..],
            "column `id` appears more than once",
        ),
        (
            &[("s", "struct<a integer")][..],
            "column `s`: expected `,` or `>`",
        ),
    ] {
        let out = sink_lines(&plain_options(&server, "s"), columns, "").await;
        assert_eq!(out.status.code(), Some(2), "{columns:?}");
        assert!(
            text(&out.stderr).contains(expected),
            "{columns:?}: {}",
            text(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_lists_every_option() {
    let out = cli(vec!["describe".into()], "").await;
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    for name in [
        "connector",
        "server_url",
        "subject",
        "connect_mode",
        "username",
        "password",
        "jwt",
        "nkey",
        "type",
        "sink_id",
        "dedupe",
        "max_in_flight",
        "ack_timeout_ms",
        "retry.max_attempts",
        "retry.max_elapsed_ms",
        "retry.initial_backoff_ms",
        "retry.max_backoff_ms",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{stdout}"
        );
    }
    let server_url = stdout.lines().find(|l| l.starts_with("server_url "));
    assert!(
        server_url.is_some_and(|l| l.split_whitespace().nth(1) == Some("required")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn example_dataset_is_sunk_completely() {
    let server = NatsServer::start_jetstream();
    let js = server
        .create_stream(NatsServer::stream_config("EX", &["example"]))
        .await;
    let schema = repo_file("examples/all_types.schema.json")
        .display()
        .to_string();
    let input = repo_file("examples/all_types.jsonl").display().to_string();
    let expected_rows = std::fs::read_to_string(&input).unwrap().lines().count() as u64;
    let mut args = vec![
        "run".to_string(),
        "--schema".into(),
        schema,
        "--input".into(),
        input,
    ];
    args.extend(with_args(&plain_options(&server, "example")));
    let out = cli(args, "").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        js.get_stream("EX")
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages,
        expected_rows
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn library_api_open_write_flush_close() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("lib.rows").await.unwrap();
    client.flush().await.unwrap();

    let runtime = SinkRuntime::load(component_path()).unwrap();
    let schema = vec![
        Column {
            name: "id".into(),
            data_type: "integer".into(),
        },
        Column {
            name: "tags".into(),
            data_type: "varchar[]".into(),
        },
    ];
    let mut sink = runtime
        .open(&plain_options(&server, "lib.rows"), &schema)
        .await
        .unwrap();
    let rows = pack(&[
        vec![
            Datum::Integer(1),
            Datum::List(vec![Datum::Varchar("a".into())]),
        ],
        vec![Datum::Integer(2), Datum::Null],
    ]);
    sink.write(&rows).await.unwrap();
    sink.flush().await.unwrap();
    assert_eq!(sink.metrics().snapshot().messages, 2);

    // A bad row: the one before it is published, the error names row and column.
    let err = sink
        .write(&pack(&[
            vec![Datum::Integer(3), Datum::Null],
            vec![Datum::Varchar("x".into()), Datum::Null],
        ]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "row 1: column `id`: expected integer, got varchar"
    );
    assert!(
        matches!(err, HostError::Sink(SinkError::InvalidRow(ref p)) if p.row == 1 && p.column == "id")
    );
    sink.flush().await.unwrap();
    sink.close().await.unwrap();

    let got: Vec<String> = collect(&mut sub, 3, WAIT)
        .await
        .iter()
        .map(|m| text(&m.payload))
        .collect();
    assert_eq!(
        got,
        vec![
            r#"{"id":1,"tags":["a"]}"#,
            r#"{"id":2,"tags":null}"#,
            r#"{"id":3,"tags":null}"#
        ]
    );

    // Two sinks side by side, each with its own store.
    let mut a = runtime
        .open(&plain_options(&server, "lib.a"), &schema)
        .await
        .unwrap();
    let b = runtime
        .open(&plain_options(&server, "lib.b"), &schema[..1])
        .await;
    assert!(b.is_ok());
    a.write(&pack(&[vec![Datum::Integer(1), Datum::Null]]))
        .await
        .unwrap();
    a.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn server_gone_after_open_fails_the_flush() {
    let server = NatsServer::start();
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let schema = columns(&[("id", "integer")]);
    let mut opts = plain_options(&server, "gone");
    opts.push(("flush_timeout_ms".into(), "1500".into()));
    let mut sink = runtime.open(&opts, &schema).await.unwrap();
    // Dropping the server kills it and reaps it: gone before the write, whether or not the
    // client has noticed yet. Either way the write or the flush must fail, in bounded time.
    drop(server);
    let started = std::time::Instant::now();
    let wrote = sink.write(&pack(&[vec![Datum::Integer(1)]])).await;
    let flushed = if wrote.is_ok() {
        sink.flush().await
    } else {
        wrote
    };
    let err = flushed.expect_err("nothing can be confirmed without a server");
    assert!(!err.is_input_error(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_beyond_the_memory_limit_closes_the_sink_and_names_the_limit() {
    let server = NatsServer::start();
    let config = nats_sink::RuntimeConfig {
        memory_limit: 4 << 20,
        ..Default::default()
    };
    let runtime = SinkRuntime::load_with(component_path(), &config).unwrap();
    let schema = columns(&[("v", "varchar")]);
    let mut sink = runtime
        .open(&plain_options(&server, "limits"), &schema)
        .await
        .unwrap();
    sink.write(&pack(&[vec![Datum::Varchar("fits".into())]]))
        .await
        .unwrap();
    let huge = pack(&[vec![Datum::Varchar("x".repeat(8 << 20))]]);
    let err = sink.write(&huge).await.unwrap_err();
    assert!(
        matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::MemoryLimit),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("exceeded the sink's memory limit of 4 MiB"),
        "{message}"
    );
    assert!(matches!(
        sink.flush().await,
        Err(HostError::Sink(SinkError::Closed(_)))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_beyond_the_cpu_limit_closes_the_sink_and_names_the_limit() {
    let server = NatsServer::start();
    let runtime = SinkRuntime::load(component_path())
        .unwrap()
        .with_cpu_limit(Duration::from_millis(5));
    let schema = columns(&[("v", "varchar")]);
    let mut sink = runtime
        .open(&plain_options(&server, "cpu"), &schema)
        .await
        .unwrap();
    // A few rows take well under 5 ms of guest time; host I/O does not count.
    sink.write(&pack(&[vec![Datum::Varchar("quick".into())]]))
        .await
        .unwrap();
    sink.flush().await.unwrap();
    // Encoding 200,000 rows in one call takes far longer than 5 ms.
    let rows: Rows = (0..200_000)
        .map(|i| vec![Datum::Varchar(format!("row {i} with some text to encode"))])
        .collect();
    let err = sink.write(&rows).await.unwrap_err();
    assert!(
        matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::CpuLimit),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("exceeded the sink's CPU limit of 5 ms per call"),
        "{err}"
    );
    assert!(matches!(
        sink.flush().await,
        Err(HostError::Sink(SinkError::Closed(_)))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn sinks_side_by_side_each_in_its_own_store_and_one_failing_leaves_the_others() {
    let core = NatsServer::start();
    let jetstream = NatsServer::start_jetstream();
    let js = jetstream
        .create_stream(NatsServer::stream_config("SIDE", &["side.js"]))
        .await;
    let client = core.client().await;
    let mut sub = client.subscribe("side.core").await.unwrap();
    client.flush().await.unwrap();
    let runtime = SinkRuntime::load(component_path())
        .unwrap()
        .with_memory_limit(4 << 20);
    let schema = |ty: &str| columns(&[("v", ty)]);
    let mut doomed = runtime
        .open(&plain_options(&core, "side.doomed"), &schema("varchar"))
        .await
        .unwrap();
    let mut to_core = runtime
        .open(&plain_options(&core, "side.core"), &schema("integer"))
        .await
        .unwrap();
    let mut js_options = plain_options(&jetstream, "side.js");
    js_options.push(("sink_id".into(), "side".into()));
    let mut to_stream = runtime.open(&js_options, &schema("bigint")).await.unwrap();

    // One sink blows its memory limit; the others run concurrently before and after it.
    let huge = pack(&[vec![Datum::Varchar("x".repeat(8 << 20))]]);
    assert!(doomed.write(&huge).await.is_err());
    let core_rows: Rows = (0..100).map(|i| vec![Datum::Integer(i)]).collect();
    let stream_rows: Rows = (0..100).map(|i| vec![Datum::Bigint(i)]).collect();
    let (a, b) = tokio::join!(
        async {
            to_core.write(&core_rows).await?;
            to_core.flush().await
        },
        async {
            to_stream.begin_checkpoint(1).await?;
            to_stream.write(&stream_rows).await?;
            to_stream.flush().await
        }
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(collect(&mut sub, 100, WAIT).await.len(), 100);
    assert_eq!(stream_messages(&js, "SIDE", WAIT).await.len(), 100);
    assert!(doomed.flush().await.is_err());
}
