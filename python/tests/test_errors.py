"""Every sink-error variant, raised as its exception against a real nats-server."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import nats
import pytest

import nats_sink
from conftest import Paused, Server, free_port, start_server, stop_server


async def test_invalid_options_lists_every_problem() -> None:
    with pytest.raises(nats_sink.InvalidOptions) as e:
        await nats_sink.open({"server_url": "127.0.0.1", "subjectt": "a", "connect_mode": "plain"}, [("id", "integer")])
    names = {p.name for p in e.value.problems}
    assert {"server_url", "subjectt", "subject"} <= names
    assert any("did you mean `subject`" in p.message for p in e.value.problems)
    assert nats_sink.validate({"server_url": "127.0.0.1:4222", "subject": "a", "connect_mode": "plain"}) == []
    assert {o["name"] for o in nats_sink.describe()} >= {"server_url", "subject", "connect_mode", "dedupe"}


async def test_invalid_schema_in_the_guests_words(server: Server) -> None:
    with pytest.raises(nats_sink.InvalidSchema, match="did you mean `integer`"):
        await nats_sink.open(server.options("e.a"), [("id", "integr")])
    with pytest.raises(nats_sink.InvalidSchema, match="more than once"):
        await nats_sink.open(server.options("e.a"), [("id", "integer"), ("id", "varchar")])


async def test_invalid_row_publishes_the_rows_before_it_and_none_after(server: Server) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    sub = await nc.subscribe("e.rows")
    await nc.flush()
    sink = await nats_sink.open(server.options("e.rows"), [("id", "integer"), ("addr", "struct<zip integer>")])
    with pytest.raises(nats_sink.InvalidRow) as e:
        await sink.write([(1, {"zip": 1}), (2, None), (3, {"zip": 1.5}), (4, None)])
    assert (e.value.row, e.value.column) == (2, "addr.zip")
    assert "expected a 32-bit integer, got a number 1.5" in e.value.message
    with pytest.raises(nats_sink.InvalidRow, match="3000000000"):
        await sink.write([{"id": 3_000_000_000}])  # out of range: refused, never wrapped
    with pytest.raises(nats_sink.InvalidRow, match="unknown column `idd`; did you mean `id`"):
        await sink.write([{"idd": 1}])
    await sink.flush()  # a refused row does not fail the sink
    got = [(await sub.next_msg(timeout=5)).data for _ in range(2)]
    assert got == [b'{"addr":{"zip":1},"id":1}', b'{"addr":null,"id":2}']  # keys sorted, as by default
    with pytest.raises(nats.errors.TimeoutError):
        await sub.next_msg(timeout=0.2)
    await sink.close()
    await nc.close()


async def test_invalid_row_from_the_guest(server: Server) -> None:
    # The guest refuses a row whose value cannot fill the subject template.
    sink = await nats_sink.open(server.options("e.{region}"), [("region", "varchar")])
    with pytest.raises(nats_sink.InvalidRow) as e:
        await sink.write([{"region": "eu"}, {"region": "a b"}])
    assert (e.value.row, e.value.column) == (1, "region")
    await sink.close()


async def test_connection_error_when_nothing_listens() -> None:
    port = free_port()
    with pytest.raises(nats_sink.ConnectionError):
        await nats_sink.open({"server_url": f"127.0.0.1:{port}", "subject": "a", "connect_mode": "plain",
                              "connect_timeout_ms": "500"}, [("id", "integer")])


async def test_connection_error_on_wrong_password(tmp_path: Path) -> None:
    server = start_server(tmp_path, 'authorization { user: "u", password: "right" }\n')
    try:
        started = time.monotonic()
        with pytest.raises(nats_sink.ConnectionError, match="(?i)authorization"):
            await nats_sink.open({"server_url": server.address, "subject": "a", "connect_mode": "user_and_password",
                                  "username": "u", "password": "wrong", "connect_timeout_ms": "30000"}, [("id", "integer")])
        # A refused login fails at once rather than being retried until the connect timeout.
        assert time.monotonic() - started < 15
        sink = await nats_sink.open({"server_url": server.address, "subject": "a", "connect_mode": "user_and_password",
                                     "username": "u", "password": "right"}, [("id", "integer")])
        await sink.write([(1,)])
        await sink.flush()
        await sink.close()
    finally:
        stop_server(server)


async def test_token_auth(tmp_path: Path) -> None:
    server = start_server(tmp_path, 'authorization { token: "s3cret" }\n')
    try:
        sink = await nats_sink.open({"server_url": server.address, "subject": "a", "connect_mode": "token",
                                     "token": "s3cret"}, [("id", "integer")])
        await sink.write([(1,)])
        await sink.flush()
        await sink.close()
    finally:
        stop_server(server)


async def test_a_row_over_max_payload_is_an_invalid_row_after_the_rows_before_it(tmp_path: Path) -> None:
    server = start_server(tmp_path, "max_payload: 256\n")
    try:
        nc = await nats.connect(f"nats://{server.address}")
        sub = await nc.subscribe("e.big")
        await nc.flush()
        sink = await nats_sink.open(server.options("e.big"), [("s", "varchar")])
        with pytest.raises(nats_sink.InvalidRow, match="max_payload") as refused:
            await sink.write([{"s": "small"}, {"s": "x" * 1000}])
        assert refused.value.row == 1
        await sink.flush()  # the row before the bad one is still delivered and confirmed
        assert (await sub.next_msg(timeout=5)).data == b'{"s":"small"}'
        await sink.close()
        await nc.close()
    finally:
        stop_server(server)


async def test_publish_error_without_permission(tmp_path: Path) -> None:
    server = start_server(tmp_path, 'authorization { users: [{user: "u", password: "p", permissions: {publish: {deny: ["e.>"]}}}] }\n')
    try:
        sink = await nats_sink.open({"server_url": server.address, "subject": "e.denied", "connect_mode": "user_and_password",
                                     "username": "u", "password": "p"}, [("id", "integer")])
        await sink.write([(1,)])
        with pytest.raises(nats_sink.PublishError, match="(?i)permissions violation"):
            await sink.flush()
        await sink.close()
    finally:
        stop_server(server)


async def test_timeout_when_the_server_stops_answering(server: Server) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(name="T", subjects=["e.t"])
    await nc.close()
    sink = await nats_sink.open(server.options("e.t", ack_timeout_ms="200", **{"retry.max_elapsed_ms": "600",
                                "retry.initial_backoff_ms": "50", "retry.max_backoff_ms": "100"}), [("id", "integer")])
    await sink.write([(1,)])
    await sink.flush()
    with Paused(server):  # alive, but silent: no ack will come
        await sink.write([(2,)])
        # Either the ack's retry budget runs out, or (on a loaded machine, when the ack wait and
        # the round trip race) the flush's round trip goes unanswered: a timeout both ways.
        with pytest.raises(nats_sink.TimeoutError, match="retry budget|flush round trip") as timeout:
            await sink.flush()
    assert timeout.value.core_in_doubt is False  # a JetStream message, resent within the budget
    with pytest.raises(nats_sink.Closed, match="failed earlier") as closed:
        await sink.flush()
    assert (closed.value.after, closed.value.core_in_doubt) == ("timeout", False)
    await sink.close()


async def test_closed_after_close(server: Server) -> None:
    sink = await nats_sink.open(server.options("e.c"), [("id", "integer")])
    await sink.close()
    with pytest.raises(nats_sink.Closed) as closed:
        await sink.write([(1,)])
    assert closed.value.after == "close"
    with pytest.raises(nats_sink.Closed):
        sink.begin_checkpoint(1)
