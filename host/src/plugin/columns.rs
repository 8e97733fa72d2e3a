//! Arrow arrays to the plugin's columns and back. What comes back from a plugin is
//! untrusted: lengths, types, offsets, bitmaps and UTF-8 are all checked.

use std::sync::Arc;

use arrow::array::*;
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::compute::cast;
use arrow::datatypes::*;

use super::bindings::{Column, ColumnData, VarBinary};
use super::types::PluginType;

/// Converts `array` (cast to `to` first when its type differs) into a plugin column.
pub(crate) fn to_column(array: &ArrayRef, to: PluginType) -> Result<Column, String> {
    let target = to.arrow_type();
    let array = if array.data_type() == &target {
        Arc::clone(array)
    } else {
        cast(array, &target)
            .map_err(|e| format!("cannot pass {} as {to}: {e}", array.data_type()))?
    };
    let data = match to {
        PluginType::Float64 => {
            ColumnData::Float64(array.as_primitive::<Float64Type>().values().to_vec())
        }
        PluginType::Int64 => ColumnData::Int64(array.as_primitive::<Int64Type>().values().to_vec()),
        PluginType::Timestamp => ColumnData::Timestamp(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .to_vec(),
        ),
        PluginType::Boolean => ColumnData::Boolean(array.as_boolean().values().iter().collect()),
        PluginType::Utf8 => {
            let strings = array.as_string::<i32>();
            let offsets = strings.value_offsets();
            let first = offsets.first().copied().unwrap_or(0);
            let last = offsets.last().copied().unwrap_or(0);
            ColumnData::Utf8(VarBinary {
                offsets: offsets.iter().map(|&o| (o - first) as u32).collect(),
                data: strings.value_data()[first as usize..last as usize].to_vec(),
            })
        }
    };
    Ok(Column {
        data,
        validity: array
            .logical_nulls()
            .filter(|nulls| nulls.null_count() > 0)
            .map(|nulls| bitmap_bytes(&nulls)),
    })
}

/// The validity bits of `nulls` as bytes starting at bit 0.
fn bitmap_bytes(nulls: &NullBuffer) -> Vec<u8> {
    let bits = nulls.inner();
    let bytes = bits.len().div_ceil(8);
    if bits.offset().is_multiple_of(8) {
        let start = bits.offset() / 8;
        bits.values()[start..start + bytes].to_vec()
    } else {
        bits.sliced().as_slice()[..bytes].to_vec()
    }
}

/// Converts an `evaluate` result into an Arrow array of `expected` with `rows` rows.
pub(crate) fn from_column(
    column: Column,
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
        ColumnData::Float64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
        ColumnData::Int64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
        ColumnData::Timestamp(v) => Arc::new(TimestampMicrosecondArray::new(v.into(), nulls)),
        ColumnData::Boolean(v) => Arc::new(BooleanArray::new(v.into_iter().collect(), nulls)),
        ColumnData::Utf8(v) => Arc::new(utf8_array(v, nulls)?),
    };
    Ok(array)
}

/// Checks and wraps plugin strings (offsets in bounds and monotone, valid UTF-8).
fn utf8_array(v: VarBinary, nulls: Option<NullBuffer>) -> Result<StringArray, String> {
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

fn column_type(data: &ColumnData) -> PluginType {
    match data {
        ColumnData::Float64(_) => PluginType::Float64,
        ColumnData::Int64(_) => PluginType::Int64,
        ColumnData::Utf8(_) => PluginType::Utf8,
        ColumnData::Boolean(_) => PluginType::Boolean,
        ColumnData::Timestamp(_) => PluginType::Timestamp,
    }
}

fn column_len(data: &ColumnData) -> usize {
    match data {
        ColumnData::Float64(v) => v.len(),
        ColumnData::Int64(v) | ColumnData::Timestamp(v) => v.len(),
        ColumnData::Boolean(v) => v.len(),
        ColumnData::Utf8(v) => v.offsets.len().saturating_sub(1),
    }
}

/// Converts per-group state bytes from a plugin into a `BinaryArray` of `rows` values.
pub(crate) fn states_from_plugin(v: VarBinary, rows: usize) -> Result<BinaryArray, String> {
    let len = v.offsets.len().saturating_sub(1);
    if len != rows {
        return Err(format!("returned {len} states for {rows} groups"));
    }
    let offsets = offsets(v.offsets, v.data.len())?;
    BinaryArray::try_new(offsets, v.data.into(), None)
        .map_err(|e| format!("returned malformed states: {e}"))
}

/// Lays out `states` (NULL = an empty state) for the plugin's `merge`.
pub(crate) fn states_to_plugin(states: &BinaryArray) -> VarBinary {
    let mut offsets = Vec::with_capacity(states.len() + 1);
    let mut data = Vec::new();
    offsets.push(0);
    for state in states.iter() {
        data.extend_from_slice(state.unwrap_or_default());
        offsets.push(data.len() as u32);
    }
    VarBinary { offsets, data }
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
        let column = to_column(&strings.slice(1, 3), PluginType::Utf8).unwrap();
        let ColumnData::Utf8(v) = &column.data else {
            panic!()
        };
        assert_eq!(v.offsets, vec![0, 0, 3, 4]);
        assert_eq!(v.data, b"cdef");
        assert_eq!(column.validity, Some(vec![0b110]));

        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let column = to_column(&numbers, PluginType::Float64).unwrap();
        assert!(matches!(column.data, ColumnData::Float64(ref v) if v == &[1.0, 2.0, 3.0]));
        assert_eq!(column.validity, None);
    }

    #[test]
    fn results_are_checked() {
        let good = Column {
            data: ColumnData::Float64(vec![1.0, 2.0]),
            validity: Some(vec![0b01]),
        };
        let array = from_column(good, PluginType::Float64, 2).unwrap();
        assert_eq!(array.null_count(), 1);

        let short = Column {
            data: ColumnData::Float64(vec![1.0]),
            validity: None,
        };
        assert!(from_column(short, PluginType::Float64, 2)
            .unwrap_err()
            .contains("1 values for 2 groups"));
        let wrong = Column {
            data: ColumnData::Int64(vec![1]),
            validity: None,
        };
        assert!(from_column(wrong, PluginType::Float64, 1)
            .unwrap_err()
            .contains("declares DOUBLE"));
        let bad_offsets = Column {
            data: ColumnData::Utf8(VarBinary {
                offsets: vec![0, 9],
                data: vec![b'a'],
            }),
            validity: None,
        };
        assert!(from_column(bad_offsets, PluginType::Utf8, 1).is_err());
        let bad_utf8 = Column {
            data: ColumnData::Utf8(VarBinary {
                offsets: vec![0, 1],
                data: vec![0xff],
            }),
            validity: None,
        };
        assert!(from_column(bad_utf8, PluginType::Utf8, 1).is_err());
        let short_bitmap = Column {
            data: ColumnData::Int64(vec![0; 9]),
            validity: Some(vec![0xff]),
        };
        assert!(from_column(short_bitmap, PluginType::Int64, 9).is_err());
    }
}
