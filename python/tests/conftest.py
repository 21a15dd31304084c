"""A real nats-server per test, on a free loopback port, stopped after; and the CLI beside it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = Path(os.environ.get("NATS_SINK_CLI", REPO / "target" / "debug" / "nats-sink"))
COMPONENT = REPO / "target" / "nats-sink.wasm"

# The tests run the component `just build` made, whether or not the package was installed.
os.environ.setdefault("NATS_SINK_COMPONENT", str(COMPONENT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    process: subprocess.Popen

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def options(self, subject: str, **extra: str) -> dict[str, str]:
        return {"server_url": self.address, "subject": subject, "connect_mode": "plain", **extra}


def start_server(tmp: Path, config: Optional[str] = None, port: Optional[int] = None) -> Server:
    """A nats-server on `port` (a free one unless given: a restart takes its old one)."""
    port = port or free_port()
    args = ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp / "js")]
    if config is not None:
        conf = tmp / "server.conf"
        conf.write_text(config)
        args += ["-c", str(conf)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_listening(process, port)
    return Server(port, process)


def wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Until the started nats-server takes connections on `port` (at most 10 s); killed if not."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("nats-server did not listen within 10 s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path)
    yield s
    stop_server(s)


def run_cli(schema: Path, input_path: Path, options: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    args = [str(CLI), "run", "--schema", str(schema), "--input", str(input_path)]
    for k, v in options.items():
        args += ["--with", f"{k}={v}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


class Paused:
    """The server alive but silent (SIGSTOP) until the block ends (SIGCONT)."""

    def __init__(self, server: Server) -> None:
        self.pid = server.process.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        # The signal lands asynchronously: wait until the kernel shows the process stopped.
        deadline = time.monotonic() + 5
        while Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
            assert time.monotonic() < deadline, "nats-server did not stop"
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)
