//! The sink's kind (`type`): append-only, or upsert into a NATS KV bucket; the options each
//! takes, and the rules a KV key follows.

use std::collections::BTreeMap;

use nats_sink_rules::control_headers;

use crate::option_specs::default_of;
use crate::template::Template;

/// What rows do to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// Every row is a message on the subject. `force`: `force_append_only = true`, which
    /// drops deletes and update-deletes and writes update-inserts as inserts.
    AppendOnly { force: bool },
    /// The table's latest state in a KV bucket.
    Upsert(Upsert),
}

/// `type = 'upsert'`: a put per insert, a delete marker per delete, under the row's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    /// `kv.bucket`: letters, digits, `-` and `_`.
    pub bucket: String,
    /// `primary_key`: the columns that identify a row, in the order given.
    pub primary_key: Vec<String>,
    /// `key_format`, or the primary key's columns joined by `.`.
    pub key_format: String,
    pub key_encoding: KeyEncoding,
    pub delete: KvDelete,
    /// `kv.history`: values kept per key when the host creates the bucket.
    pub history: u8,
}

/// The key a primary key makes without `key_format`: its columns' values joined by `.`.
pub fn default_key_format(primary_key: &[String]) -> String {
    primary_key
        .iter()
        .map(|name| format!("{{{name}}}"))
        .collect::<Vec<_>>()
        .join(".")
}

impl Upsert {
    /// The option a problem with the key is reported under: `key_format` when it differs from
    /// the key `primary_key` makes alone, else `primary_key` (a user who gave no `key_format`
    /// would not find it).
    pub fn key_option(&self) -> &'static str {
        match self.key_format == default_key_format(&self.primary_key) {
            true => "primary_key",
            false => "key_format",
        }
    }

    /// The subject prefix of the bucket's keys: `$KV.<bucket>.`.
    pub fn key_prefix(&self) -> String {
        nats_sink_rules::nats_names::kv_key_prefix(&self.bucket)
    }
}

/// How a value fills the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyEncoding {
    /// As its text; a value with a character a key cannot hold is refused.
    #[default]
    None,
    /// Each value as padded base64url (RFC 4648 §5), as NATS clients' base64 key codec
    /// encodes each token: reversible, and always valid in a key.
    Base64Url,
}

/// What a delete writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvDelete {
    /// `KV-Operation: DEL`: the key reads as deleted; its history stays.
    #[default]
    Delete,
    /// `KV-Operation: PURGE` with `Nats-Rollup: sub`: the key's history goes too.
    Purge,
}

impl KvDelete {
    /// The `KV-Operation` header's value.
    pub fn operation(self) -> &'static str {
        match self {
            KvDelete::Delete => control_headers::KV_DELETE,
            KvDelete::Purge => control_headers::KV_PURGE,
        }
    }
}

pub use control_headers::{KV_OPERATION_HEADER, KV_PURGE_ROLLUP, ROLLUP_HEADER};

/// Most values a bucket keeps per key (NATS KV's limit).
pub const MAX_HISTORY: u8 = 64;

/// The options only an upsert sink takes.
pub const UPSERT_OPTIONS: [&str; 6] = [
    "primary_key",
    "kv.bucket",
    "key_format",
    "kv.delete",
    "key_encoding",
    "kv.history",
];

/// `type` and the options of the kind it names; problems go to `problem`.
pub(crate) fn parse_kind(
    given: &BTreeMap<&str, &str>,
    problem: &mut dyn FnMut(&str, String),
) -> SinkKind {
    let kind = given.get("type").copied().unwrap_or(default_of("type"));
    let force = match given.get("force_append_only") {
        None => false,
        Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                problem(
                    "force_append_only",
                    format!("must be `true` or `false`, got `{raw}`"),
                );
                false
            }
        },
    };
    match kind {
        "append-only" => {
            for name in UPSERT_OPTIONS.iter().filter(|n| given.contains_key(*n)) {
                problem(
                    name,
                    "is an option of `type = 'upsert'`; this sink is append-only".into(),
                );
            }
            SinkKind::AppendOnly { force }
        }
        "upsert" => {
            if force {
                problem(
                    "force_append_only",
                    "an upsert sink writes deletes; `force_append_only = true` is for append-only sinks".into(),
                );
            }
            if given.contains_key("subject") {
                problem(
                    "subject",
                    "an upsert sink publishes each row to `$KV.<kv.bucket>.<key>`; leave `subject` out".into(),
                );
            }
            SinkKind::Upsert(parse_upsert(given, problem))
        }
        other => {
            problem(
                "type",
                format!("must be `append-only` or `upsert`, got `{other}`"),
            );
            SinkKind::AppendOnly { force }
        }
    }
}

fn parse_upsert(given: &BTreeMap<&str, &str>, problem: &mut dyn FnMut(&str, String)) -> Upsert {
    let bucket = match given.get("kv.bucket") {
        None => {
            problem(
                "kv.bucket",
                "required with `type = 'upsert'`: the NATS KV bucket to keep".into(),
            );
            String::new()
        }
        Some(raw) => {
            if let Err(why) = check_bucket(raw) {
                problem("kv.bucket", why);
            }
            raw.to_string()
        }
    };
    let primary_key: Vec<String> = match given.get("primary_key") {
        None => {
            problem(
                "primary_key",
                "required with `type = 'upsert'`: the columns that make each row's key, as `id` or `a,b`".into(),
            );
            Vec::new()
        }
        Some(raw) => {
            let names: Vec<String> = raw.split(',').map(|n| n.trim().to_string()).collect();
            if names.iter().any(String::is_empty) {
                problem(
                    "primary_key",
                    format!("`{raw}` has an empty column name; list columns as `a,b`"),
                );
            }
            for (i, name) in names.iter().enumerate() {
                if names[..i].contains(name) {
                    problem("primary_key", format!("names `{name}` twice"));
                }
            }
            names
        }
    };
    let key_format = match given.get("key_format") {
        Some(raw) => {
            if let Err(why) = check_key_format(raw, &primary_key) {
                problem("key_format", why);
            }
            raw.to_string()
        }
        None => default_key_format(&primary_key),
    };
    let key_encoding = match given.get("key_encoding").copied() {
        None | Some("none") => KeyEncoding::None,
        Some("base64url") => KeyEncoding::Base64Url,
        Some(other) => {
            problem(
                "key_encoding",
                format!("must be `none` or `base64url`, got `{other}`"),
            );
            KeyEncoding::None
        }
    };
    let delete = match given.get("kv.delete").copied() {
        None | Some("delete") => KvDelete::Delete,
        Some("purge") => KvDelete::Purge,
        Some(other) => {
            problem(
                "kv.delete",
                format!("must be `delete` or `purge`, got `{other}`"),
            );
            KvDelete::Delete
        }
    };
    let history = match given.get("kv.history") {
        None => default_of("kv.history").parse().unwrap_or(1),
        Some(raw) => match raw.trim().parse::<u8>() {
            Ok(h) if (1..=MAX_HISTORY).contains(&h) => h,
            _ => {
                problem(
                    "kv.history",
                    format!("must be a whole number from 1 to {MAX_HISTORY}, got `{raw}`"),
                );
                1
            }
        },
    };
    Upsert {
        bucket,
        primary_key,
        key_format,
        key_encoding,
        delete,
        history,
    }
}

/// A bucket name as NATS clients accept one.
pub fn check_bucket(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(c) => Err(format!(
            "`{name}` holds {c:?}; a bucket name takes letters, digits, `-` and `_`"
        )),
        None => Ok(()),
    }
}

/// `key_format`'s text: a template naming only primary-key columns, each of them, whose
/// literal parts a key can hold.
fn check_key_format(raw: &str, primary_key: &[String]) -> Result<(), String> {
    let template = Template::parse(raw)?;
    let named: Vec<&str> = template.columns().collect();
    if let Some(stray) = named.iter().find(|n| !primary_key.iter().any(|p| p == *n)) {
        return Err(format!(
            "names `{{{stray}}}`, which is not a primary_key column; a key is made of the primary key alone"
        ));
    }
    if let Some(missing) = primary_key.iter().find(|p| !named.contains(&p.as_str())) {
        return Err(format!(
            "leaves out primary_key column `{missing}`, so two rows could share a key"
        ));
    }
    let literal: String = template.with_sample("");
    if let Some(c) = literal.chars().find(|c| !is_key_char(*c)) {
        return Err(format!(
            "its text holds {c:?}; a KV key takes letters, digits and `-/_=.`"
        ));
    }
    check_whole_key(&template.with_sample("x"))
        .map_err(|why| format!("with each `{{column}}` as `x`, the key {why}"))
}

/// A character NATS allows in a KV key.
pub fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=' | '.')
}

/// The rules for a whole key beyond its characters: not empty, no `.` at either end, and no
/// empty token (`a..b` is no subject).
pub fn check_whole_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        Err("is empty".into())
    } else if key.starts_with('.') || key.ends_with('.') {
        Err(format!("{key:?} starts or ends with `.`"))
    } else if key.contains("..") {
        Err(format!("{key:?} has an empty token (`..`)"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(pairs: &[(&str, &str)]) -> (SinkKind, Vec<(String, String)>) {
        let given: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        let mut problems = Vec::new();
        let kind = parse_kind(&given, &mut |name, message| {
            problems.push((name.to_string(), message))
        });
        (kind, problems)
    }

    #[test]
    fn upsert_takes_its_options_and_defaults_the_key_to_the_primary_key() {
        let (k, problems) = kind(&[
            ("type", "upsert"),
            ("kv.bucket", "prices"),
            ("primary_key", "region, id"),
        ]);
        assert!(problems.is_empty(), "{problems:?}");
        let SinkKind::Upsert(u) = k else {
            panic!("{k:?}")
        };
        assert_eq!(u.primary_key, ["region", "id"]);
        assert_eq!(u.key_format, "{region}.{id}");
        assert_eq!(
            (u.delete, u.key_encoding, u.history),
            (KvDelete::Delete, KeyEncoding::None, 1)
        );
        assert_eq!(u.key_prefix(), "$KV.prices.");
    }

    #[test]
    fn each_wrong_upsert_option_is_named() {
        let (_, problems) = kind(&[
            ("type", "upsert"),
            ("kv.bucket", "a.b"),
            ("primary_key", "id"),
            ("key_format", "user {id} {name}"),
            ("kv.delete", "erase"),
            ("key_encoding", "hex"),
            ("kv.history", "65"),
            ("subject", "x"),
            ("force_append_only", "true"),
        ]);
        let names: Vec<&str> = problems.iter().map(|(n, _)| n.as_str()).collect();
        for name in [
            "kv.bucket",
            "key_format",
            "kv.delete",
            "key_encoding",
            "kv.history",
            "subject",
            "force_append_only",
        ] {
            assert!(names.contains(&name), "{name} not in {problems:?}");
        }
        let (_, problems) = kind(&[("type", "upsert")]);
        let names: Vec<&str> = problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["kv.bucket", "primary_key"]);
        let (_, problems) = kind(&[
            ("type", "upsert"),
            ("kv.bucket", "b"),
            ("primary_key", "a,b"),
            ("key_format", "k-{a}"),
        ]);
        assert!(
            problems[0].1.contains("leaves out primary_key column `b`"),
            "{problems:?}"
        );
        let (_, problems) = kind(&[
            ("type", "upsert"),
            ("kv.bucket", "b"),
            ("primary_key", "a"),
            ("key_format", ".{a}"),
        ]);
        assert!(
            problems[0].1.contains("starts or ends with `.`"),
            "{problems:?}"
        );
    }

    #[test]
    fn append_only_refuses_upsert_options_and_takes_force_append_only() {
        let (k, problems) = kind(&[("force_append_only", "true")]);
        assert_eq!(k, SinkKind::AppendOnly { force: true });
        assert!(problems.is_empty());
        let (k, _) = kind(&[]);
        assert_eq!(k, SinkKind::AppendOnly { force: false });
        let (_, problems) = kind(&[("kv.bucket", "b"), ("type", "retract")]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "type");
        let (_, problems) = kind(&[("kv.bucket", "b")]);
        assert_eq!(problems[0].0, "kv.bucket");
    }

    #[test]
    fn keys_follow_nats_rules() {
        assert!("a-b/c_d=e.f9".chars().all(is_key_char));
        assert!(!" *>$:".chars().any(is_key_char));
        assert!(check_whole_key("a.b").is_ok());
        for bad in ["", ".a", "a.", "a..b"] {
            assert!(check_whole_key(bad).is_err(), "{bad}");
        }
    }
}
