"""Rows are never lost while a flush says OK (issue 26): a route lookup with no answer, a
cancelled write, a write of many megabytes, a lost core connection. Each against a real
nats-server, paused with SIGSTOP where the server must go silent."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Iterator

import nats
import pytest

import nats_sink
from conftest import Server, start_server, stop_server


async def add_stream(server: Server, name: str, subject: str) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(name=name, subjects=[subject])
    await nc.close()


async def stored(server: Server, name: str) -> int:
    nc = await nats.connect(f"nats://{server.address}")
    info = await nc.jetstream().stream_info(name)
    await nc.close()
    return info.state.messages


class Paused:
    """The server alive but silent (SIGSTOP) until the block ends (SIGCONT)."""

    def __init__(self, server: Server) -> None:
        self.pid = server.process.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


async def test_a_route_lookup_with_no_answer_fails_the_write_and_closes_the_sink(server: Server) -> None:
    await add_stream(server, "L1", "l1")
    sink = await nats_sink.open(server.options("l1", ack_timeout_ms="500"), [("id", "integer")])
    sink.begin_checkpoint(1)
    with Paused(server):
        with pytest.raises(nats_sink.TimeoutError, match="lookup of the stream"):
            await sink.write([(i,) for i in range(1000)])
    # The write's rows were not all sent: no later call may report success.
    with pytest.raises(nats_sink.Closed, match="failed earlier"):
        await sink.flush()
    with pytest.raises(nats_sink.Closed):
        await sink.write([(1,)])
    await sink.close()


async def test_a_cancelled_write_closes_the_sink(server: Server) -> None:
    await add_stream(server, "C1", "c1")
    sink = await nats_sink.open(server.options("c1", max_in_flight="16"), [("id", "integer")])
    await sink.write([(0,)])  # the route is known: the next write waits on acks, not on a lookup
    await sink.flush()
    with Paused(server):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sink.write([(i,) for i in range(1000)]), timeout=0.5)
    with pytest.raises(nats_sink.Closed, match="stopped part way"):
        await sink.flush()
    with pytest.raises(nats_sink.Closed):
        await sink.write([(1,)])
    await sink.close()


async def test_a_cancelled_flush_closes_the_sink(server: Server) -> None:
    await add_stream(server, "C2", "c2")
    sink = await nats_sink.open(server.options("c2"), [("id", "integer")])
    await sink.write([(0,)])
    await sink.flush()
    with Paused(server):
        await sink.write([(1,)])
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(sink.flush(), timeout=0.5)
    # The cancelled flush had taken the ack in hand: a second flush must not skip it.
    with pytest.raises(nats_sink.Closed, match="stopped part way"):
        await sink.flush()
    await sink.close()


def big_rows() -> Iterator[tuple[int, str]]:
    yield from ((i, "x" * 100_000) for i in range(30))  # 3 MB in rows of 100 kB
    yield from ((30 + i, "y") for i in range(120_000))  # and 120,000 small ones


async def test_a_write_of_many_megabytes_crosses_in_bounded_parts(server: Server) -> None:
    await add_stream(server, "B1", "b1")
    sink = await nats_sink.open(server.options("b1", sink_id="t26"), [("id", "integer"), ("s", "varchar")])
    sink.begin_checkpoint(1)
    await sink.write(list(big_rows()))
    await sink.flush()
    await sink.write([(-1, "after")])  # the sink is still whole
    await sink.flush()
    await sink.close()
    assert await stored(server, "B1") == 120_031
    nc = await nats.connect(f"nats://{server.address}")
    js = nc.jetstream()
    first, big_last, last = (await js.get_msg("B1", seq) for seq in (1, 30, 120_030))
    assert first.data == b'{"id":0,"s":"' + b"x" * 100_000 + b'"}'
    assert big_last.data.startswith(b'{"id":29,')
    assert last.data == b'{"id":120029,"s":"y"}'
    # Positions run on across the crossings: one id per row, in order.
    assert (first.headers or {}).get("Nats-Msg-Id") == "t26:1:0"
    assert (last.headers or {}).get("Nats-Msg-Id") == "t26:1:120029"
    await nc.close()


async def test_a_row_the_guest_refuses_after_many_crossings_is_counted_in_the_write(server: Server) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("b2.>", pending_msgs_limit=10_000)
    await nc.flush()
    sink = await nats_sink.open(server.options("b2.{k}"), [("id", "integer"), ("k", "varchar"), ("s", "varchar")])
    rows = [(i, "ok", "z" * 1000) for i in range(5000)] + [(5000, "a b", ""), (5001, "ok", "")]
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write(rows)  # some 5 MB: several crossings before the refused row
    assert (refused.value.row, refused.value.column) == (5000, "k")
    await sink.flush()  # a refused row does not fail the sink; the rows before it are delivered
    got = [(await sub.next_msg(timeout=5)).data for _ in range(5000)]
    assert got[-1] == b'{"id":4999,"k":"ok","s":"' + b"z" * 1000 + b'"}'
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.2)
    await sink.close()
    await nc.close()


async def test_a_lost_connection_on_core_nats_is_a_connection_error(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        sink = await nats_sink.open(server.options("core.lost"), [("id", "integer")])
        await sink.write([(1,)])
        await sink.flush()
        await sink.write([(2,), (3,)])
        stop_server(server)  # the connection breaks with these rows unconfirmed
        server = start_server(tmp_path, port=server.port)
        with pytest.raises(nats_sink.ConnectionError, match="dropped since the last flush"):
            await sink.flush()
        await sink.close()
    finally:
        stop_server(server)
