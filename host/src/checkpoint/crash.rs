//! Named crash points for the crash tests. Built only with the test-only cargo feature
//! `crash-points`: `LAMINAR_CRASH_AT=name` (or `name:N`, the N-th time) aborts the process
//! at that point, as a power loss or `kill -9` would stop it; `LAMINAR_PAUSE_AT=name:N`
//! stops the process there (SIGSTOP to itself) the N-th time, as a long pause would, for
//! the scale-out tests to continue it later. Without the feature every point compiles to
//! nothing.

/// Aborts the process here when `LAMINAR_CRASH_AT` names this point (feature
/// `crash-points` only).
#[inline]
pub fn crash_point(name: &str) {
    #[cfg(feature = "crash-points")]
    armed::hit(name);
    #[cfg(not(feature = "crash-points"))]
    let _ = name;
}

/// Stops the process here (SIGSTOP to itself) when `LAMINAR_PAUSE_AT` names this point
/// (feature `crash-points` only); it goes on when sent SIGCONT.
#[inline]
pub fn pause_point(name: &str) {
    #[cfg(feature = "crash-points")]
    armed::pause(name);
    #[cfg(not(feature = "crash-points"))]
    let _ = name;
}

#[cfg(feature = "crash-points")]
mod armed {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);

    static PAUSE: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static PAUSE_HITS: AtomicU64 = AtomicU64::new(0);

    pub(super) fn pause(name: &str) {
        let target = PAUSE.get_or_init(|| spec("LAMINAR_PAUSE_AT"));
        if let Some((point, nth)) = target {
            if point == name && PAUSE_HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
                eprintln!("laminar: pause point '{name}' reached; stopping");
                let _ = signal_hook::low_level::raise(signal_hook::consts::SIGSTOP);
            }
        }
    }

    fn spec(variable: &str) -> Option<(String, u64)> {
        let spec = std::env::var(variable).ok()?;
        let (point, nth) = match spec.split_once(':') {
            Some((point, n)) => (point.to_string(), n.parse().unwrap_or(1)),
            None => (spec, 1),
        };
        Some((point, nth.max(1)))
    }

    pub(super) fn hit(name: &str) {
        let target = TARGET.get_or_init(|| spec("LAMINAR_CRASH_AT"));
        if let Some((point, nth)) = target {
            if point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
                eprintln!("laminar: crash point '{name}' reached; aborting");
                std::process::abort();
            }
        }
    }
}
