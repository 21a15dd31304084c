//! What a sink's component may make the host reach.
//!
//! The component is untrusted: it turns the options into a `connect-config`, and a hostile one
//! could name a server of its own (and send the user's credentials there) or a file to probe.
//! So, as Spin's `allowed_outbound_hosts` does, the host checks every `connect-config` before it
//! connects or reads a file. A component may reach only the servers and files that the options
//! the host passed it name, read again here by the host itself, and within what the embedder
//! allows in [`OutboundPolicy`].

use std::path::{Component, Path, PathBuf};

use nats_sink_rules::server_url;

use crate::bindings::transport::{Auth, ConnectConfig, TransportError};

/// The options that name a file the host reads.
const FILE_OPTIONS: [&str; 4] = ["credentials_file", "tls.ca", "tls.cert", "tls.key"];

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
    paths: Vec<String>,
    /// The options say `allow_create_stream = true`: only then may the guest ask for a stream.
    create_stream: bool,
}

impl Reach {
    /// What `options` name, as the user gave them, within `policy`. An entry the host cannot
    /// read names nothing; the component refuses such options anyway.
    pub fn from_options(options: &[(String, String)], policy: &OutboundPolicy) -> Reach {
        let value = |key: &str| options.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let servers = value("server_url")
            .and_then(|raw| server_url::parse(raw).ok())
            .unwrap_or_default()
            .iter()
            .map(server_url::ServerEntry::address)
            .filter(|address| policy.allows_server(address))
            .collect();
        let paths = FILE_OPTIONS
            .iter()
            .filter_map(|key| value(key))
            .filter(|path| policy.allows_path(path))
            .cloned()
            .collect();
        let create_stream =
            value("allow_create_stream").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        Reach {
            servers,
            paths,
            create_stream,
        }
    }

    /// Refuse `config` unless every server and file in it is within reach; names the first
    /// that is not.
    pub fn check(&self, config: &ConnectConfig) -> Result<(), TransportError> {
        if config.create_stream.is_some() && !self.create_stream {
            return Err(refused(
                "request to create a stream: the options do not say `allow_create_stream = true`"
                    .into(),
            ));
        }
        for entry in &config.servers {
            let parsed = server_url::parse(entry).ok().filter(|e| e.len() == 1);
            let Some(address) = parsed.map(|e| e[0].address()) else {
                return Err(refused(format!(
                    "server entry `{}`, which is not `host:port`",
                    server_url::redact(entry)
                )));
            };
            if !self.servers.contains(&address) {
                return Err(refused(format!(
                    "server `{address}`: {}",
                    allowed_list("servers", &self.servers)
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
        Ok(())
    }
}

fn refused(what: String) -> TransportError {
    TransportError::Connection(format!(
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
        }
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
        let TransportError::Connection(message) = err else {
            panic!("{err:?}")
        };
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
}
