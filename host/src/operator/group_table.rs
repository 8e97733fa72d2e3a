//! Maps (window, group key) to accumulator slots and remembers which slots each open
//! window owns, so a closing window can be evaluated and its slots reused.
//!
//! ```text
//!  rows ──(window start, key)──▶ open: BTreeMap<window start, OpenWindow> ──▶ slot
//!                                    OpenWindow { slots[], keys[], key → slot }
//!  watermark ≥ window end ──▶ pop_first ──▶ (slots, keys) ──▶ evaluate + free slots
//! ```
//! Keys of one integer column use an integer map; anything else is encoded with Arrow's
//! row format and looked up by bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::{RowConverter, SortField};
use rustc_hash::FxHashMap;

use crate::error::Result;

/// How group keys are represented.
#[derive(Debug)]
enum KeyCodec {
    /// No key columns: one group per window.
    Unit,
    /// One integer column that fits in `i64`.
    Int(DataType),
    /// Arrow row format for everything else.
    Rows(RowConverter),
}

/// The groups of one open window.
#[derive(Debug, Default)]
pub(crate) struct OpenWindow {
    /// Slots in the order their groups first appeared.
    pub(crate) slots: Vec<u32>,
    int_keys: Vec<Option<i64>>,
    int_map: FxHashMap<i64, u32>,
    null_slot: Option<u32>,
    row_keys: Vec<Box<[u8]>>,
    row_map: FxHashMap<Box<[u8]>, u32>,
}

/// Group-key → slot index for all open windows.
#[derive(Debug)]
pub(crate) struct GroupTable {
    codec: KeyCodec,
    open: BTreeMap<i64, OpenWindow>,
    free: Vec<u32>,
    num_slots: usize,
}

impl GroupTable {
    /// A table for keys of the given types.
    pub(crate) fn new(key_types: &[DataType]) -> Result<Self> {
        let codec = match key_types {
            [] => KeyCodec::Unit,
            [t] if t.is_integer() && *t != DataType::UInt64 => KeyCodec::Int(t.clone()),
            types => KeyCodec::Rows(RowConverter::new(
                types.iter().map(|t| SortField::new(t.clone())).collect(),
            )?),
        };
        Ok(Self {
            codec,
            open: BTreeMap::new(),
            free: Vec::new(),
            num_slots: 0,
        })
    }

    /// Number of slots ever handed out (an upper bound for every slot index).
    pub(crate) fn num_slots(&self) -> usize {
        self.num_slots
    }

    /// Number of groups in open windows.
    pub(crate) fn open_groups(&self) -> usize {
        self.num_slots - self.free.len()
    }

    /// Appends the slot of every row to `out`; new groups get fresh slots.
    ///
    /// `windows[i]` is the window start of row `i`, `keys` the key columns.
    pub(crate) fn intern(
        &mut self,
        windows: &[i64],
        keys: &[ArrayRef],
        out: &mut Vec<u32>,
    ) -> Result<()> {
        out.clear();
        out.reserve(windows.len());
        let encoded = match &self.codec {
            KeyCodec::Unit => Encoded::Unit,
            KeyCodec::Int(_) => Encoded::Int(match keys[0].as_primitive_opt::<Int64Type>() {
                Some(ints) => ints.clone(),
                None => cast(&keys[0], &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            }),
            KeyCodec::Rows(converter) => Encoded::Rows(converter.convert_columns(keys)?),
        };
        let mut start = 0;
        while start < windows.len() {
            let window = windows[start];
            let run = windows[start..]
                .iter()
                .position(|&w| w != window)
                .unwrap_or(windows.len() - start);
            let groups = self.open.entry(window).or_default();
            for row in start..start + run {
                let slot = match &encoded {
                    Encoded::Unit => groups.null_group(&mut self.free, &mut self.num_slots),
                    Encoded::Int(ints) if ints.is_null(row) => {
                        groups.null_group(&mut self.free, &mut self.num_slots)
                    }
                    Encoded::Int(ints) => {
                        let key = ints.value(row);
                        match groups.int_map.get(&key) {
                            Some(&slot) => slot,
                            None => {
                                let slot = allocate(&mut self.free, &mut self.num_slots);
                                groups.int_map.insert(key, slot);
                                groups.int_keys.push(Some(key));
                                groups.slots.push(slot);
                                slot
                            }
                        }
                    }
                    Encoded::Rows(rows) => {
                        let key = rows.row(row);
                        match groups.row_map.get(key.data()) {
                            Some(&slot) => slot,
                            None => {
                                let slot = allocate(&mut self.free, &mut self.num_slots);
                                groups.row_map.insert(key.data().into(), slot);
                                groups.row_keys.push(key.data().into());
                                groups.slots.push(slot);
                                slot
                            }
                        }
                    }
                };
                out.push(slot);
            }
            start += run;
        }
        Ok(())
    }

    /// Removes and returns the open windows starting at or before `last_start`, oldest first.
    pub(crate) fn close_through(&mut self, last_start: i64) -> Vec<(i64, OpenWindow)> {
        let mut closed = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() > last_start {
                break;
            }
            closed.push(entry.remove_entry());
        }
        closed
    }

    /// The open windows, oldest first.
    pub(crate) fn open_windows(&self) -> impl Iterator<Item = (i64, &OpenWindow)> {
        self.open.iter().map(|(start, window)| (*start, window))
    }

    /// Removes and returns every open window, oldest first.
    pub(crate) fn close_all(&mut self) -> Vec<(i64, OpenWindow)> {
        std::mem::take(&mut self.open).into_iter().collect()
    }

    /// Returns the slots of a closed window for reuse.
    pub(crate) fn release(&mut self, window: &OpenWindow) {
        self.free.extend_from_slice(&window.slots);
    }

    /// The key columns of a closed window's groups, in slot order, as `key_types`.
    pub(crate) fn key_columns(
        &self,
        window: &OpenWindow,
        key_types: &[DataType],
    ) -> Result<Vec<ArrayRef>> {
        Ok(match &self.codec {
            KeyCodec::Unit => Vec::new(),
            KeyCodec::Int(data_type) => {
                let ints: ArrayRef = Arc::new(Int64Array::from(window.int_keys.clone()));
                match data_type {
                    DataType::Int64 => vec![ints],
                    other => vec![cast(&ints, other)?],
                }
            }
            KeyCodec::Rows(converter) => {
                let parser = converter.parser();
                let columns =
                    converter.convert_rows(window.row_keys.iter().map(|k| parser.parse(k)))?;
                debug_assert_eq!(columns.len(), key_types.len());
                columns
            }
        })
    }
}

/// Key columns of one batch in the table's representation.
enum Encoded {
    Unit,
    Int(Int64Array),
    Rows(arrow::row::Rows),
}

impl OpenWindow {
    /// The slot of the group with a NULL key (or of the only group when there is no key).
    fn null_group(&mut self, free: &mut Vec<u32>, num_slots: &mut usize) -> u32 {
        if let Some(slot) = self.null_slot {
            return slot;
        }
        let slot = allocate(free, num_slots);
        self.null_slot = Some(slot);
        self.int_keys.push(None);
        self.slots.push(slot);
        slot
    }
}

/// A free slot, or a new one.
fn allocate(free: &mut Vec<u32>, num_slots: &mut usize) -> u32 {
    free.pop().unwrap_or_else(|| {
        *num_slots += 1;
        (*num_slots - 1) as u32
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn slots_are_per_window_and_reused_after_close() {
        let mut table = GroupTable::new(&[DataType::Int64]).unwrap();
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), Some(1), None]));
        let mut slots = Vec::new();
        table.intern(&[0, 0, 10, 10], &[keys], &mut slots).unwrap();
        assert_eq!(slots, vec![0, 1, 2, 3]);
        let closed = table.close_through(0);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].1.slots, vec![0, 1]);
        let cols = table.key_columns(&closed[0].1, &[DataType::Int64]).unwrap();
        assert_eq!(
            cols[0].as_primitive::<Int64Type>().values().to_vec(),
            vec![1, 2]
        );
        table.release(&closed[0].1);
        assert_eq!(table.open_groups(), 2);
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![7]));
        table.intern(&[20], &[keys], &mut slots).unwrap();
        assert!(slots[0] < 2, "a freed slot is reused");
    }

    #[test]
    fn composite_keys_use_row_format() {
        let mut table = GroupTable::new(&[DataType::Utf8, DataType::Int64]).unwrap();
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("x"), Some("x"), None]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1]));
        let mut slots = Vec::new();
        table.intern(&[5, 5, 5], &[a, b], &mut slots).unwrap();
        assert_eq!(slots, vec![0, 0, 1]);
        let closed = table.close_all();
        let cols = table
            .key_columns(&closed[0].1, &[DataType::Utf8, DataType::Int64])
            .unwrap();
        assert_eq!(cols[0].as_string::<i32>().value(0), "x");
        assert!(cols[0].is_null(1));
    }
}
