//! One writer per column type: a value's JSON, byte for byte as RisingWave's NATS sink writes
//! it. The `rows` path (`encode`) and the Arrow path (`arrow`) both write every value through
//! these, so the two give the same bytes for the same value. An error is the reason alone;
//! the caller names the column.

use std::io::Write as _;

use base64::Engine as _;
use nats_sink_rules::append::append;

use crate::bindings::Interval;
use crate::encode::{DateMode, JsonbMode, Modes, TimeMode, TimestampMode, TimestamptzMode};
use crate::jsonb::{Form, Jsonb};

pub use crate::json_num::{write_f64 as write_double, write_i64 as write_int, write_numeric};
pub use crate::json_str::write_checked as write_varchar;

/// Days from 0001-01-01 (day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;
const MICROS_PER_SEC: i64 = 1_000_000;

pub fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" })
}

/// RisingWave widens real to f64 before printing, so 1.1 is 1.100000023841858.
pub fn write_real(out: &mut Vec<u8>, v: f32) {
    write_double(out, v as f64)
}

/// A date, days since 1970-01-01, in `date.handling.mode`'s form.
pub fn write_date(out: &mut Vec<u8>, mode: DateMode, days: i32) -> Result<(), String> {
    match mode {
        DateMode::FromCe => write_int(out, days as i64 + UNIX_EPOCH_DAYS_FROM_CE),
        DateMode::FromEpoch => write_int(out, days as i64),
        DateMode::String => {
            let Some(date) = chrono::NaiveDate::from_num_days_from_ce_opt(
                days.saturating_add(UNIX_EPOCH_DAYS_FROM_CE as i32),
            ) else {
                return Err(format!("date {days} days is out of range"));
            };
            let _ = write!(out, "\"{}\"", date.format("%Y-%m-%d"));
        }
    }
    Ok(())
}

/// A time of day in microseconds, in `time.handling.mode`'s form.
pub fn write_time(out: &mut Vec<u8>, mode: TimeMode, micros: i64) -> Result<(), String> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return Err(format!(
            "time {micros} µs is outside 00:00:00 to 23:59:59.999999"
        ));
    }
    match mode {
        // Whole seconds only, in milliseconds: RisingWave drops the fraction.
        TimeMode::Milli => write_int(out, micros / MICROS_PER_SEC * 1000),
        TimeMode::String => {
            let secs = micros / MICROS_PER_SEC;
            let _ = write!(
                out,
                "\"{:02}:{:02}:{:02}.{:06}\"",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                micros % MICROS_PER_SEC
            );
        }
    }
    Ok(())
}

/// A timestamp without zone, microseconds since 1970, in `timestamp.handling.mode`'s form.
pub fn write_timestamp(out: &mut Vec<u8>, mode: TimestampMode, micros: i64) -> Result<(), String> {
    match mode {
        TimestampMode::Milli => write_int(out, micros.div_euclid(1000)),
        TimestampMode::String => write_datetime(out, &datetime(micros, "timestamp")?, b' ', b""),
    }
    Ok(())
}

/// An instant, microseconds since the Unix epoch, in `timestamptz.handling.mode`'s form.
pub fn write_timestamptz(
    out: &mut Vec<u8>,
    mode: TimestamptzMode,
    micros: i64,
) -> Result<(), String> {
    match mode {
        TimestamptzMode::Micro => write_int(out, micros),
        TimestamptzMode::Milli => write_int(out, micros.div_euclid(1000)),
        TimestamptzMode::UtcWithoutSuffix => {
            write_datetime(out, &datetime(micros, "timestamptz")?, b' ', b"")
        }
        TimestamptzMode::UtcString => {
            write_datetime(out, &datetime(micros, "timestamptz")?, b'T', b"Z")
        }
    }
    Ok(())
}

/// An interval in RisingWave's ISO 8601 form.
pub fn write_interval(out: &mut Vec<u8>, interval: &Interval) -> Result<(), String> {
    // RisingWave's form drops the time part's sign: -1 µs would read as +1 µs.
    if interval.micros < 0 {
        return Err(format!(
            "interval with a negative time part ({} µs) is refused: RisingWave's ISO 8601 form drops that sign, so it would publish as {} µs",
            interval.micros,
            interval.micros.unsigned_abs()
        ));
    }
    out.push(b'"');
    write_iso_8601(out, interval);
    out.push(b'"');
    Ok(())
}

/// Bytes as standard base64 text.
pub fn write_bytea(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    out.push(b'"');
    let start = out.len();
    out.resize(
        start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
        0,
    );
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .map_err(|e| format!("bytea too large to encode: {e}"))?;
    out.truncate(start + written);
    out.push(b'"');
    Ok(())
}

/// JSON text, checked, in `jsonb.handling.mode`'s form; `jsonb` is scratch space kept
/// between values.
pub(crate) fn write_jsonb(
    out: &mut Vec<u8>,
    jsonb: &mut Jsonb,
    modes: &Modes,
    text: &str,
) -> Result<(), String> {
    match modes.jsonb {
        JsonbMode::Dynamic => jsonb.write(text, Form::Compact, out),
        JsonbMode::String => jsonb.write_string(text, out),
    }
    .map_err(|e| format!("invalid jsonb: {e}"))
}

/// A serial as RisingWave prints it: `"0x"` and 16 hex digits of its 64 bits.
pub fn write_serial(out: &mut Vec<u8>, v: i64) {
    let mut text = [b'"'; 20];
    text[1..3].copy_from_slice(b"0x");
    text[3..19].copy_from_slice(&hex16(v as u64));
    out.extend_from_slice(&text);
}

/// A uuid, its 128 bits most significant half first, as 8-4-4-4-12 hex digits.
pub fn write_uuid(out: &mut Vec<u8>, (hi, lo): (u64, u64)) {
    // The high half holds the first three groups. Built in place and appended in one
    // fixed-size copy (no per-digit push).
    let (hi, lo) = (hex16(hi), hex16(lo));
    let mut text = [b'-'; 38];
    text[0] = b'"';
    text[1..9].copy_from_slice(&hi[..8]);
    text[10..14].copy_from_slice(&hi[8..12]);
    text[15..19].copy_from_slice(&hi[12..]);
    text[20..24].copy_from_slice(&lo[..4]);
    text[25..37].copy_from_slice(&lo[4..]);
    text[37] = b'"';
    out.extend_from_slice(&text);
}

/// The 16 hex digits of `v`, lowercase, most significant first.
fn hex16(v: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0; 16];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
    }
    text
}

/// Microseconds since 1970 as a date and time, or why there is none.
fn datetime(micros: i64, kind: &str) -> Result<chrono::NaiveDateTime, String> {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.naive_utc())
        .ok_or_else(|| format!("{kind} {micros} µs is out of range"))
}

/// `"YYYY-MM-DD HH:MM:SS.ffffff"` (with `separator` between date and time, then `suffix`), as
/// chrono's `%Y-%m-%d %H:%M:%S%.6f` writes it, without interpreting a format string per value;
/// years outside 0..=9999 take chrono's path.
pub(crate) fn write_datetime(
    out: &mut Vec<u8>,
    t: &chrono::NaiveDateTime,
    separator: u8,
    suffix: &[u8],
) {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        let _ = write!(
            out,
            "\"{}{}{}",
            t.format("%Y-%m-%d"),
            separator as char,
            t.format("%H:%M:%S%.6f")
        );
        out.extend_from_slice(suffix);
        out.push(b'"');
        return;
    }
    // Laid out in a fixed-size buffer and appended in one fixed-size copy: no loop per digit
    // and no copy of unknown length (each a call out of the guest in wasm).
    fn put<const WIDTH: usize>(text: &mut [u8; 27], at: usize, value: u32) {
        let mut v = value;
        for i in (0..WIDTH).rev() {
            text[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    let mut text = *b"\"0000-00-00 00:00:00.000000";
    put::<4>(&mut text, 1, year as u32);
    put::<2>(&mut text, 6, t.month());
    put::<2>(&mut text, 9, t.day());
    text[11] = separator;
    put::<2>(&mut text, 12, t.hour());
    put::<2>(&mut text, 15, t.minute());
    put::<2>(&mut text, 18, t.second());
    // From microseconds there is no leap second, so this stays below 1,000,000.
    put::<6>(&mut text, 21, t.nanosecond() / 1000);
    out.extend_from_slice(&text);
    append(out, suffix);
    out.push(b'"');
}

/// `P{y}Y{m}M{d}DT{h}H{m}M{s}[.fraction]S`, every part present, as RisingWave writes it.
/// Like RisingWave, the time part is printed without its sign (the encoder refuses a
/// negative one before it gets here).
pub fn write_iso_8601(out: &mut Vec<u8>, interval: &Interval) {
    let years = interval.months / 12;
    let months = interval.months % 12;
    let fraction = (interval.micros % MICROS_PER_SEC).unsigned_abs();
    let total_secs = (interval.micros / MICROS_PER_SEC).unsigned_abs();
    let (hours, minutes, seconds) = (total_secs / 3600, total_secs / 60 % 60, total_secs % 60);
    let _ = write!(
        out,
        "P{years}Y{months}M{}DT{hours}H{minutes}M{seconds}",
        interval.days
    );
    if fraction != 0 {
        // Six fractional digits with the trailing zeros dropped: 500000 µs is `.5`.
        let (mut digits, mut width) = (fraction, 6);
        while digits % 10 == 0 {
            digits /= 10;
            width -= 1;
        }
        let _ = write!(out, ".{digits:0width$}");
    }
    out.push(b'S');
}
