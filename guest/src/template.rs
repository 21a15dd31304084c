//! Text filled from a row: `orders.{region}.{status}` for subjects, `{tenant}` for header
//! values. `{column}` names a top-level column; `{{` and `}}` are literal braces.

use std::fmt::Write as _;

use crate::bindings::Value;
use crate::encode::RowError;
use crate::options::MAX_SUBJECT_BYTES;
use crate::rows::RowRef;
use crate::schema::{DataType, Schema};
use nats_sink_rules::nats_names::{check_header_text, check_no_control, is_header_space};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A column by name, and its index in the schema once resolved.
    Column {
        name: String,
        index: usize,
    },
}

/// A parsed template. Until `resolve` binds it to a schema, column indices are unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// What a filled-in value must be, by where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Part of a subject token: not empty, no whitespace, control character, `.`, `*` or `>`.
    SubjectToken,
    /// Part of a header value: no line break or other control character.
    HeaderValue,
    /// Part of a NATS KV key in a `$KV.<bucket>.<key>` subject: letters, digits and `-/_=.`,
    /// or, with `base64`, any value, encoded as padded base64url.
    KvKey { base64: bool },
}

/// Column types whose values have one obvious text form.
fn fills_text(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Varchar
            | DataType::Smallint
            | DataType::Integer
            | DataType::Bigint
            | DataType::Boolean
            | DataType::Uuid
    )
}

impl Template {
    /// Split `text` into literals and `{column}` references.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, ch)) = chars.next() {
            match ch {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &text[at + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(format!(
                            "`{{` at byte {at} is not closed; write `{{{{` for a literal brace"
                        ));
                    };
                    let name = &rest[..end];
                    if name.is_empty() || name.contains('{') {
                        return Err(format!("`{{` at byte {at} does not enclose a column name"));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Column {
                        name: name.to_string(),
                        index: usize::MAX,
                    });
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                '}' => {
                    return Err(format!(
                        "`}}` at byte {at} closes nothing; write `}}}}` for a literal brace"
                    ))
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// True when the template names no column: the same text for every row.
    pub fn is_fixed(&self) -> bool {
        self.columns().next().is_none()
    }

    /// The columns it names, in order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Column { name, .. } => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The text with every column replaced by `sample`; for checking the literal parts.
    pub fn with_sample(&self, sample: &str) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.as_str(),
                Part::Column { .. } => sample,
            })
            .collect()
    }

    /// Bind each column to its index in `schema`, checking it exists and has a text form.
    pub fn resolve(&mut self, schema: &Schema) -> Result<(), String> {
        for part in &mut self.parts {
            if let Part::Column { name, index } = part {
                let Some(found) = schema.columns.iter().position(|c| c.name == *name) else {
                    return Err(format!("names column `{name}`, which is not in the schema"));
                };
                let ty = &schema.columns[found].data_type;
                if !fills_text(ty) {
                    return Err(format!(
                        "names column `{name}` of type {ty}; only varchar, smallint, integer, bigint, boolean and uuid columns can fill a template"
                    ));
                }
                *index = found;
            }
        }
        Ok(())
    }

    /// Fill the template from `row` (its columns come first) into `out`.
    /// A null, or a value that would break `slot`'s rules, is an error naming the column.
    pub fn render(&self, row: RowRef<'_>, slot: Slot, out: &mut String) -> Result<(), RowError> {
        out.clear();
        // The column that filled the most, to blame when the subject is too long.
        let mut widest: Option<(&str, usize)> = None;
        // The columns that filled the value's start and its end.
        let mut edges: (Option<&str>, Option<&str>) = (None, None);
        for part in &self.parts {
            match part {
                Part::Literal(text) => {
                    out.push_str(text);
                    edges.1 = None;
                }
                Part::Column { name, index } => {
                    let start = out.len();
                    fill(row, *index, slot, out).map_err(|message| RowError {
                        column: name.clone(),
                        message,
                    })?;
                    check_slot(&out[start..], slot).map_err(|why| RowError {
                        column: name.clone(),
                        message: format!(
                            "value {:?} cannot fill `{{{name}}}`: {why}",
                            &out[start..]
                        ),
                    })?;
                    if start == 0 {
                        edges.0 = Some(name.as_str());
                    }
                    edges.1 = Some(name.as_str());
                    let filled = out.len() - start;
                    if widest.is_none_or(|(_, most)| filled > most) {
                        widest = Some((name, filled));
                    }
                }
            }
        }
        // NATS clients trim a header value's ends: the value would arrive changed. (The
        // template's own text cannot start or end with a space: the options refuse it.)
        let leading = out.starts_with(is_header_space);
        if slot == Slot::HeaderValue && (leading || out.ends_with(is_header_space)) {
            let blamed = if leading { edges.0 } else { edges.1 };
            return Err(RowError {
                column: blamed.unwrap_or_default().to_string(),
                message: format!(
                    "header value {out:?} starts or ends with whitespace, which NATS clients trim"
                ),
            });
        }
        if let Slot::KvKey { .. } = slot {
            // `$KV.<bucket>.` holds two dots and the bucket none: the key is what follows.
            let key = out.splitn(3, '.').nth(2).unwrap_or_default();
            if let Err(why) = crate::upsert::check_whole_key(key) {
                // Where the key goes wrong: its start, its end, or the empty token of `..`.
                let key_start = out.len() - key.len();
                let at = if key.is_empty() || key.starts_with('.') {
                    key_start
                } else if let Some(dots) = key.find("..") {
                    key_start + dots + 1
                } else {
                    out.len()
                };
                return Err(RowError {
                    column: self
                        .column_at(row, slot, at)
                        .or(edges.1)
                        .or(widest.map(|(name, _)| name))
                        .unwrap_or_default()
                        .to_string(),
                    message: format!("the KV key it makes {why}"),
                });
            }
        }
        if slot == Slot::SubjectToken {
            if let Err(why) = nats_sink_rules::nats_names::check_not_reserved(out) {
                return Err(RowError {
                    column: edges
                        .0
                        .or(widest.map(|(name, _)| name))
                        .unwrap_or_default()
                        .to_string(),
                    message: format!("the subject it makes {why}"),
                });
            }
        }
        if matches!(slot, Slot::SubjectToken | Slot::KvKey { .. }) && out.len() > MAX_SUBJECT_BYTES
        {
            let (name, filled) = widest.unwrap_or_default();
            return Err(RowError {
                column: name.to_string(),
                message: format!(
                    "its {filled}-byte value makes the subject {} bytes long; NATS's control line leaves room for at most {MAX_SUBJECT_BYTES}",
                    out.len()
                ),
            });
        }
        Ok(())
    }

    /// The column whose value lies at byte `at` of the filled template, to blame for a
    /// problem there: an empty value exactly at `at` first, else the first value touching it.
    /// Filled again, on the error path only, so that `render` keeps no spans.
    fn column_at(&self, row: RowRef<'_>, slot: Slot, at: usize) -> Option<&str> {
        let mut out = String::new();
        let mut touching = None;
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Column { name, index } => {
                    let start = out.len();
                    fill(row, *index, slot, &mut out).ok()?;
                    if start == at && out.len() == at {
                        return Some(name);
                    }
                    if touching.is_none() && (start..=out.len()).contains(&at) {
                        touching = Some(name.as_str());
                    }
                }
            }
        }
        touching
    }
}

/// Append column `index`'s value as `slot` takes it (a KV key's base64 if it asks for that).
fn fill(row: RowRef<'_>, index: usize, slot: Slot, out: &mut String) -> Result<(), String> {
    let start = out.len();
    write_text(row, index, out)?;
    if slot == (Slot::KvKey { base64: true }) {
        use base64::Engine as _;
        let value = out.split_off(start);
        base64::engine::general_purpose::URL_SAFE.encode_string(value.as_bytes(), out);
    }
    Ok(())
}

fn write_text(row: RowRef<'_>, index: usize, out: &mut String) -> Result<(), String> {
    match row.values.get(index) {
        Some(Value::Text(span)) => out.push_str(row.text(*span)?),
        Some(Value::Int16(v)) => out.push_str(itoa::Buffer::new().format(*v)),
        Some(Value::Int32(v)) => out.push_str(itoa::Buffer::new().format(*v)),
        Some(Value::Int64(v)) => out.push_str(itoa::Buffer::new().format(*v)),
        Some(Value::Boolean(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::Uuid((hi, lo))) => {
            let _ = write!(
                out,
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                hi >> 32,
                (hi >> 16) & 0xffff,
                hi & 0xffff,
                lo >> 48,
                lo & 0xffff_ffff_ffff
            );
        }
        Some(Value::Null) => return Err("is null, so it cannot fill the template".into()),
        // The encoder checks each value against its column's type before this runs.
        Some(_) | None => return Err("has no text form".into()),
    }
    Ok(())
}

/// The rules for one column's text in `slot`; the whole subject's are checked after.
fn check_slot(text: &str, slot: Slot) -> Result<(), String> {
    let refused = |why: &str| Err(format!("it {why}"));
    match slot {
        Slot::SubjectToken if text.is_empty() => refused("is empty"),
        Slot::SubjectToken if text.contains(char::is_whitespace) => refused("contains whitespace"),
        Slot::SubjectToken if text.contains('.') => {
            refused("contains `.`, which would add a subject token")
        }
        Slot::SubjectToken if text.contains(['*', '>']) => {
            refused("contains a wildcard (`*` or `>`)")
        }
        Slot::SubjectToken => check_no_control(text).or_else(|why| refused(&why)),
        Slot::HeaderValue => check_header_text(text).or_else(|why| refused(&why)),
        Slot::KvKey { base64: true } => Ok(()),
        Slot::KvKey { base64: false } => match text.chars().find(|c| !crate::upsert::is_key_char(*c)) {
            Some(c) => refused(&format!(
                "holds {c:?}, which a NATS KV key cannot (it takes letters, digits and `-/_=.`); set key_encoding = 'base64url' to encode each value"
            )),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::Rows;

    fn schema() -> Schema {
        Schema::parse([
            ("region", "varchar"),
            ("n", "integer"),
            ("ok", "boolean"),
            ("id", "uuid"),
            ("tags", "varchar[]"),
        ])
        .unwrap()
    }

    fn render(text: &str, rows: Rows, slot: Slot) -> Result<String, RowError> {
        let mut template = Template::parse(text).unwrap();
        template.resolve(&schema()).unwrap();
        let mut out = String::new();
        let row = crate::rows::read(&rows).next().unwrap().unwrap();
        template.render(row, slot, &mut out).map(|()| out)
    }

    /// One row whose region is `region` (`None`: null).
    fn row_in(region: Option<&str>) -> Rows {
        let mut rows = Rows::new();
        let region = region.map_or(Value::Null, |r| rows.text(r));
        rows.push_row([
            region,
            Value::Int32(-7),
            Value::Boolean(true),
            Value::Uuid((0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)),
            Value::Null,
        ]);
        rows
    }

    fn row(region: &str) -> Rows {
        row_in(Some(region))
    }

    #[test]
    fn fills_columns_and_keeps_literals() {
        assert_eq!(
            render("orders.{region}.{n}.{ok}", row("eu"), Slot::SubjectToken).unwrap(),
            "orders.eu.-7.true"
        );
        assert_eq!(
            render("{{x}}-{id}", row("eu"), Slot::HeaderValue).unwrap(),
            "{x}-01234567-89ab-cdef-fedc-ba9876543210"
        );
        assert!(Template::parse("plain.subject").unwrap().is_fixed());
    }

    #[test]
    fn a_bad_kv_key_blames_the_column_where_it_goes_wrong() {
        let key = Slot::KvKey { base64: false };
        for (template, region) in [
            ("$KV.B.{n}.{region}.{ok}", ""),   // an empty token in the middle
            ("$KV.B.{region}.{n}.{ok}", ""),   // at the start
            ("$KV.B.{n}.{ok}.{region}", ""),   // at the end
            ("$KV.B.{n}.{region}.{ok}", "x."), // a value that makes `..`
        ] {
            let err = render(template, row(region), key).unwrap_err();
            assert_eq!(err.column, "region", "{template} with {region:?}: {err}");
            assert!(err.message.contains("the KV key it makes"), "{err}");
        }
        assert_eq!(
            render("$KV.B.{n}.{region}.{ok}", row("eu"), key).unwrap(),
            "$KV.B.-7.eu.true"
        );
    }

    #[test]
    fn values_that_would_misroute_are_row_errors() {
        for (value, why) in [
            ("", "empty"),
            ("a b", "whitespace"),
            ("a.b", "`.`"),
            ("*", "wildcard"),
            (">", "wildcard"),
        ] {
            let err = render("orders.{region}", row(value), Slot::SubjectToken).unwrap_err();
            assert_eq!(err.column, "region");
            assert!(err.message.contains(why), "{value:?}: {err}");
        }
        let err = render("orders.{region}", row_in(None), Slot::SubjectToken).unwrap_err();
        assert!(err.message.contains("null"), "{err}");
        let err = render("$JS.API.{region}.x", row("STREAM"), Slot::SubjectToken).unwrap_err();
        assert!(err.message.contains("as a command"), "{err}");
        let err = render("{region}.API.x", row("$JS"), Slot::SubjectToken).unwrap_err();
        assert_eq!(err.column, "region");
        let err = render("{region}", row("a\r\nX: y"), Slot::HeaderValue).unwrap_err();
        assert!(err.message.contains("line break"), "{err}");
        // Issue 26: NUL and DEL were published inside a subject and a header value.
        for (value, code) in [
            ("x\0y", "U+0000"),
            ("x\u{7f}y", "U+007F"),
            ("x\u{9b}y", "U+009B"),
        ] {
            for slot in [Slot::SubjectToken, Slot::HeaderValue] {
                let err = render("tp.{region}", row(value), slot).unwrap_err();
                assert_eq!(err.column, "region");
                assert!(
                    err.message
                        .contains(&format!("control character (found {code})")),
                    "{err}"
                );
            }
        }
        let err = render("$KV.{region}.k", row("bucket"), Slot::SubjectToken).unwrap_err();
        assert!(err.message.contains("key-value bucket"), "{err}");
        let err = render("{region}.bucket.k", row("$KV"), Slot::SubjectToken).unwrap_err();
        assert_eq!(err.column, "region");
        for padded in ["  padded  ", " a", "eu\u{a0}", "\u{3000}eu"] {
            let err = render("{region}", row(padded), Slot::HeaderValue).unwrap_err();
            assert!(err.message.contains("whitespace"), "{err}");
            assert_eq!(err.column, "region");
        }
        // A tab or a vertical tab anywhere is a control character.
        for tabbed in ["a\t", "eu\x0b", "a\tb"] {
            let err = render("{region}", row(tabbed), Slot::HeaderValue).unwrap_err();
            assert!(err.message.contains("control character"), "{err}");
            assert_eq!(err.column, "region");
        }
        // Inside the value, spaces stay.
        assert_eq!(
            render("x {region}", row("a b"), Slot::HeaderValue).unwrap(),
            "x a b"
        );
        // Dots are fine in a header value.
        assert_eq!(
            render("{region}", row("a.b"), Slot::HeaderValue).unwrap(),
            "a.b"
        );
    }

    /// Issue 16: a 10,000-byte value made a subject the server refused, after 5 s of retries.
    #[test]
    fn a_subject_past_the_control_line_is_a_row_error_naming_the_column() {
        let long = "x".repeat(10_000);
        let err = render("orders.{n}.{region}", row(&long), Slot::SubjectToken).unwrap_err();
        assert_eq!(err.column, "region");
        assert!(
            err.message.contains("10000-byte value")
                && err.message.contains("10010 bytes long")
                && err.message.contains("at most 4000"),
            "{err}"
        );
        let fits = "x".repeat(MAX_SUBJECT_BYTES - "orders.".len());
        assert!(render("orders.{region}", row(&fits), Slot::SubjectToken).is_ok());
        // A header value's length counts toward max_payload instead.
        assert!(render("{region}", row(&long), Slot::HeaderValue).is_ok());
    }

    #[test]
    fn bad_templates_say_where() {
        assert!(Template::parse("a.{b").unwrap_err().contains("not closed"));
        assert!(Template::parse("a.{}").unwrap_err().contains("column name"));
        assert!(Template::parse("a.b}")
            .unwrap_err()
            .contains("closes nothing"));
        let mut unknown = Template::parse("a.{nope}").unwrap();
        assert!(unknown
            .resolve(&schema())
            .unwrap_err()
            .contains("not in the schema"));
        let mut list = Template::parse("a.{tags}").unwrap();
        assert!(list.resolve(&schema()).unwrap_err().contains("varchar[]"));
        assert_eq!(
            Template::parse("a.{x}.{y}z").unwrap().with_sample("_"),
            "a._._z"
        );
    }
}
