//! What the transport would refuse at connect that the options alone decide: a file an option
//! names that cannot be read, a seed that does not parse. Found before connecting, these are
//! bad options (exit 2), and `validate` reports them as `run` would. The host's policy is
//! checked first, so that no file the options do not name is ever opened.

use crate::bindings::transport::{Auth, ConnectConfig, TransportError};
use crate::policy::Reach;

/// The largest credentials file read: a `.creds` file is a few kilobytes.
const MAX_CREDENTIALS_BYTES: u64 = 1 << 20;

/// A problem with one option, in the words `describe_option_problem` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The option's name.
    pub option: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "option `{}`: {}", self.option, self.message)
    }
}

fn problem(option: &str, message: impl Into<String>) -> Problem {
    Problem {
        option: option.to_string(),
        message: message.into(),
    }
}

/// A regular file that can be opened for reading, or why not.
fn readable_file(path: &str) -> Result<std::fs::File, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("`{path}`: {e}"))?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok(file),
        Ok(_) => Err(format!("`{path}` is not a regular file")),
        Err(e) => Err(format!("`{path}`: {e}")),
    }
}

/// Every problem with the files and keys `config` names; empty when there are none. An error
/// when `config` reaches past `reach` (then nothing was read).
pub fn check(config: &ConnectConfig, reach: &Reach) -> Result<Vec<Problem>, TransportError> {
    reach.check(config)?;
    let mut problems = Vec::new();
    if let Some(tls) = &config.tls {
        for (option, path) in [
            ("tls.ca", &tls.ca_file),
            ("tls.cert", &tls.cert_file),
            ("tls.key", &tls.key_file),
        ] {
            if let Some(path) = path {
                if let Err(why) = tls_file(option, path) {
                    problems.push(problem(option, why));
                }
            }
        }
    }
    // A seed's text is never echoed: only the kind of problem is reported.
    let seed_problem = |seed: &str| {
        nkeys::KeyPair::from_seed(seed)
            .err()
            .map(|_| problem("nkey", "is not a valid NKey seed"))
    };
    match &config.auth {
        Auth::Nkey(seed) => problems.extend(seed_problem(seed)),
        Auth::Credential(credential) => problems.extend(seed_problem(&credential.nkey_seed)),
        Auth::CredentialsFile(path) => {
            if let Err(why) = credentials_file(path) {
                problems.push(problem("credentials_file", why));
            }
        }
        Auth::None | Auth::UserPassword(_) | Auth::Token(_) => {}
    }
    Ok(problems)
}

/// The largest PEM file read: certificates and keys are a few kilobytes each.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why the file a `tls.*` option names cannot serve, or `Ok`. async-nats would take a file with
/// no PEM block in silence; the reason never quotes the file.
pub(crate) fn tls_file(option: &str, path: &str) -> Result<(), String> {
    use std::io::Read as _;
    let label = match option {
        "tls.key" => "PRIVATE KEY-----",
        _ => "-----BEGIN CERTIFICATE-----",
    };
    let mut text = Vec::new();
    readable_file(path)?
        .take(MAX_PEM_BYTES)
        .read_to_end(&mut text)
        .map_err(|e| format!("`{path}`: {e}"))?;
    if !text.windows(label.len()).any(|w| w == label.as_bytes()) {
        let kind = if option == "tls.key" {
            "private key"
        } else {
            "certificate"
        };
        return Err(format!("`{path}` holds no PEM {kind}"));
    }
    Ok(())
}

/// Options that authenticate with the `.creds` file at `path` (read with a bound), or why it
/// cannot serve.
pub(crate) fn credentials_file(path: &str) -> Result<async_nats::ConnectOptions, String> {
    use std::io::Read as _;
    let file = readable_file(path)?;
    let mut text = String::new();
    file.take(MAX_CREDENTIALS_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("`{path}`: {e}"))?;
    if text.len() as u64 > MAX_CREDENTIALS_BYTES {
        return Err(format!(
            "`{path}` is larger than {MAX_CREDENTIALS_BYTES} bytes; a .creds file is a few kilobytes"
        ));
    }
    // The parser's words may quote the file; only the kind of problem is reported.
    match async_nats::ConnectOptions::new().credentials(&text) {
        Ok(options) => Ok(options),
        Err(_) => Err(format!(
            "`{path}` is not a .creds file (it needs a user JWT and an NKey seed, \
             as `nsc` writes them)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::transport::{Delivery, Tls};

    /// `check` within a reach that allows every file and server `config` names.
    fn check(config: &ConnectConfig) -> Vec<Problem> {
        let mut options = vec![("server_url".to_string(), config.servers.join(","))];
        if let Some(tls) = &config.tls {
            for (key, path) in [
                ("tls.ca", &tls.ca_file),
                ("tls.cert", &tls.cert_file),
                ("tls.key", &tls.key_file),
            ] {
                options.extend(path.clone().map(|p| (key.to_string(), p)));
            }
        }
        let given: Vec<(&str, String)> = match &config.auth {
            Auth::None => vec![],
            Auth::CredentialsFile(path) => {
                vec![
                    ("connect_mode", "creds_file".into()),
                    ("credentials_file", path.clone()),
                ]
            }
            Auth::Nkey(seed) => vec![("connect_mode", "nkey".into()), ("nkey", seed.clone())],
            Auth::Token(token) => vec![("connect_mode", "token".into()), ("token", token.clone())],
            Auth::Credential(c) => vec![
                ("connect_mode", "credential".into()),
                ("jwt", c.jwt.clone()),
                ("nkey", c.nkey_seed.clone()),
            ],
            Auth::UserPassword(u) => vec![
                ("connect_mode", "user_and_password".into()),
                ("username", u.username.clone()),
                ("password", u.password.clone()),
            ],
        };
        options.extend(given.into_iter().map(|(k, v)| (k.to_string(), v)));
        let reach = Reach::from_options(&options, &Default::default());
        super::check(config, &reach).expect("within reach")
    }

    fn config(auth: Auth, tls: Option<Tls>) -> ConnectConfig {
        ConnectConfig {
            servers: vec!["127.0.0.1:4222".into()],
            auth,
            tls,
            connect_timeout_ms: 1000,
            flush_timeout_ms: 1000,
            delivery: Delivery {
                ack_timeout_ms: 1000,
                max_in_flight: 1,
                max_attempts: 1,
                max_elapsed_ms: 1000,
                initial_backoff_ms: 1,
                max_backoff_ms: 1,
            },
            create_stream: None,
            kv: None,
        }
    }

    /// Issue 16: a missing `tls.ca` or `credentials_file` exited 1, as a delivery failure.
    #[test]
    fn missing_files_and_bad_seeds_are_option_problems() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem").display().to_string();
        let tls = Tls {
            ca_file: Some(missing.clone()),
            cert_file: None,
            key_file: None,
        };
        let problems = check(&config(Auth::None, Some(tls)));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].option, "tls.ca");
        assert!(problems[0].message.contains("missing.pem"), "{problems:?}");

        let problems = check(&config(Auth::CredentialsFile(missing), None));
        assert_eq!(problems[0].option, "credentials_file");
        let junk = dir.path().join("junk.creds");
        std::fs::write(&junk, "not a creds file").unwrap();
        let problems = check(&config(
            Auth::CredentialsFile(junk.display().to_string()),
            None,
        ));
        assert!(
            problems[0].message.contains("not a .creds file"),
            "{problems:?}"
        );
        let problems = check(&config(
            Auth::CredentialsFile(dir.path().display().to_string()),
            None,
        ));
        assert!(
            problems[0].message.contains("not a regular file"),
            "{problems:?}"
        );

        let junk_seed = format!("SU{}", "A".repeat(56));
        let problems = check(&config(Auth::Nkey(junk_seed.clone()), None));
        assert_eq!(problems, vec![problem("nkey", "is not a valid NKey seed")]);
        assert!(!problems[0].to_string().contains(&junk_seed));
        let valid = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
        assert!(check(&config(Auth::Nkey(valid.into()), None)).is_empty());
        assert!(check(&config(Auth::None, None)).is_empty());
    }

    #[test]
    fn tls_files_must_hold_pem_blocks_and_are_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ca.pem");
        std::fs::write(&junk, "no-cert-Zq81").unwrap();
        let tls = Tls {
            ca_file: Some(junk.display().to_string()),
            cert_file: None,
            key_file: None,
        };
        let problems = check(&config(Auth::None, Some(tls)));
        assert!(
            problems[0].message.contains("holds no PEM certificate"),
            "{problems:?}"
        );
        assert!(!problems[0].message.contains("Zq81"), "{problems:?}");
    }

    #[test]
    fn a_file_past_the_policy_is_never_opened() {
        let reach = Reach::from_options(
            &[("server_url".to_string(), "127.0.0.1:4222".to_string())],
            &Default::default(),
        );
        let config = config(Auth::CredentialsFile("/etc/shadow".into()), None);
        assert!(super::check(&config, &reach).is_err());
    }
}
