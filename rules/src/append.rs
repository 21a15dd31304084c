//! Appending a few bytes without a `memcpy` call. In wasm a copy of unknown length becomes
//! `memory.copy`, which wasmtime runs as a call out of the guest: for the short runs an
//! encoder appends (JSON keys, digits, the text between escapes) that call costs more than
//! the copy. These append them with word-sized loads and stores of fixed width instead.

/// Append `bytes` to `out`; runs of up to 16 bytes take no `memcpy`.
#[inline(always)]
pub fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len();
    if n > 16 {
        out.extend_from_slice(bytes);
    } else if n >= 8 {
        // Two overlapping words: the first eight bytes, then the last eight over the rest.
        let len = out.len();
        out.extend_from_slice(&word::<8>(bytes, 0));
        out.truncate(len + n - 8);
        out.extend_from_slice(&word::<8>(bytes, n - 8));
    } else if n >= 4 {
        let len = out.len();
        out.extend_from_slice(&word::<4>(bytes, 0));
        out.truncate(len + n - 4);
        out.extend_from_slice(&word::<4>(bytes, n - 4));
    } else {
        for &byte in bytes {
            out.push(byte);
        }
    }
}

/// The `N` bytes of `bytes` from `at`, which the caller has checked are there.
#[inline(always)]
fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    match bytes.get(at..).and_then(|rest| rest.first_chunk::<N>()) {
        Some(chunk) => *chunk,
        None => [0; N],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_appends_exactly_the_bytes() {
        let source: Vec<u8> = (0u8..40).collect();
        for n in 0..=source.len() {
            for before in [0usize, 3, 9] {
                let mut out: Vec<u8> = vec![0xee; before];
                append(&mut out, &source[..n]);
                let mut expected = vec![0xee; before];
                expected.extend_from_slice(&source[..n]);
                assert_eq!(out, expected, "{n} bytes after {before}");
            }
        }
    }
}
