//! A sink's metrics: rows, messages, bytes, retries, errors and flush latency. A library caller
//! reads them as a snapshot; the same counters register in a Prometheus registry, which the
//! CLI serves in the text format.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::error::HostError;
use crate::transport::TransportStats;
use crate::SinkError;

/// The `kind` label of a failed call.
type ErrorKind = [(&'static str, &'static str); 1];

/// Live counters of one sink; clones share them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    rows: Counter,
    /// Rows accepted since the last flush: counted in `rows` once a flush confirms them, so
    /// that a batch replayed after a failed flush is not counted twice.
    unflushed_rows: std::sync::atomic::AtomicU64,
    rows_refused: Counter,
    messages: Counter,
    payload_bytes: Counter,
    retries: Counter,
    flushes: Counter,
    errors: Family<ErrorKind, Counter>,
    /// Every error, whatever its kind, for the snapshot.
    errors_total: Counter,
    flush_seconds: Histogram,
    /// The histogram's sum, which prometheus-client does not let a caller read.
    flush_seconds_sum: Counter<f64>,
    /// The connection's counters as last seen, so each refresh adds only what is new.
    transport_seen: std::sync::Mutex<TransportStats>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Rows the guest accepted and a flush confirmed (a replay of rows whose flush failed
    /// counts once).
    pub rows: u64,
    /// Rows the guest refused (each stops its batch).
    pub rows_refused: u64,
    /// Messages published.
    pub messages: u64,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// Messages sent again after a failure that could pass.
    pub retries: u64,
    /// Failed calls of any kind.
    pub errors: u64,
    /// Successful flushes, and the time they took together.
    pub flushes: u64,
    /// Seconds the successful flushes took, together.
    pub flush_seconds: f64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            inner: Arc::new(Inner {
                rows: Counter::default(),
                unflushed_rows: Default::default(),
                rows_refused: Counter::default(),
                messages: Counter::default(),
                payload_bytes: Counter::default(),
                retries: Counter::default(),
                flushes: Counter::default(),
                errors: Family::default(),
                errors_total: Counter::default(),
                // 1 ms to about 65 s: a core round trip up to a flush that waits out retries.
                flush_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
                flush_seconds_sum: Counter::default(),
                transport_seen: Default::default(),
            }),
        }
    }
}

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let m = &self.inner;
        MetricsSnapshot {
            rows: m.rows.get(),
            rows_refused: m.rows_refused.get(),
            messages: m.messages.get(),
            payload_bytes: m.payload_bytes.get(),
            retries: m.retries.get(),
            errors: m.errors_total.get(),
            flushes: m.flushes.get(),
            flush_seconds: m.flush_seconds_sum.get(),
        }
    }

    /// Add the counters to `registry` as `nats_sink_*`.
    pub fn register(&self, registry: &mut Registry) {
        let m = &self.inner;
        let registry = registry.sub_registry_with_prefix("nats_sink");
        registry.register(
            "rows",
            "Rows the guest accepted and a flush confirmed",
            m.rows.clone(),
        );
        registry.register(
            "rows_refused",
            "Rows the guest refused",
            m.rows_refused.clone(),
        );
        registry.register("messages", "Messages published", m.messages.clone());
        registry.register_with_unit(
            "payload",
            "Payload published",
            Unit::Bytes,
            m.payload_bytes.clone(),
        );
        registry.register(
            "retries",
            "Messages sent again after a failure that could pass",
            m.retries.clone(),
        );
        registry.register("flushes", "Flushes confirmed", m.flushes.clone());
        registry.register("errors", "Failed calls, by kind", m.errors.clone());
        registry.register_with_unit(
            "flush_duration",
            "Time from a flush call to confirmation",
            Unit::Seconds,
            m.flush_seconds.clone(),
        );
    }

    /// The outcome of a `write` of `rows` rows: accepted rows, a refused one, or an error.
    pub(crate) fn written(&self, rows: usize, outcome: &Result<(), HostError>) {
        let accepted = match outcome {
            Ok(()) => rows as u64,
            Err(HostError::Sink(SinkError::InvalidRow(problem))) => {
                self.inner.rows_refused.inc();
                u64::from(problem.row)
            }
            // The rows before a transport failure were accepted but are now in doubt: the
            // caller replays them, so they are not counted.
            Err(_) => 0,
        };
        self.inner
            .unflushed_rows
            .fetch_add(accepted, std::sync::atomic::Ordering::Relaxed);
        self.failed(outcome);
    }

    /// The outcome of a flush that took `elapsed`.
    pub(crate) fn flushed(&self, elapsed: Duration, outcome: &Result<(), HostError>) {
        // Confirmed, or in doubt and replayed by the caller: either way no longer pending.
        let pending = self
            .inner
            .unflushed_rows
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        if outcome.is_ok() {
            self.inner.rows.inc_by(pending);
            self.inner.flushes.inc();
            self.inner.flush_seconds.observe(elapsed.as_secs_f64());
            self.inner.flush_seconds_sum.inc_by(elapsed.as_secs_f64());
        }
        self.failed(outcome);
    }

    pub(crate) fn failed<T>(&self, outcome: &Result<T, HostError>) {
        if let Err(e) = outcome {
            let kind = e.metric_label();
            self.inner.errors.get_or_create(&[("kind", kind)]).inc();
            self.inner.errors_total.inc();
        }
    }

    /// Count a new connection's counters from zero. Rows the old one did not confirm are
    /// replayed on the new one, and counted there.
    pub(crate) fn new_connection(&self) {
        self.inner
            .unflushed_rows
            .store(0, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut seen) = self.inner.transport_seen.lock() {
            *seen = TransportStats::default();
        }
    }

    /// Take in the connection's counters (messages, bytes, resends), adding what is new.
    pub(crate) fn transport(&self, now: TransportStats) {
        let Ok(mut seen) = self.inner.transport_seen.lock() else {
            return;
        };
        let m = &self.inner;
        m.messages
            .inc_by(now.messages.saturating_sub(seen.messages));
        m.payload_bytes
            .inc_by(now.payload_bytes.saturating_sub(seen.payload_bytes));
        m.retries.inc_by(now.resent.saturating_sub(seen.resent));
        *seen = now;
    }
}

/// The Prometheus text form of `registry`.
pub fn prometheus_text(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::encoder::RowProblem;

    #[test]
    fn snapshot_and_prometheus_text_agree() {
        let metrics = Metrics::default();
        metrics.written(3, &Ok(()));
        let refused = Err(HostError::Sink(SinkError::InvalidRow(RowProblem {
            row: 2,
            column: "id".into(),
            message: "expected integer".into(),
        })));
        metrics.written(5, &refused);
        metrics.transport(TransportStats {
            messages: 5,
            payload_bytes: 50,
            flushes: 1,
            resent: 1,
            refusal: None,
        });
        metrics.transport(TransportStats {
            messages: 6,
            payload_bytes: 60,
            flushes: 1,
            resent: 1,
            refusal: None,
        });
        metrics.flushed(Duration::from_millis(20), &Ok(()));
        let timeout = Err(HostError::Sink(SinkError::Timeout(crate::Failure::new(
            "no ack",
        ))));
        metrics.flushed(Duration::from_secs(2), &timeout);

        let snapshot = metrics.snapshot();
        assert_eq!(
            snapshot,
            MetricsSnapshot {
                rows: 5,
                rows_refused: 1,
                messages: 6,
                payload_bytes: 60,
                retries: 1,
                errors: 2,
                flushes: 1,
                flush_seconds: 0.02,
            }
        );

        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let text = prometheus_text(&registry);
        for line in [
            "nats_sink_rows_total 5",
            "nats_sink_rows_refused_total 1",
            "nats_sink_messages_total 6",
            "nats_sink_payload_bytes_total 60",
            "nats_sink_retries_total 1",
            "nats_sink_flushes_total 1",
            "nats_sink_errors_total{kind=\"timeout\"} 1",
            "nats_sink_errors_total{kind=\"invalid_row\"} 1",
            "nats_sink_flush_duration_seconds_count 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }

    /// Issue 26: a batch replayed after its flush failed counted its rows twice.
    #[test]
    fn rows_count_once_a_flush_confirms_them() {
        let metrics = Metrics::default();
        let lost = Err(HostError::Sink(SinkError::Connection(crate::Failure::new(
            "dropped",
        ))));
        metrics.written(4, &Ok(()));
        assert_eq!(metrics.snapshot().rows, 0, "not confirmed yet");
        metrics.flushed(Duration::from_millis(1), &lost);
        // Replayed: written and flushed again.
        metrics.written(4, &Ok(()));
        metrics.flushed(Duration::from_millis(1), &Ok(()));
        assert_eq!(metrics.snapshot().rows, 4);
        // Replayed on a new connection after the write itself went through.
        metrics.written(3, &Ok(()));
        metrics.new_connection();
        metrics.written(3, &Ok(()));
        metrics.flushed(Duration::from_millis(1), &Ok(()));
        assert_eq!(metrics.snapshot().rows, 7);
    }
}
