//! The sink type an Arrow field stands for, as RisingWave's `from_field` reads it: how a host
//! derives a sink schema from an Arrow (or Parquet) schema. Every type derived here is one
//! [`crate::plan`] reads the same field into (a test holds that).

use arrow_schema::{DataType as Arrow, Field, Fields, TimeUnit};
use nats_sink_rules::schema::{DataType, Field as SinkField, MAX_TYPE_DEPTH};

use crate::{
    extension_of, Mismatch, ARROW_JSON_EXTENSION, DECIMAL_EXTENSION, JSON_EXTENSION, UUID_EXTENSION,
};

/// The sink columns for `fields`, in their order.
pub fn sink_columns(fields: &Fields) -> Result<Vec<SinkField>, Mismatch> {
    fields_at(fields, "", 0)
}

/// The sink type for `field` (`path` names it in an error).
pub fn sink_type(field: &Field, path: &str) -> Result<DataType, Mismatch> {
    type_at(field, path, 0)
}

fn fields_at(fields: &Fields, parent: &str, depth: usize) -> Result<Vec<SinkField>, Mismatch> {
    fields
        .iter()
        .map(|f| {
            let path = if parent.is_empty() {
                f.name().clone()
            } else {
                format!("{parent}.{}", f.name())
            };
            Ok(SinkField::new(f.name().clone(), type_at(f, &path, depth)?))
        })
        .collect()
}

fn type_at(field: &Field, path: &str, depth: usize) -> Result<DataType, Mismatch> {
    let arrow = field.data_type();
    let refuse = |message: String| Mismatch {
        path: path.to_string(),
        message,
    };
    if depth >= MAX_TYPE_DEPTH {
        return Err(refuse(format!(
            "types nest more than {MAX_TYPE_DEPTH} levels deep"
        )));
    }
    match (extension_of(field), arrow) {
        (Some(DECIMAL_EXTENSION), Arrow::Utf8 | Arrow::LargeUtf8 | Arrow::Utf8View) => {
            return Ok(DataType::Numeric)
        }
        (
            Some(JSON_EXTENSION | ARROW_JSON_EXTENSION),
            Arrow::Utf8 | Arrow::LargeUtf8 | Arrow::Utf8View,
        ) => return Ok(DataType::Jsonb),
        (Some(UUID_EXTENSION), Arrow::FixedSizeBinary(16)) => return Ok(DataType::Uuid),
        (Some(other), _) => {
            return Err(refuse(format!(
                "the Arrow field is {arrow} with the extension `{other}`, which has no sink type"
            )))
        }
        (None, _) => {}
    }
    Ok(match arrow {
        Arrow::Boolean => DataType::Boolean,
        // RisingWave's from_field: each unsigned width into the next signed one.
        Arrow::Int8 | Arrow::Int16 | Arrow::UInt8 => DataType::Smallint,
        Arrow::Int32 | Arrow::UInt16 => DataType::Integer,
        Arrow::Int64 | Arrow::UInt32 => DataType::Bigint,
        Arrow::UInt64 => DataType::Numeric,
        Arrow::Float16 | Arrow::Float32 => DataType::Real,
        Arrow::Float64 => DataType::DoublePrecision,
        Arrow::Decimal128(_, scale) | Arrow::Decimal256(_, scale) if *scale >= 0 => {
            DataType::Numeric
        }
        Arrow::Date32 | Arrow::Date64 => DataType::Date,
        Arrow::Time32(TimeUnit::Second | TimeUnit::Millisecond)
        | Arrow::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond) => DataType::Time,
        Arrow::Timestamp(_, None) => DataType::Timestamp,
        Arrow::Timestamp(_, Some(_)) => DataType::Timestamptz,
        Arrow::Interval(_) => DataType::Interval,
        Arrow::Utf8 | Arrow::LargeUtf8 | Arrow::Utf8View => DataType::Varchar,
        Arrow::Binary | Arrow::LargeBinary | Arrow::BinaryView | Arrow::FixedSizeBinary(_) => {
            DataType::Bytea
        }
        Arrow::List(child) | Arrow::LargeList(child) => {
            DataType::List(Box::new(type_at(child, &format!("{path}[]"), depth + 1)?))
        }
        Arrow::Struct(children) if !children.is_empty() => {
            DataType::Struct(fields_at(children, path, depth + 1)?)
        }
        _ => {
            return Err(refuse(format!(
                "the Arrow field is {arrow}, which has no sink type"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan_type;
    use arrow_schema::IntervalUnit;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn with_extension(arrow: Arrow, name: &str) -> Field {
        Field::new("v", arrow, true).with_metadata(HashMap::from([(
            crate::EXTENSION_KEY.to_string(),
            name.to_string(),
        )]))
    }

    /// Every Arrow type the mapping knows, once.
    fn known() -> Vec<Field> {
        let plain = [
            Arrow::Boolean,
            Arrow::Int8,
            Arrow::Int16,
            Arrow::Int32,
            Arrow::Int64,
            Arrow::UInt8,
            Arrow::UInt16,
            Arrow::UInt32,
            Arrow::UInt64,
            Arrow::Float16,
            Arrow::Float32,
            Arrow::Float64,
            Arrow::Decimal128(38, 4),
            Arrow::Decimal256(76, 0),
            Arrow::Date32,
            Arrow::Date64,
            Arrow::Time32(TimeUnit::Second),
            Arrow::Time64(TimeUnit::Nanosecond),
            Arrow::Timestamp(TimeUnit::Nanosecond, None),
            Arrow::Timestamp(TimeUnit::Second, Some("Europe/Paris".into())),
            Arrow::Interval(IntervalUnit::MonthDayNano),
            Arrow::Interval(IntervalUnit::YearMonth),
            Arrow::Utf8,
            Arrow::LargeUtf8,
            Arrow::Utf8View,
            Arrow::Binary,
            Arrow::LargeBinary,
            Arrow::BinaryView,
            Arrow::FixedSizeBinary(16),
            Arrow::List(Arc::new(Field::new("item", Arrow::Utf8, true))),
            Arrow::Struct(vec![Field::new("a", Arrow::Date32, true)].into()),
        ];
        let mut fields: Vec<Field> = plain
            .into_iter()
            .map(|a| Field::new("v", a, true))
            .collect();
        fields.push(with_extension(Arrow::Utf8, DECIMAL_EXTENSION));
        fields.push(with_extension(Arrow::Utf8, JSON_EXTENSION));
        fields.push(with_extension(Arrow::LargeUtf8, ARROW_JSON_EXTENSION));
        fields.push(with_extension(Arrow::FixedSizeBinary(16), UUID_EXTENSION));
        fields
    }

    #[test]
    fn every_derived_type_reads_its_own_field() {
        for field in known() {
            let ty = sink_type(&field, "v").unwrap_or_else(|e| panic!("{field:?}: {e}"));
            plan_type(&ty, &field, "v").unwrap_or_else(|e| panic!("{field:?} as {ty}: {e}"));
        }
    }

    #[test]
    fn risingwave_names_the_types() {
        let ty = |f: Field| sink_type(&f, "v").unwrap().to_string();
        assert_eq!(
            ty(with_extension(Arrow::Utf8, DECIMAL_EXTENSION)),
            "numeric"
        );
        assert_eq!(ty(with_extension(Arrow::Utf8, JSON_EXTENSION)), "jsonb");
        assert_eq!(ty(Field::new("v", Arrow::UInt64, true)), "numeric");
        assert_eq!(ty(Field::new("v", Arrow::UInt8, true)), "smallint");
        assert_eq!(
            ty(Field::new("v", Arrow::FixedSizeBinary(16), true)),
            "bytea"
        );
        assert_eq!(
            ty(with_extension(Arrow::FixedSizeBinary(16), UUID_EXTENSION)),
            "uuid"
        );
        assert_eq!(
            ty(Field::new(
                "v",
                Arrow::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                true
            )),
            "timestamptz"
        );
        let nested = Arrow::Struct(
            vec![Field::new(
                "t",
                Arrow::List(Arc::new(Field::new("item", Arrow::Int32, true))),
                true,
            )]
            .into(),
        );
        assert_eq!(ty(Field::new("v", nested, true)), "struct<t integer[]>");
    }

    #[test]
    fn types_without_a_sink_type_are_refused() {
        for arrow in [
            Arrow::Null,
            Arrow::Duration(TimeUnit::Second),
            Arrow::Dictionary(Box::new(Arrow::Int32), Box::new(Arrow::Utf8)),
            Arrow::Decimal128(10, -1),
            Arrow::Struct(Fields::empty()),
        ] {
            let e = sink_type(&Field::new("v", arrow.clone(), true), "v").unwrap_err();
            assert!(e.message.contains("no sink type"), "{arrow}: {e}");
        }
        let e = sink_type(&with_extension(Arrow::Utf8, "geoarrow.wkt"), "v").unwrap_err();
        assert!(e.message.contains("geoarrow.wkt"), "{e}");
    }
}
