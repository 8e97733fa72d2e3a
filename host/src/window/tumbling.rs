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

    proptest! {
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
