//! The read loop every input shares: fill a checkpoint from the reader's channel, deliver it
//! when it is full or its oldest row has waited the linger, stop reading on a first signal and
//! at once on a second, and deliver what was read when the input ends or fails.

use indicatif::ProgressBar;
use tokio::sync::mpsc;

use crate::deliver::Deliverer;
use crate::run::{guarded, RunLimits};
use crate::signals::{Signals, StopSignal};
use crate::Failure;

/// What an input's reader hands the loop, in input order.
pub(crate) enum Read<T> {
    /// Rows read: one parsed line, or one record batch.
    Rows(T),
    /// The input ended; nothing follows.
    End,
    /// The input could not be read or parsed (bad input, exit 2); nothing follows.
    Failed(anyhow::Error),
}

/// A checkpoint being filled: the rows read for it, delivered as one.
pub(crate) trait Checkpoint {
    /// What the reader hands over.
    type Read;
    /// What the input counts in, for messages: "line" or "row".
    const UNIT: &'static str;
    fn rows(&self) -> usize;
    /// Roughly what it holds, for the byte bound.
    fn bytes(&self) -> usize;
    /// Add `read`, up to `limit` rows in all; rows past the limit are handed back (the carry),
    /// to start the next checkpoint.
    fn push(&mut self, read: Self::Read, limit: usize) -> Option<Self::Read>;
    /// The last line or row read once `read` is, after `before`.
    fn last_read_after(read: &Self::Read, before: u64) -> u64;
    /// Write it as one checkpoint, flush it, and start the next one (empty).
    async fn deliver(&mut self, deliverer: &mut Deliverer) -> Result<(), Failure>;
}

/// Where a run's reading starts.
pub(crate) struct LoopStart {
    /// The last line or row before the first one read (0 for a fresh run).
    pub(crate) last_read: u64,
    /// The first checkpoint's size when it replays the one in flight at a crash: the same
    /// rows give the same checkpoint id, so no linger deadline splits it either.
    pub(crate) first_batch_rows: Option<usize>,
}

/// How the loop ended, for the summary and the exit status.
pub(crate) struct LoopEnd {
    /// A second signal stopped the run at once.
    pub(crate) aborted: bool,
    /// The final delivery's failure, and what stopped the loop.
    pub(crate) pending: Option<Failure>,
    pub(crate) stop: Option<Failure>,
    pub(crate) stopping: Option<StopSignal>,
    pub(crate) input_ended: bool,
    /// The last line (or row) read.
    pub(crate) last_read: u64,
}

/// Run the loop over `reads` until the input ends, fails or a signal stops it, then deliver
/// what was read (unless a second signal came).
pub(crate) async fn read_and_deliver<C: Checkpoint>(
    checkpoint: &mut C,
    mut reads: mpsc::Receiver<Read<C::Read>>,
    deliverer: &mut Deliverer,
    signals: &mut Signals,
    limits: RunLimits,
    start: LoopStart,
    progress: &ProgressBar,
) -> LoopEnd {
    let mut first_batch_rows = start.first_batch_rows;
    let mut last_read = start.last_read;
    // Rows read past the current checkpoint's size, which start the next one.
    let mut carry: Option<C::Read> = None;
    // When the checkpoint's oldest row arrived, for the linger deadline.
    let mut oldest: Option<tokio::time::Instant> = None;
    let mut input_ended = false;
    let mut stopping: Option<StopSignal> = None;
    // What stopped the run early. After bad input, what came before it is still delivered.
    let mut stop: Option<Failure> = None;
    let aborted = 'read: loop {
        if stopping.is_some() {
            // Rows already in the channel were read; they are delivered, nothing more is read.
            reads.close();
        }
        let full = checkpoint.rows() >= first_batch_rows.unwrap_or(limits.batch_rows)
            || checkpoint.bytes() >= limits.batch_bytes;
        let deadline = oldest
            .filter(|_| first_batch_rows.is_none())
            .map(|t| t + limits.linger);
        if full || deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
            match guarded(checkpoint.deliver(deliverer), signals, &mut stopping).await {
                None => break 'read true,
                Some(Err(e)) => {
                    // The rows carried past a failed checkpoint come after the row that
                    // failed it: none of them is sent.
                    carry = None;
                    stop = Some(e);
                    break 'read false;
                }
                Some(Ok(())) => {}
            }
            oldest = None;
            first_batch_rows = None;
            if let Some(rest) = carry.take() {
                oldest = Some(tokio::time::Instant::now());
                carry = checkpoint.push(rest, limits.batch_rows);
            }
            progress.set_position(deliverer.confirmed.rows);
            continue;
        }
        tokio::select! {
            biased;
            signal = signals.next() => match stopping {
                Some(_) => break 'read true,
                None => {
                    note!("nats-sink: {}: no more input is read; delivering the rows read (a second signal stops at once)", signal.name());
                    stopping = Some(signal);
                }
            },
            read = reads.recv() => match read {
                Some(Read::Rows(read)) => {
                    if checkpoint.rows() == 0 {
                        oldest = Some(tokio::time::Instant::now());
                    }
                    last_read = C::last_read_after(&read, last_read);
                    carry = checkpoint.push(read, first_batch_rows.unwrap_or(limits.batch_rows));
                }
                Some(Read::End) => {
                    input_ended = true;
                    break 'read false;
                }
                Some(Read::Failed(e)) => {
                    stop = Some(Failure::Input(e));
                    break 'read false;
                }
                // Closed after a signal, and drained.
                None if stopping.is_some() => break 'read false,
                // Closed with neither an end nor a failure: the reader died (it panicked).
                // What it read is delivered; the run must not pass for complete. Not exit 2:
                // no input was shown bad, and no input may make a reader panic, so this is
                // the program failing the run, as a delivery failure is (exit 1).
                None => {
                    stop = Some(Failure::Delivery(anyhow::anyhow!(
                        "the input reader stopped unexpectedly after {} {last_read}",
                        C::UNIT
                    )));
                    break 'read false;
                }
            },
            () = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {}
        }
    };
    // Rows read before bad input are still delivered; a delivery failure empties the
    // checkpoint (and dropped the carry), so this is a no-op when the loop stopped on one. A
    // refusal here concerns earlier rows, so it wins.
    let (pending, aborted) = match aborted {
        true => (None, true),
        false => match guarded(
            deliver_rest(checkpoint, carry, deliverer, limits.batch_rows),
            signals,
            &mut stopping,
        )
        .await
        {
            None => (None, true),
            Some(outcome) => (outcome.err(), false),
        },
    };
    LoopEnd {
        aborted,
        pending,
        stop,
        stopping,
        input_ended,
        last_read,
    }
}

/// Deliver the checkpoint in hand, then the rows carried past it, a checkpoint at a time.
async fn deliver_rest<C: Checkpoint>(
    checkpoint: &mut C,
    mut carry: Option<C::Read>,
    deliverer: &mut Deliverer,
    batch_rows: usize,
) -> Result<(), Failure> {
    loop {
        checkpoint.deliver(deliverer).await?;
        match carry.take() {
            None => return Ok(()),
            Some(rest) => carry = checkpoint.push(rest, batch_rows),
        }
    }
}
