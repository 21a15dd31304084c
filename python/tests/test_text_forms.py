"""The Python host's text forms against the shared vectors (tests/vectors/text_forms.json),
which the CLI's test reads too (cli/tests/text_forms.rs): both give every text the same answer."""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

import pytest

from conftest import REPO
from nats_sink import chrono_parse, textforms

VECTORS = json.loads((REPO / "tests" / "vectors" / "text_forms.json").read_text())


def _interval(text: str) -> dict[str, Any]:
    try:
        return {"value": list(textforms.parse_interval(text))}
    except textforms.IntervalMalformed:
        return {"refused": "malformed"}
    except textforms.IntervalOutOfRange:
        return {"refused": "out_of_range"}


def _optional(parse: Callable[[str], Optional[Any]], shown: Callable[[Any], Any] = lambda v: v) -> Callable[[str], dict[str, Any]]:
    def read(text: str) -> dict[str, Any]:
        value = parse(text)
        return {"refused": "malformed"} if value is None else {"value": shown(value)}

    return read


READERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "interval": _interval,
    "date": _optional(chrono_parse.parse_date),
    "time": _optional(chrono_parse.parse_time),
    "timestamp": _optional(chrono_parse.parse_timestamp),
    "timestamptz": _optional(chrono_parse.parse_timestamptz),
    "bytea": _optional(textforms.parse_bytea, bytes.hex),
    "uuid": _optional(textforms.parse_uuid, lambda v: f"{v:032x}"),
}
CASES = [(kind, case) for kind, cases in VECTORS.items() if isinstance(cases, list) for case in cases]


def test_every_kind_in_the_file_has_a_reader() -> None:
    assert {kind for kind, _ in CASES} == set(READERS)
    assert len(CASES) > 100


@pytest.mark.parametrize("kind,case", CASES, ids=[f"{k}={c['text']!r}" for k, c in CASES])
def test_text_form_reads_as_the_file_says(kind: str, case: dict[str, Any]) -> None:
    expected = {k: v for k, v in case.items() if k != "text"}
    assert READERS[kind](case["text"]) == expected
