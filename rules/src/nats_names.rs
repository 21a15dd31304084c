//! Names NATS accepts: publish subjects and header names. The guest checks options with these
//! rules and the host checks every subject a batch carries with the same ones.

/// The longest subject published. The server reads a message's subject on its control line
/// (`HPUB <subject> <header bytes> <total bytes>`), at most 4,096 bytes by default
/// (`max_control_line`), and the numbers and spaces take up to 29 of them.
pub const MAX_SUBJECT_BYTES: usize = 4_000;

/// A subject NATS accepts for publishing.
pub fn check_subject(subject: &str) -> Result<(), String> {
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
    check_not_reserved(subject)
}

/// Subjects the server acts on: a row published there is a command (`$JS.API.STREAM.PURGE.x`
/// empties a stream), not a message.
const RESERVED_PREFIXES: [&str; 3] = ["$JS.API.", "$JS.ACK.", "$SYS."];

/// A subject outside the server's control subjects ([`RESERVED_PREFIXES`]).
pub fn check_not_reserved(subject: &str) -> Result<(), String> {
    match RESERVED_PREFIXES.iter().find(|p| subject.starts_with(*p)) {
        Some(prefix) => Err(format!(
            "is under `{prefix}`, where the server takes a message as a command, not as data"
        )),
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
        for subject in ["$KV.bucket.key", "$JS", "JS.API.x", "a.$JS.API.b"] {
            assert!(check_subject(subject).is_ok(), "{subject}");
        }
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
}
