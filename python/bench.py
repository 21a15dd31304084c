"""Throughput of the Python host beside the CLI's, on the same rows, in paired rounds.

Each round starts a nats-server, then sinks the example dataset (3,000 rows of every type,
repeated BENCH_PYTHON_REPEAT times, default 10, so that start-up is not most of what is timed)
through the CLI (the release build `just bench` makes), through the Python host with rows of
Python values (`write`), and through the Python host with the same rows as one pyarrow table
(`write_arrow`, a slice per batch), to core subjects, in batches of 1,024 with a flush per batch.
The figures are python / CLI and pyarrow / CLI rows per second per round; the report gives each
median with its min-max spread, flags a spread past +-15%, and writes target/bench-python.json.
The rows are read (and the table built), and both compile caches warmed, before the clocks
start. Not a test: `just bench` runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The package from this checkout and the tests' server helpers, installed or not.
sys.path[:0] = [str(HERE / "src"), str(HERE / "tests")]
from arrow_rows import table_of  # noqa: E402  (the rows as the pyarrow table write_arrow takes)
from conftest import REPO, start_server, stop_server  # noqa: E402  (the tests' server helpers)

import nats_sink  # noqa: E402

SCHEMA = REPO / "examples" / "all_types.schema.json"
ROWS = REPO / "examples" / "all_types.jsonl"
CLI = Path(os.environ.get("NATS_SINK_CLI", REPO / "target" / "release" / "nats-sink"))
ROUNDS = int(os.environ.get("BENCH_PYTHON_ROUNDS", "3"))
REPEAT = int(os.environ.get("BENCH_PYTHON_REPEAT", "10"))
BATCH = 1024


def cli_seconds(options: dict[str, str], rows_file: Path) -> float:
    args = [str(CLI), "run", "--schema", str(SCHEMA), "--input", str(rows_file), "--batch-size", str(BATCH)]
    for key, value in options.items():
        args += ["--with", f"{key}={value}"]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the CLI failed: {done.stderr}")
    return time.monotonic() - started


async def python_seconds(options: dict[str, str], columns: list[tuple[str, str]], rows: list[dict]) -> float:
    started = time.monotonic()
    sink = await nats_sink.open(options, columns)
    for checkpoint, start in enumerate(range(0, len(rows), BATCH)):
        sink.begin_checkpoint(checkpoint)
        await sink.write(rows[start : start + BATCH])
        await sink.flush()
    await sink.close()
    return time.monotonic() - started


async def pyarrow_seconds(options: dict[str, str], columns: list[tuple[str, str]], table: Any) -> float:
    started = time.monotonic()
    sink = await nats_sink.open(options, columns)
    for checkpoint, start in enumerate(range(0, table.num_rows, BATCH)):
        sink.begin_checkpoint(checkpoint)
        await sink.write_arrow(table.slice(start, BATCH))
        await sink.flush()
    await sink.close()
    return time.monotonic() - started


def summary(name: str, ratios: list[float]) -> dict[str, Any]:
    median = statistics.median(ratios)
    spread = (min(ratios), max(ratios))
    wide = max(abs(spread[0] / median - 1), abs(spread[1] / median - 1)) > 0.15
    print(f"{name} / CLI, {len(ratios)} paired rounds: "
          f"{median:.3f} (min {spread[0]:.3f}, max {spread[1]:.3f}){'  SPREAD > 15%' if wide else ''}")
    return {"ratio_median": median, "ratio_min": spread[0], "ratio_max": spread[1], "spread_over_15_percent": wide}


def main() -> None:
    if not CLI.exists():
        raise SystemExit(f"bench-python: {CLI} is missing; run `cargo build --release -p nats-sink-cli`")
    columns = [(c["name"], c["type"]) for c in json.loads(SCHEMA.read_text())["columns"]]
    lines = ROWS.read_text().splitlines() * REPEAT
    rows = [json.loads(line) for line in lines]
    table = table_of(columns, rows)
    # Warm both compile caches first: a cold compile (over a second) is start-up, not rate.
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        rows_file.write_text("\n".join(lines[:10]) + "\n")
        server = start_server(Path(tmp))
        try:
            cli_seconds(server.options("bench.warm"), rows_file)
            asyncio.run(pyarrow_seconds(server.options("bench.warm"), columns, table.slice(0, 10)))
        finally:
            stop_server(server)
    rounds = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as tmp:
            rows_file = Path(tmp) / "rows.jsonl"
            rows_file.write_text("\n".join(lines) + "\n")
            server = start_server(Path(tmp))
            try:
                cli = cli_seconds(server.options("bench.cli"), rows_file)
                python = asyncio.run(python_seconds(server.options("bench.py"), columns, rows))
                arrow = asyncio.run(pyarrow_seconds(server.options("bench.arrow"), columns, table))
            finally:
                stop_server(server)
        rounds.append({"cli_rows_per_s": len(rows) / cli, "python_rows_per_s": len(rows) / python,
                       "pyarrow_rows_per_s": len(rows) / arrow})
    print(f"{len(rows)} rows, batch {BATCH}, CLI {CLI}")
    python = summary("python host (rows)", [r["python_rows_per_s"] / r["cli_rows_per_s"] for r in rounds])
    arrow = summary("python host (pyarrow table)", [r["pyarrow_rows_per_s"] / r["cli_rows_per_s"] for r in rounds])
    for r in rounds:
        print(f"  CLI {r['cli_rows_per_s']:,.0f} rows/s, Python rows {r['python_rows_per_s']:,.0f} rows/s, "
              f"pyarrow {r['pyarrow_rows_per_s']:,.0f} rows/s")
    out = REPO / "target" / "bench-python.json"
    out.write_text(json.dumps({"rounds": rounds, **python, "pyarrow": arrow}, indent=2))


if __name__ == "__main__":
    main()
