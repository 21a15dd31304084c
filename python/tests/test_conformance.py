"""The host conformance suite's Python driver: every case of tests/conformance/cases against real
nats-servers, through this package; the report lists every case, passed or skipped with why."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import nats
import pytest

import nats_sink
from nats_sink import component

from conftest import REPO, free_port, wait_until_listening

SUITE = REPO / "tests" / "conformance"
HOSTILE = REPO / "target" / "hostile.wasm"
FIXTURES = SUITE / "fixtures"
AUTH: dict[str, str] = json.loads((FIXTURES / "auth.json").read_text())
PIECES: dict[str, str] = json.loads((SUITE / "servers.json").read_text())
KINDS = {nats_sink.InvalidOptions: "invalid-options", nats_sink.InvalidSchema: "invalid-schema",
         nats_sink.InvalidRow: "invalid-row", nats_sink.ConnectionError: "connection",
         nats_sink.PublishError: "publish", nats_sink.TimeoutError: "timeout", nats_sink.Closed: "closed",
         nats_sink.CpuLimit: "cpu-limit", nats_sink.ComponentError: "trap"}

LIMITS = nats_sink.Limits(cpu_ms=1000)

CASES = [(f"{path.stem}: {case['name']}", case)
         for path in sorted((SUITE / "cases").glob("*.json")) for case in json.loads(path.read_text())["cases"]]
REPORT: list[tuple[str, str, str]] = []


def fill(value: Any, variables: dict[str, str]) -> Any:
    """The suite's placeholders filled in every string of `value`."""
    if isinstance(value, str):
        value = re.sub(r"\{(.)\*(\d+)\}", lambda m: m.group(1) * int(m.group(2)), value)
        return re.sub(r"\{([a-z_]+)\}", lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [fill(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, variables) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("pki")
    subprocess.run([str(SUITE / "make-pki.sh"), str(directory)], check=True, timeout=60)
    yield directory
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    passed = sum(1 for _, outcome, _ in REPORT if outcome == "pass")
    lines = [f"conformance report (python host): {passed} passed, {len(REPORT) - passed} skipped"]
    lines += [f"  {outcome:<4} {name}{f' — {why}' if why else ''}" for name, outcome, why in REPORT]
    if reporter is not None:
        reporter.write_line("\n" + "\n".join(lines))


def start(tmp: Path, config: str) -> subprocess.Popen[bytes]:
    port = free_port()
    conf = tmp / "server.conf"
    conf.write_text(f"listen: 127.0.0.1:{port}\n{config.replace('{dir}', str(tmp))}\n")
    process = subprocess.Popen(["nats-server", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_until_listening(process, port)
    process.port = port  # type: ignore[attr-defined]
    return process


@pytest.fixture
def hostile_guest(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hostile guest in place of the real one, for this case only."""
    engine = component.new_engine()
    monkeypatch.setattr(component, "_loaded", (engine, component.Component.from_file(engine, str(HOSTILE))))


def check_error(step: str, e: BaseException, expected: dict[str, Any], variables: dict[str, str]) -> None:
    kind = next((k for cls, k in KINDS.items() if isinstance(e, cls)), f"not a sink error ({type(e).__name__}: {e})")
    assert kind in expected["kind"], f"{step}: a {kind} error ({e}), expected {expected['kind']}"
    for text in expected.get("contains", []):
        assert fill(text, variables) in str(e), f"{step}: {str(e)!r} lacks {text!r}"
    for text in expected.get("not_contains", []):
        assert fill(text, variables) not in str(e), f"{step}: {str(e)!r} holds {text!r}"
    if isinstance(e, (nats_sink.errors.DeliveryError, nats_sink.Closed)):
        core_in_doubt = expected.get("core_in_doubt", False)
        assert e.core_in_doubt is core_in_doubt, f"{step}: core_in_doubt {e.core_in_doubt}, expected {core_in_doubt}"
    if isinstance(e, nats_sink.Closed) and "closed_after" in expected:
        assert e.after in expected["closed_after"], f"{step}: closed after {e.after}, expected {expected['closed_after']}"
    if "row" in expected:
        assert isinstance(e, nats_sink.InvalidRow) and e.row == expected["row"], f"{step}: row {getattr(e, 'row', None)}"


async def observer(case: dict[str, Any], port: int, variables: dict[str, str], pki: Path) -> Any:
    opts: dict[str, Any] = {"servers": [f"nats://127.0.0.1:{port}"], "connect_timeout": 5, "allow_reconnect": False}
    auth = fill(case.get("observe_auth", {}), variables)
    if "token" in auth:
        opts["token"] = auth["token"]
    if "user" in auth:
        opts["user"], opts["password"] = auth["user"], auth["password"]
    if "nkey_seed" in auth:
        opts["nkeys_seed_str"] = auth["nkey_seed"]
    if "creds_file" in auth:
        opts["user_credentials"] = auth["creds_file"]
    if case.get("observe_tls"):
        ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        ctx.load_cert_chain(str(pki / "client.pem"), str(pki / "client-key.pem"))
        opts["tls"] = ctx
    return await nats.connect(**opts)


async def run_case(case: dict[str, Any], tmp: Path, pki: Path) -> None:
    base = {**AUTH, "pki": str(pki)}
    process = start(tmp, "\n".join(fill(PIECES[p], base) for p in case["server"]))
    port: int = process.port  # type: ignore[attr-defined]
    variables = {**base, "fixtures": str(FIXTURES), "server": f"127.0.0.1:{port}"}
    sink = nc = None
    try:
        nc = await observer(case, port, variables, pki)
        received: list[Any] = []

        async def keep(m: Any) -> None:
            received.append(m)

        sub = await nc.subscribe(case.get("observe", "conf.>"), cb=keep)
        await nc.flush()
        js = nc.jetstream() if "jetstream" in case["server"] else None
        jsm = nc.jsm() if js is not None else None
        if "stream" in case:
            await jsm.add_stream(name=case["stream"]["name"], subjects=case["stream"]["subjects"])
        for step in case["steps"]:
            name = next(k for k in step if k != "error")
            failure: BaseException | None = None
            try:
                if name == "open":
                    options = fill({"connector": "nats", "server_url": "{server}", **step["open"]["options"]}, variables)
                    schema = [tuple(c) for c in step["open"].get("schema", [["id", "integer"], ["name", "varchar"]])]
                    # A CPU limit of 1 s per call, as the Rust driver gives: a looping guest stops soon.
                    sink = await asyncio.wait_for(nats_sink.open(options, schema, limits=LIMITS), 30)
                elif name == "checkpoint":
                    sink.begin_checkpoint(step["checkpoint"])
                elif name == "write":
                    await asyncio.wait_for(sink.write(fill(step["write"], variables)), 30)
                elif name == "flush":
                    await asyncio.wait_for(sink.flush(), 30)
                elif name == "delete_stream":
                    await jsm.delete_stream(step["delete_stream"])
                else:
                    raise AssertionError(f"unknown step {name}")
            except Exception as e:  # noqa: BLE001 - judged against the case below
                failure = e
            if "error" in step:
                assert failure is not None, f"{name}: succeeded, expected a {step['error']['kind']} error"
                check_error(name, failure, step["error"], variables)
            elif failure is not None:
                raise failure
        deadline = time.monotonic() + 10
        while len(received) < len(case["messages"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await nc.flush()
        await sub.unsubscribe()
        seen = [m for m in received if not m.subject.startswith(("$JS.", "_INBOX."))]
        assert [m.data.decode() for m in seen] == [fill(m["payload"], variables) for m in case["messages"]]
        for i, m in enumerate(case["messages"]):
            for k, v in m.get("headers", {}).items():
                assert (seen[i].headers or {}).get(k) == v, f"message {i}'s {k}"
        if "stream_messages" in case:
            info = await jsm.stream_info(case["stream"]["name"])
            assert info.state.messages == case["stream_messages"]
        if "created_stream" in case:
            expected = case["created_stream"]
            subject = (expected or {}).get("subject") or case["steps"][0]["open"]["options"]["subject"]
            try:
                name = await jsm.find_stream_name_by_subject(subject)
            except nats.js.errors.NotFoundError:
                name = None
            if expected is None:
                assert name is None, "no stream was created"
            else:
                assert name is not None, f"a stream captures {subject}"
                info = await jsm.stream_info(name)
                assert info.config.max_msgs == expected["max_msgs"]
                assert info.state.messages == expected["messages"]
    finally:
        if sink is not None:
            await sink.close()
        if nc is not None:
            await nc.close()
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.parametrize("name,case", CASES, ids=[n for n, _ in CASES])
async def test_conformance(name: str, case: dict[str, Any], tmp_path: Path, pki: Path, request: pytest.FixtureRequest) -> None:
    skip = case.get("skip", {}).get("python")
    if skip is None and case.get("guest") == "hostile" and not HOSTILE.is_file():
        skip = "target/hostile.wasm is missing: run ./scripts/build-guest.sh --hostile"
    if skip:
        REPORT.append((name, "skip", skip))
        pytest.skip(skip)
    if case.get("guest") == "hostile":
        request.getfixturevalue("hostile_guest")
    await run_case(case, tmp_path, pki)
    REPORT.append((name, "pass", ""))
