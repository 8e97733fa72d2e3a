//! Typed, read-only access to the argument values of one row inside a batch.

use crate::bindings::exports::laminar::udaf::aggregate::{Column, ColumnData, DataType};

/// The values of one argument column, borrowed from the batch the host sent.
#[derive(Clone, Copy)]
pub(crate) enum ArgColumn<'a> {
    Float64(&'a [f64]),
    Int64(&'a [i64]),
    Utf8 { offsets: &'a [u32], data: &'a [u8] },
    Boolean(&'a [bool]),
    Timestamp(&'a [i64]),
}

impl<'a> ArgColumn<'a> {
    /// A placeholder for a slot not yet filled.
    pub(crate) const EMPTY: ArgColumn<'static> = ArgColumn::Float64(&[]);

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
    fn new(columns: &'a [ArgColumn<'a>], row: usize) -> Self {
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

/// One batch of argument columns as the host sent it: typed slices for tight loops, and
/// per-row access through [`Batch::row`].
pub struct Batch<'a> {
    columns: &'a [ArgColumn<'a>],
    validity: &'a [&'a [u8]],
    rows: usize,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(columns: &'a [ArgColumn<'a>], validity: &'a [&'a [u8]], rows: usize) -> Self {
        Self {
            columns,
            validity,
            rows,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether no argument of any row is NULL, so the typed slices can be used as they are.
    pub fn all_valid(&self) -> bool {
        self.validity.is_empty()
    }

    /// Whether every argument of `row` is non-NULL.
    #[inline]
    pub fn is_valid(&self, row: usize) -> bool {
        self.validity.iter().all(|bits| is_valid(Some(bits), row))
    }

    /// The arguments of `row`.
    #[inline]
    pub fn row(&self, row: usize) -> Args<'a> {
        Args::new(self.columns, row)
    }

    /// Argument `i` declared as [`crate::DataType::Float64`], one value per row (the value
    /// of a NULL row is unspecified); empty for another type.
    pub fn f64s(&self, i: usize) -> &'a [f64] {
        match self.columns.get(i) {
            Some(ArgColumn::Float64(v)) => v,
            _ => &[],
        }
    }

    /// Argument `i` declared as [`crate::DataType::Int64`]; empty for another type.
    pub fn i64s(&self, i: usize) -> &'a [i64] {
        match self.columns.get(i) {
            Some(ArgColumn::Int64(v)) => v,
            _ => &[],
        }
    }

    /// Argument `i` declared as [`crate::DataType::Timestamp`] (microseconds); empty for
    /// another type.
    pub fn timestamps(&self, i: usize) -> &'a [i64] {
        match self.columns.get(i) {
            Some(ArgColumn::Timestamp(v)) => v,
            _ => &[],
        }
    }

    /// Argument `i` declared as [`crate::DataType::Boolean`]; empty for another type.
    pub fn bools(&self, i: usize) -> &'a [bool] {
        match self.columns.get(i) {
            Some(ArgColumn::Boolean(v)) => v,
            _ => &[],
        }
    }
}

/// Whether row `row` is valid in an Arrow validity bitmap (`None` = all valid).
#[inline]
pub(crate) fn is_valid(validity: Option<&[u8]>, row: usize) -> bool {
    validity.is_none_or(|bits| bits[row / 8] & (1 << (row % 8)) != 0)
}
