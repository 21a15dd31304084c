//! `server_url` entries: `[nats://|tls://][user[:password]@]host:port`, comma-separated.
//!
//! The guest parses them to build its connect config; the host parses the user's own option
//! again to decide which servers a component may reach (its policy never trusts the guest's
//! reading), and both show an entry only with its user info masked.

use std::fmt;

/// One parsed entry of `server_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// `user`, `user:password` or a token, as written before the `@`.
    pub userinfo: Option<String>,
    /// A name, an IPv4 address or a bracketed IPv6 address, as written.
    pub host: String,
    /// The port, never 0.
    pub port: u16,
    /// The entry has the `tls://` scheme.
    pub tls: bool,
}

impl ServerEntry {
    /// What the host connects to: `[userinfo@]host:port`, as async-nats reads it after `nats://`.
    pub fn connect_text(&self) -> String {
        match &self.userinfo {
            Some(info) => format!("{info}@{}:{}", self.host, self.port),
            None => self.address(),
        }
    }

    /// `host:port` with the host in lower case: the server's identity for a policy.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host.to_ascii_lowercase(), self.port)
    }
}

/// Shows the entry as `host:port`, with `user:***@` or `***@` in place of any user info.
impl fmt::Display for ServerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(info) = &self.userinfo {
            write!(f, "{}@", mask_userinfo(info))?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// `user:***` for `user:password`, `***` for a lone token or user.
fn mask_userinfo(info: &str) -> String {
    match info.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    }
}

/// `text` with the user info of every URL-like part masked: for showing any server text
/// (`a:1,nats://u:p@b:2`) that may hold a password.
pub fn redact(text: &str) -> String {
    text.split(',')
        .map(|entry| {
            let (scheme, rest) = match entry.split_once("://") {
                Some((scheme, rest)) => (format!("{scheme}://"), rest),
                None => (String::new(), entry),
            };
            match rest.rsplit_once('@') {
                Some((info, host)) => format!("{scheme}{}@{host}", mask_userinfo(info)),
                None => entry.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Why an entry of `server_url` is refused. Its text never holds the entry's user info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError(String);

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EntryError {}

/// Split `server_url` into its entries, in order.
pub fn parse(raw: &str) -> Result<Vec<ServerEntry>, EntryError> {
    raw.split(',')
        .enumerate()
        .map(|(i, entry)| parse_entry(entry.trim(), i + 1))
        .collect()
}

fn parse_entry(entry: &str, position: usize) -> Result<ServerEntry, EntryError> {
    // No message quotes the entry: a typo (a space for the `@`, a forgotten host) can leave a
    // password where no mask would find it. The position and the problem are enough.
    let fail = |why: &str| Err(EntryError(format!("entry {position} {why}")));
    if entry.is_empty() {
        return fail("is empty");
    }
    let (tls, rest) = match entry.split_once("://") {
        // `nats:user:pw@host:4222` would read as user `nats` with password `user:pw`.
        None if starts_with_scheme_word(entry) => {
            return fail(
                "starts with a scheme but no `//`: write `nats://` or `tls://` (a user named \
                 `nats` or `tls` needs the scheme before it: `nats://nats:...@host:port`)",
            )
        }
        None => (false, entry),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("nats") => (false, rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("tls") => (true, rest),
        Some(_) => return fail("has a scheme other than `nats://` or `tls://`"),
    };
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some(("", _)) => return fail("has an empty user before `@`"),
        Some((info, hostport)) => (Some(info.to_string()), hostport),
        None => (None, rest),
    };
    if hostport.contains(['/', '?', '#']) {
        return fail("has a path after `host:port`; a path is not allowed in a server URL");
    }
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return fail("needs a port, as in `host:4222`");
    };
    let host_ok = !host.is_empty()
        && !host.contains(|ch: char| ch.is_whitespace() || matches!(ch, '/' | '@' | '?' | '#'))
        && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
    if !host_ok {
        return fail("has an invalid host (a name, an IPv4 address or a bracketed IPv6 address)");
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return fail("has an invalid port (1 to 65535)"),
    };
    if let Some(info) = &userinfo {
        if info.contains(|ch: char| ch.is_whitespace() || ch == '/') || decode(info).is_none() {
            return fail(
                "has user info with whitespace, `/` or a broken `%` escape; percent-encode it \
                 (`@` as %40, `:` in a user as %3A, `/` as %2F, `%` as %25)",
            );
        }
    }
    Ok(ServerEntry {
        userinfo,
        host: host.to_string(),
        port,
        tls,
    })
}

/// True when `entry` reads as a scheme missing its `//`: `nats:` or `tls:` (in any case)
/// followed by user info or a `/`. `nats:4222` is a host named `nats` (as in a compose file).
fn starts_with_scheme_word(entry: &str) -> bool {
    entry.split_once(':').is_some_and(|(word, rest)| {
        (word.eq_ignore_ascii_case("nats") || word.eq_ignore_ascii_case("tls"))
            && (rest.starts_with('/') || rest.contains('@'))
    })
}

/// `text` with its `%XX` escapes decoded, as URLs carry user info; `None` if an escape is
/// broken or the result is not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// How an entry's user info authenticates, decoded.
#[derive(Clone, PartialEq, Eq)]
pub enum UserInfo {
    /// `user:password@`
    UserPassword(String, String),
    /// `token@`
    Token(String),
}

impl ServerEntry {
    /// The entry's user info, percent-decoded: a user and password, or a token.
    pub fn credentials(&self) -> Option<UserInfo> {
        let info = self.userinfo.as_deref()?;
        Some(match info.split_once(':') {
            Some((user, password)) => UserInfo::UserPassword(decode(user)?, decode(password)?),
            None => UserInfo::Token(decode(info)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_schemes_and_lists() {
        let entries = parse("nats://a:1, b:2,NATS://[::1]:4222,tls://c:3").unwrap();
        let texts: Vec<String> = entries.iter().map(ServerEntry::connect_text).collect();
        assert_eq!(texts, ["a:1", "b:2", "[::1]:4222", "c:3"]);
        assert_eq!(entries.iter().filter(|e| e.tls).count(), 1);
        // A host named like a scheme, as a compose file names its NATS service.
        let named = parse("nats:4222,TLS:1").unwrap();
        assert_eq!(named[0].connect_text(), "nats:4222");
        assert_eq!(named[1].connect_text(), "tls:1");
    }

    #[test]
    fn refusals_name_the_entry_and_the_problem() {
        for (raw, why) in [
            ("a:1,,b:2", "entry 2 is empty"),
            ("ws://a:1", "other than `nats://` or `tls://`"),
            ("a", "needs a port"),
            ("a:0", "invalid port"),
            ("a:70000", "invalid port"),
            ("a b:1", "invalid host"),
            ("::1:4222", "invalid host"),
            ("@a:1", "empty user"),
            // Issue 26: these passed, or named the wrong problem.
            ("nats:user:pw@host:4222", "scheme but no `//`"),
            ("NATS:user:pw@host:4222", "scheme but no `//`"),
            ("tls:user@host:4222", "scheme but no `//`"),
            ("nats:/host:4222", "scheme but no `//`"),
            ("nats://a:4222/path", "a path is not allowed"),
            ("nats://u:p@a:4222/", "a path is not allowed"),
            ("a:4222?x=1", "a path is not allowed"),
        ] {
            let err = parse(raw).unwrap_err().to_string();
            assert!(err.contains(why), "{raw}: {err}");
        }
    }

    #[test]
    fn user_info_is_kept_for_connecting_and_masked_when_shown() {
        let entry = &parse("nats://alice:S3cret@Host:4222,tok3n@b:1").unwrap();
        assert_eq!(entry[0].userinfo.as_deref(), Some("alice:S3cret"));
        assert_eq!(entry[0].connect_text(), "alice:S3cret@Host:4222");
        assert_eq!(entry[0].address(), "host:4222");
        assert_eq!(entry[0].to_string(), "alice:***@Host:4222");
        assert_eq!(entry[1].to_string(), "***@b:1");
    }

    #[test]
    fn no_refusal_shows_the_password() {
        for raw in [
            "nats://alice:S3cret@h",
            "nats://alice:S3cret@h:0",
            "ws://alice:S3cret@h:1",
            "alice:S3cret@h h:1",
            "alice:S3 cret@h:1",
            "nats://alice:S3cret 127.0.0.1:1",
            "nats://S3cret",
            "nats://alice:S3cret%zz@h:1",
            "nats:alice:S3cret@h:1",
            "nats://alice:S3cret@h:1/x",
        ] {
            let err = parse(raw).unwrap_err().to_string();
            assert!(!err.contains("S3cret") && !err.contains("S3 cret"), "{err}");
        }
    }

    #[test]
    fn user_info_is_percent_decoded() {
        let entries = parse("nats://bob:Ab%40cd%3Aef%2Fg%25h@h:1,t%5Fk@h:2").unwrap();
        assert!(
            entries[0].credentials()
                == Some(UserInfo::UserPassword("bob".into(), "Ab@cd:ef/g%h".into()))
        );
        assert!(entries[1].credentials() == Some(UserInfo::Token("t_k".into())));
        // A user named like a scheme, written with the scheme first.
        let named = parse("nats://nats:pw@h:1").unwrap();
        assert!(named[0].credentials() == Some(UserInfo::UserPassword("nats".into(), "pw".into())));
    }

    #[test]
    fn redact_masks_every_entry() {
        assert_eq!(
            redact("a:1,nats://u:p@b:2,t@c:3"),
            "a:1,nats://u:***@b:2,***@c:3"
        );
    }
}
