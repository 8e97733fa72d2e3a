//! HOP and CUMULATE by panes, for the window aggregate: each row was added once to the
//! pane (slide or step) holding it; a window is emitted as the merge of its panes' groups
//! when the watermark closes it, and a pane is freed once its last window has closed.

use super::*;

impl WindowAggregate {
    /// Emits every window that `watermark` closes (`None`: every window holding an open
    /// pane), in end order, each the merge of its panes' groups; frees the panes whose
    /// last window has closed.
    pub(super) fn emit_panes(
        &mut self,
        watermark: Option<i64>,
        mut emit: impl FnMut(i64, RecordBatch),
    ) -> Result<()> {
        let Some(grid) = self.window.pane_width() else {
            return Ok(());
        };
        loop {
            let Some(oldest) = self.table.open_windows().next().map(|(id, _)| id) else {
                break;
            };
            // The first window end not emitted yet: past the watermark already reached,
            // and no earlier than the first window of the oldest pane.
            let mut end = oldest.saturating_add(grid);
            if let Some(done) = self.advanced_to {
                end = end.max(done.div_euclid(grid).saturating_add(1).saturating_mul(grid));
            }
            if watermark.is_some_and(|wm| end > wm) {
                break;
            }
            let (start, id) = match self.window {
                WindowSpec::Hop { size, .. } => (end - size, end - size),
                WindowSpec::Cumulate { max, .. } => ((end - 1).div_euclid(max) * max, end),
                _ => return Ok(()),
            };
            if let Some(batch) = self.merge_panes(start, end)? {
                emit(id, batch);
                self.windows_emitted += 1;
            }
            self.advanced_to = Some(self.advanced_to.map_or(end, |done| done.max(end)));
            // Panes whose last window has now closed.
            loop {
                let oldest = self.table.open_windows().next().map(|(pane, _)| pane);
                if oldest.is_none_or(|pane| self.window.last_end(pane) > end) {
                    break;
                }
                let Some((_, groups)) = self.table.pop_oldest() else {
                    break;
                };
                for call in &mut self.calls {
                    // Resets the slots, which are free again.
                    call.accumulator.evaluate(&groups.slots)?;
                }
                self.table.release(groups);
            }
        }
        if let Some(wm) = watermark {
            self.advanced_to = Some(self.advanced_to.map_or(wm, |done| done.max(wm)));
        }
        Ok(())
    }

    /// The result batch of the window `[start, end)`: the groups of its panes merged
    /// (`None` when no pane of it is open).
    fn merge_panes(&mut self, start: i64, end: i64) -> Result<Option<RecordBatch>> {
        let mut panes: Vec<(Vec<u32>, Vec<ArrayRef>)> = Vec::new();
        for (pane, groups) in self.table.open_windows() {
            if pane >= end {
                break;
            }
            if pane < start {
                continue;
            }
            let mut keys = Vec::new();
            self.table.key_columns(groups, &self.key_types, &mut keys)?;
            panes.push((groups.slots.clone(), keys));
        }
        if panes.is_empty() {
            return Ok(None);
        }
        // The window's groups go to a window of their own, before every pane.
        const MERGED: i64 = i64::MIN;
        let mut targets = Vec::with_capacity(panes.len());
        for (slots, keys) in &panes {
            let mut out = Vec::new();
            self.table
                .intern(&vec![MERGED; slots.len()], keys, &mut out)?;
            targets.push(out);
        }
        let num_slots = self.table.num_slots();
        for call in &mut self.calls {
            for ((slots, _), out) in panes.iter().zip(&targets) {
                // In memory where the accumulator can; through its state bytes where not
                // (a Wasm aggregate merges what its `state` export wrote).
                if !call.accumulator.merge_slots(slots, out, num_slots)? {
                    let states = call.accumulator.state(slots)?;
                    call.accumulator.merge(&states, out, num_slots)?;
                }
            }
        }
        let Some((MERGED, groups)) = self.table.pop_oldest() else {
            return Err(Error::Execution(
                "internal: the merged window is not the oldest".into(),
            ));
        };
        let mut keys = std::mem::take(&mut self.key_values);
        keys.clear();
        let built = self
            .table
            .key_columns(&groups, &self.key_types, &mut keys)
            .and_then(|()| {
                self.assemble(
                    Bound::Same(start),
                    Bound::Same(end),
                    groups.slots.len(),
                    &keys,
                    &groups.slots,
                )
            });
        keys.clear();
        self.key_values = keys;
        self.table.release(groups);
        built.map(Some)
    }
}
