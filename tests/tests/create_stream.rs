//! RisingWave's stream keys (`allow_create_stream`, `max_bytes`, ...), which RisingWave's NATS
//! sink parses and ignores, acted on: the CLI against a real `nats-server` with JetStream.

use std::time::Duration;

use futures::TryStreamExt;
use nats_sink_guest::stream::stream_name;
use nats_sink_tests::*;

const CLI_LIMIT: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn with(base: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all = base.to_vec();
    all.extend(options(extra));
    all
}

/// The CLI's `command` with these options; `run` reads `lines` with an id/region schema.
async fn sink(command: &str, opts: &[(String, String)], lines: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![command.to_string()];
    if command == "run" {
        let schema = schema_file(dir.path(), &[("id", "integer"), ("region", "varchar")]);
        args.extend(["--schema".into(), schema.display().to_string()]);
    }
    args.extend(with_args(opts));
    cli(args, lines, CLI_LIMIT).await
}

/// Every stream on the server, by name.
async fn stream_names(server: &NatsServer) -> Vec<String> {
    let js = async_nats::jetstream::new(server.client().await);
    let mut names: Vec<String> = js.stream_names().try_collect().await.expect("stream names");
    names.sort();
    names
}

async fn stream_info(server: &NatsServer, name: &str) -> async_nats::jetstream::stream::Info {
    let js = async_nats::jetstream::new(server.client().await);
    let mut stream = js.get_stream(name).await.expect("the created stream");
    stream.info().await.expect("stream info").clone()
}

const LIMITS: [(&str, &str); 5] = [
    ("max_bytes", "1048576"),
    ("max_messages", "1000"),
    ("max_messages_per_subject", "500"),
    ("max_consumers", "7"),
    ("max_message_size", "65536"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_is_created_with_every_limit_and_a_second_sink_reuses_it() {
    let server = NatsServer::start_jetstream();
    let mut extra = vec![("allow_create_stream", "true")];
    extra.extend(LIMITS);
    let opts = with(&plain_options(&server, "orders.new"), &extra);
    let expected = stream_name("orders.new");

    // `check` names the stream it would create, and creates nothing.
    let out = sink("check", &opts, "").await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "would create stream {expected} capturing `orders.new` (max_bytes 1048576, max_messages 1000, max_messages_per_subject 500, max_consumers 7, max_message_size 65536)"
        )),
        "{stdout}"
    );
    assert!(stream_names(&server).await.is_empty());

    let out = sink(
        "run",
        &opts,
        "{\"id\":1,\"region\":\"eu\"}\n{\"id\":2,\"region\":\"us\"}\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stream_names(&server).await, vec![expected.clone()]);
    let info = stream_info(&server, &expected).await;
    let config = &info.config;
    assert_eq!(config.subjects, vec!["orders.new".to_string()]);
    assert_eq!(config.max_bytes, 1_048_576);
    assert_eq!(config.max_messages, 1_000);
    assert_eq!(config.max_messages_per_subject, 500);
    assert_eq!(config.max_consumers, 7);
    assert_eq!(config.max_message_size, 65_536);
    assert_eq!(info.state.messages, 2, "acked into the new stream");

    // A second sink with the same subject finds the stream: no error, no second stream.
    let out = sink("run", &opts, "{\"id\":3,\"region\":\"ap\"}\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stream_names(&server).await, vec![expected.clone()]);
    assert_eq!(stream_info(&server, &expected).await.state.messages, 3);

    let out = sink("check", &opts, "").await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("stream       {expected} captures the subject")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subject_filled_from_rows_gets_a_stream_capturing_every_subject_it_makes() {
    let server = NatsServer::start_jetstream();
    let opts = with(
        &plain_options(&server, "orders.{region}.placed"),
        &[("allow_create_stream", "true"), ("max_messages", "10")],
    );
    let expected = stream_name("orders.*.placed");
    let out = sink(
        "run",
        &opts,
        "{\"id\":1,\"region\":\"eu\"}\n{\"id\":2,\"region\":\"us\"}\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stream_names(&server).await, vec![expected.clone()]);
    let info = stream_info(&server, &expected).await;
    assert_eq!(info.config.subjects, vec!["orders.*.placed".to_string()]);
    assert_eq!(info.config.max_messages, 10);
    assert_eq!(
        info.config.max_bytes, -1,
        "limits not given are the server's"
    );
    let js = async_nats::jetstream::new(server.client().await);
    let subjects: Vec<String> = stream_messages(&js, &expected, Duration::from_secs(10))
        .await
        .iter()
        .map(|m| m.subject.to_string())
        .collect();
    assert_eq!(subjects, vec!["orders.eu.placed", "orders.us.placed"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_allow_create_stream_nothing_is_created() {
    let server = NatsServer::start_jetstream();
    for allow in [None, Some("false")] {
        let mut extra: Vec<(&str, &str)> = LIMITS.to_vec();
        extra.extend(allow.map(|v| ("allow_create_stream", v)));
        let opts = with(&plain_options(&server, "orders.new"), &extra);
        let out = sink("run", &opts, "{\"id\":1,\"region\":\"eu\"}\n").await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let out = sink("check", &opts, "").await;
        let stdout = text(&out.stdout);
        assert!(stdout.contains("route        core NATS"), "{stdout}");
        assert!(!stdout.contains("\nstream "), "{stdout}");
    }
    assert!(stream_names(&server).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_already_captures_the_subject_is_used_as_it_is() {
    let server = NatsServer::start_jetstream();
    server
        .create_stream(NatsServer::stream_config("ORDERS", &["orders.>"]))
        .await;
    let opts = with(
        &plain_options(&server, "orders.new"),
        &[("allow_create_stream", "true"), ("max_bytes", "1024")],
    );
    let out = sink("run", &opts, "{\"id\":1,\"region\":\"eu\"}\n").await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(stream_names(&server).await, vec!["ORDERS".to_string()]);
    let info = stream_info(&server, "ORDERS").await;
    assert_eq!((info.state.messages, info.config.max_bytes), (1, -1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_jetstream_is_a_delivery_failure_naming_it() {
    let server = NatsServer::start();
    let opts = with(
        &plain_options(&server, "orders.new"),
        &[("allow_create_stream", "true")],
    );
    let out = sink("run", &opts, "{\"id\":1,\"region\":\"eu\"}\n").await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the server has no JetStream"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_values_are_option_problems() {
    let opts = options(&[
        ("server_url", "127.0.0.1:1"),
        ("subject", "orders"),
        ("connect_mode", "plain"),
        ("allow_create_stream", "yes"),
        ("max_bytes", "1MB"),
        ("max_consumers", "2147483648"),
        ("max_messages", "-2"),
    ]);
    for command in ["validate", "check", "run"] {
        let out = sink(command, &opts, "").await;
        // `validate` lists the problems on stdout; the other commands on stderr.
        let stderr = text(&out.stderr) + &text(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        for expected in [
            "allow_create_stream",
            "must be `true` or `false`, got `yes`",
            "max_bytes",
            "got `1MB`",
            "max_consumers",
            "from -1 to 2147483647",
            "max_messages",
            "got `-2`",
        ] {
            assert!(stderr.contains(expected), "{command}: {expected}: {stderr}");
        }
    }
}
