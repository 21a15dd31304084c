//! The stream a sink may create (`allow_create_stream`, RisingWave's key): its limits from
//! RisingWave's other stream keys, the subject it captures and its name.

use std::collections::BTreeMap;

use crate::template::Template;

/// RisingWave's stream keys that become the created stream's limits. RisingWave parses them
/// (`NatsCommon`, as `i64` or `i32` from their text) but its sink never uses them.
pub const LIMIT_OPTIONS: [&str; 5] = [
    "max_bytes",
    "max_messages",
    "max_messages_per_subject",
    "max_consumers",
    "max_message_size",
];

/// The JetStream value for "no limit".
pub const NO_LIMIT: i64 = -1;

/// Limits of a stream the sink creates; `NO_LIMIT` where the option is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    pub max_bytes: i64,
    pub max_messages: i64,
    pub max_messages_per_subject: i64,
    pub max_consumers: i32,
    pub max_message_size: i32,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            max_bytes: NO_LIMIT,
            max_messages: NO_LIMIT,
            max_messages_per_subject: NO_LIMIT,
            max_consumers: NO_LIMIT as i32,
            max_message_size: NO_LIMIT as i32,
        }
    }
}

/// One option's problem: its name and what is wrong.
pub type Problem = (&'static str, String);

/// The limits given, each checked; every problem is returned. The limits are parsed whether or
/// not `allow_create_stream` is on, so a bad value is reported either way.
pub fn parse_limits(given: &BTreeMap<&str, &str>) -> Result<StreamLimits, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut limit = |name: &'static str, max: i64| match given.get(name) {
        None => NO_LIMIT,
        Some(raw) => parse_limit(raw, max).unwrap_or_else(|why| {
            problems.push((name, why));
            NO_LIMIT
        }),
    };
    let limits = StreamLimits {
        max_bytes: limit("max_bytes", i64::MAX),
        max_messages: limit("max_messages", i64::MAX),
        max_messages_per_subject: limit("max_messages_per_subject", i64::MAX),
        // RisingWave reads these two as i32, as the stream config holds them.
        max_consumers: limit("max_consumers", i32::MAX.into()) as i32,
        max_message_size: limit("max_message_size", i32::MAX.into()) as i32,
    };
    if problems.is_empty() {
        Ok(limits)
    } else {
        Err(problems)
    }
}

/// A limit as RisingWave reads it (Rust's integer syntax: digits with an optional sign), from
/// -1 to `max`. The server takes -1 and 0 alike as "no limit", so 0 becomes -1; below -1 it
/// refuses the stream, so that is refused here, before anything connects.
fn parse_limit(raw: &str, max: i64) -> Result<i64, String> {
    let range = format!("a whole number from -1 to {max} (-1 or 0: no limit)");
    match raw.trim().parse::<i64>() {
        Ok(0) => Ok(NO_LIMIT),
        Ok(v) if (NO_LIMIT..=max).contains(&v) => Ok(v),
        Ok(_) => Err(format!("must be {range}, got `{raw}`")),
        Err(_) => Err(format!("must be {range}, got `{raw}`")),
    }
}

/// The one subject a created stream captures: the subject itself, or for a template, every
/// token that holds a `{column}` as `*`. A filled part never holds `.` (such a row is refused),
/// so the wildcard covers every subject the template can make.
pub fn captured_subject(subject: &Template) -> String {
    // A valid subject's literal parts hold no whitespace, so a space marks the filled parts.
    subject
        .with_sample(" ")
        .split('.')
        .map(|token| if token.contains(' ') { "*" } else { token })
        .collect::<Vec<_>>()
        .join(".")
}

/// The created stream's name: `nats-sink-` and the first 16 hex digits of SHA-256 over the
/// subject it captures. The same subject always gets the same name, and a name never holds
/// what stream names cannot (`.`, `*`, `>`, whitespace, path separators).
pub fn stream_name(captured: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(captured.as_bytes());
    let mut name = String::from("nats-sink-");
    for byte in &digest[..8] {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn limits_take_risingwave_number_forms() {
        assert_eq!(parse_limits(&given(&[])), Ok(StreamLimits::default()));
        let limits = parse_limits(&given(&[
            ("max_bytes", "1048576"),
            ("max_messages", "+1000"),
            ("max_messages_per_subject", "-1"),
            ("max_consumers", "0"),
            ("max_message_size", "2147483647"),
        ]))
        .unwrap();
        assert_eq!(
            limits,
            StreamLimits {
                max_bytes: 1_048_576,
                max_messages: 1_000,
                max_messages_per_subject: -1,
                max_consumers: -1,
                max_message_size: i32::MAX,
            }
        );
    }

    #[test]
    fn bad_limits_name_each_option_and_its_range() {
        let problems = parse_limits(&given(&[
            ("max_bytes", "1MB"),
            ("max_messages", "-2"),
            ("max_messages_per_subject", "9223372036854775808"),
            ("max_consumers", "2147483648"),
            ("max_message_size", "1.5"),
        ]))
        .unwrap_err();
        let names: Vec<_> = problems.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, LIMIT_OPTIONS);
        assert_eq!(
            problems[0].1,
            "must be a whole number from -1 to 9223372036854775807 (-1 or 0: no limit), got `1MB`"
        );
        assert!(
            problems[3].1.contains("from -1 to 2147483647"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_template_subject_is_captured_by_its_wildcard_form() {
        let captured = |s: &str| captured_subject(&Template::parse(s).unwrap());
        assert_eq!(captured("orders"), "orders");
        assert_eq!(captured("orders.{region}.{status}"), "orders.*.*");
        assert_eq!(captured("orders.eu-{region}.new"), "orders.*.new");
        assert_eq!(captured("a.{x}{y}.b{{c}}"), "a.*.b{c}");
    }

    #[test]
    fn stream_names_are_deterministic_and_valid() {
        let name = stream_name("orders.*.*");
        assert_eq!(name, stream_name("orders.*.*"));
        assert_ne!(name, stream_name("orders.*"));
        assert_eq!(name.len(), "nats-sink-".len() + 16);
        assert!(name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
    }
}
