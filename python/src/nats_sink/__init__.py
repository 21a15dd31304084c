"""nats-sink from Python: the nats-sink WebAssembly component on wasmtime, NATS through nats-py.

    sink = await nats_sink.open({"server_url": "127.0.0.1:4222", "subject": "orders",
                                 "connect_mode": "plain"}, [("id", "integer"), ("tags", "varchar[]")])
    sink.begin_checkpoint(7)
    await sink.write([{"id": 1, "tags": ["a"]}, (2, ["b"])])
    await sink.flush()
    await sink.write_arrow(polars_dataframe)  # or a pyarrow Table: `pip install nats-sink[arrow]`
    await sink.flush()
    await sink.close()

An upsert sink (`type = 'upsert'`, `primary_key`, `kv.bucket`) takes changes:
    await sink.write_changes([("insert", row), (Op.DELETE, old_row)])
"""

from .errors import (
    Closed,
    DeliveryError,
    ComponentError,
    ConnectionError,
    CpuLimit,
    InvalidOptions,
    InvalidRow,
    InvalidSchema,
    OptionProblem,
    PublishError,
    SinkError,
    TimeoutError,
)
from .changes import Op
from .arrow_input import ArrowUnavailable, NotArrow
from .sandbox import Limits
from .sink import Sink, describe, open, validate

__all__ = [
    "open", "describe", "validate", "Sink", "Limits", "Op",
    "SinkError", "InvalidOptions", "OptionProblem", "InvalidSchema", "InvalidRow",
    "DeliveryError", "ConnectionError", "PublishError", "TimeoutError", "Closed", "ComponentError", "CpuLimit", "NotArrow", "ArrowUnavailable",
]  # fmt: skip
