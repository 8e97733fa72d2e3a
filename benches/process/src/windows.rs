//! The window-kind figures (`--suite windows`): the same aggregation over the CSV file
//! with TUMBLE, HOP, CUMULATE and SESSION windows, whole `laminar run` processes at
//! `--cores 1` and `--cores 2`, each the best of the runs asked, timed in the same bench
//! run so that the ratios to TUMBLE compare like with like.

use std::time::Duration;

use crate::runs::{fail, timed, Bench};

/// (name, FROM clause): each kind's table-valued form over `bids`.
const KINDS: &[(&str, &str)] = &[
    (
        "TUMBLE 10 s",
        "TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)",
    ),
    (
        "HOP 1 s / 10 s",
        "HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '10' SECOND)",
    ),
    (
        "CUMULATE 1 s / 10 s",
        "CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '10' SECOND)",
    ),
    (
        "SESSION gap 2 s",
        "SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '2' SECOND)",
    ),
];

impl Bench {
    /// Best time of each window kind at `cores`: (kind, time).
    pub(crate) fn window_kind_figures(
        &self,
        cores: usize,
        repeats: usize,
    ) -> Vec<(&'static str, Duration)> {
        KINDS
            .iter()
            .enumerate()
            .map(|(i, (name, from))| {
                let path = self.work().join(format!("windows-{i}.sql"));
                let sql = format!(
                    "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
                        channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
                     WITH (connector = 'file', path = '{}', format = 'csv');
                     CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
                     INSERT INTO out SELECT auction, window_start, window_end,
                         COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price)
                     FROM {from} GROUP BY auction, window_start, window_end;",
                    self.bids().display(),
                    self.work().join("windows-out.csv").display()
                );
                std::fs::write(&path, sql)
                    .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
                let best = (0..repeats.max(1))
                    .map(|_| {
                        let mut cmd = self.command(&path, false, "10s");
                        cmd.args(["--cores", &cores.to_string()]);
                        timed(&mut cmd)
                    })
                    .min()
                    .unwrap_or_default();
                (*name, best)
            })
            .collect()
    }
}
