//! A graceful stop for embedders: confirm what was written, bounded in time, then close.

use std::time::Duration;

use crate::{HostError, Sink};

/// How a sink's shutdown went.
#[derive(Debug)]
pub struct ShutdownReport {
    /// Whether every row written before the shutdown is confirmed by NATS.
    pub outcome: ShutdownOutcome,
    /// Rows the sink accepted over its life.
    pub rows_accepted: u64,
    /// Flushes that confirmed them.
    pub flushes: u64,
}

/// Whether a shutdown confirmed everything, and if not, why.
#[derive(Debug)]
pub enum ShutdownOutcome {
    /// The last flush confirmed everything written: nothing is in doubt.
    Confirmed,
    /// The last flush failed: rows written since the previous successful flush are not
    /// confirmed (replay them; their checkpoint ids let a stream drop what it already holds).
    FlushFailed(HostError),
    /// The deadline passed before the flush finished: the same rows are not confirmed, and
    /// the sink was dropped rather than closed.
    TimedOut(Duration),
}

impl ShutdownReport {
    /// True when every row written before the shutdown is confirmed.
    pub fn is_confirmed(&self) -> bool {
        matches!(self.outcome, ShutdownOutcome::Confirmed)
    }
}

impl Sink {
    /// Flush everything written so far, waiting at most `deadline`, and close the sink. Rows
    /// written since the last successful flush are confirmed only when the report says so.
    /// `Err` only when closing itself failed after a confirmed flush.
    pub async fn shutdown(mut self, deadline: Duration) -> Result<ShutdownReport, HostError> {
        let flushed = tokio::time::timeout(deadline, self.flush()).await;
        let counters = self.metrics().snapshot();
        let report = |outcome| ShutdownReport {
            outcome,
            rows_accepted: counters.rows,
            flushes: counters.flushes,
        };
        match flushed {
            Ok(Ok(())) => {
                self.close().await?;
                Ok(report(ShutdownOutcome::Confirmed))
            }
            Ok(Err(e)) => {
                // The flush's failure is the news; a close that fails as well adds nothing.
                let _ = self.close().await;
                Ok(report(ShutdownOutcome::FlushFailed(e)))
            }
            // A call into the guest cut off part way leaves its instance in doubt: dropping the
            // store closes the connection without entering the guest again.
            Err(_) => Ok(report(ShutdownOutcome::TimedOut(deadline))),
        }
    }
}
