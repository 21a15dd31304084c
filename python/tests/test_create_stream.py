"""`allow_create_stream` (RisingWave's key, acted on by us) through the Python host: the stream
the guest names is created with its limits before the first publish, and reused after."""

from __future__ import annotations

import hashlib

import nats

import nats_sink
from conftest import Server

LIMITS = {"max_bytes": "1048576", "max_messages": "100", "max_messages_per_subject": "50",
          "max_consumers": "3", "max_message_size": "4096"}


def stream_name(subject: str) -> str:
    # The rule docs/delivery.md states: `nats-sink-` and 16 hex digits of SHA-256 over the captured subject.
    return "nats-sink-" + hashlib.sha256(subject.encode()).hexdigest()[:16]


async def sink_rows(options: dict[str, str], rows: list[dict], checkpoint: int = 1) -> None:
    sink = await nats_sink.open(options, [("id", "integer"), ("region", "varchar")])
    sink.begin_checkpoint(checkpoint)
    await sink.write(rows)
    await sink.flush()
    await sink.close()


async def test_the_stream_is_created_with_its_limits_and_reused(server: Server) -> None:
    options = server.options("py.{region}", allow_create_stream="true", **LIMITS)
    await sink_rows(options, [{"id": 1, "region": "eu"}, {"id": 2, "region": "us"}])
    # Another checkpoint: the same one would repeat message ids the stream already holds.
    await sink_rows(options, [{"id": 3, "region": "ap"}], checkpoint=2)

    nc = await nats.connect(f"nats://{server.address}")
    jsm = nc.jsm()
    streams = await jsm.streams_info()
    assert [s.config.name for s in streams] == [stream_name("py.*")]
    config = streams[0].config
    assert config.subjects == ["py.*"]
    assert (config.max_bytes, config.max_msgs, config.max_msgs_per_subject, config.max_consumers,
            config.max_msg_size) == (1048576, 100, 50, 3, 4096)
    assert streams[0].state.messages == 3
    await nc.close()


async def test_without_allow_create_stream_nothing_is_created(server: Server) -> None:
    await sink_rows(server.options("py.plain", **LIMITS), [{"id": 1, "region": "eu"}])
    nc = await nats.connect(f"nats://{server.address}")
    assert await nc.jsm().streams_info() == []
    await nc.close()
