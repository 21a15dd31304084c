//! The sink's behaviour, independent of how the transport is reached (the host's import in
//! the component, an in-memory transport in tests).

use nats_sink_arrow_map::Plan;
use nats_sink_rules::append::append;

use crate::arrow::column::{Columns, Scratch};
use crate::arrow::ipc::{Item, Stream};
use crate::arrow::ops::{OpColumn, OP_FIELD};
use crate::batch::{BatchBuilder, Mark};
use crate::bindings::{
    Batch, ClosedAfter, Closure, Column, Failure, PackedBytes, Rows, Span, TransportError, Value,
};
use crate::changes::{unpaired, Change};
use crate::encode::{Encoder, RowError};
use crate::options::{OptionProblem, SinkConfig};
use crate::rows::RowRef;
use crate::schema::{Schema, SchemaError};
use crate::template::{Slot, Template};
use crate::upsert::{KvDelete, SinkKind, KV_OPERATION_HEADER, KV_PURGE_ROLLUP, ROLLUP_HEADER};

/// What the sink needs from a NATS connection.
pub trait Transport {
    /// Publish a batch's messages in order; success means accepted, not yet confirmed.
    fn publish(&mut self, batch: Batch) -> Result<(), TransportError>;
    /// Confirm everything published since the previous flush.
    fn flush(&mut self) -> Result<(), TransportError>;
    /// The most bytes one message may take, payload and header block together.
    fn max_payload(&mut self) -> u64;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    #[error("invalid options: {}", join(.0))]
    InvalidOptions(Vec<OptionProblem>),
    #[error("invalid schema: {0}")]
    InvalidSchema(#[from] SchemaError),
    #[error("row {row}: {error}")]
    InvalidRow { row: u32, error: RowError },
    #[error("connection: {}", .0.message)]
    Connection(Failure),
    #[error("publish: {}", .0.message)]
    Publish(Failure),
    #[error("timeout: {}", .0.message)]
    Timeout(Failure),
    #[error("closed: {}", .0.cause.message)]
    Closed(Closure),
}

fn join(problems: &[OptionProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<TransportError> for SinkError {
    fn from(e: TransportError) -> SinkError {
        match e {
            TransportError::Connection(m) => SinkError::Connection(m),
            TransportError::Publish(m) => SinkError::Publish(m),
            TransportError::Timeout(m) => SinkError::Timeout(m),
        }
    }
}

/// Validate options and schema together, before anything connects.
pub fn prepare(
    options: &[(String, String)],
    columns: &[Column],
) -> Result<(SinkConfig, Schema), SinkError> {
    let mut config = SinkConfig::parse(options).map_err(SinkError::InvalidOptions)?;
    let schema = Schema::parse(
        columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str())),
    )?;
    bind_templates(&mut config, &schema).map_err(SinkError::InvalidOptions)?;
    Ok((config, schema))
}

/// Point the subject's and headers' `{column}` parts at the schema's columns.
fn bind_templates(config: &mut SinkConfig, schema: &Schema) -> Result<(), Vec<OptionProblem>> {
    let mut problems = Vec::new();
    let subject_option = match &config.kind {
        SinkKind::Upsert(upsert) => {
            for name in &upsert.primary_key {
                if !schema.columns.iter().any(|c| c.name == *name) {
                    problems.push(OptionProblem {
                        name: "primary_key".into(),
                        message: format!("names column `{name}`, which is not in the schema"),
                    });
                }
            }
            upsert.key_option()
        }
        SinkKind::AppendOnly { .. } => "subject",
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut bind = |name: String, template: &mut Template| {
        if let Err(message) = template.resolve(schema) {
            problems.push(OptionProblem { name, message });
        }
    };
    bind(subject_option.into(), &mut config.subject_template);
    for header in &mut config.headers {
        bind(format!("headers.{}", header.name), &mut header.value);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Largest buffer reserved up front for a batch.
const MAX_BATCH_RESERVE: usize = 16 << 20;

/// The Arrow path publishes once its batch holds this many bytes, so that a stream's
/// messages never all sit in memory at once (a bit-packed column grows many times over as
/// JSON).
const MAX_ARROW_PUBLISH: usize = 8 << 20;

/// What `write_arrow` packs into as it goes through a stream.
struct ArrowOutput {
    batch: BatchBuilder,
    fixed_subject: Option<Span>,
    max_payload: u64,
    /// The values the current row gives the templates.
    template_row: Rows,
    /// Rows of the stream packed so far (the index of the next row).
    written: u32,
    /// An update-delete whose update-insert is the next row.
    pending: Option<crate::changes::PendingUpdate>,
}

/// How the sink's columns read a stream whose schema is `arrow`, or why they cannot; and
/// which field, if any, is the reserved `__op` column of row operations.
fn plan_stream(schema: &Schema, arrow: &arrow_schema::Schema) -> Result<StreamPlan, SinkError> {
    // A sink with a column of that name reads the field as that column.
    let reserved = !schema.columns.iter().any(|c| c.name == OP_FIELD);
    let op_field = arrow
        .fields()
        .iter()
        .position(|f| f.name() == OP_FIELD)
        .filter(|_| reserved);
    // A wrong-typed `__op` is the schema's fault, named as any other wrong-typed column is.
    if let Some(op) = op_field {
        crate::arrow::ops::check_op_type(arrow.field(op).data_type()).map_err(|message| {
            SinkError::InvalidSchema(SchemaError::BadType {
                column: OP_FIELD.to_string(),
                message,
            })
        })?;
    }
    let fields: arrow_schema::Fields = arrow
        .fields()
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != op_field)
        .map(|(_, f)| f)
        .cloned()
        .collect();
    let mut plans = nats_sink_arrow_map::plan_columns(&schema.columns, &fields).map_err(|m| {
        SinkError::InvalidSchema(SchemaError::BadType {
            column: m.path,
            message: m.message,
        })
    })?;
    // Indices into the stream's own fields, which still hold `__op`.
    if let Some(op) = op_field {
        for (field, _) in &mut plans {
            if *field >= op {
                *field += 1;
            }
        }
    }
    Ok(StreamPlan { plans, op_field })
}

/// How a stream's record batches are read: each sink column's field and plan, and the
/// `__op` field, if the stream has one.
struct StreamPlan {
    plans: Vec<(usize, Plan)>,
    op_field: Option<usize>,
}

/// One message as `address` closes it: its payload and subject (spans of the batch), and for
/// an upsert sink's delete, how it deletes.
pub(crate) struct Addressed {
    pub payload: Span,
    pub subject: Span,
    pub kv_delete: Option<KvDelete>,
}

/// A refusal no column is to blame for (a malformed stream), at row `row`.
fn layout_refusal(row: u32, message: String) -> SinkError {
    SinkError::InvalidRow {
        row,
        error: RowError {
            column: String::new(),
            message,
        },
    }
}

/// The header JetStream deduplicates on.
pub use nats_sink_rules::nats_names::MESSAGE_ID_HEADER;

/// The default sink id: `ns-` and the first 16 hex digits of SHA-256 over the subject and each
/// column's name and type, so the same sink definition gets the same ids after a restart.
pub fn default_sink_id(subject: &str, schema: &Schema) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(subject.as_bytes());
    for field in &schema.columns {
        hash.update(b"\n");
        hash.update(field.name.as_bytes());
        hash.update(b" ");
        hash.update(field.data_type.to_string().as_bytes());
    }
    let digest = hash.finalize();
    let mut id = String::from("ns-");
    for byte in &digest[..8] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Where the next row sits: its checkpoint and its position inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    id: u64,
    next_position: u64,
}

/// The sink behind the exported `nats-sink` resource: encodes rows, publishes them through
/// `T`, and latches after a transport failure. (The host's embedder-facing type is `Sink`.)
pub struct Publisher<T> {
    config: SinkConfig,
    schema: Schema,
    transport: T,
    encoder: Encoder,
    /// The subject when it takes nothing from the row.
    fixed_subject: Option<String>,
    /// Every batch's header names: the configured headers, then the message id when dedupe is on.
    header_names: Vec<String>,
    /// Text of a template being filled, kept between rows.
    scratch: String,
    /// Prefix of message ids; `None` when dedupe is off.
    sink_id: Option<String>,
    /// `None` until the caller begins a checkpoint: rows then carry no message id.
    checkpoint: Option<Checkpoint>,
    /// Bytes per message in the last batch, to size the next one's buffer.
    bytes_per_message: usize,
    /// Set after a transport failure: what was published since the last flush is in doubt,
    /// so the sink refuses further work and the caller must reopen and replay.
    failure: Option<Closure>,
    /// Scratch space of the Arrow path's writers, kept between calls.
    arrow_scratch: Scratch,
    /// The schema columns the subject and header templates name, in schema order.
    template_columns: Vec<usize>,
    /// The values an Arrow row gives the templates, kept between rows.
    template_row: Rows,
    /// What the subject template's values must be: a subject token, or a KV key's part.
    pub(crate) subject_slot: Slot,
}

impl<T: Transport> Publisher<T> {
    pub fn new(config: SinkConfig, schema: Schema, transport: T) -> Publisher<T> {
        let sink_id = config.dedupe.then(|| {
            config
                .sink_id
                .clone()
                .unwrap_or_else(|| default_sink_id(&config.subject, &schema))
        });
        let fixed_subject = config
            .subject_template
            .is_fixed()
            .then(|| config.subject_template.with_sample(""));
        let mut template_columns: Vec<usize> = std::iter::once(&config.subject_template)
            .chain(config.headers.iter().map(|h| &h.value))
            .flat_map(|template| template.columns())
            .filter_map(|name| schema.columns.iter().position(|c| c.name == name))
            .collect();
        template_columns.sort_unstable();
        template_columns.dedup();
        let mut header_names: Vec<String> = config.headers.iter().map(|h| h.name.clone()).collect();
        if sink_id.is_some() {
            header_names.push(MESSAGE_ID_HEADER.to_string());
        }
        let subject_slot = match &config.kind {
            SinkKind::Upsert(upsert) => {
                header_names.push(KV_OPERATION_HEADER.to_string());
                header_names.push(ROLLUP_HEADER.to_string());
                Slot::KvKey {
                    base64: upsert.key_encoding == crate::upsert::KeyEncoding::Base64Url,
                }
            }
            SinkKind::AppendOnly { .. } => Slot::SubjectToken,
        };
        Publisher {
            header_names,
            scratch: String::new(),
            encoder: Encoder::new(config.modes, &schema),
            arrow_scratch: Scratch::new(config.modes),
            fixed_subject,
            config,
            schema,
            transport,
            sink_id,
            checkpoint: None,
            bytes_per_message: 256,
            failure: None,
            template_columns,
            template_row: Rows::new(),
            subject_slot,
        }
    }

    /// The prefix of this sink's message ids; `None` when dedupe is off.
    pub fn sink_id(&self) -> Option<&str> {
        self.sink_id.as_deref()
    }

    /// Rows written from now on are numbered from 0 inside checkpoint `id`.
    pub fn begin_checkpoint(&mut self, id: u64) {
        self.checkpoint = Some(Checkpoint {
            id,
            next_position: 0,
        });
    }

    /// The subject of `row`'s message: the fixed one, or the template filled from the row.
    pub(crate) fn subject_of(
        &mut self,
        row: RowRef<'_>,
        batch: &mut BatchBuilder,
        fixed_subject: Option<Span>,
    ) -> Result<Span, RowError> {
        match fixed_subject {
            Some(subject) => Ok(subject),
            None => {
                self.config
                    .subject_template
                    .render(row, self.subject_slot, &mut self.scratch)?;
                Ok(batch.push_bytes(self.scratch.as_bytes()))
            }
        }
    }

    /// The subject `row` fills the template with, as text (the key of an update's old row).
    pub(crate) fn subject_text(&mut self, row: RowRef<'_>) -> Result<String, RowError> {
        self.config
            .subject_template
            .render(row, self.subject_slot, &mut self.scratch)?;
        Ok(self.scratch.clone())
    }

    /// Close the message of `payload` on `subject`, whose headers start at `mark`: its
    /// headers (templates filled from `row`), its message id, a KV delete's headers, and the
    /// max_payload check. Every message of `write` and `write_arrow` ends here.
    pub(crate) fn address(
        &mut self,
        row: RowRef<'_>,
        batch: &mut BatchBuilder,
        mark: Mark,
        message: Addressed,
        max_payload: u64,
    ) -> Result<(), RowError> {
        let Addressed {
            payload,
            subject,
            kv_delete,
        } = message;
        // The header block as the server counts it: `NATS/1.0\r\n`, `name: value\r\n` each,
        // and a blank line.
        let mut header_bytes = 0u64;
        let mut count_header = |name: &str, value: Span| {
            header_bytes += name.len() as u64 + 2 + u64::from(value.len) + 2;
        };
        for (index, header) in self.config.headers.iter().enumerate() {
            header
                .value
                .render(row, Slot::HeaderValue, &mut self.scratch)?;
            let value = batch.push_bytes(self.scratch.as_bytes());
            batch.push_header(index as u32, value);
            count_header(&header.name, value);
        }
        let mut next_header = self.config.headers.len() as u32;
        let mut next_position = None;
        if let (Some(sink_id), Some(checkpoint)) = (&self.sink_id, &self.checkpoint) {
            // `<sink_id>:<checkpoint>:<position>`, written in place.
            let start = batch.data_len();
            let data = batch.data();
            append(data, sink_id.as_bytes());
            data.push(b':');
            append(data, itoa::Buffer::new().format(checkpoint.id).as_bytes());
            data.push(b':');
            append(
                data,
                itoa::Buffer::new()
                    .format(checkpoint.next_position)
                    .as_bytes(),
            );
            next_position = Some(checkpoint.next_position + 1);
            let id = batch.span_since(start);
            batch.push_header(next_header, id);
            count_header(MESSAGE_ID_HEADER, id);
        }
        if self.sink_id.is_some() {
            next_header += 1;
        }
        if let Some(delete) = kv_delete {
            let operation = batch.push_bytes(delete.operation().as_bytes());
            batch.push_header(next_header, operation);
            count_header(KV_OPERATION_HEADER, operation);
            if delete == KvDelete::Purge {
                let rollup = batch.push_bytes(KV_PURGE_ROLLUP.as_bytes());
                batch.push_header(next_header + 1, rollup);
                count_header(ROLLUP_HEADER, rollup);
            }
        }
        if header_bytes > 0 {
            header_bytes += "NATS/1.0\r\n\r\n".len() as u64;
        }
        let size = u64::from(payload.len) + header_bytes;
        if size > max_payload {
            // It would fail the same way on every try: bad input, not a delivery failure.
            return Err(RowError {
                column: String::new(),
                message: format!(
                    "its message is {size} bytes ({} of JSON, {header_bytes} of headers), over the server's max_payload of {max_payload} bytes",
                    payload.len
                ),
            });
        }
        if let (Some(checkpoint), Some(next)) = (&mut self.checkpoint, next_position) {
            checkpoint.next_position = next;
        }
        batch.push_message(mark, subject, payload);
        Ok(())
    }

    /// Append-only or upsert.
    pub(crate) fn kind(&self) -> &SinkKind {
        &self.config.kind
    }

    /// What an upsert sink's delete writes; `None` for an append-only sink.
    pub(crate) fn delete_mode(&self) -> Option<KvDelete> {
        match &self.config.kind {
            SinkKind::Upsert(upsert) => Some(upsert.delete),
            SinkKind::AppendOnly { .. } => None,
        }
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn check_usable(&self) -> Result<(), SinkError> {
        match &self.failure {
            None => Ok(()),
            Some(closure) => Err(SinkError::Closed(closure.clone())),
        }
    }

    /// Record a transport failure so no later call can look like success; later calls are
    /// `closed` after the failure's kind, with its core flag.
    fn fail(&mut self, error: TransportError) -> SinkError {
        let (after, failure) = match &error {
            TransportError::Connection(f) => (ClosedAfter::Connection, f),
            TransportError::Publish(f) => (ClosedAfter::Publish, f),
            TransportError::Timeout(f) => (ClosedAfter::Timeout, f),
        };
        let error = SinkError::from(error.clone());
        self.failure = Some(Closure {
            after,
            cause: Failure {
                message: format!(
                    "the sink failed earlier ({error}); reopen it and replay from the last successful flush"
                ),
                core_in_doubt: failure.core_in_doubt,
            },
        });
        error
    }

    /// Encode every row and publish one message per row, in one batch. A row that does not
    /// match the schema (or breaks the batch's layout) stops the batch: the rows before it are
    /// published, it and the rest are not.
    pub fn write(&mut self, rows: &Rows) -> Result<(), SinkError> {
        self.check_usable()?;
        let mut batch = self.new_batch(rows.len());
        let fixed_subject = self.push_fixed_subject(&mut batch);
        // Asked per batch: after a reconnect the server may be another one.
        let max_payload = self.transport.max_payload();
        let mut refused = None;
        let mut pending = None;
        for (index, row) in crate::rows::read(rows).enumerate() {
            let mark = batch.mark();
            let at = |error| (index as u32, error);
            let placed = row
                .and_then(|row| Ok((row, crate::rows::op_of(rows, index)?)))
                .map_err(at)
                .and_then(|(row, op)| {
                    let start = batch.data_len();
                    self.encoder
                        .encode_row(&self.schema, row, batch.data())
                        .map_err(at)?;
                    let payload = batch.span_since(start);
                    let change = Change {
                        op,
                        row,
                        index: index as u32,
                        mark,
                        payload,
                    };
                    self.place(change, &mut batch, fixed_subject, max_payload, &mut pending)
                });
            if let Err((row, error)) = placed {
                batch.rewind(mark);
                refused = Some(SinkError::InvalidRow { row, error });
                break;
            }
        }
        if refused.is_none() {
            refused = pending.map(unpaired);
        }
        self.publish(batch)?;
        refused.map_or(Ok(()), Err)
    }

    /// An empty batch for about `rows` messages like the last ones.
    fn new_batch(&self, rows: usize) -> BatchBuilder {
        let reserve = (self.bytes_per_message * rows).min(MAX_BATCH_RESERVE);
        BatchBuilder::new(self.header_names.clone(), reserve, rows)
    }

    /// One copy of a fixed subject serves every message of a batch.
    fn push_fixed_subject(&self, batch: &mut BatchBuilder) -> Option<Span> {
        self.fixed_subject
            .as_ref()
            .map(|subject| batch.push_bytes(subject.as_bytes()))
    }

    /// Hand a batch to the transport, if it holds any message.
    fn publish(&mut self, batch: BatchBuilder) -> Result<(), SinkError> {
        if batch.messages() == 0 {
            return Ok(());
        }
        // Rows of one sink are alike: size the next buffer by this one, so it rarely grows.
        self.bytes_per_message = batch.data_len() / batch.messages() + 16;
        self.transport
            .publish(batch.finish())
            .map_err(|e| self.fail(e))
    }

    /// `write_arrow` of a stream as the WIT carries it, packed into words: taken without a
    /// copy (as an 8-aligned buffer), once its byte count is checked against its words.
    pub fn write_arrow_packed(&mut self, ipc: PackedBytes) -> Result<u32, SinkError> {
        self.check_usable()?;
        nats_sink_rules::packed::check(&ipc.words, ipc.len.into())
            .map_err(|e| layout_refusal(0, format!("the stream's bytes are packed wrong: {e}")))?;
        let bytes =
            arrow_buffer::Buffer::from_vec(ipc.words).slice_with_length(0, ipc.len as usize);
        self.write_arrow(bytes)
    }

    /// Encode and publish the rows of one Arrow IPC stream (see `write-arrow` in the WIT),
    /// one message per row, the same bytes `write` gives for the same rows. The stream's
    /// schema is checked against the sink's before any row; a value that does not convert,
    /// or a malformed message, stops the stream: the rows before it are published, it and
    /// the rest are not. On success, the number of rows the stream held.
    pub fn write_arrow(&mut self, ipc: impl Into<arrow_buffer::Buffer>) -> Result<u32, SinkError> {
        self.check_usable()?;
        // The columns borrow the schema while `self` encodes; a clone per call is O(columns).
        let schema = self.schema.clone();
        let mut stream = Stream::new(ipc);
        let mut out = ArrowOutput {
            batch: self.new_batch(0),
            fixed_subject: None,
            max_payload: self.transport.max_payload(),
            template_row: std::mem::take(&mut self.template_row),
            written: 0,
            pending: None,
        };
        out.fixed_subject = self.push_fixed_subject(&mut out.batch);
        let mut plans: Option<StreamPlan> = None;
        let outcome = loop {
            match stream.next_item() {
                Ok(None) if plans.is_none() => {
                    break Err(layout_refusal(0, "the stream has no schema".into()))
                }
                Ok(None) => match out.pending.take() {
                    Some(pending) => break Err(crate::changes::unpaired(pending)),
                    None => break Ok(()),
                },
                Err(e) => break Err(layout_refusal(out.written, e.to_string())),
                Ok(Some(Item::Schema(arrow_schema))) => match plan_stream(&schema, &arrow_schema) {
                    Ok(planned) => plans = Some(planned),
                    Err(e) => break Err(e),
                },
                Ok(Some(Item::Batch(record_batch))) => {
                    let Some(StreamPlan { plans, op_field }) = plans.as_ref() else {
                        let message = "a record batch came before the schema".into();
                        break Err(layout_refusal(out.written, message));
                    };
                    let key_order = self.config.modes.key_order;
                    let packed = Columns::bind(&schema, plans, &record_batch, key_order)
                        .and_then(|columns| {
                            Ok((columns, OpColumn::bind(&record_batch, *op_field)?))
                        })
                        .map_err(|message| layout_refusal(out.written, message))
                        .and_then(|(columns, ops)| {
                            let rows = record_batch.num_rows();
                            self.pack_record_batch(&columns, &ops, rows, &mut out)
                        });
                    if let Err(e) = packed {
                        break Err(e);
                    }
                }
            }
        };
        self.template_row = std::mem::take(&mut out.template_row);
        match outcome {
            // A transport failure while packing is the news (the sink is latched failed).
            Err(e)
                if !matches!(
                    e,
                    SinkError::InvalidRow { .. } | SinkError::InvalidSchema(_)
                ) =>
            {
                Err(e)
            }
            // What was packed goes out, then a refusal, if any, is reported.
            outcome => {
                self.publish(out.batch)?;
                outcome.map(|()| out.written)
            }
        }
    }

    /// Pack the `rows` rows of one record batch's `columns` into `out`, publishing whenever
    /// its batch is full. A row that does not convert is `invalid-row` (the rows before it
    /// stay packed); a failed publish is its transport error.
    fn pack_record_batch(
        &mut self,
        columns: &Columns<'_>,
        ops: &OpColumn<'_>,
        rows: usize,
        out: &mut ArrowOutput,
    ) -> Result<(), SinkError> {
        if u64::from(out.written) + rows as u64 > u64::from(u32::MAX) {
            let message = format!("the stream holds more than {} rows; split it", u32::MAX);
            return Err(layout_refusal(out.written, message));
        }
        let reserve = (self.bytes_per_message * rows).min(MAX_ARROW_PUBLISH);
        out.batch.data().reserve(reserve);
        for index in 0..rows {
            if out.batch.data_len() >= MAX_ARROW_PUBLISH {
                // Memory stays bounded however many rows the stream holds.
                // A pending update-delete has no message yet: publishing here splits no pair.
                let full = std::mem::replace(&mut out.batch, self.new_batch(rows - index));
                self.publish(full)?;
                out.fixed_subject = self.push_fixed_subject(&mut out.batch);
            }
            let mark = out.batch.mark();
            let start = out.batch.data_len();
            let row_index = out.written + index as u32;
            let at = |error| (row_index, error);
            let packed = ops
                .op(index)
                .map_err(at)
                .and_then(|op| {
                    columns
                        .write_row(index, &mut self.arrow_scratch, out.batch.data())
                        .map_err(at)?;
                    Ok(op)
                })
                .and_then(|op| {
                    let payload = out.batch.span_since(start);
                    self.fill_template_row(columns, index, &mut out.template_row);
                    let change = Change {
                        op,
                        row: RowRef::whole(&out.template_row),
                        index: row_index,
                        mark,
                        payload,
                    };
                    let (subject, limit) = (out.fixed_subject, out.max_payload);
                    self.place(change, &mut out.batch, subject, limit, &mut out.pending)
                });
            if let Err((row, error)) = packed {
                out.batch.rewind(mark);
                return Err(SinkError::InvalidRow { row, error });
            }
        }
        out.written += rows as u32;
        Ok(())
    }

    /// The values row `index` gives the subject and header templates, as `write` carries
    /// them (a column no template names is null). Empty when no template names a column.
    fn fill_template_row(&self, columns: &Columns<'_>, index: usize, row: &mut Rows) {
        row.values.clear();
        row.data.clear();
        if self.template_columns.is_empty() {
            return;
        }
        row.values.resize(self.schema.columns.len(), Value::Null);
        for &column in &self.template_columns {
            let value = columns.template_value(column, index, row);
            row.values[column] = value;
        }
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.check_usable()?;
        self.transport.flush().map_err(|e| self.fail(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{unpack, Unpacked};
    use crate::bindings::{Op, Value};

    /// Records every call; fails on demand.
    #[derive(Default)]
    struct Recorder {
        published: Vec<Unpacked>,
        publishes: usize,
        flushes: usize,
        fail_publish: Option<TransportError>,
        fail_flush: Option<TransportError>,
        max_payload: Option<u64>,
    }

    impl Transport for Recorder {
        fn publish(&mut self, batch: Batch) -> Result<(), TransportError> {
            if let Some(e) = self.fail_publish.take() {
                return Err(e);
            }
            self.publishes += 1;
            self.published
                .extend(unpack(&batch).expect("a well-formed batch"));
            Ok(())
        }
        fn flush(&mut self) -> Result<(), TransportError> {
            if let Some(e) = self.fail_flush.take() {
                return Err(e);
            }
            self.flushes += 1;
            Ok(())
        }
        fn max_payload(&mut self) -> u64 {
            self.max_payload.unwrap_or(1 << 20)
        }
    }

    fn options() -> Vec<(String, String)> {
        [
            ("server_url", "127.0.0.1:4222"),
            ("subject", "rows"),
            ("connect_mode", "plain"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn sink() -> Publisher<Recorder> {
        let columns = vec![Column {
            name: "id".into(),
            data_type: "integer".into(),
        }];
        let (config, schema) = prepare(&options(), &columns).unwrap();
        Publisher::new(config, schema, Recorder::default())
    }

    /// The one value of a test row: a `Value`, or text that goes into the batch's data.
    enum Cell {
        Value(Value),
        Text(&'static str),
    }

    fn int(n: i32) -> Cell {
        Cell::Value(Value::Int32(n))
    }

    /// A batch of one-column rows.
    fn rows<const N: usize>(cells: [Cell; N]) -> Rows {
        let mut rows = Rows::new();
        for cell in cells {
            let value = match cell {
                Cell::Value(value) => value,
                Cell::Text(text) => rows.text(text),
            };
            rows.push_row([value]);
        }
        rows
    }

    #[test]
    fn writes_one_message_per_row() {
        let mut sink = sink();
        sink.write(&rows([int(1), Cell::Value(Value::Null)]))
            .unwrap();
        sink.flush().unwrap();
        let published = &sink.transport().published;
        assert_eq!(published.len(), 2);
        assert_eq!(published[0].subject, "rows");
        assert_eq!(published[0].payload, br#"{"id":1}"#);
        assert_eq!(published[1].payload, br#"{"id":null}"#);
        assert_eq!(sink.transport().flushes, 1);
    }

    #[test]
    fn bad_row_publishes_the_rows_before_it_only() {
        let mut sink = sink();
        let err = sink
            .write(&rows([int(1), int(2), Cell::Text("x"), int(4)]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 2: column `id`: expected integer, got varchar"
        );
        assert_eq!(sink.transport().published.len(), 2);
        // A refused row does not poison the sink: the caller may flush what was accepted.
        sink.flush().unwrap();
    }

    #[test]
    fn a_broken_batch_layout_is_a_row_error_after_the_good_rows() {
        let mut sink = sink();
        let mut batch = rows([int(1), int(2), int(3)]);
        batch.ends = vec![1, 0, 3];
        let err = sink.write(&batch).unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidRow { row: 1, error } if error.message.contains("ends at value 0")),
            "{err:?}"
        );
        assert_eq!(sink.transport().published.len(), 1);

        let mut batch = rows([Cell::Text("x")]);
        batch.values[0] = Value::Int32(9);
        batch.values.push(Value::Null);
        let err = sink.write(&batch).unwrap_err();
        assert!(err.to_string().contains("batch has 2 values"), "{err}");

        batch.ends.clear();
        let err = sink.write(&batch).unwrap_err();
        assert_eq!(err.to_string(), "row 0: the batch has no rows but 2 values");
        assert_eq!(sink.transport().published.len(), 1);
    }

    fn failure(message: &str, core_in_doubt: bool) -> Failure {
        Failure {
            message: message.into(),
            core_in_doubt,
        }
    }

    #[test]
    fn transport_failure_closes_the_sink() {
        let mut sink = sink();
        sink.transport.fail_flush = Some(TransportError::Timeout(failure("no ack", true)));
        sink.write(&rows([int(1)])).unwrap();
        assert_eq!(
            sink.flush().unwrap_err(),
            SinkError::Timeout(failure("no ack", true))
        );
        // Closed after the failure's kind, keeping its core flag: a host acts on both.
        let again = sink.flush().unwrap_err();
        assert!(
            matches!(&again, SinkError::Closed(Closure { after: ClosedAfter::Timeout, cause })
                if cause.core_in_doubt && cause.message.contains("replay")),
            "{again:?}"
        );
        assert!(matches!(
            sink.write(&rows([int(2)])),
            Err(SinkError::Closed(_))
        ));
    }

    #[test]
    fn publish_failure_closes_the_sink() {
        let mut sink = sink();
        sink.transport.fail_publish = Some(TransportError::Publish(failure(
            "maximum payload exceeded",
            false,
        )));
        assert!(matches!(
            sink.write(&rows([int(1)])),
            Err(SinkError::Publish(_))
        ));
        assert!(matches!(
            sink.flush(),
            Err(SinkError::Closed(Closure { after: ClosedAfter::Publish, cause })) if !cause.core_in_doubt
        ));
    }

    fn ids(sink: &Publisher<Recorder>) -> Vec<String> {
        sink.transport()
            .published
            .iter()
            .map(|m| match m.headers.as_slice() {
                [(name, id)] if name == MESSAGE_ID_HEADER => id.clone(),
                [] => String::new(),
                other => panic!("unexpected headers {other:?}"),
            })
            .collect()
    }

    #[test]
    fn rows_in_a_checkpoint_carry_ids_by_position() {
        let mut sink = sink();
        let sink_id = default_sink_id("rows", &sink.schema);
        sink.write(&rows([int(0)])).unwrap();
        sink.begin_checkpoint(7);
        sink.write(&rows([int(1), int(2)])).unwrap();
        // A refused row takes no position; the row after it gets the next one.
        assert!(sink.write(&rows([int(3), Cell::Text("x")])).is_err());
        sink.write(&rows([int(4)])).unwrap();
        // A replay of checkpoint 7 numbers the same rows the same way.
        sink.begin_checkpoint(7);
        sink.write(&rows([int(1)])).unwrap();
        assert_eq!(
            ids(&sink),
            vec![
                String::new(),
                format!("{sink_id}:7:0"),
                format!("{sink_id}:7:1"),
                format!("{sink_id}:7:2"),
                format!("{sink_id}:7:3"),
                format!("{sink_id}:7:0"),
            ]
        );
    }

    #[test]
    fn sink_id_option_and_dedupe_off() {
        let columns = vec![Column {
            name: "id".into(),
            data_type: "integer".into(),
        }];
        let mut named = options();
        named.push(("sink_id".into(), "orders".into()));
        let (config, schema) = prepare(&named, &columns).unwrap();
        let mut sink = Publisher::new(config, schema, Recorder::default());
        sink.begin_checkpoint(u64::MAX);
        sink.write(&rows([int(1)])).unwrap();
        assert_eq!(ids(&sink), vec![format!("orders:{}:0", u64::MAX)]);

        let mut off = options();
        off.push(("dedupe".into(), "false".into()));
        let (config, schema) = prepare(&off, &columns).unwrap();
        let mut sink = Publisher::new(config, schema, Recorder::default());
        sink.begin_checkpoint(1);
        sink.write(&rows([int(1)])).unwrap();
        assert_eq!(ids(&sink), vec![String::new()]);
    }

    /// Issue 16: a message over max_payload failed the whole run; it is the row's fault.
    #[test]
    fn a_message_over_max_payload_is_a_row_error_that_takes_no_id() {
        let columns = vec![Column {
            name: "v".into(),
            data_type: "varchar".into(),
        }];
        let (config, schema) = prepare(&options(), &columns).unwrap();
        let mut sink = Publisher::new(config, schema, Recorder::default());
        let id_header = (MESSAGE_ID_HEADER.len()
            + 2
            + format!("{}:1:0", sink.sink_id.as_deref().unwrap()).len()
            + 2
            + 12) as u64;
        // {"v":"…"} is 8 bytes around the text.
        let limit = 100u64;
        sink.transport.max_payload = Some(limit);
        sink.begin_checkpoint(1);
        let fits = "a".repeat((limit - id_header - 8) as usize);
        let over = "a".repeat((limit - id_header - 7) as usize);
        let mut batch = Rows::new();
        for text in [fits.as_str(), over.as_str(), "b"] {
            let value = batch.text(text);
            batch.push_row([value]);
        }
        let err = sink.write(&batch).unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidRow { row: 1, error } if error.message.contains("101 bytes") && error.message.contains("max_payload of 100 bytes")),
            "{err}"
        );
        sink.flush().unwrap();
        let mut batch = Rows::new();
        let value = batch.text("c");
        batch.push_row([value]);
        sink.write(&batch).unwrap();
        // The refused row took no position: the next row has the one after the first.
        let ids = ids(&sink);
        assert_eq!(ids.len(), 2);
        assert!(
            ids[0].ends_with(":1:0") && ids[1].ends_with(":1:1"),
            "{ids:?}"
        );
    }

    #[test]
    fn default_sink_id_follows_subject_and_schema() {
        let schema = |ty: &str| Schema::parse([("id", ty)]).unwrap();
        let a = default_sink_id("rows", &schema("integer"));
        assert!(a.starts_with("ns-") && a.len() == 19, "{a}");
        assert!(crate::options::check_sink_id(&a).is_ok());
        // Aliases name the same type, so the same id.
        assert_eq!(a, default_sink_id("rows", &schema("int4")));
        assert_ne!(a, default_sink_id("rows", &schema("bigint")));
        assert_ne!(a, default_sink_id("rows2", &schema("integer")));
    }

    #[test]
    fn subject_and_headers_come_from_the_row_and_a_bad_value_refuses_only_its_row() {
        let columns = [("region", "varchar"), ("n", "integer")].map(|(name, ty)| Column {
            name: name.into(),
            data_type: ty.into(),
        });
        let mut pairs = options();
        pairs.retain(|(k, _)| k != "subject");
        pairs.extend(
            [
                ("subject", "orders.{region}"),
                ("headers.X-Source", "nats-sink"),
                ("headers.X-N", "n={n}"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let (config, schema) = prepare(&pairs, &columns).unwrap();
        let mut sink = Publisher::new(config, schema, Recorder::default());
        sink.begin_checkpoint(1);
        let batch = |regions: &[(&str, i32)]| {
            let mut rows = Rows::new();
            for &(region, n) in regions {
                let region = rows.text(region);
                rows.push_row([region, Value::Int32(n)]);
            }
            rows
        };
        let err = sink
            .write(&batch(&[("eu", 1), ("us.east", 2), ("ap", 3)]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 1: column `region`: value \"us.east\" cannot fill `{region}`: it contains `.`, which would add a subject token"
        );
        sink.write(&batch(&[("ap", 3)])).unwrap();
        let published = &sink.transport().published;
        assert_eq!(published.len(), 2);
        assert_eq!(published[0].subject, "orders.eu");
        assert_eq!(published[1].subject, "orders.ap");
        let sink_id = sink.sink_id.clone().unwrap();
        assert_eq!(
            published[1].headers,
            vec![
                ("X-N".to_string(), "n=3".to_string()),
                ("X-Source".to_string(), "nats-sink".to_string()),
                (MESSAGE_ID_HEADER.to_string(), format!("{sink_id}:1:1")),
            ]
        );

        let mut unknown = options();
        unknown.push(("headers.X-Tenant".into(), "{tenant}".into()));
        let err = prepare(&unknown, &columns).unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidOptions(p) if p[0].name == "headers.X-Tenant" && p[0].message.contains("not in the schema")),
            "{err:?}"
        );
    }

    #[test]
    fn prepare_reports_options_before_schema() {
        let err = prepare(&[], &[]).unwrap_err();
        assert!(matches!(err, SinkError::InvalidOptions(ref p) if p.len() == 3));
        let err = prepare(&options(), &[]).unwrap_err();
        assert_eq!(err, SinkError::InvalidSchema(SchemaError::Empty));
    }

    /// One varchar column `v` holding `texts`, as one Arrow IPC stream.
    fn arrow_texts(texts: &[&str]) -> Vec<u8> {
        use std::sync::Arc;
        let batch = arrow_array::RecordBatch::try_from_iter([(
            "v",
            Arc::new(arrow_array::StringArray::from(texts.to_vec())) as arrow_array::ArrayRef,
        )])
        .unwrap();
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        writer.into_inner().unwrap()
    }

    fn varchar_sink() -> Publisher<Recorder> {
        let columns = vec![Column {
            name: "v".into(),
            data_type: "varchar".into(),
        }];
        let (config, schema) = prepare(&options(), &columns).unwrap();
        Publisher::new(config, schema, Recorder::default())
    }

    #[test]
    fn a_large_arrow_stream_is_published_in_bounded_batches() {
        let mut sink = varchar_sink();
        sink.transport.max_payload = Some(4 << 20);
        let big = "x".repeat(3 << 20);
        let texts: Vec<&str> = (0..7).map(|_| big.as_str()).collect();
        assert_eq!(sink.write_arrow(arrow_texts(&texts)), Ok(7));
        assert_eq!(sink.transport().published.len(), 7);
        // 21 MiB of JSON in batches that close at 8 MiB: never all of it at once.
        assert_eq!(sink.transport().publishes, 3);
    }

    #[test]
    fn a_packed_stream_is_read_as_its_bytes_and_a_wrong_count_is_refused() {
        let ipc = arrow_texts(&["a", "b"]);
        let mut sink = varchar_sink();
        let packed = |len: u32| PackedBytes {
            words: nats_sink_rules::packed::pack(&ipc),
            len,
        };
        assert_eq!(sink.write_arrow_packed(packed(ipc.len() as u32)), Ok(2));
        for wrong in [0, ipc.len() as u32 - 8, ipc.len() as u32 + 8] {
            let err = sink.write_arrow_packed(packed(wrong)).unwrap_err();
            assert!(
                matches!(&err, SinkError::InvalidRow { row: 0, error } if error.message.contains("packed wrong")),
                "{err:?}"
            );
        }
        assert_eq!(sink.transport().published.len(), 2);
    }

    #[test]
    fn a_transport_failure_inside_an_arrow_stream_closes_the_sink() {
        let mut sink = varchar_sink();
        sink.transport.max_payload = Some(4 << 20);
        sink.transport.fail_publish = Some(TransportError::Connection(failure("gone", false)));
        let big = "x".repeat(3 << 20);
        let texts: Vec<&str> = (0..4).map(|_| big.as_str()).collect();
        assert_eq!(
            sink.write_arrow(arrow_texts(&texts)),
            Err(SinkError::Connection(failure("gone", false)))
        );
        assert!(matches!(
            sink.flush(),
            Err(SinkError::Closed(Closure {
                after: ClosedAfter::Connection,
                ..
            }))
        ));
    }

    #[test]
    fn an_arrow_row_over_max_payload_is_refused_after_the_rows_before_it() {
        let mut sink = varchar_sink();
        sink.transport.max_payload = Some(64);
        let long = "y".repeat(100);
        let err = sink
            .write_arrow(arrow_texts(&["a", "b", &long, "c"]))
            .unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidRow { row: 2, error } if error.message.contains("max_payload")),
            "{err:?}"
        );
        assert_eq!(sink.transport().published.len(), 2);
        assert_eq!(sink.write_arrow(arrow_texts(&["d"])), Ok(1));
    }

    fn upsert_sink(extra: &[(&str, &str)], columns: &[(&str, &str)]) -> Publisher<Recorder> {
        let mut pairs: Vec<(String, String)> = options();
        pairs.retain(|(k, _)| k != "subject");
        pairs.extend(
            [("type", "upsert"), ("kv.bucket", "B")]
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let columns: Vec<Column> = columns
            .iter()
            .map(|(name, ty)| Column {
                name: name.to_string(),
                data_type: ty.to_string(),
            })
            .collect();
        let (config, schema) = prepare(&pairs, &columns).unwrap();
        Publisher::new(config, schema, Recorder::default())
    }

    /// Rows of `(id, name)` with their operations.
    fn changes(rows: &[(Op, i32, &str)]) -> Rows {
        let mut batch = Rows::new();
        for &(op, id, name) in rows {
            let name = batch.text(name);
            batch.push_row_with_op(op, [Value::Int32(id), name]);
        }
        batch
    }

    const ID_NAME: [(&str, &str); 2] = [("id", "integer"), ("name", "varchar")];

    fn kv_op(message: &Unpacked) -> Option<&str> {
        message
            .headers
            .iter()
            .find(|(name, _)| name == crate::upsert::KV_OPERATION_HEADER)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn an_append_only_sink_refuses_changes_unless_forced() {
        let mut sink = varchar_sink();
        let mut batch = Rows::new();
        for (op, text) in [(Op::Insert, "a"), (Op::Delete, "b"), (Op::Insert, "c")] {
            let value = batch.text(text);
            batch.push_row_with_op(op, [value]);
        }
        let err = sink.write(&batch).unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidRow { row: 1, error } if error.message.contains("append-only and this row is a delete") && error.message.contains("force_append_only")),
            "{err:?}"
        );
        assert_eq!(sink.transport().published.len(), 1);

        let columns = [Column {
            name: "v".into(),
            data_type: "varchar".into(),
        }];
        let mut forced = options();
        forced.push(("force_append_only".into(), "true".into()));
        let (config, schema) = prepare(&forced, &columns).unwrap();
        let mut sink = Publisher::new(config, schema, Recorder::default());
        let mut batch = Rows::new();
        for (op, text) in [
            (Op::Insert, "a"),
            (Op::Delete, "b"),
            (Op::UpdateDelete, "c"),
            (Op::UpdateInsert, "d"),
        ] {
            let value = batch.text(text);
            batch.push_row_with_op(op, [value]);
        }
        sink.write(&batch).unwrap();
        let payloads: Vec<_> = sink
            .transport()
            .published
            .iter()
            .map(|m| m.payload.clone())
            .collect();
        assert_eq!(
            payloads,
            vec![br#"{"v":"a"}"#.to_vec(), br#"{"v":"d"}"#.to_vec()]
        );
    }

    #[test]
    fn upserts_put_the_append_only_payload_and_delete_with_an_empty_message() {
        let mut sink = upsert_sink(&[("primary_key", "id")], &ID_NAME);
        sink.write(&changes(&[
            (Op::Insert, 7, "a"),
            (Op::UpdateDelete, 7, "a"),
            (Op::UpdateInsert, 7, "b"),
            (Op::Delete, 7, "b"),
        ]))
        .unwrap();
        let published = &sink.transport().published;
        assert_eq!(published.len(), 3, "{published:?}");
        assert_eq!(published[0].subject, "$KV.B.7");
        assert_eq!(published[0].payload, br#"{"id":7,"name":"a"}"#);
        assert_eq!(kv_op(&published[0]), None);
        assert_eq!(published[1].payload, br#"{"id":7,"name":"b"}"#);
        assert_eq!(published[2].subject, "$KV.B.7");
        assert!(published[2].payload.is_empty());
        assert_eq!(kv_op(&published[2]), Some("DEL"));

        let mut sink = upsert_sink(&[("primary_key", "id"), ("kv.delete", "purge")], &ID_NAME);
        sink.begin_checkpoint(3);
        sink.write(&changes(&[(Op::Delete, 1, "x")])).unwrap();
        let headers = &sink.transport().published[0].headers;
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Nats-Msg-Id", "KV-Operation", "Nats-Rollup"]);
        assert_eq!(headers[1].1, "PURGE");
        assert_eq!(headers[2].1, "sub");
    }

    #[test]
    fn an_update_that_moves_the_key_deletes_the_old_one_first() {
        let mut sink = upsert_sink(
            &[("primary_key", "id,name"), ("key_format", "u/{name}-{id}")],
            &ID_NAME,
        );
        sink.write(&changes(&[
            (Op::UpdateDelete, 1, "old"),
            (Op::UpdateInsert, 2, "new"),
        ]))
        .unwrap();
        let published = &sink.transport().published;
        let seen: Vec<_> = published
            .iter()
            .map(|m| (m.subject.as_str(), kv_op(m)))
            .collect();
        assert_eq!(
            seen,
            [("$KV.B.u/old-1", Some("DEL")), ("$KV.B.u/new-2", None)]
        );
    }

    #[test]
    fn unpaired_updates_and_bad_keys_are_refused_at_their_row() {
        let mut sink = upsert_sink(&[("primary_key", "name")], &ID_NAME);
        let err = sink
            .write(&changes(&[
                (Op::Insert, 1, "a"),
                (Op::UpdateDelete, 1, "a"),
                (Op::Insert, 1, "b"),
            ]))
            .unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidRow { row: 1, error } if error.message.contains("row 2 is an insert")),
            "{err:?}"
        );
        let err = sink
            .write(&changes(&[(Op::UpdateDelete, 1, "a")]))
            .unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidRow { row: 0, error } if error.message.contains("the batch ended")),
            "{err:?}"
        );
        let err = sink
            .write(&changes(&[(Op::UpdateInsert, 1, "a")]))
            .unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidRow { row: 0, .. }),
            "{err:?}"
        );
        let err = sink
            .write(&changes(&[(Op::Insert, 1, "ok"), (Op::Insert, 2, "a b")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 1: column `name`: value \"a b\" cannot fill `{name}`: it holds ' ', which a NATS KV key cannot (it takes letters, digits and `-/_=.`); set key_encoding = 'base64url' to encode each value"
        );
        for bad in ["", ".a", "a."] {
            let err = sink.write(&changes(&[(Op::Insert, 1, bad)])).unwrap_err();
            assert!(
                matches!(&err, SinkError::InvalidRow { row: 0, error } if error.column == "name"),
                "{bad:?}: {err:?}"
            );
        }
        let published: Vec<_> = sink
            .transport()
            .published
            .iter()
            .map(|m| m.subject.clone())
            .collect();
        assert_eq!(published, ["$KV.B.a", "$KV.B.ok"]);
    }

    #[test]
    fn base64url_keys_hold_any_value_reversibly() {
        let mut sink = upsert_sink(
            &[("primary_key", "name,id"), ("key_encoding", "base64url")],
            &ID_NAME,
        );
        sink.write(&changes(&[(Op::Insert, 7, "a b.c")])).unwrap();
        // `a b.c` and `7`, each as padded base64url, joined by `.`.
        assert_eq!(sink.transport().published[0].subject, "$KV.B.YSBiLmM=.Nw==");
    }

    #[test]
    fn a_primary_key_column_missing_from_the_schema_is_an_option_problem() {
        let mut pairs = options();
        pairs.retain(|(k, _)| k != "subject");
        for (k, v) in [
            ("type", "upsert"),
            ("kv.bucket", "B"),
            ("primary_key", "id,zone"),
        ] {
            pairs.push((k.into(), v.into()));
        }
        let columns = [Column {
            name: "id".into(),
            data_type: "integer".into(),
        }];
        let err = prepare(&pairs, &columns).unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidOptions(p) if p.len() == 1 && p[0].name == "primary_key" && p[0].message.contains("`zone`, which is not in the schema")),
            "{err:?}"
        );
    }

    #[test]
    fn an_arrow_op_column_carries_each_rows_operation() {
        use std::sync::Arc;
        let batch = arrow_array::RecordBatch::try_from_iter([
            (
                "__op",
                Arc::new(arrow_array::Int16Array::from(vec![1, 4, 3, 2, 9]))
                    as arrow_array::ArrayRef,
            ),
            (
                "id",
                Arc::new(arrow_array::Int32Array::from(vec![1, 1, 1, 2, 3])) as _,
            ),
            (
                "name",
                Arc::new(arrow_array::StringArray::from(vec![
                    "a", "a", "b", "c", "d",
                ])) as _,
            ),
        ])
        .unwrap();
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        let ipc = writer.into_inner().unwrap();
        let mut sink = upsert_sink(&[("primary_key", "id")], &ID_NAME);
        let err = sink.write_arrow(ipc).unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidRow { row: 4, error } if error.column == "__op" && error.message.contains("is 9")),
            "{err:?}"
        );
        // A `__op` of another type is the schema's fault, named, before any row is read.
        let texts = arrow_array::RecordBatch::try_from_iter([
            (
                "__op",
                Arc::new(arrow_array::StringArray::from(vec!["insert"])) as arrow_array::ArrayRef,
            ),
            ("id", Arc::new(arrow_array::Int32Array::from(vec![1])) as _),
            (
                "name",
                Arc::new(arrow_array::StringArray::from(vec!["a"])) as _,
            ),
        ])
        .unwrap();
        let mut writer =
            arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &texts.schema()).unwrap();
        writer.write(&texts).unwrap();
        writer.finish().unwrap();
        let mut other = upsert_sink(&[("primary_key", "id")], &ID_NAME);
        let err = other.write_arrow(writer.into_inner().unwrap()).unwrap_err();
        assert!(
            matches!(&err, SinkError::InvalidSchema(SchemaError::BadType { column, message }) if column == "__op" && message.contains("integer type")),
            "{err:?}"
        );
        assert!(other.transport().published.is_empty());
        let seen: Vec<_> = sink
            .transport()
            .published
            .iter()
            .map(|m| {
                (
                    m.subject.as_str(),
                    kv_op(m),
                    String::from_utf8_lossy(&m.payload).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("$KV.B.1", None, r#"{"id":1,"name":"a"}"#.to_string()),
                ("$KV.B.1", None, r#"{"id":1,"name":"b"}"#.to_string()),
                ("$KV.B.2", Some("DEL"), String::new()),
            ]
        );
    }
}
