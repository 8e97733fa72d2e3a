//! Event time per source partition (ARCHITECTURE §4.2, design/kafka.md): each partition
//! has its own watermark generator (max event time of its earlier rows − delay), a row is
//! late iff its window end is at or before *its own partition's* watermark, and windows
//! close on the combined watermark, the minimum over the partitions that are not idle.
//!
//! Why the output's content does not depend on how partitions interleave: lateness uses
//! only the row's own partition's earlier rows, and the combined watermark is at or below
//! every partition's, so a row that is on time never meets a window already closed. Only
//! when windows are emitted depends on the interleaving.
//!
//! It owns no rows and no windows: the event-time stage asks it for the generator of a
//! batch's partition and for the combined watermark.

use std::collections::BTreeMap;

use rkyv::{Archive, Deserialize, Serialize};

use super::WatermarkGenerator;

/// One partition's event-time state, as a checkpoint records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PartitionTime {
    /// The partition.
    pub partition: i32,
    /// The largest event time of its rows so far.
    pub max_event_time: Option<i64>,
    /// Whether it was idle.
    pub idle: bool,
}

#[derive(Debug, Clone)]
struct Clock {
    generator: WatermarkGenerator,
    idle: bool,
}

/// The watermarks of every partition of one source.
#[derive(Debug, Clone)]
pub struct PartitionWatermarks {
    delay_ms: i64,
    clocks: BTreeMap<i32, Clock>,
}

impl PartitionWatermarks {
    /// Watermarks for `partitions`, none seen yet, trailing by `delay_ms`. A partition
    /// without rows holds the combined watermark back (`None`) until it has rows or is
    /// idle.
    pub fn new(delay_ms: i64, partitions: impl IntoIterator<Item = i32>) -> Self {
        Self {
            delay_ms,
            clocks: partitions
                .into_iter()
                .map(|p| {
                    (
                        p,
                        Clock {
                            generator: WatermarkGenerator::new(delay_ms),
                            idle: false,
                        },
                    )
                })
                .collect(),
        }
    }

    /// The partitions, ascending.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.clocks.keys().copied()
    }

    /// The generator of `partition` (added if new, as a partition created while running):
    /// the stage classifies a batch of that partition with it, exactly as it classifies a
    /// single-partition source with its one generator. A row arriving on an idle
    /// partition wakes it ([`set_idle`](Self::set_idle)`(p, false)`).
    pub fn generator_mut(&mut self, partition: i32) -> &mut WatermarkGenerator {
        if self.clocks.get(&partition).is_some_and(|c| c.idle) {
            self.set_idle(partition, false);
        }
        let delay = self.delay_ms;
        &mut self
            .clocks
            .entry(partition)
            .or_insert_with(|| Clock {
                generator: WatermarkGenerator::new(delay),
                idle: false,
            })
            .generator
    }

    /// The watermark of `partition` after its rows so far (`None` before its first).
    pub fn watermark(&self, partition: i32) -> Option<i64> {
        self.clocks
            .get(&partition)
            .and_then(|c| c.generator.current())
    }

    /// Whether a row of `partition` in a window ending at `window_end` is late now.
    pub fn is_late(&self, partition: i32, window_end: i64) -> bool {
        self.clocks
            .get(&partition)
            .is_some_and(|c| c.generator.is_late(window_end))
    }

    /// Advances `partition`'s watermark past a row with event time `t`.
    pub fn observe(&mut self, partition: i32, t: i64) {
        self.generator_mut(partition).observe(t);
    }

    /// The watermark windows close on: the minimum over partitions that are not idle;
    /// `None` while one of them has no rows yet. When every partition is idle, the
    /// largest of their watermarks (nothing holds the time back).
    pub fn combined(&self) -> Option<i64> {
        let mut active = self.clocks.values().filter(|c| !c.idle).peekable();
        if active.peek().is_none() {
            return self
                .clocks
                .values()
                .filter_map(|c| c.generator.current())
                .max();
        }
        let mut min: Option<i64> = None;
        for clock in active {
            let wm = clock.generator.current()?;
            min = Some(min.map_or(wm, |m| m.min(wm)));
        }
        min
    }

    /// Marks `partition` idle (left out of [`combined`](Self::combined)) or active.
    /// Waking up, its watermark is raised to the combined one, so that the minimum never
    /// goes back (its rows may then be late: the documented non-determinism of
    /// idleness).
    pub fn set_idle(&mut self, partition: i32, idle: bool) {
        let combined = if idle { None } else { self.combined() };
        let delay = self.delay_ms;
        if let Some(clock) = self.clocks.get_mut(&partition) {
            if clock.idle && !idle {
                if let Some(wm) = combined {
                    let raised = wm.saturating_add(delay);
                    if clock.generator.max_event_time().is_none_or(|m| m < raised) {
                        clock.generator.restore(Some(raised));
                    }
                }
            }
            clock.idle = idle;
        }
    }

    /// Whether `partition` is idle.
    pub fn is_idle(&self, partition: i32) -> bool {
        self.clocks.get(&partition).is_some_and(|c| c.idle)
    }

    /// Every partition's state, ascending, for a checkpoint.
    pub fn snapshot(&self) -> Vec<PartitionTime> {
        self.clocks
            .iter()
            .map(|(&partition, c)| PartitionTime {
                partition,
                max_event_time: c.generator.max_event_time(),
                idle: c.idle,
            })
            .collect()
    }

    /// Continues from a checkpoint's [`snapshot`](Self::snapshot).
    pub fn restore(&mut self, snapshot: &[PartitionTime]) {
        for time in snapshot {
            let delay = self.delay_ms;
            let clock = self.clocks.entry(time.partition).or_insert_with(|| Clock {
                generator: WatermarkGenerator::new(delay),
                idle: false,
            });
            clock.generator.restore(time.max_event_time);
            clock.idle = time.idle;
        }
    }
}

#[cfg(test)]
#[path = "partitions_tests.rs"]
mod tests;
