//! The event-time tumbling-window aggregate: per (window, key) state, emitted once when
//! the watermark passes the window's end.
//!
//! ```text
//!  batch ─▶ window start per row ─┐
//!        ─▶ key columns ──────────┴▶ GroupTable::intern ─▶ slot per row
//!        ─▶ argument columns ───────────────────────────▶ accumulator.update(args, slots)
//!  watermark wm ─▶ windows with end <= wm ─▶ evaluate(slots) ─▶ one batch per window
//! ```
//! Rows reaching this operator are never late (the event-time stage dropped and counted
//! those), so every row lands in a window that is still open.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_physical_expr::PhysicalExpr;

use super::execution_error;
use super::group_table::{GroupTable, OpenWindow};
use crate::aggregate::GroupAccumulator;
use crate::error::{Error, Result};
use crate::window::TumblingWindow;

/// What one GROUP BY output column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupColumn {
    /// The window's start.
    WindowStart,
    /// The window's (exclusive) end.
    WindowEnd,
    /// The n-th key expression.
    Key(usize),
}

/// One aggregate function call: its argument expressions and its accumulator.
#[derive(Debug)]
pub struct AggregateCall {
    /// Argument expressions, evaluated over the input batch.
    pub args: Vec<Arc<dyn PhysicalExpr>>,
    /// The state of every group.
    pub accumulator: Box<dyn GroupAccumulator>,
}

/// The open state of a [`WindowAggregate`], as a checkpoint stores it.
#[derive(Debug, Clone)]
pub struct WindowSnapshot {
    /// Windows emitted before the snapshot.
    pub windows_emitted: u64,
    /// Every open window, oldest first: its start (epoch ms) and its groups, one row each:
    /// the key columns, then one binary state column per aggregate call.
    pub windows: Vec<(i64, RecordBatch)>,
}

/// Tumbling-window GROUP BY with watermark-driven, exactly-once emission.
#[derive(Debug)]
pub struct WindowAggregate {
    // PROPERTIES
    window: TumblingWindow,
    /// Evaluates to the window start (or end, see `window_expr_is_end`) of each row.
    window_expr: Arc<dyn PhysicalExpr>,
    window_expr_is_end: bool,
    group_columns: Vec<GroupColumn>,
    key_exprs: Vec<Arc<dyn PhysicalExpr>>,
    key_types: Vec<DataType>,
    schema: SchemaRef,
    // STATES
    calls: Vec<AggregateCall>,
    table: GroupTable,
    windows_emitted: u64,
    starts: Vec<i64>,
    slots: Vec<u32>,
}

impl WindowAggregate {
    /// Builds the operator. `schema` is the output: the group columns, then one column per
    /// aggregate call, in order.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        window: TumblingWindow,
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
        Ok(Self {
            window,
            window_expr,
            window_expr_is_end,
            group_columns,
            key_exprs,
            table: GroupTable::new(&key_types)?,
            key_types,
            schema,
            calls,
            windows_emitted: 0,
            starts: Vec::new(),
            slots: Vec::new(),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Windows emitted so far.
    pub fn windows_emitted(&self) -> u64 {
        self.windows_emitted
    }

    /// Groups held in open windows.
    pub fn open_groups(&self) -> usize {
        self.table.open_groups()
    }

    /// The GROUP BY key expressions (the window bounds aside), in order: what the reactor
    /// routes rows by before [`update_keyed`](Self::update_keyed).
    pub fn key_exprs(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.key_exprs
    }

    /// Adds a batch of (non-late) rows to their windows.
    pub fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let keys = self
            .key_exprs
            .iter()
            .map(|e| evaluate(e, batch))
            .collect::<Result<Vec<_>>>()?;
        self.update_keyed(batch, &keys)
    }

    /// Adds a batch of (non-late) rows whose key expressions are already evaluated: `keys`
    /// holds one array per [`key_exprs`](Self::key_exprs) entry, one value per row.
    pub fn update_keyed(&mut self, batch: &RecordBatch, keys: &[ArrayRef]) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        if keys.len() != self.key_exprs.len() || keys.iter().any(|k| k.len() != rows) {
            return Err(Error::Execution(
                "internal: key columns do not match the batch".into(),
            ));
        }
        let window_values = evaluate(&self.window_expr, batch)?;
        if window_values.null_count() > 0 {
            return Err(Error::Execution("window column is NULL".into()));
        }
        let offset = if self.window_expr_is_end {
            self.window.size_ms()
        } else {
            0
        };
        self.starts.clear();
        // The window columns are millisecond timestamps: read their values as they are.
        match window_values.data_type() {
            DataType::Timestamp(TimeUnit::Millisecond, _) => self.starts.extend(
                window_values
                    .as_primitive::<TimestampMillisecondType>()
                    .values()
                    .iter()
                    .map(|&v| v - offset),
            ),
            _ => {
                let values = cast(&window_values, &DataType::Int64)?;
                self.starts.extend(
                    values
                        .as_primitive::<Int64Type>()
                        .values()
                        .iter()
                        .map(|&v| v - offset),
                );
            }
        }
        self.table.intern(&self.starts, keys, &mut self.slots)?;
        let num_slots = self.table.num_slots();
        for call in &mut self.calls {
            let args = call
                .args
                .iter()
                .map(|e| evaluate(e, batch))
                .collect::<Result<Vec<_>>>()?;
            call.accumulator.update(&args, &self.slots, num_slots)?;
        }
        Ok(())
    }

    /// Emits every window whose end is at or before `watermark`, oldest first.
    pub fn advance(&mut self, watermark: i64) -> Result<Vec<RecordBatch>> {
        Ok(self
            .advance_windows(watermark)?
            .into_iter()
            .map(|(_, b)| b)
            .collect())
    }

    /// [`advance`](Self::advance), with each window's start beside its rows.
    pub fn advance_windows(&mut self, watermark: i64) -> Result<Vec<(i64, RecordBatch)>> {
        let last_start = watermark.saturating_sub(self.window.size_ms());
        let closed = self.table.close_through(last_start);
        self.emit(closed)
    }

    /// Emits every open window (end of bounded input).
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        Ok(self.finish_windows()?.into_iter().map(|(_, b)| b).collect())
    }

    /// [`finish`](Self::finish), with each window's start beside its rows.
    pub fn finish_windows(&mut self) -> Result<Vec<(i64, RecordBatch)>> {
        let closed = self.table.close_all();
        self.emit(closed)
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
        let mut windows = Vec::new();
        for (start, groups) in self.table.open_windows() {
            let mut columns = self.table.key_columns(groups, &self.key_types)?;
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
        Ok(())
    }

    fn emit(&mut self, closed: Vec<(i64, OpenWindow)>) -> Result<Vec<(i64, RecordBatch)>> {
        let mut out = Vec::with_capacity(closed.len());
        for (start, groups) in closed {
            let batch = self.evaluate_window(start, &groups);
            self.table.release(&groups);
            out.push((start, batch?));
            self.windows_emitted += 1;
        }
        Ok(out)
    }

    fn evaluate_window(&mut self, start: i64, groups: &OpenWindow) -> Result<RecordBatch> {
        let rows = groups.slots.len();
        let keys = self.table.key_columns(groups, &self.key_types)?;
        let end = self.window.end_of_start(start);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (column, field) in self.group_columns.iter().zip(self.schema.fields()) {
            let array: ArrayRef = match (column, field.data_type()) {
                // Built in the output's type where it is a millisecond timestamp.
                (GroupColumn::WindowStart, DataType::Timestamp(TimeUnit::Millisecond, tz)) => {
                    Arc::new(
                        TimestampMillisecondArray::from_value(start, rows)
                            .with_timezone_opt(tz.clone()),
                    )
                }
                (GroupColumn::WindowEnd, DataType::Timestamp(TimeUnit::Millisecond, tz)) => {
                    Arc::new(
                        TimestampMillisecondArray::from_value(end, rows)
                            .with_timezone_opt(tz.clone()),
                    )
                }
                (GroupColumn::WindowStart, _) => Arc::new(Int64Array::from_value(start, rows)),
                (GroupColumn::WindowEnd, _) => Arc::new(Int64Array::from_value(end, rows)),
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
            let array = call.accumulator.evaluate(&groups.slots)?;
            columns.push(if array.data_type() == field.data_type() {
                array
            } else {
                cast(&array, field.data_type())?
            });
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// Evaluates `expr` over every row of `batch`.
fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    expr.evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(execution_error)
}
