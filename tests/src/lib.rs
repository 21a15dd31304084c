//! Test support: real `nats-server` processes on free loopback ports, the built component and
//! CLI, and NATS JWTs for operator-mode servers.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub mod memory;
pub mod streaming;

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

/// The hostile test guest (`tests/hostile`), built with the real one by `just build`.
pub fn hostile_component_path() -> PathBuf {
    let path = target_dir().join("hostile.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `just build` (or `just test`) first",
        path.display()
    );
    path
}

/// A component of `world` whose every export traps: wit-component's dummy module for it.
fn dummy_component(resolve: &wit_parser::Resolve, world: wit_parser::WorldId) -> Vec<u8> {
    let mut module = wit_component::dummy_module(
        resolve,
        world,
        wit_parser::ManglingAndAbi::Legacy(wit_parser::LiftLowerAbi::Sync),
    );
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed the world");
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .expect("a core module with its world")
        .encode()
        .expect("a component")
}

fn nats_sink_wit() -> (wit_parser::Resolve, wit_parser::PackageId) {
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(repo_file("wit"))
        .expect("parse wit/nats-sink.wit");
    (resolve, package)
}

/// The nats-sink world with every export trapping (`open` included).
pub fn trapping_component() -> Vec<u8> {
    let (resolve, package) = nats_sink_wit();
    let world = resolve
        .select_world(&[package], Some("nats-sink-component"))
        .expect("the nats-sink world");
    dummy_component(&resolve, world)
}

/// The nats-sink world plus an import no host of ours provides (`hostile:extra/clock`).
pub fn component_with_extra_import() -> Vec<u8> {
    let (mut resolve, sink_package) = nats_sink_wit();
    let extra = resolve
        .push_str(
            "extra.wit",
            "package hostile:extra;\n\
             interface clock { now: func() -> u64; }\n\
             world with-extra-import {\n\
               include nats-sink:sink/nats-sink-component@0.1.0;\n\
               import clock;\n\
             }\n",
        )
        .expect("parse the extra world");
    let world = resolve
        .select_world(
            &[extra, sink_package],
            Some("hostile:extra/with-extra-import"),
        )
        .expect("the extra world");
    dummy_component(&resolve, world)
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

/// A `nats-server` process; killed and its files removed on drop. It can be stopped and
/// started again on the same port with the same files, as a restart in production would.
pub struct NatsServer {
    pub port: u16,
    child: Option<Child>,
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
            match NatsServer::spawn(port, dir, &config) {
                Ok(server) => return server,
                Err(log) => last_log = log,
            }
        }
        panic!("nats-server did not start; last log:\n{last_log}");
    }

    /// Start `nats-server` with `config` in `dir`; the log if it did not become ready.
    fn spawn(port: u16, dir: tempfile::TempDir, config: &str) -> Result<NatsServer, String> {
        std::fs::write(dir.path().join("server.conf"), config).expect("write server config");
        let mut server = NatsServer {
            port,
            child: None,
            dir,
        };
        match server.restart() {
            true => Ok(server),
            // Dropping the server kills it and removes its files.
            false => Err(server.log()),
        }
    }

    /// Start the server again (after `kill` or `stop`) on its port, with its files;
    /// false if it did not become ready within 10 s.
    pub fn restart(&mut self) -> bool {
        self.kill();
        let log_path = self.dir.path().join("server.log");
        // The old log says "ready" already; only the new one counts.
        let _ = std::fs::remove_file(&log_path);
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(self.dir.path().join("server.conf"))
            .arg("-l")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (run ./setup.sh)");
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10))
    }

    /// Crash the server: SIGKILL, no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop the server as an operator would (SIGTERM: it flushes its store and closes
    /// connections), waiting at most 10 s before killing it.
    pub fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => {}
                _ => return false,
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                // The port answers before JetStream is up; the log says when it is.
                if self.log().contains("Server is ready") {
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
        self.kill();
    }
}

/// Three JetStream servers in one cluster on loopback ports, each named `n0`, `n1`, `n2`.
pub struct Cluster {
    pub servers: Vec<NatsServer>,
}

impl Cluster {
    pub fn start(size: usize) -> Cluster {
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let servers = (0..size)
            .map(|i| {
                let dir = tempfile::tempdir().expect("temp dir");
                let config = format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\nmax_payload: 1MB\n\
                     jetstream {{ store_dir: \"{}/js\" }}\n\
                     cluster {{ name: sinktest, listen: 127.0.0.1:{}, routes: [{routes}] }}\n",
                    client_ports[i],
                    dir.path().display(),
                    route_ports[i],
                );
                NatsServer::spawn(client_ports[i], dir, &config)
                    .unwrap_or_else(|log| panic!("cluster node n{i} did not start:\n{log}"))
            })
            .collect();
        Cluster { servers }
    }

    /// `host:port` of every node, comma-separated, as `server_url` takes them.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node named `name` (`n0`, ...).
    pub fn node(&mut self, name: &str) -> &mut NatsServer {
        let i: usize = name
            .trim_start_matches('n')
            .parse()
            .unwrap_or_else(|_| panic!("no node named {name}"));
        &mut self.servers[i]
    }

    /// Create a stream once the cluster has elected its JetStream leader (bounded wait).
    pub async fn create_stream(
        &self,
        config: async_nats::jetstream::stream::Config,
    ) -> async_nats::jetstream::Context {
        let client = async_nats::ConnectOptions::new()
            .connect(
                self.urls()
                    .split(',')
                    .map(|u| u.parse::<async_nats::ServerAddr>().expect("url"))
                    .collect::<Vec<_>>(),
            )
            .await
            .expect("connect to the cluster");
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match js.create_stream(config.clone()).await {
                Ok(_) => return js,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("the cluster did not take the stream within 30 s: {e}"),
            }
        }
    }
}

/// Every message in `stream`, in order, read with an ordered consumer (bounded by `limit`).
pub async fn stream_messages(
    js: &async_nats::jetstream::Context,
    stream: &str,
    limit: Duration,
) -> Vec<async_nats::jetstream::Message> {
    use futures::StreamExt as _;
    let deadline = tokio::time::Instant::now() + limit;
    let mut stream = js.get_stream(stream).await.expect("the stream");
    let count = stream.info().await.expect("stream info").state.messages as usize;
    // Right after a leader change the stream may refuse consumers for a moment.
    let consumer = loop {
        match stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
        {
            Ok(consumer) => break consumer,
            Err(e) if tokio::time::Instant::now() >= deadline => {
                panic!("no consumer on the stream within {limit:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut messages = consumer.messages().await.expect("the consumer's messages");
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(Ok(m))) => out.push(m),
            Ok(Some(Err(e))) => panic!("reading {count} messages: {e}"),
            _ => panic!("read {} of {count} messages within {limit:?}", out.len()),
        }
    }
    out
}

/// How many messages `stream` holds (a fresh connection, so it works across restarts).
pub async fn stream_count(url: &str, stream: &str) -> Option<u64> {
    let attempt = async {
        let client = async_nats::connect(url).await.ok()?;
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(stream).await.ok()?;
        Some(stream.info().await.ok()?.state.messages)
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
}

/// Sink options from pairs.
pub fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Schema columns from `(name, type)` pairs.
pub fn columns(spec: &[(&str, &str)]) -> Vec<nats_sink::Column> {
    spec.iter()
        .map(|(name, data_type)| nats_sink::Column {
            name: name.to_string(),
            data_type: data_type.to_string(),
        })
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
    spawn_cli(args, stdin).wait(limit)
}

/// `run_cli` off the async runtime, which it would otherwise block.
pub async fn cli(args: Vec<String>, stdin: &str, limit: Duration) -> Output {
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, &stdin, limit)
    })
    .await
    .expect("the CLI's waiter")
}

/// A running `nats-sink` process. Its output is read as it comes, so a chatty process never
/// blocks on a full pipe.
pub struct CliRun {
    child: Child,
    io: Vec<std::thread::JoinHandle<Vec<u8>>>,
    args: Vec<String>,
}

/// Start the CLI with `args`, feeding `stdin` from a thread.
pub fn spawn_cli(args: &[&str], stdin: &str) -> CliRun {
    let (feed, chunks) = std::sync::mpsc::channel();
    let _ = feed.send(stdin.to_string());
    spawn_cli_fed(args, chunks)
}

/// Start the CLI with `args`, writing each chunk `feed` receives to its stdin, which closes
/// when every sender is dropped.
pub fn spawn_cli_fed(args: &[&str], feed: std::sync::mpsc::Receiver<String>) -> CliRun {
    spawn_cli_with_env(args, &[], feed)
}

/// `spawn_cli_fed` with extra environment variables.
pub fn spawn_cli_with_env(
    args: &[&str],
    env: &[(&str, &str)],
    feed: std::sync::mpsc::Receiver<String>,
) -> CliRun {
    let mut child = Command::new(cli_path())
        .args(args)
        .envs(env.iter().copied())
        .env("NATS_SINK_COMPONENT", component_path())
        // Recoveries are logged at info, with how long they took; the caller may ask for more.
        .env(
            "NATS_SINK_LOG",
            std::env::var("NATS_SINK_LOG").unwrap_or_else(|_| "nats_sink=info".into()),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nats-sink");
    let mut input = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        for chunk in feed {
            if input
                .write_all(chunk.as_bytes())
                .and_then(|()| input.flush())
                .is_err()
            {
                break;
            }
        }
        Vec::new()
    });
    let reader = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    };
    let stdout = reader(Box::new(child.stdout.take().expect("stdout")));
    let stderr = reader(Box::new(child.stderr.take().expect("stderr")));
    CliRun {
        child,
        io: vec![writer, stdout, stderr],
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

impl CliRun {
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the exit, killing the process (and failing) after `limit`.
    pub fn wait(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        while self.is_running() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("nats-sink {:?} did not finish within {limit:?}", self.args);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = self.child.wait().expect("nats-sink's exit status");
        let mut io = self.io.into_iter().map(|t| t.join().unwrap_or_default());
        let _stdin = io.next();
        Output {
            status,
            stdout: io.next().unwrap_or_default(),
            stderr: io.next().unwrap_or_default(),
        }
    }
}

/// The body of `GET path` from an HTTP server on loopback, or `None` if it did not answer.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read as _;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
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

/// Certificates for TLS tests, as PEM files in a temp dir: a CA, a server certificate for
/// 127.0.0.1 signed by it, a client certificate signed by it, and an unrelated CA.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write a PEM file")
        };
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
                .expect("self-sign the CA")
        };
        let issuer = ca("nats-sink test CA");
        write("ca.pem", issuer.pem());
        write("other-ca.pem", ca("an unrelated CA").pem());
        for (name, names) in [
            ("server", vec!["127.0.0.1".to_string(), "localhost".into()]),
            ("client", vec!["nats-sink-client".to_string()]),
        ] {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(names)
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("sign");
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    /// The path of one of the PEM files: `ca`, `other-ca`, `server`, `server-key`, `client`,
    /// `client-key`.
    pub fn path(&self, name: &str) -> String {
        self.dir
            .path()
            .join(format!("{name}.pem"))
            .display()
            .to_string()
    }

    /// Server config text requiring TLS; with `verify_clients`, also a client certificate.
    pub fn server_config(&self, verify_clients: bool) -> String {
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: {verify_clients}\n  timeout: 2\n}}\n",
            self.path("server"),
            self.path("server-key"),
            self.path("ca"),
        )
    }

    /// A client of `server` that trusts the test CA (and presents the client certificate).
    pub async fn client(&self, server: &NatsServer) -> async_nats::Client {
        let options = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(self.path("ca").into())
            .add_client_certificate(self.path("client").into(), self.path("client-key").into());
        tokio::time::timeout(Duration::from_secs(5), options.connect(server.url()))
            .await
            .expect("connect within 5 s")
            .expect("connect over TLS")
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A `.creds` file's text, as `nsc` writes it.
pub fn creds_file_text(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

/// The host's packed rows as another binding of the same WIT type (the guest's own, or the
/// memory harness's): value for value, with the ends and the data as they are.
macro_rules! convert_rows {
    ($rows:expr, $($m:ident)::+) => {{
        use nats_sink::Value as H;
        let range = |r: &nats_sink::ChildRange| $($m)::+::ChildRange {
            start: r.start,
            len: r.len,
        };
        let span = |s: &nats_sink::Span| $($m)::+::Span {
            start: s.start,
            len: s.len,
        };
        let values = $rows
            .values
            .iter()
            .map(|v| match v {
                H::Null => $($m)::+::Value::Null,
                H::Boolean(b) => $($m)::+::Value::Boolean(*b),
                H::Int16(n) => $($m)::+::Value::Int16(*n),
                H::Int32(n) => $($m)::+::Value::Int32(*n),
                H::Int64(n) => $($m)::+::Value::Int64(*n),
                H::Float32(n) => $($m)::+::Value::Float32(*n),
                H::Float64(n) => $($m)::+::Value::Float64(*n),
                H::Decimal(s) => $($m)::+::Value::Decimal(span(s)),
                H::Text(s) => $($m)::+::Value::Text(span(s)),
                H::Date(n) => $($m)::+::Value::Date(*n),
                H::Time(n) => $($m)::+::Value::Time(*n),
                H::Timestamp(n) => $($m)::+::Value::Timestamp(*n),
                H::Timestamptz(n) => $($m)::+::Value::Timestamptz(*n),
                H::Interval(i) => $($m)::+::Value::Interval($($m)::+::Interval {
                    months: i.months,
                    days: i.days,
                    micros: i.micros,
                }),
                H::Bytea(s) => $($m)::+::Value::Bytea(span(s)),
                H::Jsonb(s) => $($m)::+::Value::Jsonb(span(s)),
                H::Serial(n) => $($m)::+::Value::Serial(*n),
                H::Uuid(u) => $($m)::+::Value::Uuid(*u),
                H::List(r) => $($m)::+::Value::List(range(r)),
                H::Struct(r) => $($m)::+::Value::Struct(range(r)),
            })
            .collect();
        $($m)::+::Rows {
            values,
            ends: $rows.ends.clone(),
            data: $rows.data.clone(),
        }
    }};
}

/// `rows` for the guest compiled natively.
pub fn to_guest_rows(rows: &nats_sink::Rows) -> nats_sink_guest::bindings::Rows {
    convert_rows!(rows, nats_sink_guest::bindings)
}

/// `rows` for the memory harness.
pub fn to_memory_rows(rows: &nats_sink::Rows) -> memory::Rows {
    convert_rows!(rows, memory)
}

/// Rows of datums, packed.
pub fn pack(rows: &[Vec<nats_sink::Datum>]) -> nats_sink::Rows {
    rows.iter().collect()
}
