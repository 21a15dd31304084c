//! How Arrow types map onto nats-sink column types, kept in one place for every side:
//! - [`plan`]: given a sink column's type and an Arrow field, how each value of the field is
//!   read into the column (the guest encodes Arrow columns with it), or why it cannot be;
//! - [`derive`]: the sink type an Arrow field stands for (a host derives a sink schema from an
//!   Arrow or Parquet file with it).
//!
//! The mapping is RisingWave's (`src/common/src/array/arrow/arrow_impl.rs` and
//! `arrow_udf.rs`): numeric as Utf8 with the extension `arrowudf.decimal`, jsonb as Utf8 with
//! `arrowudf.json`, timestamptz as a timestamp with a zone, interval as `MonthDayNano`. Where
//! Arrow has several forms of one type, each form is taken if every value converts exactly;
//! the value checks themselves happen where values are read (the guest).
//!
//! This is a crate of its own, not part of `nats-sink-rules`, so that the rules stay free of
//! Arrow: it depends on `arrow-schema` alone (no arrays, no IPC), which builds for wasm32.

#![deny(missing_docs)]

pub mod derive;
pub mod plan;

pub use derive::{sink_columns, sink_type};
pub use plan::{plan_columns, plan_type, Plan};

/// The metadata key that names a field's extension type.
pub const EXTENSION_KEY: &str = "ARROW:extension:name";
/// RisingWave's extension for numeric as text.
pub const DECIMAL_EXTENSION: &str = "arrowudf.decimal";
/// RisingWave's extension for jsonb as text.
pub const JSON_EXTENSION: &str = "arrowudf.json";
/// Arrow's canonical extension for JSON text, taken for jsonb too.
pub const ARROW_JSON_EXTENSION: &str = "arrow.json";
/// Arrow's canonical extension for a UUID in `FixedSizeBinary(16)`.
pub const UUID_EXTENSION: &str = "arrow.uuid";

/// Why an Arrow field does not fit a sink column. `path` names the column (`addr.zip`,
/// `tags[]` for a list's elements).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column `{path}`: {message}")]
pub struct Mismatch {
    /// The column, or the nested field, at fault.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

/// The extension type a field names, if any.
pub fn extension_of(field: &arrow_schema::Field) -> Option<&str> {
    field.metadata().get(EXTENSION_KEY).map(String::as_str)
}
