"""The Spark type table and the DayTimeInterval conversion, without a Spark session."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyspark.sql import types as T  # the spark extra (./setup.sh installs it)

import nats_sink
from nats_sink.spark_types import sink_type, with_intervals

DAY_US = 86_400_000_000


def test_nested_types_and_names_that_need_quotes() -> None:
    inner = T.StructType([T.StructField('say "hi"', T.StringType()), T.StructField("n_1", T.ArrayType(T.ByteType()))])
    assert sink_type(T.ArrayType(inner), "c") == 'struct<"say ""hi""" varchar, n_1 smallint[]>[]'
    assert sink_type(T.DecimalType(10, 2), "c") == "numeric"


@pytest.mark.parametrize("spark_type, named", [
    (T.MapType(T.StringType(), T.LongType()), "map"), (T.YearMonthIntervalType(), "interval year to month"),
    (T.NullType(), "void"), (T.CalendarIntervalType(), "interval"), (T.VariantType(), "variant"),
])  # fmt: skip
def test_types_without_a_mapping_are_refused_naming_the_column(spark_type: T.DataType, named: str) -> None:
    with pytest.raises(nats_sink.InvalidSchema, match=f"column `deep`: Spark type {named}"):
        sink_type(T.ArrayType(T.StructType([T.StructField("x", spark_type)])), "deep")


def test_day_time_intervals_become_days_and_the_time_left_with_one_sign() -> None:
    micros = [25 * DAY_US + 31_063_000_005, -3 * DAY_US - 3_600_000_000, -1, None]
    durations = pa.array(micros, pa.duration("us"))
    batch = pa.record_batch({
        "iv": durations,
        "l": pa.ListArray.from_arrays(pa.array([0, 2, 4, 4, 4], pa.int32()), durations),
        "st": pa.StructArray.from_arrays([durations, pa.array(["a", "b", "c", "d"])], names=["gap", "k"]),
        "keep": pa.array([1, 2, 3, 4]),
    })  # fmt: skip
    out = with_intervals(batch.slice(0, 2))
    days = [pa.MonthDayNano([0, 25, 31_063_000_005_000]), pa.MonthDayNano([0, -3, -3_600_000_000_000])]
    assert out.column("iv").to_pylist() == days
    assert out.column("l").to_pylist() == [days, [pa.MonthDayNano([0, 0, -1000]), None]]
    assert out.column("st").to_pylist() == [{"gap": d, "k": k} for d, k in zip(days, "ab")]
    assert out.column("keep").to_pylist() == [1, 2] and out.schema.field("keep").type == pa.int64()
    plain = batch.select(["keep"])
    assert with_intervals(plain) is plain  # nothing to convert: the batch itself


def test_a_dataframe_whose_plan_cannot_be_read_counts_as_unstable() -> None:
    """A Spark Connect DataFrame has no JVM plan on the client: no ids unless the caller asserts them."""
    from nats_sink.spark_plan import unstable_order

    class ConnectFrame:  # what the check sees of pyspark.sql.connect's DataFrame: no _jdf
        columns = ["id"]

    assert "Spark Connect" in (unstable_order(ConnectFrame()) or "")


@pytest.mark.parametrize("batch_id", [True, 1.5, "1", None])
def test_a_batch_id_that_is_not_an_integer_is_refused(batch_id: object) -> None:
    from nats_sink.spark import checkpoint_id

    with pytest.raises(ValueError, match="batch_id"):
        checkpoint_id(batch_id, 0)  # type: ignore[arg-type]
