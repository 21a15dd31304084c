//! `run --metrics-addr` under hostile clients, over real sockets: a request that claims a
//! 50 GB body, a POST, a huge head, a head sent a byte at a time, and hundreds of idle
//! connections. None of them stops the run, which delivers every row to a real nats-server;
//! the endpoint answers a plain GET again once they are gone.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nats_sink_tests::*;

const CLI_LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);
/// The endpoint's bounds, as the CLI sets them (cli/src/metrics_endpoint.rs).
const MAX_CONNECTIONS: usize = 64;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// A run reading standard input, with its metrics endpoint up, and a subscriber to its subject.
struct Metered {
    _server: NatsServer,
    _dir: tempfile::TempDir,
    run: CliRun,
    feed: std::sync::mpsc::Sender<String>,
    port: u16,
    rows: async_nats::Subscriber,
}

impl Metered {
    async fn start(subject: &str) -> Metered {
        let server = NatsServer::start();
        let rows = server
            .client()
            .await
            .subscribe(subject.to_string())
            .await
            .unwrap();
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
        args.extend(with_args(&plain_options(&server, subject)));
        let (feed, chunks) = std::sync::mpsc::channel();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = spawn_cli_fed(&args, chunks);
        let mut metered = Metered {
            _server: server,
            _dir: dir,
            run,
            feed,
            port,
            rows,
        };
        assert!(
            metered.scrape().await.is_some(),
            "the endpoint never answered"
        );
        metered
    }

    /// `GET /metrics`, retried until it answers (at most `WAIT`).
    async fn scrape(&mut self) -> Option<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let port = self.port;
            let body = tokio::task::spawn_blocking(move || http_get(port, "/metrics"))
                .await
                .unwrap();
            if body.is_some() || Instant::now() > deadline {
                return body;
            }
            assert!(self.run.is_running(), "the run ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Scrape until the endpoint reports `rows` confirmed (at most `WAIT`). A subscriber sees a
    /// row before the run's flush confirms it, so the count can lag the arrival briefly.
    async fn scrape_until_confirmed(&mut self, rows: u32) -> String {
        let line = format!("nats_sink_rows_total {rows}");
        let deadline = Instant::now() + WAIT;
        loop {
            let scraped = self.scrape().await.expect("the endpoint stopped answering");
            if scraped.lines().any(|l| l == line) {
                return scraped;
            }
            assert!(Instant::now() < deadline, "no `{line}` in:\n{scraped}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Send rows `ids`, and see each arrive.
    async fn deliver(&mut self, ids: std::ops::RangeInclusive<u32>) {
        let count = ids.clone().count();
        self.feed
            .send(ids.map(|i| format!("{{\"id\":{i}}}\n")).collect())
            .unwrap();
        assert_eq!(collect(&mut self.rows, count, WAIT).await.len(), count);
    }

    /// End the input; the run must end well, every row confirmed.
    async fn finish(self, rows: u32) {
        drop(self.feed);
        let run = self.run;
        let out = tokio::task::spawn_blocking(move || run.wait(CLI_LIMIT))
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains(&format!("{rows} rows confirmed")),
            "{stderr}"
        );
    }
}

/// Send `request` whole and read the answer until the server closes (at most 10 s).
fn exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before it has read everything sent.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

async fn exchange_async(port: u16, request: Vec<u8>) -> String {
    tokio::task::spawn_blocking(move || exchange(port, &request))
        .await
        .unwrap()
}

/// Issue 26: `Content-Length: 50000000000` made tiny_http allocate the body on drop, and the
/// process aborted (exit 134) with its rows undelivered.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_claiming_a_huge_body_is_refused_and_the_run_delivers() {
    let mut metered = Metered::start("metered.huge").await;
    metered.deliver(1..=2).await;
    let answer = exchange_async(
        metered.port,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 50000000000\r\n\r\n".to_vec(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let chunked = exchange_async(
        metered.port,
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffff\r\n"
            .to_vec(),
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    metered.scrape_until_confirmed(2).await;
    metered.deliver(3..=5).await;
    metered.finish(5).await;
}

/// Only GET and HEAD are answered; a head past its bound is refused.
#[tokio::test(flavor = "multi_thread")]
async fn only_get_and_head_are_answered_and_heads_are_bounded() {
    let metered = Metered::start("metered.methods").await;
    let post = exchange_async(
        metered.port,
        b"POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(
        post.to_ascii_lowercase().contains("allow: get, head"),
        "{post}"
    );
    let head = exchange_async(
        metered.port,
        b"HEAD /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.ends_with("\r\n\r\n"),
        "a HEAD answer has no body: {head}"
    );
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend(b"\r\n\r\n");
    let refused = exchange_async(metered.port, huge).await;
    assert!(
        refused.is_empty() || refused.starts_with("HTTP/1.1 431"),
        "{refused}"
    );
    metered.finish(0).await;
}

/// A client that sends its head a byte every 250 ms is cut off once the head's time is up,
/// not served for as long as it keeps trickling.
#[tokio::test(flavor = "multi_thread")]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let mut metered = Metered::start("metered.slow").await;
    let port = metered.port;
    let trickled = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // The pause between bytes is the client's pace: a read that waits for the server.
        stream
            .set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        let started = Instant::now();
        let mut sent = 0usize;
        let mut buf = [0u8; 512];
        while started.elapsed() < HEAD_TIMEOUT * 4 {
            let byte = head.get(sent).copied().unwrap_or(b'a');
            if stream.write_all(&[byte]).is_err() {
                return started.elapsed();
            }
            sent += 1;
            match stream.read(&mut buf) {
                Ok(_) => return started.elapsed(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return started.elapsed(),
            }
        }
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(
        trickled < HEAD_TIMEOUT * 2,
        "a trickled head was served for {trickled:?}"
    );
    metered.deliver(1..=3).await;
    assert!(metered.scrape().await.is_some());
    metered.finish(3).await;
}

/// Issue 26: 10,080 idle connections made 9,999 threads, then tiny_http died on "Too many
/// open files". Past the bound a connection is closed at once; those held are closed when
/// their head's time is up; meanwhile the run delivers, and after them a GET is answered.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_past_the_bound_are_closed_and_the_endpoint_recovers() {
    const IDLE: usize = 400;
    let mut metered = Metered::start("metered.idle").await;
    let port = metered.port;
    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap(),
        );
    }
    // Each connection's end: when the server closed it, seen from here.
    let ends: Vec<_> = idle
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt as _;
                let mut buf = [0u8; 64];
                let read = tokio::time::timeout(HEAD_TIMEOUT * 4, stream.read(&mut buf)).await;
                (read.is_ok(), opened.elapsed())
            })
        })
        .collect();
    // The run goes on while they are held.
    metered.deliver(1..=4).await;
    let mut closed_at_once = 0;
    for end in ends {
        let (closed, after) = end.await.unwrap();
        assert!(closed, "an idle connection was held for {after:?}");
        if after < HEAD_TIMEOUT - Duration::from_secs(1) {
            closed_at_once += 1;
        }
    }
    assert!(
        closed_at_once >= IDLE - MAX_CONNECTIONS,
        "{closed_at_once} of {IDLE} idle connections closed at once"
    );
    metered.scrape_until_confirmed(4).await;
    metered.deliver(5..=6).await;
    metered.finish(6).await;
}
