//! `--metrics-addr`: the sink's metrics served over HTTP in Prometheus text format.

use anyhow::anyhow;

use super::Failure;

/// Answer `GET /metrics` at `addr` with `metrics` in Prometheus text format, on a thread of
/// its own, for as long as the process runs.
pub(crate) fn serve_metrics(
    addr: std::net::SocketAddr,
    metrics: &nats_sink::Metrics,
) -> Result<(), Failure> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| Failure::Input(anyhow!("--metrics-addr {addr}: {e}")))?;
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let content_type =
        tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .map_err(|()| Failure::Input(anyhow!("the metrics content type")))?;
    if let Some(bound) = server.server_addr().to_ip() {
        note!("nats-sink: metrics at http://{bound}/metrics");
    }
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let response = match request.url() {
                "/metrics" => {
                    tiny_http::Response::from_string(nats_sink::metrics::prometheus_text(&registry))
                        .with_header(content_type.clone())
                }
                _ => tiny_http::Response::from_string("not found; try /metrics\n")
                    .with_status_code(404),
            };
            let _ = request.respond(response);
        }
    });
    Ok(())
}
