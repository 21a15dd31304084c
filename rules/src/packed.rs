//! The WIT's `packed-bytes`: bytes carried as little-endian 64-bit words, eight to a word, and
//! a byte count. Both sides pack and unpack here, so a count the words do not hold is refused
//! alike on each side, and the bytes are viewed in place (one copy at most) on a
//! little-endian machine.

/// Why words and a count are not packed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedError {
    /// The byte count given.
    pub len: u64,
    /// The words given.
    pub words: usize,
}

impl std::fmt::Display for PackedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} bytes are packed in {} words, not the {} given",
            self.len,
            words_for(self.len as usize),
            self.words
        )
    }
}

impl std::error::Error for PackedError {}

/// The words `len` bytes take.
pub fn words_for(len: usize) -> usize {
    len.div_ceil(8)
}

/// `bytes` as words, the last one zero-padded.
pub fn pack(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; words_for(bytes.len())];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    // The bytes lie in memory order; a word's first byte is its lowest (a no-op where the
    // machine is little-endian).
    for word in &mut words {
        *word = u64::from_le(*word);
    }
    words
}

/// Check that `words` hold exactly `len` bytes.
pub fn check(words: &[u64], len: u64) -> Result<(), PackedError> {
    match usize::try_from(len) {
        Ok(n) if words_for(n) == words.len() => Ok(()),
        _ => Err(PackedError {
            len,
            words: words.len(),
        }),
    }
}

/// The `len` bytes `words` hold, viewed in place where the machine is little-endian.
pub fn unpack(words: &[u64], len: u64) -> Result<std::borrow::Cow<'_, [u8]>, PackedError> {
    check(words, len)?;
    let len = len as usize;
    Ok(if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(&bytemuck::cast_slice::<u64, u8>(words)[..len])
    } else {
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.truncate(len);
        std::borrow::Cow::Owned(bytes)
    })
}

/// Packed bytes taken whole: their words, checked, owned and read as bytes in place (a
/// buffer to hand out slices of, such as `bytes::Bytes::from_owner`).
#[derive(Debug)]
pub struct PackedBuffer {
    words: Vec<u64>,
    len: usize,
}

impl PackedBuffer {
    /// `words` holding `len` bytes, or why they do not.
    pub fn new(mut words: Vec<u64>, len: u64) -> Result<PackedBuffer, PackedError> {
        check(&words, len)?;
        // Each word's bytes in memory order, lowest first (a no-op where little-endian).
        for word in &mut words {
            *word = word.to_le();
        }
        Ok(PackedBuffer {
            words,
            len: len as usize,
        })
    }
}

impl AsRef<[u8]> for PackedBuffer {
    fn as_ref(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_at_every_length_and_a_wrong_count_is_refused() {
        let source: Vec<u8> = (1u8..=40).collect();
        for n in 0..=source.len() {
            let words = pack(&source[..n]);
            assert_eq!(words.len(), n.div_ceil(8));
            assert_eq!(&*unpack(&words, n as u64).unwrap(), &source[..n]);
            // Little-endian: the first byte is the lowest of the first word.
            if n > 0 {
                assert_eq!(words[0] & 0xff, 1);
            }
        }
        let words = pack(&source[..9]);
        for wrong in [0u64, 8, 17, 1 << 40] {
            assert_eq!(
                unpack(&words, wrong).unwrap_err(),
                PackedError {
                    len: wrong,
                    words: 2
                }
            );
        }
        assert!(unpack(&[], 0).unwrap().is_empty());
        let owned = PackedBuffer::new(pack(&source), source.len() as u64).unwrap();
        assert_eq!(owned.as_ref(), &source[..]);
        assert!(PackedBuffer::new(pack(&source), 3).is_err());
    }
}
