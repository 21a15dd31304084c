"""`pip install ./python` ships the built component: the wheel carries it as package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import COMPONENT, REPO


def test_wheel_ships_the_component(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(REPO / "python")],
        check=True, capture_output=True, timeout=120,
    )
    [wheel] = tmp_path.glob("nats_sink-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert z.read("nats_sink/nats-sink.wasm") == COMPONENT.read_bytes()
        assert "nats_sink/sink.py" in z.namelist()
