//! SESSION windows for the window aggregate: emitting the sessions the watermark closed,
//! and their snapshot and restore (one record per session end, with each session's start).

use super::*;

impl WindowAggregate {
    /// Emits the sessions `watermark` closed (`None`: every one), in batches of one end.
    pub(super) fn emit_sessions(
        &mut self,
        watermark: Option<i64>,
        mut emit: impl FnMut(i64, RecordBatch),
    ) -> Result<()> {
        let Some(sessions) = &mut self.sessions else {
            return Ok(());
        };
        let closed = sessions.take_closed(watermark);
        if closed.is_empty() {
            return Ok(());
        }
        // One batch for every closed session, handed out in slices of one end each.
        let keys = sessions.key_columns(&closed)?;
        let starts: Vec<i64> = closed.iter().map(|c| c.start).collect();
        let ends: Vec<i64> = closed.iter().map(|c| c.end).collect();
        let slots: Vec<u32> = closed.iter().map(|c| c.slot).collect();
        let batch = self.assemble(
            Bound::Each(&starts),
            Bound::Each(&ends),
            closed.len(),
            &keys,
            &slots,
        )?;
        if let Some(sessions) = &mut self.sessions {
            sessions.release(&slots);
        }
        let mut from = 0;
        while from < ends.len() {
            let end = ends[from];
            let to = from
                + ends[from..]
                    .iter()
                    .position(|&e| e != end)
                    .unwrap_or(ends.len() - from);
            emit(end, batch.slice(from, to - from));
            self.windows_emitted += 1;
            from = to;
        }
        Ok(())
    }

    /// The snapshot of every open session, one window a distinct end: the key columns,
    /// the state columns, then the sessions' starts.
    pub(super) fn snapshot_sessions(&mut self) -> Result<WindowSnapshot> {
        let Some(sessions) = &self.sessions else {
            return Err(Error::Execution("internal: no sessions".into()));
        };
        let all = sessions.all();
        let late_events = sessions.late_events();
        let mut windows = Vec::new();
        let mut from = 0;
        while from < all.len() {
            let end = all[from].end;
            let to = from
                + all[from..]
                    .iter()
                    .position(|c| c.end != end)
                    .unwrap_or(all.len() - from);
            let part = &all[from..to];
            let mut columns = match &self.sessions {
                Some(sessions) => sessions.key_columns(part)?,
                None => Vec::new(),
            };
            let slots: Vec<u32> = part.iter().map(|c| c.slot).collect();
            for call in &mut self.calls {
                columns.push(Arc::new(call.accumulator.state(&slots)?));
            }
            let starts = arrow::array::BinaryArray::from_iter_values(
                part.iter().map(|c| c.start.to_le_bytes()),
            );
            columns.push(Arc::new(starts));
            windows.push((end, snapshot_batch(columns, part.len())?));
            from = to;
        }
        Ok(WindowSnapshot {
            windows_emitted: self.windows_emitted,
            windows,
            late_events,
            advanced_to: self.advanced_to,
        })
    }

    /// Loads the sessions of a snapshot taken by [`snapshot_sessions`](Self::snapshot_sessions).
    pub(super) fn restore_sessions(&mut self, snapshot: &WindowSnapshot) -> Result<()> {
        let keys = self.key_types.len();
        for (end, batch) in &snapshot.windows {
            if batch.num_columns() != keys + self.calls.len() + 1 {
                return Err(Error::Execution(format!(
                    "snapshot of sessions ending at {end} has {} columns, this query needs {}",
                    batch.num_columns(),
                    keys + self.calls.len() + 1
                )));
            }
            let binary = |column: &ArrayRef| {
                column.as_binary_opt::<i32>().cloned().ok_or_else(|| {
                    Error::Execution(format!(
                        "snapshot of sessions ending at {end} is not binary"
                    ))
                })
            };
            let start_column = binary(&batch.columns()[keys + self.calls.len()])?;
            let starts = (0..start_column.len())
                .map(|i| {
                    <[u8; 8]>::try_from(start_column.value(i))
                        .map(i64::from_le_bytes)
                        .map_err(|_| {
                            Error::Execution(format!(
                                "snapshot of sessions ending at {end}: a malformed start"
                            ))
                        })
                })
                .collect::<Result<Vec<i64>>>()?;
            let states = batch.columns()[keys..keys + self.calls.len()]
                .iter()
                .map(binary)
                .collect::<Result<Vec<_>>>()?;
            let states: Vec<&arrow::array::BinaryArray> = states.iter().collect();
            let ends = vec![*end; starts.len()];
            if let Some(sessions) = &mut self.sessions {
                sessions.restore(
                    &batch.columns()[..keys],
                    &starts,
                    &ends,
                    &mut self.calls,
                    &states,
                )?;
            }
        }
        self.windows_emitted = snapshot.windows_emitted;
        Ok(())
    }
}
