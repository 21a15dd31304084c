"""Compiled code is kept between processes in the CLI's cache directory, unless turned off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import COMPONENT

LOAD = "import nats_sink.component as c; c._load()"


def load_in_a_new_process(**env: str) -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    clean = {k: v for k, v in os.environ.items() if k not in ("NATS_SINK_CACHE", "NATS_SINK_NO_CACHE", "XDG_CACHE_HOME")}
    subprocess.run([sys.executable, "-c", LOAD], check=True, timeout=120,
                   env={**clean, "PYTHONPATH": src, "NATS_SINK_COMPONENT": str(COMPONENT), **env})


def cached_files(directory: Path) -> list[Path]:
    """The compiled code kept (wasmtime's `.stats` beside each count its hits, so they change)."""
    if not directory.exists():
        return []
    return [p for p in (directory / "wasmtime").rglob("*") if p.is_file() and p.suffix != ".stats"]


def test_a_second_process_finds_the_compiled_component(tmp_path: Path) -> None:
    load_in_a_new_process(NATS_SINK_CACHE=str(tmp_path))
    first = cached_files(tmp_path)
    assert first, "the first load left nothing in the cache"
    stamps = {p: p.stat().st_mtime_ns for p in first}
    load_in_a_new_process(NATS_SINK_CACHE=str(tmp_path))
    # The second load reads what the first compiled: nothing new is written.
    assert {p: p.stat().st_mtime_ns for p in cached_files(tmp_path)} == stamps


def test_the_xdg_directory_is_used_as_the_cli_uses_it(tmp_path: Path) -> None:
    load_in_a_new_process(XDG_CACHE_HOME=str(tmp_path))
    assert cached_files(tmp_path / "nats-sink")


def test_no_cache_writes_nothing(tmp_path: Path) -> None:
    load_in_a_new_process(NATS_SINK_CACHE=str(tmp_path / "c"), NATS_SINK_NO_CACHE="1")
    assert not (tmp_path / "c").exists()


def test_no_cache_set_to_0_keeps_the_cache(tmp_path: Path) -> None:
    load_in_a_new_process(NATS_SINK_CACHE=str(tmp_path), NATS_SINK_NO_CACHE="0")
    assert cached_files(tmp_path)
