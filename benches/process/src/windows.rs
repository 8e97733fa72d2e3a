//! The window-kind figures (`--suite windows`), whole `laminar run` processes over the
//! CSV file, each the best of the runs asked, all timed in the same bench run:
//! - aggregation cost with few groups (GROUP BY channel, 8 keys, so that the output is
//!   small): TUMBLE(10 s), HOP(1 s, 10 s) and CUMULATE(1 s, 10 s) at `--cores 1` and
//!   `--cores 2` (target: HOP and CUMULATE at most 1.5x TUMBLE's time);
//! - many groups (GROUP BY auction): TUMBLE(10 s), SESSION(gap 2 s) (target: at least
//!   0.7x TUMBLE's events/s) and HOP(1 s, 10 s), and the same HOP query in DuckDB and
//!   Polars (two threads, batch SQL with each row's windows unnested, writing the same
//!   groups) against Laminar at `--cores 2` (target: Laminar faster than both).

use std::time::Duration;

use crate::runs::{fail, timed, Bench};

const TUMBLE: &str = "TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)";
const HOP: &str = "HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '10' SECOND)";
const CUMULATE: &str =
    "CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '10' SECOND)";
const SESSION: &str =
    "SESSION(TABLE bids PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '2' SECOND)";

/// (name, group key, FROM clause) of each run with few groups.
pub(crate) const FEW_GROUPS: &[(&str, &str, &str)] = &[
    ("TUMBLE 10 s by channel", "channel", TUMBLE),
    ("HOP 1 s / 10 s by channel", "channel", HOP),
    ("CUMULATE 1 s / 10 s by channel", "channel", CUMULATE),
];

/// (name, group key, FROM clause) of each run with many groups.
pub(crate) const MANY_GROUPS: &[(&str, &str, &str)] = &[
    ("TUMBLE 10 s by auction", "auction", TUMBLE),
    ("SESSION gap 2 s by auction", "auction", SESSION),
    ("HOP 1 s / 10 s by auction", "auction", HOP),
];

/// DuckDB: the HOP query by auction, each row unnested into its ten windows.
pub(crate) const DUCKDB_HOP: &str = r#"import sys, duckdb
src, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
con.execute(f"""COPY (
    SELECT auction, window_start, window_start + INTERVAL 10 SECOND AS window_end,
           COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price)
    FROM (SELECT auction, price, unnest(generate_series(
              time_bucket(INTERVAL '1 second', ts) - INTERVAL '9 seconds',
              time_bucket(INTERVAL '1 second', ts), INTERVAL '1 second')) AS window_start
          FROM read_csv('{src}', header = true, columns = {{
              'ts': 'TIMESTAMP', 'auction': 'BIGINT', 'bidder': 'BIGINT',
              'price': 'DOUBLE', 'channel': 'VARCHAR'}}))
    GROUP BY ALL) TO '{out}' (HEADER, DELIMITER ',')""")
"#;

/// Polars: the same, lazily scanned (threads from `POLARS_MAX_THREADS`).
pub(crate) const POLARS_HOP: &str = r#"import sys, polars as pl
src, out = sys.argv[1], sys.argv[2]
schema = {"ts": pl.String, "auction": pl.Int64, "bidder": pl.Int64,
          "price": pl.Float64, "channel": pl.String}
(pl.scan_csv(src, schema=schema)
   .with_columns(pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f").dt.truncate("1s").alias("last"))
   .with_columns(pl.datetime_ranges(pl.col("last") - pl.duration(seconds=9), pl.col("last"),
                                    interval="1s").alias("window_start"))
   .explode("window_start")
   .group_by(pl.col("auction"), pl.col("window_start"))
   .agg(pl.len(), pl.col("price").sum().alias("sum"), pl.col("price").min().alias("min"),
        pl.col("price").max().alias("max"), pl.col("price").mean().alias("avg"))
   .with_columns((pl.col("window_start") + pl.duration(seconds=10)).alias("window_end"))
   .collect()
   .write_csv(out))
"#;

impl Bench {
    /// Best time of each run of `kinds` at `cores`: (name, time).
    pub(crate) fn window_kind_figures(
        &self,
        kinds: &[(&'static str, &str, &str)],
        cores: usize,
        repeats: usize,
    ) -> Vec<(&'static str, Duration)> {
        kinds
            .iter()
            .enumerate()
            .map(|(i, (name, key, from))| {
                let path = self.work().join(format!("windows-{i}.sql"));
                let sql = format!(
                    "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
                        channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
                     WITH (connector = 'file', path = '{}', format = 'csv');
                     CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
                     INSERT INTO out SELECT {key}, window_start, window_end,
                         COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price)
                     FROM {from} GROUP BY {key}, window_start, window_end;",
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

    /// The HOP query by auction in DuckDB and Polars at `threads` threads, best of
    /// `repeats` each, or why they cannot run.
    pub(crate) fn hop_peer_figures(
        &self,
        threads: usize,
        repeats: usize,
    ) -> Vec<(&'static str, Result<Duration, String>)> {
        let site = match self.python_env() {
            Ok(site) => site,
            Err(why) => {
                return vec![("DuckDB", Err(why.clone())), ("Polars", Err(why))];
            }
        };
        [("DuckDB", DUCKDB_HOP), ("Polars", POLARS_HOP)]
            .into_iter()
            .map(|(name, script)| {
                let best = (0..repeats.max(1))
                    .map(|_| {
                        self.python_run(
                            &site,
                            &format!("{}_hop", name.to_lowercase()),
                            script,
                            threads,
                        )
                    })
                    .min()
                    .unwrap_or_default();
                (name, Ok(best))
            })
            .collect()
    }
}
