//! Sink options: the `WITH (...)` clause, with RisingWave's names, validated all at once.

use std::collections::BTreeMap;

use crate::encode::{
    DateMode, JsonbMode, KeyOrder, Modes, TimeMode, TimestampMode, TimestamptzMode,
};
use crate::stream::StreamLimits;
use crate::template::Template;
use crate::upsert::SinkKind;

pub use nats_sink_rules::nats_names::{
    check_header_name, check_header_value, check_subject, MAX_SUBJECT_BYTES,
};
pub use nats_sink_rules::nkey_seed::check_user_seed;
pub use nats_sink_rules::option_problem::OptionProblem;

use crate::option_specs::{bool_default, default_of, whole_default};
pub use crate::option_specs::{OptionSpec, HEADER_OPTION, OPTION_SPECS};

// Every default is read from OPTION_SPECS, the list `describe` prints, at compile time.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u32 = whole_default("connect_timeout_ms");
pub const DEFAULT_FLUSH_TIMEOUT_MS: u32 = whole_default("flush_timeout_ms");
const DEFAULT_DEDUPE: bool = bool_default("dedupe");
const DEFAULT_TLS_REQUIRED: bool = bool_default("tls.required");
const DEFAULT_ALLOW_CREATE_STREAM: bool = bool_default("allow_create_stream");

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
        // retry.max_attempts' default (30) is enough that the time budget governs: a stream
        // leader election takes 4 to 9 s.
        Delivery {
            ack_timeout_ms: whole_default(ACK_TIMEOUT.name),
            max_in_flight: whole_default(MAX_IN_FLIGHT.name),
            max_attempts: whole_default(MAX_ATTEMPTS.name),
            max_elapsed_ms: whole_default(MAX_ELAPSED.name),
            initial_backoff_ms: whole_default(INITIAL_BACKOFF.name),
            max_backoff_ms: whole_default(MAX_BACKOFF.name),
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

const HEADER_PREFIX: &str = "headers.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Plain,
    UserPassword {
        username: String,
        password: String,
    },
    Credential {
        jwt: String,
        nkey_seed: String,
    },
    Token(String),
    /// A `.creds` file's path; the host reads it, the guest has no file system.
    CredentialsFile(String),
    Nkey(String),
}

/// TLS settings; present when TLS is required. Paths are read by the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// A header set on every message: a fixed name and a value that may come from the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: Template,
}

/// Options after validation: everything the sink needs, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkConfig {
    /// `host:port` entries, without scheme.
    pub servers: Vec<String>,
    /// The subject as written; with `{column}` parts, a template.
    pub subject: String,
    pub subject_template: Template,
    pub headers: Vec<Header>,
    pub auth: Auth,
    /// `None`: plain TCP unless the server demands TLS.
    pub tls: Option<Tls>,
    pub connect_timeout_ms: u32,
    pub flush_timeout_ms: u32,
    /// `None`: derived from the subject and the schema when the sink opens.
    pub sink_id: Option<String>,
    pub dedupe: bool,
    pub delivery: Delivery,
    pub modes: Modes,
    /// `Some` when `allow_create_stream` is true: the limits of the stream to create.
    pub create_stream: Option<StreamLimits>,
    /// Append-only, or upsert into a KV bucket.
    pub kind: SinkKind,
}

/// Every problem with `options`; empty when they are valid.
pub fn validate(options: &[(String, String)]) -> Vec<OptionProblem> {
    match SinkConfig::parse(options) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

fn spec_of(name: &str) -> Option<&'static OptionSpec> {
    let name = if name.starts_with(HEADER_PREFIX) {
        HEADER_OPTION
    } else {
        name
    };
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
        let kind = crate::upsert::parse_kind(&given, &mut |name, message| c.push(name, message));

        let (servers, tls_scheme) = match given.get("server_url") {
            None => {
                c.push("server_url", "required option is missing");
                (Vec::new(), false)
            }
            Some(raw) => parse_servers(raw).unwrap_or_else(|msg| {
                c.push("server_url", msg);
                (Vec::new(), false)
            }),
        };

        let (subject, subject_template) = match (&kind, given.get("subject")) {
            // Checked by the kind: each row goes to `$KV.<bucket>.<key>`.
            (SinkKind::Upsert(upsert), _) => parse_key_subject(upsert, &mut c),
            (_, None) => {
                c.push("subject", "required option is missing");
                (String::new(), Template::default())
            }
            (_, Some(raw)) => (raw.to_string(), parse_subject(raw, &mut c)),
        };

        let auth = parse_auth(&given, &mut c);
        let tls = parse_tls(&given, tls_scheme, &mut c);
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
            None => DEFAULT_DEDUPE,
            Some(raw) => parse_bool(raw).unwrap_or_else(|| {
                c.push("dedupe", format!("must be `true` or `false`, got `{raw}`"));
                DEFAULT_DEDUPE
            }),
        };
        if !dedupe && matches!(kind, SinkKind::Upsert(_)) {
            // A late original of a resent value is dropped by its id; without ids it could
            // land after the key's next value.
            c.push(
                "dedupe",
                "an upsert sink needs message ids to keep each key in order; leave dedupe on",
            );
        }
        let delivery = parse_delivery(&given, &mut c);
        let headers = parse_headers(&given, dedupe, &mut c);
        let modes = parse_modes(&given, &mut c);
        let create_stream = parse_create_stream(&given, &mut c);

        match (c.problems.is_empty(), auth) {
            (true, Some(auth)) => Ok(SinkConfig {
                servers,
                subject,
                subject_template,
                headers,
                auth,
                tls,
                connect_timeout_ms,
                flush_timeout_ms,
                sink_id,
                dedupe,
                delivery,
                modes,
                create_stream,
                kind,
            }),
            _ => Err(c.problems),
        }
    }
}

/// The options only some `connect_mode`s use.
const AUTH_OPTIONS: [&str; 6] = [
    "username",
    "password",
    "jwt",
    "nkey",
    "token",
    "credentials_file",
];
/// Every `connect_mode`, as `parse_auth` takes them.
const CONNECT_MODE_NAMES: [&str; 6] = [
    "plain",
    "user_and_password",
    "credential",
    "token",
    "creds_file",
    "nkey",
];

/// The modes as a message lists them: "`plain`, `user_and_password`, ... or `nkey`".
fn connect_modes() -> String {
    let quoted: Vec<String> = CONNECT_MODE_NAMES
        .iter()
        .map(|m| format!("`{m}`"))
        .collect();
    let (last, rest) = quoted.split_last().expect("modes");
    format!("{} or {last}", rest.join(", "))
}

/// Auth from `connect_mode` and the options it needs; `None` where a problem was recorded.
fn parse_auth(given: &BTreeMap<&str, &str>, c: &mut Collector) -> Option<Auth> {
    let mode = match given.get("connect_mode") {
        None => {
            c.push(
                "connect_mode",
                format!("required option is missing; use {}", connect_modes()),
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
        "token" => (&["token"], |g| Auth::Token(g["token"].to_string())),
        "creds_file" => (&["credentials_file"], |g| {
            Auth::CredentialsFile(g["credentials_file"].to_string())
        }),
        "nkey" => (&["nkey"], |g| Auth::Nkey(g["nkey"].to_string())),
        // The value is not echoed: a secret pasted in the wrong place would show.
        other => {
            let message = match crate::suggest::nearest(other, CONNECT_MODE_NAMES) {
                Some(mode) => format!("unknown mode; did you mean `{mode}`?"),
                None => format!("unknown mode; use {}", connect_modes()),
            };
            c.push("connect_mode", message);
            return None;
        }
    };
    let before = c.problems.len();
    for name in AUTH_OPTIONS {
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
    if let Some(jwt) = given.get("jwt").filter(|jwt| !jwt.is_empty()) {
        if jwt.split('.').count() != 3 {
            c.push("jwt", "is not a JWT (expected three dot-separated parts)");
        }
    }
    if let Some(seed) = given.get("nkey").filter(|seed| !seed.is_empty()) {
        if let Err(why) = check_user_seed(seed) {
            // The seed is a secret: only what is wrong with it is said.
            c.push("nkey", format!("is not a user NKey seed ({why})"));
        }
    }
    (c.problems.len() == before).then(|| auth(given))
}

/// TLS from the `tls.*` options and a `tls://` server; `None` when nothing asks for it.
fn parse_tls(given: &BTreeMap<&str, &str>, tls_scheme: bool, c: &mut Collector) -> Option<Tls> {
    let mut path = |name: &str| {
        given.get(name).map(|raw| {
            if raw.trim().is_empty() {
                c.push(name, "must be a file path, got an empty value");
            }
            raw.to_string()
        })
    };
    let tls = Tls {
        ca: path("tls.ca"),
        cert: path("tls.cert"),
        key: path("tls.key"),
    };
    match (&tls.cert, &tls.key) {
        (Some(_), None) => c.push("tls.key", "required with tls.cert"),
        (None, Some(_)) => c.push("tls.cert", "required with tls.key"),
        _ => {}
    }
    let required = match given.get("tls.required") {
        None => DEFAULT_TLS_REQUIRED,
        Some(raw) => match parse_bool(raw) {
            Some(required) => required,
            None => {
                c.push(
                    "tls.required",
                    format!("must be `true` or `false`, got `{raw}`"),
                );
                DEFAULT_TLS_REQUIRED
            }
        },
    };
    let files = tls != Tls::default();
    if given.get("tls.required").and_then(|raw| parse_bool(raw)) == Some(false)
        && (files || tls_scheme)
    {
        c.push(
            "tls.required",
            "is `false`, but a tls option or a `tls://` server asks for TLS",
        );
    }
    (required || files || tls_scheme).then_some(tls)
}

/// The subject as a template whose fixed parts already make a valid subject.
fn parse_subject(raw: &str, c: &mut Collector) -> Template {
    let template = Template::parse(raw).unwrap_or_else(|msg| {
        c.push("subject", msg);
        Template::default()
    });
    let checked = if template.is_fixed() {
        check_subject(raw)
    } else {
        check_subject(&template.with_sample("x"))
            .map_err(|msg| format!("with each `{{column}}` as `x`, {msg}"))
    };
    if let Err(msg) = checked {
        c.push("subject", msg);
    }
    template
}

/// An upsert sink's subject, `$KV.<bucket>.<key_format>`: the key's parts are filled from
/// each row. Shown as `$KV.<bucket>.>`, the subjects the bucket's stream captures.
fn parse_key_subject(upsert: &crate::upsert::Upsert, c: &mut Collector) -> (String, Template) {
    // A bucket name holds no brace, so the prefix is all literal.
    let text = format!("{}{}", upsert.key_prefix(), upsert.key_format);
    let template = Template::parse(&text).unwrap_or_else(|msg| {
        c.push("key_format", msg);
        Template::default()
    });
    (format!("{}>", upsert.key_prefix()), template)
}

/// `headers.<name>` options, in name order (the order NATS sends them in does not matter).
fn parse_headers(given: &BTreeMap<&str, &str>, dedupe: bool, c: &mut Collector) -> Vec<Header> {
    let mut headers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (key, raw) in given.range(HEADER_PREFIX..) {
        let Some(name) = key.strip_prefix(HEADER_PREFIX) else {
            break;
        };
        if let Err(msg) = check_header_name(name) {
            c.push(key, msg);
            continue;
        }
        // Clients read names in any case, and the host refuses a message id given twice.
        if !seen.insert(name.to_ascii_lowercase()) {
            c.push(
                key,
                format!("header `{name}` is given twice, in names that differ only in case"),
            );
            continue;
        }
        if let Some(why) = nats_sink_rules::nats_names::reserved_header(name) {
            c.push(key, format!("`{name}` cannot be set: {why}"));
            continue;
        }
        if dedupe && name.eq_ignore_ascii_case(crate::sink::MESSAGE_ID_HEADER) {
            c.push(
                key,
                "the sink sets this header while dedupe is on; set dedupe=false to give your own",
            );
            continue;
        }
        if let Err(why) = check_header_value(raw) {
            c.push(key, format!("the value {why}"));
            continue;
        }
        match Template::parse(raw) {
            Ok(value) => headers.push(Header {
                name: name.to_string(),
                value,
            }),
            Err(msg) => c.push(key, msg),
        }
    }
    headers
}

/// One of a fixed set of words; the default `describe` shows where absent or wrong.
fn parse_choice<T: Copy + Default>(
    given: &BTreeMap<&str, &str>,
    name: &str,
    choices: &[(&str, T)],
    c: &mut Collector,
) -> T {
    // A listed default that is not a choice would be refused when given, which
    // `giving_each_default_changes_nothing` catches.
    let default = choices
        .iter()
        .find(|(word, _)| *word == default_of(name))
        .map_or_else(T::default, |(_, value)| *value);
    let Some(raw) = given.get(name) else {
        return default;
    };
    match choices.iter().find(|(word, _)| word == raw) {
        Some((_, value)) => *value,
        None => {
            let words: Vec<String> = choices.iter().map(|(w, _)| format!("`{w}`")).collect();
            c.push(
                name,
                format!("must be one of {}, got `{raw}`", words.join(", ")),
            );
            default
        }
    }
}

/// The `*.handling.mode` options.
fn parse_modes(given: &BTreeMap<&str, &str>, c: &mut Collector) -> Modes {
    use DateMode as D;
    use TimestamptzMode as Tz;
    Modes {
        date: parse_choice(
            given,
            "date.handling.mode",
            &[
                ("from_ce", D::FromCe),
                ("from_epoch", D::FromEpoch),
                ("string", D::String),
            ],
            c,
        ),
        time: parse_choice(
            given,
            "time.handling.mode",
            &[("milli", TimeMode::Milli), ("string", TimeMode::String)],
            c,
        ),
        timestamp: parse_choice(
            given,
            "timestamp.handling.mode",
            &[
                ("milli", TimestampMode::Milli),
                ("string", TimestampMode::String),
            ],
            c,
        ),
        timestamptz: parse_choice(
            given,
            "timestamptz.handling.mode",
            &[
                ("utc_without_suffix", Tz::UtcWithoutSuffix),
                ("utc_string", Tz::UtcString),
                ("micro", Tz::Micro),
                ("milli", Tz::Milli),
            ],
            c,
        ),
        jsonb: parse_choice(
            given,
            "jsonb.handling.mode",
            &[
                ("string", JsonbMode::String),
                ("dynamic", JsonbMode::Dynamic),
            ],
            c,
        ),
        key_order: parse_choice(
            given,
            "json.key_order",
            &[("sorted", KeyOrder::Sorted), ("schema", KeyOrder::Schema)],
            c,
        ),
    }
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

/// `allow_create_stream` and the limits of the stream it creates. The limits are checked even
/// when no stream is to be created, as RisingWave parses them either way.
fn parse_create_stream(given: &BTreeMap<&str, &str>, c: &mut Collector) -> Option<StreamLimits> {
    let allow = match given.get("allow_create_stream") {
        None => DEFAULT_ALLOW_CREATE_STREAM,
        Some(raw) => parse_bool(raw).unwrap_or_else(|| {
            c.push(
                "allow_create_stream",
                format!("must be `true` or `false`, got `{raw}`"),
            );
            DEFAULT_ALLOW_CREATE_STREAM
        }),
    };
    let limits = match crate::stream::parse_limits(given) {
        Ok(limits) => limits,
        Err(problems) => {
            for (name, message) in problems {
                c.push(name, message);
            }
            return None;
        }
    };
    allow.then_some(limits)
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

/// Split `server_url` into `[userinfo@]host:port` entries (the shared rules in
/// `nats_sink_rules::server_url`); true when an entry has the `tls://` scheme. An error never
/// shows an entry's user info.
pub fn parse_servers(raw: &str) -> Result<(Vec<String>, bool), String> {
    let entries = nats_sink_rules::server_url::parse(raw).map_err(|e| e.to_string())?;
    let tls = entries.iter().any(|entry| entry.tls);
    Ok((entries.iter().map(|e| e.connect_text()).collect(), tls))
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
    fn secret_options_are_the_shared_list() {
        let secret: Vec<&str> = OPTION_SPECS
            .iter()
            .filter(|s| s.secret)
            .map(|s| s.name)
            .collect();
        assert_eq!(secret, nats_sink_rules::secrets::SECRET_OPTIONS);
    }

    #[test]
    fn servers_keep_user_info_for_the_host() {
        assert_eq!(
            parse_servers("nats://a:1, u:p@b:2").unwrap(),
            (vec!["a:1".to_string(), "u:p@b:2".into()], false)
        );
        assert!(parse_servers("a:1,tls://b:2").unwrap().1);
        let err = parse_servers("nats://alice:S3cret@h").unwrap_err();
        assert!(
            err.contains("needs a port") && !err.contains("S3cret"),
            "{err}"
        );
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
    fn an_upsert_sink_needs_no_subject_and_refuses_one() {
        let mut pairs: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| *k != "subject")
            .collect();
        pairs.extend([
            ("type", "upsert"),
            ("kv.bucket", "prices"),
            ("primary_key", "id"),
        ]);
        let config = SinkConfig::parse(&opts(&pairs)).unwrap();
        assert_eq!(config.subject, "$KV.prices.>");
        assert!(!config.subject_template.is_fixed());
        pairs.push(("subject", "rows"));
        assert_eq!(problems(&pairs)[0].0, "subject");
        pairs.pop();
        pairs.push(("dedupe", "false"));
        assert_eq!(problems(&pairs)[0].0, "dedupe");
    }

    #[test]
    fn force_append_only_is_true_or_false() {
        assert!(problems(&with(&[("force_append_only", "true")])).is_empty());
        assert!(problems(&with(&[("force_append_only", "false")])).is_empty());
        assert_eq!(
            problems(&with(&[("force_append_only", "yes")]))[0].0,
            "force_append_only"
        );
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

    /// Issue 16: `SU` and 56 junk characters passed `validate` and failed at connect.
    #[test]
    fn nkey_seeds_are_checked_in_full() {
        let valid = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
        assert_eq!(check_user_seed(valid), Ok(()));
        let junk = format!("SU{}", "A".repeat(56));
        assert_eq!(check_user_seed(&junk), Err("its checksum does not match"));
        let mut flipped = valid.to_string();
        flipped.replace_range(30..31, "Q");
        assert!(check_user_seed(&flipped).is_err());
        assert!(check_user_seed(&format!("SU{}", "a".repeat(56))).is_err());
        assert!(check_user_seed(&format!("SU{}", "é".repeat(28))).is_err());
        let p = problems(&[
            ("server_url", "h:1"),
            ("subject", "s"),
            ("connect_mode", "nkey"),
            ("nkey", &junk),
        ]);
        assert_eq!(
            p,
            vec![(
                "nkey".into(),
                "is not a user NKey seed (its checksum does not match)".into()
            )]
        );
    }

    /// Issue 16: a 5,000-byte subject passed `validate`; the server refuses its control line.
    #[test]
    fn subjects_past_the_control_line_are_refused() {
        let long = "a".repeat(5_000);
        let p = problems(&[
            ("server_url", "h:1"),
            ("subject", &long),
            ("connect_mode", "plain"),
        ]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("at most 4000"), "{p:?}");
        assert!(check_subject(&"a".repeat(MAX_SUBJECT_BYTES)).is_ok());
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
    fn every_listed_connect_mode_is_known() {
        assert_eq!(
            connect_modes(),
            "`plain`, `user_and_password`, `credential`, `token`, `creds_file` or `nkey`"
        );
        for mode in CONNECT_MODE_NAMES {
            let p = problems(&[
                ("server_url", "h:1"),
                ("subject", "s"),
                ("connect_mode", mode),
            ]);
            assert!(
                p.iter().all(|(_, why)| !why.contains("unknown mode")),
                "{mode}: {p:?}"
            );
        }
    }

    #[test]
    fn unknown_connect_mode() {
        let p = problems(&[
            ("server_url", "h:1"),
            ("subject", "s"),
            ("connect_mode", "oauth"),
        ]);
        assert!(p[0].1.contains("unknown mode; use"), "{}", p[0].1);
        assert!(p[0].1.contains("`creds_file`"));
        assert!(!p[0].1.contains("oauth"), "the value is not echoed");
        let p = problems(&[
            ("server_url", "h:1"),
            ("subject", "s"),
            ("connect_mode", "plian"),
        ]);
        assert!(p[0].1.contains("did you mean `plain`?"), "{}", p[0].1);
        assert!(!p[0].1.contains("plian"));
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs = BASE.to_vec();
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        pairs
    }

    #[test]
    fn token_creds_file_and_nkey_modes() {
        let seed = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
        let auth = |extra| SinkConfig::parse(&opts(&with(extra))).map(|c| c.auth);
        assert_eq!(
            auth(&[("connect_mode", "token"), ("token", "s3cret")]),
            Ok(Auth::Token("s3cret".into()))
        );
        assert_eq!(
            auth(&[
                ("connect_mode", "creds_file"),
                ("credentials_file", "/etc/u.creds")
            ]),
            Ok(Auth::CredentialsFile("/etc/u.creds".into()))
        );
        assert_eq!(
            auth(&[("connect_mode", "nkey"), ("nkey", seed)]),
            Ok(Auth::Nkey(seed.into()))
        );
        let p = problems(&with(&[("connect_mode", "token")]));
        assert_eq!(
            p,
            vec![(
                "token".into(),
                "required when connect_mode is `token`".into()
            )]
        );
        let p = problems(&with(&[
            ("connect_mode", "nkey"),
            ("nkey", "SUshort-secret"),
            ("jwt", "a.b.c"),
        ]));
        let names: Vec<_> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["jwt", "nkey"]);
        assert!(p.iter().all(|(_, m)| !m.contains("secret")), "{p:?}");
    }

    #[test]
    fn tls_options_and_scheme() {
        let tls = |extra| SinkConfig::parse(&opts(&with(extra))).map(|c| c.tls);
        assert_eq!(tls(&[]), Ok(None));
        assert_eq!(tls(&[("tls.required", "true")]), Ok(Some(Tls::default())));
        assert_eq!(
            tls(&[("server_url", "tls://h:1")]),
            Ok(Some(Tls::default()))
        );
        assert_eq!(
            tls(&[
                ("tls.ca", "ca.pem"),
                ("tls.cert", "c.pem"),
                ("tls.key", "k.pem")
            ]),
            Ok(Some(Tls {
                ca: Some("ca.pem".into()),
                cert: Some("c.pem".into()),
                key: Some("k.pem".into()),
            }))
        );
        let p = problems(&with(&[("tls.cert", "c.pem"), ("tls.ca", " ")]));
        let names: Vec<_> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["tls.ca", "tls.key"]);
        let p = problems(&with(&[
            ("tls.required", "false"),
            ("server_url", "tls://h:1"),
        ]));
        assert!(p[0].1.contains("asks for TLS"), "{p:?}");
        assert_eq!(
            problems(&with(&[("tls.required", "maybe")]))[0].0,
            "tls.required"
        );
    }

    #[test]
    fn subject_templates_are_checked_with_their_literal_parts() {
        let config =
            SinkConfig::parse(&opts(&with(&[("subject", "orders.{region}.{{x}}")]))).unwrap();
        assert_eq!(config.subject, "orders.{region}.{{x}}");
        assert_eq!(
            config.subject_template.columns().collect::<Vec<_>>(),
            vec!["region"]
        );
        for (bad, why) in [
            ("orders.{region", "not closed"),
            ("orders..{region}", "empty token"),
            ("orders.{region}.*", "wildcard"),
            ("orders.{}", "column name"),
            // Issue 26: the same rules as a subject filled from a row.
            ("tp.x\0{region}", "control character (found U+0000)"),
            ("$KV.b.{region}", "key-value bucket"),
        ] {
            let p = problems(&with(&[("subject", bad)]));
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(p[0].1.contains(why), "{bad}: {p:?}");
        }
    }

    #[test]
    fn headers_static_and_from_columns() {
        let config = SinkConfig::parse(&opts(&with(&[
            ("headers.X-Source", "nats-sink"),
            ("headers.X-Region", "{region}"),
        ])))
        .unwrap();
        let names: Vec<_> = config.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, vec!["X-Region", "X-Source"]);
        assert!(config.headers[1].value.is_fixed());
        for (key, value, why) in [
            ("headers.", "x", "empty"),
            ("headers.X Y", "x", "contains ' '"),
            ("headers.X:Y", "x", "contains ':'"),
            ("headers.X", "a\r\nB: c", "line break"),
            ("headers.X", "a ", "whitespace"),
            ("headers.X", "\t{region}", "whitespace"),
            ("headers.X", "{region}\u{a0}", "whitespace"),
            // Issue 26: NUL and DEL were taken, as they were in a subject.
            ("headers.X", "a\0b", "control character (found U+0000)"),
            (
                "headers.X",
                "a\u{7f}{region}",
                "control character (found U+007F)",
            ),
            ("headers.X", "a\tb", "control character (found U+0009)"),
            ("headers.X", "{open", "not closed"),
            ("headers.Nats-Msg-Id", "{id}", "dedupe=false"),
            // Outside check: one put with `Nats-Rollup: all` emptied a whole bucket, and
            // `KV-Operation: DEL` stored a put as a delete.
            ("headers.Nats-Rollup", "all", "JetStream acts on them"),
            ("headers.nats-rollup", "{region}", "JetStream acts on them"),
            ("headers.Nats-TTL", "1s", "JetStream acts on them"),
            ("headers.KV-Operation", "PURGE", "delete or purge"),
        ] {
            let p = problems(&with(&[(key, value)]));
            assert_eq!(p.len(), 1, "{key}: {p:?}");
            assert_eq!(p[0].0, key);
            assert!(p[0].1.contains(why), "{key}: {p:?}");
        }
        assert!(problems(&with(&[
            ("headers.Nats-Msg-Id", "{id}"),
            ("dedupe", "false")
        ]))
        .is_empty());
        // Outside review: two ids differing only in case passed here and failed every write.
        let p = problems(&with(&[
            ("headers.Nats-Msg-Id", "{id}"),
            ("headers.nats-msg-id", "{id}"),
            ("dedupe", "false"),
        ]));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("differ only in case"), "{p:?}");
    }

    #[test]
    fn handling_modes_use_risingwave_names() {
        let config = SinkConfig::parse(&opts(BASE)).unwrap();
        assert_eq!(config.modes, Modes::default());
        let config = SinkConfig::parse(&opts(&with(&[
            ("timestamptz.handling.mode", "utc_string"),
            ("jsonb.handling.mode", "dynamic"),
            ("date.handling.mode", "string"),
            ("time.handling.mode", "string"),
            ("timestamp.handling.mode", "string"),
        ])))
        .unwrap();
        assert_eq!(config.modes.timestamptz, TimestamptzMode::UtcString);
        assert_eq!(config.modes.jsonb, JsonbMode::Dynamic);
        assert_eq!(config.modes.date, DateMode::String);
        assert_eq!(config.modes.key_order, KeyOrder::Sorted);
        let schema_order = SinkConfig::parse(&opts(&with(&[("json.key_order", "schema")])));
        assert_eq!(schema_order.unwrap().modes.key_order, KeyOrder::Schema);
        let p = problems(&with(&[("json.key_order", "input")]));
        assert_eq!(p[0].0, "json.key_order");
        assert!(p[0].1.contains("`sorted`, `schema`, got `input`"), "{p:?}");
        let p = problems(&with(&[("timestamptz.handling.mode", "local")]));
        assert_eq!(p[0].0, "timestamptz.handling.mode");
        assert!(
            p[0].1
                .contains("`utc_without_suffix`, `utc_string`, `micro`, `milli`, got `local`"),
            "{p:?}"
        );
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

    /// Issue 15: RisingWave's stream keys were refused as unknown.
    #[test]
    fn risingwave_stream_keys_are_accepted_and_checked() {
        let config = SinkConfig::parse(&opts(&with(&[
            ("max_bytes", "1048576"),
            ("max_messages", "100"),
            ("max_messages_per_subject", "10"),
            ("max_consumers", "5"),
            ("max_message_size", "4096"),
        ])))
        .unwrap();
        // RisingWave parses them and acts on none; without allow_create_stream, neither do we.
        assert_eq!(config.create_stream, None);
        let config = SinkConfig::parse(&opts(&with(&[
            ("allow_create_stream", "true"),
            ("max_bytes", "1048576"),
            ("max_consumers", "5"),
        ])))
        .unwrap();
        let limits = config.create_stream.unwrap();
        assert_eq!((limits.max_bytes, limits.max_consumers), (1_048_576, 5));
        assert_eq!(limits.max_messages, crate::stream::NO_LIMIT);
        assert_eq!(
            SinkConfig::parse(&opts(&with(&[("allow_create_stream", "false")])))
                .unwrap()
                .create_stream,
            None
        );
        let p = problems(&with(&[
            ("allow_create_stream", "yes"),
            ("max_messages", "lots"),
            ("max_message_size", "-5"),
        ]));
        let names: Vec<_> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["allow_create_stream", "max_messages", "max_message_size"]
        );
        assert!(p[0].1.contains("`true` or `false`, got `yes`"), "{p:?}");
        assert!(p[2].1.contains("from -1 to 2147483647"), "{p:?}");
    }

    #[test]
    fn every_spec_has_a_doc_and_unique_name() {
        let mut names: Vec<_> = OPTION_SPECS.iter().map(|s| s.name).collect();
        assert!(OPTION_SPECS.iter().all(|s| !s.doc.is_empty()));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OPTION_SPECS.len());
    }

    /// The defaults `describe` lists are the ones the parser applies: giving each one
    /// explicitly yields the same config as leaving it out (a listed default the parser does
    /// not take is either refused or changes the config).
    #[test]
    fn giving_each_default_changes_nothing() {
        let absent = SinkConfig::parse(&opts(BASE)).unwrap();
        // `ns-<hash>` describes a derived value; it is not a value to give.
        let given: Vec<_> = OPTION_SPECS
            .iter()
            .filter(|s| !s.default.is_empty() && s.name != "sink_id")
            .collect();
        assert!(given.len() >= 20, "{} defaults", given.len());
        // An upsert sink's options, against an upsert sink whose key has two columns.
        let upsert_base: Vec<(&str, &str)> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| *k != "subject")
            .chain([
                ("type", "upsert"),
                ("kv.bucket", "b"),
                ("primary_key", "pk1,pk2"),
            ])
            .collect();
        let upsert_absent = SinkConfig::parse(&opts(&upsert_base)).unwrap();
        for spec in given {
            let upsert = crate::upsert::UPSERT_OPTIONS.contains(&spec.name);
            let mut pairs = if upsert {
                upsert_base.clone()
            } else {
                BASE.to_vec()
            };
            pairs.push((spec.name, spec.default));
            assert_eq!(
                SinkConfig::parse(&opts(&pairs)).as_ref(),
                Ok(if upsert { &upsert_absent } else { &absent }),
                "{} = {}",
                spec.name,
                spec.default
            );
        }
    }

    #[test]
    fn typed_defaults_read_the_spec_list() {
        assert_eq!(whole_default("connect_timeout_ms"), 5_000);
        assert_eq!(DEFAULT_FLUSH_TIMEOUT_MS, 120_000);
        assert_eq!(Delivery::default().max_attempts, 30);
        assert!(bool_default("dedupe"));
        assert!(!bool_default("allow_create_stream"));
        assert_eq!(default_of("jsonb.handling.mode"), "string");
    }
}
