"""nats_sink.spark on a real local Spark (local[2], up to 2 attempts per task) into real
nats-servers: a streaming query with a task that fails mid-partition, every supported Spark type
against the CLI byte for byte, a refused row, options and types refused before any task starts,
and plans whose order a retry would not repeat."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import uuid
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import nats
import pytest

from pyspark import SparkContext  # the spark extra (./setup.sh installs it, with Java)
from pyspark.sql import SparkSession, functions as F, types as T

import nats_sink
import nats_sink.spark
from conftest import Server, run_cli

HERE = Path(__file__).resolve().parent
TEN = dt.timezone(dt.timedelta(hours=10))


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """One Spark for every test here: local, loopback only, no UI, small shuffles; stopped after."""
    # The Python workers import the package and this module's hooks from the checkout.
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "PYSPARK_PYTHON")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE.parent / "src"), str(HERE), os.environ.get("PYTHONPATH", "")])
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2,2]")  # 2 threads; a task may be attempted twice
        .appName("nats-sink-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "10")  # several Arrow batches per partition
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    gateway = session.sparkContext._gateway
    yield session
    session.stop()
    # The JVM is this process's child (pyspark's gateway): end it, and wait until it has gone.
    gateway.shutdown()
    jvm = getattr(gateway, "proc", None)
    if jvm is not None:
        jvm.terminate()
        jvm.wait(timeout=30)
    SparkContext._gateway = None  # type: ignore[attr-defined]
    SparkContext._jvm = None  # type: ignore[attr-defined]
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def options(server: Server, subject: str, **extra: str) -> dict[str, str]:
    return server.options(subject, sink_id=extra.pop("sink_id", "spark-test"), **extra)


async def stream_payloads(server: Server, stream: str) -> list[tuple[bytes, str]]:
    """Every message a stream holds: its payload and message id."""
    nc = await nats.connect(f"nats://{server.address}")
    js = nc.jetstream()
    count = (await js.stream_info(stream)).state.messages
    out = []
    for seq in range(1, count + 1):
        m = await js.get_msg(stream, seq)
        out.append((m.data, (m.headers or {}).get("Nats-Msg-Id", "")))
    await nc.close()
    return out


async def cli_payloads(server: Server, tmp: Path, columns: list[tuple[str, str]], lines: list[str]) -> list[bytes]:
    """What the CLI publishes for the same rows given as JSON Lines."""
    schema = tmp / "cli.schema.json"
    schema.write_text(json.dumps({"columns": [{"name": n, "type": t} for n, t in columns]}))
    rows = tmp / "cli.jsonl"
    rows.write_text("".join(line + "\n" for line in lines))
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("cli.out")
    await nc.flush()
    done = await asyncio.to_thread(run_cli, schema, rows, server.options("cli.out"))
    assert done.returncode == 0, done.stderr
    out = [(await sub.next_msg(timeout=10)).data for _ in lines]
    await nc.close()
    return out


def fail_once(flag: str, after_rows: int) -> Callable[[int, int, Any], Any]:
    """A test-only hook: the first task past `after_rows` rows while the flag file exists removes
    it, flushes its rows so far (they are in the stream) and fails."""

    async def hook(partition: int, rows: int, sink: nats_sink.Sink) -> None:
        if rows < after_rows:
            return
        try:
            os.remove(flag)
        except FileNotFoundError:
            return
        await sink.flush()
        raise RuntimeError(f"test fault: partition {partition} fails once after {rows} rows")

    return hook


STREAM_COLUMNS = [("id", "bigint"), ("name", "varchar"), ("score", "double precision"), ("at", "timestamptz")]
STREAM_SCHEMA = "id BIGINT, name STRING, score DOUBLE, at TIMESTAMP"


async def test_streaming_query_with_a_failed_task_holds_every_row_once_as_the_cli_writes_it(
    server: Server, spark: SparkSession, tmp_path: Path
) -> None:
    """Six files, two per micro-batch (one partition each), 45 rows a file in Arrow batches of 10:
    one task fails after its first 10 rows were confirmed, Spark retries it, and the stream holds
    each of the 270 rows once, byte-identical to the CLI's; the retry's repeats were sent and dropped."""
    source = tmp_path / "in"
    source.mkdir()
    lines: list[str] = []
    for f in range(6):
        rows = [json.dumps({"id": f * 1000 + i, "name": f"file {f} row {i} \"q\" é", "score": i / 7,
                            "at": f"2024-0{f + 1}-0{i % 9 + 1}T12:34:56.{i:06d}+02:00"}) for i in range(45)]  # fmt: skip
        (source / f"part-{f}.json").write_text("".join(r + "\n" for r in rows))
        lines += rows
    nc = await nats.connect(f"nats://{server.address}")
    js = nc.jetstream()
    await js.add_stream(name="SPARK", subjects=["spark.>"])
    sent: list[str] = []  # every message id published, repeats included
    all_sent = asyncio.Event()

    async def seen(m: Any) -> None:
        sent.append((m.headers or {}).get("Nats-Msg-Id", ""))
        if len(sent) >= len(lines) + 10:
            all_sent.set()

    watch = await nc.subscribe("spark.rows", cb=seen)
    await nc.flush()
    flag = tmp_path / "fail-once"
    flag.touch()

    # The options as a one-shot iterable: the writer reads them once, on the driver.
    given = iter(options(server, "spark.rows").items())
    write = nats_sink.spark.writer(given, _after_write=fail_once(str(flag), 10))

    def run() -> list[int]:
        query = (
            spark.readStream.schema(STREAM_SCHEMA).option("maxFilesPerTrigger", 2).json(str(source))
            .writeStream.foreachBatch(write).option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True).start()
        )  # fmt: skip
        assert query.awaitTermination(180), "the query did not finish within 180 s"
        assert query.exception() is None, query.exception()
        return [p["batchId"] for p in query.recentProgress if p["numInputRows"]]

    batches = await asyncio.to_thread(run)
    assert len(batches) == 3, batches
    assert not flag.exists(), "no task reached the fault"
    held = await stream_payloads(server, "SPARK")
    ids = [i for _, i in held]
    assert len(held) == len(lines) and len(set(ids)) == len(lines)
    try:
        await asyncio.wait_for(all_sent.wait(), 10)
    except asyncio.TimeoutError:
        raise AssertionError(f"the watcher saw {len(sent)} publishes ({len(set(sent))} ids), not {len(lines) + 10}") from None
    assert len(sent) == len(lines) + 10 and len(set(sent)) == len(lines), "the failed attempt's 10 rows were sent again"
    # Partition p of batch b writes under checkpoint b * 2**20 + p.
    checkpoints = {int(i.split(":")[1]) for i in ids}
    assert checkpoints == {(b << 20) | p for b in batches for p in (0, 1)}
    await watch.unsubscribe()
    await nc.close()
    columns = STREAM_COLUMNS
    assert sorted(p for p, _ in held) == sorted(await cli_payloads(server, tmp_path, columns, lines))


EVERY_TYPE = T.StructType([
    T.StructField("b", T.BooleanType()), T.StructField("y", T.ByteType()), T.StructField("s", T.ShortType()),
    T.StructField("i", T.IntegerType()), T.StructField("big", T.LongType()), T.StructField("r", T.FloatType()),
    T.StructField("d", T.DoubleType()), T.StructField("n", T.DecimalType(38, 3)), T.StructField("v", T.StringType()),
    T.StructField("by", T.BinaryType()), T.StructField("day", T.DateType()), T.StructField("t", T.TimeType()),
    T.StructField("tz", T.TimestampType()), T.StructField("ts", T.TimestampNTZType()),
    T.StructField("iv", T.DayTimeIntervalType()), T.StructField("l", T.ArrayType(T.IntegerType())),
    T.StructField("ll", T.ArrayType(T.ArrayType(T.StringType()))),
    T.StructField("st", T.StructType([T.StructField("a b", T.StringType()), T.StructField("c", T.StructType(
        [T.StructField("when", T.DateType()), T.StructField("gap", T.DayTimeIntervalType())]))])),
    T.StructField("ivs", T.ArrayType(T.DayTimeIntervalType())),
])  # fmt: skip
EVERY_COLUMNS = [
    ("b", "boolean"), ("y", "smallint"), ("s", "smallint"), ("i", "integer"), ("big", "bigint"), ("r", "real"),
    ("d", "double precision"), ("n", "numeric"), ("v", "varchar"), ("by", "bytea"), ("day", "date"), ("t", "time"),
    ("tz", "timestamptz"), ("ts", "timestamp"), ("iv", "interval"), ("l", "integer[]"), ("ll", "varchar[][]"),
    ("st", 'struct<"a b" varchar, c struct<when date, gap interval>>'), ("ivs", "interval[]"),
]  # fmt: skip
EVERY_ROWS: list[tuple[Any, ...]] = [
    (True, -128, -32768, 2147483647, -(2**63), 1.5, 0.1 + 0.2, Decimal("-12.340"), 'héllo "q"\n\x01', b"\x00\xff\r",
     dt.date(1, 1, 1), dt.time(23, 59, 59, 999999), dt.datetime(2002, 6, 20, 19, 8, 3, 79318, tzinfo=TEN),
     dt.datetime(2002, 6, 20, 19, 8, 3, 79318), dt.timedelta(days=25, hours=8, minutes=37, seconds=43, microseconds=5),
     [1, None, -3], [["x", None], [], None], ("p", (dt.date(2024, 2, 29), dt.timedelta(hours=1))),
     [dt.timedelta(days=-3), dt.timedelta(microseconds=1), None]),
    tuple([None] * len(EVERY_COLUMNS)),
    (False, 127, 0, -1, 2**63 - 1, float("nan"), float("-inf"), Decimal("0.000"), "", b"", dt.date(2024, 2, 29),
     dt.time(0), dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(1970, 1, 1), dt.timedelta(days=-3),
     [], [], (None, None), []),
]  # fmt: skip
# The same rows as the CLI reads them (JSON Lines in the sink's text forms).
EVERY_LINES = [
    {"b": True, "y": -128, "s": -32768, "i": 2147483647, "big": -(2**63), "r": 1.5, "d": 0.1 + 0.2, "n": "-12.340",
     "v": 'héllo "q"\n\x01', "by": "\\x00ff0d", "day": "0001-01-01", "t": "23:59:59.999999",
     "tz": "2002-06-20T19:08:03.079318+10:00", "ts": "2002-06-20 19:08:03.079318", "iv": "25 days 08:37:43.000005",
     "l": [1, None, -3], "ll": [["x", None], [], None], "st": {"a b": "p", "c": {"when": "2024-02-29", "gap": "01:00:00"}},
     "ivs": ["-3 days", "00:00:00.000001", None]},
    {n: None for n, _ in EVERY_COLUMNS},
    {"b": False, "y": 127, "s": 0, "i": -1, "big": 2**63 - 1, "r": "NaN", "d": "-Infinity", "n": "0.000", "v": "",
     "by": "\\x", "day": "2024-02-29", "t": "00:00:00", "tz": "2024-01-01T00:00:00+00:00", "ts": "1970-01-01 00:00:00",
     "iv": "-3 days", "l": [], "ll": [], "st": {"a b": None, "c": None}, "ivs": []},
]  # fmt: skip


async def test_every_supported_spark_type_is_byte_identical_to_the_cli(
    server: Server, spark: SparkSession, tmp_path: Path
) -> None:
    df = spark.createDataFrame(EVERY_ROWS, EVERY_TYPE)
    assert nats_sink.spark.sink_schema(df.schema) == EVERY_COLUMNS
    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(name="TYPES", subjects=["types.>"])
    await nc.close()
    written = await asyncio.to_thread(nats_sink.spark.write, df, options(server, "types.all"), batch_id=3)
    assert written == len(EVERY_ROWS)
    held = await stream_payloads(server, "TYPES")
    lines = [json.dumps(line) for line in EVERY_LINES]
    assert sorted(p for p, _ in held) == sorted(await cli_payloads(server, tmp_path, EVERY_COLUMNS, lines))


async def test_an_out_of_range_value_fails_its_task_with_invalid_row_after_the_rows_before_it(
    server: Server, spark: SparkSession
) -> None:
    """Row 5 of the one partition does not fit the integer column: every attempt of the task
    fails with the sink's InvalidRow naming `id`, and the five rows before it are in the stream once."""
    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(name="RANGE", subjects=["range.>"])
    await nc.close()
    df = spark.range(0, 20, numPartitions=1).select(F.when(F.col("id") == 5, F.lit(2**31)).otherwise(F.col("id")).alias("id"))
    with pytest.raises(Exception) as failed:
        await asyncio.to_thread(nats_sink.spark.write, df, options(server, "range.x"), batch_id=0, schema=[("id", "integer")])
    assert "InvalidRow: row 5, column `id`" in str(failed.value) and "2147483648" in str(failed.value)
    held = await stream_payloads(server, "RANGE")
    assert [json.loads(p) for p, _ in held] == [{"id": i} for i in range(5)]


async def test_a_refused_publish_fails_the_task_and_the_write_never_reports_success(
    server: Server, spark: SparkSession
) -> None:
    """A stream that refuses messages past 12 bytes (every row, with its id header): the task's
    flush fails with the sink's PublishError, Spark's retries fail the same way, and `write`
    raises instead of reporting success."""
    from nats.js.api import StreamConfig

    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(StreamConfig(name="FULL", subjects=["full.>"], max_msg_size=12))
    await nc.close()
    df = spark.range(0, 20, numPartitions=1)
    with pytest.raises(Exception) as failed:
        await asyncio.to_thread(nats_sink.spark.write, df, options(server, "full.x"), batch_id=0)
    assert "PublishError: full.x: the stream refused the message" in str(failed.value)
    assert await stream_payloads(server, "FULL") == []


def no_job_for(spark: SparkSession, call: Callable[[], Any], kind: type[BaseException] = nats_sink.SinkError) -> BaseException:
    """What `call` raises, having started no Spark job."""
    sc = spark.sparkContext
    group = f"refused-{uuid.uuid4()}"
    sc.setJobGroup(group, "a write that must be refused on the driver")
    try:
        with pytest.raises(kind) as refused:
            call()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    assert list(sc.statusTracker().getJobIdsForGroup(group)) == []
    return refused.value


def test_options_and_types_are_refused_on_the_driver_before_any_task(server: Server, spark: SparkSession) -> None:
    df = spark.range(3)
    bad = options(server, "x.y", connect_mode="sideways")
    refused = no_job_for(spark, lambda: nats_sink.spark.write(df, bad, batch_id=0))
    assert isinstance(refused, nats_sink.InvalidOptions) and [p.name for p in refused.problems] == ["connect_mode"]
    refused = no_job_for(spark, lambda: nats_sink.spark.writer(bad))
    assert isinstance(refused, nats_sink.InvalidOptions)
    # Without a sink_id of its own, two writers to one subject would share message ids.
    refused = no_job_for(spark, lambda: nats_sink.spark.write(df, server.options("x.y"), batch_id=0))
    assert isinstance(refused, nats_sink.InvalidOptions) and [p.name for p in refused.problems] == ["sink_id"]
    mapped = df.select(F.create_map(F.lit("k"), F.col("id")).alias("m"))
    refused = no_job_for(spark, lambda: nats_sink.spark.write(mapped, options(server, "x.y"), batch_id=0))
    assert isinstance(refused, nats_sink.InvalidSchema) and "column `m`" in str(refused) and "map" in str(refused)
    refused = no_job_for(spark, lambda: nats_sink.spark.write(df, options(server, "x.y"), batch_id=0, schema=[("other", "bigint")]))
    assert isinstance(refused, nats_sink.InvalidSchema) and "other" in str(refused)
    refused = no_job_for(spark, lambda: nats_sink.spark.write(df, options(server, "x.y"), batch_id=2**44), ValueError)
    assert "batch_id 17592186044416 is outside" in str(refused)


async def test_a_plan_a_retry_would_not_repeat_is_written_without_ids_and_warned_about(
    server: Server, spark: SparkSession
) -> None:
    """After repartition(n) the last stage reads a shuffle in arrival order; rand() differs per
    attempt: both warn and send no message ids. A sort within partitions settles the order."""
    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(name="PLANS", subjects=["plans.>"])
    await nc.close()
    shuffled = spark.range(0, 30, numPartitions=2).repartition(3)
    randomized = spark.range(0, 30, numPartitions=2).select((F.rand() * 0).cast("long").alias("id"))
    for subject, df in (("plans.shuffled", shuffled), ("plans.random", randomized)):
        with pytest.warns(nats_sink.spark.NondeterministicPlan, match="without message ids"):
            await asyncio.to_thread(nats_sink.spark.write, df, options(server, subject), batch_id=0)
    sorted_df = shuffled.sortWithinPartitions("id")
    with warnings.catch_warnings():
        warnings.simplefilter("error", nats_sink.spark.NondeterministicPlan)
        await asyncio.to_thread(nats_sink.spark.write, sorted_df, options(server, "plans.sorted"), batch_id=0)
    held = await stream_payloads(server, "PLANS")
    assert len(held) == 90
    assert sum(1 for _, i in held if i == "") == 60, "the two unstable plans' rows carry no id"
    assert {int(i.split(":")[1]) for _, i in held if i} == {0, 1, 2}, "the sorted one's do, by partition"
