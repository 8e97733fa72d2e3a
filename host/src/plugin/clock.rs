//! The deterministic part of the sandbox: a virtual clock and a seeded random source, so a
//! plugin computes the same results from the same input in every run (what replay after a
//! crash relies on), and no call can block in the host past its deadline.
//!
//! - Both WASI clocks read one virtual time per instance. It starts at [`VIRTUAL_EPOCH_S`]
//!   on the wall clock (0 on the monotonic clock) and advances by [`TICK_NS`] at every
//!   reading, so a loop that waits for time to pass ends.
//! - Sleeping (`subscribe-duration`, `subscribe-instant` and a `poll` on them) never waits:
//!   it advances the virtual clock by the time asked for and is ready at once. A call that
//!   asks to sleep longer in total than the per-call time limit fails with the timeout
//!   error, as a busy loop does.
//! - `wasi:random` (secure and insecure) and the insecure seed come from a fixed seed.
//!
//! The module must not touch the machine's clock or entropy on behalf of a plugin.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};

use super::sandbox::HostState;

/// Where the virtual wall clock starts: 2020-01-01T00:00:00Z, in seconds since the epoch.
pub(crate) const VIRTUAL_EPOCH_S: u64 = 1_577_836_800;

/// How far the virtual clock advances at each reading, in nanoseconds.
pub(crate) const TICK_NS: u64 = 1_000;

/// The seed of every instance's random source.
pub(crate) const RANDOM_SEED: u64 = 0x6c61_6d69_6e61_7221;

/// The WASI clock interface whose sleeping functions are replaced (the version
/// `wasmtime-wasi` defines; guests built against any 0.2.x version link to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// One instance's virtual time in nanoseconds, shared by its two clocks.
#[derive(Debug, Clone, Default)]
pub(crate) struct VirtualClock {
    nanos: Arc<AtomicU64>,
}

impl VirtualClock {
    /// The time now, then one tick later.
    fn read(&self) -> u64 {
        self.nanos.fetch_add(TICK_NS, Ordering::Relaxed)
    }

    /// The time now, without advancing.
    fn peek(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }

    fn advance(&self, nanos: u64) {
        self.nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl HostMonotonicClock for VirtualClock {
    fn resolution(&self) -> u64 {
        TICK_NS
    }

    fn now(&self) -> u64 {
        self.read()
    }
}

impl HostWallClock for VirtualClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(TICK_NS)
    }

    fn now(&self) -> Duration {
        Duration::from_secs(VIRTUAL_EPOCH_S) + Duration::from_nanos(self.read())
    }
}

/// How long the plugin has slept during the current call, against the call's limit.
#[derive(Debug, Default)]
pub(crate) struct SleepBudget {
    /// Nanoseconds slept since the call began.
    pub(crate) slept_ns: u64,
    /// Set when a sleep would have run past the call's time limit.
    pub(crate) exceeded: bool,
}

impl SleepBudget {
    /// Starts a new call.
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }
}

/// A seeded pseudo-random generator (SplitMix64): the same numbers in every run.
#[derive(Debug, Clone)]
pub(crate) struct SeededRandom {
    state: u64,
}

impl SeededRandom {
    /// A generator starting from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }
}

impl rand_core::TryRng for SeededRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// Replaces the monotonic clock's sleeping functions in `linker` (which already holds
/// `wasmtime-wasi`'s) by virtual ones that never block.
pub(crate) fn add_virtual_sleep(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| sleep(store, nanos),
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let now = store.data().clock.peek();
            sleep(store, when.saturating_sub(now))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Sleeps `nanos` on the virtual clock: advances it and returns a pollable that is ready,
/// or traps when the call would sleep past its time limit.
fn sleep(
    mut store: StoreContextMut<'_, HostState>,
    nanos: u64,
) -> wasmtime::Result<(Resource<DynPollable>,)> {
    let state = store.data_mut();
    let limit_ns = state.call_timeout_ms.saturating_mul(1_000_000);
    state.sleep.slept_ns = state.sleep.slept_ns.saturating_add(nanos);
    if state.sleep.slept_ns > limit_ns {
        state.sleep.exceeded = true;
        return Err(wasmtime::format_err!(
            "the plugin asked to sleep past the time limit of its call"
        ));
    }
    state.clock.advance(nanos);
    let ready = state.table().push(Ready)?;
    Ok((subscribe(state.table(), ready)?,))
}

/// A pollable that is always ready: the end of a virtual sleep.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::TryRng;

    #[test]
    fn the_random_source_repeats_from_its_seed() {
        let (mut a, mut b) = (SeededRandom::new(7), SeededRandom::new(7));
        let (mut x, mut y) = ([0u8; 13], [0u8; 13]);
        a.try_fill_bytes(&mut x).unwrap();
        b.try_fill_bytes(&mut y).unwrap();
        assert_eq!(x, y);
        assert_ne!(x, [0u8; 13]);
        assert_ne!(
            a.try_next_u64().unwrap(),
            SeededRandom::new(8).try_next_u64().unwrap()
        );
    }

    #[test]
    fn the_virtual_clock_ticks_at_each_reading() {
        let clock = VirtualClock::default();
        assert_eq!(HostMonotonicClock::now(&clock), 0);
        assert_eq!(HostMonotonicClock::now(&clock), TICK_NS);
        clock.advance(5_000);
        let wall = HostWallClock::now(&clock);
        assert_eq!(
            wall,
            Duration::from_secs(VIRTUAL_EPOCH_S) + Duration::from_nanos(7_000)
        );
    }
}
