//! Typed, read-only access to the arguments of one row of a batch.

use crate::bindings::exports::laminar::udaf::scalar::{Column, ColumnData, DataType};

/// One argument column, borrowed from the batch the host sent.
#[derive(Clone, Copy)]
pub(crate) struct ArgColumn<'a> {
    values: Values<'a>,
    validity: Option<&'a [u8]>,
}

#[derive(Clone, Copy)]
enum Values<'a> {
    Float64(&'a [f64]),
    Int64(&'a [i64]),
    Utf8 { offsets: &'a [u32], data: &'a [u8] },
    Boolean(&'a [bool]),
    Timestamp(&'a [i64]),
}

/// Borrows `column` (argument `position`), checking it has `rows` values of `expected`.
pub(crate) fn check_column<'a>(
    column: &'a Column,
    expected: DataType,
    rows: usize,
    position: usize,
) -> Result<ArgColumn<'a>, String> {
    let (values, found, len) = match &column.data {
        ColumnData::Float64(v) => (Values::Float64(v), DataType::Float64, v.len()),
        ColumnData::Int64(v) => (Values::Int64(v), DataType::Int64, v.len()),
        ColumnData::Boolean(v) => (Values::Boolean(v), DataType::Boolean, v.len()),
        ColumnData::Timestamp(v) => (Values::Timestamp(v), DataType::Timestamp, v.len()),
        ColumnData::Utf8(v) => {
            let ok = v.offsets.first() == Some(&0)
                && v.offsets.windows(2).all(|w| w[0] <= w[1])
                && v.offsets
                    .last()
                    .is_some_and(|&o| o as usize <= v.data.len())
                && std::str::from_utf8(&v.data).is_ok();
            if !ok {
                return Err(format!(
                    "argument {} has malformed strings (offsets or UTF-8)",
                    position + 1
                ));
            }
            let values = Values::Utf8 {
                offsets: &v.offsets,
                data: &v.data,
            };
            (values, DataType::Utf8, v.offsets.len() - 1)
        }
    };
    if found != expected {
        return Err(format!(
            "argument {} has type {found:?}, the function declares {expected:?}",
            position + 1
        ));
    }
    if len != rows {
        return Err(format!(
            "argument {} has {len} values for {rows} rows",
            position + 1
        ));
    }
    let validity = column.validity.as_deref();
    if validity.is_some_and(|bits| bits.len() * 8 < rows) {
        return Err(format!(
            "argument {} has a validity bitmap too short for {rows} rows",
            position + 1
        ));
    }
    Ok(ArgColumn { values, validity })
}

impl ArgColumn<'_> {
    /// Whether some value may be NULL (the column has a validity bitmap).
    pub(crate) fn may_be_null(&self) -> bool {
        self.validity.is_some()
    }
}

/// The arguments of one row, by position. Each getter expects the type declared for that
/// position in [`crate::Scalar::ARGS`]; asked for another type, or for a NULL argument, it
/// returns a neutral value (0, `false`, `""`).
pub struct Args<'a> {
    columns: &'a [ArgColumn<'a>],
    row: usize,
}

impl<'a> Args<'a> {
    pub(crate) fn new(columns: &'a [ArgColumn<'a>], row: usize) -> Self {
        Self { columns, row }
    }

    /// Whether argument `i` is NULL in this row.
    #[inline]
    pub fn is_null(&self, i: usize) -> bool {
        self.columns.get(i).is_none_or(|c| {
            c.validity
                .is_some_and(|bits| bits[self.row / 8] & (1 << (self.row % 8)) == 0)
        })
    }

    /// Whether any argument is NULL in this row.
    #[inline]
    pub(crate) fn any_null(&self) -> bool {
        (0..self.columns.len()).any(|i| self.is_null(i))
    }

    fn values(&self, i: usize) -> Option<Values<'a>> {
        self.columns.get(i).map(|c| c.values)
    }

    /// Argument `i` declared as [`crate::DataType::Float64`].
    #[inline]
    pub fn f64(&self, i: usize) -> f64 {
        match self.values(i) {
            Some(Values::Float64(v)) => v[self.row],
            _ => 0.0,
        }
    }

    /// Argument `i` declared as [`crate::DataType::Int64`].
    #[inline]
    pub fn i64(&self, i: usize) -> i64 {
        match self.values(i) {
            Some(Values::Int64(v)) => v[self.row],
            _ => 0,
        }
    }

    /// Argument `i` declared as [`crate::DataType::Timestamp`]: microseconds since the epoch.
    #[inline]
    pub fn timestamp(&self, i: usize) -> i64 {
        match self.values(i) {
            Some(Values::Timestamp(v)) => v[self.row],
            _ => 0,
        }
    }

    /// Argument `i` declared as [`crate::DataType::Boolean`].
    #[inline]
    pub fn bool(&self, i: usize) -> bool {
        match self.values(i) {
            Some(Values::Boolean(v)) => v[self.row],
            _ => false,
        }
    }

    /// Argument `i` declared as [`crate::DataType::Utf8`].
    #[inline]
    pub fn str(&self, i: usize) -> &'a str {
        match self.values(i) {
            Some(Values::Utf8 { offsets, data }) => {
                let bytes = &data[offsets[self.row] as usize..offsets[self.row + 1] as usize];
                // Checked as UTF-8 as a whole; a value cut inside a character is not.
                std::str::from_utf8(bytes).unwrap_or("")
            }
            _ => "",
        }
    }
}
