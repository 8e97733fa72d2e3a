//! All-NULL columns made once and handed out again as slices: a column nobody reads (one
//! the source does not decode, or the router does not copy) costs no allocation and no
//! zeroing a batch.

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef};
use arrow::datatypes::DataType;

/// NULL columns kept from batch to batch, one a column index, each handed out as a slice
/// of the length asked for (no copy) rather than built and zeroed again for every batch.
#[derive(Debug, Default)]
pub(crate) struct NullColumns {
    by_column: Vec<Option<ArrayRef>>,
}

impl NullColumns {
    /// `len` NULLs of `data_type`, for column `column` of a batch.
    pub(crate) fn get(&mut self, column: usize, data_type: &DataType, len: usize) -> ArrayRef {
        if self.by_column.len() <= column {
            self.by_column.resize(column + 1, None);
        }
        let slot = &mut self.by_column[column];
        match slot {
            Some(nulls) if nulls.len() >= len && nulls.data_type() == data_type => {
                nulls.slice(0, len)
            }
            _ => {
                let nulls = new_null_array(data_type, len);
                *slot = Some(Arc::clone(&nulls));
                nulls
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_null_column_is_made_once_and_sliced_to_each_length() {
        let mut nulls = NullColumns::default();
        let long = nulls.get(3, &DataType::Int64, 100);
        let short = nulls.get(3, &DataType::Int64, 10);
        assert_eq!((long.len(), long.null_count()), (100, 100));
        assert_eq!((short.len(), short.null_count()), (10, 10));
        assert_eq!(
            long.to_data().buffers()[0].as_ptr(),
            short.to_data().buffers()[0].as_ptr(),
            "the shorter one is a slice of the first"
        );
        // A longer one, or another type, is made anew.
        assert_eq!(nulls.get(3, &DataType::Int64, 200).len(), 200);
        let text = nulls.get(3, &DataType::Utf8, 5);
        assert_eq!((text.data_type(), text.null_count()), (&DataType::Utf8, 5));
    }
}
