//! Typed, read-only access to the argument values of one row inside a batch.

use crate::bindings::exports::laminar::udaf::aggregate::{Column, ColumnData, DataType};

/// The values of one argument column, borrowed from the batch the host sent.
pub(crate) enum ArgColumn<'a> {
    Float64(&'a [f64]),
    Int64(&'a [i64]),
    Utf8 { offsets: &'a [u32], data: &'a [u8] },
    Boolean(&'a [bool]),
    Timestamp(&'a [i64]),
}

impl<'a> ArgColumn<'a> {
    /// Borrows `column`, checking it has `rows` values of type `expected`.
    pub(crate) fn new(
        column: &'a Column,
        expected: DataType,
        rows: usize,
        position: usize,
    ) -> Result<Self, String> {
        let (arg, found, len) = match &column.data {
            ColumnData::Float64(v) => (ArgColumn::Float64(v), DataType::Float64, v.len()),
            ColumnData::Int64(v) => (ArgColumn::Int64(v), DataType::Int64, v.len()),
            ColumnData::Utf8(v) => {
                check_offsets(&v.offsets, v.data.len(), position)?;
                let arg = ArgColumn::Utf8 {
                    offsets: &v.offsets,
                    data: &v.data,
                };
                (arg, DataType::Utf8, v.offsets.len().saturating_sub(1))
            }
            ColumnData::Boolean(v) => (ArgColumn::Boolean(v), DataType::Boolean, v.len()),
            ColumnData::Timestamp(v) => (ArgColumn::Timestamp(v), DataType::Timestamp, v.len()),
        };
        if found != expected {
            return Err(format!(
                "argument {} has type {found:?}, the aggregate declares {expected:?}",
                position + 1
            ));
        }
        if len != rows {
            return Err(format!(
                "argument {} has {len} values for {rows} group ids",
                position + 1
            ));
        }
        if let Some(validity) = &column.validity {
            if validity.len() * 8 < rows {
                return Err(format!(
                    "argument {} has a validity bitmap of {} bytes for {rows} rows",
                    position + 1,
                    validity.len()
                ));
            }
        }
        Ok(arg)
    }
}

/// Checks that Arrow-style offsets start at 0, never decrease and stay within `data_len`.
pub(crate) fn check_offsets(
    offsets: &[u32],
    data_len: usize,
    position: usize,
) -> Result<(), String> {
    let ok = offsets.first().is_some_and(|&o| o == 0)
        && offsets.windows(2).all(|w| w[0] <= w[1])
        && offsets.last().is_some_and(|&o| o as usize <= data_len);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "argument {} has malformed offsets (must start at 0, not decrease, and end within {data_len} bytes)",
            position + 1
        ))
    }
}

/// The non-NULL argument values of one row, by position. Each getter expects the type the
/// aggregate declares for that position in [`crate::Aggregate::ARGS`]; asked for another
/// type it returns a neutral value (0, `false`, `""`).
pub struct Args<'a> {
    columns: &'a [ArgColumn<'a>],
    row: usize,
}

impl<'a> Args<'a> {
    pub(crate) fn new(columns: &'a [ArgColumn<'a>], row: usize) -> Self {
        Self { columns, row }
    }

    /// Argument `i` declared as [`crate::DataType::Float64`].
    #[inline]
    pub fn f64(&self, i: usize) -> f64 {
        match self.columns.get(i) {
            Some(ArgColumn::Float64(v)) => v[self.row],
            _ => 0.0,
        }
    }

    /// Argument `i` declared as [`crate::DataType::Int64`].
    #[inline]
    pub fn i64(&self, i: usize) -> i64 {
        match self.columns.get(i) {
            Some(ArgColumn::Int64(v)) => v[self.row],
            _ => 0,
        }
    }

    /// Argument `i` declared as [`crate::DataType::Timestamp`]: microseconds since the epoch.
    #[inline]
    pub fn timestamp(&self, i: usize) -> i64 {
        match self.columns.get(i) {
            Some(ArgColumn::Timestamp(v)) => v[self.row],
            _ => 0,
        }
    }

    /// Argument `i` declared as [`crate::DataType::Boolean`].
    #[inline]
    pub fn bool(&self, i: usize) -> bool {
        match self.columns.get(i) {
            Some(ArgColumn::Boolean(v)) => v[self.row],
            _ => false,
        }
    }

    /// Argument `i` declared as [`crate::DataType::Utf8`]. Bytes that are not UTF-8 read as `""`.
    #[inline]
    pub fn str(&self, i: usize) -> &'a str {
        match self.columns.get(i) {
            Some(ArgColumn::Utf8 { offsets, data }) => {
                let (start, end) = (offsets[self.row] as usize, offsets[self.row + 1] as usize);
                std::str::from_utf8(&data[start..end]).unwrap_or("")
            }
            _ => "",
        }
    }
}

/// Whether row `row` is valid in an Arrow validity bitmap (`None` = all valid).
#[inline]
pub(crate) fn is_valid(validity: Option<&[u8]>, row: usize) -> bool {
    validity.is_none_or(|bits| bits[row / 8] & (1 << (row % 8)) != 0)
}
