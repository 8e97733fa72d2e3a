//! The setting of the hostile-plugin tests: tight sandbox limits and a small engine over
//! generated bids, so each hostile case ends quickly.

use laminar::gen::BidsConfig;
use laminar::plugin::{LoadOptions, SandboxLimits};
use laminar::{Engine, EngineConfig};

use crate::{engine_over, plugin_cache_dir, Bids};

/// Plugin options with the shared cache and tight limits: 32 MiB of memory and 300 ms per
/// call.
pub fn tight_plugin_options() -> LoadOptions {
    LoadOptions {
        cache_dir: Some(plugin_cache_dir()),
        limits: SandboxLimits {
            memory_bytes: 32 << 20,
            call_timeout_ms: 300,
        },
        ..LoadOptions::default()
    }
}

/// 3 000 generated bids over 5 auctions, in batches of 512, from `seed`.
pub fn small_bids(seed: u64) -> Bids {
    Bids::generate(
        &BidsConfig {
            rows: 3_000,
            seed,
            auctions: 5,
            ..BidsConfig::default()
        },
        512,
    )
}

/// An engine with `plugins` over `bids` as source `bids` (batches of 512, 2 s delay).
pub fn small_engine(bids: &Bids, plugins: LoadOptions) -> Engine {
    let mut engine = Engine::with_config(EngineConfig {
        batch_size: 512,
        plugins,
        ..EngineConfig::default()
    });
    engine_over(&mut engine, &bids.batches, 2_000);
    engine
}
