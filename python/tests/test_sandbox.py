"""The sandbox's limits: checked when given, the Rust host's by default, and enforced (the
looping and allocating guests are the conformance suite's hostile cases)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nats_sink
from conftest import Server


def test_the_defaults_are_the_rust_hosts() -> None:
    policy = json.loads((Path(nats_sink.__file__).parent / "policy.json").read_text())["sandbox"]
    assert nats_sink.Limits().memory_mib << 20 == policy["memory_limit_bytes"]
    assert nats_sink.Limits().cpu_ms == policy["cpu_limit_ms"]


@pytest.mark.parametrize("given", [{"cpu_ms": 0}, {"cpu_ms": 3_600_001}, {"memory_mib": 0},
                                   {"memory_mib": 4097}, {"memory_mib": True}, {"cpu_ms": 1.5}])
def test_limits_out_of_range_are_refused(given: dict) -> None:
    with pytest.raises(ValueError, match="Limits"):
        nats_sink.Limits(**given)


async def test_a_memory_limit_below_what_the_component_needs_fails_the_open(server: Server) -> None:
    with pytest.raises(nats_sink.ComponentError, match="instantiated"):
        await nats_sink.open(server.options("sb.m"), [("id", "integer")], limits=nats_sink.Limits(memory_mib=1))

