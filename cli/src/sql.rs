//! `CREATE SINK` statements as RisingWave takes them:
//!
//! ```sql
//! CREATE SINK [IF NOT EXISTS] name [FROM relation | AS query]
//! WITH (connector = 'nats', server_url = '...', subject = '...', ...)
//! [FORMAT PLAIN ENCODE JSON [(timestamptz.handling.mode = 'utc_string', ...)]];
//! ```
//!
//! The sink's options are the WITH list and the ENCODE list together; the component validates
//! them as it does `--with` options. The rows come from the CLI's input, so FROM / AS only name
//! where the engine would have taken them.

use sqlparser::ast::Value;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// What the parser expected (never the token it found), and where it stopped.
    #[error("{message} {at}")]
    Syntax { message: String, at: Position },
    #[error("expected a CREATE SINK statement, found `{0}`")]
    NotCreateSink(String),
    #[error("FORMAT {0} is not supported: use FORMAT PLAIN (append-only) or FORMAT UPSERT (a KV bucket)")]
    UnsupportedFormat(String),
    #[error("FORMAT UPSERT with `type = '{0}'`: leave `type` out or make it 'upsert'")]
    FormatConflict(String),
    #[error("ENCODE {0} is not supported: the NATS sink writes JSON; use ENCODE JSON")]
    UnsupportedEncode(String),
    #[error("option `{0}` is given in both WITH and ENCODE JSON (...)")]
    Repeated(String),
    /// `kind` says what was found (a double-quoted identifier, a hex string, ...), never the
    /// text itself, which may be a secret written with the wrong quotes.
    #[error(
        "option `{key}`: the value must be a 'single-quoted' string, number or boolean literal, got {kind}"
    )]
    NotALiteral { key: String, kind: &'static str },
}

/// Where in the statement a syntax error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    At { line: u64, column: u64 },
    End,
}

impl Position {
    /// Where `token` starts; the end for the end of the tokens.
    fn of(token: &TokenWithSpan) -> Position {
        match token.token {
            Token::EOF => Position::End,
            _ => Position::at(token.span.start),
        }
    }

    /// `location`, which sqlparser gives as line 0 where it has none.
    fn at(location: Location) -> Position {
        match location.line {
            0 => Position::End,
            line => Position::At {
                line,
                column: location.column,
            },
        }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::At { line, column } => write!(f, "at line {line}, column {column}"),
            Position::End => f.write_str("at the end of the statement"),
        }
    }
}

/// `e` as a syntax error at `at`. sqlparser quotes the token it stopped at, which may be an
/// unquoted secret (`password = hunter2`): the message keeps what was expected, not the
/// token, and the position is given once, as ours.
fn syntax(e: ParserError, at: Position) -> SqlError {
    let text = e.to_string();
    let end = [text.find(", found: "), text.rfind(" at Line: ")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    let mut message = text[..end].to_string();
    if text[end..].starts_with(", found: ") {
        message.push_str(", found something else");
    }
    SqlError::Syntax { message, at }
}

/// A syntax error where `parser` stopped.
fn stopped(parser: &Parser, e: ParserError) -> SqlError {
    syntax(e, Position::of(&parser.peek_token()))
}

/// What a `CREATE SINK` statement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSink {
    pub name: String,
    /// The relation after FROM, or the query after AS, as written.
    pub source: Option<String>,
    /// The WITH options, then the ENCODE JSON options, in statement order; `SECRET` ones aside.
    pub options: Vec<(String, String)>,
    /// Options given as `key = SECRET name`: the key, and the secret's name to resolve.
    pub secrets: Vec<(String, String)>,
}

/// Parse one `CREATE SINK` statement.
pub fn parse_create_sink(sql: &str) -> Result<CreateSink, SqlError> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Syntax {
            message: format!("sql parser error: {}", e.message),
            at: Position::at(e.location),
        })?;
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    if !parser.parse_keyword(Keyword::CREATE) || !next_word_is(&mut parser, "SINK") {
        let start: String = sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        return Err(SqlError::NotCreateSink(start));
    }
    let _ = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser
        .parse_object_name(false)
        .map_err(|e| stopped(&parser, e))?
        .to_string();
    let source = if parser.parse_keyword(Keyword::FROM) {
        Some(
            parser
                .parse_object_name(false)
                .map_err(|e| stopped(&parser, e))?
                .to_string(),
        )
    } else if parser.parse_keyword(Keyword::AS) {
        let (query, rest) = split_query(&mut parser);
        parser = Parser::new(&dialect).with_tokens_with_locations(rest);
        Some(parse_query(
            &dialect,
            query,
            Position::of(&parser.peek_token()),
        )?)
    } else {
        None
    };
    parser
        .expect_keyword_is(Keyword::WITH)
        .map_err(|e| stopped(&parser, e))?;
    let mut options = option_list(&mut parser)?;

    if parser.parse_keyword(Keyword::FORMAT) {
        let format = parser
            .parse_identifier()
            .map_err(|e| stopped(&parser, e))?
            .value;
        let upsert = format.eq_ignore_ascii_case("UPSERT");
        if !upsert && !format.eq_ignore_ascii_case("PLAIN") {
            return Err(SqlError::UnsupportedFormat(format.to_uppercase()));
        }
        // FORMAT UPSERT is the sink's `type = 'upsert'`, as RisingWave's key-value sinks read it.
        if upsert {
            match options.iter().find(|(k, _)| k == "type") {
                Some((_, OptionValue::Literal(kind))) if kind == "upsert" => {}
                Some((_, OptionValue::Literal(kind))) => {
                    return Err(SqlError::FormatConflict(kind.clone()))
                }
                Some((_, OptionValue::Secret(_))) => {
                    return Err(SqlError::FormatConflict("SECRET ...".into()))
                }
                None => options.push(("type".into(), OptionValue::Literal("upsert".into()))),
            }
        }
        if !next_word_is(&mut parser, "ENCODE") {
            return Err(SqlError::Syntax {
                message: format!("expected ENCODE after FORMAT {}", format.to_uppercase()),
                at: Position::of(&parser.peek_token()),
            });
        }
        let encode = parser
            .parse_identifier()
            .map_err(|e| stopped(&parser, e))?
            .value;
        if !encode.eq_ignore_ascii_case("JSON") {
            return Err(SqlError::UnsupportedEncode(encode.to_uppercase()));
        }
        if parser.peek_token().token == Token::LParen {
            for (key, value) in option_list(&mut parser)? {
                if options.iter().any(|(k, _)| *k == key) {
                    return Err(SqlError::Repeated(key));
                }
                options.push((key, value));
            }
        }
    }
    let _ = parser.consume_token(&Token::SemiColon);
    let rest = parser.peek_token();
    if rest.token != Token::EOF {
        return Err(SqlError::Syntax {
            message: "unexpected text after the statement".into(),
            at: Position::of(&rest),
        });
    }
    let (secrets, options) = split_secrets(options);
    Ok(CreateSink {
        name,
        source,
        options,
        secrets,
    })
}

/// The rest of the statement after `AS`, split before the sink's `WITH (`: the query's
/// tokens, and the sink's. The sink's WITH is the last one outside parentheses that opens a
/// list, so that a table hint or a common table expression inside the query stays the
/// query's, and `FROM t WITH (...)` is not read as a hint on `t`.
fn split_query(parser: &mut Parser) -> (Vec<TokenWithSpan>, Vec<TokenWithSpan>) {
    let mut tokens = Vec::new();
    loop {
        let token = parser.next_token();
        if token.token == Token::EOF {
            break;
        }
        tokens.push(token);
    }
    let mut depth = 0usize;
    let mut split = tokens.len();
    for (i, token) in tokens.iter().enumerate() {
        match &token.token {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(w)
                if depth == 0
                    && w.keyword == Keyword::WITH
                    && tokens.get(i + 1).is_some_and(|t| t.token == Token::LParen) =>
            {
                split = i;
            }
            _ => {}
        }
    }
    let rest = tokens.split_off(split);
    (tokens, rest)
}

/// The query `tokens` make, as text; an error at its end is at `end` (the sink's WITH).
fn parse_query(
    dialect: &PostgreSqlDialect,
    tokens: Vec<TokenWithSpan>,
    end: Position,
) -> Result<String, SqlError> {
    let mut parser = Parser::new(dialect).with_tokens_with_locations(tokens);
    let at = |parser: &Parser| match Position::of(&parser.peek_token()) {
        Position::End => end,
        inside => inside,
    };
    let query = parser.parse_query().map_err(|e| syntax(e, at(&parser)))?;
    if parser.peek_token().token != Token::EOF {
        return Err(SqlError::Syntax {
            message: "unexpected text after the query".into(),
            at: at(&parser),
        });
    }
    Ok(query.to_string())
}

/// True (and consumed) when the next token is the word `word`, which sqlparser does not
/// know as a keyword.
fn next_word_is(parser: &mut Parser, word: &str) -> bool {
    match &parser.peek_token().token {
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) => {
            parser.next_token();
            true
        }
        _ => false,
    }
}

/// What kind of literal `value` is, in words that do not quote it.
fn literal_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Placeholder(_) => "a placeholder",
        Value::DoubleQuotedString(_) => "a \"double-quoted\" string (use single quotes)",
        Value::HexStringLiteral(_) => "a hex string",
        Value::NationalStringLiteral(_) => "a national string",
        _ => "another kind of literal",
    }
}

/// An option's value as a statement gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OptionValue {
    Literal(String),
    /// `SECRET name`: the value is resolved outside the statement.
    Secret(String),
}

/// Options as (key, text) pairs.
type Pairs = Vec<(String, String)>;

/// (`SECRET` options as (key, name), literal ones as (key, value)), each in statement order.
fn split_secrets(options: Vec<(String, OptionValue)>) -> (Pairs, Pairs) {
    let (mut secrets, mut literals) = (Vec::new(), Vec::new());
    for (key, value) in options {
        match value {
            OptionValue::Secret(name) => secrets.push((key, name)),
            OptionValue::Literal(text) => literals.push((key, text)),
        }
    }
    (secrets, literals)
}

/// A name as the text it stands for: its parts' values, quotes taken off, joined by `.`
/// (`retry.max_attempts`, `"headers.X-Source"`, `ops."pw"`).
fn dotted(name: &sqlparser::ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.clone(),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// `( key = value, ... )`; a key may be dotted (`retry.max_attempts`) or quoted
/// (`"headers.X-Source"`); a value may be `SECRET name`.
fn option_list(parser: &mut Parser) -> Result<Vec<(String, OptionValue)>, SqlError> {
    parser
        .expect_token(&Token::LParen)
        .map_err(|e| stopped(parser, e))?;
    let mut options = Vec::new();
    if !parser.consume_token(&Token::RParen) {
        loop {
            let key = dotted(
                &parser
                    .parse_object_name(false)
                    .map_err(|e| stopped(parser, e))?,
            );
            parser
                .expect_token(&Token::Eq)
                .map_err(|e| stopped(parser, e))?;
            if next_word_is(parser, "SECRET") {
                // RisingWave's `password = SECRET name` (a schema may qualify the name).
                let name = parser
                    .parse_object_name(false)
                    .map_err(|e| stopped(parser, e))?;
                options.push((key, OptionValue::Secret(dotted(&name))));
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
                continue;
            }
            // parse_value takes the token it refuses: the error is where the value starts.
            let value_at = Position::of(&parser.peek_token());
            // `-1` is two tokens: a sign, then the number.
            let negative = parser.consume_token(&Token::Minus);
            let value = parser.parse_value().map_err(|e| syntax(e, value_at))?.value;
            let text = match value {
                Value::Number(n, _) if negative => format!("-{n}"),
                Value::Number(n, _) => n.to_string(),
                _ if negative => {
                    return Err(SqlError::NotALiteral {
                        key,
                        kind: "a minus sign before something other than a number",
                    })
                }
                Value::SingleQuotedString(s)
                | Value::EscapedStringLiteral(s)
                | Value::DollarQuotedString(sqlparser::ast::DollarQuotedString {
                    value: s, ..
                }) => s,
                Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(SqlError::NotALiteral {
                        key,
                        kind: literal_kind(&other),
                    })
                }
            };
            options.push((key, OptionValue::Literal(text)));
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        parser
            .expect_token(&Token::RParen)
            .map_err(|e| stopped(parser, e))?;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn risingwave_statement_gives_every_option() {
        let sink = parse_create_sink(
            "CREATE SINK IF NOT EXISTS orders_out FROM public.orders WITH (
                connector = 'nats',
                server_url = 'nats://127.0.0.1:4222',
                subject = 'orders.{region}',
                connect_mode = 'plain',
                retry.max_attempts = 5,
                dedupe = false,
                \"headers.X-Source\" = 'it''s rw'
            ) FORMAT PLAIN ENCODE JSON (timestamptz.handling.mode = 'utc_string');",
        )
        .unwrap();
        assert_eq!(sink.name, "orders_out");
        assert_eq!(sink.source.as_deref(), Some("public.orders"));
        assert_eq!(
            sink.options,
            pairs(&[
                ("connector", "nats"),
                ("server_url", "nats://127.0.0.1:4222"),
                ("subject", "orders.{region}"),
                ("connect_mode", "plain"),
                ("retry.max_attempts", "5"),
                ("dedupe", "false"),
                ("headers.X-Source", "it's rw"),
                ("timestamptz.handling.mode", "utc_string"),
            ])
        );
    }

    #[test]
    fn secret_values_are_named_not_given() {
        let sink = parse_create_sink(
            "CREATE SINK s FROM t WITH (connect_mode = 'user_and_password', username = 'alice',
             password = SECRET nats_password, token = secret ops.nats_token)",
        )
        .unwrap();
        assert_eq!(
            sink.options,
            pairs(&[("connect_mode", "user_and_password"), ("username", "alice")])
        );
        assert_eq!(
            sink.secrets,
            pairs(&[("password", "nats_password"), ("token", "ops.nats_token")])
        );
    }

    #[test]
    fn syntax_errors_never_quote_the_offending_token() {
        for sql in [
            "CREATE SINK s FROM t WITH (password = hunter2)",
            "CREATE SINK s FROM t WITH (password = 'x' hunter2)",
            "CREATE SINK s FROM t WITH (password = 'x') hunter2",
        ] {
            let message = parse_create_sink(sql).unwrap_err().to_string();
            assert!(!message.contains("hunter2"), "{message}");
        }
        let message = parse_create_sink("CREATE SINK s FROM t WITH (password = hunter2)")
            .unwrap_err()
            .to_string();
        assert!(message.ends_with("at line 1, column 39"), "{message}");
    }

    #[test]
    fn as_query_and_no_format_clause() {
        let sink = parse_create_sink(
            "create sink s as select id, note from t where id > 3 with (connector='nats')",
        )
        .unwrap();
        assert_eq!(
            sink.source.as_deref(),
            Some("SELECT id, note FROM t WHERE id > 3")
        );
        assert_eq!(sink.options, pairs(&[("connector", "nats")]));
    }

    #[test]
    fn format_upsert_is_an_upsert_sink_with_its_encode_options() {
        let sink = parse_create_sink(
            "CREATE SINK s FROM t WITH (connector='nats', primary_key='id', kv.bucket='B') \
             FORMAT UPSERT ENCODE JSON (key_format = 'user/{id}')",
        )
        .unwrap();
        assert_eq!(
            sink.options,
            pairs(&[
                ("connector", "nats"),
                ("primary_key", "id"),
                ("kv.bucket", "B"),
                ("type", "upsert"),
                ("key_format", "user/{id}"),
            ])
        );
    }

    #[test]
    fn unsupported_and_malformed_statements_say_what() {
        let err = |sql| parse_create_sink(sql).unwrap_err();
        assert_eq!(
            err("CREATE SINK s FROM t WITH (connector='nats') FORMAT DEBEZIUM ENCODE JSON"),
            SqlError::UnsupportedFormat("DEBEZIUM".into())
        );
        assert_eq!(
            err("CREATE SINK s FROM t WITH (type='append-only') FORMAT UPSERT ENCODE JSON"),
            SqlError::FormatConflict("append-only".into())
        );
        assert_eq!(
            err("CREATE SINK s FROM t WITH (connector='nats') FORMAT PLAIN ENCODE AVRO"),
            SqlError::UnsupportedEncode("AVRO".into())
        );
        assert_eq!(
            err("CREATE TABLE t (id int)"),
            SqlError::NotCreateSink("CREATE TABLE t".into())
        );
        assert_eq!(
            err("CREATE SINK s FROM t WITH (a='1') FORMAT PLAIN ENCODE JSON (a='2')"),
            SqlError::Repeated("a".into())
        );
        assert!(matches!(
            err("CREATE SINK s FROM t WITH (subject = orders)"),
            SqlError::Syntax { .. }
        ));
        let SqlError::Syntax { message, at } = err("CREATE SINK s FROM t WITH (a='1'") else {
            panic!("expected a syntax error");
        };
        assert!(message.contains("Expected"), "{message}");
        assert_eq!(at, Position::End);
        assert!(matches!(
            err("CREATE SINK s FROM t WITH (a=NULL)"),
            SqlError::NotALiteral { .. }
        ));
        assert!(matches!(
            err("CREATE SINK s FROM t WITH (a='1') extra"),
            SqlError::Syntax { message: m, at: Position::At { line: 1, column: 35 } }
                if m.contains("after the statement") && !m.contains("extra")
        ));
    }

    /// Issue 26: `AS SELECT * FROM t WITH (...)` read `t WITH (...)` as a table hint, and its
    /// error said neither what was found nor where.
    #[test]
    fn as_query_ends_before_the_sinks_with() {
        let sink = parse_create_sink(
            "CREATE SINK s AS SELECT * FROM t WITH (connector = 'nats', subject = 'a')
             FORMAT PLAIN ENCODE JSON",
        )
        .unwrap();
        assert_eq!(sink.source.as_deref(), Some("SELECT * FROM t"));
        assert_eq!(
            sink.options,
            pairs(&[("connector", "nats"), ("subject", "a")])
        );
        // A common table expression and parentheses inside the query stay the query's.
        let sink = parse_create_sink(
            "CREATE SINK s AS WITH x AS (SELECT id FROM t) SELECT * FROM (SELECT * FROM x) y \
             WITH (connector = 'nats')",
        )
        .unwrap();
        assert_eq!(
            sink.source.as_deref(),
            Some("WITH x AS (SELECT id FROM t) SELECT * FROM (SELECT * FROM x) y")
        );
        assert_eq!(sink.options, pairs(&[("connector", "nats")]));
        // Without the sink's WITH, the error is where the statement ends.
        let message = parse_create_sink("CREATE SINK s AS SELECT * FROM t")
            .unwrap_err()
            .to_string();
        assert!(
            message.ends_with("at the end of the statement"),
            "{message}"
        );
        // A bad query is named where it goes wrong.
        let message = parse_create_sink("CREATE SINK s AS SELECT * FROM WHERE WITH (a = '1')")
            .unwrap_err()
            .to_string();
        assert!(message.contains("at line 1, column"), "{message}");
    }

    /// Issue 26: unquoted `-1` was a parse error, and `SECRET "pw"` looked for `"pw"`.
    #[test]
    fn negative_numbers_and_quoted_secret_names() {
        let sink = parse_create_sink(
            "CREATE SINK s FROM t WITH (max_bytes = -1, retry.max_attempts = 5, \
             password = SECRET \"pw\", token = SECRET ops.\"tk\")",
        )
        .unwrap();
        assert_eq!(
            sink.options,
            pairs(&[("max_bytes", "-1"), ("retry.max_attempts", "5")])
        );
        assert_eq!(
            sink.secrets,
            pairs(&[("password", "pw"), ("token", "ops.tk")])
        );
        assert!(matches!(
            parse_create_sink("CREATE SINK s FROM t WITH (a = -'x')").unwrap_err(),
            SqlError::NotALiteral { .. }
        ));
    }

    #[test]
    fn a_tokenizer_error_has_its_position_once() {
        let message = parse_create_sink("CREATE SINK s FROM t WITH (a = 'x)")
            .unwrap_err()
            .to_string();
        assert!(message.contains("at line 1, column 32"), "{message}");
        assert!(!message.contains("Line:"), "{message}");
    }
}
