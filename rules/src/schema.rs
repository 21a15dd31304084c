//! The schema: column names and types in RisingWave's SQL spelling. The host parses a schema
//! with these rules to read input, the guest to encode it, so both accept the same types.

use std::fmt;

/// Why a schema was refused; the message names the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// No columns at all.
    Empty,
    /// The column at `index` (from 0) has an empty name.
    EmptyName {
        /// The column's position.
        index: usize,
    },
    /// Two columns share a name.
    DuplicateColumn {
        /// The repeated name.
        name: String,
    },
    /// A column's type does not parse.
    BadType {
        /// The column's name.
        column: String,
        /// What is wrong with its type.
        message: String,
    },
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::Empty => f.write_str("the schema has no columns"),
            SchemaError::EmptyName { index } => write!(f, "column {index} has an empty name"),
            SchemaError::DuplicateColumn { name } => {
                write!(f, "column `{name}` appears more than once")
            }
            SchemaError::BadType { column, message } => write!(f, "column `{column}`: {message}"),
        }
    }
}

impl std::error::Error for SchemaError {}

/// How deep types may nest (lists and structs together): every part that walks a type or a
/// value recurses once per level, in the guest and the host, so this bounds their stacks. It
/// stays below serde_json's own limit of 128 so that any value of such a type can be read.
pub const MAX_TYPE_DEPTH: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
/// A column's or field's type.
pub enum DataType {
    /// boolean
    Boolean,
    /// smallint (16 bits)
    Smallint,
    /// integer (32 bits)
    Integer,
    /// bigint (64 bits)
    Bigint,
    /// real (32-bit float)
    Real,
    /// double precision (64-bit float)
    DoublePrecision,
    /// numeric (exact decimal)
    Numeric,
    /// varchar
    Varchar,
    /// date
    Date,
    /// time without time zone
    Time,
    /// timestamp without time zone
    Timestamp,
    /// timestamp with time zone
    Timestamptz,
    /// interval
    Interval,
    /// bytea
    Bytea,
    /// jsonb
    Jsonb,
    /// serial
    Serial,
    /// uuid
    Uuid,
    /// `element[]`
    List(Box<DataType>),
    /// `struct<name type, ...>`, its fields in order
    Struct(Vec<Field>),
}

/// A named, typed member: a column or a struct field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// As written (unquoted).
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// `"name":` with the name JSON-escaped, ready to copy into each encoded row.
    pub json_key: Vec<u8>,
}

impl Field {
    /// A field with its JSON key made ready.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Field {
        let name = name.into();
        let mut json_key = Vec::with_capacity(name.len() + 3);
        crate::json_string::write_str(&mut json_key, &name);
        json_key.push(b':');
        Field {
            name,
            data_type,
            json_key,
        }
    }
}

/// Base type names and their aliases, as PostgreSQL and RisingWave accept them.
pub const BASE_TYPES: &[(&str, DataType)] = &[
    ("boolean", DataType::Boolean),
    ("bool", DataType::Boolean),
    ("smallint", DataType::Smallint),
    ("int2", DataType::Smallint),
    ("integer", DataType::Integer),
    ("int", DataType::Integer),
    ("int4", DataType::Integer),
    ("bigint", DataType::Bigint),
    ("int8", DataType::Bigint),
    ("real", DataType::Real),
    ("float4", DataType::Real),
    ("double precision", DataType::DoublePrecision),
    ("double", DataType::DoublePrecision),
    ("float8", DataType::DoublePrecision),
    ("numeric", DataType::Numeric),
    ("decimal", DataType::Numeric),
    ("varchar", DataType::Varchar),
    ("character varying", DataType::Varchar),
    ("text", DataType::Varchar),
    ("string", DataType::Varchar),
    ("date", DataType::Date),
    ("time", DataType::Time),
    ("time without time zone", DataType::Time),
    ("timestamp", DataType::Timestamp),
    ("timestamp without time zone", DataType::Timestamp),
    ("timestamptz", DataType::Timestamptz),
    ("timestamp with time zone", DataType::Timestamptz),
    ("interval", DataType::Interval),
    ("bytea", DataType::Bytea),
    ("jsonb", DataType::Jsonb),
    ("serial", DataType::Serial),
    ("uuid", DataType::Uuid),
];

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DataType::Boolean => "boolean",
            DataType::Smallint => "smallint",
            DataType::Integer => "integer",
            DataType::Bigint => "bigint",
            DataType::Real => "real",
            DataType::DoublePrecision => "double precision",
            DataType::Numeric => "numeric",
            DataType::Varchar => "varchar",
            DataType::Date => "date",
            DataType::Time => "time",
            DataType::Timestamp => "timestamp",
            DataType::Timestamptz => "timestamptz",
            DataType::Interval => "interval",
            DataType::Bytea => "bytea",
            DataType::Jsonb => "jsonb",
            DataType::Serial => "serial",
            DataType::Uuid => "uuid",
            DataType::List(inner) => return write!(f, "{inner}[]"),
            DataType::Struct(fields) => {
                f.write_str("struct<")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} {}", field.name, field.data_type)?;
                }
                return f.write_str(">");
            }
        };
        f.write_str(name)
    }
}

impl DataType {
    /// Parse a type such as `integer`, `varchar[][]` or `struct<a int, b struct<c date>[]>`.
    pub fn parse(text: &str) -> Result<DataType, String> {
        let mut parser = TypeParser {
            text,
            pos: 0,
            depth: 0,
            too_deep: false,
        };
        let (ty, _) = parser.data_type()?;
        parser.skip_ws();
        if parser.pos != text.len() {
            return Err(format!(
                "unexpected `{}` at offset {} of type `{}`",
                shorten(&text[parser.pos..]),
                parser.pos,
                shorten(text)
            ));
        }
        Ok(ty)
    }
}

/// A type's text, cut short for a message: a type may be megabytes long.
fn shorten(text: &str) -> String {
    const SHOWN: usize = 60;
    if text.len() <= SHOWN {
        text.to_string()
    } else {
        format!("{}…", &text[..text.floor_char_boundary(SHOWN)])
    }
}

struct TypeParser<'a> {
    text: &'a str,
    pos: usize,
    /// Lists and structs open around the current position.
    depth: usize,
    /// The depth limit was hit: its message names the whole type, so no field path is added.
    too_deep: bool,
}

impl<'a> TypeParser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    /// The error for a type nested past `MAX_TYPE_DEPTH`.
    fn too_deep(&mut self) -> String {
        self.too_deep = true;
        format!(
            "type `{}` nests lists and structs more than {MAX_TYPE_DEPTH} deep",
            shorten(self.text)
        )
    }

    /// A type and its height: how many lists and structs nest in it, counting itself.
    /// `depth` counts the structs open around it, so that the parser's own recursion stops at
    /// the limit before the height is known.
    fn data_type(&mut self) -> Result<(DataType, usize), String> {
        self.skip_ws();
        let rest = self.rest().as_bytes();
        let (mut ty, mut height) = if rest.len() >= 6
            && rest[..6].eq_ignore_ascii_case(b"struct")
            && self.rest()[6..].trim_start().starts_with('<')
        {
            self.depth += 1;
            if self.depth > MAX_TYPE_DEPTH {
                return Err(self.too_deep());
            }
            self.pos += 6;
            self.eat("<");
            let parsed = self.struct_fields()?;
            self.depth -= 1;
            parsed
        } else {
            (self.base_type()?, 0)
        };
        while self.eat("[]") {
            height += 1;
            if height > MAX_TYPE_DEPTH {
                return Err(self.too_deep());
            }
            ty = DataType::List(Box::new(ty));
        }
        Ok((ty, height))
    }

    /// Words up to `[`, `,`, `>` or the end, matched against the names, with spacing normalized.
    fn base_type(&mut self) -> Result<DataType, String> {
        let rest = self.rest();
        let end = rest.find(['[', ']', ',', '>', '<']).unwrap_or(rest.len());
        // `numeric(10,2)`, `varchar(20)`: named whole, not cut at the comma.
        if let Some(open) = rest[..end].find('(') {
            let close = rest[open..].find(')').map_or(rest.len(), |c| open + c + 1);
            return Err(format!(
                "type modifier `{}` in `{}` is not supported; write the type without it (`{}`)",
                shorten(&rest[open..close]),
                shorten(rest[..close].trim()),
                shorten(rest[..open].trim())
            ));
        }
        let words: Vec<&str> = rest[..end].split_whitespace().collect();
        let name = words.join(" ").to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!(
                "missing type at offset {} of `{}`",
                self.pos,
                shorten(self.text)
            ));
        }
        let name = shorten(&name);
        match BASE_TYPES.iter().find(|(n, _)| *n == name) {
            Some((_, ty)) => {
                self.pos += rest[..end].trim_end().len();
                Ok(ty.clone())
            }
            None => {
                let known = BASE_TYPES.iter().map(|(n, _)| *n).chain(["struct"]);
                Err(match crate::suggest::nearest(&name, known) {
                    Some("struct") => {
                        format!("unknown type `{name}`; did you mean `struct<name type, ...>`?")
                    }
                    Some(n) => format!("unknown type `{name}`; did you mean `{n}`?"),
                    None => format!("unknown type `{name}`"),
                })
            }
        }
    }

    fn struct_fields(&mut self) -> Result<(DataType, usize), String> {
        let mut fields: Vec<Field> = Vec::new();
        let mut height = 1;
        let mut names = std::collections::HashSet::new();
        loop {
            let name = self.field_name()?;
            if name.is_empty() {
                return Err(format!(
                    "empty struct field name at offset {} of `{}`",
                    self.pos,
                    shorten(self.text)
                ));
            }
            if !names.insert(name.clone()) {
                return Err(format!("struct field `{name}` appears more than once"));
            }
            let (ty, field_height) = self.data_type().map_err(|e| {
                if self.too_deep {
                    e
                } else {
                    format!("struct field `{name}`: {e}")
                }
            })?;
            fields.push(Field::new(name, ty));
            height = height.max(field_height + 1);
            if height > MAX_TYPE_DEPTH {
                return Err(self.too_deep());
            }
            if self.eat(">") {
                return Ok((DataType::Struct(fields), height));
            }
            if !self.eat(",") {
                return Err(format!(
                    "expected `,` or `>` at offset {} of `{}`",
                    self.pos,
                    shorten(self.text)
                ));
            }
        }
    }

    /// A bare identifier or a double-quoted one (`""` escapes a quote).
    fn field_name(&mut self) -> Result<String, String> {
        self.skip_ws();
        let rest = self.rest();
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut name = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, ch)) = chars.next() {
                if ch == '"' {
                    if quoted[i + 1..].starts_with('"') {
                        name.push('"');
                        chars.next();
                    } else {
                        self.pos += 1 + i + 1;
                        return Ok(name);
                    }
                } else {
                    name.push(ch);
                }
            }
            return Err(format!(
                "unterminated quoted field name in `{}`",
                shorten(self.text)
            ));
        }
        let end = rest
            .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(format!(
                "expected a field name at offset {} of `{}`",
                self.pos,
                shorten(self.text)
            ));
        }
        self.pos += end;
        Ok(rest[..end].to_string())
    }
}

/// The columns a sink encodes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// In order.
    pub columns: Vec<Field>,
}

impl Schema {
    /// Build from `(name, type)` pairs, reporting the first problem with the column it concerns.
    pub fn parse<'a>(
        columns: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Schema, SchemaError> {
        let mut fields: Vec<Field> = Vec::new();
        // A set, not a scan of `fields`: a schema may have 100,000 columns.
        let mut names = std::collections::HashSet::new();
        for (index, (name, type_text)) in columns.into_iter().enumerate() {
            if name.is_empty() {
                return Err(SchemaError::EmptyName { index });
            }
            if !names.insert(name) {
                return Err(SchemaError::DuplicateColumn {
                    name: name.to_string(),
                });
            }
            let data_type = DataType::parse(type_text).map_err(|message| SchemaError::BadType {
                column: name.to_string(),
                message,
            })?;
            fields.push(Field::new(name, data_type));
        }
        if fields.is_empty() {
            return Err(SchemaError::Empty);
        }
        Ok(Schema { columns: fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_types_and_aliases() {
        assert_eq!(DataType::parse("integer").unwrap(), DataType::Integer);
        assert_eq!(DataType::parse(" INT4 ").unwrap(), DataType::Integer);
        assert_eq!(
            DataType::parse("double   precision").unwrap(),
            DataType::DoublePrecision
        );
        assert_eq!(
            DataType::parse("timestamp with time zone").unwrap(),
            DataType::Timestamptz
        );
    }

    #[test]
    fn nested_types() {
        let ty = DataType::parse(
            "struct<a integer, \"b c\" struct<d varchar[]>[], e double precision>[]",
        )
        .unwrap();
        assert_eq!(
            ty.to_string(),
            "struct<a integer, b c struct<d varchar[]>[], e double precision>[]"
        );
        let DataType::List(inner) = ty else { panic!() };
        let DataType::Struct(fields) = *inner else {
            panic!()
        };
        assert_eq!(fields[1].name, "b c");
        assert_eq!(fields[1].json_key, b"\"b c\":");
    }

    #[test]
    fn type_errors_are_clear() {
        assert_eq!(
            DataType::parse("intger").unwrap_err(),
            "unknown type `intger`; did you mean `integer`?"
        );
        assert_eq!(
            DataType::parse("numeric(10,2)").unwrap_err(),
            "type modifier `(10,2)` in `numeric(10,2)` is not supported; write the type without it (`numeric`)"
        );
        assert!(DataType::parse(")x(").unwrap_err().contains("`(`"));
        assert!(DataType::parse("struct<a varchar(20), b int>")
            .unwrap_err()
            .contains("`(20)` in `varchar(20)`"));
        assert!(DataType::parse("struct<a integer")
            .unwrap_err()
            .contains("expected `,` or `>`"));
        assert!(DataType::parse("struct<a integer, a date>")
            .unwrap_err()
            .contains("appears more than once"));
        assert!(DataType::parse("integer]")
            .unwrap_err()
            .contains("unexpected"));
        assert!(DataType::parse("").unwrap_err().contains("missing type"));
        assert!(DataType::parse("struct<a blob>")
            .unwrap_err()
            .contains("struct field `a`: unknown type `blob`"));
    }

    /// Issue 16: a multi-byte character within the first six bytes panicked on a char boundary.
    #[test]
    fn non_ascii_type_names_are_errors_not_panics() {
        for text in [
            "abcdeé",
            "struct<a abcdeé>",
            "éééé",
            "struc\u{e9}<a int>",
            "strucé",
        ] {
            let err = DataType::parse(text).unwrap_err();
            assert!(err.contains("unknown type"), "{text}: {err}");
        }
    }

    /// Issue 16: deep nesting overflowed the guest's and the host's stacks.
    #[test]
    fn nesting_is_bounded_with_the_limit_in_the_message() {
        let deep = |n: usize| "struct<a ".repeat(n) + "integer" + &">".repeat(n);
        assert!(DataType::parse(&deep(MAX_TYPE_DEPTH)).is_ok());
        for n in [MAX_TYPE_DEPTH + 1, 2_000, 10_000, 100_000] {
            let err = DataType::parse(&deep(n)).unwrap_err();
            assert!(err.contains("more than 100 deep"), "{err}");
            assert!(err.len() < 300, "{err}");
        }
        let lists = |n: usize| "integer".to_string() + &"[]".repeat(n);
        assert!(DataType::parse(&lists(MAX_TYPE_DEPTH)).is_ok());
        let err = DataType::parse(&lists(10_000)).unwrap_err();
        assert!(err.contains("more than 100 deep"), "{err}");
        // Lists and structs count together.
        let mixed = "struct<a ".repeat(60) + "integer[]" + &">[]".repeat(60);
        assert!(DataType::parse(&mixed).unwrap_err().contains("deep"));
        // Siblings do not add up.
        let wide = format!(
            "struct<{}>",
            (0..300)
                .map(|i| format!("f{i} {}", lists(90)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(DataType::parse(&wide).is_ok());
    }

    /// Issue 16: an empty column name is refused, and so is an empty field name.
    #[test]
    fn empty_struct_field_names_are_refused() {
        let err = DataType::parse("struct<\"\" integer>").unwrap_err();
        assert!(err.contains("empty struct field name"), "{err}");
    }

    /// Issue 16: 100,000 columns took 50 s (a quadratic duplicate check).
    #[test]
    fn wide_schemas_parse_quickly() {
        let names: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
        let started = std::time::Instant::now();
        let schema = Schema::parse(names.iter().map(|n| (n.as_str(), "integer"))).unwrap();
        assert_eq!(schema.columns.len(), 100_000);
        let wide = format!(
            "struct<{}>",
            names
                .iter()
                .map(|n| format!("{n} int"))
                .collect::<Vec<_>>()
                .join(",")
        );
        DataType::parse(&wide).unwrap();
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    }

    #[test]
    fn schema_errors_name_the_column() {
        assert_eq!(
            Schema::parse([("id", "integer"), ("id", "bigint")]).unwrap_err(),
            SchemaError::DuplicateColumn { name: "id".into() }
        );
        let err = Schema::parse([("id", "integer"), ("v", "vrchar")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `v`: unknown type `vrchar`; did you mean `varchar`?"
        );
        assert_eq!(Schema::parse([]).unwrap_err(), SchemaError::Empty);
        assert_eq!(
            Schema::parse([("", "integer")]).unwrap_err(),
            SchemaError::EmptyName { index: 0 }
        );
    }
}
