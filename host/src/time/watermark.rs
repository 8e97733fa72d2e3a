//! Watermarks: `wm = max event time seen before this event - delay`, per event, monotonic.

/// The watermark declared by a source: `WATERMARK FOR column AS column - INTERVAL delay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// The event-time column.
    pub column: String,
    /// How far behind the largest event time seen the watermark trails, in milliseconds.
    pub delay_ms: i64,
}

/// Generates the watermark of one source in arrival order.
///
/// Every event first sees the watermark produced by the events before it (that decides
/// whether it is late), then advances it. The result does not depend on how arrivals are
/// cut into batches.
#[derive(Debug, Clone)]
pub struct WatermarkGenerator {
    delay_ms: i64,
    max_event_time: Option<i64>,
}

impl WatermarkGenerator {
    /// A generator with the given delay and no events seen yet.
    pub fn new(delay_ms: i64) -> Self {
        Self {
            delay_ms,
            max_event_time: None,
        }
    }

    /// The current watermark, `None` before the first event.
    #[inline]
    pub fn current(&self) -> Option<i64> {
        self.max_event_time
            .map(|max| max.saturating_sub(self.delay_ms))
    }

    /// Whether an event in a window ending at `window_end` is late now: `window_end <= wm`.
    #[inline]
    pub fn is_late(&self, window_end: i64) -> bool {
        self.current().is_some_and(|wm| window_end <= wm)
    }

    /// Advances the watermark past an event with time `t`.
    #[inline]
    pub fn observe(&mut self, t: i64) {
        self.max_event_time = Some(self.max_event_time.map_or(t, |max| max.max(t)));
    }

    /// The largest event time seen so far.
    pub fn max_event_time(&self) -> Option<i64> {
        self.max_event_time
    }

    /// Continues from a checkpoint: as if events up to `max_event_time` had been seen.
    pub fn restore(&mut self, max_event_time: Option<i64>) {
        self.max_event_time = max_event_time;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::TumblingWindow;
    use proptest::prelude::*;

    #[test]
    fn first_event_is_never_late_and_watermark_trails_by_delay() {
        let mut wm = WatermarkGenerator::new(5);
        assert_eq!(wm.current(), None);
        assert!(!wm.is_late(i64::MIN));
        wm.observe(100);
        assert_eq!(wm.current(), Some(95));
        assert!(wm.is_late(95));
        assert!(!wm.is_late(96));
        wm.observe(50);
        assert_eq!(wm.current(), Some(95), "watermark never goes back");
    }

    /// A reference model written independently: late iff the window end of the event is at
    /// or before (max of all earlier events) - delay.
    fn model(events: &[i64], size: i64, delay: i64) -> Vec<bool> {
        let mut out = Vec::new();
        for (i, &t) in events.iter().enumerate() {
            let end = (t as f64 / size as f64).floor() as i64 * size + size;
            let late = events[..i].iter().max().is_some_and(|&m| end <= m - delay);
            out.push(late);
        }
        out
    }

    proptest! {
        #[test]
        fn lateness_matches_model(
            events in proptest::collection::vec(-100_000i64..100_000, 0..200),
            size in 1i64..5_000,
            delay in 0i64..3_000,
        ) {
            let window = TumblingWindow::new(size).unwrap();
            let mut wm = WatermarkGenerator::new(delay);
            let mut got = Vec::new();
            let mut previous = None;
            for &t in &events {
                let end = window.end_of_start(window.start_of(t).unwrap());
                got.push(wm.is_late(end));
                wm.observe(t);
                prop_assert!(previous <= wm.current(), "monotonic");
                previous = wm.current();
            }
            prop_assert_eq!(got, model(&events, size, delay));
        }
    }
}
