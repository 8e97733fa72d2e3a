//! The plugin figures (`--suite plugins`): whole `laminar run` processes over the CSV file,
//! each the best of the runs asked, interleaved in the same bench run:
//! - the windowed SUM by auction with native `SUM(price)` and with the Rust `wasm_sum`
//!   aggregate in its place;
//! - the same aggregation over `price * 2 + 1` written in SQL and computed by the Rust
//!   `affine` scalar function (`affine(price)` = `price * 2 + 1`);
//!
//! at `--cores 1` and `--cores 2` (the target: each Wasm run at least 0.9x its
//! native run's events/s). The guests are the ones the tests' build script compiles from
//! source (`--guests`, by default `target/wasm-guests/wasm32-wasip2/release`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::runs::{fail, timed, Bench};

/// (name, SQL run before the query, the aggregate's argument list).
const RUNS: &[(&str, &str, &str)] = &[
    ("native SUM(price)", "", "SUM(price)"),
    (
        "Wasm wasm_sum(price)",
        "CREATE AGGREGATE wasm_sum FROM '{dir}/laminar_op_sum.wasm';",
        "wasm_sum(price)",
    ),
    ("native SUM(price * 2 + 1)", "", "SUM(price * 2 + 1)"),
    (
        "Wasm SUM(affine(price))",
        "CREATE FUNCTION affine FROM '{dir}/laminar_op_affine.wasm';",
        "SUM(affine(price))",
    ),
];

impl Bench {
    /// Best time of each run at `cores`, the four runs interleaved `repeats` times.
    pub(crate) fn plugin_figures(
        &self,
        plugin_dir: &Path,
        cores: usize,
        repeats: usize,
    ) -> Vec<(&'static str, Duration)> {
        for guest in ["laminar_op_sum.wasm", "laminar_op_affine.wasm"] {
            if !plugin_dir.join(guest).is_file() {
                fail(&format!(
                    "no {guest} in {} (the tests' build script builds it: cargo test -p laminar-tests --no-run)",
                    plugin_dir.display()
                ));
            }
        }
        // The scripts name the guests by absolute path (a relative one would be read
        // against the working directory of the run).
        let plugin_dir = std::fs::canonicalize(plugin_dir)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", plugin_dir.display())));
        let scripts: Vec<PathBuf> = RUNS
            .iter()
            .enumerate()
            .map(|(i, (_, prelude, aggregate))| {
                let path = self.work().join(format!("plugins-{i}.sql"));
                let sql = format!(
                    "{}
                     CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
                        channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
                     WITH (connector = 'file', path = '{}', format = 'csv');
                     CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
                     INSERT INTO out SELECT auction, window_start, {aggregate} AS total
                     FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
                     GROUP BY auction, window_start, window_end;",
                    prelude.replace("{dir}", &plugin_dir.display().to_string()),
                    self.bids().display(),
                    self.work().join(format!("plugins-out-{i}.csv")).display()
                );
                std::fs::write(&path, sql)
                    .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
                path
            })
            .collect();
        let mut best = vec![Duration::MAX; RUNS.len()];
        for _ in 0..repeats.max(1) {
            for (script, best) in scripts.iter().zip(&mut best) {
                let mut cmd = self.command(script, false, "10s");
                cmd.args(["--cores", &cores.to_string()]);
                *best = (*best).min(timed(&mut cmd));
            }
        }
        // Each Wasm run wrote what its native run wrote, row for row.
        let rows = |i: usize| {
            let text = std::fs::read_to_string(self.work().join(format!("plugins-out-{i}.csv")))
                .unwrap_or_else(|e| fail(&e.to_string()));
            let mut rows: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
            rows.sort_unstable();
            rows
        };
        for (native, wasm) in [(0, 1), (2, 3)] {
            if rows(native) != rows(wasm) {
                fail(&format!(
                    "'{}' and '{}' wrote different rows",
                    RUNS[native].0, RUNS[wasm].0
                ));
            }
        }
        RUNS.iter().map(|(name, _, _)| *name).zip(best).collect()
    }
}
