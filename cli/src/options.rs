//! Where a command's sink options come from: `--with KEY=VALUE`, `--with-env KEY=VAR`,
//! `--options-file FILE`, or a `--sql` statement whose `SECRET name` values are resolved from
//! the environment or from the options file. Secrets need never be on the command line, and
//! no error here shows an option's value.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use nats_sink_rules::secrets::is_secret;

use crate::secret_values::SecretValues;

/// The largest options file read, so that `--options-file /dev/zero` cannot fill memory.
const MAX_OPTIONS_FILE: u64 = 1 << 20;

/// Where the sink's options come from.
#[derive(clap::Args)]
pub struct SinkOptions {
    /// A sink option, as in `WITH (key='value')`; repeat for each. Secrets given here show in
    /// `ps` and shell history: prefer --with-env or --options-file for them.
    #[arg(long = "with", value_name = "KEY=VALUE", value_parser = parse_pair)]
    with: Vec<(String, String)>,
    /// Take option KEY from environment variable VAR (for example `password=NATS_PASSWORD`).
    #[arg(long = "with-env", value_name = "KEY=VAR", value_parser = parse_pair)]
    with_env: Vec<(String, String)>,
    /// Read options from FILE: `key=value` lines, as --with takes them (spaces around the value
    /// dropped); `#` starts a comment.
    /// `secret.NAME=value` lines resolve `SECRET NAME` in --sql.
    #[arg(long = "options-file", value_name = "FILE")]
    options_file: Option<PathBuf>,
    /// Take the options from a statement: `CREATE SINK s FROM t WITH (...) FORMAT PLAIN
    /// ENCODE JSON [(...)]`, the ENCODE options included. `key = SECRET NAME` takes the value
    /// from environment variable NAME, else from `secret.NAME` in --options-file.
    #[arg(long, value_name = "STATEMENT", conflicts_with_all = ["with", "with_env"])]
    sql: Option<String>,
}

/// `KEY=VALUE` (or `KEY=VAR`), split at the first `=`. The text is never echoed: it may be a
/// secret typed without its key.
pub fn parse_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE (no `=` found)".to_string())?;
    Ok((key.trim().to_string(), value.to_string()))
}

/// The options as the component takes them, and which of them hold a secret's value.
pub(crate) struct GivenOptions {
    pub(crate) pairs: Vec<(String, String)>,
    pub(crate) secret: SecretValues,
}

impl SinkOptions {
    /// Every option, from every source, in the order: file, --with, --with-env (or the
    /// statement). A key given by two sources reaches the component twice, which refuses it.
    pub(crate) fn given(self) -> anyhow::Result<GivenOptions> {
        let mut secret = SecretValues::default();
        let file = match &self.options_file {
            Some(path) => OptionsFile::read(path)?,
            None => OptionsFile::default(),
        };
        let mut pairs = file.options.clone();
        match &self.sql {
            None => {
                pairs.extend(self.with);
                for (key, var) in self.with_env {
                    // `password=<the password>` by mistake would be echoed: for a secret's key,
                    // only a name written as environment variables are (`NATS_PW`) is shown.
                    let plain_name = var
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                    let hide = is_secret(&key) && !plain_name;
                    let value = from_env(&var).map_err(|e| match hide {
                        true => anyhow!("--with-env {key}=…: the variable it names is not set"),
                        false => e.context(format!("--with-env {key}={var}")),
                    })?;
                    secret.add(&key, "--with-env".into());
                    pairs.push((key, value));
                }
            }
            Some(sql) => {
                let statement = nats_sink_cli::sql::parse_create_sink(sql).context("--sql")?;
                pairs.extend(statement.options);
                for (key, name) in statement.secrets {
                    let value = from_env(&name)
                        .ok()
                        .or_else(|| file.secret(&name))
                        .ok_or_else(|| {
                            anyhow!(
                                "--sql: option `{key}` = SECRET {name}: set environment variable \
                                 `{name}`, or give `secret.{name}=...` in --options-file"
                            )
                        })?;
                    secret.add(&key, format!("SECRET {name}"));
                    pairs.push((key, value));
                }
            }
        }
        Ok(GivenOptions { pairs, secret })
    }
}

fn from_env(var: &str) -> anyhow::Result<String> {
    match std::env::var(var) {
        Ok(value) => Ok(value),
        Err(std::env::VarError::NotPresent) => bail!("environment variable `{var}` is not set"),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("environment variable `{var}` is not valid UTF-8")
        }
    }
}

/// The lines of an `--options-file`.
#[derive(Default)]
struct OptionsFile {
    options: Vec<(String, String)>,
    /// `secret.NAME=value` lines: (NAME, value).
    secrets: Vec<(String, String)>,
}

impl OptionsFile {
    fn read(path: &Path) -> anyhow::Result<OptionsFile> {
        let context = || format!("--options-file {}", path.display());
        let file = std::fs::File::open(path).with_context(context)?;
        let mut text = String::new();
        use std::io::Read as _;
        let read = file
            .take(MAX_OPTIONS_FILE + 1)
            .read_to_string(&mut text)
            .with_context(context)?;
        if read as u64 > MAX_OPTIONS_FILE {
            bail!("{}: larger than {} KiB", context(), MAX_OPTIONS_FILE >> 10);
        }
        let parsed = OptionsFile::parse(&text).with_context(context)?;
        if parsed.holds_secret() {
            warn_if_shared(path);
        }
        Ok(parsed)
    }

    fn parse(text: &str) -> anyhow::Result<OptionsFile> {
        let mut parsed = OptionsFile::default();
        // An editor's byte order mark is no part of the first key (the JSON Lines reader
        // drops it too).
        let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) =
                parse_pair(line).map_err(|why| anyhow!("line {}: {why}", index + 1))?;
            // `key = value` reads naturally in a file; spaces around the value are not kept.
            let value = value.trim().to_string();
            match key.strip_prefix("secret.") {
                Some(name) => parsed.secrets.push((name.to_string(), value)),
                None => parsed.options.push((key, value)),
            }
        }
        Ok(parsed)
    }

    fn secret(&self, name: &str) -> Option<String> {
        self.secrets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.clone())
    }

    fn holds_secret(&self) -> bool {
        !self.secrets.is_empty() || self.options.iter().any(|(key, _)| is_secret(key))
    }
}

/// A file of secrets that others can read is a leak waiting to happen; say so.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                eprintln!(
                    "nats-sink: warning: {} holds secrets and is readable by others; \
                     run `chmod 600` on it",
                    path.display()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_file_lines_comments_and_secrets() {
        let file = OptionsFile::parse(
            "# the sink\nserver_url = nats://h:4222\n\n  subject=a.b=c\nsecret.pw=hunter2\n",
        )
        .unwrap();
        assert_eq!(
            file.options,
            [
                ("server_url".to_string(), "nats://h:4222".to_string()),
                ("subject".into(), "a.b=c".into())
            ]
        );
        assert_eq!(file.secret("pw").as_deref(), Some("hunter2"));
        assert!(file.holds_secret());
    }

    /// Issue 26: a file saved with a byte order mark gave ``unknown option `\u{FEFF}server_url` ``.
    #[test]
    fn a_byte_order_mark_is_dropped() {
        let file = OptionsFile::parse("\u{FEFF}server_url=nats://h:4222\n").unwrap();
        assert_eq!(
            file.options,
            [("server_url".to_string(), "nats://h:4222".to_string())]
        );
    }

    #[test]
    fn a_bad_line_is_named_by_number_not_shown() {
        // (OptionsFile has no Debug, which could print its secrets.)
        let Err(err) = OptionsFile::parse("subject=a\nhunter2\n") else {
            panic!("a line without `=` was accepted");
        };
        let err = err.to_string();
        assert!(err.contains("line 2") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_secret_given_where_a_variable_name_belongs_is_not_echoed() {
        let options = SinkOptions {
            with: Vec::new(),
            with_env: vec![("password".into(), "hunter2-Zq81".into())],
            options_file: None,
            sql: None,
        };
        let Err(err) = options.given() else {
            panic!("an unset variable was accepted");
        };
        assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
    }

    #[test]
    fn a_pair_without_equals_is_not_echoed() {
        let err = parse_pair("hunter2").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
