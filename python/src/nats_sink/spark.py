"""Sink a Spark DataFrame: every partition written by the executor that holds it, through its own
sink, under a checkpoint id a retried task gets again (`pip install nats-sink[spark]`).

    nats_sink.spark.write(df, options, batch_id=7)                       # a batch DataFrame
    df.writeStream.foreachBatch(nats_sink.spark.writer(options)).start()  # a streaming query

Partition `p` of batch `b` writes under checkpoint `b * 2**20 + p`, so its rows carry the message
ids `<sink_id>:<b * 2**20 + p>:<position in the partition>`: no two (batch, partition) pairs share
one, and a retried task (same batch, same partition, same rows in the same order) publishes the
ids it had before, which JetStream drops within its duplicate window. Where the plan cannot
promise the same rows in the same order (spark_plan.py), the write warns and sends no ids:
a retry may then duplicate rows, never drop them. docs/spark.md says when ids repeat.

Everything that can be checked is checked on the driver before any task starts: the options
(`validate`), a `sink_id` while dedupe is on, the columns' types (spark_types.py), an explicit
schema against the DataFrame's columns.
"""

from __future__ import annotations

import asyncio
import itertools
import warnings
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator, Optional, Sequence

from . import errors
from .errors import OptionProblem
from .schema import SchemaSyntaxError, parse_type
from .sink import Options, _pairs, open as open_sink, validate
from .spark_plan import unstable_order
from .spark_types import sink_schema, with_intervals

PARTITION_BITS = 20
MAX_PARTITIONS = 1 << PARTITION_BITS  # partitions 0 .. 1,048,575 in one batch
MAX_BATCH_ID = (1 << (64 - PARTITION_BITS)) - 1  # so that the checkpoint id fits in the WIT's u64

# What the partition function returns per partition: its id and the rows it wrote.
_RESULT_SCHEMA = "partition int, rows long"


class NondeterministicPlan(UserWarning):
    """The DataFrame's plan may give a retried task other rows or another order: the partition
    is written without message ids (at-least-once; a retry may duplicate rows, never drop them)."""


def checkpoint_id(batch_id: int, partition: int) -> int:
    """The checkpoint partition `partition` of batch `batch_id` writes under."""
    if type(batch_id) is not int:  # not a bool, a float, a str
        raise ValueError(f"batch_id must be an integer, not {batch_id!r}")
    if not 0 <= batch_id <= MAX_BATCH_ID:
        raise ValueError(f"batch_id {batch_id} is outside 0..{MAX_BATCH_ID}")
    if not 0 <= partition < MAX_PARTITIONS:
        raise ValueError(f"partition {partition} is outside 0..{MAX_PARTITIONS - 1}: use fewer partitions")
    return (batch_id << PARTITION_BITS) | partition


# Test-only: awaited after each Arrow batch a task writes, with its partition, the rows written
# so far and the sink (a test flushes it, then fails the task: rows published, then a failure).
AfterWrite = Callable[[int, int, Any], Awaitable[None]]


@dataclass(frozen=True)
class _Job:
    """Everything a task needs, pickled to the executors with the partition function."""

    options: tuple[tuple[str, str], ...]
    columns: tuple[tuple[str, str], ...]
    batch_id: Optional[int]  # None: no message ids (dedupe off, or an unstable plan)
    after_write: Optional["AfterWrite"]


def write(df: Any, options: Options, *, batch_id: int, schema: Optional[Sequence[tuple[str, str]]] = None,
          deterministic: Optional[bool] = None, _after_write: Optional[AfterWrite] = None) -> int:
    """Write every row of a batch DataFrame, each partition on its executor; return the rows written.

    `batch_id` names this write: a rerun of the same DataFrame under the same id is dropped by
    the stream as duplicates (within its duplicate window), so give every different write its
    own. `schema` is the sink's columns `[(name, type), ...]`; without it they come from the
    DataFrame's types. `deterministic=True` asserts that a retried task sees the same rows in
    the same order where the plan check would warn; `False` sends no ids. A task that fails
    (a refused row, a failed flush) fails the job after Spark's retries.
    """
    pairs = _checked_options(options)
    columns = _columns(df, schema)
    ids = _dedupe(pairs) and _stable(df, deterministic)
    if ids:
        checkpoint_id(batch_id, 0)  # a batch id out of range is refused here, not in a task
    job = _Job(tuple(pairs), tuple(columns), batch_id if ids else None, _after_write)
    done = df.mapInArrow(_partition_function(job), _RESULT_SCHEMA).collect()
    return sum(row.rows for row in done)


def writer(options: Options, *, schema: Optional[Sequence[tuple[str, str]]] = None,
           deterministic: Optional[bool] = None,
           _after_write: Optional[AfterWrite] = None) -> Callable[[Any, int], None]:
    """A `foreachBatch` function writing each micro-batch under its `batch_id`; the options are
    checked now, on the driver. A query restarted from its checkpoint location replays its last
    batch under the same id, so the stream drops what it already holds of it."""
    pairs = _checked_options(options)  # read once: `options` may be a one-shot iterable

    def write_batch(batch_df: Any, batch_id: int) -> None:
        write(batch_df, pairs, batch_id=batch_id, schema=schema, deterministic=deterministic,
              _after_write=_after_write)  # fmt: skip

    return write_batch


def _checked_options(options: Options) -> list[tuple[str, str]]:
    pairs = _pairs(options)
    problems = validate(pairs)
    if _dedupe(pairs) and not dict(pairs).get("sink_id", "").strip():
        # The default sink id comes from the subject and the schema: two writers to one subject
        # would share ids and drop each other's rows.
        problems.append(OptionProblem("sink_id", "nats_sink.spark needs a sink_id of its own per query or job "
                                      "while dedupe is on, so no other writer's ids meet its own"))  # fmt: skip
    if problems:
        raise errors.InvalidOptions(problems)
    return pairs


def _dedupe(pairs: list[tuple[str, str]]) -> bool:
    return dict(pairs).get("dedupe", "true").strip().lower() != "false"


def _columns(df: Any, schema: Optional[Sequence[tuple[str, str]]]) -> list[tuple[str, str]]:
    if schema is None:
        return sink_schema(df.schema)
    columns = [(str(name), str(text)) for name, text in schema]
    for name, text in columns:
        try:
            parse_type(text)
        except (SchemaSyntaxError, ValueError, TypeError):
            raise errors.InvalidSchema(f"column `{name}`: `{text}` is not a sink type") from None
    given, have = [n for n, _ in columns], list(df.columns)
    if sorted(given) != sorted(have):
        missing = [n for n in given if n not in have]
        extra = [n for n in have if n not in given]
        raise errors.InvalidSchema(f"the schema's columns are not the DataFrame's: missing from the DataFrame "
                                   f"{missing}, not in the schema {extra}")  # fmt: skip
    return columns


def _stable(df: Any, deterministic: Optional[bool]) -> bool:
    if deterministic is not None:
        return deterministic
    why = unstable_order(df)
    if why is None:
        return True
    warnings.warn(NondeterministicPlan(
        f"nats_sink.spark writes this DataFrame without message ids: {why}. A retried task may then "
        "publish its rows again (at-least-once); pass deterministic=True if its rows and their order "
        "repeat anyway"), stacklevel=3)  # fmt: skip
    return False


def _partition_function(job: _Job) -> Callable[[Iterator[Any]], Iterator[Any]]:
    def write_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        partition = TaskContext.get().partitionId()
        rows = asyncio.run(_write_partition(job, partition, batches))
        yield pa.record_batch({"partition": pa.array([partition], pa.int32()), "rows": pa.array([rows], pa.int64())})

    return write_partition


async def _write_partition(job: _Job, partition: int, batches: Iterator[Any]) -> int:
    """Open a sink, write the partition's batches in order, flush, close; the rows written."""
    checkpoint = None if job.batch_id is None else checkpoint_id(job.batch_id, partition)
    first = next(batches, None)
    if first is None:
        return 0  # an empty partition opens no connection
    batches = itertools.chain([first], batches)
    sink = await open_sink(list(job.options), list(job.columns))
    try:
        if checkpoint is not None:
            sink.begin_checkpoint(checkpoint)
        rows = 0
        for batch in batches:
            try:
                await sink.write_arrow(with_intervals(batch))
            except errors.InvalidRow as refused:
                await sink.flush()  # the rows before the refused one are confirmed, then the task fails
                raise errors.InvalidRow(rows + refused.row, refused.column,
                                        f"{refused.message} (partition {partition})") from None  # fmt: skip
            rows += batch.num_rows
            if job.after_write is not None:
                await job.after_write(partition, rows, sink)
        await sink.flush()  # a failed flush raises: the task fails and Spark retries it
        return rows
    finally:
        await sink.close()
