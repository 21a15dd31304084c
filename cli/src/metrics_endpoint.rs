//! `--metrics-addr`: the sink's metrics served over HTTP in Prometheus text format, by hyper on
//! the run's own tokio runtime. Whatever a client sends, the endpoint holds a bounded number
//! of connections, each for a bounded time with a bounded request head, and reads no body: a
//! metrics endpoint must never take the sink down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use http_body_util::Full;
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::Failure;

/// Connections served at once; one more is closed as soon as it is accepted. A scraper needs
/// one; the bound keeps idle or hostile clients from using up the process's files.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send a request head, from when the server waits for it.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open, however it is used (slow reads, keep-alive).
pub(crate) const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// The largest request head (start line and headers) read; past it the answer is 431.
const MAX_HEAD_BYTES: usize = 16 << 10;
/// The most headers a request may carry.
const MAX_HEADERS: usize = 64;
/// The pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answer `GET /metrics` (and `HEAD`) at `addr` with `metrics` in Prometheus text format, on
/// tasks of the current runtime, for as long as the process runs.
pub(crate) fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: &nats_sink::Metrics,
) -> Result<(), Failure> {
    let bind_failed = |e: std::io::Error| Failure::Input(anyhow!("--metrics-addr {addr}: {e}"));
    let listener = std::net::TcpListener::bind(addr).map_err(bind_failed)?;
    listener.set_nonblocking(true).map_err(bind_failed)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_failed)?;
    if let Ok(bound) = listener.local_addr() {
        note!("nats-sink: metrics at http://{bound}/metrics");
    }
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    tokio::spawn(accept_loop(listener, Arc::new(registry)));
    Ok(())
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    registry: Arc<prometheus_client::registry::Registry>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let http = Arc::new(http);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Past the bound the connection is closed at once (dropped), never queued.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let registry = registry.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(answer(&request, &registry)) }
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            // A client that errs or outstays its time only loses its own connection.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

/// The response to `request`. Its body, if any, is never read: a request that has one is
/// refused and the connection closed, so hyper does not read it either.
fn answer(
    request: &Request<Incoming>,
    registry: &prometheus_client::registry::Registry,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return closing(response);
    }
    if !request.body().is_end_stream() {
        return closing(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a metrics request has no body\n",
        ));
    }
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found; try /metrics\n");
    }
    let mut response = Response::new(Full::new(Bytes::from(nats_sink::metrics::prometheus_text(
        registry,
    ))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

/// `response`, ending the connection after it (what follows the request head is not read).
fn closing(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
