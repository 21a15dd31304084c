//! Numbers in RisingWave's JSON form. RisingWave pins serde_json below 1.0.147, whose floats
//! are ryu's shortest round-trip text (`1e20`, `2.5e-7`, `1.0`); later serde_json releases
//! print with zmij, which writes the same digits twice as fast but `1e+20`. So doubles are
//! printed with zmij and the `+` dropped (`ryu_form_matches_ryu` checks this against ryu).

use nats_sink_rules::append::append;
pub use nats_sink_rules::numeric::check_numeric;
use nats_sink_rules::numeric::{parse_numeric, Numeric};

/// A double as RisingWave's serde_json writes it; NaN and the infinities are `null`.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let mut buffer = zmij::Buffer::new();
    let text = buffer.format_finite(v).as_bytes();
    // A `+` can only follow the `e` of an exponent, which is at most three digits long.
    let tail = text.len().saturating_sub(4);
    match text[tail..].iter().position(|&b| b == b'+') {
        Some(plus) => {
            append(out, &text[..tail + plus]);
            append(out, &text[tail + plus + 1..]);
        }
        None => append(out, text),
    }
}

pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    append(out, itoa::Buffer::new().format(v).as_bytes());
}

pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    append(out, itoa::Buffer::new().format(v).as_bytes());
}

/// Check a numeric's text and write it as RisingWave's numeric prints it: `-12.340` keeps its
/// scale, leading zeros go (`007.5` is `7.5`), zero has no sign. A value RisingWave cannot hold
/// exactly (more than 28 digits after the point, or a mantissa past 96 bits) is refused,
/// never rounded (the rules are `nats_sink_rules::numeric`'s, which the host checks with too).
pub fn write_numeric(out: &mut Vec<u8>, text: &str) -> Result<(), String> {
    let numeric = parse_numeric(text)?;
    out.push(b'"');
    match numeric {
        Numeric::Special(name) => out.extend_from_slice(name.as_bytes()),
        Numeric::Finite {
            negative,
            whole,
            fraction,
        } => {
            if negative {
                out.push(b'-');
            }
            append(
                out,
                if whole.is_empty() {
                    b"0"
                } else {
                    whole.as_bytes()
                },
            );
            if !fraction.is_empty() {
                out.push(b'.');
                append(out, fraction.as_bytes());
            }
        }
    }
    out.push(b'"');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn n(text: &str) -> Result<String, String> {
        let mut out = Vec::new();
        write_numeric(&mut out, text).map(|()| String::from_utf8(out).unwrap())
    }

    #[test]
    fn floats_in_risingwaves_form() {
        assert_eq!(f(1e20), "1e20");
        assert_eq!(f(2.5e20), "2.5e20");
        assert_eq!(f(f64::MAX), "1.7976931348623157e308");
        assert_eq!(f(f64::MIN), "-1.7976931348623157e308");
        assert_eq!(f(1e15), "1000000000000000.0");
        assert_eq!(f(1e16), "1e16");
        assert_eq!(f(1e21), "1e21");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(0.0), "0.0");
        assert_eq!(f(5e-324), "5e-324");
        assert_eq!(f(1e-7), "1e-7");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(f64::NAN), "null");
        assert_eq!(f(f64::NEG_INFINITY), "null");
    }

    /// What RisingWave's serde_json 1.0.145 wrote: ryu's text, `null` when not finite.
    fn ryu(v: f64) -> String {
        if v.is_finite() {
            ryu::Buffer::new().format_finite(v).to_string()
        } else {
            "null".to_string()
        }
    }

    #[test]
    fn ryu_form_matches_ryu() {
        let mut edges = vec![
            0.0,
            -0.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
            -5e-324,
            f64::from_bits(0x000f_ffff_ffff_ffff), // the largest subnormal
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9007199254740992.0,
            9007199254740993.0,
            0.1,
            0.3,
            1.1f32 as f64,
        ];
        // Every power of ten, and its neighbours, where the form switches (1e15, 1e16, 1e21...).
        for exp in -325..=309 {
            let p: f64 = format!("1e{exp}").parse().unwrap();
            for v in [p, -p, p * 2.5, p * 9.999999999999998] {
                edges.extend([
                    v,
                    f64::from_bits(v.to_bits() + 1),
                    f64::from_bits(v.to_bits().wrapping_sub(1)),
                ]);
            }
        }
        for v in edges {
            let mut out = Vec::new();
            write_f64(&mut out, v);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                ryu(v),
                "{:#x}",
                v.to_bits()
            );
        }
        // Random bit patterns (mostly 17 digits), random f32s widened (the `real` column), and
        // short decimals, where shortest-digit algorithms could differ in their choice.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = Vec::new();
        let mut check = |v: f64| {
            out.clear();
            write_f64(&mut out, v);
            assert_eq!(out, ryu(v).as_bytes(), "{:#x}", v.to_bits());
        };
        for _ in 0..2_000_000 {
            check(f64::from_bits(next()));
            check(f32::from_bits(next() as u32) as f64);
            let digits = next() % 100_000_000;
            let exp = (next() % 660) as i32 - 330;
            check(format!("{digits}e{exp}").parse().unwrap());
        }
    }

    #[test]
    fn numerics_exact_or_refused() {
        assert_eq!(n("-12.340").unwrap(), "\"-12.340\"");
        assert_eq!(n("007.50").unwrap(), "\"7.50\"");
        assert_eq!(n("-0.00").unwrap(), "\"0.00\"");
        assert_eq!(n("0").unwrap(), "\"0\"");
        assert_eq!(
            n("79228162514264337593543950335").unwrap(),
            "\"79228162514264337593543950335\""
        );
        assert_eq!(
            n("1.0000000000000000000000000001").unwrap(),
            "\"1.0000000000000000000000000001\""
        );
        assert_eq!(
            n("-0009999999999999999999999999999").unwrap(),
            "\"-9999999999999999999999999999\""
        );
        assert!(n("99999999999999999999999999999").is_err());
        assert!(n("79228162514264337593543950336").is_err());
        assert!(n("0.00000000000000000000000000001").is_err());
        for bad in ["", "-", "1.", ".5", "1e5", "nan", "+1", "1.2.3"] {
            assert!(n(bad).is_err(), "{bad:?}");
        }
    }
}
