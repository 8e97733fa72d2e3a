//! Arrow arrays to the plugin's columns and back. What comes back from a plugin is
//! untrusted: lengths, types, offsets, bitmaps and UTF-8 are all checked.

use std::sync::Arc;

use arrow::array::*;
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::cast;
use arrow::datatypes::*;

use super::bindings::{
    ColumnDataParam, ColumnDataResult, ColumnParam, ColumnResult, VarBinaryParam, VarBinaryResult,
};
use super::types::PluginType;

/// One argument column ready to cross into a plugin. Fixed-width values and aligned
/// validity bitmaps are lent straight from the Arrow buffers; only what has another layout
/// in the plugin ABI (booleans, string offsets not starting at 0, unaligned bitmaps) is
/// copied.
pub(crate) struct ArgColumn {
    /// The argument, cast to the plugin's declared type.
    array: ArrayRef,
    to: PluginType,
    /// Boolean values as one `bool` per row.
    bools: Vec<bool>,
    /// String offsets rebased to start at 0, when Arrow's do not.
    offsets: Option<Vec<u32>>,
    /// The validity bits starting at bit 0, when the array has NULLs.
    validity: Option<Validity>,
}

/// Validity bits as the plugin reads them: lent from Arrow when they start on a byte
/// boundary, copied otherwise.
enum Validity {
    Lent(NullBuffer),
    Copied(Vec<u8>),
}

impl ArgColumn {
    /// Prepares `array` (cast to `to` first when its type differs) for a call.
    pub(crate) fn new(array: &ArrayRef, to: PluginType) -> Result<Self, String> {
        let target = match (to, array.data_type()) {
            // Any timestamp passes as microseconds, in its own time zone (the values are
            // UTC either way).
            (PluginType::Timestamp, DataType::Timestamp(_, tz)) => {
                DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
            }
            _ => to.arrow_type(),
        };
        let array = if array.data_type() == &target {
            Arc::clone(array)
        } else {
            cast(array, &target)
                .map_err(|e| format!("cannot pass {} as {to}: {e}", array.data_type()))?
        };
        let bools = match to {
            PluginType::Boolean => array.as_boolean().values().iter().collect(),
            _ => Vec::new(),
        };
        let offsets = match to {
            PluginType::Utf8 => {
                let offsets = array.as_string::<i32>().value_offsets();
                let first = offsets.first().copied().unwrap_or(0);
                (first != 0).then(|| offsets.iter().map(|&o| (o - first) as u32).collect())
            }
            _ => None,
        };
        let validity = array
            .logical_nulls()
            .filter(|nulls| nulls.null_count() > 0)
            .map(|nulls| {
                if nulls.offset().is_multiple_of(8) {
                    Validity::Lent(nulls)
                } else {
                    Validity::Copied(nulls.inner().sliced().as_slice().to_vec())
                }
            });
        Ok(Self {
            array,
            to,
            bools,
            offsets,
            validity,
        })
    }

    /// The column as the plugin's `update` takes it, borrowing from `self`.
    pub(crate) fn as_param(&self) -> ColumnParam<'_> {
        let array = &self.array;
        let data = match self.to {
            PluginType::Float64 => {
                ColumnDataParam::Float64(array.as_primitive::<Float64Type>().values())
            }
            PluginType::Int64 => ColumnDataParam::Int64(array.as_primitive::<Int64Type>().values()),
            PluginType::Timestamp => ColumnDataParam::Timestamp(
                array.as_primitive::<TimestampMicrosecondType>().values(),
            ),
            PluginType::Boolean => ColumnDataParam::Boolean(&self.bools),
            PluginType::Utf8 => {
                let strings = array.as_string::<i32>();
                let arrow_offsets = strings.value_offsets();
                let first = arrow_offsets.first().copied().unwrap_or(0) as usize;
                let last = arrow_offsets.last().copied().unwrap_or(0) as usize;
                let offsets: &[u32] = match &self.offsets {
                    Some(rebased) => rebased,
                    // Offsets that start at 0 are never negative: the same bits as u32.
                    None => strings.offsets().inner().inner().typed_data::<u32>(),
                };
                ColumnDataParam::Utf8(VarBinaryParam {
                    offsets,
                    data: &strings.value_data()[first..last],
                })
            }
        };
        let validity = self.validity.as_ref().map(|validity| match validity {
            Validity::Lent(nulls) => {
                let bits = nulls.inner();
                let start = bits.offset() / 8;
                &bits.values()[start..start + bits.len().div_ceil(8)]
            }
            Validity::Copied(bytes) => bytes.as_slice(),
        });
        ColumnParam { data, validity }
    }
}

/// Converts an `evaluate` result into an Arrow array of `expected` with `rows` rows.
pub(crate) fn from_column(
    column: ColumnResult,
    expected: PluginType,
    rows: usize,
) -> Result<ArrayRef, String> {
    let found = column_type(&column.data);
    if found != expected {
        return Err(format!(
            "returned a {found} column, but the plugin declares {expected} as its result type"
        ));
    }
    let len = column_len(&column.data);
    if len != rows {
        return Err(format!("returned {len} values for {rows} groups"));
    }
    let nulls = match column.validity {
        None => None,
        Some(bytes) => {
            if bytes.len() < rows.div_ceil(8) {
                return Err(format!(
                    "returned a validity bitmap of {} bytes for {rows} values",
                    bytes.len()
                ));
            }
            let bits = arrow::buffer::BooleanBuffer::new(bytes.into(), 0, rows);
            Some(NullBuffer::new(bits))
        }
    };
    let array: ArrayRef = match column.data {
        ColumnDataResult::Float64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
        ColumnDataResult::Int64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
        ColumnDataResult::Timestamp(v) => Arc::new(TimestampMicrosecondArray::new(v.into(), nulls)),
        ColumnDataResult::Boolean(v) => Arc::new(BooleanArray::new(v.into_iter().collect(), nulls)),
        ColumnDataResult::Utf8(v) => Arc::new(utf8_array(v, nulls)?),
    };
    Ok(array)
}

/// Checks and wraps plugin strings (offsets in bounds and monotone, valid UTF-8).
fn utf8_array(v: VarBinaryResult, nulls: Option<NullBuffer>) -> Result<StringArray, String> {
    let offsets = offsets(v.offsets, v.data.len())?;
    StringArray::try_new(offsets, v.data.into(), nulls)
        .map_err(|e| format!("returned malformed strings: {e}"))
}

/// Validates plugin offsets and converts them to Arrow's.
pub(crate) fn offsets(raw: Vec<u32>, data_len: usize) -> Result<OffsetBuffer<i32>, String> {
    let ok = raw.first() == Some(&0)
        && raw.windows(2).all(|w| w[0] <= w[1])
        && raw
            .last()
            .is_some_and(|&o| (o as usize) <= data_len && o <= i32::MAX as u32);
    if !ok {
        return Err(
            "returned malformed offsets (must start at 0, never decrease and stay within the data)"
                .to_string(),
        );
    }
    let offsets: Vec<i32> = raw.into_iter().map(|o| o as i32).collect();
    Ok(OffsetBuffer::new(ScalarBuffer::from(offsets)))
}

fn column_type(data: &ColumnDataResult) -> PluginType {
    match data {
        ColumnDataResult::Float64(_) => PluginType::Float64,
        ColumnDataResult::Int64(_) => PluginType::Int64,
        ColumnDataResult::Utf8(_) => PluginType::Utf8,
        ColumnDataResult::Boolean(_) => PluginType::Boolean,
        ColumnDataResult::Timestamp(_) => PluginType::Timestamp,
    }
}

fn column_len(data: &ColumnDataResult) -> usize {
    match data {
        ColumnDataResult::Float64(v) => v.len(),
        ColumnDataResult::Int64(v) | ColumnDataResult::Timestamp(v) => v.len(),
        ColumnDataResult::Boolean(v) => v.len(),
        ColumnDataResult::Utf8(v) => v.offsets.len().saturating_sub(1),
    }
}

/// Converts per-group state bytes from a plugin into a `BinaryArray` of `rows` values.
pub(crate) fn states_from_plugin(v: VarBinaryResult, rows: usize) -> Result<BinaryArray, String> {
    let len = v.offsets.len().saturating_sub(1);
    if len != rows {
        return Err(format!("returned {len} states for {rows} groups"));
    }
    let offsets = offsets(v.offsets, v.data.len())?;
    BinaryArray::try_new(offsets, v.data.into(), None)
        .map_err(|e| format!("returned malformed states: {e}"))
}

/// `states` (NULL = an empty state) laid out for the plugin's `merge`: offsets from 0
/// and the bytes of every state, back to back.
pub(crate) struct MergeStates {
    offsets: Vec<u32>,
    data: Vec<u8>,
}

impl MergeStates {
    /// Copies `states` into the plugin's layout.
    pub(crate) fn new(states: &BinaryArray) -> Self {
        let mut offsets = Vec::with_capacity(states.len() + 1);
        let mut data = Vec::new();
        offsets.push(0);
        for state in states.iter() {
            data.extend_from_slice(state.unwrap_or_default());
            offsets.push(data.len() as u32);
        }
        Self { offsets, data }
    }

    /// The states as the plugin's `merge` takes them.
    pub(crate) fn as_param(&self) -> VarBinaryParam<'_> {
        VarBinaryParam {
            offsets: &self.offsets,
            data: &self.data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliced_arrays_cross_with_their_own_validity_and_offsets() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec![
            Some("ab"),
            None,
            Some("cde"),
            Some("f"),
        ]));
        let column = ArgColumn::new(&strings.slice(1, 3), PluginType::Utf8).unwrap();
        let param = column.as_param();
        let ColumnDataParam::Utf8(v) = &param.data else {
            panic!()
        };
        assert_eq!(v.offsets, [0, 0, 3, 4]);
        assert_eq!(v.data, b"cdef");
        assert_eq!(param.validity, Some(&[0b110][..]));

        // Offsets from 0 and a bitmap on a byte boundary are lent as they are.
        let column = ArgColumn::new(&strings.slice(0, 2), PluginType::Utf8).unwrap();
        let param = column.as_param();
        let ColumnDataParam::Utf8(v) = &param.data else {
            panic!()
        };
        assert_eq!(v.offsets, [0, 2, 2]);
        assert_eq!(v.data, b"ab");
        assert_eq!(param.validity.map(|b| b[0] & 0b11), Some(0b01));

        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let column = ArgColumn::new(&numbers, PluginType::Float64).unwrap();
        let param = column.as_param();
        assert!(matches!(param.data, ColumnDataParam::Float64(v) if v == [1.0, 2.0, 3.0]));
        assert_eq!(param.validity, None);

        let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![1_500_000, 7_000]));
        let column = ArgColumn::new(&nanos, PluginType::Timestamp).unwrap();
        assert!(matches!(column.as_param().data, ColumnDataParam::Timestamp(v) if v == [1_500, 7]));
        let zoned: ArrayRef = Arc::new(TimestampSecondArray::from(vec![2]).with_timezone("UTC"));
        let column = ArgColumn::new(&zoned, PluginType::Timestamp).unwrap();
        assert!(
            matches!(column.as_param().data, ColumnDataParam::Timestamp(v) if v == [2_000_000])
        );

        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]));
        let column = ArgColumn::new(&flags.slice(1, 2), PluginType::Boolean).unwrap();
        let param = column.as_param();
        assert!(matches!(param.data, ColumnDataParam::Boolean(v) if v == [false, false]));
        assert_eq!(param.validity, Some(&[0b10][..]));
    }

    #[test]
    fn merge_states_are_laid_out_back_to_back() {
        let states = BinaryArray::from(vec![Some(&b"ab"[..]), None, Some(&b"c"[..])]);
        let merge = MergeStates::new(&states);
        let param = merge.as_param();
        assert_eq!(param.offsets, [0, 2, 2, 3]);
        assert_eq!(param.data, b"abc");
    }

    #[test]
    fn results_are_checked() {
        let good = ColumnResult {
            data: ColumnDataResult::Float64(vec![1.0, 2.0]),
            validity: Some(vec![0b01]),
        };
        let array = from_column(good, PluginType::Float64, 2).unwrap();
        assert_eq!(array.null_count(), 1);

        let short = ColumnResult {
            data: ColumnDataResult::Float64(vec![1.0]),
            validity: None,
        };
        assert!(from_column(short, PluginType::Float64, 2)
            .unwrap_err()
            .contains("1 values for 2 groups"));
        let wrong = ColumnResult {
            data: ColumnDataResult::Int64(vec![1]),
            validity: None,
        };
        assert!(from_column(wrong, PluginType::Float64, 1)
            .unwrap_err()
            .contains("declares DOUBLE"));
        let bad_offsets = ColumnResult {
            data: ColumnDataResult::Utf8(VarBinaryResult {
                offsets: vec![0, 9],
                data: vec![b'a'],
            }),
            validity: None,
        };
        assert!(from_column(bad_offsets, PluginType::Utf8, 1).is_err());
        let bad_utf8 = ColumnResult {
            data: ColumnDataResult::Utf8(VarBinaryResult {
                offsets: vec![0, 1],
                data: vec![0xff],
            }),
            validity: None,
        };
        assert!(from_column(bad_utf8, PluginType::Utf8, 1).is_err());
        let short_bitmap = ColumnResult {
            data: ColumnDataResult::Int64(vec![0; 9]),
            validity: Some(vec![0xff]),
        };
        assert!(from_column(short_bitmap, PluginType::Int64, 9).is_err());
    }
}
