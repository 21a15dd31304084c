"""The asyncio API: open a sink, write batches of rows, flush, close."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from wasmtime.component import Record, ResourceAny, Variant

from . import errors, packed
from .arrow_crossings import arrow_crossings
from .arrow_input import NotArrow, record_batches
from .component import Instance
from .crossings import Bounds, crossings
from .errors import OptionProblem
from .schema import DataType, SchemaSyntaxError, parse_type
from .policy import Reach
from .sandbox import Limits
from .transport import NatsTransport, as_sink_error

Options = Union[Mapping[str, Any], Iterable[tuple[str, Any]]]
Columns = Sequence[tuple[str, str]]


def _pairs(options: Options) -> list[tuple[str, str]]:
    items = options.items() if isinstance(options, Mapping) else options
    return [(str(k), v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in items]


def _columns(schema: Columns) -> list[Record]:
    out = []
    for name, data_type in schema:
        r = Record()
        r.name = name
        setattr(r, "data-type", data_type)
        out.append(r)
    return out


def describe() -> list[dict[str, Any]]:
    """Every option the sink understands, from the component itself."""
    infos = Instance().call("describe")
    return [
        {"name": i.name, "required": i.required, "default": getattr(i, "default-value"), "doc": i.doc}
        for i in infos
    ]


def validate(options: Options) -> list[OptionProblem]:
    """Every problem with these options at once, the component's and this host's; an empty
    list means they are valid here."""
    pairs = _pairs(options)
    return [OptionProblem(p.name, p.message) for p in Instance().call("validate", pairs)]


def _schema_error(pairs: list[tuple[str, str]], schema: Columns) -> errors.SinkError:
    """The guest's own words for a schema the host could not parse (it opens without connecting)."""
    result = Instance().call("[static]sink.open", pairs, _columns(schema))
    if isinstance(result, Variant) and result.tag in ("invalid-schema", "invalid-options"):
        return errors.from_wit(result)
    return errors.InvalidSchema("the schema could not be read")


async def open(options: Options, schema: Columns, *, limits: Optional[Limits] = None) -> "Sink":  # noqa: A001 - the API's verb
    """Validate the options and the schema, connect, and open the sink. `limits` bounds the
    component's memory and each call's time (defaults: the Rust host's, 256 MiB and 30 s)."""
    pairs = _pairs(options)
    problems = validate(pairs)
    if problems:
        raise errors.InvalidOptions(problems)
    columns: list[tuple[str, DataType]] = []
    try:
        for name, text in schema:
            columns.append((name, parse_type(text)))
    except (SchemaSyntaxError, ValueError, TypeError):
        raise _schema_error(pairs, schema) from None
    resolver = Instance()
    target = resolver.call("resolve", pairs)
    if isinstance(target, Variant):
        raise errors.from_wit(target)
    transport = NatsTransport(Reach(pairs))
    try:
        await transport.connect(target.connect)
    except BaseException as e:
        await transport.close()
        if isinstance(e, Exception):
            raise as_sink_error(e, "opening the connection failed") from e
        raise
    try:
        instance = Instance(transport, limits)
        handle = instance.call("[static]sink.open", pairs, _columns(schema))
        if isinstance(handle, Variant):
            raise errors.from_wit(handle)
    except BaseException:
        await transport.close()
        raise
    return Sink(instance, handle, transport, columns, Bounds.of(columns, pairs))


class Sink:
    """An open sink. Not safe for concurrent use: await each call before the next."""

    def __init__(self, instance: Instance, handle: ResourceAny, transport: NatsTransport,
                 columns: list[tuple[str, DataType]], bounds: Bounds) -> None:
        self._instance, self._handle, self._transport = instance, handle, transport
        self.columns = columns
        self._bounds = bounds
        self._closed: Optional[errors.Closed] = None

    def _check(self) -> None:
        if self._closed is not None:
            raise errors.Closed(self._closed.message, self._closed.after, self._closed.core_in_doubt)

    def _fail(self, e: errors.SinkError) -> errors.SinkError:
        """After a delivery failure the sink refuses further calls, so no later success hides it."""
        self._closed = errors.closed_after(
            e, f"the sink failed earlier ({e}); reopen it and replay since the last flush")
        return e

    def _stopped(self, call: str, e: BaseException) -> None:
        """A call stopped part way (cancelled, interrupted): what it had not handed on is lost to
        this sink, so the sink refuses further calls rather than let a later flush succeed."""
        self._closed = errors.Closed(
            f"a {call} was stopped part way ({type(e).__name__}); some of its rows may not have been sent; "
            "reopen the sink and replay since the last flush", "interrupted")

    def _unexpected(self, call: str, e: Exception) -> errors.SinkError:
        """Anything else that escaped a call, as the sink's error; the sink is closed."""
        return self._fail(as_sink_error(e, f"{call} failed"))

    def begin_checkpoint(self, checkpoint: int) -> None:
        """Start checkpoint `checkpoint`; rows from here carry `<sink_id>:<checkpoint>:<position>`."""
        self._check()
        try:
            self._instance.call("[method]sink.begin-checkpoint", self._handle, checkpoint)
        except errors.SinkError as e:
            raise self._fail(e) from None

    async def write(self, rows: Iterable[Any]) -> None:
        """Encode and publish rows (dicts by column name, or tuples in schema order).

        On `InvalidRow`, the rows before the bad one were published and nothing at or after it.
        A write of any size crosses into the component in bounded parts (see crossings.py). A
        write that is cancelled part way closes the sink: later calls raise `Closed`.
        """
        await self._guarded_write("write", rows, changes=False)

    async def write_changes(self, changes: Iterable[Any]) -> None:
        """Encode and publish rows with their operation: `(op, row)` pairs, `op` an `Op` or its
        value (`"insert"`, `"delete"`, `"update_delete"`, `"update_insert"`), an update as an
        `update_delete` of the old row right before the `update_insert` of the new one.

        An upsert sink puts, deletes or moves each row's key (docs/upsert.md); an append-only
        sink refuses anything but an insert unless `force_append_only = true`. A change that
        is not such a pair, or one the guest refuses, is `InvalidRow` counted across the whole
        input, the rows before it published. Otherwise as `write`."""
        await self._guarded_write("write_changes", changes, changes=True)

    async def _guarded_write(self, call: str, rows: Iterable[Any], *, changes: bool) -> None:
        """`_write`, with what its failures mean for the sink: a refused row leaves it open, any
        other failure closes it (a non-SinkError becomes one), a cancellation closes it too."""
        self._check()
        try:
            await self._write(rows, changes=changes)
        except errors.InvalidRow:
            raise
        except errors.SinkError as e:
            raise self._fail(e) from None
        except Exception as e:  # noqa: BLE001 - every error out of the host is a SinkError
            raise self._unexpected(call, e) from e
        except BaseException as e:  # cancelled: the caller's own request, passed on
            self._stopped(call, e)
            raise

    async def _write(self, rows: Iterable[Any], *, changes: bool = False) -> None:
        for crossing in crossings(self.columns, rows, self._bounds, self._transport.max_payload(), changes=changes):
            if len(crossing.rows):
                result = self._instance.call("[method]sink.write", self._handle, crossing.rows.record())
                await self._transport.send()  # what the guest published before any refusal
                if isinstance(result, Variant):
                    err = errors.from_wit(result)
                    if isinstance(err, errors.InvalidRow):
                        raise errors.InvalidRow(crossing.first + err.row, err.column, err.message)
                    raise err
            if crossing.refused is not None:
                raise crossing.refused

    async def write_arrow(self, data: Any) -> None:
        """Encode and publish Arrow data, one message per row, the same bytes `write` gives for
        the same rows: a pyarrow Table, RecordBatch or RecordBatchReader, or anything with
        `__arrow_c_stream__` (a polars DataFrame, a DuckDB result). Needs pyarrow
        (`pip install nats-sink[arrow]`).

        A column named `__op` (unless the sink has one of that name) gives each row's
        operation as RisingWave's `Op::to_i16` numbers it: 1 insert, 2 delete, 3 update-insert,
        4 update-delete, in any integer type; without it every row is an insert.

        Columns are matched to the sink's by name; the Arrow types each column takes are the
        WIT's `write-arrow`'s. A column of a type its sink column cannot take is `InvalidSchema`
        and nothing is published; a value that does not convert is `InvalidRow` with `row`
        counted across the whole input, the rows before it published. Anything else than Arrow
        data is `NotArrow` (a TypeError). The data crosses in bounded IPC streams (see
        arrow_crossings.py); a write cancelled part way closes the sink.
        """
        self._check()
        try:
            await self._write_arrow(data)
        except (errors.InvalidRow, errors.InvalidSchema, NotArrow):
            raise  # nothing was published past the refusal: the sink stays open
        except errors.SinkError as e:
            raise self._fail(e) from None
        except Exception as e:  # noqa: BLE001 - every error out of the host is a SinkError
            raise self._unexpected("write_arrow", e) from e
        except BaseException as e:  # cancelled: the caller's own request, passed on
            self._stopped("write_arrow", e)
            raise

    async def _write_arrow(self, data: Any) -> None:
        schema, batches = record_batches(data)
        parts = arrow_crossings(schema, batches, self.columns, self._bounds, self._transport.max_payload())
        for crossing in parts:
            result = self._instance.call("[method]sink.write-arrow", self._handle, packed.pack(crossing.ipc))
            await self._transport.send()  # what the guest published before any refusal
            if isinstance(result, Variant):
                err = errors.from_wit(result)
                if isinstance(err, errors.InvalidRow):
                    raise errors.InvalidRow(crossing.first + err.row, err.column, err.message)
                raise err
            if result != crossing.rows:  # the guest read another stream than the one we wrote
                raise errors.ComponentError(f"write-arrow published {result} rows of a stream of {crossing.rows}")
            if crossing.refused is not None:
                raise crossing.refused

    async def flush(self) -> None:
        """Return once everything written since the last flush is confirmed. A flush that is
        cancelled part way closes the sink: later calls raise `Closed`."""
        self._check()
        try:
            result = self._instance.call("[method]sink.flush", self._handle)
            if isinstance(result, Variant):
                raise errors.from_wit(result)
            await self._transport.confirm()
        except errors.SinkError as e:
            raise self._fail(e) from None
        except Exception as e:  # noqa: BLE001 - every error out of the host is a SinkError
            raise self._unexpected("flush", e) from e
        except BaseException as e:  # cancelled: the caller's own request, passed on
            self._stopped("flush", e)
            raise

    async def close(self) -> None:
        """Close the connection. Unflushed rows are not confirmed: flush first."""
        if self._closed is not None and self._closed.after == "close":
            return
        self._closed = errors.Closed("the sink was closed", "close")
        try:
            self._instance.drop(self._handle)
        except errors.ComponentError:
            pass  # an instance that trapped cannot drop its handle; both go with its store
        finally:
            await self._transport.close()

    async def __aenter__(self) -> "Sink":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
