//! How an Arrow field's values are read into a sink column of a given type: worked out once per
//! stream from the two schemas, so that reading a value needs no further type decision.

use arrow_schema::{DataType as Arrow, Field, Fields, IntervalUnit, TimeUnit};
use nats_sink_rules::schema::{DataType, Field as SinkField};

use crate::{
    extension_of, Mismatch, ARROW_JSON_EXTENSION, DECIMAL_EXTENSION, JSON_EXTENSION, UUID_EXTENSION,
};

/// An Arrow integer type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntType {
    /// `Int8`
    I8,
    /// `Int16`
    I16,
    /// `Int32`
    I32,
    /// `Int64`
    I64,
    /// `UInt8`
    U8,
    /// `UInt16`
    U16,
    /// `UInt32`
    U32,
    /// `UInt64`
    U64,
}

/// A sink column that holds integers, with the range its values must lie in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntColumn {
    /// smallint
    Smallint,
    /// integer
    Integer,
    /// bigint
    Bigint,
    /// serial (a 64-bit value)
    Serial,
}

impl IntColumn {
    /// The smallest and largest value the column holds.
    pub fn range(self) -> (i64, i64) {
        match self {
            IntColumn::Smallint => (i16::MIN.into(), i16::MAX.into()),
            IntColumn::Integer => (i32::MIN.into(), i32::MAX.into()),
            IntColumn::Bigint | IntColumn::Serial => (i64::MIN, i64::MAX),
        }
    }

    /// The column's type name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            IntColumn::Smallint => "smallint",
            IntColumn::Integer => "integer",
            IntColumn::Bigint => "bigint",
            IntColumn::Serial => "serial",
        }
    }
}

/// An Arrow floating-point type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatType {
    /// `Float16`
    F16,
    /// `Float32`
    F32,
    /// `Float64`
    F64,
}

/// A sink column that holds floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatColumn {
    /// real: a `Float64` value must be exactly a 32-bit float.
    Real,
    /// double precision
    Double,
}

/// An Arrow text layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextForm {
    /// `Utf8` (32-bit offsets)
    Utf8,
    /// `LargeUtf8` (64-bit offsets)
    LargeUtf8,
    /// `Utf8View`
    Utf8View,
}

/// An Arrow binary layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryForm {
    /// `Binary`
    Binary,
    /// `LargeBinary`
    LargeBinary,
    /// `BinaryView`
    BinaryView,
    /// `FixedSizeBinary(n)`
    Fixed,
}

/// How one field's values are read into its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `Boolean` into boolean.
    Boolean,
    /// Any integer into an integer column, each value checked against the column's range.
    Integer {
        /// The Arrow type.
        from: IntType,
        /// The column.
        into: IntColumn,
    },
    /// Any float into a float column; into real, a `Float64` value must be exact.
    Float {
        /// The Arrow type.
        from: FloatType,
        /// The column.
        into: FloatColumn,
    },
    /// Numeric text (`arrowudf.decimal`, or plain text a schema declares numeric), checked.
    NumericText(TextForm),
    /// An integer into numeric (always exact).
    NumericInteger(IntType),
    /// `Decimal128(_, scale)` into numeric, within RisingWave's numeric (96-bit mantissa,
    /// at most 28 digits after the point).
    Decimal128 {
        /// Digits after the point.
        scale: u8,
    },
    /// `Decimal256(_, scale)` into numeric, likewise.
    Decimal256 {
        /// Digits after the point.
        scale: u8,
    },
    /// Text into varchar.
    Varchar(TextForm),
    /// JSON text into jsonb (`arrowudf.json`, `arrow.json`, or plain text).
    Jsonb(TextForm),
    /// Bytes into bytea.
    Bytea(BinaryForm),
    /// `Date32` (days) into date.
    Date32,
    /// `Date64` (milliseconds) into date: each value must be a whole day.
    Date64,
    /// `Time32`/`Time64` in `unit` into time: nanoseconds must be whole microseconds.
    Time(TimeUnit),
    /// A timestamp in `unit` into timestamp (no zone) or timestamptz (a zone): converted to
    /// microseconds exactly, or refused.
    Timestamp {
        /// The Arrow unit.
        unit: TimeUnit,
    },
    /// An interval into interval: `MonthDayNano` nanoseconds must be whole microseconds.
    Interval(IntervalUnit),
    /// `FixedSizeBinary(16)` (with or without `arrow.uuid`) into uuid.
    Uuid,
    /// A `List` (or `LargeList`) into a list column.
    List {
        /// 64-bit offsets (`LargeList`).
        large: bool,
        /// How the elements are read.
        element: Box<Plan>,
    },
    /// A `Struct` into a struct column: for each sink field, in the sink's order, the index
    /// of its Arrow child and how it is read.
    Struct(Vec<(usize, Plan)>),
}

/// For each sink column, in the sink's order, the index of the Arrow field of the same name
/// and how it is read. Every column must be there, and every field must be a column: a field
/// the sink has no column for would be dropped, so it is refused.
pub fn plan_columns(
    columns: &[SinkField],
    fields: &Fields,
) -> Result<Vec<(usize, Plan)>, Mismatch> {
    match_by_name(columns, fields, "", "the Arrow schema")
}

/// Match `columns` (or a struct's fields, under `parent`) to `fields` by name.
fn match_by_name(
    columns: &[SinkField],
    fields: &Fields,
    parent: &str,
    whose: &str,
) -> Result<Vec<(usize, Plan)>, Mismatch> {
    let path = |name: &str| {
        if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}.{name}")
        }
    };
    for (i, field) in fields.iter().enumerate() {
        if fields[..i].iter().any(|f| f.name() == field.name()) {
            return Err(Mismatch {
                path: path(field.name()),
                message: format!("{whose} has two fields of this name"),
            });
        }
        if !columns.iter().any(|c| &c.name == field.name()) {
            return Err(Mismatch {
                path: path(field.name()),
                message: format!(
                    "{whose} has this field but the sink's schema has no such column; select the columns the sink has"
                ),
            });
        }
    }
    columns
        .iter()
        .map(|column| {
            let here = path(&column.name);
            let Some(index) = fields.iter().position(|f| f.name() == &column.name) else {
                return Err(Mismatch {
                    path: here,
                    message: format!("{whose} has no field of this name"),
                });
            };
            Ok((index, plan_at(&column.data_type, &fields[index], &here)?))
        })
        .collect()
}

/// How `field`'s values are read into a column of type `sink`, or why they cannot be.
pub fn plan_type(sink: &DataType, field: &Field, path: &str) -> Result<Plan, Mismatch> {
    plan_at(sink, field, path)
}

fn int_type(arrow: &Arrow) -> Option<IntType> {
    Some(match arrow {
        Arrow::Int8 => IntType::I8,
        Arrow::Int16 => IntType::I16,
        Arrow::Int32 => IntType::I32,
        Arrow::Int64 => IntType::I64,
        Arrow::UInt8 => IntType::U8,
        Arrow::UInt16 => IntType::U16,
        Arrow::UInt32 => IntType::U32,
        Arrow::UInt64 => IntType::U64,
        _ => return None,
    })
}

fn float_type(arrow: &Arrow) -> Option<FloatType> {
    Some(match arrow {
        Arrow::Float16 => FloatType::F16,
        Arrow::Float32 => FloatType::F32,
        Arrow::Float64 => FloatType::F64,
        _ => return None,
    })
}

fn text_form(arrow: &Arrow) -> Option<TextForm> {
    Some(match arrow {
        Arrow::Utf8 => TextForm::Utf8,
        Arrow::LargeUtf8 => TextForm::LargeUtf8,
        Arrow::Utf8View => TextForm::Utf8View,
        _ => return None,
    })
}

fn binary_form(arrow: &Arrow) -> Option<BinaryForm> {
    Some(match arrow {
        Arrow::Binary => BinaryForm::Binary,
        Arrow::LargeBinary => BinaryForm::LargeBinary,
        Arrow::BinaryView => BinaryForm::BinaryView,
        Arrow::FixedSizeBinary(_) => BinaryForm::Fixed,
        _ => return None,
    })
}

/// The extensions each column type takes; a field with any other extension is refused, since
/// its values may mean something else than their layout says.
fn extension_fits(sink: &DataType, extension: &str) -> bool {
    match sink {
        DataType::Numeric => extension == DECIMAL_EXTENSION,
        DataType::Jsonb => extension == JSON_EXTENSION || extension == ARROW_JSON_EXTENSION,
        DataType::Uuid => extension == UUID_EXTENSION,
        _ => false,
    }
}

fn plan_at(sink: &DataType, field: &Field, path: &str) -> Result<Plan, Mismatch> {
    let arrow = field.data_type();
    let refuse = |why: &str| Mismatch {
        path: path.to_string(),
        message: format!("the column is {sink} but the Arrow field is {arrow}{why}"),
    };
    if let Some(extension) = extension_of(field) {
        if !extension_fits(sink, extension) {
            return Err(refuse(&format!(" with the extension `{extension}`")));
        }
    }
    let plan = match sink {
        DataType::Boolean => match arrow {
            Arrow::Boolean => Plan::Boolean,
            _ => return Err(refuse("")),
        },
        DataType::Smallint | DataType::Integer | DataType::Bigint | DataType::Serial => {
            let into = match sink {
                DataType::Smallint => IntColumn::Smallint,
                DataType::Integer => IntColumn::Integer,
                DataType::Bigint => IntColumn::Bigint,
                _ => IntColumn::Serial,
            };
            match int_type(arrow) {
                Some(from) => Plan::Integer { from, into },
                None => return Err(refuse("")),
            }
        }
        DataType::Real | DataType::DoublePrecision => {
            let into = if *sink == DataType::Real {
                FloatColumn::Real
            } else {
                FloatColumn::Double
            };
            match float_type(arrow) {
                Some(from) => Plan::Float { from, into },
                None => return Err(refuse("")),
            }
        }
        DataType::Numeric => match arrow {
            Arrow::Decimal128(_, scale) | Arrow::Decimal256(_, scale) if *scale < 0 => {
                return Err(refuse(
                    ": a negative scale is not RisingWave's numeric (its scale is 0 to 28)",
                ))
            }
            Arrow::Decimal128(_, scale) => Plan::Decimal128 {
                scale: *scale as u8,
            },
            Arrow::Decimal256(_, scale) => Plan::Decimal256 {
                scale: *scale as u8,
            },
            _ => match (text_form(arrow), int_type(arrow)) {
                (Some(form), _) => Plan::NumericText(form),
                (_, Some(int)) => Plan::NumericInteger(int),
                _ => return Err(refuse("")),
            },
        },
        DataType::Varchar => match text_form(arrow) {
            Some(form) => Plan::Varchar(form),
            None => return Err(refuse("")),
        },
        DataType::Jsonb => match text_form(arrow) {
            Some(form) => Plan::Jsonb(form),
            None => return Err(refuse("")),
        },
        DataType::Bytea => match binary_form(arrow) {
            Some(form) => Plan::Bytea(form),
            None => return Err(refuse("")),
        },
        DataType::Date => match arrow {
            Arrow::Date32 => Plan::Date32,
            Arrow::Date64 => Plan::Date64,
            _ => return Err(refuse("")),
        },
        DataType::Time => match arrow {
            Arrow::Time32(unit @ (TimeUnit::Second | TimeUnit::Millisecond))
            | Arrow::Time64(unit @ (TimeUnit::Microsecond | TimeUnit::Nanosecond)) => {
                Plan::Time(*unit)
            }
            _ => return Err(refuse("")),
        },
        DataType::Timestamp => match arrow {
            Arrow::Timestamp(unit, None) => Plan::Timestamp { unit: *unit },
            Arrow::Timestamp(_, Some(_)) => {
                return Err(refuse(
                    ": a timestamp with a zone is an instant; declare the column timestamptz",
                ))
            }
            _ => return Err(refuse("")),
        },
        DataType::Timestamptz => match arrow {
            Arrow::Timestamp(unit, Some(_)) => Plan::Timestamp { unit: *unit },
            Arrow::Timestamp(_, None) => {
                return Err(refuse(
                    ": a timestamp without a zone names no instant; give it a zone (UTC) or declare the column timestamp",
                ))
            }
            _ => return Err(refuse("")),
        },
        DataType::Interval => match arrow {
            Arrow::Interval(unit) => Plan::Interval(*unit),
            _ => return Err(refuse("")),
        },
        DataType::Uuid => match arrow {
            Arrow::FixedSizeBinary(16) => Plan::Uuid,
            _ => return Err(refuse("")),
        },
        DataType::List(element) => match arrow {
            Arrow::List(child) | Arrow::LargeList(child) => Plan::List {
                large: matches!(arrow, Arrow::LargeList(_)),
                element: Box::new(plan_at(element, child, &format!("{path}[]"))?),
            },
            _ => return Err(refuse("")),
        },
        DataType::Struct(sink_fields) => match arrow {
            Arrow::Struct(children) => Plan::Struct(match_by_name(
                sink_fields,
                children,
                path,
                "the Arrow struct",
            )?),
            _ => return Err(refuse("")),
        },
    };
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn sink(ty: &str) -> DataType {
        DataType::parse(ty).unwrap()
    }

    fn field(arrow: Arrow) -> Field {
        Field::new("v", arrow, true)
    }

    fn with_extension(arrow: Arrow, name: &str) -> Field {
        field(arrow).with_metadata(HashMap::from([(
            crate::EXTENSION_KEY.to_string(),
            name.to_string(),
        )]))
    }

    #[test]
    fn every_form_risingwave_or_the_issue_names_is_planned() {
        let ok = |ty: &str, f: Field| {
            plan_type(&sink(ty), &f, "v").unwrap_or_else(|e| panic!("{ty} from {f:?}: {e}"))
        };
        for arrow in [Arrow::Int8, Arrow::UInt64, Arrow::Int64, Arrow::UInt8] {
            for ty in ["smallint", "integer", "bigint", "serial"] {
                assert!(matches!(ok(ty, field(arrow.clone())), Plan::Integer { .. }));
            }
            assert!(matches!(
                ok("numeric", field(arrow.clone())),
                Plan::NumericInteger(_)
            ));
        }
        assert!(matches!(
            ok("numeric", with_extension(Arrow::Utf8, DECIMAL_EXTENSION)),
            Plan::NumericText(TextForm::Utf8)
        ));
        assert_eq!(
            ok("numeric", field(Arrow::Decimal128(38, 10))),
            Plan::Decimal128 { scale: 10 }
        );
        assert_eq!(
            ok("jsonb", with_extension(Arrow::Utf8, JSON_EXTENSION)),
            Plan::Jsonb(TextForm::Utf8)
        );
        assert_eq!(
            ok(
                "jsonb",
                with_extension(Arrow::LargeUtf8, ARROW_JSON_EXTENSION)
            ),
            Plan::Jsonb(TextForm::LargeUtf8)
        );
        assert_eq!(
            ok("varchar", field(Arrow::Utf8View)),
            Plan::Varchar(TextForm::Utf8View)
        );
        assert_eq!(
            ok("bytea", field(Arrow::BinaryView)),
            Plan::Bytea(BinaryForm::BinaryView)
        );
        assert_eq!(
            ok(
                "uuid",
                with_extension(Arrow::FixedSizeBinary(16), UUID_EXTENSION)
            ),
            Plan::Uuid
        );
        assert_eq!(
            ok(
                "timestamptz",
                field(Arrow::Timestamp(
                    TimeUnit::Microsecond,
                    Some("+00:00".into())
                ))
            ),
            Plan::Timestamp {
                unit: TimeUnit::Microsecond
            }
        );
        assert_eq!(
            ok("interval", field(Arrow::Interval(IntervalUnit::DayTime))),
            Plan::Interval(IntervalUnit::DayTime)
        );
        let list = Arrow::LargeList(Arc::new(Field::new("item", Arrow::Int32, true)));
        assert_eq!(
            ok("bigint[]", field(list)),
            Plan::List {
                large: true,
                element: Box::new(Plan::Integer {
                    from: IntType::I32,
                    into: IntColumn::Bigint
                })
            }
        );
    }

    #[test]
    fn wrong_types_and_extensions_are_refused_naming_the_path() {
        let err = |ty: &str, f: Field| plan_type(&sink(ty), &f, "v").unwrap_err();
        let e = err("integer", field(Arrow::Utf8));
        assert_eq!(e.path, "v");
        assert_eq!(
            e.message,
            "the column is integer but the Arrow field is Utf8"
        );
        assert!(
            err("varchar", with_extension(Arrow::Utf8, DECIMAL_EXTENSION))
                .message
                .contains("arrowudf.decimal")
        );
        assert!(err("real", field(Arrow::Int32)).message.contains("Int32"));
        assert!(err(
            "timestamp",
            field(Arrow::Timestamp(TimeUnit::Second, Some("UTC".into())))
        )
        .message
        .contains("timestamptz"));
        assert!(err(
            "timestamptz",
            field(Arrow::Timestamp(TimeUnit::Second, None))
        )
        .message
        .contains("zone"));
        assert!(err("numeric", field(Arrow::Decimal128(10, -2)))
            .message
            .contains("negative scale"));
        assert!(err("uuid", field(Arrow::FixedSizeBinary(8)))
            .message
            .contains("FixedSizeBinary(8)"));
        let nested = Arrow::Struct(vec![Field::new("zip", Arrow::Utf8, true)].into());
        let e = err("struct<zip integer>", Field::new("addr", nested, true));
        assert_eq!(e.path, "v.zip");
    }

    #[test]
    fn columns_match_by_name_and_every_field_must_be_a_column() {
        let columns = vec![
            SinkField::new("a", sink("integer")),
            SinkField::new("b", sink("varchar")),
        ];
        let fields: Fields = vec![
            Field::new("b", Arrow::Utf8, true),
            Field::new("a", Arrow::Int64, true),
        ]
        .into();
        let plans = plan_columns(&columns, &fields).unwrap();
        assert_eq!(plans[0].0, 1);
        assert_eq!(plans[1], (0, Plan::Varchar(TextForm::Utf8)));

        let missing: Fields = vec![Field::new("a", Arrow::Int64, true)].into();
        let e = plan_columns(&columns, &missing).unwrap_err();
        assert_eq!(e.path, "b");
        assert!(e.message.contains("no field"), "{e}");

        let extra: Fields = vec![
            Field::new("a", Arrow::Int64, true),
            Field::new("b", Arrow::Utf8, true),
            Field::new("c", Arrow::Utf8, true),
        ]
        .into();
        let e = plan_columns(&columns, &extra).unwrap_err();
        assert_eq!(e.path, "c");
        assert!(e.message.contains("no such column"), "{e}");

        let twice: Fields = vec![
            Field::new("a", Arrow::Int64, true),
            Field::new("a", Arrow::Int64, true),
        ]
        .into();
        assert!(plan_columns(&columns, &twice)
            .unwrap_err()
            .message
            .contains("two fields"));
    }
}
