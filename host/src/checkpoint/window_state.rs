//! The persisted form of one open window: its group keys and, per aggregate call, one
//! buffer of state bytes with offsets — columnar, one value per window, not one per group.
//!
//! ```text
//!  WindowRecord { start, groups,
//!                 keys:   Arrow IPC stream of the key columns (little-endian, versioned),
//!                 states: [ StateColumn { valid: bitmap, offsets: [u32; groups + 1], bytes } ] }
//! ```
//! Recovery reads a record straight from the memory-mapped state file (rkyv, validated);
//! the state buffers are handed to the accumulators' `merge` with one copy per column.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{Field, Schema};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rkyv::{Archive, Deserialize, Serialize};

use crate::error::{Error, Result};

/// One open window as a checkpoint stores it.
///
/// `start` is the window's id in the operator: its start for TUMBLE and HOP, its end for
/// CUMULATE (whose windows share starts) and the sessions' end for SESSION, whose record
/// holds one more state column with each session's start (8 bytes little-endian), so the
/// format is the same for every kind.
#[derive(Debug, Archive, Serialize, Deserialize)]
pub struct WindowRecord {
    /// The window's id (epoch ms): its start, or its end for CUMULATE and SESSION.
    pub start: i64,
    /// Number of groups.
    pub groups: u32,
    /// The key columns as an Arrow IPC stream (empty without keys).
    pub keys: Vec<u8>,
    /// One state column per aggregate call, in call order.
    pub states: Vec<StateColumn>,
}

/// The state bytes of one aggregate call for every group of a window.
#[derive(Debug, Archive, Serialize, Deserialize)]
pub struct StateColumn {
    /// Bit `i` (LSB first) is set when group `i` has a state (else its state is NULL).
    pub valid: Vec<u8>,
    /// Group `i`'s bytes are `bytes[offsets[i]..offsets[i + 1]]`.
    pub offsets: Vec<u32>,
    /// Every group's state bytes, end to end.
    pub bytes: Vec<u8>,
}

impl WindowRecord {
    /// Encodes a window snapshot: `batch` holds `key_count` key columns, then one binary
    /// state column per aggregate call.
    pub fn encode(start: i64, batch: &RecordBatch, key_count: usize) -> Result<Self> {
        let groups = u32::try_from(batch.num_rows())
            .map_err(|_| Error::Execution(format!("window {start} has too many groups")))?;
        let keys = if key_count == 0 {
            Vec::new()
        } else {
            let key_batch = batch.project(&(0..key_count).collect::<Vec<_>>())?;
            let mut out = Vec::new();
            let mut writer = StreamWriter::try_new(&mut out, &key_batch.schema())?;
            writer.write(&key_batch)?;
            writer.finish()?;
            drop(writer);
            out
        };
        let mut states = Vec::with_capacity(batch.num_columns() - key_count);
        for column in &batch.columns()[key_count..] {
            let binary = column.as_binary_opt::<i32>().ok_or_else(|| {
                Error::Execution(format!("state of window {start} is not binary"))
            })?;
            states.push(StateColumn::encode(binary)?);
        }
        Ok(Self {
            start,
            groups,
            keys,
            states,
        })
    }
}

impl StateColumn {
    fn encode(states: &BinaryArray) -> Result<Self> {
        let values = states.value_data();
        let first = states.value_offsets().first().copied().unwrap_or(0);
        let offsets = states
            .value_offsets()
            .iter()
            .map(|&o| u32::try_from(o - first))
            .collect::<std::result::Result<Vec<u32>, _>>()
            .map_err(|_| Error::Execution("state bytes over 4 GiB in one window".into()))?;
        let end = offsets.last().copied().unwrap_or(0) as usize;
        let mut valid = vec![0u8; states.len().div_ceil(8)];
        for i in 0..states.len() {
            if states.is_valid(i) {
                valid[i / 8] |= 1 << (i % 8);
            }
        }
        Ok(Self {
            valid,
            offsets,
            bytes: values[first as usize..first as usize + end].to_vec(),
        })
    }
}

impl ArchivedWindowRecord {
    /// The window's start.
    pub fn start(&self) -> i64 {
        self.start.to_native()
    }

    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.groups.to_native() as usize
    }

    /// Back to a snapshot batch: the key columns, then one binary column per aggregate.
    pub fn decode(&self) -> Result<RecordBatch> {
        let start = self.start();
        let groups = self.groups();
        let corrupt = |what: &str| {
            Error::Execution(format!(
                "checkpointed window {start}: {what} (the state file is damaged)"
            ))
        };
        let mut columns: Vec<ArrayRef> = Vec::new();
        if !self.keys.is_empty() {
            let mut reader = StreamReader::try_new(Cursor::new(self.keys.as_slice()), None)?;
            let keys = reader
                .next()
                .transpose()?
                .ok_or_else(|| corrupt("no key batch"))?;
            if keys.num_rows() != groups {
                return Err(corrupt("key rows differ from the group count"));
            }
            columns.extend(keys.columns().iter().cloned());
        }
        for state in self.states.iter() {
            let offsets: Vec<i32> = state
                .offsets
                .iter()
                .map(|o| i32::try_from(o.to_native()))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| corrupt("state offset out of range"))?;
            let monotonic = offsets.windows(2).all(|w| w[0] <= w[1]);
            if offsets.len() != groups + 1
                || !monotonic
                || offsets.first() != Some(&0)
                || offsets.last().map(|&o| o as usize) != Some(state.bytes.len())
                || state.valid.len() != groups.div_ceil(8)
            {
                return Err(corrupt("state offsets do not match the state bytes"));
            }
            let valid = BooleanBuffer::from_iter(
                (0..groups).map(|i| state.valid[i / 8] & (1 << (i % 8)) != 0),
            );
            let array = BinaryArray::try_new(
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                Buffer::from_slice_ref(state.bytes.as_slice()),
                Some(NullBuffer::new(valid)),
            )?;
            columns.push(Arc::new(array));
        }
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(groups));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &options,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    #[test]
    fn a_window_round_trips_through_its_archive() {
        let keys: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("c")]));
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let states: ArrayRef = Arc::new(BinaryArray::from(vec![
            Some(&b"xy"[..]),
            None,
            Some(&b""[..]),
        ]));
        let batch = RecordBatch::try_from_iter([("k", keys), ("i", ids), ("s", states)]).unwrap();
        let record = WindowRecord::encode(-10_000, &batch, 2).unwrap();
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&record).unwrap();
        let archived = rkyv::access::<ArchivedWindowRecord, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(archived.start(), -10_000);
        let decoded = archived.decode().unwrap();
        assert_eq!(decoded.num_rows(), 3);
        for i in 0..3 {
            assert_eq!(decoded.column(i).to_data(), batch.column(i).to_data());
        }
    }

    #[test]
    fn a_window_without_keys_keeps_its_group_count() {
        let states: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&b"1234"[..])]));
        let batch = RecordBatch::try_from_iter([("s", states)]).unwrap();
        let record = WindowRecord::encode(0, &batch, 0).unwrap();
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&record).unwrap();
        let archived = rkyv::access::<ArchivedWindowRecord, rkyv::rancor::Error>(&bytes).unwrap();
        let decoded = archived.decode().unwrap();
        assert_eq!(decoded.num_rows(), 1);
        assert_eq!(decoded.column(0).as_binary::<i32>().value(0), b"1234");
    }

    #[test]
    fn damaged_offsets_are_an_error_not_a_panic() {
        let states: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&b"12"[..]), Some(&b"3"[..])]));
        let batch = RecordBatch::try_from_iter([("s", states)]).unwrap();
        let mut record = WindowRecord::encode(0, &batch, 0).unwrap();
        record.states[0].offsets[1] = 99;
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&record).unwrap();
        let archived = rkyv::access::<ArchivedWindowRecord, rkyv::rancor::Error>(&bytes).unwrap();
        let err = archived.decode().unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
