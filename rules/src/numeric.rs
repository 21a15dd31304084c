//! What a numeric's text must be: the form RisingWave's numeric (rust_decimal, a 96-bit
//! mantissa and at most 28 digits after the point) holds exactly. The host checks input with
//! it and the guest encodes with it, so both refuse the same values.

/// The largest mantissa RisingWave's numeric (rust_decimal: 96 bits) holds.
const NUMERIC_MAX_MANTISSA: u128 = (1 << 96) - 1;
/// The most digits after the point RisingWave's numeric holds.
pub const NUMERIC_MAX_SCALE: usize = 28;

/// A numeric's text taken apart, every part a slice of the text checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numeric<'a> {
    /// `NaN`, `Infinity` or `-Infinity`, as written.
    Special(&'a str),
    /// A finite value: `negative` only when it is not zero, `whole` without leading zeros
    /// (empty for zero), `fraction` as written (its scale kept).
    Finite {
        /// A `-` is written: the value is below zero.
        negative: bool,
        /// Digits before the point, without leading zeros.
        whole: &'a str,
        /// Digits after the point, as written.
        fraction: &'a str,
    },
}

/// Whether the digits of `whole` (no leading zeros) then `fraction` make a mantissa of at most
/// 96 bits. 28 digits always fit (10^28 < 2^96): only longer ones are counted out.
fn fits_mantissa(whole: &str, fraction: &str) -> bool {
    whole.len() + fraction.len() <= 28
        || whole
            .bytes()
            .chain(fraction.bytes())
            .try_fold(0u128, |m, b| {
                m.checked_mul(10)?
                    .checked_add((b - b'0') as u128)
                    .filter(|m| *m <= NUMERIC_MAX_MANTISSA)
            })
            .is_some()
}

/// Take `text` apart as RisingWave's numeric reads it, or say why it cannot hold it exactly
/// (never rounded). One pass over the bytes: every value of a numeric column goes through
/// here, and in wasm each `split_once`, `contains` or string compare is a call and a loop.
pub fn parse_numeric(text: &str) -> Result<Numeric<'_>, String> {
    let bytes = text.as_bytes();
    let negative = bytes.first() == Some(&b'-');
    let start = negative as usize;
    // Where the one `.` is, if any; every other byte must be a digit.
    let mut point = None;
    for (at, &byte) in bytes.iter().enumerate().skip(start) {
        if byte == b'.' && point.is_none() {
            point = Some(at);
        } else if !byte.is_ascii_digit() {
            return special_or_error(text);
        }
    }
    let (whole, fraction) = match point {
        Some(at) => (&text[start..at], &text[at + 1..]),
        None => (&text[start..], ""),
    };
    if whole.is_empty() || (point.is_some() && fraction.is_empty()) {
        return Err(not_a_numeric(text));
    }
    if fraction.len() > NUMERIC_MAX_SCALE {
        return Err(format!(
            "`{text}` has {} digits after the point; a numeric holds at most {NUMERIC_MAX_SCALE}",
            fraction.len()
        ));
    }
    let zeros = whole.bytes().take_while(|&b| b == b'0').count();
    let whole = &whole[zeros..];
    if !fits_mantissa(whole, fraction) {
        return Err(format!(
            "`{text}` has more significant digits than a numeric holds (a 96-bit mantissa, at most 79228162514264337593543950335)"
        ));
    }
    Ok(Numeric::Finite {
        negative: negative && !(whole.is_empty() && fraction.bytes().all(|b| b == b'0')),
        whole,
        fraction,
    })
}

/// A text with a byte that is neither a digit nor the first `.`: one of the special values,
/// or not a numeric.
fn special_or_error(text: &str) -> Result<Numeric<'_>, String> {
    match text {
        "NaN" | "Infinity" | "-Infinity" => Ok(Numeric::Special(text)),
        _ => Err(not_a_numeric(text)),
    }
}

fn not_a_numeric(text: &str) -> String {
    format!("`{text}` is not a numeric (expected digits with an optional `-` and `.`, or NaN/Infinity/-Infinity)")
}

/// Whether `text` is a numeric RisingWave holds exactly (see [`parse_numeric`]).
pub fn check_numeric(text: &str) -> Result<(), String> {
    parse_numeric(text).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_text_is_checked() {
        for bad in ["", "-", "1.", ".5", "1e5", "nan", "+1", "1.2.3"] {
            assert!(check_numeric(bad).is_err(), "{bad:?}");
        }
        for good in ["0", "-0.0", "7922816251426433759354395033.5"] {
            assert!(check_numeric(good).is_ok(), "{good:?}");
        }
        let err = check_numeric("123456789012345678901234567890.5").unwrap_err();
        assert!(err.contains("significant digits"), "{err}");
    }

    /// The first form of `parse_numeric` (split, then check each part), kept as the oracle.
    fn parse_by_parts(text: &str) -> Result<Numeric<'_>, String> {
        if matches!(text, "NaN" | "Infinity" | "-Infinity") {
            return Ok(Numeric::Special(text));
        }
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) || (digits.contains('.') && !all_digits(fraction)) {
            return Err(not_a_numeric(text));
        }
        if fraction.len() > NUMERIC_MAX_SCALE {
            return Err("scale".into());
        }
        let whole = whole.trim_start_matches('0');
        if !fits_mantissa(whole, fraction) {
            return Err("digits".into());
        }
        Ok(Numeric::Finite {
            negative: negative && !(whole.is_empty() && fraction.bytes().all(|b| b == b'0')),
            whole,
            fraction,
        })
    }

    /// Every text of up to six bytes over an alphabet of digits, signs, points and letters,
    /// and long digit runs at the scale and mantissa limits, parse as the oracle parses them.
    #[test]
    fn one_pass_agrees_with_the_parts() {
        let alphabet = ["0", "7", "9", ".", "-", "+", "e", "N", "I", "\u{e9}"];
        let mut texts = vec![String::new()];
        let mut all = Vec::new();
        for _ in 0..6 {
            texts = texts
                .iter()
                .flat_map(|t| alphabet.iter().map(move |a| format!("{t}{a}")))
                .collect();
            all.extend(texts.iter().cloned());
        }
        all.extend(["NaN", "Infinity", "-Infinity", "NaN.", "-NaN", "Infinity0"].map(String::from));
        for len in 26..32 {
            for lead in ["", "0", "000", "-", "-00"] {
                let nines = "9".repeat(len);
                all.push(format!("{lead}{nines}"));
                all.push(format!("{lead}1.{nines}"));
                all.push(format!("{lead}{nines}.5"));
                all.push(format!("{lead}0.{}", "0".repeat(len)));
            }
        }
        all.push("79228162514264337593543950335".into());
        all.push("79228162514264337593543950336".into());
        all.push("7922816251426433759354395033.5".into());
        all.push("7922816251426433759354395033.6".into());
        for text in &all {
            let (got, want) = (parse_numeric(text), parse_by_parts(text));
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{text:?}"),
                (Err(g), Err(w)) if w == "scale" => {
                    assert!(g.contains("after the point"), "{text:?}")
                }
                (Err(g), Err(w)) if w == "digits" => assert!(g.contains("significant"), "{text:?}"),
                (Err(g), Err(w)) => assert_eq!(g, w, "{text:?}"),
                _ => panic!("{text:?}: {got:?} against {want:?}"),
            }
        }
    }

    #[test]
    fn parts_are_normalized() {
        assert_eq!(
            parse_numeric("-007.50"),
            Ok(Numeric::Finite {
                negative: true,
                whole: "7",
                fraction: "50"
            })
        );
        assert_eq!(
            parse_numeric("-0.000"),
            Ok(Numeric::Finite {
                negative: false,
                whole: "",
                fraction: "000"
            })
        );
        assert_eq!(
            parse_numeric("-Infinity"),
            Ok(Numeric::Special("-Infinity"))
        );
    }
}
