//! The event-time window aggregate: per (window, key) state, emitted once when the
//! watermark passes the window's end. TUMBLE, HOP and CUMULATE rows arrive with their
//! window's bounds (one row per window, from the event-time stage); SESSION rows with
//! their event time and watermark, merged into sessions per key by [`Sessions`].
//!
//! ```text
//!  batch ─▶ window start per row ─┐
//!        ─▶ key columns ──────────┴▶ GroupTable::intern ─▶ slot per row
//!        ─▶ argument columns ───────────────────────────▶ accumulator.update(args, slots)
//!  watermark wm ─▶ windows with end <= wm ─▶ evaluate(slots) ─▶ one batch per window
//! ```
//! Rows of a fixed-grid window reaching this operator are never late (the event-time stage
//! dropped and counted those), so every row lands in a window that is still open. Session
//! rows are judged late here, per key.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_physical_expr::utils::collect_columns;
use datafusion_physical_expr::PhysicalExpr;

use super::group_table::{GroupTable, OpenWindow};
use super::operand::Operand;
use super::sessions::{millis, Sessions};
use crate::aggregate::GroupAccumulator;
use crate::error::{Error, Result};
use crate::window::{TumblingWindow, WindowSpec};

#[path = "window_panes.rs"]
mod panes;
#[path = "window_replace.rs"]
mod replace;
#[path = "window_sessions.rs"]
mod session_windows;

pub use replace::{ReplaceJob, Replacement};

/// What one GROUP BY output column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupColumn {
    /// The window's start.
    WindowStart,
    /// The window's (exclusive) end.
    WindowEnd,
    /// The n-th key expression.
    Key(usize),
}

/// One aggregate function call: its arguments and its accumulator.
#[derive(Debug)]
pub struct AggregateCall {
    /// Arguments, evaluated over the input batch.
    pub args: Vec<Operand>,
    /// The state of every group.
    pub accumulator: Box<dyn GroupAccumulator>,
}

/// The open state of a [`WindowAggregate`], as a checkpoint stores it.
#[derive(Debug, Clone)]
pub struct WindowSnapshot {
    /// Windows emitted before the snapshot.
    pub windows_emitted: u64,
    /// Every open window, oldest first: its id (epoch ms: the start, or the end for
    /// CUMULATE and SESSION) and its groups, one row each: the key columns, then one
    /// binary state column per aggregate call (for SESSION, then one more binary column
    /// with each session's start, 8 bytes little-endian).
    pub windows: Vec<(i64, RecordBatch)>,
    /// Session rows this operator counted late (0 for other windows, whose late rows the
    /// event-time stage counts).
    pub late_events: u64,
    /// The watermark the operator had reached: every window ending at or before it was
    /// emitted (what a HOP or CUMULATE operator kept by pane must not emit again).
    pub advanced_to: Option<i64>,
}

impl From<TumblingWindow> for WindowSpec {
    fn from(window: TumblingWindow) -> Self {
        WindowSpec::Tumble {
            size: window.size_ms(),
        }
    }
}

/// Windowed GROUP BY with watermark-driven, exactly-once emission.
#[derive(Debug)]
pub struct WindowAggregate {
    // PROPERTIES
    window: WindowSpec,
    /// Evaluates to the window start (or end, see `window_expr_is_end`) of each row; for
    /// SESSION, its event time.
    window_expr: Operand,
    window_expr_is_end: bool,
    /// SESSION: evaluates to each row's watermark.
    watermark_expr: Option<Operand>,
    group_columns: Vec<GroupColumn>,
    keys: Vec<Operand>,
    key_types: Vec<DataType>,
    schema: SchemaRef,
    // STATES
    calls: Vec<AggregateCall>,
    table: GroupTable,
    sessions: Option<Sessions>,
    /// HOP and CUMULATE rows kept by pane, merged into windows as they close.
    panes: bool,
    /// The largest watermark emission has reached (see [`WindowSnapshot::advanced_to`]).
    advanced_to: Option<i64>,
    windows_emitted: u64,
    starts: Vec<i64>,
    slots: Vec<u32>,
    /// The key and the argument columns of one batch, reused from batch to batch.
    key_values: Vec<ArrayRef>,
    arg_values: Vec<ArrayRef>,
    /// SESSION late rows for a late sink (see [`with_late_rows`](Self::with_late_rows)).
    late_rows: Option<LateRows>,
}

/// Where a SESSION aggregate's input carries its rows' source columns, and the late rows
/// taken from them so far.
#[derive(Debug)]
struct LateRows {
    /// The first source column in the input rows.
    from: usize,
    /// The source columns.
    schema: SchemaRef,
    /// Late rows not yet taken, in arrival order.
    batches: Vec<RecordBatch>,
}

impl WindowAggregate {
    /// Builds the operator. `schema` is the output: the group columns, then one column per
    /// aggregate call, in order.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        window: impl Into<WindowSpec>,
        window_expr: Arc<dyn PhysicalExpr>,
        window_expr_is_end: bool,
        group_columns: Vec<GroupColumn>,
        key_exprs: Vec<Arc<dyn PhysicalExpr>>,
        key_types: Vec<DataType>,
        calls: Vec<AggregateCall>,
        schema: SchemaRef,
    ) -> Result<Self> {
        if schema.fields().len() != group_columns.len() + calls.len() {
            return Err(Error::plan(
                "internal: window aggregate output schema does not match its columns",
            ));
        }
        let window = window.into();
        if window.id_is_end() && !window_expr_is_end && !window.is_session() {
            return Err(Error::unsupported(
                format!("a {} window grouped by window_start alone", window.name()),
                "GROUP BY window_start, window_end, key",
            ));
        }
        let sessions = match window {
            WindowSpec::Session { gap } => Some(Sessions::new(gap, &key_types)?),
            _ => None,
        };
        Ok(Self {
            window,
            window_expr: Operand::new(window_expr),
            window_expr_is_end,
            watermark_expr: None,
            sessions,
            panes: false,
            advanced_to: None,
            group_columns,
            keys: key_exprs.into_iter().map(Operand::new).collect(),
            table: GroupTable::new(&key_types)?,
            key_types,
            schema,
            calls,
            windows_emitted: 0,
            starts: Vec::new(),
            slots: Vec::new(),
            key_values: Vec::new(),
            arg_values: Vec::new(),
            late_rows: None,
        })
    }

    /// SESSION: keeps the rows judged late, with their source columns, for
    /// [`take_late_rows`](Self::take_late_rows) (`EMIT … LATE DATA TO sink`). The input
    /// rows carry every source column (of `schema`) from column `from` on. Such an
    /// aggregate runs on one thread (the query's), so its late rows leave with the batch
    /// that brought them, in arrival order. No effect on other kinds, whose late rows the
    /// event-time stage keeps.
    pub fn with_late_rows(mut self, from: usize, schema: SchemaRef) -> Self {
        if let Some(sessions) = &mut self.sessions {
            sessions.keep_late_rows();
            self.late_rows = Some(LateRows {
                from,
                schema,
                batches: Vec::new(),
            });
        }
        self
    }

    /// Whether it keeps its late rows ([`with_late_rows`](Self::with_late_rows)).
    pub fn keeps_late_rows(&self) -> bool {
        self.late_rows.is_some()
    }

    /// The late rows since the last call, with every source column, in arrival order
    /// (empty unless [`with_late_rows`](Self::with_late_rows)).
    pub fn take_late_rows(&mut self) -> Vec<RecordBatch> {
        self.late_rows
            .as_mut()
            .map(|late| std::mem::take(&mut late.batches))
            .unwrap_or_default()
    }

    /// A SESSION operator's per-row watermark column (`window_end` of its input rows; the
    /// window expression is then their event time, `window_start`).
    pub fn with_watermark_column(mut self, expr: Arc<dyn PhysicalExpr>) -> Self {
        self.watermark_expr = Some(Operand::new(expr));
        self
    }

    /// HOP and CUMULATE: the rows arrive once each, their window columns the bounds of
    /// their pane (the slide or step holding them), and each pane's groups are merged into
    /// every window holding it when that window closes. The rows must come in pieces after
    /// each of which the operator is advanced, cut wherever the watermark crosses a window
    /// end (what `EventTimeStage::slice` does), so a row joins only the windows still open
    /// at its own watermark. No effect on other kinds.
    pub fn with_panes(mut self) -> Self {
        self.panes = matches!(
            self.window,
            WindowSpec::Hop { .. } | WindowSpec::Cumulate { .. }
        );
        self
    }

    /// The window the rows are grouped into.
    pub fn window(&self) -> WindowSpec {
        self.window
    }

    /// Session rows counted late here (always 0 for other windows).
    pub fn late_events(&self) -> u64 {
        self.sessions.as_ref().map_or(0, Sessions::late_events)
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Windows emitted so far.
    pub fn windows_emitted(&self) -> u64 {
        self.windows_emitted
    }

    /// Groups held in open windows (open sessions, for SESSION).
    pub fn open_groups(&self) -> usize {
        match &self.sessions {
            Some(sessions) => sessions.open_sessions(),
            None => self.table.open_groups(),
        }
    }

    /// The GROUP BY keys (the window bounds aside), in order: what the reactor routes rows
    /// by before [`update_keyed`](Self::update_keyed).
    pub fn keys(&self) -> &[Operand] {
        &self.keys
    }

    /// The input columns [`update_keyed`](Self::update_keyed) reads besides the keys it is
    /// handed: those of the window bound and of the aggregates' arguments, ascending.
    pub fn columns_read(&self) -> Vec<usize> {
        let mut columns: Vec<usize> = std::iter::once(&self.window_expr)
            .chain(self.watermark_expr.iter())
            .chain(self.calls.iter().flat_map(|call| call.args.iter()))
            .flat_map(|operand| collect_columns(operand.expr()))
            .map(|column| column.index())
            .collect();
        if let Some(late) = &self.late_rows {
            columns.extend(late.from..late.from + late.schema.fields().len());
        }
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// Adds a batch of (non-late) rows to their windows.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut keys = std::mem::take(&mut self.key_values);
        keys.clear();
        for key in &self.keys {
            keys.push(key.evaluate(batch)?);
        }
        let updated = self.update_keyed(batch, &keys);
        keys.clear();
        self.key_values = keys;
        updated
    }

    /// Adds a batch of (non-late) rows whose key expressions are already evaluated: `keys`
    /// holds one array per [`keys`](Self::keys) entry, one value per row.
    pub fn update_keyed(&mut self, batch: &RecordBatch, keys: &[ArrayRef]) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        if keys.len() != self.keys.len() || keys.iter().any(|k| k.len() != rows) {
            return Err(Error::Execution(
                "internal: key columns do not match the batch".into(),
            ));
        }
        let window_values = self.window_expr.evaluate(batch)?;
        if window_values.null_count() > 0 {
            return Err(Error::Execution("window column is NULL".into()));
        }
        if let Some(sessions) = &mut self.sessions {
            let times = millis(&window_values)?;
            let watermark_expr = self.watermark_expr.as_ref().ok_or_else(|| {
                Error::Execution("internal: a session aggregate without watermarks".into())
            })?;
            let watermarks = millis(&watermark_expr.evaluate(batch)?)?;
            let args = self
                .calls
                .iter()
                .map(|call| call.args.iter().map(|a| a.evaluate(batch)).collect())
                .collect::<Result<Vec<Vec<ArrayRef>>>>()?;
            sessions.update(&times, &watermarks, keys, &mut self.calls, &args)?;
            if let Some(late) = &mut self.late_rows {
                let rows = sessions.late_rows();
                if !rows.is_empty() {
                    late.keep(batch, rows)?;
                }
            }
            return Ok(());
        }
        let offset = match (self.panes, self.window.pane_width()) {
            (true, Some(width)) if self.window_expr_is_end => -width,
            (true, _) => 0,
            (false, _) => self.window.id_from(0, self.window_expr_is_end),
        };
        self.starts.clear();
        // The window columns are millisecond timestamps: read their values as they are.
        match window_values.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) => self.starts.extend(
                window_values
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .iter()
                    .map(|&v| v + offset),
            ),
            _ => {
                let values = cast(&window_values, &DataType::Int64)?;
                self.starts.extend(
                    values
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .map(|&v| v + offset),
                );
            }
        }
        self.table.intern(&self.starts, keys, &mut self.slots)?;
        let num_slots = self.table.num_slots();
        for call in &mut self.calls {
            self.arg_values.clear();
            for arg in &call.args {
                self.arg_values.push(arg.evaluate(batch)?);
            }
            call.accumulator
                .update(&self.arg_values, &self.slots, num_slots)?;
        }
        self.arg_values.clear();
        Ok(())
    }

    /// Appends to `out` every window whose end is at or before `watermark`, oldest first.
    pub fn advance(&mut self, watermark: i64, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.emit(Some(watermark), |_, batch| out.push(batch))
    }

    /// [`advance`](Self::advance), with each window's start beside its rows.
    pub fn advance_windows(&mut self, watermark: i64) -> Result<Vec<(i64, RecordBatch)>> {
        let mut out = Vec::new();
        self.emit(Some(watermark), |start, batch| out.push((start, batch)))?;
        Ok(out)
    }

    /// Appends to `out` every open window, oldest first (end of bounded input).
    pub fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        self.emit(None, |_, batch| out.push(batch))
    }

    /// [`finish`](Self::finish), with each window's start beside its rows.
    pub fn finish_windows(&mut self) -> Result<Vec<(i64, RecordBatch)>> {
        let mut out = Vec::new();
        self.emit(None, |start, batch| out.push((start, batch)))?;
        Ok(out)
    }

    /// The number of key columns (the first columns of every snapshot batch).
    pub fn key_count(&self) -> usize {
        self.key_types.len()
    }

    /// The state of every open window: its groups' keys and each aggregate's state bytes
    /// (for Wasm plugins, the bytes their `state` export returns). The operator is not
    /// changed; [`WindowAggregate::restore`] on a fresh operator of the same query brings
    /// it back, which is what a checkpoint stores and recovery loads.
    pub fn snapshot(&mut self) -> Result<WindowSnapshot> {
        if self.sessions.is_some() {
            return self.snapshot_sessions();
        }
        let mut windows = Vec::new();
        for (start, groups) in self.table.open_windows() {
            let mut columns = Vec::new();
            self.table
                .key_columns(groups, &self.key_types, &mut columns)?;
            for call in &mut self.calls {
                columns.push(Arc::new(call.accumulator.state(&groups.slots)?));
            }
            let fields: Vec<Field> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
                .collect();
            let options = RecordBatchOptions::new().with_row_count(Some(groups.slots.len()));
            let batch = RecordBatch::try_new_with_options(
                Arc::new(Schema::new(fields)),
                columns,
                &options,
            )?;
            windows.push((start, batch));
        }
        Ok(WindowSnapshot {
            windows_emitted: self.windows_emitted,
            windows,
            late_events: 0,
            advanced_to: self.advanced_to,
        })
    }

    /// Loads a snapshot taken by [`WindowAggregate::snapshot`] into this operator, which
    /// must hold no open windows yet.
    pub fn restore(&mut self, snapshot: &WindowSnapshot) -> Result<()> {
        if self.table.open_groups() > 0 {
            return Err(Error::Execution(
                "a snapshot can only be restored into an operator with no open windows".into(),
            ));
        }
        let keys = self.key_types.len();
        if self.sessions.is_some() {
            return self.restore_sessions(snapshot);
        }
        for (start, batch) in &snapshot.windows {
            if batch.num_columns() != keys + self.calls.len() {
                return Err(Error::Execution(format!(
                    "snapshot of window {start} has {} columns, this query needs {}",
                    batch.num_columns(),
                    keys + self.calls.len()
                )));
            }
            self.starts.clear();
            self.starts.resize(batch.num_rows(), *start);
            self.table
                .intern(&self.starts, &batch.columns()[..keys], &mut self.slots)?;
            let num_slots = self.table.num_slots();
            for (call, states) in self.calls.iter_mut().zip(&batch.columns()[keys..]) {
                let states = states.as_binary_opt::<i32>().ok_or_else(|| {
                    Error::Execution(format!("snapshot state of window {start} is not binary"))
                })?;
                call.accumulator.merge(states, &self.slots, num_slots)?;
            }
        }
        self.windows_emitted = snapshot.windows_emitted;
        self.advanced_to = snapshot.advanced_to;
        Ok(())
    }

    /// Evaluates and hands to `emit` every window closed by `watermark` (`None`: every
    /// open window), oldest first, and frees its groups.
    fn emit(
        &mut self,
        watermark: Option<i64>,
        mut emit: impl FnMut(i64, RecordBatch),
    ) -> Result<()> {
        if self.sessions.is_some() {
            return self.emit_sessions(watermark, emit);
        }
        if self.panes {
            return self.emit_panes(watermark, emit);
        }
        let last_start = watermark.map(|w| self.window.last_closed_id(w));
        loop {
            let closed = match last_start {
                Some(last_start) => self.table.pop_closed(last_start),
                None => self.table.pop_oldest(),
            };
            let Some((start, groups)) = closed else {
                return Ok(());
            };
            let batch = self.evaluate_window(start, &groups);
            self.table.release(groups);
            emit(start, batch?);
            self.windows_emitted += 1;
        }
    }

    /// The result batch of a closed window.
    fn evaluate_window(&mut self, start: i64, groups: &OpenWindow) -> Result<RecordBatch> {
        // The key columns go to the key buffer (empty between batches), reused.
        let mut keys = std::mem::take(&mut self.key_values);
        keys.clear();
        let built = self.build_window(start, groups, &mut keys);
        keys.clear();
        self.key_values = keys;
        built
    }

    /// [`evaluate_window`](Self::evaluate_window), with `keys` to put the key columns in.
    fn build_window(
        &mut self,
        start: i64,
        groups: &OpenWindow,
        keys: &mut Vec<ArrayRef>,
    ) -> Result<RecordBatch> {
        let rows = groups.slots.len();
        self.table.key_columns(groups, &self.key_types, keys)?;
        let (start, end) = self.window.bounds(start);
        self.assemble(
            Bound::Same(start),
            Bound::Same(end),
            rows,
            keys,
            &groups.slots,
        )
    }

    /// The result batch of `rows` groups: window bounds, `keys` and the aggregates of
    /// `slots` (which are reset).
    fn assemble(
        &mut self,
        start: Bound<'_>,
        end: Bound<'_>,
        rows: usize,
        keys: &[ArrayRef],
        slots: &[u32],
    ) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (column, field) in self.group_columns.iter().zip(self.schema.fields()) {
            let array: ArrayRef = match (column, field.data_type()) {
                // Built in the output's type where it is a millisecond timestamp.
                (GroupColumn::WindowStart, DataType::Timestamp(TimeUnit::Millisecond, tz)) => {
                    columns.push(Arc::new(start.timestamps(rows, tz)));
                    continue;
                }
                (GroupColumn::WindowEnd, DataType::Timestamp(TimeUnit::Millisecond, tz)) => {
                    columns.push(Arc::new(end.timestamps(rows, tz)));
                    continue;
                }
                (GroupColumn::WindowStart, _) => Arc::new(start.ints(rows)),
                (GroupColumn::WindowEnd, _) => Arc::new(end.ints(rows)),
                (GroupColumn::Key(i), _) => Arc::clone(&keys[*i]),
            };
            columns.push(if array.data_type() == field.data_type() {
                array
            } else {
                cast(&array, field.data_type())?
            });
        }
        let aggregate_fields = &self.schema.fields()[self.group_columns.len()..];
        for (call, field) in self.calls.iter_mut().zip(aggregate_fields) {
            let array = call.accumulator.evaluate(slots)?;
            columns.push(if array.data_type() == field.data_type() {
                array
            } else {
                cast(&array, field.data_type())?
            });
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

impl LateRows {
    /// Keeps the source columns of `rows` (indices into `batch`).
    fn keep(&mut self, batch: &RecordBatch, rows: &[u32]) -> Result<()> {
        let columns = self.schema.fields().len();
        if batch.num_columns() < self.from + columns {
            return Err(Error::Execution(
                "internal: session rows without their source columns".into(),
            ));
        }
        let indices = arrow::array::UInt32Array::from(rows.to_vec());
        let taken = batch.columns()[self.from..self.from + columns]
            .iter()
            .map(|c| arrow::compute::take(c.as_ref(), &indices, None))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.batches
            .push(RecordBatch::try_new(Arc::clone(&self.schema), taken)?);
        Ok(())
    }
}

/// A window bound column: one value for every row, or one value a row (sessions).
enum Bound<'a> {
    Same(i64),
    Each(&'a [i64]),
}

impl Bound<'_> {
    fn values(&self, rows: usize) -> Vec<i64> {
        match self {
            Bound::Same(value) => vec![*value; rows],
            Bound::Each(values) => values.to_vec(),
        }
    }

    /// The bound as millisecond timestamps in time zone `tz`. Built from a vector, whose
    /// allocation the array takes over (Arrow's own builders allocate 64-byte aligned
    /// buffers, a slower path of the allocator for a few bytes).
    fn timestamps(&self, rows: usize, tz: &Option<Arc<str>>) -> TimestampMillisecondArray {
        let array = TimestampMillisecondArray::new(self.values(rows).into(), None);
        match tz {
            Some(_) => array.with_timezone_opt(tz.clone()),
            None => array,
        }
    }

    fn ints(&self, rows: usize) -> Int64Array {
        Int64Array::new(self.values(rows).into(), None)
    }
}

/// A snapshot batch of `rows` rows holding `columns`, named by position.
fn snapshot_batch(columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}
