//! What a sink's component may make the host reach.
//!
//! The component is untrusted: it turns the options into a `connect-config`, and a hostile one
//! could name a server of its own (and send the user's credentials there) or a file to probe.
//! So, as Spin's `allowed_outbound_hosts` does, the host checks every `connect-config` before it
//! connects or reads a file. A component may reach only the servers and files that the options
//! the host passed it name, read again here by the host itself, and within what the embedder
//! allows in [`OutboundPolicy`]. Nor may it weaken what the options ask for: it must use TLS
//! where they require it, and authenticate with exactly the credentials they give (a component
//! that swapped them could act as another user, or drop TLS to send them in the clear).

use std::path::{Component, Path, PathBuf};

use nats_sink_rules::server_url;

use crate::bindings::transport::{Auth, ConnectConfig, Credential, TransportError, UserPassword};

/// The options that name a file the host reads.
pub const FILE_OPTIONS: [&str; 4] = ["credentials_file", "tls.ca", "tls.cert", "tls.key"];

/// Options whose mere presence requires TLS: a file for it.
pub const TLS_FILE_OPTIONS: [&str; 3] = ["tls.ca", "tls.cert", "tls.key"];

/// The option that requires TLS when it says `true` (any case, trimmed).
pub const TLS_REQUIRED_OPTION: &str = "tls.required";

/// The option that lets the component ask for a stream when it says `true`.
pub const CREATE_STREAM_OPTION: &str = "allow_create_stream";

/// Each `connect_mode` (none given: `plain`), the WIT `auth` case it allows, and the options
/// that fill that case's fields, in order (`user-password`: username, password; `credential`:
/// jwt, nkey-seed; one-field cases: their value). Only these exact credentials may be used.
pub const AUTH_MODES: [(&str, &str, &[&str]); 6] = [
    ("plain", "none", &[]),
    (
        "user_and_password",
        "user-password",
        &["username", "password"],
    ),
    ("credential", "credential", &["jwt", "nkey"]),
    ("token", "token", &["token"]),
    ("creds_file", "credentials-file", &["credentials_file"]),
    ("nkey", "nkey", &["nkey"]),
];

/// What an embedder lets any sink reach, on top of what each sink's options name.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Servers as `host:port`, or `host:*` for any port. `None`: whatever the options name.
    pub allowed_servers: Option<Vec<String>>,
    /// Files, or directories whose files may be read. `None`: whatever the options name.
    pub allowed_paths: Option<Vec<PathBuf>>,
}

impl OutboundPolicy {
    fn allows_server(&self, address: &str) -> bool {
        let Some(allowed) = &self.allowed_servers else {
            return true;
        };
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
        allowed.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            pattern == address || pattern.strip_suffix(":*") == Some(host)
        })
    }

    fn allows_path(&self, path: &str) -> bool {
        let Some(allowed) = &self.allowed_paths else {
            return true;
        };
        // `..` could climb out of an allowed directory, so such a path is never allowed.
        let path = Path::new(path);
        !path.components().any(|c| c == Component::ParentDir)
            && allowed.iter().any(|root| path.starts_with(root))
    }
}

/// The servers and files one sink may reach: those its options name that the embedder allows.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// `host:port`, lower-case host.
    servers: Vec<String>,
    /// The same entries with the user info the options give each (`None`: none).
    entries: Vec<(Option<String>, String)>,
    paths: Vec<String>,
    /// The options say `allow_create_stream = true`: only then may the guest ask for a stream.
    create_stream: bool,
    /// A `tls://` server, `tls.required = true` or any `tls.*` file: no connection without TLS.
    tls_required: bool,
    /// `type = 'upsert'` with `kv.bucket`: the one bucket whose `$KV.<bucket>.` subjects the
    /// guest may publish to. `None`: `$KV.` stays refused, as every reserved prefix is.
    kv_bucket: Option<String>,
    /// The credentials the options give; `None` when `connect_mode` names no mode this host
    /// knows (the component refuses such options; a connect-config for them is refused here).
    auth: Option<Auth>,
}

impl Reach {
    /// The KV bucket whose key subjects the guest may publish to, if the options name one.
    pub fn kv_bucket(&self) -> Option<&str> {
        self.kv_bucket.as_deref()
    }

    /// What `options` name, as the user gave them, within `policy`. An entry the host cannot
    /// read names nothing; the component refuses such options anyway.
    pub fn from_options(options: &[(String, String)], policy: &OutboundPolicy) -> Reach {
        let value = |key: &str| options.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let named = value("server_url")
            .and_then(|raw| server_url::parse(raw).ok())
            .unwrap_or_default();
        let allowed: Vec<_> = named
            .iter()
            .filter(|entry| policy.allows_server(&entry.address()))
            .collect();
        let servers = allowed.iter().map(|entry| entry.address()).collect();
        let entries = allowed
            .iter()
            .map(|entry| (entry.userinfo.clone(), entry.address()))
            .collect();
        let tls_required = named.iter().any(|entry| entry.tls)
            || value(TLS_REQUIRED_OPTION).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || TLS_FILE_OPTIONS.iter().any(|key| value(key).is_some());
        let paths = FILE_OPTIONS
            .iter()
            .filter_map(|key| value(key))
            .filter(|path| policy.allows_path(path))
            .cloned()
            .collect();
        let create_stream =
            value(CREATE_STREAM_OPTION).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let kv_bucket = value("type")
            .filter(|kind| kind.as_str() == "upsert")
            .and(value("kv.bucket"))
            .cloned();
        Reach {
            kv_bucket,
            servers,
            entries,
            paths,
            create_stream,
            tls_required,
            auth: expected_auth(&value),
        }
    }

    /// Refuse `config` unless every server and file in it is within reach; names the first
    /// that is not.
    pub fn check(&self, config: &ConnectConfig) -> Result<(), TransportError> {
        let asked_bucket = config.kv.as_ref().map(|kv| &kv.name);
        if asked_bucket != self.kv_bucket.as_ref() {
            return Err(refused(match (asked_bucket, &self.kv_bucket) {
                (Some(asked), Some(named)) => format!(
                    "KV bucket `{asked}`: the options name `kv.bucket = '{named}'`, and only that one may be used"
                ),
                (Some(asked), None) => format!(
                    "KV bucket `{asked}`: the options do not say `type = 'upsert'` with a `kv.bucket`"
                ),
                _ => "connection without its KV bucket: the options say `type = 'upsert'`, which keeps each key in order".into(),
            }));
        }
        let creates_bucket = config
            .kv
            .as_ref()
            .is_some_and(|kv| kv.create_with_history.is_some());
        if (config.create_stream.is_some() || creates_bucket) && !self.create_stream {
            return Err(refused(
                "request to create a stream: the options do not say `allow_create_stream = true`"
                    .into(),
            ));
        }
        for entry in &config.servers {
            let parsed = server_url::parse(entry).ok().filter(|e| e.len() == 1);
            let Some(parsed) = parsed.map(|mut e| e.remove(0)) else {
                return Err(refused(format!(
                    "server entry `{}`, which is not `host:port`",
                    server_url::redact(entry)
                )));
            };
            let address = parsed.address();
            if !self.servers.contains(&address) {
                return Err(refused(format!(
                    "server `{address}`: {}",
                    allowed_list("servers", &self.servers)
                )));
            }
            if !self.entries.contains(&(parsed.userinfo, address.clone())) {
                return Err(refused(format!(
                    "user info for server `{address}`, which is not what `server_url` gives it"
                )));
            }
        }
        let tls = config.tls.iter().flat_map(|tls| {
            [
                ("tls.ca", &tls.ca_file),
                ("tls.cert", &tls.cert_file),
                ("tls.key", &tls.key_file),
            ]
        });
        let files = tls.filter_map(|(option, path)| Some((option, path.as_ref()?)));
        let creds = match &config.auth {
            Auth::CredentialsFile(path) => Some(("credentials_file", path)),
            _ => None,
        };
        for (option, path) in files.chain(creds) {
            if !self.paths.contains(path) {
                return Err(refused(format!(
                    "reading `{path}` for `{option}`: {}",
                    allowed_list("files", &self.paths)
                )));
            }
        }
        if self.tls_required && config.tls.is_none() {
            return Err(refused(
                "connection without TLS: the options require TLS (a `tls://` server, \
                 `tls.required = true` or a `tls.*` file)"
                    .into(),
            ));
        }
        if !self
            .auth
            .as_ref()
            .is_some_and(|auth| same_auth(auth, &config.auth))
        {
            return Err(refused(format!(
                "{} authentication: the options give {}",
                auth_kind(&config.auth),
                self.auth
                    .as_ref()
                    .map_or("no credentials this host knows".into(), |auth| {
                        format!(
                            "{} credentials, and only those may be used",
                            auth_kind(auth)
                        )
                    })
            )));
        }
        Ok(())
    }
}

/// The credentials the options give, as `connect_mode` reads them (no `connect_mode`: none).
fn expected_auth<'a>(value: &impl Fn(&str) -> Option<&'a String>) -> Option<Auth> {
    let given = |key: &str| value(key).cloned().unwrap_or_default();
    Some(match value("connect_mode").map(String::as_str) {
        None | Some("plain") => Auth::None,
        Some("user_and_password") => Auth::UserPassword(UserPassword {
            username: given("username"),
            password: given("password"),
        }),
        Some("credential") => Auth::Credential(Credential {
            jwt: given("jwt"),
            nkey_seed: given("nkey"),
        }),
        Some("token") => Auth::Token(given("token")),
        Some("creds_file") => Auth::CredentialsFile(given("credentials_file")),
        Some("nkey") => Auth::Nkey(given("nkey")),
        Some(_) => return None,
    })
}

fn same_auth(expected: &Auth, asked: &Auth) -> bool {
    match (expected, asked) {
        (Auth::None, Auth::None) => true,
        (Auth::UserPassword(a), Auth::UserPassword(b)) => {
            a.username == b.username && a.password == b.password
        }
        (Auth::Credential(a), Auth::Credential(b)) => a.jwt == b.jwt && a.nkey_seed == b.nkey_seed,
        (Auth::Token(a), Auth::Token(b))
        | (Auth::CredentialsFile(a), Auth::CredentialsFile(b))
        | (Auth::Nkey(a), Auth::Nkey(b)) => a == b,
        _ => false,
    }
}

/// The kind of `auth`, never its secret.
fn auth_kind(auth: &Auth) -> &'static str {
    match auth {
        Auth::None => "no",
        Auth::UserPassword(_) => "user and password",
        Auth::Credential(_) => "JWT and NKey",
        Auth::Token(_) => "token",
        Auth::CredentialsFile(_) => "credentials file",
        Auth::Nkey(_) => "NKey",
    }
}

fn refused(what: String) -> TransportError {
    TransportError::connection(format!(
        "the host's policy refused the component's {what}; nothing was connected or read"
    ))
}

fn allowed_list(kind: &str, allowed: &[String]) -> String {
    match allowed {
        [] => format!("the options name no {kind} it may use"),
        _ => format!("the options allow only {}", allowed.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::transport::{Delivery, Tls};

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn config(servers: &[&str], auth: Auth, tls: Option<Tls>) -> ConnectConfig {
        ConnectConfig {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            auth,
            tls,
            connect_timeout_ms: 1,
            flush_timeout_ms: 1,
            delivery: Delivery {
                ack_timeout_ms: 1,
                max_in_flight: 1,
                max_attempts: 1,
                max_elapsed_ms: 1,
                initial_backoff_ms: 1,
                max_backoff_ms: 1,
            },
            create_stream: None,
            kv: None,
        }
    }

    #[test]
    fn only_the_bucket_the_options_name_may_be_used() {
        use crate::bindings::transport::KvBucket;
        let upsert = Reach::from_options(
            &options(&[
                ("server_url", "a:1"),
                ("type", "upsert"),
                ("kv.bucket", "B"),
            ]),
            &OutboundPolicy::default(),
        );
        assert_eq!(upsert.kv_bucket(), Some("B"));
        let mut asking = config(&["a:1"], Auth::None, None);
        let bucket = |name: &str, create: Option<u8>| KvBucket {
            name: name.into(),
            create_with_history: create,
        };
        // Without its bucket, a connection would not keep keys in order.
        assert!(upsert.check(&asking).is_err());
        asking.kv = Some(bucket("B", None));
        assert!(upsert.check(&asking).is_ok());
        asking.kv = Some(bucket("OTHER", None));
        let err = upsert.check(&asking).unwrap_err();
        assert!(format!("{err:?}").contains("only that one"), "{err:?}");
        // Creating it needs allow_create_stream.
        asking.kv = Some(bucket("B", Some(1)));
        assert!(format!("{:?}", upsert.check(&asking).unwrap_err()).contains("allow_create_stream"));

        let plain = Reach::from_options(
            &options(&[("server_url", "a:1"), ("kv.bucket", "B")]),
            &OutboundPolicy::default(),
        );
        assert_eq!(plain.kv_bucket(), None);
        asking.kv = Some(bucket("B", None));
        assert!(plain.check(&asking).is_err());
    }

    #[test]
    fn servers_the_options_name_are_allowed_others_refused() {
        let reach = Reach::from_options(
            &options(&[("server_url", "nats://u:p@Nats.local:4222,b:1")]),
            &OutboundPolicy::default(),
        );
        assert!(reach
            .check(&config(&["u:p@nats.local:4222", "b:1"], Auth::None, None))
            .is_ok());
        let err = reach
            .check(&config(&["evil.example:4222"], Auth::None, None))
            .unwrap_err();
        let TransportError::Connection(failure) = err else {
            panic!("{err:?}")
        };
        let message = failure.message;
        assert!(message.contains("evil.example:4222"), "{message}");
        assert!(!message.contains(":p@"), "{message}");
    }

    #[test]
    fn files_the_options_name_are_allowed_others_refused() {
        let reach = Reach::from_options(
            &options(&[("server_url", "a:1"), ("tls.ca", "/certs/ca.pem")]),
            &OutboundPolicy::default(),
        );
        let tls = |ca: &str| {
            Some(Tls {
                ca_file: Some(ca.into()),
                cert_file: None,
                key_file: None,
            })
        };
        assert!(reach
            .check(&config(&["a:1"], Auth::None, tls("/certs/ca.pem")))
            .is_ok());
        for (auth, tls) in [
            (Auth::None, tls("/etc/passwd")),
            (Auth::CredentialsFile("/etc/shadow".into()), None),
        ] {
            assert!(reach.check(&config(&["a:1"], auth, tls)).is_err());
        }
    }

    #[test]
    fn the_embedder_narrows_what_options_may_name() {
        let policy = OutboundPolicy {
            allowed_servers: Some(vec!["nats.internal:*".into()]),
            allowed_paths: Some(vec!["/certs".into()]),
        };
        let reach = Reach::from_options(
            &options(&[
                ("server_url", "nats.internal:4222,other:4222"),
                ("tls.ca", "/certs/../etc/passwd"),
                ("tls.cert", "/certs/client.pem"),
            ]),
            &policy,
        );
        assert_eq!(reach.servers, ["nats.internal:4222"]);
        assert_eq!(reach.paths, ["/certs/client.pem"]);
    }

    #[test]
    fn a_stream_is_created_only_when_the_options_allow_it() {
        let mut asking = config(&["a:1"], Auth::None, None);
        asking.create_stream = Some(crate::bindings::transport::StreamRequest {
            name: "nats-sink-x".into(),
            subject: "a".into(),
            max_bytes: -1,
            max_messages: -1,
            max_messages_per_subject: -1,
            max_consumers: -1,
            max_message_size: -1,
        });
        let without = Reach::from_options(
            &options(&[("server_url", "a:1")]),
            &OutboundPolicy::default(),
        );
        assert!(without.check(&asking).is_err());
        let with = Reach::from_options(
            &options(&[("server_url", "a:1"), ("allow_create_stream", "true")]),
            &OutboundPolicy::default(),
        );
        assert!(with.check(&asking).is_ok());
    }

    #[test]
    fn tls_the_options_require_cannot_be_dropped() {
        let with_tls = Some(Tls {
            ca_file: None,
            cert_file: None,
            key_file: None,
        });
        for asking in [
            &[("server_url", "tls://a:1")][..],
            &[("server_url", "a:1"), ("tls.required", " TRUE")],
            &[("server_url", "a:1"), ("tls.ca", "/certs/ca.pem")],
        ] {
            let reach = Reach::from_options(&options(asking), &OutboundPolicy::default());
            let err = reach
                .check(&config(&["a:1"], Auth::None, None))
                .unwrap_err();
            assert!(
                format!("{err:?}").contains("without TLS"),
                "{asking:?}: {err:?}"
            );
            assert!(reach
                .check(&config(&["a:1"], Auth::None, with_tls.clone()))
                .is_ok());
        }
        let plain = Reach::from_options(
            &options(&[("server_url", "a:1"), ("tls.required", "false")]),
            &OutboundPolicy::default(),
        );
        assert!(plain.check(&config(&["a:1"], Auth::None, None)).is_ok());
    }

    #[test]
    fn only_the_credentials_the_options_give_are_used() {
        let reach = Reach::from_options(
            &options(&[
                ("server_url", "a:1"),
                ("connect_mode", "user_and_password"),
                ("username", "u"),
                ("password", "secret-pw"),
            ]),
            &OutboundPolicy::default(),
        );
        let user = |name: &str, password: &str| {
            Auth::UserPassword(UserPassword {
                username: name.into(),
                password: password.into(),
            })
        };
        assert!(reach
            .check(&config(&["a:1"], user("u", "secret-pw"), None))
            .is_ok());
        for swapped in [
            user("admin", "secret-pw"),
            user("u", "other"),
            Auth::None,
            Auth::Token("secret-pw".into()),
        ] {
            let err = reach.check(&config(&["a:1"], swapped, None)).unwrap_err();
            let message = format!("{err:?}");
            assert!(message.contains("authentication"), "{message}");
            assert!(!message.contains("secret-pw"), "{message}");
        }
        // No connect_mode (the hostile test guest's options): no credentials at all.
        let none = Reach::from_options(
            &options(&[("server_url", "a:1")]),
            &OutboundPolicy::default(),
        );
        assert!(none
            .check(&config(&["a:1"], Auth::Token("baked-in".into()), None))
            .is_err());
        // An unknown mode: nothing is allowed.
        let unknown = Reach::from_options(
            &options(&[("server_url", "a:1"), ("connect_mode", "oauth")]),
            &OutboundPolicy::default(),
        );
        assert!(unknown.check(&config(&["a:1"], Auth::None, None)).is_err());
    }

    /// AUTH_MODES (what the Python and Node hosts read, through the conformance policy file)
    /// says what `expected_auth` does, mode by mode and field by field.
    #[test]
    fn the_auth_table_is_what_the_policy_applies() {
        for (mode, tag, fields) in AUTH_MODES {
            let given: Vec<(String, String)> = fields
                .iter()
                .map(|f| (f.to_string(), format!("value-of-{f}")))
                .chain([("connect_mode".to_string(), mode.to_string())])
                .collect();
            let value = |key: &str| given.iter().find(|(k, _)| k == key).map(|(_, v)| v);
            let auth = expected_auth(&value).unwrap();
            let v = |i: usize| format!("value-of-{}", fields[i]);
            let expected = match tag {
                "none" => Auth::None,
                "user-password" => Auth::UserPassword(UserPassword {
                    username: v(0),
                    password: v(1),
                }),
                "credential" => Auth::Credential(Credential {
                    jwt: v(0),
                    nkey_seed: v(1),
                }),
                "token" => Auth::Token(v(0)),
                "credentials-file" => Auth::CredentialsFile(v(0)),
                "nkey" => Auth::Nkey(v(0)),
                other => panic!("{other}"),
            };
            assert!(same_auth(&auth, &expected), "{mode}");
        }
    }

    #[test]
    fn user_info_in_a_server_entry_is_only_what_the_options_give() {
        let reach = Reach::from_options(
            &options(&[("server_url", "u:p@a:1,b:2")]),
            &OutboundPolicy::default(),
        );
        assert!(reach
            .check(&config(&["u:p@a:1", "b:2"], Auth::None, None))
            .is_ok());
        for entries in [&["admin:x@a:1"][..], &["a:1"], &["u:p@b:2"]] {
            assert!(
                reach.check(&config(entries, Auth::None, None)).is_err(),
                "{entries:?}"
            );
        }
    }
}
