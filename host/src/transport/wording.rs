//! How transport errors are worded: server lists cut short, secrets masked, a far end that
//! is not NATS named as such, TLS failures explained, and the server's error reports read.

use async_nats::jetstream::context::PublishError;

use nats_sink_rules::server_url::{self, redact};

use crate::bindings::transport::{Auth, TransportError};

pub(crate) fn connection_error(message: impl std::fmt::Display) -> TransportError {
    TransportError::connection(message)
}

/// `servers` for a message: the first few, then how many more, so that a list of 1,000
/// entries does not make a 16 KB error.
pub fn list_servers(servers: &[String]) -> String {
    const SHOWN: usize = 3;
    let shown = redact(&servers[..servers.len().min(SHOWN)].join(","));
    match servers.len().saturating_sub(SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// Every secret the connection sends: passwords, tokens, JWTs and seeds, from `auth` or
/// from the URL user info it authenticates with.
pub(super) fn secrets_of(
    auth: &Auth,
    url_credentials: Option<&server_url::UserInfo>,
) -> Vec<String> {
    let mut secrets = match auth {
        Auth::UserPassword(up) => vec![up.password.clone()],
        Auth::Credential(cred) => vec![cred.jwt.clone(), cred.nkey_seed.clone()],
        Auth::Token(token) | Auth::Nkey(token) => vec![token.clone()],
        Auth::None | Auth::CredentialsFile(_) => Vec::new(),
    };
    match url_credentials {
        Some(server_url::UserInfo::UserPassword(_, password)) => secrets.push(password.clone()),
        Some(server_url::UserInfo::Token(token)) => secrets.push(token.clone()),
        None => {}
    }
    secrets
}

/// `text` with every secret of three characters or more replaced by `***` (shorter ones would
/// mangle the message and are no secret worth the name).
pub(super) fn masked(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| secret.len() >= 3)
        .fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
}

/// What nats-server itself says when it refuses a CONNECT: words of its own, quoting nothing
/// the client sent.
const SERVER_CONNECT_REFUSALS: [&str; 12] = [
    "authentication timeout",
    "maximum connections exceeded",
    "maximum account connections exceeded",
    "secure connection - tls required",
    "user authentication expired",
    "user authentication revoked",
    "account authentication expired",
    "invalid client protocol",
    "client name required",
    "minimum version required",
    "server shutdown",
    "no responders requires headers support",
];

/// Why a connect failed, in words safe to show. A far end's `-ERR` in answer to CONNECT is
/// shown only when it is one of nats-server's own refusals: anything else may quote the
/// CONNECT line, whose credentials a masking of whole secrets misses when the echo is cut
/// short (`"pass":"S3cretP`).
pub(super) fn connect_failure(error: &async_nats::ConnectError, secrets: &[String]) -> String {
    let server_said = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<async_nats::ServerError>());
    match server_said {
        Some(async_nats::ServerError::Other(text)) if !is_server_connect_refusal(text) => {
            "the server refused the connection; its words are not shown, as a far end can              quote the credentials it was sent"
                .to_string()
        }
        _ => masked(&far_end_safe(&error.to_string()), secrets),
    }
}

fn is_server_connect_refusal(text: &str) -> bool {
    let text = text.trim().trim_matches('\'').trim().to_ascii_lowercase();
    SERVER_CONNECT_REFUSALS.contains(&text.as_str())
}

/// `error` with any text the far end sent cut short and escaped: a server that is not a
/// NATS server (say an SSH daemon) is named as such, not quoted at length.
pub(super) fn far_end_safe(error: &str) -> String {
    const SERVER_SAID: &str = "invalid server operation";
    match error.find(SERVER_SAID) {
        None => error.to_string(),
        Some(at) => {
            let said = error[at + SERVER_SAID.len()..].trim_start_matches([':', ' ']);
            let excerpt: String = said
                .chars()
                .take(16)
                .collect::<String>()
                .escape_debug()
                .to_string();
            format!("the server did not speak NATS (it began with `{excerpt}`…)")
        }
    }
}

/// What a TLS failure means for the options, where rustls's words leave it unclear.
pub(super) fn tls_hint(error: &str, tls_required: bool) -> &'static str {
    if error.contains("UnknownIssuer") {
        " (the server's certificate is not signed by the CA in `tls.ca` nor by a system root)"
    } else if tls_required && error.contains("InvalidContentType") {
        // rustls reads a plain-text server's INFO line as a corrupt record.
        " (TLS is required, but the server answered in plain text: is TLS enabled on it?)"
    } else {
        ""
    }
}

/// True when the server's error report `error` is a permission violation that names `about`
/// (a subject in quotes, or `$JS.API`): the server refuses by reporting, not by replying.
pub(crate) fn is_permission_violation(error: &str, about: &str) -> bool {
    error.contains("Permissions Violation") && error.contains(about)
}

/// The JetStream API error behind a publish failure, where the server sent one.
pub(crate) fn jetstream_error(error: &PublishError) -> Option<&async_nats::jetstream::Error> {
    std::error::Error::source(error)?.downcast_ref::<async_nats::jetstream::Error>()
}

/// True when JetStream is not enabled on the server: its API has no responders.
pub(crate) fn is_no_responders(e: &(dyn std::error::Error + 'static)) -> bool {
    jetstream_request_failed(
        e,
        async_nats::jetstream::context::RequestErrorKind::NoResponders,
    )
}

/// A failed JetStream API request as a transport error: `timeout` when it had no reply in
/// time (that can pass: a JetStream electing its leader), otherwise `publish` (the server
/// said no, or the request was malformed: final).
pub(crate) fn request_failure(
    e: &(dyn std::error::Error + 'static),
    message: impl std::fmt::Display,
) -> TransportError {
    if is_request_timeout(e) {
        TransportError::timeout(message)
    } else {
        TransportError::publish(message)
    }
}

/// Whether a JetStream request (anywhere in `e`'s chain) had no reply within its timeout.
pub(crate) fn is_request_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    jetstream_request_failed(
        e,
        async_nats::jetstream::context::RequestErrorKind::TimedOut,
    )
}

fn jetstream_request_failed(
    e: &(dyn std::error::Error + 'static),
    kind: async_nats::jetstream::context::RequestErrorKind,
) -> bool {
    use async_nats::jetstream::context::RequestError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        // async-nats wraps the request's error in another of kind `Other`: look at every level.
        if err
            .downcast_ref::<RequestError>()
            .is_some_and(|r| r.kind() == kind)
        {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26: a far end that echoed a cut-short CONNECT line showed a prefix of the password.
    #[test]
    fn a_servers_words_after_connect_are_shown_only_when_they_are_nats_servers_own() {
        let secrets = vec!["S3cretPassword-Zq81".to_string()];
        let echoed = async_nats::ConnectError::with_source(
            async_nats::ConnectErrorKind::Io,
            async_nats::ServerError::Other(
                "Authorization Violation: CONNECT {\"user\":\"u\",\"pass\":\"S3cretP".into(),
            ),
        );
        let said = connect_failure(&echoed, &secrets);
        assert!(!said.contains("S3cretP"), "{said}");
        assert!(said.contains("refused the connection"), "{said}");

        let own = async_nats::ConnectError::with_source(
            async_nats::ConnectErrorKind::Io,
            async_nats::ServerError::Other("Maximum Connections Exceeded".into()),
        );
        assert!(
            connect_failure(&own, &secrets).contains("Maximum Connections Exceeded"),
            "{}",
            connect_failure(&own, &secrets)
        );
        let refused = async_nats::ConnectError::with_source(
            async_nats::ConnectErrorKind::AuthorizationViolation,
            async_nats::ServerError::AuthorizationViolation,
        );
        assert!(connect_failure(&refused, &secrets).contains("authorization violation"));
    }
}
