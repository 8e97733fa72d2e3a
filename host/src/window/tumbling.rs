//! Tumbling windows: fixed-size, non-overlapping, half-open `[start, start + size)`.

use crate::error::{Error, Result};

/// A tumbling window assigner over event time in milliseconds.
///
/// The window of `t` is `[floor(t / size) * size, + size)`: floor, not truncation, so
/// negative times land in the window that starts at or before them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TumblingWindow {
    size_ms: i64,
}

impl TumblingWindow {
    /// A window of `size_ms` milliseconds; the size must be positive.
    pub fn new(size_ms: i64) -> Result<Self> {
        if size_ms <= 0 {
            return Err(Error::plan(format!(
                "a tumbling window must have a positive size, got {size_ms} ms"
            )));
        }
        Ok(Self { size_ms })
    }

    /// The window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The start of the window holding `t`, or `None` when the window's bounds do not fit
    /// in an `i64` (event times within `size` of `i64::MIN` / `i64::MAX`).
    #[inline]
    pub fn start_of(&self, t: i64) -> Option<i64> {
        let start = t.div_euclid(self.size_ms).checked_mul(self.size_ms)?;
        start.checked_add(self.size_ms)?;
        Some(start)
    }

    /// The (exclusive) end of the window starting at `start`.
    #[inline]
    pub fn end_of_start(&self, start: i64) -> i64 {
        start.saturating_add(self.size_ms)
    }

    /// The latest window start a watermark of `watermark` closes: a window closes once its
    /// end is at or before the watermark.
    #[inline]
    pub fn last_closed_start(&self, watermark: i64) -> i64 {
        watermark.saturating_sub(self.size_ms)
    }

    /// Whether the watermark moving from `before` to `after` closes windows that `before`
    /// left open: some window start lies in `(last_closed_start(before),
    /// last_closed_start(after)]`. When it does not, no window can close (a row of a
    /// window `before` closed is late).
    #[inline]
    pub fn closes_more(&self, before: i64, after: i64) -> bool {
        self.last_closed_start(after).div_euclid(self.size_ms)
            > self.last_closed_start(before).div_euclid(self.size_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn boundaries_are_half_open() {
        let w = TumblingWindow::new(10).unwrap();
        assert_eq!(w.start_of(0), Some(0));
        assert_eq!(w.start_of(9), Some(0));
        assert_eq!(w.start_of(10), Some(10));
        assert_eq!(w.start_of(-1), Some(-10));
        assert_eq!(w.start_of(-10), Some(-10));
        assert_eq!(w.start_of(-11), Some(-20));
        assert_eq!(w.end_of_start(-10), 0);
    }

    #[test]
    fn rejects_non_positive_sizes_and_overflow() {
        assert!(TumblingWindow::new(0).is_err());
        assert!(TumblingWindow::new(-5).is_err());
        let w = TumblingWindow::new(10).unwrap();
        assert_eq!(w.start_of(i64::MIN), None);
        assert_eq!(w.start_of(i64::MAX), None);
    }

    #[test]
    fn a_watermark_closes_more_only_across_a_window_end() {
        let w = TumblingWindow::new(10).unwrap();
        assert!(w.closes_more(9, 10));
        assert!(!w.closes_more(10, 19));
        assert!(w.closes_more(10, 20));
        assert!(!w.closes_more(20, 20));
        assert!(!w.closes_more(25, 21));
        assert!(w.closes_more(-11, -10));
        assert!(!w.closes_more(i64::MIN, i64::MIN + 5));
    }

    proptest! {
        /// Against a reference model: some window start `s` (a multiple of the size) has
        /// its end `s + size` in `(before, after]`.
        #[test]
        fn closes_more_iff_a_window_ends_in_between(
            before in -(1i64 << 40)..(1i64 << 40),
            step in 0i64..100_000,
            size in 1i64..50_000,
        ) {
            let w = TumblingWindow::new(size).unwrap();
            let after = before + step;
            let (b, a, s) = (i128::from(before), i128::from(after), i128::from(size));
            // The first window end after `before`.
            let next_end = (b.div_euclid(s) + 1) * s;
            prop_assert_eq!(w.closes_more(before, after), next_end <= a);
        }

        /// Against a reference model in 128-bit arithmetic: the window contains `t`,
        /// starts on a multiple of the size and is the only such window.
        #[test]
        fn window_contains_event(t in -(1i64 << 60)..(1i64 << 60), size in 1i64..10_000_000) {
            let w = TumblingWindow::new(size).unwrap();
            let start = w.start_of(t).unwrap();
            let t128 = i128::from(t);
            let s128 = i128::from(size);
            let model = if t128 >= 0 { t128 / s128 * s128 } else { -((-t128 + s128 - 1) / s128) * s128 };
            prop_assert_eq!(i128::from(start), model);
            prop_assert!(start <= t && t < w.end_of_start(start));
            prop_assert_eq!(start.rem_euclid(size), 0);
        }

        /// Exact boundaries: `k * size` opens window `k`, `k * size - 1` is in window `k - 1`.
        #[test]
        fn exact_boundaries(k in -1_000_000i64..1_000_000, size in 1i64..1_000_000) {
            let w = TumblingWindow::new(size).unwrap();
            prop_assert_eq!(w.start_of(k * size), Some(k * size));
            prop_assert_eq!(w.start_of(k * size - 1), Some((k - 1) * size));
        }
    }
}
