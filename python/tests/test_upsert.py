"""Upsert sinks from Python (issue 30): a changelog keeps a NATS KV bucket equal to the final
table through a frozen server and a restart; a key's next value waits for its earlier one's
ack; the bucket is found, created or refused as the Rust host does. Against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import nats
import nats.js
import pytest

import nats_sink
from conftest import Paused, Server, run_cli, start_server, stop_server

SCHEMA = [("id", "integer"), ("v", "varchar")]


def upsert_options(server: Server, bucket: str, **extra: str) -> dict[str, str]:
    return {"server_url": server.address, "connect_mode": "plain", "type": "upsert", "primary_key": "id",
            "kv.bucket": bucket, "sink_id": "up", **extra}


async def bucket_contents(server: Server, bucket: str) -> dict[str, bytes]:
    """Every live key of the bucket with its value.

    The keys come from the stream's subjects, not from nats-py's `kv.keys()`: its watcher can
    signal "no more keys" before the first one when every entry was delivered before its
    consumer info returned, which reads a full bucket as empty.
    """
    nc = await nats.connect(f"nats://{server.address}")
    try:
        js = nc.jetstream()
        kv = await js.key_value(bucket)
        prefix = f"$KV.{bucket}."
        info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
        contents: dict[str, bytes] = {}
        for subject in (info.state.subjects or {}):
            key = subject[len(prefix):]
            try:
                contents[key] = (await kv.get(key)).value or b""
            except nats.js.errors.KeyNotFoundError:  # deleted or purged: not live
                pass
        return contents
    finally:
        await nc.close()


def changelog(keys: int, changes: int, seed: int) -> tuple[list[tuple[str, tuple[int, str]]], dict[int, str]]:
    """Inserts, update pairs and deletes over `keys` keys, and the table they leave."""
    rng = random.Random(seed)
    table: dict[int, str] = {}
    log: list[tuple[str, tuple[int, str]]] = []
    for n in range(changes):
        key = rng.randrange(keys)
        value = f"v{n}"
        if key not in table:
            log.append(("insert", (key, value)))
            table[key] = value
        elif rng.random() < 0.25:
            log.append(("delete", (key, table.pop(key))))
        else:
            log.append(("update_delete", (key, table[key])))
            log.append(("update_insert", (key, value)))
            table[key] = value
    return log, table


async def test_a_changelog_through_a_frozen_server_and_a_restart_leaves_the_final_table(tmp_path: Path) -> None:
    log, table = changelog(keys=1000, changes=4000, seed=30)
    server = start_server(tmp_path)
    try:
        options = upsert_options(server, "FINAL", allow_create_stream="true", ack_timeout_ms="300",
                                 **{"retry.max_attempts": "1000"})
        sink = await nats_sink.open(options, SCHEMA)
        parts: list[list[tuple[str, tuple[int, str]]]] = [[]]
        for change in log:  # writes of some 500 changes, an update pair never split across two
            if len(parts[-1]) >= 500 and change[0] != "update_insert":
                parts.append([])
            parts[-1].append(change)
        for checkpoint, part in enumerate(parts):
            sink.begin_checkpoint(checkpoint + 1)
            if checkpoint == 2:
                # Acks held back past ack_timeout_ms: every message in flight is resent.
                with Paused(server):
                    write = asyncio.ensure_future(sink.write_changes(part))
                    await asyncio.sleep(0.9)  # three ack timeouts, so resends happen
                await write
            elif checkpoint == 5:
                await sink.write_changes(part)
                stop_server(server)  # the connection breaks with these unconfirmed
                server = start_server(tmp_path, port=server.port)
            else:
                await sink.write_changes(part)
            await sink.flush()
        await sink.close()
        stored = await bucket_contents(server, "FINAL")
        expected = {str(k): json.dumps({"id": k, "v": v}, separators=(",", ":")).encode() for k, v in table.items()}
        assert stored == expected
    finally:
        stop_server(server)


async def test_a_keys_next_value_waits_until_the_earlier_one_is_acked(server: Server, monkeypatch: Any) -> None:
    sent: list[tuple[str, bytes]] = []
    publish = nats.js.JetStreamContext.publish

    async def recording(self: Any, subject: str, payload: bytes = b"", *args: Any, **kwargs: Any) -> Any:
        sent.append((subject, payload))
        return await publish(self, subject, payload, *args, **kwargs)

    monkeypatch.setattr(nats.js.JetStreamContext, "publish", recording)
    sink = await nats_sink.open(upsert_options(server, "ORDER", allow_create_stream="true",
                                               ack_timeout_ms="5000"), SCHEMA)
    sink.begin_checkpoint(1)
    with Paused(server):
        await sink.write([(1, "first"), (2, "other"), (1, "second")])
        for _ in range(200):  # the event loop runs every send it may
            await asyncio.sleep(0.005)
        # Key 2 goes out beside key 1's first value; key 1's second is held back.
        assert [s for s, _ in sent] == ["$KV.ORDER.1", "$KV.ORDER.2"]
    await sink.flush()
    assert [s for s, _ in sent] == ["$KV.ORDER.1", "$KV.ORDER.2", "$KV.ORDER.1"]
    await sink.close()
    assert (await bucket_contents(server, "ORDER"))["1"] == b'{"id":1,"v":"second"}'


async def test_a_missing_bucket_is_refused_and_allow_create_stream_creates_it(server: Server) -> None:
    with pytest.raises(nats_sink.PublishError, match="KV bucket `NOPE` does not exist"):
        await nats_sink.open(upsert_options(server, "NOPE"), SCHEMA)
    sink = await nats_sink.open(upsert_options(server, "MADE", allow_create_stream="true", **{"kv.history": "5"}), SCHEMA)
    await sink.close()
    nc = await nats.connect(f"nats://{server.address}")
    info = await nc.jetstream().stream_info("KV_MADE")
    await nc.close()
    c = info.config
    assert (c.subjects, c.max_msgs_per_subject, c.allow_rollup_hdrs, c.deny_delete, c.allow_direct, c.discard) == (
        ["$KV.MADE.>"], 5, True, True, True, "new")


async def test_a_stream_named_as_the_bucket_that_does_not_capture_its_keys_is_refused(server: Server) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(name="KV_WRONG", subjects=["elsewhere.>"])
    await nc.close()
    with pytest.raises(nats_sink.PublishError, match=r"does not capture `\$KV.WRONG.>`"):
        await nats_sink.open(upsert_options(server, "WRONG", allow_create_stream="true"), SCHEMA)


async def test_a_key_no_kv_key_can_hold_is_refused_or_base64url_encoded(server: Server) -> None:
    sink = await nats_sink.open(upsert_options(server, "KEYS", allow_create_stream="true",
                                               primary_key="v"), SCHEMA)
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write([(1, "fine"), (2, "a b"), (3, "never")])
    assert refused.value.row == 1 and refused.value.column == "v"
    await sink.flush()
    await sink.close()
    assert await bucket_contents(server, "KEYS") == {"fine": b'{"id":1,"v":"fine"}'}
    sink = await nats_sink.open(upsert_options(server, "KEYS", primary_key="v", key_encoding="base64url"), SCHEMA)
    await sink.write([(2, "a b")])
    await sink.flush()
    await sink.close()
    assert (await bucket_contents(server, "KEYS"))["YSBi"] == b'{"id":2,"v":"a b"}'


async def test_a_change_that_is_not_an_op_and_a_row_is_refused_naming_it(server: Server) -> None:
    sink = await nats_sink.open(upsert_options(server, "BADOPS", allow_create_stream="true"), SCHEMA)
    with pytest.raises(nats_sink.InvalidRow, match="'upsert' is not one of") as refused:
        await sink.write_changes([("insert", (1, "a")), ("upsert", (2, "b"))])
    assert refused.value.row == 1
    with pytest.raises(nats_sink.InvalidRow) as refused:  # the guest's own refusal: a lone update-insert
        await sink.write_changes([("insert", (3, "c")), ("update_insert", (4, "d"))])
    assert refused.value.row == 1
    await sink.flush()
    await sink.close()
    assert set(await bucket_contents(server, "BADOPS")) == {"1", "3"}


async def test_an_append_only_sink_refuses_a_delete(server: Server) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    await nc.jetstream().add_stream(name="AO", subjects=["ao"])
    await nc.close()
    sink = await nats_sink.open(server.options("ao"), SCHEMA)
    with pytest.raises(nats_sink.InvalidRow) as refused:
        await sink.write_changes([(nats_sink.Op.INSERT, (1, "a")), (nats_sink.Op.DELETE, (1, "a"))])
    assert refused.value.row == 1
    await sink.close()


async def test_an_update_pair_split_by_the_crossing_bounds_stays_together(server: Server) -> None:
    # 4096 rows fill a crossing: the pair at 4095/4096 would straddle two guest calls.
    changes: list[tuple[str, Any]] = [("insert", (i, "x")) for i in range(4095)]
    changes += [("update_delete", (7, "x")), ("update_insert", (7, "moved"))]
    sink = await nats_sink.open(upsert_options(server, "PAIR", allow_create_stream="true"), SCHEMA)
    await sink.write_changes(changes)
    await sink.flush()
    await sink.close()
    assert (await bucket_contents(server, "PAIR"))["7"] == b'{"id":7,"v":"moved"}'


async def test_write_arrow_takes_the_op_column(server: Server) -> None:
    pa = pytest.importorskip("pyarrow")
    table = pa.table({"id": pa.array([1, 2, 1], pa.int32()), "v": ["a", "b", "a"],
                      "__op": pa.array([1, 1, 2], pa.int16())})
    sink = await nats_sink.open(upsert_options(server, "ARROW", allow_create_stream="true"), SCHEMA)
    await sink.write_arrow(table)
    await sink.flush()
    await sink.close()
    assert await bucket_contents(server, "ARROW") == {"2": b'{"id":2,"v":"b"}'}


async def test_write_arrow_never_splits_an_update_pair_across_its_crossings(server: Server) -> None:
    """20,000 updates, each an update-delete then its update-insert, over many crossings and
    over record batches that end between the two rows: every pair lands whole."""
    pa = pytest.importorskip("pyarrow")
    n = 40_000
    table = pa.table({"id": pa.array([i // 2 for i in range(n)], pa.int32()),
                      "v": [("old" if i % 2 == 0 else "new") + "x" * (i * 7919 % 400) for i in range(n)],
                      "__op": pa.array([4 if i % 2 == 0 else 3 for i in range(n)], pa.int16())})
    sink = await nats_sink.open(upsert_options(server, "PAIRS", allow_create_stream="true"), SCHEMA)
    await sink.write_arrow(table)
    await sink.write_arrow(pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=999)))
    await sink.flush()
    await sink.close()
    stored = await bucket_contents(server, "PAIRS")
    assert len(stored) == n // 2
    new = {i // 2: b'{"id":%d,"v":"new%s"}' % (i // 2, b"x" * (i * 7919 % 400)) for i in range(1, n, 2)}
    assert {int(k): v for k, v in stored.items()} == new


async def test_an_update_whose_insert_is_too_large_for_one_call_is_refused_at_its_delete(tmp_path: Path) -> None:
    """The pair stands or falls together: refused at the update-delete, the rows before it
    stored (a server whose max_payload would take the row, so only the host's bound refuses)."""
    pa = pytest.importorskip("pyarrow")
    from nats_sink import arrow_crossings

    big = "x" * (arrow_crossings.ROW_MAX_BYTES + 1)
    server = start_server(tmp_path, "max_payload: 8388608\n")
    try:
        table = pa.table({"id": pa.array([1, 2, 2], pa.int32()), "v": ["a", "old", big],
                          "__op": pa.array([1, 4, 3], pa.int16())})
        sink = await nats_sink.open(upsert_options(server, "BIGPAIR", allow_create_stream="true"), SCHEMA)
        with pytest.raises(nats_sink.InvalidRow, match="the update is too large") as refused:
            await sink.write_arrow(table)
        assert refused.value.row == 1
        await sink.flush()
        await sink.close()
        assert await bucket_contents(server, "BIGPAIR") == {"1": b'{"id":1,"v":"a"}'}
    finally:
        stop_server(server)


async def test_the_values_are_the_bytes_the_rust_cli_puts(server: Server, tmp_path: Path) -> None:
    rows = [{"id": i, "v": f"é{i}\u2028\"{i / 3}"} for i in range(50)]
    schema, data = tmp_path / "schema.json", tmp_path / "rows.jsonl"
    schema.write_text(json.dumps({"columns": [{"name": n, "type": t} for n, t in SCHEMA]}))
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_cli(schema, data, upsert_options(server, "FROMCLI", allow_create_stream="true"))
    assert done.returncode == 0, done.stderr
    sink = await nats_sink.open(upsert_options(server, "FROMPY", allow_create_stream="true"), SCHEMA)
    await sink.write(rows)
    await sink.flush()
    await sink.close()
    from_cli, from_py = await bucket_contents(server, "FROMCLI"), await bucket_contents(server, "FROMPY")
    assert len(from_py) == 50 and from_py == from_cli


