//! Delivering one batch as one checkpoint: the write-ahead record in `--state`, the write and
//! the flush, and on core NATS a replay on a new connection when the old one dropped.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use nats_sink::wit::Delivery;
use nats_sink::{ClosedAfter, Column, HostError, MetricsSnapshot, Sink, SinkError, SinkRuntime};

use super::state::{line_digest, ConfirmedPoint, InFlight, StateFile};
use crate::input_batch::InputBatch;
use crate::read_loop::Checkpoint;
use crate::reader::ReadRow;
use crate::Failure;

/// What reopens the sink after its connection dropped: the runtime, the same options and
/// schema, and the retry budget the options give.
pub struct Reopen {
    pub runtime: SinkRuntime,
    pub options: Vec<(String, String)>,
    pub columns: Vec<Column>,
    pub budget: Delivery,
}

/// The sink, what it confirmed, and where that is recorded.
pub struct Deliverer {
    pub sink: Sink,
    pub confirmed: ConfirmedPoint,
    pub state: Option<StateFile>,
    reopen: Reopen,
    /// Batches replayed on a new connection.
    pub replays: u64,
}

impl Deliverer {
    pub fn new(
        sink: Sink,
        confirmed: ConfirmedPoint,
        state: Option<StateFile>,
        reopen: Reopen,
    ) -> Deliverer {
        Deliverer {
            sink,
            confirmed,
            state,
            reopen,
            replays: 0,
        }
    }

    /// Every send, over this sink and those it replaced.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.sink.metrics().snapshot()
    }

    /// Write the batch as one checkpoint and flush it, then empty it. A refused row is
    /// reported with its input line, after the rows before it are flushed.
    pub async fn deliver(&mut self, batch: &mut InputBatch) -> Result<(), Failure> {
        if batch.rows.is_empty() {
            return Ok(());
        }
        let checkpoint = batch.take_checkpoint();
        self.record_in_flight(InFlight {
            checkpoint,
            first_line: batch.lines[0],
            start_offset: batch.spans[0].0,
            rows: batch.line_count as u64,
        })?;
        let lines = format!(
            "lines {}–{}",
            batch.lines[0],
            batch.lines[batch.lines.len() - 1]
        );
        let sent = self
            .send_replaying(checkpoint, &lines, async |sink| {
                send(sink, checkpoint, batch).await
            })
            .await;
        let outcome = match sent {
            Ok((accepted, refusal)) => {
                let accepted = batch.whole_line_rows(accepted);
                if accepted > 0 {
                    let last = accepted - 1;
                    self.confirm(ConfirmedPoint {
                        line: batch.lines[last],
                        offset: batch.spans[last].1,
                        // Lines, as a resumed run counts them (a Debezium update is one).
                        rows: self.confirmed.rows + batch.lines_of(accepted),
                        checkpoint: Some(checkpoint),
                        line_start: batch.spans[last].0,
                        line_digest: match self.state {
                            Some(_) => line_digest(&batch.texts[last]),
                            None => String::new(),
                        },
                        batch: None,
                    })?;
                }
                refusal.map_or(Ok(()), Err)
            }
            Err(e) => Err(Failure::from(e)),
        };
        batch.clear();
        outcome
    }

    /// Send one checkpoint (`rows` names its rows) with `send`; when core NATS lost it with
    /// the connection, replay it on a new one, within the options' retry budget.
    pub(crate) async fn send_replaying(
        &mut self,
        checkpoint: u64,
        rows: &str,
        mut send: impl AsyncFnMut(&mut Sink) -> Result<(usize, Option<Failure>), HostError>,
    ) -> Result<(usize, Option<Failure>), HostError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match send(&mut self.sink).await {
                Err(e) if self.may_replay(&e, attempt, started) => {
                    attempt += 1;
                    note!("nats-sink: {e}; replaying checkpoint {checkpoint} ({rows}) on a new connection, attempt {attempt}");
                    self.reconnect(&mut attempt, started).await;
                    self.replays += 1;
                }
                other => return other,
            }
        }
    }

    /// Core NATS keeps nothing and acks nothing: when the connection dropped under a batch,
    /// the CLI still holds the batch and replays it, within the options' retry budget.
    /// Once replaying, a new connection can meet what passes too (a cluster electing its
    /// JetStream leader does not answer the route lookup for a while): retried alike.
    pub(crate) fn may_replay(&self, error: &HostError, attempt: u32, started: Instant) -> bool {
        let passes = matches!(error, HostError::Sink(e) if may_pass(e));
        (is_core_loss(error) || (attempt > 0 && passes))
            && attempt + 1 < self.reopen.budget.max_attempts
            && started.elapsed() < Duration::from_millis(self.reopen.budget.max_elapsed_ms.into())
    }

    /// A new sink on a new connection, after a backoff; attempts that cannot connect count
    /// against the same budget. If none connects, the old sink stays and the replay fails.
    pub(crate) async fn reconnect(&mut self, attempt: &mut u32, started: Instant) {
        let budget = Duration::from_millis(self.reopen.budget.max_elapsed_ms.into());
        loop {
            tokio::time::sleep(nats_sink::transport::backoff(&self.reopen.budget, *attempt)).await;
            let reopen = &self.reopen;
            match reopen.runtime.open(&reopen.options, &reopen.columns).await {
                Ok(sink) => {
                    let old = std::mem::replace(&mut self.sink, sink);
                    let metrics = old.metrics().clone();
                    let _ = old.close().await;
                    // One set of counters over every connection: the summary and a metrics
                    // endpoint serving the first sink's see every send.
                    self.sink.continue_metrics(metrics);
                    return;
                }
                Err(e) => {
                    note!("nats-sink: reconnecting: {e}");
                    *attempt += 1;
                    if *attempt >= reopen.budget.max_attempts || started.elapsed() >= budget {
                        return;
                    }
                }
            }
        }
    }

    /// Write-ahead: before anything of the batch is published, the state names it in flight.
    pub(crate) fn record_in_flight(&mut self, in_flight: InFlight) -> Result<(), Failure> {
        let Some(file) = self.state.as_mut() else {
            return Ok(());
        };
        let mut state = file.state.clone();
        state.in_flight = Some(in_flight);
        file.write(state).map_err(Failure::Delivery)
    }

    /// NATS confirmed the rows through `confirmed`: the batch in flight is no longer.
    pub(crate) fn confirm(&mut self, confirmed: ConfirmedPoint) -> Result<(), Failure> {
        self.confirmed = confirmed;
        let Some(file) = self.state.as_mut() else {
            return Ok(());
        };
        let mut state = file.state.clone();
        state.confirmed = self.confirmed.clone();
        state.in_flight = None;
        file.write(state).map_err(Failure::Delivery)
    }
}

/// JSON Lines and Debezium: a checkpoint of parsed lines, counted in lines (a Debezium
/// update is one line of two rows); none is ever carried over.
impl Checkpoint for InputBatch {
    type Read = ReadRow;
    const UNIT: &'static str = "line";

    fn rows(&self) -> usize {
        self.line_count
    }

    fn bytes(&self) -> usize {
        InputBatch::bytes(self)
    }

    fn push(&mut self, row: ReadRow, _limit: usize) -> Option<ReadRow> {
        // For a test (or an operator) to see a row held in the batch; logged under the run
        // loop's name, which is what a filter asks for.
        tracing::trace!(target: "nats_sink::run", line = row.line, "row read");
        InputBatch::push(self, row);
        None
    }

    fn last_read_after(row: &ReadRow, _before: u64) -> u64 {
        row.line
    }

    async fn deliver(&mut self, deliverer: &mut Deliverer) -> Result<(), Failure> {
        deliverer.deliver(self).await
    }
}

/// One checkpoint's write and flush: the rows NATS confirmed, and the refusal that stopped
/// the write early, if one did.
async fn send(
    sink: &mut Sink,
    checkpoint: u64,
    batch: &InputBatch,
) -> Result<(usize, Option<Failure>), HostError> {
    let place = |row: u64| batch.lines.get(row as usize).copied().unwrap_or_default();
    let places = RowPlaces {
        unit: "line",
        rows: batch.rows.len(),
        place: &place,
    };
    sink.begin_checkpoint(checkpoint).await?;
    let (accepted, refusal) = match sink.write(&batch.rows).await {
        Ok(()) => (batch.rows.len(), None),
        Err(HostError::Sink(SinkError::InvalidRow(p))) => {
            let line = batch.lines.get(p.row as usize).copied().unwrap_or_default();
            let at = if p.column.is_empty() {
                String::new()
            } else {
                format!(", column `{}`", p.column)
            };
            (
                p.row as usize,
                Some(Failure::Input(anyhow!("line {line}{at}: {}", p.message))),
            )
        }
        Err(e) => return refused_part(sink, &places, e),
    };
    match sink.flush().await {
        Ok(()) => Ok((accepted, refusal)),
        Err(e) => refused_part(sink, &places, e),
    }
}

/// Where a batch's rows came from in the input, to name them in an error: "line 7" for JSON
/// Lines, "row 7" for record batches.
pub(crate) struct RowPlaces<'a> {
    pub(crate) unit: &'static str,
    pub(crate) rows: usize,
    pub(crate) place: &'a dyn Fn(u64) -> u64,
}

/// After JetStream refused a row's message, the rows before it are confirmed: they count,
/// and the failure names the refused row's place and what became of the rows after it.
/// Any other failure leaves the batch unconfirmed.
pub(crate) fn refused_part(
    sink: &Sink,
    places: &RowPlaces<'_>,
    error: HostError,
) -> Result<(usize, Option<Failure>), HostError> {
    let Some(refusal) = sink.refusal() else {
        return Err(error);
    };
    let rows = places.rows;
    let unit = places.unit;
    let confirmed = (refusal.confirmed_before as usize).min(rows);
    let refused_place = (places.place)(refusal.first_refused);
    let first_after = refusal.first_refused + 1;
    let after = if first_after < rows as u64 {
        let stored = refusal.confirmed.saturating_sub(refusal.confirmed_before);
        format!(
            "; of the rows after it in the batch ({unit}s {}–{}), {stored} were stored as well: a rerun sends them again (with dedupe on, the stream drops those within its duplicate window)",
            (places.place)(first_after),
            (places.place)(rows as u64 - 1)
        )
    } else {
        String::new()
    };
    let failure = anyhow::Error::from(error).context(format!(
        "{unit} {refused_place}: JetStream refused its row{after}"
    ));
    Ok((confirmed, Some(Failure::Delivery(failure))))
}

/// A delivery that failed because the connection dropped or the server went quiet while core
/// NATS messages were unconfirmed (the sink may be closed after it): what was sent is in doubt,
/// and replaying it may succeed. (JetStream failures have been retried inside the transport
/// already, within the same budget.)
pub fn is_core_loss(error: &HostError) -> bool {
    let HostError::Sink(error) = error else {
        return false;
    };
    may_pass(error) && error.failure().is_some_and(|f| f.core_in_doubt)
}

/// A failure that can pass on its own: a lost connection or a timeout, or a sink closed
/// after one. A `publish` refusal, bad input or the sandbox's stop repeats.
pub(crate) fn may_pass(error: &SinkError) -> bool {
    match error {
        SinkError::Connection(_) | SinkError::Timeout(_) => true,
        SinkError::Closed(closure) => {
            matches!(
                closure.after,
                ClosedAfter::Connection | ClosedAfter::Timeout
            )
        }
        SinkError::Publish(_)
        | SinkError::InvalidOptions(_)
        | SinkError::InvalidSchema(_)
        | SinkError::InvalidRow(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use nats_sink::{Closure, Failure};

    use super::*;

    fn failure(message: &str, core_in_doubt: bool) -> Failure {
        Failure {
            message: message.into(),
            core_in_doubt,
        }
    }

    fn closed(after: ClosedAfter, core_in_doubt: bool) -> SinkError {
        SinkError::Closed(Closure {
            after,
            cause: failure("the sink failed earlier", core_in_doubt),
        })
    }

    /// The replay decision reads the flag, whatever the words say: text naming core NATS
    /// without the flag is no loss, and the flag without the words is one.
    #[test]
    fn core_loss_is_the_flag_on_a_failure_that_can_pass() {
        let core = |e: SinkError| is_core_loss(&HostError::Sink(e));
        assert!(core(SinkError::Connection(failure("dropped", true))));
        assert!(core(SinkError::Timeout(failure("no echo", true))));
        assert!(core(closed(ClosedAfter::Connection, true)));
        assert!(core(closed(ClosedAfter::Timeout, true)));
        assert!(!core(SinkError::Connection(failure(
            "core NATS messages may be lost",
            false
        ))));
        assert!(!core(SinkError::Timeout(failure("core message", false))));
        // A refusal repeats on replay, flag or not.
        assert!(!core(SinkError::Publish(failure("permission", true))));
        assert!(!core(closed(ClosedAfter::Publish, true)));
        assert!(!core(closed(ClosedAfter::Close, false)));
    }

    /// What may pass on its own is a kind, never words: a `publish` refusal that says
    /// "timed out" or "connection" repeats.
    #[test]
    fn a_failure_may_pass_by_its_kind_only() {
        assert!(may_pass(&SinkError::Connection(failure("x", false))));
        assert!(may_pass(&SinkError::Timeout(failure("x", false))));
        assert!(may_pass(&closed(ClosedAfter::Connection, false)));
        assert!(may_pass(&closed(ClosedAfter::Timeout, false)));
        assert!(!may_pass(&SinkError::Publish(failure(
            "request timed out on the connection",
            false
        ))));
        assert!(!may_pass(&closed(ClosedAfter::Publish, false)));
        assert!(!may_pass(&closed(ClosedAfter::Close, false)));
        assert!(!may_pass(&closed(ClosedAfter::Interrupted, false)));
        assert!(!may_pass(&SinkError::InvalidSchema("timeout".into())));
    }
}
