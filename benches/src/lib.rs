//! Shared pieces of Laminar's benchmarks: the compared queries, a small seeded RNG and
//! the paths of the Wasm guests built from source by `laminar-tests`.

mod args;
mod measure;

pub use args::BenchArgs;
pub use measure::{best_of, criterion_config, events_per_second, RUNS};

use std::path::PathBuf;

// The global allocator (mimalloc by default) is set once, in `laminar-core-benches`.
use std::sync::Arc;

use laminar::plugin::Plugin;

/// Laminar's windowed query: per auction and 10 s tumbling window, the count, sum, min,
/// max and average of the price, emitted as each window closes.
pub const LAMINAR_QUERY: &str = "SELECT auction, TUMBLE_START(ts, INTERVAL '10' SECOND) AS ws, \
     COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price) \
     FROM bids GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND)";

/// The same aggregation as a DataFusion batch query, with `date_bin` in place of the
/// tumbling window: same groups, same aggregates, same number of result rows.
pub const DATAFUSION_QUERY: &str = "SELECT auction, \
     date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws, \
     COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price) \
     FROM bids GROUP BY auction, ws";

/// The seeded generator of benchmark inputs: the one Laminar's sample data uses.
pub use laminar::gen::SplitMix64;

/// The component built from source for guest `name` (see `laminar_tests::guest`), or why
/// it is not available: not built (Python and JavaScript guests need their toolchains),
/// unknown, or missing on disk. Never panics, so a bench can skip the guest and say why.
pub fn guest_path(name: &str) -> Result<PathBuf, String> {
    // `laminar_tests::guest` panics with the reason; turn that into an error, quietly.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = std::panic::catch_unwind(|| laminar_tests::guest(name));
    std::panic::set_hook(hook);
    let path = found.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| format!("guest {name} is not available"))
    })?;
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "guest {name} was built, but {} is missing",
            path.display()
        ))
    }
}

/// The first line of `reason`, for one-line skip messages.
pub fn first_line(reason: &str) -> &str {
    reason.lines().next().unwrap_or(reason)
}

/// Guest `guest` loaded as a plugin with the shared test plugin cache, or `None` after
/// printing why the bench skips it.
pub fn load_guest(guest: &str) -> Option<Arc<Plugin>> {
    let loaded = guest_path(guest).and_then(|path| {
        Plugin::load(&path, None, &laminar_tests::plugin_options()).map_err(|e| e.to_string())
    });
    match loaded {
        Ok(plugin) => Some(plugin),
        Err(reason) => {
            println!("skipping guest {guest}: {}", first_line(&reason));
            None
        }
    }
}
