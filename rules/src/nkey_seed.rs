//! NKey seeds, checked as `nkeys` reads them; an error never holds the seed.

/// A user NKey seed as `nkeys` reads it: 58 base32 characters holding the `SU` prefix, a
/// 32-byte key and a CRC-16 of them, so a seed that would fail at connect fails here.
pub fn check_user_seed(seed: &str) -> Result<(), &'static str> {
    if !seed.starts_with("SU") {
        return Err("it does not start with `SU`");
    }
    if seed.len() != 58 {
        return Err("it is not 58 characters long");
    }
    let mut bytes = Vec::with_capacity(37);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for ch in seed.bytes() {
        let digit = match ch {
            b'A'..=b'Z' => ch - b'A',
            b'2'..=b'7' => ch - b'2' + 26,
            _ => return Err("it has a character outside base32 `A-Z2-7`"),
        };
        buffer = (buffer << 5) | u32::from(digit);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    let Some((body, crc)) = bytes.split_last_chunk::<2>() else {
        return Err("it is too short");
    };
    if crc16_xmodem(body) != u16::from_le_bytes(*crc) {
        return Err("its checksum does not match");
    }
    Ok(())
}

/// CRC-16/XMODEM, the checksum NKeys append.
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}
