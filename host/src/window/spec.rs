//! The window kinds a query can group by, and the arithmetic every stage needs from them:
//! which *pane* a row falls into (the unit of lateness), which windows hold it, when a
//! window closes and how windows are identified in the aggregate's state.
//!
//! ```text
//!  TUMBLE(size)          [k·size, +size)                 pane = the window
//!  HOP(slide, size)      [k·slide, k·slide + size)        pane = the slide holding t
//!  CUMULATE(step, max)   [b, b + j·step), b = ⌊t/max⌋·max  pane = the step holding t
//!  SESSION(gap)          [t, t + gap), merged per key     pane = t (decided by the operator)
//! ```
//! A fixed-grid window (all but SESSION) is identified by its start, except CUMULATE,
//! whose windows share a start and are identified by their end. Ends are unique either way.

use super::TumblingWindow;
use crate::error::{Error, Result};

/// One window kind with its sizes, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// Fixed, non-overlapping windows.
    Tumble {
        /// Window size.
        size: i64,
    },
    /// Sliding windows: one starts every `slide`, each `size` long (a multiple of `slide`).
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window size.
        size: i64,
    },
    /// Growing windows from `⌊t/max⌋·max`, one every `step`, the last `max` long.
    Cumulate {
        /// Growth of each window over the previous one.
        step: i64,
        /// Size of the largest window (a multiple of `step`).
        max: i64,
    },
    /// Per-key sessions: rows closer than `gap` share a session.
    Session {
        /// Inactivity gap.
        gap: i64,
    },
}

impl WindowSpec {
    /// A tumbling window of `size` ms.
    pub fn tumble(size: i64) -> Result<Self> {
        positive("TUMBLE", "size", size)?;
        Ok(Self::Tumble { size })
    }

    /// A hopping window: `slide` and `size` ms, the size a positive multiple of the slide.
    pub fn hop(slide: i64, size: i64) -> Result<Self> {
        positive("HOP", "slide", slide)?;
        positive("HOP", "size", size)?;
        if size % slide != 0 {
            return Err(Error::unsupported(
                format!("HOP with a size of {size} ms that is not a multiple of its slide of {slide} ms"),
                "write a size that is a whole number of slides, e.g. HOP(ts, INTERVAL '1' SECOND, INTERVAL '10' SECOND)",
            ));
        }
        Ok(Self::Hop { slide, size })
    }

    /// A cumulating window: `step` and `max` ms, the max a positive multiple of the step.
    pub fn cumulate(step: i64, max: i64) -> Result<Self> {
        positive("CUMULATE", "step", step)?;
        positive("CUMULATE", "max size", max)?;
        if max % step != 0 {
            return Err(Error::unsupported(
                format!("CUMULATE with a max size of {max} ms that is not a multiple of its step of {step} ms"),
                "write a max size that is a whole number of steps, e.g. CUMULATE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' HOUR)",
            ));
        }
        Ok(Self::Cumulate { step, max })
    }

    /// A session window with an inactivity `gap` of ms.
    pub fn session(gap: i64) -> Result<Self> {
        positive("SESSION", "gap", gap)?;
        Ok(Self::Session { gap })
    }

    /// The SQL name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tumble { .. } => "TUMBLE",
            Self::Hop { .. } => "HOP",
            Self::Cumulate { .. } => "CUMULATE",
            Self::Session { .. } => "SESSION",
        }
    }

    /// Whether this is a session window (merged per key by the operator).
    pub fn is_session(&self) -> bool {
        matches!(self, Self::Session { .. })
    }

    /// The grid panes are cut on: every window end of a fixed-grid kind is a multiple of
    /// it (`None` for sessions).
    fn grid(&self) -> Option<TumblingWindow> {
        let size = match *self {
            Self::Tumble { size } => size,
            Self::Hop { slide, .. } => slide,
            Self::Cumulate { step, .. } => step,
            Self::Session { .. } => return None,
        };
        TumblingWindow::new(size).ok()
    }

    /// The pane of event time `t` (`None` where the bounds of its windows do not fit in
    /// an `i64`): the window start for TUMBLE, the slide or step holding `t` for HOP and
    /// CUMULATE, `t` itself for SESSION.
    #[inline]
    pub fn pane_of(&self, t: i64) -> Option<i64> {
        match *self {
            Self::Tumble { size } => {
                let start = t.div_euclid(size).checked_mul(size)?;
                start.checked_add(size)?;
                Some(start)
            }
            Self::Hop { slide, size } => {
                let pane = t.div_euclid(slide).checked_mul(slide)?;
                pane.checked_sub(size)?;
                pane.checked_add(size)?;
                Some(pane)
            }
            Self::Cumulate { step, max } => {
                let pane = t.div_euclid(step).checked_mul(step)?;
                t.div_euclid(max).checked_mul(max)?.checked_add(max)?;
                Some(pane)
            }
            Self::Session { gap } => {
                t.checked_add(gap)?;
                Some(t)
            }
        }
    }

    /// The width of a pane on the grid (`None` for sessions): a row whose time lies in
    /// `[pane, pane + width)` has the same pane.
    #[inline]
    pub fn pane_width(&self) -> Option<i64> {
        self.grid().map(|g| g.size_ms())
    }

    /// The end of the last window holding the rows of `pane`: such a row is late once the
    /// watermark reaches it. `i64::MAX` for sessions, whose lateness the operator decides.
    #[inline]
    pub fn last_end(&self, pane: i64) -> i64 {
        match *self {
            Self::Tumble { size } | Self::Hop { size, .. } => pane.saturating_add(size),
            Self::Cumulate { max, .. } => {
                pane.div_euclid(max).saturating_mul(max).saturating_add(max)
            }
            Self::Session { .. } => i64::MAX,
        }
    }

    /// Appends to `out` the `(start, end)` of every window holding a row of time `t` in
    /// pane `pane` whose end is after `watermark` (`None`: every one), oldest first.
    /// Sessions have no fixed windows: nothing is appended.
    pub fn open_windows(
        &self,
        t: i64,
        pane: i64,
        watermark: Option<i64>,
        out: &mut Vec<(i64, i64)>,
    ) {
        let open = |end: i64| watermark.is_none_or(|wm| end > wm);
        match *self {
            Self::Tumble { size } => {
                if open(pane + size) {
                    out.push((pane, pane + size));
                }
            }
            Self::Hop { slide, size } => {
                let mut start = pane - (size - slide);
                while start <= pane {
                    if open(start + size) {
                        out.push((start, start + size));
                    }
                    start += slide;
                }
            }
            Self::Cumulate { step, max } => {
                let base = t.div_euclid(max) * max;
                let mut end = pane + step;
                while end <= base + max {
                    if open(end) {
                        out.push((base, end));
                    }
                    end += step;
                }
            }
            Self::Session { .. } => {}
        }
    }

    /// The id a fixed-grid window is kept under: its start, or its end for CUMULATE.
    #[inline]
    pub fn id_of(&self, start: i64, end: i64) -> i64 {
        match self {
            Self::Cumulate { .. } | Self::Session { .. } => end,
            _ => start,
        }
    }

    /// Whether the window id is computed from the end column (else from the start).
    pub fn id_is_end(&self) -> bool {
        matches!(self, Self::Cumulate { .. } | Self::Session { .. })
    }

    /// The id of a window whose start (or, when [`id_is_end`](Self::id_is_end), end)
    /// column holds `value`; `from_end`: `value` is the end column instead.
    #[inline]
    pub fn id_from(&self, value: i64, from_end: bool) -> i64 {
        match (self, from_end) {
            (Self::Tumble { size } | Self::Hop { size, .. }, true) => value - size,
            _ => value,
        }
    }

    /// `(start, end)` of the fixed-grid window with id `id`.
    #[inline]
    pub fn bounds(&self, id: i64) -> (i64, i64) {
        match *self {
            Self::Tumble { size } | Self::Hop { size, .. } => (id, id.saturating_add(size)),
            Self::Cumulate { max, .. } => ((id - 1).div_euclid(max) * max, id),
            Self::Session { .. } => (id, id),
        }
    }

    /// The largest window id a watermark of `watermark` closes (a window closes once its
    /// end is at or before the watermark).
    #[inline]
    pub fn last_closed_id(&self, watermark: i64) -> i64 {
        match *self {
            Self::Tumble { size } | Self::Hop { size, .. } => watermark.saturating_sub(size),
            Self::Cumulate { .. } | Self::Session { .. } => watermark,
        }
    }

    /// Whether the watermark moving from `before` to `after` may close a window `before`
    /// left open: some window end lies in `(before, after]` (for sessions: the watermark
    /// moved at all).
    #[inline]
    pub fn closes_more(&self, before: i64, after: i64) -> bool {
        match self.grid() {
            // Every window end is a multiple of the grid.
            Some(grid) => grid.closes_more(before, after),
            None => after > before,
        }
    }
}

fn positive(kind: &str, what: &str, value: i64) -> Result<()> {
    if value <= 0 {
        return Err(Error::plan(format!(
            "{kind} needs a positive {what}, got {value} ms"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn windows(spec: WindowSpec, t: i64, wm: Option<i64>) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        spec.open_windows(t, spec.pane_of(t).unwrap(), wm, &mut out);
        out
    }

    #[test]
    fn hop_windows_of_a_row_and_the_closed_ones_left_out() {
        let hop = WindowSpec::hop(2, 6).unwrap();
        assert_eq!(windows(hop, 5, None), vec![(0, 6), (2, 8), (4, 10)]);
        assert_eq!(windows(hop, 5, Some(6)), vec![(2, 8), (4, 10)]);
        assert_eq!(windows(hop, -1, None), vec![(-6, 0), (-4, 2), (-2, 4)]);
        assert_eq!(hop.last_end(hop.pane_of(5).unwrap()), 10);
        assert!(WindowSpec::hop(4, 6).is_err());
        assert!(WindowSpec::hop(0, 6).is_err());
    }

    #[test]
    fn cumulate_windows_share_their_start() {
        let c = WindowSpec::cumulate(2, 6).unwrap();
        assert_eq!(windows(c, 3, None), vec![(0, 4), (0, 6)]);
        assert_eq!(windows(c, 6, None), vec![(6, 8), (6, 10), (6, 12)]);
        assert_eq!(windows(c, 3, Some(4)), vec![(0, 6)]);
        assert_eq!(c.last_end(c.pane_of(3).unwrap()), 6);
        assert_eq!(c.bounds(c.id_of(0, 4)), (0, 4));
        assert_eq!(c.bounds(12), (6, 12));
    }

    proptest! {
        /// Against a brute-force model: every window of the kind that holds `t` and is
        /// open at `wm`, and the row's last end is the largest end among them.
        #[test]
        fn open_windows_match_a_brute_force_model(
            t in -10_000i64..10_000,
            wm in proptest::option::of(-12_000i64..12_000),
            unit in 1i64..50,
            n in 1i64..6,
            hop in any::<bool>(),
        ) {
            let spec = if hop { WindowSpec::hop(unit, unit * n) } else { WindowSpec::cumulate(unit, unit * n) }.unwrap();
            let mut model = Vec::new();
            let around = t.div_euclid(unit);
            for k in (around - 2 * n - 2)..=(around + 2) {
                let candidates: Vec<(i64, i64)> = if hop {
                    vec![(k * unit, k * unit + unit * n)]
                } else {
                    // Every k is tried as a HOP slide index; as a CUMULATE base only
                    // multiples of n.
                    if k.rem_euclid(n) != 0 {
                        continue;
                    }
                    (1..=n).map(|j| (k * unit, k * unit + j * unit)).collect()
                };
                for (s, e) in candidates {
                    if s <= t && t < e && wm.is_none_or(|wm| e > wm) {
                        model.push((s, e));
                    }
                }
            }
            model.sort_by_key(|&(s, e)| (s, e));
            let got = windows(spec, t, wm);
            prop_assert_eq!(&got, &model);
            let all = windows(spec, t, None);
            prop_assert_eq!(all.iter().map(|w| w.1).max().unwrap(), spec.last_end(spec.pane_of(t).unwrap()));
            for (s, e) in all {
                prop_assert_eq!(spec.bounds(spec.id_of(s, e)), (s, e));
            }
        }

        /// Some window end lies in (before, after] iff `closes_more`.
        #[test]
        fn closes_more_iff_an_end_lies_between(before in -5_000i64..5_000, step in 0i64..500, unit in 1i64..40, n in 1i64..5) {
            let after = before + step;
            for spec in [WindowSpec::hop(unit, unit * n).unwrap(), WindowSpec::cumulate(unit, unit * n).unwrap(), WindowSpec::tumble(unit).unwrap()] {
                let model = ((before + 1)..=after).any(|e| e.rem_euclid(unit) == 0);
                prop_assert_eq!(spec.closes_more(before, after), model);
            }
        }
    }
}
