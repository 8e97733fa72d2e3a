//! Builds the result column of `evaluate`, with a validity bitmap when a row is NULL.

use crate::bindings::exports::laminar::udaf::scalar::{Column, ColumnData, DataType, VarBinary};
use crate::Value;

pub(crate) struct ResultBuilder {
    data: ColumnData,
    validity: Vec<u8>,
    has_null: bool,
    len: usize,
}

impl ResultBuilder {
    pub(crate) fn new(data_type: DataType, capacity: usize) -> Self {
        let data = match data_type {
            DataType::Float64 => ColumnData::Float64(Vec::with_capacity(capacity)),
            DataType::Int64 => ColumnData::Int64(Vec::with_capacity(capacity)),
            DataType::Utf8 => ColumnData::Utf8(VarBinary {
                offsets: vec![0],
                data: Vec::new(),
            }),
            DataType::Boolean => ColumnData::Boolean(Vec::with_capacity(capacity)),
            DataType::Timestamp => ColumnData::Timestamp(Vec::with_capacity(capacity)),
        };
        Self {
            data,
            // Every row valid until a NULL clears its bit: nothing to do per valid row.
            validity: vec![u8::MAX; capacity.div_ceil(8)],
            has_null: false,
            len: 0,
        }
    }

    /// Appends one row's result. The common case, a valid number within the capacity the
    /// builder was made with, is a store and a count, inlined into the caller's loop;
    /// everything else takes [`push_other`](Self::push_other).
    #[inline(always)]
    pub(crate) fn push(&mut self, value: Value) -> Result<(), String> {
        if self.len / 8 < self.validity.len() {
            let pushed = match (&mut self.data, &value) {
                (ColumnData::Float64(v), Value::Float64(x)) => {
                    v.push(*x);
                    true
                }
                (ColumnData::Int64(v), Value::Int64(x))
                | (ColumnData::Timestamp(v), Value::Timestamp(x)) => {
                    v.push(*x);
                    true
                }
                _ => false,
            };
            if pushed {
                self.len += 1;
                return Ok(());
            }
        }
        self.push_other(value)
    }

    #[inline(never)]
    fn push_other(&mut self, value: Value) -> Result<(), String> {
        let valid = !matches!(value, Value::Null);
        match (&mut self.data, value) {
            (ColumnData::Float64(v), Value::Float64(x)) => v.push(x),
            (ColumnData::Float64(v), Value::Null) => v.push(0.0),
            (ColumnData::Int64(v), Value::Int64(x)) => v.push(x),
            (ColumnData::Int64(v), Value::Null) => v.push(0),
            (ColumnData::Timestamp(v), Value::Timestamp(x)) => v.push(x),
            (ColumnData::Timestamp(v), Value::Null) => v.push(0),
            (ColumnData::Boolean(v), Value::Boolean(x)) => v.push(x),
            (ColumnData::Boolean(v), Value::Null) => v.push(false),
            (ColumnData::Utf8(v), value @ (Value::Utf8(_) | Value::Null)) => {
                if let Value::Utf8(s) = value {
                    v.data.extend_from_slice(s.as_bytes());
                }
                let end = u32::try_from(v.data.len())
                    .map_err(|_| "result strings exceed 4 GiB".to_string())?;
                v.offsets.push(end);
            }
            (_, other) => return Err(format!("eval returned {other:?} for another result type")),
        }
        if self.len / 8 >= self.validity.len() {
            self.validity.push(u8::MAX);
        }
        if !valid {
            self.validity[self.len / 8] &= !(1 << (self.len % 8));
            self.has_null = true;
        }
        self.len += 1;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Column {
        self.validity.truncate(self.len.div_ceil(8));
        Column {
            data: self.data,
            validity: self.has_null.then_some(self.validity),
        }
    }
}
