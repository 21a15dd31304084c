//! What `describe` lists: every option, whether it is required, its default and what it does.

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

/// Every option, in the order `describe` lists them.
pub const OPTION_SPECS: &[OptionSpec] = &[
    spec("connector", false, "nats", "Connector name; must be `nats` when given."),
    spec("server_url", true, "", "NATS servers as comma-separated `host:port` entries; a `nats://` prefix is accepted, and `tls://` also requires TLS. `user:password@` or `token@` before the host authenticates as NATS clients do; it is never shown."),
    spec("subject", true, "", "Subject every row is published to; no whitespace, empty tokens, `*` or `>`. `{column}` fills part of a token from the row (a varchar, smallint, integer, bigint, boolean or uuid column), as in `orders.{region}`; a row whose value is null, empty or holds whitespace, `.`, `*` or `>` is refused. `{{` and `}}` are literal braces."),
    spec("connect_mode", true, "", "Authentication: `plain`, `user_and_password` (needs username, password), `credential` (needs jwt, nkey), `token` (needs token), `creds_file` (needs credentials_file) or `nkey` (needs nkey)."),
    spec("username", false, "", "User name for connect_mode=user_and_password."),
    secret("password", "Password for connect_mode=user_and_password."),
    secret("jwt", "User JWT for connect_mode=credential."),
    secret("nkey", "User NKey seed (starts with `SU`) for connect_mode=credential or connect_mode=nkey; signs the server's nonce."),
    secret("token", "Authentication token for connect_mode=token."),
    spec("credentials_file", false, "", "Path of a `.creds` file (a user JWT and NKey seed, as `nsc` writes it) for connect_mode=creds_file; the host reads it."),
    spec("tls.required", false, "false", "Refuse to connect without TLS: `true` or `false`. Implied by a `tls://` server or any other tls option."),
    spec("tls.ca", false, "", "Path of a PEM file with the CA certificates that sign the server's certificate; the system's roots are used besides."),
    spec("tls.cert", false, "", "Path of a PEM client certificate, for servers that verify clients; needs tls.key."),
    spec("tls.key", false, "", "Path of the PEM private key of tls.cert."),
    spec(HEADER_OPTION, false, "", "A header on every message, as `headers.X-Source='nats-sink'`; the value may take `{column}` from the row (a line break in it refuses the row). Names NATS acts on are refused (`Nats-*`, `KV-Operation`), but `Nats-Msg-Id` is allowed with dedupe=false."),
    spec("date.handling.mode", false, "from_ce", "date as `from_ce` (days since 0001-01-01, RisingWave's NATS output), `from_epoch` (days since 1970-01-01) or `string` (`\"YYYY-MM-DD\"`)."),
    spec("time.handling.mode", false, "milli", "time as `milli` (whole seconds in milliseconds) or `string` (`\"HH:MM:SS.ffffff\"`)."),
    spec("timestamp.handling.mode", false, "milli", "timestamp as `milli` (milliseconds since 1970) or `string` (`\"YYYY-MM-DD HH:MM:SS.ffffff\"`)."),
    spec("timestamptz.handling.mode", false, "utc_without_suffix", "timestamptz as `utc_without_suffix` (`\"YYYY-MM-DD HH:MM:SS.ffffff\"`), `utc_string` (`\"YYYY-MM-DDTHH:MM:SS.ffffffZ\"`), `micro` or `milli` (since 1970)."),
    spec("jsonb.handling.mode", false, "string", "jsonb as `string` (its text in a JSON string) or `dynamic` (the JSON value itself)."),
    spec("json.key_order", false, "sorted", "Object keys, at the top level and in structs, `sorted` bytewise as RisingWave writes them, or in `schema` order (our extension)."),
    spec("type", false, "append-only", "Sink type: `append-only` (every row a message on `subject`; a row that is not an insert is refused) or `upsert` (the table's latest state in the NATS KV bucket `kv.bucket`: a put per insert or update, a delete per delete, under the row's key)."),
    spec("force_append_only", false, "false", "As RisingWave's: `true` lets an append-only sink take changes, dropping deletes and the delete half of each update and writing the insert half as an insert. Append-only sinks only."),
    spec("primary_key", false, "", "With type=upsert (required): the columns that identify a row, as `id` or `region,id`; each a varchar, smallint, integer, bigint, boolean or uuid column."),
    spec("kv.bucket", false, "", "With type=upsert (required): the NATS KV bucket (letters, digits, `-`, `_`); each row goes to `$KV.<bucket>.<key>`. It must exist, unless allow_create_stream=true."),
    spec("key_format", false, "{pk1}.{pk2}", "With type=upsert: the key as a template of every primary_key column, as RisingWave's `key_format = 'user:{id}'` (`:` is no KV key character: use `user/{id}`). Default: the primary key's values joined by `.`. A key takes letters, digits and `-/_=.`, no `.` at either end; a row whose key breaks that is refused, naming the column."),
    spec("key_encoding", false, "none", "With type=upsert: `none` (values fill the key as their text) or `base64url` (each value as padded base64url, as NATS clients' base64 key codec writes it: any value makes a valid key, reversibly)."),
    spec("kv.delete", false, "delete", "With type=upsert: what a delete writes, `delete` (`KV-Operation: DEL`: the key reads as deleted, its history stays) or `purge` (`KV-Operation: PURGE` and `Nats-Rollup: sub`: its history goes too)."),
    spec("kv.history", false, "1", "With type=upsert and allow_create_stream=true: values the created bucket keeps per key (1 to 64)."),
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
    spec("allow_create_stream", false, "false", "RisingWave's key; ours to act on: `true` makes the host create a JetStream stream for the subject (a `{column}` token as `*`), named `nats-sink-` and 16 hex digits of SHA-256 over that subject, with the max_* limits below, when no stream captures it. With type=upsert: the KV bucket, if it does not exist (history kv.history; the max_* limits do not apply)."),
    spec("max_bytes", false, "-1", "RisingWave's key: with allow_create_stream, the created stream's max_bytes (-1 to 9223372036854775807; -1 or 0: no limit)."),
    spec("max_messages", false, "-1", "RisingWave's key: with allow_create_stream, the created stream's max_msgs (-1 to 9223372036854775807; -1 or 0: no limit)."),
    spec("max_messages_per_subject", false, "-1", "RisingWave's key: with allow_create_stream, the created stream's max_msgs_per_subject (-1 to 9223372036854775807; -1 or 0: no limit)."),
    spec("max_consumers", false, "-1", "RisingWave's key: with allow_create_stream, the created stream's max_consumers (-1 to 2147483647; -1 or 0: no limit)."),
    spec("max_message_size", false, "-1", "RisingWave's key: with allow_create_stream, the created stream's max_msg_size in bytes (-1 to 2147483647; -1 or 0: no limit)."),
];

/// The `describe` name standing for every `headers.<name>` option.
pub const HEADER_OPTION: &str = "headers.<name>";

/// The default of option `name` as `describe` shows it. Options take their defaults from here
/// (through the typed forms below), so the list and the parser cannot disagree. Evaluated at
/// compile time where it is used in a `const`: an unknown name stops the build.
pub const fn default_of(name: &str) -> &'static str {
    let mut i = 0;
    while i < OPTION_SPECS.len() {
        if same_text(OPTION_SPECS[i].name, name) {
            return OPTION_SPECS[i].default;
        }
        i += 1;
    }
    panic!("no option of that name in OPTION_SPECS");
}

/// The default of a whole-number option; a default that is not one stops the build.
pub const fn whole_default(name: &str) -> u32 {
    let digits = default_of(name).as_bytes();
    assert!(!digits.is_empty(), "the option has no numeric default");
    let mut value: u32 = 0;
    let mut i = 0;
    while i < digits.len() {
        assert!(
            digits[i].is_ascii_digit(),
            "the default is not a whole number"
        );
        value = value * 10 + (digits[i] - b'0') as u32;
        i += 1;
    }
    value
}

/// The default of a `true` / `false` option; any other default stops the build.
pub const fn bool_default(name: &str) -> bool {
    let text = default_of(name);
    if same_text(text, "true") {
        true
    } else if same_text(text, "false") {
        false
    } else {
        panic!("the default is not `true` or `false`")
    }
}

const fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
