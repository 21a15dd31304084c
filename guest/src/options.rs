//! Sink options: the `WITH (...)` clause, with RisingWave's names, validated all at once.

use std::collections::BTreeMap;
use std::fmt;

/// One problem with one option. `Display` never shows a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    pub name: String,
    pub message: String,
}

impl fmt::Display for OptionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "option `{}`: {}", self.name, self.message)
    }
}

/// What `describe` says of one option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSpec {
    pub name: &'static str,
    pub required: bool,
    pub default: &'static str,
    pub doc: &'static str,
    /// Values of secret options never appear in messages.
    pub secret: bool,
}

const fn spec(
    name: &'static str,
    required: bool,
    default: &'static str,
    doc: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        required,
        default,
        doc,
        secret: false,
    }
}

const fn secret(name: &'static str, doc: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        required: false,
        default: "",
        doc,
        secret: true,
    }
}

pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 5_000;
pub const DEFAULT_FLUSH_TIMEOUT_MS: u32 = 120_000;

/// Retries and pipelining: how hard delivery tries before a failure is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub ack_timeout_ms: u32,
    pub max_in_flight: u32,
    pub max_attempts: u32,
    pub max_elapsed_ms: u32,
    pub initial_backoff_ms: u32,
    pub max_backoff_ms: u32,
}

impl Default for Delivery {
    fn default() -> Delivery {
        Delivery {
            ack_timeout_ms: 5_000,
            max_in_flight: 4_096,
            // Enough that the time budget governs: a stream leader election takes 4 to 9 s.
            max_attempts: 30,
            max_elapsed_ms: 60_000,
            initial_backoff_ms: 100,
            max_backoff_ms: 2_000,
        }
    }
}

/// A whole-number option: its range, and where its value goes.
struct NumberOption {
    name: &'static str,
    min: u32,
    max: u32,
    unit: &'static str,
}

const fn number(name: &'static str, min: u32, max: u32, unit: &'static str) -> NumberOption {
    NumberOption {
        name,
        min,
        max,
        unit,
    }
}

const CONNECT_TIMEOUT: NumberOption = number("connect_timeout_ms", 1, 600_000, "milliseconds");
const FLUSH_TIMEOUT: NumberOption = number("flush_timeout_ms", 1, 3_600_000, "milliseconds");
const ACK_TIMEOUT: NumberOption = number("ack_timeout_ms", 1, 600_000, "milliseconds");
const MAX_IN_FLIGHT: NumberOption = number("max_in_flight", 1, 65_536, "messages");
const MAX_ATTEMPTS: NumberOption = number("retry.max_attempts", 1, 1_000, "attempts");
const MAX_ELAPSED: NumberOption = number("retry.max_elapsed_ms", 1, 3_600_000, "milliseconds");
const INITIAL_BACKOFF: NumberOption = number("retry.initial_backoff_ms", 1, 60_000, "milliseconds");
const MAX_BACKOFF: NumberOption = number("retry.max_backoff_ms", 1, 600_000, "milliseconds");

/// Longest `sink_id`; with the checkpoint and position, a message id stays well under 128 bytes.
pub const MAX_SINK_ID_LEN: usize = 64;

/// Every option, in the order `describe` lists them.
pub const OPTION_SPECS: &[OptionSpec] = &[
    spec("connector", false, "nats", "Connector name; must be `nats` when given."),
    spec("server_url", true, "", "NATS servers as comma-separated `host:port` entries; a `nats://` prefix is accepted."),
    spec("subject", true, "", "Subject every row is published to; no whitespace, empty tokens, `*` or `>`."),
    spec("connect_mode", true, "", "Authentication: `plain`, `user_and_password` (needs username, password) or `credential` (needs jwt, nkey)."),
    spec("username", false, "", "User name for connect_mode=user_and_password."),
    secret("password", "Password for connect_mode=user_and_password."),
    secret("jwt", "User JWT for connect_mode=credential."),
    secret("nkey", "User NKey seed (starts with `SU`) for connect_mode=credential; signs the server's nonce."),
    spec("type", false, "append-only", "Sink type; the NATS sink only supports `append-only`."),
    spec("connect_timeout_ms", false, "5000", "Bound on the first connection, in milliseconds (1 to 600000); later the host reconnects on its own."),
    spec("flush_timeout_ms", false, "120000", "Bound on one flush, retries included, in milliseconds (1 to 3600000); a flush ends at this or at the retry budget, whichever comes first."),
    spec("sink_id", false, "ns-<hash>", "Prefix of every message id (`<sink_id>:<checkpoint>:<position>`); letters, digits, `-`, `_`, `.`, up to 64. Default: `ns-` and 16 hex digits of SHA-256 over the subject and the schema."),
    spec("dedupe", false, "true", "Send a `Nats-Msg-Id` header with every row written inside a checkpoint, so a JetStream stream drops replays within its duplicate window: `true` or `false`."),
    spec("max_in_flight", false, "4096", "JetStream messages awaiting their ack at once (1 to 65536); a faster writer waits."),
    spec("ack_timeout_ms", false, "5000", "Wait for one JetStream ack before the message is sent again, in milliseconds (1 to 600000)."),
    spec("retry.max_attempts", false, "30", "Sends of one message, counting the first, before a retryable failure is reported (1 to 1000)."),
    spec("retry.max_elapsed_ms", false, "60000", "Time from a message's first failure to giving up, in milliseconds (1 to 3600000)."),
    spec("retry.initial_backoff_ms", false, "100", "Wait before the first resend, in milliseconds (1 to 60000); doubled each time, with jitter."),
    spec("retry.max_backoff_ms", false, "2000", "Longest wait between resends, in milliseconds (1 to 600000); at least retry.initial_backoff_ms."),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Plain,
    UserPassword { username: String, password: String },
    Credential { jwt: String, nkey_seed: String },
}

/// Options after validation: everything the sink needs, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// `host:port` entries, without scheme.
    pub servers: Vec<String>,
    pub subject: String,
    pub auth: Auth,
    pub connect_timeout_ms: u32,
    pub flush_timeout_ms: u32,
    /// `None`: derived from the subject and the schema when the sink opens.
    pub sink_id: Option<String>,
    pub dedupe: bool,
    pub delivery: Delivery,
}

/// Every problem with `options`; empty when they are valid.
pub fn validate(options: &[(String, String)]) -> Vec<OptionProblem> {
    match SinkConfig::parse(options) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

fn spec_of(name: &str) -> Option<&'static OptionSpec> {
    OPTION_SPECS.iter().find(|s| s.name == name)
}

struct Collector {
    problems: Vec<OptionProblem>,
}

impl Collector {
    fn push(&mut self, name: &str, message: impl Into<String>) {
        self.problems.push(OptionProblem {
            name: name.to_string(),
            message: message.into(),
        });
    }
}

impl SinkConfig {
    /// Validate `options` and build the config, or return every problem found.
    pub fn parse(options: &[(String, String)]) -> Result<SinkConfig, Vec<OptionProblem>> {
        let mut c = Collector {
            problems: Vec::new(),
        };
        let mut given: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, value) in options {
            let key = key.as_str();
            match spec_of(key) {
                None => match crate::suggest::nearest(key, OPTION_SPECS.iter().map(|s| s.name)) {
                    Some(near) => c.push(key, format!("unknown option; did you mean `{near}`?")),
                    None => c.push(key, "unknown option; run `describe` for the list"),
                },
                Some(_) if given.contains_key(key) => c.push(key, "given more than once"),
                Some(_) => {
                    given.insert(key, value.as_str());
                }
            }
        }

        if let Some(connector) = given.get("connector") {
            if !connector.eq_ignore_ascii_case("nats") {
                c.push("connector", format!("must be `nats`, got `{connector}`"));
            }
        }
        if let Some(kind) = given.get("type") {
            if *kind != "append-only" {
                c.push(
                    "type",
                    format!("NATS sink only supports append-only mode (got `{kind}`)"),
                );
            }
        }

        let servers = match given.get("server_url") {
            None => {
                c.push("server_url", "required option is missing");
                Vec::new()
            }
            Some(raw) => parse_servers(raw).unwrap_or_else(|msg| {
                c.push("server_url", msg);
                Vec::new()
            }),
        };

        let subject = match given.get("subject") {
            None => {
                c.push("subject", "required option is missing");
                String::new()
            }
            Some(raw) => {
                if let Err(msg) = check_subject(raw) {
                    c.push("subject", msg);
                }
                raw.to_string()
            }
        };

        let auth = parse_auth(&given, &mut c);
        let connect_timeout_ms =
            parse_number(&given, &CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT_MS, &mut c);
        let flush_timeout_ms =
            parse_number(&given, &FLUSH_TIMEOUT, DEFAULT_FLUSH_TIMEOUT_MS, &mut c);
        let sink_id = given.get("sink_id").map(|raw| {
            if let Err(msg) = check_sink_id(raw) {
                c.push("sink_id", msg);
            }
            raw.to_string()
        });
        let dedupe = match given.get("dedupe") {
            None => true,
            Some(raw) => parse_bool(raw).unwrap_or_else(|| {
                c.push("dedupe", format!("must be `true` or `false`, got `{raw}`"));
                true
            }),
        };
        let delivery = parse_delivery(&given, &mut c);

        match (c.problems.is_empty(), auth) {
            (true, Some(auth)) => Ok(SinkConfig {
                servers,
                subject,
                auth,
                connect_timeout_ms,
                flush_timeout_ms,
                sink_id,
                dedupe,
                delivery,
            }),
            _ => Err(c.problems),
        }
    }
}

/// Auth from `connect_mode` and the options it needs; `None` where a problem was recorded.
fn parse_auth(given: &BTreeMap<&str, &str>, c: &mut Collector) -> Option<Auth> {
    let mode = match given.get("connect_mode") {
        None => {
            c.push(
                "connect_mode",
                "required option is missing; use `plain`, `user_and_password` or `credential`",
            );
            return None;
        }
        Some(mode) => *mode,
    };
    // Options that belong to other modes are a sign of a mistake, so they are rejected.
    type BuildAuth = fn(&BTreeMap<&str, &str>) -> Auth;
    let (needed, auth): (&[&str], BuildAuth) = match mode {
        "plain" => (&[], |_| Auth::Plain),
        "user_and_password" => (&["username", "password"], |g| Auth::UserPassword {
            username: g["username"].to_string(),
            password: g["password"].to_string(),
        }),
        "credential" => (&["jwt", "nkey"], |g| Auth::Credential {
            jwt: g["jwt"].to_string(),
            nkey_seed: g["nkey"].to_string(),
        }),
        other => {
            c.push(
                "connect_mode",
                format!("unknown mode `{other}`; use `plain`, `user_and_password` or `credential`"),
            );
            return None;
        }
    };
    let before = c.problems.len();
    for name in ["username", "password", "jwt", "nkey"] {
        let is_needed = needed.contains(&name);
        match given.get(name) {
            None if is_needed => c.push(name, format!("required when connect_mode is `{mode}`")),
            Some(_) if !is_needed => {
                c.push(name, format!("not used when connect_mode is `{mode}`"))
            }
            Some(&"") => c.push(name, "must not be empty"),
            _ => {}
        }
    }
    if mode == "credential" {
        if let Some(jwt) = given.get("jwt") {
            if !jwt.is_empty() && jwt.split('.').count() != 3 {
                c.push("jwt", "is not a JWT (expected three dot-separated parts)");
            }
        }
        if let Some(seed) = given.get("nkey") {
            let looks_like_seed = seed.starts_with("SU") && seed.len() == 58;
            if !seed.is_empty() && !looks_like_seed {
                c.push(
                    "nkey",
                    "is not a user NKey seed (expected 58 characters starting with `SU`)",
                );
            }
        }
    }
    (c.problems.len() == before).then(|| auth(given))
}

fn parse_number(
    given: &BTreeMap<&str, &str>,
    option: &NumberOption,
    default: u32,
    c: &mut Collector,
) -> u32 {
    let NumberOption {
        name,
        min,
        max,
        unit,
    } = *option;
    match given.get(name) {
        None => default,
        Some(raw) => match raw.trim().parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => v,
            _ => {
                c.push(
                    name,
                    format!("must be a whole number of {unit} from {min} to {max}, got `{raw}`"),
                );
                default
            }
        },
    }
}

/// Retry and pipelining options, the backoff bounds checked against each other.
fn parse_delivery(given: &BTreeMap<&str, &str>, c: &mut Collector) -> Delivery {
    let d = Delivery::default();
    let delivery = Delivery {
        ack_timeout_ms: parse_number(given, &ACK_TIMEOUT, d.ack_timeout_ms, c),
        max_in_flight: parse_number(given, &MAX_IN_FLIGHT, d.max_in_flight, c),
        max_attempts: parse_number(given, &MAX_ATTEMPTS, d.max_attempts, c),
        max_elapsed_ms: parse_number(given, &MAX_ELAPSED, d.max_elapsed_ms, c),
        initial_backoff_ms: parse_number(given, &INITIAL_BACKOFF, d.initial_backoff_ms, c),
        max_backoff_ms: parse_number(given, &MAX_BACKOFF, d.max_backoff_ms, c),
    };
    if delivery.max_backoff_ms < delivery.initial_backoff_ms {
        c.push(
            MAX_BACKOFF.name,
            format!(
                "{} is below retry.initial_backoff_ms ({})",
                delivery.max_backoff_ms, delivery.initial_backoff_ms
            ),
        );
    }
    delivery
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A sink id that reads well inside a message id and cannot be confused with its separators.
pub fn check_sink_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > MAX_SINK_ID_LEN {
        return Err(format!(
            "is {} characters long; at most {MAX_SINK_ID_LEN}",
            id.len()
        ));
    }
    match id
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.')))
    {
        Some(ch) => Err(format!(
            "contains {ch:?}; use letters, digits, `-`, `_` and `.`"
        )),
        None => Ok(()),
    }
}

/// Split `server_url` into `host:port` entries.
pub fn parse_servers(raw: &str) -> Result<Vec<String>, String> {
    let mut servers = Vec::new();
    for (i, entry) in raw.split(',').enumerate() {
        let entry = entry.trim();
        let position = i + 1;
        if entry.is_empty() {
            return Err(format!("entry {position} is empty"));
        }
        let rest = match entry.split_once("://") {
            None => entry,
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("nats") => rest,
            Some((scheme, _)) => {
                return Err(format!("entry {position} (`{entry}`) has scheme `{scheme}://`; only `nats://` is supported"))
            }
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => {
                return Err(format!(
                    "entry {position} (`{entry}`) needs a port, as in `{rest}:4222`"
                ))
            }
        };
        let host_ok = !host.is_empty()
            && !host.contains(|ch: char| ch.is_whitespace() || matches!(ch, '/' | '@' | '?' | '#'))
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        if !host_ok {
            return Err(format!("entry {position} (`{entry}`) has an invalid host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Err(format!(
                    "entry {position} (`{entry}`) has an invalid port `{port}`"
                ))
            }
        }
        servers.push(format!("{host}:{port}"));
    }
    Ok(servers)
}

/// A subject NATS accepts for publishing.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("must not be empty".into());
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn problems(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        validate(&opts(pairs))
            .into_iter()
            .map(|p| (p.name, p.message))
            .collect()
    }

    const BASE: &[(&str, &str)] = &[
        ("server_url", "localhost:4222"),
        ("subject", "a.b"),
        ("connect_mode", "plain"),
    ];

    #[test]
    fn minimal_plain_config() {
        let config = SinkConfig::parse(&opts(BASE)).unwrap();
        assert_eq!(config.servers, vec!["localhost:4222"]);
        assert_eq!(config.subject, "a.b");
        assert_eq!(config.auth, Auth::Plain);
        assert_eq!(config.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    }

    #[test]
    fn risingwave_clause_is_accepted() {
        let mut pairs = BASE.to_vec();
        pairs.extend([("connector", "nats"), ("type", "append-only")]);
        assert!(problems(&pairs).is_empty());
    }

    #[test]
    fn servers_accept_list_and_scheme() {
        assert_eq!(
            parse_servers("nats://a:1, b:2,NATS://[::1]:4222").unwrap(),
            vec!["a:1", "b:2", "[::1]:4222"]
        );
        assert!(parse_servers("a:1,,b:2")
            .unwrap_err()
            .contains("entry 2 is empty"));
        assert!(parse_servers("tls://a:1")
            .unwrap_err()
            .contains("only `nats://`"));
        assert!(parse_servers("a").unwrap_err().contains("needs a port"));
        assert!(parse_servers("a:0").unwrap_err().contains("invalid port"));
        assert!(parse_servers("a:70000")
            .unwrap_err()
            .contains("invalid port"));
        assert!(parse_servers("a b:1").unwrap_err().contains("invalid host"));
        assert!(parse_servers("::1:4222")
            .unwrap_err()
            .contains("invalid host"));
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
    fn missing_required_options_are_all_reported() {
        let names: Vec<_> = problems(&[]).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["server_url", "subject", "connect_mode"]);
    }

    #[test]
    fn unknown_option_suggests_nearest() {
        let mut pairs = BASE.to_vec();
        pairs.push(("server_ulr", "x"));
        pairs.push(("zzz", "x"));
        let p = problems(&pairs);
        assert_eq!(
            p[0],
            (
                "server_ulr".into(),
                "unknown option; did you mean `server_url`?".into()
            )
        );
        assert_eq!(p[1].0, "zzz");
        assert!(p[1].1.contains("unknown option"));
    }

    #[test]
    fn duplicate_option() {
        let mut pairs = BASE.to_vec();
        pairs.push(("subject", "c"));
        assert_eq!(
            problems(&pairs),
            vec![("subject".into(), "given more than once".into())]
        );
    }

    #[test]
    fn only_append_only() {
        let mut pairs = BASE.to_vec();
        pairs.push(("type", "upsert"));
        assert!(problems(&pairs)[0]
            .1
            .contains("NATS sink only supports append-only mode"));
    }

    #[test]
    fn wrong_connector() {
        let mut pairs = BASE.to_vec();
        pairs.push(("connector", "kafka"));
        assert_eq!(problems(&pairs)[0].0, "connector");
    }

    #[test]
    fn user_and_password_needs_both() {
        let p = problems(&[
            ("server_url", "h:1"),
            ("subject", "s"),
            ("connect_mode", "user_and_password"),
            ("username", "u"),
        ]);
        assert_eq!(
            p,
            vec![(
                "password".into(),
                "required when connect_mode is `user_and_password`".into()
            )]
        );
        let config = SinkConfig::parse(&opts(&[
            ("server_url", "h:1"),
            ("subject", "s"),
            ("connect_mode", "user_and_password"),
            ("username", "u"),
            ("password", "p"),
        ]))
        .unwrap();
        assert_eq!(
            config.auth,
            Auth::UserPassword {
                username: "u".into(),
                password: "p".into()
            }
        );
    }

    #[test]
    fn credential_needs_jwt_and_seed_and_never_echoes_them() {
        let seed_like = "SUxxxxxxxx-this-is-secret";
        let jwt_like = "not-a-jwt-secret";
        let p = problems(&[
            ("server_url", "h:1"),
            ("subject", "s"),
            ("connect_mode", "credential"),
            ("jwt", jwt_like),
            ("nkey", seed_like),
        ]);
        assert_eq!(
            p.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            vec!["jwt", "nkey"]
        );
        for (_, message) in &p {
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn options_of_another_mode_are_rejected() {
        let mut pairs = BASE.to_vec();
        pairs.push(("password", "hunter2"));
        let p = problems(&pairs);
        assert_eq!(
            p,
            vec![(
                "password".into(),
                "not used when connect_mode is `plain`".into()
            )]
        );
    }

    #[test]
    fn unknown_connect_mode() {
        let p = problems(&[
            ("server_url", "h:1"),
            ("subject", "s"),
            ("connect_mode", "token"),
        ]);
        assert!(p[0].1.contains("unknown mode `token`"));
    }

    #[test]
    fn timeouts() {
        let mut pairs = BASE.to_vec();
        pairs.push(("connect_timeout_ms", "0"));
        pairs.push(("flush_timeout_ms", "soon"));
        let names: Vec<_> = problems(&pairs).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, vec!["connect_timeout_ms", "flush_timeout_ms"]);
        let mut pairs = BASE.to_vec();
        pairs.push(("connect_timeout_ms", "250"));
        assert_eq!(
            SinkConfig::parse(&opts(&pairs)).unwrap().connect_timeout_ms,
            250
        );
    }

    #[test]
    fn delivery_defaults_and_overrides() {
        let config = SinkConfig::parse(&opts(BASE)).unwrap();
        assert_eq!(config.delivery, Delivery::default());
        assert!(config.dedupe);
        assert_eq!(config.sink_id, None);
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("sink_id", "orders-eu.v2"),
            ("dedupe", "FALSE"),
            ("max_in_flight", "64"),
            ("ack_timeout_ms", "250"),
            ("retry.max_attempts", "3"),
            ("retry.max_elapsed_ms", "2000"),
            ("retry.initial_backoff_ms", "10"),
            ("retry.max_backoff_ms", "10"),
        ]);
        let config = SinkConfig::parse(&opts(&pairs)).unwrap();
        assert_eq!(config.sink_id.as_deref(), Some("orders-eu.v2"));
        assert!(!config.dedupe);
        assert_eq!(
            config.delivery,
            Delivery {
                ack_timeout_ms: 250,
                max_in_flight: 64,
                max_attempts: 3,
                max_elapsed_ms: 2000,
                initial_backoff_ms: 10,
                max_backoff_ms: 10,
            }
        );
    }

    #[test]
    fn delivery_problems_name_each_option() {
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("sink_id", "a:b"),
            ("dedupe", "yes"),
            ("max_in_flight", "0"),
            ("retry.max_attempts", "-1"),
            ("retry.initial_backoff_ms", "500"),
            ("retry.max_backoff_ms", "100"),
        ]);
        let p = problems(&pairs);
        let names: Vec<_> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "sink_id",
                "dedupe",
                "max_in_flight",
                "retry.max_attempts",
                "retry.max_backoff_ms",
            ]
        );
        assert!(p[0].1.contains("contains ':'"), "{}", p[0].1);
        assert!(p[2].1.contains("messages from 1 to 65536"), "{}", p[2].1);
        assert!(
            p[4].1.contains("below retry.initial_backoff_ms (500)"),
            "{}",
            p[4].1
        );
        assert!(check_sink_id(&"x".repeat(65))
            .unwrap_err()
            .contains("at most 64"));
        assert!(check_sink_id("").is_err());
    }

    #[test]
    fn every_spec_has_a_doc_and_unique_name() {
        let mut names: Vec<_> = OPTION_SPECS.iter().map(|s| s.name).collect();
        assert!(OPTION_SPECS.iter().all(|s| !s.doc.is_empty()));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OPTION_SPECS.len());
    }
}
