//! Session windows per key, for the window aggregate (ARCHITECTURE §4.1).
//!
//! ```text
//!  row (key, t, wm_i) ─▶ key's open sessions: close those with end <= wm_i
//!                     ─▶ meets none: late (t + gap <= wm_i) or a new session [t, t + gap)
//!                     ─▶ meets some: one session [min start, max end), their states merged
//!  watermark wm ─▶ every session with end <= wm (and those closed by a row) ─▶ emitted
//! ```
//! Rows are handled one by one in arrival order (a key's rows reach one core in order), so
//! results do not depend on batch boundaries or core counts. Accumulator updates are
//! batched between merges; a merge first applies the rows before it, and merges sessions
//! in start order, so every slot sees the same operations in the same order as a run
//! that handles one row at a time.

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Int64Array, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMillisecondType};
use arrow::row::{RowConverter, SortField};
use rustc_hash::FxHashMap;

use super::window_aggregate::AggregateCall;
use crate::error::{Error, Result};

/// One open session: `[start, end)` and its accumulator slot.
#[derive(Debug, Clone, Copy)]
struct Session {
    start: i64,
    end: i64,
    slot: u32,
}

/// A closed session not yet emitted, with its key's encoded bytes.
#[derive(Debug)]
pub(crate) struct Closed {
    /// The key, in the row format (empty without keys).
    pub(crate) key: Box<[u8]>,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) slot: u32,
}

/// Every key's open sessions and the sessions closed but not yet emitted.
#[derive(Debug)]
pub(crate) struct Sessions {
    gap: i64,
    converter: Option<RowConverter>,
    open: FxHashMap<Box<[u8]>, Vec<Session>>,
    closed: Vec<Closed>,
    free: Vec<u32>,
    num_slots: usize,
    late: u64,
    /// At most the smallest end of an open session (`i64::MAX`: none open): a watermark
    /// below it closes nothing, and the keys need not be scanned.
    min_end: i64,
    pending_rows: Vec<u32>,
    pending_slots: Vec<u32>,
    meets: Vec<usize>,
    /// The late rows of the last [`update`](Self::update), by index in its rows, in
    /// order (`None`: not kept).
    late_rows: Option<Vec<u32>>,
}

/// Reads a window column (millisecond timestamps or integers) as `i64`s.
pub(crate) fn millis(values: &ArrayRef) -> Result<Int64Array> {
    if values.null_count() > 0 {
        return Err(Error::Execution("window column is NULL".into()));
    }
    Ok(match values.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => values
            .as_primitive::<TimestampMillisecondType>()
            .reinterpret_cast::<Int64Type>(),
        _ => cast(values, &DataType::Int64)?
            .as_primitive::<Int64Type>()
            .clone(),
    })
}

impl Sessions {
    /// Sessions with an inactivity `gap` (ms), keyed by columns of `key_types`.
    pub(crate) fn new(gap: i64, key_types: &[DataType]) -> Result<Self> {
        let converter = match key_types {
            [] => None,
            types => Some(RowConverter::new(
                types.iter().map(|t| SortField::new(t.clone())).collect(),
            )?),
        };
        Ok(Self {
            gap,
            converter,
            open: FxHashMap::default(),
            closed: Vec::new(),
            free: Vec::new(),
            num_slots: 0,
            late: 0,
            min_end: i64::MAX,
            pending_rows: Vec::new(),
            pending_slots: Vec::new(),
            meets: Vec::new(),
            late_rows: None,
        })
    }

    /// Keeps, for each [`update`](Self::update), which of its rows were late.
    pub(crate) fn keep_late_rows(&mut self) {
        self.late_rows.get_or_insert_with(Vec::new);
    }

    /// The late rows of the last [`update`](Self::update): indices into its rows, in
    /// arrival order (empty when they are not kept).
    pub(crate) fn late_rows(&self) -> &[u32] {
        self.late_rows.as_deref().unwrap_or_default()
    }

    /// Rows counted late so far.
    pub(crate) fn late_events(&self) -> u64 {
        self.late
    }

    /// The number of slots the accumulators address (free ones included).
    pub(crate) fn num_slots(&self) -> usize {
        self.num_slots
    }

    /// Open sessions (those closed but not yet emitted included).
    pub(crate) fn open_sessions(&self) -> usize {
        self.open.values().map(Vec::len).sum::<usize>() + self.closed.len()
    }

    /// Adds rows in arrival order: `times` their event times, `watermarks` the watermark
    /// before each, `keys` the key columns; `args` holds each call's argument columns.
    pub(crate) fn update(
        &mut self,
        times: &Int64Array,
        watermarks: &Int64Array,
        keys: &[ArrayRef],
        calls: &mut [AggregateCall],
        args: &[Vec<ArrayRef>],
    ) -> Result<()> {
        let rows = times.len();
        let encoded = match &self.converter {
            Some(converter) => Some(converter.convert_columns(keys)?),
            None => None,
        };
        self.pending_rows.clear();
        self.pending_slots.clear();
        if let Some(late) = &mut self.late_rows {
            late.clear();
        }
        for row in 0..rows {
            let t = times.value(row);
            let wm = watermarks.value(row);
            let key: &[u8] = match &encoded {
                Some(rows) => rows.row(row).data(),
                None => &[],
            };
            let hi = t.saturating_add(self.gap);
            let sessions = match self.open.get_mut(key) {
                Some(sessions) => sessions,
                None => self.open.entry(key.into()).or_default(),
            };
            // Sessions the row's watermark has closed: never joined again.
            if sessions.iter().any(|s| s.end <= wm) {
                let mut i = 0;
                while i < sessions.len() {
                    if sessions[i].end <= wm {
                        let s = sessions.swap_remove(i);
                        self.closed.push(Closed {
                            key: key.into(),
                            start: s.start,
                            end: s.end,
                            slot: s.slot,
                        });
                    } else {
                        i += 1;
                    }
                }
            }
            self.meets.clear();
            self.meets.extend(
                sessions
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.start <= hi && t <= s.end)
                    .map(|(i, _)| i),
            );
            let slot = match self.meets.len() {
                0 if hi <= wm => {
                    self.late += 1;
                    if let Some(late) = &mut self.late_rows {
                        late.push(row as u32);
                    }
                    continue;
                }
                0 => {
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.num_slots += 1;
                        (self.num_slots - 1) as u32
                    });
                    sessions.push(Session {
                        start: t,
                        end: hi,
                        slot,
                    });
                    self.min_end = self.min_end.min(hi);
                    slot
                }
                1 => {
                    let s = &mut sessions[self.meets[0]];
                    s.start = s.start.min(t);
                    s.end = s.end.max(hi);
                    s.slot
                }
                _ => {
                    // Apply the rows so far before states move between slots.
                    let mut merged: Vec<Session> =
                        self.meets.iter().map(|&i| sessions[i]).collect();
                    for &i in self.meets.iter().rev() {
                        sessions.swap_remove(i);
                    }
                    merged.sort_by_key(|s| s.start);
                    let into = merged[0];
                    let mut session = Session {
                        start: into.start.min(t),
                        end: into.end.max(hi),
                        slot: into.slot,
                    };
                    Self::flush(
                        &mut self.pending_rows,
                        &mut self.pending_slots,
                        calls,
                        args,
                        self.num_slots,
                    )?;
                    for other in &merged[1..] {
                        session.start = session.start.min(other.start);
                        session.end = session.end.max(other.end);
                        for call in calls.iter_mut() {
                            let states = call.accumulator.state(&[other.slot])?;
                            call.accumulator
                                .merge(&states, &[session.slot], self.num_slots)?;
                            // Resets the slot, which is free again.
                            call.accumulator.evaluate(&[other.slot])?;
                        }
                        self.free.push(other.slot);
                    }
                    let slot = session.slot;
                    self.open.entry(key.into()).or_default().push(session);
                    slot
                }
            };
            self.pending_rows.push(row as u32);
            self.pending_slots.push(slot);
        }
        Self::flush(
            &mut self.pending_rows,
            &mut self.pending_slots,
            calls,
            args,
            self.num_slots,
        )
    }

    /// Adds the pending rows to their slots.
    fn flush(
        rows: &mut Vec<u32>,
        slots: &mut Vec<u32>,
        calls: &mut [AggregateCall],
        args: &[Vec<ArrayRef>],
        num_slots: usize,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(rows.clone());
        rows.clear();
        for (call, args) in calls.iter_mut().zip(args) {
            let taken = args
                .iter()
                .map(|a| take(a.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            call.accumulator.update(&taken, slots, num_slots)?;
        }
        slots.clear();
        Ok(())
    }

    /// Takes every session closed by `watermark` (`None`: every session), ordered by end,
    /// then start, then key.
    pub(crate) fn take_closed(&mut self, watermark: Option<i64>) -> Vec<Closed> {
        let mut out = std::mem::take(&mut self.closed);
        if watermark.is_some_and(|wm| wm < self.min_end) {
            return out;
        }
        let mut min_end = i64::MAX;
        self.open.retain(|key, sessions| {
            let mut i = 0;
            while i < sessions.len() {
                if watermark.is_none_or(|wm| sessions[i].end <= wm) {
                    let s = sessions.swap_remove(i);
                    out.push(Closed {
                        key: key.clone(),
                        start: s.start,
                        end: s.end,
                        slot: s.slot,
                    });
                } else {
                    min_end = min_end.min(sessions[i].end);
                    i += 1;
                }
            }
            !sessions.is_empty()
        });
        self.min_end = min_end;
        out.sort_by(|a, b| (a.end, a.start, &a.key).cmp(&(b.end, b.start, &b.key)));
        out
    }

    /// Frees the slots of emitted sessions.
    pub(crate) fn release(&mut self, slots: &[u32]) {
        self.free.extend_from_slice(slots);
    }

    /// The key columns of `sessions` (none without keys).
    pub(crate) fn key_columns(&self, sessions: &[Closed]) -> Result<Vec<ArrayRef>> {
        let Some(converter) = &self.converter else {
            return Ok(Vec::new());
        };
        let parser = converter.parser();
        Ok(converter.convert_rows(sessions.iter().map(|s| parser.parse(&s.key)))?)
    }

    /// Every open session (closed ones not yet emitted too), in the order
    /// [`take_closed`](Self::take_closed) would emit them; nothing is changed.
    pub(crate) fn all(&self) -> Vec<Closed> {
        let mut out: Vec<Closed> = self
            .closed
            .iter()
            .map(|c| Closed {
                key: c.key.clone(),
                start: c.start,
                end: c.end,
                slot: c.slot,
            })
            .collect();
        for (key, sessions) in &self.open {
            out.extend(sessions.iter().map(|s| Closed {
                key: key.clone(),
                start: s.start,
                end: s.end,
                slot: s.slot,
            }));
        }
        out.sort_by(|a, b| (a.end, a.start, &a.key).cmp(&(b.end, b.start, &b.key)));
        out
    }

    /// Brings back sessions of a snapshot: `keys` their key columns, `starts` and `ends`
    /// their bounds, `states` one state column per call.
    pub(crate) fn restore(
        &mut self,
        keys: &[ArrayRef],
        starts: &[i64],
        ends: &[i64],
        calls: &mut [AggregateCall],
        states: &[&BinaryArray],
    ) -> Result<()> {
        let encoded = match &self.converter {
            Some(converter) => Some(converter.convert_columns(keys)?),
            None => None,
        };
        let mut slots = Vec::with_capacity(starts.len());
        for row in 0..starts.len() {
            let key: &[u8] = match &encoded {
                Some(rows) => rows.row(row).data(),
                None => &[],
            };
            let slot = self.free.pop().unwrap_or_else(|| {
                self.num_slots += 1;
                (self.num_slots - 1) as u32
            });
            slots.push(slot);
            self.min_end = self.min_end.min(ends[row]);
            self.open.entry(key.into()).or_default().push(Session {
                start: starts[row],
                end: ends[row],
                slot,
            });
        }
        for (call, states) in calls.iter_mut().zip(states) {
            call.accumulator.merge(states, &slots, self.num_slots)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion_physical_expr::expressions::col;

    use crate::aggregate::native_accumulator;
    use crate::operator::{AggregateCall, GroupColumn, Operand, WindowAggregate};
    use crate::window::WindowSpec;

    fn input() -> Arc<Schema> {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("t", DataType::Int64, false),
            Field::new("wm", DataType::Int64, false),
        ]))
    }

    fn operator() -> WindowAggregate {
        let schema = input();
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Int64, true),
            Field::new("e", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let count = AggregateCall {
            args: vec![Operand::new(col("t", &schema).unwrap())],
            accumulator: native_accumulator("count", Some(&DataType::Int64), &DataType::Int64)
                .unwrap(),
        };
        WindowAggregate::new(
            WindowSpec::session(10).unwrap(),
            col("t", &schema).unwrap(),
            false,
            vec![
                GroupColumn::Key(0),
                GroupColumn::WindowStart,
                GroupColumn::WindowEnd,
            ],
            vec![col("k", &schema).unwrap()],
            vec![DataType::Int64],
            vec![count],
            output,
        )
        .unwrap()
        .with_watermark_column(col("wm", &schema).unwrap())
    }

    /// Rows `(t, wm)` of key 1.
    fn rows(rows: &[(i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            input(),
            vec![
                Arc::new(Int64Array::from(vec![1; rows.len()])),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    fn results(batches: &[RecordBatch]) -> Vec<[i64; 4]> {
        let mut out: Vec<[i64; 4]> = batches
            .iter()
            .flat_map(|b| {
                let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
                let (k, s, e, n) = (c(0), c(1), c(2), c(3));
                (0..b.num_rows())
                    .map(move |r| [k.value(r), s.value(r), e.value(r), n.value(r)])
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_unstable();
        out
    }

    const MIN: i64 = i64::MIN;
    /// Two sessions bridged by a row, a session closed by a row's watermark, a late row,
    /// and a row that starts a session overlapping a closed one (merging with an open one).
    const ROWS: [(i64, i64); 7] = [
        (0, MIN),
        (30, MIN),
        (18, MIN),
        (9, MIN),
        (29, 28),
        (5, 28),
        (20, 28),
    ];

    #[test]
    fn sessions_merge_close_per_row_and_count_late_rows() {
        for cut in 0..=ROWS.len() {
            let mut op = operator();
            let mut out = Vec::new();
            op.update(&rows(&ROWS[..cut])).unwrap();
            op.update(&rows(&ROWS[cut..])).unwrap();
            op.finish(&mut out).unwrap();
            assert_eq!(
                results(&out),
                vec![[1, 0, 28, 3], [1, 20, 40, 3]],
                "cut {cut}"
            );
            assert_eq!(op.late_events(), 1);
        }
    }

    #[test]
    fn late_rows_are_kept_with_their_source_columns_in_arrival_order() {
        for cut in 0..=ROWS.len() {
            // The input rows carry the source columns (here: all three) from column 0 on.
            let mut op = operator().with_late_rows(0, input());
            let mut late = Vec::new();
            for part in [&ROWS[..cut], &ROWS[cut..]] {
                op.update(&rows(part)).unwrap();
                late.extend(op.take_late_rows());
            }
            let late: Vec<(i64, i64)> = late
                .iter()
                .flat_map(|b| {
                    let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
                    let (t, wm) = (c(1), c(2));
                    (0..b.num_rows()).map(move |r| (t.value(r), wm.value(r)))
                })
                .collect();
            assert_eq!(late, vec![(5, 28)], "cut {cut}");
            assert_eq!(op.late_events(), 1);
            assert!(op.take_late_rows().is_empty());
        }
    }

    #[test]
    fn a_snapshot_restored_into_a_fresh_operator_goes_on_identically() {
        for cut in 0..=ROWS.len() {
            let mut op = operator();
            op.update(&rows(&ROWS[..cut])).unwrap();
            let mut out = Vec::new();
            // The watermark after the rows so far (the next row's, at most).
            let watermark = ROWS.get(cut).map_or(28, |row| row.1);
            op.advance(watermark, &mut out).unwrap();
            let snapshot = op.snapshot().unwrap();
            let mut fresh = operator();
            fresh.restore(&snapshot).unwrap();
            fresh.update(&rows(&ROWS[cut..])).unwrap();
            fresh.finish(&mut out).unwrap();
            assert_eq!(
                results(&out),
                vec![[1, 0, 28, 3], [1, 20, 40, 3]],
                "cut {cut}"
            );
            assert_eq!(op.late_events() + fresh.late_events(), 1);
            assert_eq!(fresh.open_groups(), 0);
        }
    }
}
