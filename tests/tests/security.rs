//! Secrets stay secret, and the host decides what a component may reach: secrets from the
//! environment, an options file or `SECRET` in `--sql` authenticate against a real server and
//! appear nowhere in what the process prints (at `NATS_SINK_LOG=trace`); URL user info works
//! and is masked; a hostile component cannot reach another server or file; files and far ends
//! are checked and quoted safely.

use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use nats_sink::{HostError, SinkError, SinkRuntime};
use nats_sink_tests::*;

const LIMIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "pw-Zq81-never-shown";

fn auth_server() -> NatsServer {
    NatsServer::with_config(&format!(
        "authorization {{ user: sinker, password: \"{PASSWORD}\" }}"
    ))
}

struct Printed {
    code: Option<i32>,
    all: String,
}

/// Run the CLI at trace level with `env`, one row on stdin; everything it printed.
fn run(args: &[&str], env: &[(&str, &str)]) -> Printed {
    let (feed, chunks) = std::sync::mpsc::channel();
    feed.send("{\"id\":1}\n".to_string()).unwrap();
    drop(feed);
    let mut env = env.to_vec();
    env.push(("NATS_SINK_LOG", "trace"));
    let out = spawn_cli_with_env(args, &env, chunks).wait(LIMIT);
    Printed {
        code: out.status.code(),
        all: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn run_args<'a>(schema: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--schema", schema];
    args.extend_from_slice(rest);
    args
}

fn assert_secret_kept(printed: &Printed, secret: &str) {
    assert!(
        !printed.all.contains(secret),
        "the secret was printed:\n{}",
        printed.all
    );
}

#[test]
fn a_password_from_the_environment_authenticates_and_is_never_printed() {
    let server = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let url = format!("server_url={}", server.url());
    let schema = schema.display().to_string();
    let args = run_args(
        &schema,
        &[
            "--with",
            &url,
            "--with",
            "subject=sec.env",
            "--with",
            "connect_mode=user_and_password",
            "--with",
            "username=sinker",
            "--with-env",
            "password=SINK_PW",
        ],
    );
    assert!(
        !args.iter().any(|a| a.contains(PASSWORD)),
        "not on the command line"
    );
    let printed = run(&args, &[("SINK_PW", PASSWORD)]);
    assert_eq!(printed.code, Some(0), "{}", printed.all);
    assert_secret_kept(&printed, PASSWORD);

    let wrong = "wrong-Zq81-also-secret";
    let printed = run(&args, &[("SINK_PW", wrong)]);
    assert_eq!(printed.code, Some(1), "{}", printed.all);
    assert!(
        printed.all.to_lowercase().contains("authorization"),
        "{}",
        printed.all
    );
    assert_secret_kept(&printed, wrong);

    let printed = run(&args, &[]);
    assert_eq!(printed.code, Some(2), "{}", printed.all);
    assert!(
        printed.all.contains("`SINK_PW` is not set"),
        "{}",
        printed.all
    );
}

#[test]
fn an_options_file_authenticates_and_warns_when_others_can_read_it() {
    let server = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let file = dir.path().join("sink.options");
    std::fs::write(
        &file,
        format!(
            "# the sink\nserver_url = {}\nsubject = sec.file\nconnect_mode = user_and_password\n\
             username = sinker\npassword = {PASSWORD}\n",
            server.url()
        ),
    )
    .unwrap();
    let schema = schema.display().to_string();
    let file_arg = file.display().to_string();
    let args = run_args(&schema, &["--options-file", &file_arg]);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let printed = run(&args, &[]);
    assert_eq!(printed.code, Some(0), "{}", printed.all);
    assert!(!printed.all.contains("warning"), "{}", printed.all);
    assert_secret_kept(&printed, PASSWORD);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let printed = run(&args, &[]);
    assert_eq!(printed.code, Some(0), "{}", printed.all);
    assert!(
        printed.all.contains("readable by others"),
        "{}",
        printed.all
    );
    assert_secret_kept(&printed, PASSWORD);
}

#[test]
fn sql_secrets_resolve_from_the_environment_or_the_options_file() {
    let server = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let sql = format!(
        "CREATE SINK s FROM t WITH (connector = 'nats', server_url = '{}', subject = 'sec.sql', \
         connect_mode = 'user_and_password', username = 'sinker', password = SECRET sink_pw)",
        server.url()
    );
    let schema = schema.display().to_string();
    let printed = run(
        &run_args(&schema, &["--sql", &sql]),
        &[("sink_pw", PASSWORD)],
    );
    assert_eq!(printed.code, Some(0), "{}", printed.all);
    assert_secret_kept(&printed, PASSWORD);

    let file = dir.path().join("secrets");
    std::fs::write(&file, format!("secret.sink_pw = {PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file_arg = file.display().to_string();
    let printed = run(
        &run_args(&schema, &["--sql", &sql, "--options-file", &file_arg]),
        &[],
    );
    assert_eq!(printed.code, Some(0), "{}", printed.all);
    assert_secret_kept(&printed, PASSWORD);

    let printed = run(&run_args(&schema, &["--sql", &sql]), &[]);
    assert_eq!(printed.code, Some(2), "{}", printed.all);
    assert!(printed.all.contains("SECRET sink_pw"), "{}", printed.all);

    // An unquoted secret is a syntax error that does not quote it.
    let unquoted = sql.replace("SECRET sink_pw", PASSWORD);
    let printed = run(&run_args(&schema, &["--sql", &unquoted]), &[]);
    assert_eq!(printed.code, Some(2), "{}", printed.all);
    assert_secret_kept(&printed, PASSWORD);
}

#[test]
fn user_info_in_the_url_authenticates_and_is_masked() {
    let server = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let schema = schema.display().to_string();
    let with_url = |password: &str| format!("server_url=nats://sinker:{password}@{}", server.url());
    let good = with_url(PASSWORD);
    let args = |url: &str| {
        vec![
            "run".to_string(),
            "--schema".into(),
            schema.clone(),
            "--with".into(),
            url.to_string(),
            "--with".into(),
            "subject=sec.url".into(),
            "--with".into(),
            "connect_mode=plain".into(),
            "--with".into(),
            "connect_timeout_ms=3000".into(),
        ]
    };
    let refs = |v: &[String]| v.iter().map(String::clone).collect::<Vec<_>>();
    let good_args = refs(&args(&good));
    let printed = run(
        &good_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(printed.code, Some(0), "{}", printed.all);
    assert_secret_kept(&printed, PASSWORD);

    let wrong = "wrong-Zq81-url-secret";
    let bad_args = refs(&args(&with_url(wrong)));
    let printed = run(
        &bad_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(printed.code, Some(1), "{}", printed.all);
    assert!(printed.all.contains("sinker:***@"), "{}", printed.all);
    assert_secret_kept(&printed, wrong);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_component_cannot_reach_another_server_or_file() {
    let server = NatsServer::start();
    // Another server the component would like to reach: it must never see a connection.
    let elsewhere = TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let elsewhere_addr = elsewhere.local_addr().unwrap().to_string();
    let runtime = SinkRuntime::load(hostile_component_path()).unwrap();
    let schema = columns(&[("id", "integer")]);

    let attempt = |behaviour: &str, extra: (&str, &str)| {
        options(&[
            ("server_url", &server.url()),
            ("behaviour", behaviour),
            extra,
        ])
    };
    let err = match runtime
        .open(
            &attempt("connect-elsewhere", ("elsewhere", &elsewhere_addr)),
            &schema,
        )
        .await
    {
        Err(HostError::Sink(SinkError::Connection(f))) => f.message,
        other => panic!("{:?}", other.err()),
    };
    assert!(
        err.contains("policy") && err.contains(&elsewhere_addr),
        "{err}"
    );
    assert!(
        elsewhere.accept().is_err(),
        "the other server saw a connection"
    );

    let err = match runtime
        .open(&attempt("read-file", ("file", "/etc/passwd")), &schema)
        .await
    {
        Err(HostError::Sink(SinkError::Connection(f))) => f.message,
        other => panic!("{:?}", other.err()),
    };
    assert!(
        err.contains("policy") && err.contains("`/etc/passwd`"),
        "{err}"
    );
    assert!(!err.contains("root:"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_component_cannot_drop_tls_or_swap_credentials() {
    // The component would connect here: the policy must refuse before any connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let runtime = SinkRuntime::load(hostile_component_path()).unwrap();
    let schema = columns(&[("id", "integer")]);
    let tls_url = format!("tls://{address}");
    // (case, options, the reason the refusal must give)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 3] = [
        (
            "tls:// dropped",
            vec![("server_url", &tls_url)],
            "without TLS",
        ),
        (
            "tls.required dropped",
            vec![("server_url", &address), ("tls.required", "true")],
            "without TLS",
        ),
        (
            "token swapped",
            vec![
                ("server_url", &address),
                ("connect_mode", "token"),
                ("token", "the-users-token"),
                ("behaviour", "swap-auth"),
                ("other_token", "a-baked-in-token"),
            ],
            "authentication",
        ),
    ];
    for (case, pairs, reason) in cases {
        let err = match runtime.open(&options(&pairs), &schema).await {
            Err(HostError::Sink(SinkError::Connection(f))) => f.message,
            other => panic!("{case}: {:?}", other.err()),
        };
        assert!(
            err.contains("policy") && err.contains(reason),
            "{case}: {err}"
        );
        assert!(
            !err.contains("the-users-token") && !err.contains("a-baked-in-token"),
            "{case}: {err}"
        );
        assert!(
            listener.accept().is_err(),
            "{case}: the component reached the server"
        );
    }
}

#[test]
fn a_ca_file_without_a_certificate_is_refused_without_quoting_it() {
    let server = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not-a-cert-Zq81-content\n").unwrap();
    let url = format!("server_url={}", server.url());
    let ca_arg = format!("tls.ca={}", ca.display());
    let printed = run(
        &[
            "check",
            "--with",
            &url,
            "--with",
            "subject=sec.ca",
            "--with",
            "connect_mode=plain",
            "--with",
            &ca_arg,
        ],
        &[],
    );
    assert_ne!(printed.code, Some(0), "{}", printed.all);
    assert!(
        printed.all.contains("tls.ca") && printed.all.contains("no PEM"),
        "{}",
        printed.all
    );
    assert_secret_kept(&printed, "not-a-cert-Zq81-content");
}

#[test]
fn a_server_that_is_not_nats_is_named_not_quoted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let banner = std::thread::spawn(move || {
        // Answer every connection as an SSH daemon would, with a long banner.
        listener.set_nonblocking(false).unwrap();
        for stream in listener.incoming().take(3) {
            let Ok(mut stream) = stream else { break };
            let _ =
                stream.write_all(b"SSH-2.0-OpenSSH_9.2 banner-Zq81-with-a-long-tail-of-words\r\n");
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let url = format!("server_url={addr}");
    let printed = run(
        &[
            "check",
            "--with",
            &url,
            "--with",
            "subject=sec.ssh",
            "--with",
            "connect_mode=plain",
            "--with",
            "connect_timeout_ms=2000",
        ],
        &[],
    );
    assert_eq!(printed.code, Some(1), "{}", printed.all);
    assert!(
        printed.all.contains("did not speak NATS"),
        "{}",
        printed.all
    );
    assert!(!printed.all.contains("long-tail"), "{}", printed.all);
    drop(banner);
}

/// Found from outside: sqlparser logged the statement at debug, a double-quoted secret was
/// quoted back, and a `server_url` typo showed the password.
#[test]
fn literal_sql_secrets_and_url_typos_are_never_printed() {
    let server = auth_server();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let schema = schema.display().to_string();
    let sql = |password: &str| {
        format!(
            "CREATE SINK s FROM t WITH (connector = 'nats', server_url = '{}', subject = 'sec.lit', \
             connect_mode = 'user_and_password', username = 'sinker', password = {password})",
            server.url()
        )
    };
    let quoted = sql(&format!("'{PASSWORD}'"));
    let printed = run(&run_args(&schema, &["--sql", &quoted]), &[]);
    assert_eq!(printed.code, Some(0), "{}", printed.all);
    assert_secret_kept(&printed, PASSWORD);

    let double_quoted = sql(&format!("\"{PASSWORD}\""));
    let printed = run(&run_args(&schema, &["--sql", &double_quoted]), &[]);
    assert_eq!(printed.code, Some(2), "{}", printed.all);
    assert!(printed.all.contains("single-quoted"), "{}", printed.all);
    assert_secret_kept(&printed, PASSWORD);

    for typo in [
        format!("server_url=nats://sinker:{PASSWORD} {}", server.url()),
        format!("server_url=nats://{PASSWORD}"),
    ] {
        let printed = run(
            &[
                "validate",
                "--with",
                &typo,
                "--with",
                "subject=a",
                "--with",
                "connect_mode=plain",
            ],
            &[],
        );
        assert_eq!(printed.code, Some(2), "{}", printed.all);
        assert_secret_kept(&printed, PASSWORD);
    }
}

#[test]
fn a_percent_encoded_password_in_the_url_authenticates() {
    let server = NatsServer::with_config("authorization { user: bob, password: \"Ab@cd:ef/g%h\" }");
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let schema = schema.display().to_string();
    let url = format!(
        "server_url=nats://bob:Ab%40cd%3Aef%2Fg%25h@{}",
        server.url()
    );
    let printed = run(
        &run_args(
            &schema,
            &[
                "--with",
                &url,
                "--with",
                "subject=sec.pct",
                "--with",
                "connect_mode=plain",
            ],
        ),
        &[],
    );
    assert_eq!(printed.code, Some(0), "{}", printed.all);
    assert_secret_kept(&printed, "Ab%40cd");
}

/// Found from outside: a far end that speaks NATS's INFO and then echoes the client's CONNECT
/// line in its `-ERR` put the token in the error and in async-nats's own log line.
#[test]
fn a_far_end_echoing_the_connect_line_does_not_show_the_secret() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for stream in listener.incoming().take(3) {
            let Ok(mut stream) = stream else { break };
            let info = format!(
                "INFO {{\"server_id\":\"x\",\"version\":\"2.9.0\",\"host\":\"127.0.0.1\",\"port\":{},\"max_payload\":1048576,\"proto\":1}}\r\n",
                addr.port()
            );
            let _ = stream.write_all(info.as_bytes());
            let mut first = String::new();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let _ = reader.read_line(&mut first);
            let _ = stream.write_all(format!("-ERR '{}'\r\n", first.trim_end()).as_bytes());
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let url = format!("server_url={addr}");
    for level in ["", "trace"] {
        let mut env = vec![("SINK_TOKEN", PASSWORD)];
        if !level.is_empty() {
            env.push(("NATS_SINK_LOG", level));
        }
        let (feed, chunks) = std::sync::mpsc::channel::<String>();
        drop(feed);
        let args = [
            "check",
            "--with",
            &url,
            "--with",
            "subject=sec.echo",
            "--with",
            "connect_mode=token",
            "--with-env",
            "token=SINK_TOKEN",
            "--with",
            "connect_timeout_ms=1500",
        ];
        let out = spawn_cli_with_env(&args, &env, chunks).wait(LIMIT);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{all}");
        assert!(!all.contains(PASSWORD), "the token was printed:\n{all}");
    }
    drop(echo);
}

/// A far end that sends INFO, then answers CONNECT with `-ERR` quoting the CONNECT line cut
/// short, as after an authorization refusal; each connection is answered so, for as long as
/// the test runs.
fn truncated_echo_far_end() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let info = format!(
                "INFO {{\"server_id\":\"x\",\"version\":\"2.9.0\",\"host\":\"127.0.0.1\",\"port\":{},\"max_payload\":1048576,\"proto\":1,\"auth_required\":true}}\r\n",
                addr.port()
            );
            let _ = stream.write_all(info.as_bytes());
            let mut connect = String::new();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let _ = reader.read_line(&mut connect);
            // Up to seven characters into the password: no whole secret to mask.
            let cut = connect
                .find("\"pass\":\"")
                .map_or(connect.len(), |at| at + "\"pass\":\"".len() + 7);
            let echo = &connect[..cut.min(connect.len())];
            let _ = stream.write_all(
                format!("-ERR 'Authorization Violation: {}'\r\n", echo.trim_end()).as_bytes(),
            );
        }
    });
    addr
}

/// Issue 26: an echo cut short leaked the password's first characters in `check` and `run`.
#[test]
fn a_far_end_echoing_a_truncated_connect_line_shows_no_part_of_the_password() {
    let addr = truncated_echo_far_end();
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), &[("id", "integer")]);
    let schema = schema.display().to_string();
    let url = format!("server_url={addr}");
    let options = [
        "--with",
        &url,
        "--with",
        "subject=sec.cut",
        "--with",
        "connect_mode=user_and_password",
        "--with",
        "username=sinker",
        "--with-env",
        "password=SINK_PASSWORD",
        "--with",
        "connect_timeout_ms=1500",
    ];
    let mut check = vec!["check"];
    check.extend_from_slice(&options);
    for args in [check, run_args(&schema, &options)] {
        let printed = run(&args, &[("SINK_PASSWORD", PASSWORD)]);
        assert_eq!(printed.code, Some(1), "{}", printed.all);
        assert!(
            printed.all.contains("refused the connection"),
            "{}",
            printed.all
        );
        // The echo held `pw-Zq81`: no part of it is shown.
        assert_secret_kept(&printed, &PASSWORD[..7]);
        assert_secret_kept(&printed, "Zq81");
    }
}

/// Issue 26: ``got `hunter2zzz` ``: a value from SECRET or --with-env is a secret whatever the
/// option it is given for.
#[test]
fn a_secret_given_for_any_option_is_never_quoted_in_its_problem() {
    let secret = "hunter2zzz-Zq81";
    let statement = "CREATE SINK s FROM t WITH (connector = 'nats', server_url = \
                     'nats://127.0.0.1:4222', subject = 'sec.any', connect_mode = 'plain', \
                     max_in_flight = SECRET \"pw\")";
    let printed = run(&["validate", "--sql", statement], &[("pw", secret)]);
    assert_eq!(printed.code, Some(2), "{}", printed.all);
    assert!(
        printed.all.contains("option `max_in_flight`") && printed.all.contains("SECRET pw"),
        "{}",
        printed.all
    );
    assert_secret_kept(&printed, "hunter2");
    for command in ["validate", "check"] {
        let printed = run(
            &[
                command,
                "--with",
                "server_url=nats://127.0.0.1:4222",
                "--with",
                "subject=sec.any",
                "--with",
                "connect_mode=plain",
                "--with-env",
                "max_in_flight=SINK_LIMIT",
            ],
            &[("SINK_LIMIT", secret)],
        );
        assert_eq!(printed.code, Some(2), "{}", printed.all);
        assert!(printed.all.contains("--with-env"), "{}", printed.all);
        assert_secret_kept(&printed, "hunter2");
    }
}
