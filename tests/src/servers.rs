//! Real `nats-server` processes and clusters on free loopback ports, and reading what they hold.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    pub(crate) child: Option<Child>,
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
