"""Rows are never lost while a flush says OK (issue 26): a route lookup with no answer, a
cancelled write, a write of many megabytes, a lost core connection. Each against a real
nats-server, paused with SIGSTOP where the server must go silent."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

import nats_sink
from conftest import Paused, Server, start_server, stop_server


async def add_stream(server: Server, name: str, subject: str) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(name=name, subjects=[subject])
    await nc.close()


async def stored(server: Server, name: str) -> int:
    nc = await nats.connect(f"nats://{server.address}")
    info = await nc.jetstream().stream_info(name)
    await nc.close()
    return info.state.messages


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
    with pytest.raises(nats_sink.Closed, match="stopped part way") as closed:
        await sink.flush()
    assert closed.value.after == "interrupted"
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


async def test_a_write_of_many_megabytes_crosses_in_bounded_parts(server: Server) -> None:
    await add_stream(server, "B1", "b1")
    sink = await nats_sink.open(server.options("b1", sink_id="t26"), [("id", "integer"), ("s", "varchar")])
    sink.begin_checkpoint(1)
    await sink.write([(i, "x" * 100_000) for i in range(30)])  # 3 MB: one crossing trapped
    await sink.flush()
    await sink.write([(30, "after")])  # the sink is still whole
    await sink.flush()
    await sink.close()
    assert await stored(server, "B1") == 31
    nc = await nats.connect(f"nats://{server.address}")
    js = nc.jetstream()
    first, last = await js.get_msg("B1", 1), await js.get_msg("B1", 30)
    assert first.data == b'{"id":0,"s":"' + b"x" * 100_000 + b'"}'
    assert last.data == b'{"id":29,"s":"' + b"x" * 100_000 + b'"}'
    # Positions run on across the crossings: one id per row, in order.
    assert [(m.headers or {}).get("Nats-Msg-Id") for m in (first, last)] == ["t26:1:0", "t26:1:29"]
    await nc.close()


async def test_a_write_of_120000_small_rows_is_delivered_whole(server: Server) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    received: list[bytes] = []
    all_in = asyncio.Event()

    async def count(msg: Msg) -> None:
        received.append(msg.data)
        if len(received) == 120_000:
            all_in.set()

    await nc.subscribe("b3", cb=count, pending_msgs_limit=-1, pending_bytes_limit=-1)
    await nc.flush()
    sink = await nats_sink.open(server.options("b3"), [("id", "integer"), ("s", "varchar")])
    await sink.write([(i, "y") for i in range(120_000)])  # one crossing of these trapped
    await sink.flush()
    await asyncio.wait_for(all_in.wait(), timeout=60)
    assert received[0] == b'{"id":0,"s":"y"}' and received[-1] == b'{"id":119999,"s":"y"}'
    await sink.close()
    await nc.close()


async def test_a_row_too_large_for_one_crossing_is_refused_not_trapped(tmp_path: Path) -> None:
    server = start_server(tmp_path, "max_payload: 8388608\n")
    try:
        nc = await nats.connect(f"nats://{server.address}")
        sub = await nc.subscribe("b4")
        await nc.flush()
        sink = await nats_sink.open(server.options("b4"), [("id", "integer"), ("s", "varchar")])
        with pytest.raises(nats_sink.InvalidRow, match="too large for the Python host") as refused:
            await sink.write([(0, "a" * 1_900_000), (1, "b" * 3_000_000), (2, "c")])
        assert (refused.value.row, refused.value.column) == (1, "")
        await sink.write([(3, "d")])  # the sink is whole
        await sink.flush()
        assert len((await sub.next_msg(timeout=5)).data) == 1_900_000 + len('{"id":0,"s":""}')
        assert (await sub.next_msg(timeout=5)).data == b'{"id":3,"s":"d"}'
        await sink.close()
        await nc.close()
    finally:
        stop_server(server)


async def test_a_row_over_max_payload_is_refused_before_it_crosses(server: Server) -> None:
    sink = await nats_sink.open(server.options("b5"), [("s", "varchar")])
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write([("x" * 5_000_000,)])
    assert refused.value.message == "its values alone are 5000000 bytes, over the server's max_payload of 1048576 bytes"
    await sink.write([("y",)])
    await sink.flush()
    await sink.close()


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
        sink = await nats_sink.open(server.options("core.lost", ack_timeout_ms="1000"), [("id", "integer")])
        await sink.write([(1,)])
        await sink.flush()
        await sink.write([(2,), (3,)])
        stop_server(server)  # the connection breaks with these rows unconfirmed
        server = start_server(tmp_path, port=server.port)
        with pytest.raises(nats_sink.ConnectionError, match="dropped since the last flush") as lost:
            await sink.flush()
        assert lost.value.core_in_doubt is True  # only a replay can deliver rows 2 and 3
        with pytest.raises(nats_sink.Closed) as closed:
            await sink.flush()
        assert (closed.value.after, closed.value.core_in_doubt) == ("connection", True)
        await sink.close()
    finally:
        stop_server(server)


# Run apart, so its peak memory is its own: rows of 100 kB, 30 MB in all.
_MEMORY_PROBE = """
import asyncio, resource, sys
import nats_sink

async def main():
    sink = await nats_sink.open({"server_url": sys.argv[1], "subject": "mem", "connect_mode": "plain"},
                                [("id", "integer"), ("s", "varchar")])
    rows = [(i, "x" * 100_000) for i in range(300)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await sink.write(rows)
    await sink.flush()
    await sink.close()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)  # KiB

asyncio.run(main())
"""


async def test_a_large_write_needs_memory_of_a_small_multiple_of_its_data(server: Server) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(nats_sink.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    probe = await asyncio.create_subprocess_exec(sys.executable, "-c", _MEMORY_PROBE, server.address, env=env,
                                                 stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(probe.communicate(), timeout=300)
    assert probe.returncode == 0, err.decode()
    grew_mb = int(out) / 1024
    data_mb = 300 * 100_000 / 1e6
    assert grew_mb < 2.5 * data_mb, f"the write of {data_mb:g} MB grew the process by {grew_mb:.0f} MB"
