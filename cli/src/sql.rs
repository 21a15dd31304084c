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
use sqlparser::tokenizer::Token;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    Syntax(String),
    #[error("expected a CREATE SINK statement, found `{0}`")]
    NotCreateSink(String),
    #[error("FORMAT {0} is not supported: the NATS sink is append-only; use FORMAT PLAIN")]
    UnsupportedFormat(String),
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

impl From<ParserError> for SqlError {
    /// sqlparser quotes the token it stopped at, which may be an unquoted secret
    /// (`password = hunter2`): the message keeps what was expected and where, not the token.
    fn from(e: ParserError) -> SqlError {
        let text = e.to_string();
        let hidden = match (text.find(", found: "), text.rfind(" at Line: ")) {
            (Some(found), Some(at)) if found < at => {
                format!("{}, found something else{}", &text[..found], &text[at..])
            }
            (Some(found), _) => format!("{}, found something else", &text[..found]),
            _ => text,
        };
        SqlError::Syntax(hidden)
    }
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
    let mut parser = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql)?;
    if !parser.parse_keyword(Keyword::CREATE) || !next_word_is(&mut parser, "SINK") {
        let start: String = sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        return Err(SqlError::NotCreateSink(start));
    }
    let _ = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?.to_string();
    let source = if parser.parse_keyword(Keyword::FROM) {
        Some(parser.parse_object_name(false)?.to_string())
    } else if parser.parse_keyword(Keyword::AS) {
        Some(parser.parse_query()?.to_string())
    } else {
        None
    };
    parser.expect_keyword_is(Keyword::WITH)?;
    let mut options = option_list(&mut parser)?;

    if parser.parse_keyword(Keyword::FORMAT) {
        let format = parser.parse_identifier()?.value;
        if !format.eq_ignore_ascii_case("PLAIN") {
            return Err(SqlError::UnsupportedFormat(format.to_uppercase()));
        }
        if !next_word_is(&mut parser, "ENCODE") {
            return Err(SqlError::Syntax(format!(
                "expected ENCODE after FORMAT PLAIN, found {}",
                parser.peek_token()
            )));
        }
        let encode = parser.parse_identifier()?.value;
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
        return Err(SqlError::Syntax(format!(
            "unexpected text after the statement, {}",
            rest.span.start
        )));
    }
    let (secrets, options) = split_secrets(options);
    Ok(CreateSink {
        name,
        source,
        options,
        secrets,
    })
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

/// `( key = value, ... )`; a key may be dotted (`retry.max_attempts`) or quoted
/// (`"headers.X-Source"`); a value may be `SECRET name`.
fn option_list(parser: &mut Parser) -> Result<Vec<(String, OptionValue)>, SqlError> {
    parser.expect_token(&Token::LParen)?;
    let mut options = Vec::new();
    if !parser.consume_token(&Token::RParen) {
        loop {
            let key = parser
                .parse_object_name(false)?
                .0
                .iter()
                .map(|part| match part.as_ident() {
                    Some(ident) => ident.value.clone(),
                    None => part.to_string(),
                })
                .collect::<Vec<_>>()
                .join(".");
            parser.expect_token(&Token::Eq)?;
            if next_word_is(parser, "SECRET") {
                // RisingWave's `password = SECRET name` (a schema may qualify the name).
                let name = parser.parse_object_name(false)?.to_string();
                options.push((key, OptionValue::Secret(name)));
                if !parser.consume_token(&Token::Comma) {
                    break;
                }
                continue;
            }
            let value = parser.parse_value()?.value;
            let text = match value {
                Value::SingleQuotedString(s)
                | Value::EscapedStringLiteral(s)
                | Value::DollarQuotedString(sqlparser::ast::DollarQuotedString {
                    value: s, ..
                }) => s,
                Value::Number(n, _) => n.to_string(),
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
        parser.expect_token(&Token::RParen)?;
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
        assert!(message.contains("Column"), "{message}");
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
    fn unsupported_and_malformed_statements_say_what() {
        let err = |sql| parse_create_sink(sql).unwrap_err();
        assert_eq!(
            err("CREATE SINK s FROM t WITH (connector='nats') FORMAT UPSERT ENCODE JSON"),
            SqlError::UnsupportedFormat("UPSERT".into())
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
            SqlError::Syntax(_)
        ));
        let SqlError::Syntax(message) = err("CREATE SINK s FROM t WITH (a='1'") else {
            panic!("expected a syntax error");
        };
        assert!(message.contains("Expected"), "{message}");
        assert!(matches!(
            err("CREATE SINK s FROM t WITH (a=NULL)"),
            SqlError::NotALiteral { .. }
        ));
        assert!(matches!(
            err("CREATE SINK s FROM t WITH (a='1') extra"),
            SqlError::Syntax(m) if m.contains("after the statement") && !m.contains("extra")
        ));
    }
}
