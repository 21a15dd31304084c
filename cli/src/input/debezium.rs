//! `--input-format debezium`: one Debezium change event per line, as `kcat` reads it out of a
//! Debezium topic, bare or in Kafka Connect's JSON converter envelope (`{"schema": ...,
//! "payload": {...}}`). Each change becomes rows with their operation; `before` and `after`
//! are read by the JSON Lines rules (`parse_row`), so their values are exact or refused.

use nats_sink::{Datum, Op};
use nats_sink_rules::schema::Schema;
use serde_json::value::RawValue;

use super::{json_kind, members, parse_json, parse_row, string, InputError, Key, Members};

/// The table a changelog changes: its schema, and the primary key an upsert sink keys by.
pub struct ChangeSchema {
    pub schema: Schema,
    /// The primary key's columns, as indices into the schema (empty: no key is checked).
    primary_key: Vec<usize>,
}

impl ChangeSchema {
    /// `primary_key` names the key's columns (the sink's `primary_key` option); a name the
    /// schema lacks is left to the sink, which refuses it when it opens.
    pub fn new(schema: Schema, primary_key: &[&str]) -> ChangeSchema {
        let primary_key = primary_key
            .iter()
            .filter_map(|name| schema.columns.iter().position(|c| c.name == *name))
            .collect();
        ChangeSchema {
            schema,
            primary_key,
        }
    }
}

/// What one line holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Rows with their operations, in write order: one for a create, read or delete; an
    /// update pair (update-delete, then update-insert) for an update.
    Rows(Vec<(Op, Vec<Datum>)>),
    /// A tombstone Kafka keeps after a delete for log compaction (`null`, or an envelope
    /// whose payload is `null`): no change of the table.
    Tombstone,
}

/// Why a line is not a change event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The line's JSON, or a value in `before` or `after`.
    #[error(transparent)]
    Value(#[from] InputError),
    /// A field of the event itself: `op`, `before`, `after`, the primary key.
    #[error("line {line}: {field}: {message}")]
    Field {
        line: u64,
        field: String,
        message: String,
    },
}

impl ChangeError {
    pub fn line(&self) -> u64 {
        match self {
            ChangeError::Value(e) => e.line(),
            ChangeError::Field { line, .. } => *line,
        }
    }
}

/// The fields of an event that matter here; any other (`source`, `ts_ms`, `transaction`...)
/// is Debezium's metadata and left alone.
#[derive(Default)]
struct Fields<'a> {
    op: Option<&'a RawValue>,
    before: Option<&'a RawValue>,
    after: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
}

/// Parse line `line` (from 1) of a Debezium changelog.
pub fn parse_change(table: &ChangeSchema, line: u64, text: &str) -> Result<Change, ChangeError> {
    let raw = parse_json(line, text)?;
    if raw.get() == "null" {
        return Ok(Change::Tombstone);
    }
    let fields = fields_of(line, raw, "")?;
    // Kafka Connect's JSON converter wraps the event: `{"schema": ..., "payload": event}`.
    if fields.op.is_none() {
        if let Some(payload) = fields.payload {
            if payload.get() == "null" {
                return Ok(Change::Tombstone);
            }
            let event = fields_of(line, payload, "payload.")?;
            return rows_of(table, line, &event, "payload.");
        }
    }
    rows_of(table, line, &fields, "")
}

/// True when `text` is a tombstone (see [`Change::Tombstone`]), read without the table: a
/// resumed run skips the same lines its reader skipped.
pub fn is_tombstone(text: &str) -> bool {
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
        return false;
    };
    raw.get() == "null"
        || fields_of(0, raw, "")
            .is_ok_and(|f| f.op.is_none() && f.payload.is_some_and(|p| p.get() == "null"))
}

fn field_error(line: u64, field: String, message: impl Into<String>) -> ChangeError {
    ChangeError::Field {
        line,
        field,
        message: message.into(),
    }
}

/// The fields of the event object `raw` (at `prefix` in the line); each once at most.
fn fields_of<'a>(line: u64, raw: &'a RawValue, prefix: &str) -> Result<Fields<'a>, ChangeError> {
    if !raw.get().starts_with('{') {
        let got = json_kind(raw.get());
        return Err(match prefix {
            "" => InputError::NotAnObject { line, got }.into(),
            _ => field_error(
                line,
                prefix.trim_end_matches('.').into(),
                format!("expected a change event (an object) or null, got {got}"),
            ),
        });
    }
    let Members(members) = members(raw.get()).map_err(|e| super::malformed(line, e))?;
    let mut fields = Fields::default();
    for (Key(name), value) in members {
        let slot = match name.as_ref() {
            "op" => &mut fields.op,
            "before" => &mut fields.before,
            "after" => &mut fields.after,
            "payload" => &mut fields.payload,
            _ => continue,
        };
        if slot.is_some() {
            return Err(field_error(
                line,
                format!("{prefix}{name}"),
                "appears more than once; each is given once, so none is dropped",
            ));
        }
        *slot = Some(value);
    }
    Ok(fields)
}

/// The rows of event `fields` (at `prefix` in the line).
fn rows_of(
    table: &ChangeSchema,
    line: u64,
    fields: &Fields<'_>,
    prefix: &str,
) -> Result<Change, ChangeError> {
    let op_field = || format!("{prefix}op");
    let Some(op) = fields.op else {
        return Err(field_error(
            line,
            op_field(),
            "missing: a change event has `op` (`c`, `r`, `u` or `d`)",
        ));
    };
    let op = string(op.get()).ok_or_else(|| {
        field_error(
            line,
            op_field(),
            format!(
                "expected a string (`c`, `r`, `u` or `d`), got {}",
                json_kind(op.get())
            ),
        )
    })?;
    let row = |name: &str, needed_by: &str| -> Result<Vec<Datum>, ChangeError> {
        let field = format!("{prefix}{name}");
        let value = match (name, fields.before, fields.after) {
            ("before", Some(v), _) | ("after", _, Some(v)) => Some(v),
            _ => None,
        };
        let value = value.filter(|v| v.get() != "null").ok_or_else(|| {
            field_error(line, field.clone(), format!("missing or null: {needed_by}"))
        })?;
        if !value.get().starts_with('{') {
            return Err(field_error(
                line,
                field,
                format!("expected a row (an object), got {}", json_kind(value.get())),
            ));
        }
        let datums = parse_row(&table.schema, line, value.get(), &format!("{field}."))?;
        check_key(table, line, &field, value, &datums)?;
        Ok(datums)
    };
    let has_before = fields.before.is_some_and(|v| v.get() != "null");
    let rows = match op.as_ref() {
        "c" | "r" => vec![(Op::Insert, row("after", "a create or read has the new row in `after`")?)],
        "u" => {
            let after = row("after", "an update has the new row in `after`")?;
            // Without `before` (PostgreSQL's default replica identity) the old row is not
            // known, but its key is: Debezium sends a change of the key as a delete and a
            // create, never as an update. So the pair's old row is the new one: an upsert
            // sink puts `after` at its key; an append-only sink treats it as any update.
            let before = match has_before {
                true => row("before", "an update's old row")?,
                false => after.clone(),
            };
            vec![(Op::UpdateDelete, before), (Op::UpdateInsert, after)]
        }
        "d" => vec![(Op::Delete, row("before", "a delete has the deleted row in `before`")?)],
        "t" => {
            return Err(field_error(
                line,
                op_field(),
                "a truncate (`t`) empties the whole table, which no change of one key expresses; truncate the bucket yourself, or leave truncates out of the topic",
            ))
        }
        other => {
            return Err(field_error(
                line,
                op_field(),
                format!(
                    "unknown operation {}; Debezium's are `c` (create), `r` (read), `u` (update) and `d` (delete)",
                    serde_json::Value::String(other.to_string())
                ),
            ))
        }
    };
    Ok(Change::Rows(rows))
}

/// Every primary key column of `row` (parsed from `object`, at `field`) is given and not null.
fn check_key(
    table: &ChangeSchema,
    line: u64,
    field: &str,
    object: &RawValue,
    row: &[Datum],
) -> Result<(), ChangeError> {
    for &index in &table.primary_key {
        if row[index] != Datum::Null {
            continue;
        }
        let name = &table.schema.columns[index].name;
        let Members(members) = members(object.get()).map_err(|e| super::malformed(line, e))?;
        let given = members.iter().any(|(Key(key), _)| key == name);
        return Err(match given {
            true => field_error(
                line,
                format!("{field}.{name}"),
                "the primary key is null, so the row has no key",
            ),
            false => field_error(
                line,
                field.to_string(),
                format!("primary key column `{name}` is missing, so the row has no key"),
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ChangeSchema {
        let schema = Schema::parse(
            [("id", "bigint"), ("price", "numeric"), ("name", "varchar")]
                .iter()
                .copied(),
        )
        .unwrap();
        ChangeSchema::new(schema, &["id"])
    }

    fn rows(text: &str) -> Vec<(Op, Vec<Datum>)> {
        match parse_change(&table(), 1, text).unwrap() {
            Change::Rows(rows) => rows,
            Change::Tombstone => panic!("a tombstone: {text}"),
        }
    }

    fn error(line: u64, text: &str) -> String {
        parse_change(&table(), line, text).unwrap_err().to_string()
    }

    fn row(id: i64, price: &str, name: &str) -> Vec<Datum> {
        vec![
            Datum::Bigint(id),
            Datum::Numeric(price.into()),
            Datum::Varchar(name.into()),
        ]
    }

    #[test]
    fn each_operation_becomes_its_rows() {
        let after = r#"{"id":1,"price":"12.50","name":"a"}"#;
        for op in ["c", "r"] {
            assert_eq!(
                rows(&format!(
                    r#"{{"before":null,"after":{after},"op":"{op}","ts_ms":1}}"#
                )),
                vec![(Op::Insert, row(1, "12.50", "a"))]
            );
        }
        assert_eq!(
            rows(&format!(
                r#"{{"before":{{"id":1,"price":1,"name":"x"}},"after":{after},"op":"u","source":{{"db":"shop"}}}}"#
            )),
            vec![
                (Op::UpdateDelete, row(1, "1", "x")),
                (Op::UpdateInsert, row(1, "12.50", "a"))
            ]
        );
        // Without `before`, the old row's key is the new row's.
        assert_eq!(
            rows(&format!(r#"{{"after":{after},"op":"u"}}"#)),
            vec![
                (Op::UpdateDelete, row(1, "12.50", "a")),
                (Op::UpdateInsert, row(1, "12.50", "a"))
            ]
        );
        // A delete's `before` may hold the key alone (PostgreSQL's default replica identity).
        assert_eq!(
            rows(r#"{"before":{"id":7},"after":null,"op":"d"}"#),
            vec![(Op::Delete, vec![Datum::Bigint(7), Datum::Null, Datum::Null])]
        );
    }

    #[test]
    fn the_json_converter_envelope_is_unwrapped_and_tombstones_are_told_apart() {
        assert_eq!(
            rows(
                r#"{"schema":{"type":"struct","fields":[]},"payload":{"op":"d","before":{"id":2},"after":null}}"#
            ),
            vec![(Op::Delete, vec![Datum::Bigint(2), Datum::Null, Datum::Null])]
        );
        for tombstone in [
            "null",
            r#"{"schema":null,"payload":null}"#,
            r#"{"payload":null}"#,
        ] {
            assert_eq!(
                parse_change(&table(), 1, tombstone).unwrap(),
                Change::Tombstone,
                "{tombstone}"
            );
            assert!(is_tombstone(tombstone), "{tombstone}");
        }
        assert!(!is_tombstone(
            r#"{"op":"d","before":{"id":1},"payload":null}"#
        ));
        assert!(!is_tombstone("nul"));
    }

    #[test]
    fn a_malformed_change_names_its_line_and_field() {
        assert_eq!(
            error(7, r#"{"op":"x","after":{"id":1}}"#),
            r#"line 7: op: unknown operation "x"; Debezium's are `c` (create), `r` (read), `u` (update) and `d` (delete)"#
        );
        assert_eq!(
            error(2, r#"{"after":{"id":1}}"#),
            "line 2: op: missing: a change event has `op` (`c`, `r`, `u` or `d`)"
        );
        assert_eq!(
            error(3, r#"{"op":"c","after":null}"#),
            "line 3: after: missing or null: a create or read has the new row in `after`"
        );
        assert_eq!(
            error(3, r#"{"payload":{"op":"u","before":{"id":1}}}"#),
            "line 3: payload.after: missing or null: an update has the new row in `after`"
        );
        assert_eq!(
            error(4, r#"{"op":"d","after":{"id":1}}"#),
            "line 4: before: missing or null: a delete has the deleted row in `before`"
        );
        assert_eq!(
            error(5, r#"{"op":"c","after":{"id":null,"name":"a"}}"#),
            "line 5: after.id: the primary key is null, so the row has no key"
        );
        assert_eq!(
            error(6, r#"{"op":"d","before":{"name":"a"}}"#),
            "line 6: before: primary key column `id` is missing, so the row has no key"
        );
        assert!(error(8, r#"{"op":"t"}"#).starts_with("line 8: op: a truncate"));
        assert_eq!(
            error(9, r#"{"op":"c","op":"d","after":{"id":1}}"#),
            "line 9: op: appears more than once; each is given once, so none is dropped"
        );
        assert_eq!(
            error(10, r#"{"op":"c","after":[1]}"#),
            "line 10: after: expected a row (an object), got an array"
        );
        assert_eq!(
            error(11, r#"{"payload":3}"#),
            "line 11: payload: expected a change event (an object) or null, got a number"
        );
        assert_eq!(
            error(12, "[1]"),
            "line 12: expected a JSON object, got an array"
        );
    }

    #[test]
    fn values_follow_the_json_lines_rules_and_errors_name_their_path() {
        assert_eq!(
            error(3, r#"{"op":"c","after":{"id":1.5}}"#),
            "line 3, column `after.id`: expected a 64-bit integer, got a number 1.5"
        );
        assert_eq!(
            error(4, r#"{"payload":{"op":"c","after":{"id":1,"prise":1}}}"#),
            "line 4: unknown column `payload.after.prise`; did you mean `payload.after.price`?"
        );
        // Every digit of a numeric is kept.
        assert_eq!(
            rows(r#"{"op":"c","after":{"id":1,"price":12345678901234567890.123456789}}"#)[0].1[1],
            Datum::Numeric("12345678901234567890.123456789".into())
        );
    }
}
