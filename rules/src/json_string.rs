//! JSON strings, byte for byte as serde_json writes them, but scanned eight bytes at a time:
//! most text needs no escape, and a byte loop is the encoder's hottest path (in wasm, every
//! loop turn also pays an epoch check). Here, not in the guest, because a schema's fields
//! carry their JSON keys ready-made.

use crate::append::append;

const LANES_01: u64 = 0x0101_0101_0101_0101;
const LANES_80: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte lane of `word` whose byte JSON must escape: below 0x20, `"` or
/// `\`. The lowest marked lane is exact; lanes above it may be marked by a borrow.
#[inline]
pub fn escape_lanes(word: u64) -> u64 {
    let below =
        |word: u64, bound: u8| word.wrapping_sub(LANES_01 * bound as u64) & !word & LANES_80;
    let equal = |byte: u8| below(word ^ (LANES_01 * byte as u64), 1);
    below(word, 0x20) | equal(b'"') | equal(b'\\')
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn write_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(byte >> 4) as usize],
            HEX[(byte & 0xf) as usize],
        ]),
    }
}

/// Append `text` as a JSON string.
#[inline]
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    write_utf8(out, text.as_bytes())
}

/// Append `utf8`, which must be UTF-8, as a JSON string. Only ASCII bytes are ever escaped,
/// so the bytes of multi-byte characters pass through whole.
pub fn write_utf8(out: &mut Vec<u8>, utf8: &[u8]) {
    write_scanned(out, utf8);
}

/// Append `bytes` as a JSON string if they are UTF-8; otherwise say where they stop being
/// (and `out` holds part of the string: callers drop what they were writing). The escape scan
/// also sees whether every byte is ASCII, which needs no further check; only other text takes
/// a second pass through `str::from_utf8`.
pub fn write_checked(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), std::str::Utf8Error> {
    if write_scanned(out, bytes) {
        std::str::from_utf8(bytes)?;
    }
    Ok(())
}

/// Append `utf8` as a JSON string; true if any byte is outside ASCII.
#[inline]
fn write_scanned(out: &mut Vec<u8>, utf8: &[u8]) -> bool {
    out.reserve(utf8.len() + 2);
    out.push(b'"');
    // `copied` is where the bytes not yet appended start; `high` gathers every high bit seen.
    let (mut at, mut copied, mut high) = (0, 0, 0u64);
    while let Some(chunk) = utf8.get(at..).and_then(|rest| rest.first_chunk::<8>()) {
        let word = u64::from_le_bytes(*chunk);
        high |= word;
        let lanes = escape_lanes(word);
        if lanes == 0 {
            at += 8;
            continue;
        }
        at += (lanes.trailing_zeros() / 8) as usize;
        append(out, &utf8[copied..at]);
        write_escape(out, utf8[at]);
        at += 1;
        copied = at;
    }
    for (offset, &byte) in utf8[at..].iter().enumerate() {
        high |= byte as u64;
        if needs_escape(byte) {
            append(out, &utf8[copied..at + offset]);
            write_escape(out, byte);
            copied = at + offset + 1;
        }
    }
    append(out, &utf8[copied..]);
    out.push(b'"');
    high & LANES_80 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write_str(&mut out, text);
        out
    }

    #[test]
    fn every_ascii_byte_at_every_lane_matches_serde_json() {
        for byte in 0u8..0x80 {
            for lane in 0..17 {
                let text = format!("{}{}{}", "a".repeat(lane), byte as char, "é".repeat(3));
                assert_eq!(
                    ours(&text),
                    serde_json::to_vec(&text).unwrap(),
                    "byte {byte:#04x} after {lane} bytes"
                );
            }
        }
    }

    #[test]
    fn checked_text_is_written_alike_and_bad_utf8_is_refused_where_it_breaks() {
        for text in [
            "",
            "plain",
            "tab\there \"quoted\"",
            "é",
            "aaaaaaaé\n",
            "€😀 and more text",
        ] {
            let mut out = Vec::new();
            write_checked(&mut out, text.as_bytes()).unwrap();
            assert_eq!(out, ours(text), "{text:?}");
        }
        for (bytes, valid_up_to) in [
            (&b"\xff"[..], 0),
            (b"abcdefgh\xc3", 8),
            (b"abc\x80defghijk", 3),
            (b"\xe2\x82", 0),
            (b"0123456789\xed\xa0\x80", 10),
        ] {
            let error = write_checked(&mut Vec::new(), bytes).unwrap_err();
            assert_eq!(error.valid_up_to(), valid_up_to, "{bytes:?}");
        }
    }

    #[test]
    fn mixed_text_matches_serde_json() {
        // A fixed pseudo-random walk over characters that do and do not need escapes.
        let pieces = [
            "a", "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "é", "€", "😀", "xyz", " ", "/",
            "\t",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for length in 0..300 {
            let text: String = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    pieces[(state % pieces.len() as u64) as usize]
                })
                .collect();
            assert_eq!(ours(&text), serde_json::to_vec(&text).unwrap(), "{text:?}");
        }
        assert_eq!(ours(""), b"\"\"");
    }
}
