"""The WIT's `packed-bytes`: bytes carried as little-endian 64-bit words and a byte count.

wasmtime-py hands a component value across as one 32-byte C value per list element, so a
`list<u8>` costs 32 bytes of C memory and a conversion per byte; packed eight to a word, the
bytes cost a quarter of that per byte and an eighth of the conversions. `_speedups` moves the
words in bulk, as buffers of native words; where it could not be installed, words are lists
of ints, as wasmtime-py converts them. This is where bytes are packed for the guest and
unpacked from it.
"""

from __future__ import annotations

import struct
import sys
from typing import Any

from wasmtime.component import Record

from . import _speedups


def words_for(length: int) -> int:
    """The words `length` bytes take."""
    return (length + 7) // 8


def _little_endian(words: bytes) -> bytes:
    """Native 64-bit words as the same words little-endian (or back; a no-op on most machines)."""
    if sys.byteorder == "little":
        return words
    n = len(words) // 8
    return struct.pack(f"<{n}Q", *struct.unpack(f"={n}Q", words))


def pack(data: Any) -> Record:
    """`data` (bytes, or any contiguous buffer) as a `packed-bytes` record."""
    view = memoryview(data).cast("B")
    length = len(view)
    pad = words_for(length) * 8 - length
    padded: Any = view if pad == 0 else bytes(view) + bytes(pad)
    record = Record()
    if _speedups.words_in_bulk():
        record.words = padded if sys.byteorder == "little" else _little_endian(bytes(padded))
    else:
        record.words = list(struct.unpack(f"<{len(padded) // 8}Q", padded))
    record.len = length
    return record


def unpack(record: Any) -> bytes:
    """The bytes of a `packed-bytes` record from the guest, its count checked against its
    words; ValueError if they disagree."""
    words, length = record.words, record.len
    if isinstance(words, list):  # wasmtime-py's own conversion: ints
        words = struct.pack(f"<{len(words)}Q", *words)
    else:
        words = _little_endian(words)
    if len(words) != words_for(length) * 8:
        raise ValueError(f"its data is packed wrong: {length} bytes are packed in {words_for(length)} words, not the {len(words) // 8} given")
    return words if len(words) == length else words[:length]
