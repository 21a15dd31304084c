"""The example dataset through the Python host and through the CLI into one JetStream stream:
every one of the 3,000 payloads byte-identical to its CLI twin."""

from __future__ import annotations

import asyncio
import json
import time

import nats

import nats_sink
from conftest import REPO, Server, run_cli

SCHEMA = REPO / "examples" / "all_types.schema.json"
ROWS = REPO / "examples" / "all_types.jsonl"


async def read_subject(js, subject: str, count: int) -> list[tuple[bytes, dict]]:
    sub = await js.subscribe(subject, ordered_consumer=True)
    out: list[tuple[bytes, dict]] = []
    while len(out) < count:
        m = await sub.next_msg(timeout=10)
        out.append((m.data, m.headers or {}))
    await sub.unsubscribe()
    return out


async def test_example_dataset_identical_through_python_and_cli(server: Server) -> None:
    nc = await nats.connect(f"nats://{server.address}")
    js = nc.jetstream()
    await js.add_stream(name="ALL", subjects=["all.>"])

    columns = [(c["name"], c["type"]) for c in json.loads(SCHEMA.read_text())["columns"]]
    lines = ROWS.read_text().splitlines()
    assert len(lines) == 3000
    started = time.monotonic()
    sink = await nats_sink.open(server.options("all.py"), columns)
    for checkpoint, start in enumerate(range(0, len(lines), 1024)):
        sink.begin_checkpoint(checkpoint)
        await sink.write(json.loads(line) for line in lines[start : start + 1024])
        await sink.flush()
    await sink.close()
    print(f"python host: 3000 rows in {time.monotonic() - started:.2f} s")

    cli = await asyncio.to_thread(run_cli, SCHEMA, ROWS, server.options("all.cli"))
    assert cli.returncode == 0, cli.stderr

    info = await js.stream_info("ALL")
    assert info.state.messages == 6000
    python = await read_subject(js, "all.py", 3000)
    via_cli = await read_subject(js, "all.cli", 3000)
    await nc.close()

    differing = [i for i, (p, c) in enumerate(zip(python, via_cli)) if p[0] != c[0]]
    assert not differing, f"{len(differing)} payloads differ, first row {differing[0]}:\n{python[differing[0]][0]!r}\n{via_cli[differing[0]][0]!r}"
    ids = [h.get("Nats-Msg-Id") for _, h in python]
    assert len(set(ids)) == 3000 and all(ids), "every row carries its own message id"
