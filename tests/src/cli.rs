//! The `nats-sink` CLI as a process: run, spawn, feed, read its output and its HTTP endpoints.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::artifacts::{cli_path, component_path};

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
    pub(crate) child: Child,
    io: Vec<std::thread::JoinHandle<Vec<u8>>>,
    /// What the process has written to stderr so far, for waiting on a line it prints.
    stderr_so_far: Arc<Mutex<Vec<u8>>>,
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
        .env("NATS_SINK_COMPONENT", component_path())
        // Recoveries are logged at info, with how long they took; the caller may ask for more.
        .env(
            "NATS_SINK_LOG",
            std::env::var("NATS_SINK_LOG").unwrap_or_else(|_| "nats_sink=info".into()),
        )
        // Last, so that the caller's (a `NATS_SINK_LOG` of its own) win over the defaults.
        .envs(env.iter().copied())
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
    let reader = |mut pipe: Box<dyn std::io::Read + Send>, so_far: Arc<Mutex<Vec<u8>>>| {
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(read @ 1..) = pipe.read(&mut chunk) {
                so_far.lock().unwrap().extend_from_slice(&chunk[..read]);
            }
            std::mem::take(&mut *so_far.lock().unwrap())
        })
    };
    let stderr_so_far = Arc::new(Mutex::new(Vec::new()));
    let stdout = reader(
        Box::new(child.stdout.take().expect("stdout")),
        Arc::default(),
    );
    let stderr = reader(
        Box::new(child.stderr.take().expect("stderr")),
        stderr_so_far.clone(),
    );
    CliRun {
        child,
        io: vec![writer, stdout, stderr],
        stderr_so_far,
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

impl CliRun {
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait (at most `limit`) until the process has printed `needle` on stderr: true once it
    /// has, false if it exits or the time passes first.
    pub fn wait_for_stderr(&mut self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let printed =
                String::from_utf8_lossy(&self.stderr_so_far.lock().unwrap()).contains(needle);
            if printed {
                return true;
            }
            if !self.is_running() || Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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

/// How long a run started by [`spawn_cli_run`] may take before [`finish`] kills it.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Start `nats-sink` with `args` (a run that reads a file: its standard input is empty and
/// closed).
pub fn spawn_cli_run(args: &[String]) -> CliRun {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_cli(&args, "")
}

/// Wait for `run` to exit, off the async runtime's threads, within three minutes.
pub async fn finish(run: CliRun) -> Output {
    tokio::task::spawn_blocking(move || run.wait(RUN_LIMIT))
        .await
        .expect("the CLI's waiter")
}
