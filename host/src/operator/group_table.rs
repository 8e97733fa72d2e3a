//! Maps (window, group key) to accumulator slots and remembers which slots each open
//! window owns, so a closing window can be evaluated and its slots reused.
//!
//! ```text
//!  rows ──(window start, key)──▶ open: windows sorted by start ──▶ slot
//!                                    OpenWindow { slots[], keys[], key → slot }
//!  watermark ≥ window end ──▶ pop the oldest ──▶ (slots, keys) ──▶ evaluate + free slots
//! ```
//! Keys of one integer column use an integer map; anything else is encoded with Arrow's
//! row format and looked up by bytes. Few windows are open at a time (the watermark delay
//! over the window size, plus one), so they sit in a sorted deque: rows mostly land in the
//! newest, and the oldest closes first. A closed window's maps and vectors are cleared and
//! kept for the next window, so a steady stream allocates nothing here per window.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use arrow::row::{RowConverter, SortField};
use rustc_hash::FxHashMap;

use crate::error::Result;

/// Closed windows kept for reuse; a burst of windows beyond this is freed.
const SPARE_WINDOWS: usize = 8;

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
    /// Integer keys, one per slot (the NULL group's entry, at `null_index`, is unused).
    int_keys: Vec<i64>,
    int_map: FxHashMap<i64, u32>,
    null_slot: Option<u32>,
    /// Where the NULL group (or the only group without keys) is in `slots`.
    null_index: Option<usize>,
    row_keys: Vec<Box<[u8]>>,
    row_map: FxHashMap<Box<[u8]>, u32>,
}

/// Group-key → slot index for all open windows.
#[derive(Debug)]
pub(crate) struct GroupTable {
    codec: KeyCodec,
    /// Open windows by start, ascending. Boxed, so opening, closing and reusing one
    /// moves a pointer, not its maps.
    open: VecDeque<(i64, Box<OpenWindow>)>,
    /// Cleared windows to reuse, boxed as they are in `open` (taking one is a pointer move).
    #[allow(clippy::vec_box)]
    spare: Vec<Box<OpenWindow>>,
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
            open: VecDeque::new(),
            spare: Vec::new(),
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
            let index = self.window_index(window);
            let groups = &mut self.open[index].1;
            for row in start..start + run {
                let slot = match &encoded {
                    Encoded::Unit => groups.null_group(&mut self.free, &mut self.num_slots),
                    Encoded::Int(ints) if ints.is_null(row) => {
                        groups.null_group(&mut self.free, &mut self.num_slots)
                    }
                    Encoded::Int(ints) => {
                        let key = ints.value(row);
                        *groups.int_map.entry(key).or_insert_with(|| {
                            let slot = allocate(&mut self.free, &mut self.num_slots);
                            groups.int_keys.push(key);
                            groups.slots.push(slot);
                            slot
                        })
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

    /// The index in `open` of the window starting at `window`, opened if need be.
    fn window_index(&mut self, window: i64) -> usize {
        // Rows mostly go to the newest window.
        if let Some((last, _)) = self.open.back() {
            if *last == window {
                return self.open.len() - 1;
            }
        }
        match self.open.binary_search_by_key(&window, |(start, _)| *start) {
            Ok(index) => index,
            Err(index) => {
                let groups = self.spare.pop().unwrap_or_default();
                self.open.insert(index, (window, groups));
                index
            }
        }
    }

    /// Removes and returns the oldest open window if it starts at or before `last_start`.
    pub(crate) fn pop_closed(&mut self, last_start: i64) -> Option<(i64, Box<OpenWindow>)> {
        match self.open.front() {
            Some((start, _)) if *start <= last_start => self.open.pop_front(),
            _ => None,
        }
    }

    /// Removes and returns the oldest open window.
    pub(crate) fn pop_oldest(&mut self) -> Option<(i64, Box<OpenWindow>)> {
        self.open.pop_front()
    }

    /// The open windows, oldest first.
    pub(crate) fn open_windows(&self) -> impl Iterator<Item = (i64, &OpenWindow)> {
        self.open.iter().map(|(start, window)| (*start, &**window))
    }

    /// Takes back a closed window: its slots are free again, and its emptied maps are
    /// kept for a window still to open.
    pub(crate) fn release(&mut self, mut window: Box<OpenWindow>) {
        self.free.extend_from_slice(&window.slots);
        if self.spare.len() < SPARE_WINDOWS {
            window.clear();
            self.spare.push(window);
        }
    }

    /// Appends to `out` the key columns of a window's groups, in slot order, as
    /// `key_types`.
    pub(crate) fn key_columns(
        &self,
        window: &OpenWindow,
        key_types: &[DataType],
        out: &mut Vec<ArrayRef>,
    ) -> Result<()> {
        match &self.codec {
            KeyCodec::Unit => {}
            KeyCodec::Int(data_type) => {
                let nulls = window.null_index.map(|index| {
                    let mut valid = vec![true; window.int_keys.len()];
                    valid[index] = false;
                    NullBuffer::new(BooleanBuffer::from(valid))
                });
                let ints = Int64Array::new(window.int_keys.clone().into(), nulls);
                out.push(match data_type {
                    DataType::Int64 => Arc::new(ints),
                    other => cast(&ints, other)?,
                });
            }
            KeyCodec::Rows(converter) => {
                let parser = converter.parser();
                let columns =
                    converter.convert_rows(window.row_keys.iter().map(|k| parser.parse(k)))?;
                debug_assert_eq!(columns.len(), key_types.len());
                out.extend(columns);
            }
        }
        Ok(())
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
        self.null_index = Some(self.slots.len());
        self.int_keys.push(0);
        self.slots.push(slot);
        slot
    }

    /// Empties the window, keeping what its maps and vectors have allocated.
    fn clear(&mut self) {
        self.slots.clear();
        self.int_keys.clear();
        self.int_map.clear();
        self.null_slot = None;
        self.null_index = None;
        self.row_keys.clear();
        self.row_map.clear();
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
        let (start, closed) = table.pop_closed(0).unwrap();
        assert_eq!(start, 0);
        assert!(table.pop_closed(0).is_none(), "window 10 is still open");
        assert_eq!(closed.slots, vec![0, 1]);
        let mut cols = Vec::new();
        table
            .key_columns(&closed, &[DataType::Int64], &mut cols)
            .unwrap();
        assert_eq!(
            cols[0].as_primitive::<Int64Type>().values().to_vec(),
            vec![1, 2]
        );
        table.release(closed);
        assert_eq!(table.open_groups(), 2);
        let (_, window_10) = table.pop_closed(10).unwrap();
        let mut cols = Vec::new();
        table
            .key_columns(&window_10, &[DataType::Int64], &mut cols)
            .unwrap();
        assert_eq!(cols[0].as_primitive::<Int64Type>().value(0), 1);
        assert!(cols[0].is_null(1), "the NULL key's group");
        table.release(window_10);
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![7]));
        table.intern(&[20], &[keys], &mut slots).unwrap();
        assert!(slots[0] < 4, "a freed slot is reused");
    }

    #[test]
    fn windows_opened_out_of_order_close_in_start_order_and_reused_ones_start_empty() {
        let mut table = GroupTable::new(&[DataType::Int64]).unwrap();
        let mut slots = Vec::new();
        for start in [30, 10, 20, 10, 40] {
            let keys: ArrayRef = Arc::new(Int64Array::from(vec![start]));
            table.intern(&[start], &[keys], &mut slots).unwrap();
        }
        let mut starts = Vec::new();
        while let Some((start, window)) = table.pop_closed(30) {
            assert_eq!(window.slots.len(), 1, "window {start}");
            starts.push(start);
            table.release(window);
        }
        assert_eq!(starts, [10, 20, 30]);
        // A window opened from a reused one holds only its own group.
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None]));
        table.intern(&[50, 50], &[keys], &mut slots).unwrap();
        let (_, window) = table.pop_closed(40).unwrap();
        assert_eq!(window.slots.len(), 1);
        let (start, window) = table.pop_oldest().unwrap();
        assert_eq!(start, 50);
        let mut cols = Vec::new();
        table
            .key_columns(&window, &[DataType::Int64], &mut cols)
            .unwrap();
        assert_eq!(cols[0].len(), 2);
        assert_eq!(cols[0].as_primitive::<Int64Type>().value(0), 5);
        assert!(cols[0].is_null(1));
    }

    #[test]
    fn composite_keys_use_row_format() {
        let mut table = GroupTable::new(&[DataType::Utf8, DataType::Int64]).unwrap();
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("x"), Some("x"), None]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1]));
        let mut slots = Vec::new();
        table.intern(&[5, 5, 5], &[a, b], &mut slots).unwrap();
        assert_eq!(slots, vec![0, 0, 1]);
        let (_, closed) = table.pop_oldest().unwrap();
        let mut cols = Vec::new();
        table
            .key_columns(&closed, &[DataType::Utf8, DataType::Int64], &mut cols)
            .unwrap();
        assert_eq!(cols[0].as_string::<i32>().value(0), "x");
        assert!(cols[0].is_null(1));
    }
}
