//! Test support: real `nats-server` processes on free loopback ports, the built component and
//! CLI, and NATS JWTs for operator-mode servers.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub mod memory;

/// The workspace's `target/` directory.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The component `just build` produces; its absence is a failure, not a skip.
pub fn component_path() -> PathBuf {
    let path = std::env::var_os("NATS_SINK_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("nats-sink.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `just build` (or `just test`) first",
        path.display()
    );
    path
}

/// The `nats-sink` CLI built next to this test binary (`target/debug/nats-sink`).
pub fn cli_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("nats-sink");
    assert!(
        path.exists(),
        "{} is missing: run `just test`, which builds it",
        path.display()
    );
    path
}

/// A repository file, such as `examples/all_types.jsonl`.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `nats-server` process; killed and its files removed on drop.
pub struct NatsServer {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Plain server, no JetStream.
    pub fn start() -> NatsServer {
        NatsServer::with_config("")
    }

    /// Server with JetStream (file storage in the server's own temp dir).
    pub fn start_jetstream() -> NatsServer {
        NatsServer::with_config("jetstream { store_dir: \"{dir}/js\" }")
    }

    /// Start with extra config text; `{dir}` in it is replaced by the server's temp dir.
    pub fn with_config(extra: &str) -> NatsServer {
        let mut last_log = String::new();
        // A port can be taken between picking and binding; try a few.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let config = format!(
                "listen: 127.0.0.1:{port}\nmax_payload: 1MB\n{}\n",
                extra.replace("{dir}", &dir.path().display().to_string())
            );
            let config_path = dir.path().join("server.conf");
            std::fs::write(&config_path, config).expect("write server config");
            let log_path = dir.path().join("server.log");
            let child = Command::new("nats-server")
                .arg("-c")
                .arg(&config_path)
                .arg("-l")
                .arg(&log_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server on PATH (run ./setup.sh)");
            let mut server = NatsServer { port, child, dir };
            if server.wait_ready(Duration::from_secs(10)) {
                return server;
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            // Dropping the server kills it and removes its files.
        }
        panic!("nats-server did not start; last log:\n{last_log}");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // The port answers before JetStream is up; the log says when it is.
                let log =
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
                if log.contains("Server is ready") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn client(&self) -> async_nats::Client {
        tokio::time::timeout(Duration::from_secs(5), async_nats::connect(self.url()))
            .await
            .expect("connect within 5 s")
            .expect("connect to the test server")
    }

    /// Create a JetStream stream on this server and return the JetStream context.
    pub async fn create_stream(
        &self,
        config: async_nats::jetstream::stream::Config,
    ) -> async_nats::jetstream::Context {
        let js = async_nats::jetstream::new(self.client().await);
        js.create_stream(config).await.expect("create the stream");
        js
    }

    /// A stream named `name` capturing `subjects`, with defaults otherwise.
    pub fn stream_config(name: &str, subjects: &[&str]) -> async_nats::jetstream::stream::Config {
        async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sink options from pairs.
pub fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Plain options for a subject on `server`.
pub fn plain_options(server: &NatsServer, subject: &str) -> Vec<(String, String)> {
    let url = server.url();
    options(&[
        ("connector", "nats"),
        ("server_url", &url),
        ("subject", subject),
        ("connect_mode", "plain"),
    ])
}

/// Run the CLI with `args`, feeding `stdin`, bounded by `limit`.
pub fn run_cli(args: &[&str], stdin: &str, limit: Duration) -> Output {
    let mut child = Command::new(cli_path())
        .args(args)
        .env("NATS_SINK_COMPONENT", component_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nats-sink");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_string();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("wait for nats-sink") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("nats-sink {args:?} did not finish within {limit:?}");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let _ = writer.join();
    child.wait_with_output().expect("nats-sink output")
}

/// `--with` arguments for the CLI.
pub fn with_args(options: &[(String, String)]) -> Vec<String> {
    options
        .iter()
        .flat_map(|(k, v)| ["--with".to_string(), format!("{k}={v}")])
        .collect()
}

/// Write a schema file for the CLI.
pub fn schema_file(dir: &Path, columns: &[(&str, &str)]) -> PathBuf {
    let columns: Vec<_> = columns
        .iter()
        .map(|(n, t)| serde_json::json!({"name": n, "type": t}))
        .collect();
    let path = dir.join("schema.json");
    std::fs::write(&path, serde_json::json!({ "columns": columns }).to_string())
        .expect("write schema");
    path
}

/// Collect up to `count` messages from a subscription, waiting at most `limit` in all.
pub async fn collect(
    subscriber: &mut async_nats::Subscriber,
    count: usize,
    limit: Duration,
) -> Vec<async_nats::Message> {
    use futures::StreamExt as _;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while out.len() < count {
        match tokio::time::timeout_at(deadline, subscriber.next()).await {
            Ok(Some(m)) => out.push(m),
            _ => break,
        }
    }
    out
}

/// NATS JWTs for an operator-mode server: an operator, an account it signs, users the account signs.
pub struct Operator {
    pub operator: nkeys::KeyPair,
    pub account: nkeys::KeyPair,
    pub operator_jwt: String,
    pub account_jwt: String,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with `claims`, issued by `issuer` for `subject`.
pub fn sign_jwt(
    issuer: &nkeys::KeyPair,
    subject: &str,
    name: &str,
    nats: serde_json::Value,
) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "ed25519-nkey"});
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "jti": format!("{}{}", name.to_uppercase(), iat),
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = issuer.sign(signing_input.as_bytes()).expect("sign JWT");
    format!("{signing_input}.{}", b64url(&signature))
}

impl Operator {
    pub fn new() -> Operator {
        let operator = nkeys::KeyPair::new_operator();
        let account = nkeys::KeyPair::new_account();
        let operator_jwt = sign_jwt(
            &operator,
            &operator.public_key(),
            "test-operator",
            serde_json::json!({"type": "operator", "version": 2}),
        );
        let account_jwt = sign_jwt(
            &operator,
            &account.public_key(),
            "test-account",
            serde_json::json!({"type": "account", "version": 2, "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1
            }}),
        );
        Operator {
            operator,
            account,
            operator_jwt,
            account_jwt,
        }
    }

    /// Server config text for operator mode with the account preloaded.
    pub fn server_config(&self) -> String {
        format!(
            "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{ {}: \"{}\" }}\n",
            self.operator_jwt,
            self.account.public_key(),
            self.account_jwt
        )
    }

    /// A new user of the account: (JWT, seed). `allow_pub` limits what it may publish to.
    pub fn user(&self, allow_pub: Option<&[&str]>) -> (String, String) {
        let user = nkeys::KeyPair::new_user();
        let publish = match allow_pub {
            Some(subjects) => serde_json::json!({"allow": subjects}),
            None => serde_json::json!({}),
        };
        let jwt = sign_jwt(
            &self.account,
            &user.public_key(),
            "test-user",
            serde_json::json!({"type": "user", "version": 2, "pub": publish, "sub": {}, "subs": -1, "data": -1, "payload": -1}),
        );
        (jwt, user.seed().expect("user seed"))
    }
}

impl Default for Operator {
    fn default() -> Self {
        Operator::new()
    }
}
