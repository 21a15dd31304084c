//! Names NATS accepts: publish subjects, header names and header values. The guest checks
//! options and the text a row fills in with these rules, and the host checks every subject and
//! header a batch carries with the same ones.

pub use crate::control_headers::MESSAGE_ID_HEADER;
use crate::control_headers::{is_control_header, KV_OPERATION_HEADER};

/// The longest subject published. The server reads a message's subject on its control line
/// (`HPUB <subject> <header bytes> <total bytes>`), at most 4,096 bytes by default
/// (`max_control_line`), and the numbers and spaces take up to 29 of them.
pub const MAX_SUBJECT_BYTES: usize = 4_000;

/// A subject NATS accepts for publishing.
pub fn check_subject(subject: &str) -> Result<(), String> {
    check_literal_subject(subject)?;
    check_not_reserved(subject)
}

/// What every KV bucket's key subjects start with (`$KV.<bucket>.<key>`).
pub const KV_SUBJECT_PREFIX: &str = "$KV.";

/// The subject prefix of bucket `bucket`'s keys: `$KV.<bucket>.`.
pub fn kv_key_prefix(bucket: &str) -> String {
    format!("{KV_SUBJECT_PREFIX}{bucket}.")
}

/// The subject filter of every key of bucket `bucket`: `$KV.<bucket>.>`.
pub fn kv_keys_filter(bucket: &str) -> String {
    format!("{}>", kv_key_prefix(bucket))
}

/// The key `subject` names in bucket `bucket`, if it is one of that bucket's key subjects.
pub fn kv_key<'a>(subject: &'a str, bucket: &str) -> Option<&'a str> {
    subject
        .strip_prefix(KV_SUBJECT_PREFIX)?
        .strip_prefix(bucket)?
        .strip_prefix('.')
}

/// A subject of one key of KV bucket `bucket` (`$KV.<bucket>.<key>`), which an upsert sink
/// may publish to: a literal subject whose key NATS accepts (letters, digits and `-/_=.`).
pub fn check_kv_subject(subject: &str, bucket: &str) -> Result<(), String> {
    let Some(key) = kv_key(subject, bucket) else {
        return check_subject(subject);
    };
    check_literal_subject(subject)?;
    match key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=' | '.')))
    {
        Some(c) => Err(format!(
            "has the key `{key}`, and a KV key cannot hold {c:?}"
        )),
        None => Ok(()),
    }
}

/// A subject without wildcards, whitespace, control characters or empty tokens.
fn check_literal_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("must not be empty".into());
    }
    if subject.len() > MAX_SUBJECT_BYTES {
        return Err(format!(
            "is {} bytes long; NATS's control line leaves room for at most {MAX_SUBJECT_BYTES}",
            subject.len()
        ));
    }
    if let Some(ch) = subject.chars().find(|ch| ch.is_whitespace()) {
        return Err(format!("must not contain whitespace (found {ch:?})"));
    }
    check_no_control(subject)?;
    if subject.contains(['*', '>']) {
        return Err(format!(
            "`{subject}` contains a wildcard (`*` or `>`); publish subjects must be literal"
        ));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(format!(
            "`{subject}` has an empty token (leading, trailing or double `.`)"
        ));
    }
    Ok(())
}

/// Why a character is refused in a subject or a header value, if it is a control character
/// (C0, DEL or C1): the server passes it on as a raw byte that no tool shows, so a subject or
/// a header would differ from what it looks like (`a.b\0c` prints as `a.bc`).
pub fn check_no_control(text: &str) -> Result<(), String> {
    match text.chars().find(|ch| ch.is_control()) {
        Some(ch) => Err(format!(
            "must not contain a control character (found U+{:04X})",
            u32::from(ch)
        )),
        None => Ok(()),
    }
}

/// Subjects the sink must not publish to, and why: the server takes a message under the first
/// three as a command (`$JS.API.STREAM.PURGE.x` empties a stream), one under `$KV.` would
/// overwrite a key of a key-value bucket, and one under `$O.` a part of an object store's object.
pub const RESERVED_PREFIXES: [(&str, &str); 5] = [
    (
        "$JS.API.",
        "the server takes a message as a command, not as data",
    ),
    (
        "$JS.ACK.",
        "the server takes a message as a command, not as data",
    ),
    (
        "$SYS.",
        "the server takes a message as a command, not as data",
    ),
    (
        KV_SUBJECT_PREFIX,
        "a message overwrites a key of a key-value bucket",
    ),
    (
        "$O.",
        "a message overwrites a chunk or the metadata of an object store's object",
    ),
];

/// A subject outside the server's control subjects and the key-value buckets'
/// ([`RESERVED_PREFIXES`]).
pub fn check_not_reserved(subject: &str) -> Result<(), String> {
    match RESERVED_PREFIXES
        .iter()
        .find(|(prefix, _)| subject.starts_with(prefix))
    {
        Some((prefix, why)) => Err(format!("is under `{prefix}`, where {why}")),
        None => Ok(()),
    }
}

/// A header name NATS carries as is: visible ASCII without `:`.
pub fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the header name after `headers.` is empty".into());
    }
    match name.chars().find(|ch| !ch.is_ascii_graphic() || *ch == ':') {
        Some(ch) => Err(format!(
            "header name `{name}` contains {ch:?}; use visible ASCII without `:`"
        )),
        None => Ok(()),
    }
}

/// Why a header name a user gives (`headers.<name>`) is one NATS itself acts on, or `None`.
/// JetStream and KV read these to delete, purge, expire or refuse messages: `Nats-Rollup: all`
/// on one put empties a whole bucket, `KV-Operation: DEL` stores a put as a delete. Every
/// [`is_control_header`] name is refused except [`MESSAGE_ID_HEADER`], which the caller
/// decides.
pub fn reserved_header(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case(MESSAGE_ID_HEADER) || !is_control_header(name) {
        None
    } else if name.eq_ignore_ascii_case(KV_OPERATION_HEADER) {
        Some("KV reads it to turn the message into a delete or purge of its key")
    } else {
        Some("headers under `Nats-` are NATS's own: JetStream acts on them (rollups that delete messages, expected sequences, TTLs)")
    }
}

/// What NATS clients trim from either end of a header value: async-nats trims all Unicode
/// whitespace (a no-break space too), others spaces and tabs.
pub fn is_header_space(ch: char) -> bool {
    ch.is_whitespace()
}

/// Text that may stand anywhere in a header value: no line break (it would end the header
/// line) and no other control character.
pub fn check_header_text(text: &str) -> Result<(), String> {
    if text.contains(['\r', '\n']) {
        return Err("must not contain a line break".into());
    }
    check_no_control(text)
}

/// A header value NATS carries as is: no whitespace at either end, which NATS clients trim,
/// and [`check_header_text`].
pub fn check_header_value(value: &str) -> Result<(), String> {
    if value.starts_with(is_header_space) || value.ends_with(is_header_space) {
        return Err("must not start or end with whitespace: NATS clients trim it".into());
    }
    check_header_text(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_subjects_are_refused() {
        for subject in [
            "$JS.API.STREAM.PURGE.x",
            "$JS.ACK.s.c.1",
            "$SYS.REQ.SERVER.PING",
        ] {
            let err = check_subject(subject).unwrap_err();
            assert!(err.contains("command"), "{subject}: {err}");
        }
        // Issue 26: a row could overwrite a key of a key-value bucket.
        let err = check_subject("$KV.bucket.key").unwrap_err();
        assert!(err.contains("key-value bucket"), "{err}");
        let err = check_subject("$O.store.M.bmFtZQ").unwrap_err();
        assert!(err.contains("object store"), "{err}");
        for subject in [
            "$KV",
            "$O",
            "O.store.M.x",
            "KV.bucket.key",
            "$JS",
            "JS.API.x",
            "a.$JS.API.b",
        ] {
            assert!(check_subject(subject).is_ok(), "{subject}");
        }
    }

    #[test]
    fn an_upsert_sink_may_publish_to_its_own_bucket_only() {
        assert!(check_kv_subject("$KV.B.user/7.eu", "B").is_ok());
        let err = check_kv_subject("$KV.other.7", "B").unwrap_err();
        assert!(err.contains("key-value bucket"), "{err}");
        assert!(check_kv_subject("$KV.B.a:b", "B")
            .unwrap_err()
            .contains("':'"));
        assert!(check_kv_subject("$KV.B.", "B").is_err());
        assert_eq!(kv_key("$KV.B.user/7", "B"), Some("user/7"));
        assert_eq!(kv_key("$KV.BB.k", "B"), None);
        assert_eq!(kv_key("$KV.B", "B"), None);
        assert_eq!(kv_keys_filter("B"), "$KV.B.>");
        assert!(check_kv_subject("$KV.B.>", "B").is_err());
        assert!(check_kv_subject("$JS.API.STREAM.DELETE.KV_B", "B").is_err());
        assert!(check_kv_subject("rows", "B").is_ok());
    }

    #[test]
    fn subjects() {
        assert!(check_subject("orders.eu-1.created").is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("a b", "whitespace"),
            ("a.*", "wildcard"),
            ("a.>", "wildcard"),
            ("a..b", "empty token"),
            (".a", "empty token"),
            ("a.", "empty token"),
        ] {
            assert!(check_subject(bad).unwrap_err().contains(why), "{bad:?}");
        }
    }

    #[test]
    fn long_subjects_and_header_names() {
        assert!(check_subject(&"a".repeat(MAX_SUBJECT_BYTES)).is_ok());
        assert!(check_subject(&"a".repeat(MAX_SUBJECT_BYTES + 1))
            .unwrap_err()
            .contains("at most 4000"));
        assert!(check_header_name("X-Id").is_ok());
        assert!(check_header_name("").is_err());
        assert!(check_header_name("a:b").is_err());
        assert!(check_header_name("a b").is_err());
    }

    /// Issue 26: NUL and DEL were published inside a subject and a header value.
    #[test]
    fn control_characters_are_refused_in_subjects_and_header_values() {
        for bad in ["tp.x\0y", "tp.x\u{7f}y", "a\u{1b}[31m", "a\u{9b}b"] {
            let err = check_subject(bad).unwrap_err();
            assert!(err.contains("control character"), "{bad:?}: {err}");
            let err = check_header_value(bad).unwrap_err();
            assert!(err.contains("control character"), "{bad:?}: {err}");
        }
        assert!(check_header_value("a\tb")
            .unwrap_err()
            .contains("control character (found U+0009)"));
        assert!(check_header_value("a\r\nX: y")
            .unwrap_err()
            .contains("line break"));
        assert!(check_header_value(" a").unwrap_err().contains("trim"));
        assert!(check_header_value("a\u{a0}").unwrap_err().contains("trim"));
        assert!(check_header_value("a b.c\u{e9}").is_ok());
        assert!(check_subject("tp.\u{e9}t\u{e9}").is_ok());
    }

    #[test]
    fn headers_nats_acts_on_are_reserved_in_any_case() {
        for name in [
            "Nats-Rollup",
            "nats-rollup",
            "NATS-TTL",
            "Nats-Expected-Last-Subject-Sequence",
            "KV-Operation",
            "kv-operation",
        ] {
            assert!(reserved_header(name).is_some(), "{name}");
        }
        for name in ["Nats-Msg-Id", "nats-msg-id", "X-Source", "Natsy", "KV-Op"] {
            assert!(reserved_header(name).is_none(), "{name}");
        }
    }
}
