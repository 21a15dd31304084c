//! The host conformance suite's Rust driver: every case of `tests/conformance/cases` against
//! real nats-servers, through the wasmtime host (`SinkRuntime`), with the report of every case
//! (passed, or skipped with why). The cases and their format: `tests/conformance/README.md`.
//! Also the policy description the Python and Node hosts read (`policy_file`).

mod policy_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use nats_sink::{
    ClosedAfter, Column, HostError, RowProblem, Rows, RuntimeErrorKind, SinkError, SinkRuntime,
};
use nats_sink_cli::input::parse_line;
use nats_sink_guest::schema::Schema;
use nats_sink_tests::*;
use serde_json::{Map, Value as Json};

const WAIT: Duration = Duration::from_secs(10);

fn read_json(path: &Path) -> Json {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with the suite's placeholders filled: `{c*n}`, then `{name}` from `vars`.
fn fill(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let tail = &rest[open + 1..];
        let close = tail.find('}');
        let inner = close.map(|c| &tail[..c]);
        let repeated = inner.and_then(|i| {
            let mut chars = i.chars();
            let c = chars.next()?;
            let n: usize = chars.as_str().strip_prefix('*')?.parse().ok()?;
            Some(c.to_string().repeat(n))
        });
        match (repeated, inner.and_then(|i| vars.get(i))) {
            (Some(text), _) => out.push_str(&text),
            (None, Some(value)) => out.push_str(value),
            (None, None) => {
                out.push('{');
                rest = tail;
                continue;
            }
        }
        rest = &tail[close.unwrap() + 1..];
    }
    out.push_str(rest);
    out
}

fn fill_json(value: &Json, vars: &BTreeMap<String, String>) -> Json {
    match value {
        Json::String(s) => Json::String(fill(s, vars)),
        Json::Array(items) => Json::Array(items.iter().map(|v| fill_json(v, vars)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_json(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The WIT name of an error's case, as the cases name kinds.
fn kind(err: &HostError) -> String {
    match err {
        HostError::Sink(e) => match e {
            SinkError::InvalidOptions(_) => "invalid-options",
            SinkError::InvalidSchema(_) => "invalid-schema",
            SinkError::InvalidRow(_) => "invalid-row",
            SinkError::Connection(_) => "connection",
            SinkError::Publish(_) => "publish",
            SinkError::Timeout(_) => "timeout",
            SinkError::Closed(_) => "closed",
        }
        .into(),
        HostError::Runtime(e) => match e.kind() {
            RuntimeErrorKind::Trap => "trap".into(),
            RuntimeErrorKind::CpuLimit => "cpu-limit".into(),
            RuntimeErrorKind::MemoryLimit => "memory-limit".into(),
            _ => format!("not a sink error ({e})"),
        },
        other => format!("not a sink error ({other})"),
    }
}

fn check_error(step: &str, err: &HostError, expected: &Json, vars: &BTreeMap<String, String>) {
    let kind = kind(err);
    let message = err.to_string();
    let kinds: Vec<&str> = expected["kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&kind.as_str()),
        "{step}: a {kind} error ({message}), expected {kinds:?}"
    );
    let texts = |key: &str| {
        expected[key]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|t| fill(t.as_str().unwrap(), vars))
    };
    for text in texts("contains") {
        assert!(
            message.contains(&text),
            "{step}: {message:?} lacks {text:?}"
        );
    }
    for text in texts("not_contains") {
        assert!(
            !message.contains(&text),
            "{step}: {message:?} holds {text:?}"
        );
    }
    check_failure(step, err, expected);
    if let Some(row) = expected.get("row") {
        match err {
            HostError::Sink(SinkError::InvalidRow(p)) => {
                assert_eq!(Some(p.row as u64), row.as_u64(), "{step}: the refused row")
            }
            _ => panic!("{step}: {message}"),
        }
    }
}

/// The typed fields of a delivery failure: `core_in_doubt` (false unless the case says so)
/// and, for `closed`, what closed it (`closed_after`, when the case names the choices).
fn check_failure(step: &str, err: &HostError, expected: &Json) {
    let HostError::Sink(error) = err else {
        return;
    };
    let Some(failure) = error.failure() else {
        return;
    };
    let core_in_doubt = expected["core_in_doubt"].as_bool().unwrap_or(false);
    assert_eq!(
        failure.core_in_doubt, core_in_doubt,
        "{step}: core_in_doubt of {error:?}"
    );
    if let (SinkError::Closed(closure), Some(choices)) =
        (error, expected["closed_after"].as_array())
    {
        let after = match closure.after {
            ClosedAfter::Close => "close",
            ClosedAfter::Connection => "connection",
            ClosedAfter::Publish => "publish",
            ClosedAfter::Timeout => "timeout",
            ClosedAfter::Interrupted => "interrupted",
        };
        assert!(
            choices.iter().any(|c| c.as_str() == Some(after)),
            "{step}: closed after {after}, expected one of {choices:?}"
        );
    }
}

/// The rows as the CLI reads them from JSON Lines, up to the first it refuses: as in the CLI,
/// the Python and the Node host, a value the host cannot take is `invalid-row` at its index,
/// and the rows before it are written.
fn rows(columns: &[Column], given: &Json) -> (Rows, Option<RowProblem>) {
    let schema = Schema::parse(
        columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str())),
    )
    .unwrap();
    let mut rows = Vec::new();
    for (i, row) in given.as_array().unwrap().iter().enumerate() {
        match parse_line(&schema, i as u64 + 1, &row.to_string()) {
            Ok(parsed) => rows.push(parsed),
            Err(nats_sink_cli::input::InputError::BadValue {
                column, message, ..
            }) => {
                let problem = RowProblem {
                    row: i as u32,
                    column,
                    message,
                };
                return (rows.into_iter().collect(), Some(problem));
            }
            Err(other) => panic!("row {i}: {other:?}"),
        }
    }
    (rows.into_iter().collect(), None)
}

async fn observer(
    case: &Json,
    server: &NatsServer,
    vars: &BTreeMap<String, String>,
    pki: &Path,
) -> async_nats::Client {
    let auth = fill_json(&case["observe_auth"], vars);
    let text = |key: &str| auth[key].as_str().map(str::to_string);
    let mut options = match (
        text("token"),
        text("user"),
        text("nkey_seed"),
        text("creds_file"),
    ) {
        (Some(token), ..) => async_nats::ConnectOptions::with_token(token),
        (_, Some(user), ..) => {
            async_nats::ConnectOptions::with_user_and_password(user, text("password").unwrap())
        }
        (_, _, Some(seed), _) => async_nats::ConnectOptions::with_nkey(seed),
        (_, _, _, Some(file)) => async_nats::ConnectOptions::with_credentials_file(file)
            .await
            .unwrap(),
        _ => async_nats::ConnectOptions::new(),
    };
    if case["observe_tls"].as_bool() == Some(true) {
        options = options
            .require_tls(true)
            .add_root_certificates(pki.join("ca.pem"))
            .add_client_certificate(pki.join("client.pem"), pki.join("client-key.pem"));
    }
    tokio::time::timeout(WAIT, options.connect(server.url()))
        .await
        .expect("the observer connects in time")
        .expect("the observer connects")
}

struct Suite {
    /// The real guest and the hostile one, each compiled once for every case.
    real: SinkRuntime,
    hostile: SinkRuntime,
    dir: PathBuf,
    pki: PathBuf,
    pieces: Json,
    auth: Map<String, Json>,
}

impl Suite {
    fn vars(&self, server: Option<&NatsServer>) -> BTreeMap<String, String> {
        let mut vars: BTreeMap<String, String> = self
            .auth
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        vars.insert("pki".into(), self.pki.display().to_string());
        vars.insert(
            "fixtures".into(),
            self.dir.join("fixtures").display().to_string(),
        );
        if let Some(server) = server {
            vars.insert("server".into(), server.url());
        }
        vars
    }

    async fn run(&self, case: &Json) {
        let config: Vec<String> = case["server"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                fill(
                    self.pieces[p.as_str().unwrap()].as_str().unwrap(),
                    &self.vars(None),
                )
            })
            .collect();
        let server = NatsServer::with_config(&config.join("\n"));
        let vars = self.vars(Some(&server));
        let client = observer(case, &server, &vars, &self.pki).await;
        let mut subscriber = client
            .subscribe(case["observe"].as_str().unwrap_or("conf.>").to_string())
            .await
            .unwrap();
        client.flush().await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        if let Some(stream) = case.get("stream") {
            let subjects: Vec<String> = stream["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect();
            js.create_stream(async_nats::jetstream::stream::Config {
                name: stream["name"].as_str().unwrap().into(),
                subjects,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let runtime = match case["guest"].as_str() {
            Some("hostile") => &self.hostile,
            _ => &self.real,
        };
        let mut sink = None;
        let mut columns = Vec::new();
        for step in case["steps"].as_array().unwrap() {
            let name = step
                .as_object()
                .unwrap()
                .keys()
                .find(|k| *k != "error")
                .unwrap()
                .clone();
            let outcome: Result<(), HostError> = match name.as_str() {
                "open" => {
                    let mut options = vec![
                        ("connector".to_string(), "nats".to_string()),
                        ("server_url".to_string(), "{server}".to_string()),
                    ];
                    for (k, v) in step["open"]["options"].as_object().unwrap() {
                        options.retain(|(key, _)| key != k);
                        options.push((k.clone(), v.as_str().unwrap().to_string()));
                    }
                    let options: Vec<(String, String)> = options
                        .into_iter()
                        .map(|(k, v)| (k, fill(&v, &vars)))
                        .collect();
                    let schema = step["open"]
                        .get("schema")
                        .cloned()
                        .unwrap_or(serde_json::json!([["id", "integer"], ["name", "varchar"]]));
                    columns = schema
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| Column {
                            name: c[0].as_str().unwrap().into(),
                            data_type: c[1].as_str().unwrap().into(),
                        })
                        .collect();
                    runtime
                        .open(&options, &columns)
                        .await
                        .map(|opened| sink = Some(opened))
                }
                "checkpoint" => {
                    let id = step["checkpoint"].as_u64().unwrap();
                    sink.as_mut().unwrap().begin_checkpoint(id).await
                }
                "write" => {
                    let (rows, refused) = rows(&columns, &fill_json(&step["write"], &vars));
                    let sink = sink.as_mut().unwrap();
                    match sink.write(&rows).await {
                        Ok(()) => match refused {
                            Some(problem) => Err(HostError::Sink(SinkError::InvalidRow(problem))),
                            None => Ok(()),
                        },
                        Err(err) => Err(err),
                    }
                }
                "flush" => sink.as_mut().unwrap().flush().await,
                "delete_stream" => {
                    js.delete_stream(step["delete_stream"].as_str().unwrap())
                        .await
                        .unwrap();
                    Ok(())
                }
                other => panic!("unknown step {other}"),
            };
            match (outcome, step.get("error")) {
                (Err(err), Some(expected)) => check_error(&name, &err, expected, &vars),
                (Ok(()), Some(expected)) => {
                    panic!("{name}: succeeded, expected a {} error", expected["kind"])
                }
                (Err(err), None) => panic!("{name}: {err}"),
                (Ok(()), None) => {}
            }
        }
        let expected = case["messages"].as_array().unwrap();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while seen.len() < expected.len() {
            match tokio::time::timeout_at(deadline, subscriber.next()).await {
                Ok(Some(m))
                    if !m.subject.starts_with("$JS.") && !m.subject.starts_with("_INBOX.") =>
                {
                    seen.push(m)
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        // Anything more the server passed on arrives before the observer's own round trip.
        client.flush().await.unwrap();
        while let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(50), subscriber.next()).await
        {
            if !m.subject.starts_with("$JS.") && !m.subject.starts_with("_INBOX.") {
                seen.push(m);
            }
        }
        let payloads: Vec<String> = seen
            .iter()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        let wanted: Vec<String> = expected
            .iter()
            .map(|m| fill(m["payload"].as_str().unwrap(), &vars))
            .collect();
        assert_eq!(payloads, wanted, "the payloads received");
        for (i, m) in expected.iter().enumerate() {
            for (k, v) in m["headers"].as_object().cloned().unwrap_or_default() {
                let got = seen[i]
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(k.as_str()))
                    .map(|v| v.to_string());
                assert_eq!(got.as_deref(), v.as_str(), "message {i}'s {k}");
            }
        }
        if let Some(count) = case.get("stream_messages") {
            let mut stream = js
                .get_stream(case["stream"]["name"].as_str().unwrap())
                .await
                .unwrap();
            assert_eq!(
                Some(stream.info().await.unwrap().state.messages),
                count.as_u64()
            );
        }
        if let Some(created) = case.get("created_stream") {
            let subject = created["subject"]
                .as_str()
                .or(case["steps"][0]["open"]["options"]["subject"].as_str())
                .unwrap();
            let found = js.stream_by_subject(subject).await.ok();
            match (created.is_null(), found) {
                (true, None) => {}
                (true, Some(name)) => panic!("a stream {name} was created"),
                (false, None) => panic!("no stream captures {subject}"),
                (false, Some(name)) => {
                    let mut stream = js.get_stream(&name).await.unwrap();
                    let info = stream.info().await.unwrap();
                    assert_eq!(Some(info.config.max_messages), created["max_msgs"].as_i64());
                    assert_eq!(Some(info.state.messages), created["messages"].as_u64());
                }
            }
        }
        if let Some(sink) = sink {
            let _ = sink.close().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_case_of_the_conformance_suite() {
    let dir = repo_file("tests/conformance");
    let work = tempfile::tempdir().unwrap();
    let pki = work.path().join("pki");
    let made = std::process::Command::new(dir.join("make-pki.sh"))
        .arg(&pki)
        .status()
        .unwrap();
    assert!(made.success(), "make-pki.sh failed");
    let suite = Suite {
        real: SinkRuntime::load(component_path()).unwrap(),
        // A bound a looping guest reaches quickly (the default is 30 s).
        hostile: SinkRuntime::load(hostile_component_path())
            .unwrap()
            .with_cpu_limit(Duration::from_secs(1)),
        pieces: read_json(&dir.join("servers.json")),
        auth: read_json(&dir.join("fixtures/auth.json"))
            .as_object()
            .unwrap()
            .clone(),
        pki,
        dir: dir.clone(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut report = Vec::new();
    let mut failed = Vec::new();
    for file in files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        for case in read_json(&file)["cases"].as_array().unwrap() {
            let name = format!("{stem}: {}", case["name"].as_str().unwrap());
            if let Some(why) = case["skip"]["rust"].as_str() {
                report.push(format!("  skip {name} — {why}"));
                continue;
            }
            let run = tokio::time::timeout(Duration::from_secs(60), suite.run(case));
            match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(Ok(())) => report.push(format!("  pass {name}")),
                Ok(Err(_)) => {
                    report.push(format!("  FAIL {name} — no outcome within 60 s"));
                    failed.push(name);
                }
                Err(panic) => {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    report.push(format!("  FAIL {name} — {why}"));
                    failed.push(name);
                }
            }
        }
    }
    let passed = report.iter().filter(|l| l.starts_with("  pass")).count();
    println!(
        "conformance report (rust host): {passed} passed, {} skipped, {} failed\n{}",
        report.iter().filter(|l| l.starts_with("  skip")).count(),
        failed.len(),
        report.join("\n")
    );
    assert!(
        failed.is_empty(),
        "failed: {failed:#?}\n{}",
        report.join("\n")
    );
}
