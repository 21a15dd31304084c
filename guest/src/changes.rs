//! What each row's operation makes of its message: an append-only sink writes inserts (and,
//! with `force_append_only`, the insert half of updates); an upsert sink puts, deletes, and
//! turns an update pair into one put (and a delete when the update changed the key).

use crate::batch::{BatchBuilder, Mark};
use crate::bindings::{Op, Span};
use crate::encode::RowError;
use crate::rows::RowRef;
use crate::sink::{Addressed, Publisher, SinkError, Transport};
use crate::upsert::SinkKind;

/// One row on its way to a message: its payload is already encoded at `payload`.
pub(crate) struct Change<'a> {
    pub op: Op,
    pub row: RowRef<'a>,
    /// The row's index in the batch (or across an Arrow stream).
    pub index: u32,
    /// Where the batch stood before the row: its messages' headers start here.
    pub mark: Mark,
    pub payload: Span,
}

/// An update-delete waiting for the update-insert that must come right after it.
pub(crate) struct PendingUpdate {
    row: u32,
    /// The subject (`$KV.<bucket>.<key>`) of the old row.
    subject: String,
}

/// A row refused at `row`, as `place` reports it.
type Refusal = (u32, RowError);

fn refusal(row: u32, message: String) -> Refusal {
    (
        row,
        RowError {
            column: String::new(),
            message,
        },
    )
}

fn name(op: Op) -> &'static str {
    match op {
        Op::Insert => "an insert",
        Op::Delete => "a delete",
        Op::UpdateDelete => "an update-delete",
        Op::UpdateInsert => "an update-insert",
    }
}

/// The refusal of an update-delete the batch ended after.
pub(crate) fn unpaired(pending: PendingUpdate) -> SinkError {
    let (row, error) = refusal(
        pending.row,
        "an update-delete must be followed at once by its update-insert, in the same batch; the batch ended".into(),
    );
    SinkError::InvalidRow { row, error }
}

/// A put: the row's payload at its key's subject.
fn put_of(payload: Span, subject: Span) -> Addressed {
    Addressed {
        payload,
        subject,
        kv_delete: None,
    }
}

impl<T: Transport> Publisher<T> {
    /// A delete of the key at `subject`: an empty payload (at `at` in the batch's data), with
    /// the header of the sink's `kv.delete`.
    fn delete_of(&self, subject: Span, at: u32) -> Addressed {
        Addressed {
            payload: Span { start: at, len: 0 },
            subject,
            kv_delete: self.delete_mode(),
        }
    }

    /// Turn `change` into its messages (or none), or refuse it, naming the row to blame (for
    /// an update pair, its update-delete: the pair stands or falls together). On a refusal
    /// the caller rewinds the batch to `change.mark`.
    pub(crate) fn place(
        &mut self,
        change: Change<'_>,
        batch: &mut BatchBuilder,
        fixed_subject: Option<Span>,
        max_payload: u64,
        pending: &mut Option<PendingUpdate>,
    ) -> Result<(), Refusal> {
        let Change {
            op,
            row,
            index,
            mark,
            payload,
        } = change;
        let at = |error| (index, error);
        if let Some(old) = pending.take() {
            if op != Op::UpdateInsert {
                return Err(refusal(
                    old.row,
                    format!(
                        "an update-delete must be followed at once by its update-insert; row {index} is {}",
                        name(op)
                    ),
                ));
            }
            let blame_pair = |error: RowError| {
                let message = format!("its update-insert (row {index}): {}", error.message);
                (
                    old.row,
                    RowError {
                        column: error.column,
                        message,
                    },
                )
            };
            let subject = self
                .subject_of(row, batch, fixed_subject)
                .map_err(blame_pair)?;
            if batch.bytes_of(subject) != old.subject.as_bytes() {
                // The update moved the row to another key: the old one goes first.
                let old_subject = batch.push_bytes(old.subject.as_bytes());
                let delete = self.delete_of(old_subject, payload.start);
                self.address(row, batch, mark, delete, max_payload)
                    .map_err(blame_pair)?;
            }
            let put = batch.mark();
            return self
                .address(row, batch, put, put_of(payload, subject), max_payload)
                .map_err(blame_pair);
        }
        let kind = self.kind().clone();
        match (kind, op) {
            (_, Op::Insert) | (SinkKind::AppendOnly { force: true }, Op::UpdateInsert) => {
                let subject = self.subject_of(row, batch, fixed_subject).map_err(at)?;
                self.address(row, batch, mark, put_of(payload, subject), max_payload)
                    .map_err(at)
            }
            // Dropped, as RisingWave's force_append_only drops them; the row was still checked.
            (SinkKind::AppendOnly { force: true }, Op::Delete | Op::UpdateDelete) => {
                batch.data().truncate(payload.start as usize);
                Ok(())
            }
            (SinkKind::AppendOnly { force: false }, op) => Err(refusal(
                index,
                format!(
                    "the sink is append-only and this row is {}; set force_append_only = true to drop deletes and write updates as inserts, or type = 'upsert'",
                    name(op)
                ),
            )),
            (SinkKind::Upsert(_), Op::Delete) => {
                // A delete carries no value: the row was encoded only to check it.
                batch.data().truncate(payload.start as usize);
                let subject = self.subject_of(row, batch, fixed_subject).map_err(at)?;
                let delete = self.delete_of(subject, payload.start);
                self.address(row, batch, mark, delete, max_payload)
                    .map_err(at)
            }
            (SinkKind::Upsert(_), Op::UpdateDelete) => {
                batch.data().truncate(payload.start as usize);
                let subject = self.subject_text(row).map_err(at)?;
                *pending = Some(PendingUpdate {
                    row: index,
                    subject,
                });
                Ok(())
            }
            (SinkKind::Upsert(_), Op::UpdateInsert) => Err(refusal(
                index,
                "an update-insert must come right after its update-delete".into(),
            )),
        }
    }
}
