"""The WIT's packed-bytes, as the Python host packs and unpacks them."""

from __future__ import annotations

import struct

import pytest
from wasmtime.component import Record

from nats_sink import _speedups, component, packed  # noqa: F401  (component installs _speedups)


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 16, 1000])
def test_bytes_round_trip_through_their_words(length: int) -> None:
    data = bytes((i * 7 + 3) % 256 for i in range(length))
    record = packed.pack(data)
    assert record.len == length
    words = record.words if isinstance(record.words, list) else struct.unpack(f"<{len(record.words) // 8}Q", record.words)
    assert len(words) == (length + 7) // 8
    if length:
        assert words[0] & 0xFF == data[0]  # the first byte is the lowest of the first word
    assert packed.unpack(record) == data


def test_words_as_ints_unpack_too_and_a_count_the_words_do_not_hold_is_refused() -> None:
    record = Record()
    record.words = [int.from_bytes(b"abcdefgh", "little"), int.from_bytes(b"ij\0\0\0\0\0\0", "little")]
    record.len = 10
    assert packed.unpack(record) == b"abcdefghij"
    for wrong in (0, 8, 17, 100):
        record.len = wrong
        with pytest.raises(ValueError, match="packed wrong"):
            packed.unpack(record)


def test_the_bulk_words_path_is_installed_on_this_machine() -> None:
    assert _speedups.words_in_bulk(), "the words cross one C value each: the slow path"
