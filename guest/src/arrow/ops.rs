//! The reserved `__op` field of an Arrow stream: each row's operation, numbered as
//! RisingWave's `Op::to_i16` numbers them (1 insert, 2 delete, 3 update-insert,
//! 4 update-delete), in any integer type.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::bindings::Op;
use crate::encode::RowError;

/// The name of the field that carries operations; no sink column may take it.
pub const OP_FIELD: &str = "__op";

/// Why a field of `data_type` cannot carry operations, if it cannot.
pub fn check_op_type(data_type: &DataType) -> Result<(), String> {
    if data_type.is_integer() {
        return Ok(());
    }
    Err(format!(
        "`{OP_FIELD}` is {data_type}; it takes an integer type (1 insert, 2 delete, 3 update-insert, 4 update-delete)"
    ))
}

/// A record batch's operations: its `__op` column, or every row an insert.
pub struct OpColumn<'a> {
    column: Option<&'a dyn Array>,
}

impl<'a> OpColumn<'a> {
    /// The operations of `batch`, whose field `field` (if any) is `__op`.
    pub fn bind(batch: &'a RecordBatch, field: Option<usize>) -> Result<OpColumn<'a>, String> {
        let Some(field) = field else {
            return Ok(OpColumn { column: None });
        };
        let column = batch
            .columns()
            .get(field)
            .ok_or("the record batch has fewer columns than its schema")?
            .as_ref();
        check_op_type(column.data_type())?;
        Ok(OpColumn {
            column: Some(column),
        })
    }

    /// Row `row`'s operation, or why its `__op` names none.
    pub fn op(&self, row: usize) -> Result<Op, RowError> {
        let Some(column) = self.column else {
            return Ok(Op::Insert);
        };
        let refuse = |message: String| RowError {
            column: OP_FIELD.to_string(),
            message,
        };
        if column.is_null(row) {
            return Err(refuse("is null; every row needs its operation".into()));
        }
        let number: i128 = match column.data_type() {
            DataType::Int8 => column.as_primitive::<Int8Type>().value(row).into(),
            DataType::Int16 => column.as_primitive::<Int16Type>().value(row).into(),
            DataType::Int32 => column.as_primitive::<Int32Type>().value(row).into(),
            DataType::Int64 => column.as_primitive::<Int64Type>().value(row).into(),
            DataType::UInt8 => column.as_primitive::<UInt8Type>().value(row).into(),
            DataType::UInt16 => column.as_primitive::<UInt16Type>().value(row).into(),
            DataType::UInt32 => column.as_primitive::<UInt32Type>().value(row).into(),
            DataType::UInt64 => column.as_primitive::<UInt64Type>().value(row).into(),
            other => return Err(refuse(format!("is {other}, not an integer"))),
        };
        match number {
            1 => Ok(Op::Insert),
            2 => Ok(Op::Delete),
            3 => Ok(Op::UpdateInsert),
            4 => Ok(Op::UpdateDelete),
            n => Err(refuse(format!(
                "is {n}; an operation is 1 (insert), 2 (delete), 3 (update-insert) or 4 (update-delete)"
            ))),
        }
    }
}
