//! The thread-per-core figures: the windowed query over the CSV file at `--cores 1` and
//! at more cores, N independent `--cores 1` runs at once (the machine's own ceiling for
//! N cores), and the same aggregation in DuckDB and Polars (Python packages from PyPI,
//! installed on first use under the work dir, two threads each) over the same file, all
//! whole processes timed in the same bench run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::runs::{fail, timed, timed_together, Bench};

/// The PyPI packages of the comparison, pinned.
const PYTHON_PACKAGES: &[&str] = &["duckdb==2.0.0", "polars==2.1.0"];

/// DuckDB: the query's groups (auction, 10 s bucket) and aggregates, into a CSV file.
const DUCKDB_SCRIPT: &str = r#"import sys, duckdb
src, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
con.execute(f"""COPY (
    SELECT auction, time_bucket(INTERVAL '10 seconds', ts) AS window_start,
           COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price)
    FROM read_csv('{src}', header = true, columns = {{
        'ts': 'TIMESTAMP', 'auction': 'BIGINT', 'bidder': 'BIGINT',
        'price': 'DOUBLE', 'channel': 'VARCHAR'}})
    GROUP BY ALL) TO '{out}' (HEADER, DELIMITER ',')""")
"#;

/// Polars: the same, lazily scanned (threads from `POLARS_MAX_THREADS`).
const POLARS_SCRIPT: &str = r#"import sys, polars as pl
src, out = sys.argv[1], sys.argv[2]
schema = {"ts": pl.String, "auction": pl.Int64, "bidder": pl.Int64,
          "price": pl.Float64, "channel": pl.String}
(pl.scan_csv(src, schema=schema)
   .with_columns(pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f"))
   .group_by(pl.col("auction"), pl.col("ts").dt.truncate("10s").alias("window_start"))
   .agg(pl.len(), pl.col("price").sum().alias("sum"), pl.col("price").min().alias("min"),
        pl.col("price").max().alias("max"), pl.col("price").mean().alias("avg"))
   .collect()
   .write_csv(out))
"#;

/// The figures of one bench run.
pub(crate) struct CoreFigures {
    /// Best time at `--cores 1`.
    pub(crate) one: Duration,
    /// Best time at `--cores N` for each N asked.
    pub(crate) many: Vec<(usize, Duration)>,
    /// Best time of N independent `--cores 1` runs started at once, for each N asked: the
    /// most throughput N cores of this machine give this work with nothing shared, the
    /// ceiling of the speed-up at `--cores N`.
    pub(crate) together: Vec<(usize, Duration)>,
    /// Best DuckDB and Polars times, when Python and the packages are available (or why
    /// not).
    pub(crate) duckdb: Result<Duration, String>,
    /// See `duckdb`.
    pub(crate) polars: Result<Duration, String>,
}

impl Bench {
    /// One run of the windowed query over the CSV file at `--cores cores`.
    pub(crate) fn cores_run(&self, cores: usize) -> Duration {
        let script = self.script(
            "file.sql",
            &format!("connector = 'file', path = '{}'", self.bids().display()),
        );
        let mut cmd = self.command(&script, false, "10s");
        cmd.args(["--cores", &cores.to_string()]);
        timed(&mut cmd)
    }

    /// `copies` independent runs of the windowed query at `--cores 1`, each into its own
    /// sink file, started at once; the time until the last one ended.
    pub(crate) fn together_run(&self, copies: usize) -> Duration {
        let source = format!("connector = 'file', path = '{}'", self.bids().display());
        let mut cmds: Vec<Command> = (0..copies)
            .map(|copy| {
                let script = self.script_into(
                    &format!("together-{copy}.sql"),
                    &source,
                    &format!("together-{copy}.csv"),
                );
                let mut cmd = self.command(&script, false, "10s");
                cmd.args(["--cores", "1"]);
                cmd
            })
            .collect();
        timed_together(&mut cmds)
    }

    /// Laminar at 1 and at each of `cores` (and as many independent `--cores 1` runs at
    /// once), DuckDB and Polars at `threads` threads, interleaved, best of `repeats`.
    pub(crate) fn core_figures(
        &self,
        cores: &[usize],
        threads: usize,
        repeats: usize,
    ) -> CoreFigures {
        let python = self.python_env();
        let mut figures = CoreFigures {
            one: Duration::MAX,
            many: cores.iter().map(|&n| (n, Duration::MAX)).collect(),
            together: cores.iter().map(|&n| (n, Duration::MAX)).collect(),
            duckdb: python.clone().map(|_| Duration::MAX),
            polars: python.clone().map(|_| Duration::MAX),
        };
        for _ in 0..repeats.max(1) {
            figures.one = figures.one.min(self.cores_run(1));
            for (n, best) in &mut figures.many {
                *best = (*best).min(self.cores_run(*n));
            }
            for (n, best) in &mut figures.together {
                *best = (*best).min(self.together_run(*n));
            }
            if let Ok(site) = &python {
                if let Ok(best) = &mut figures.duckdb {
                    *best = (*best).min(self.python_run(site, "duckdb", DUCKDB_SCRIPT, threads));
                }
                if let Ok(best) = &mut figures.polars {
                    *best = (*best).min(self.python_run(site, "polars", POLARS_SCRIPT, threads));
                }
            }
        }
        figures
    }

    /// The directory holding DuckDB and Polars (pip-installed there on first use), or why
    /// there is none.
    pub(crate) fn python_env(&self) -> Result<PathBuf, String> {
        let site = self.work().join("python");
        let marker = site.join(".installed");
        if marker.is_file() {
            return Ok(site);
        }
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&site)
            .args(PYTHON_PACKAGES)
            .status()
            .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
        if !status.success() {
            return Err(format!("pip install {} failed", PYTHON_PACKAGES.join(" ")));
        }
        std::fs::write(&marker, PYTHON_PACKAGES.join("\n")).map_err(|e| e.to_string())?;
        Ok(site)
    }

    /// One run of a comparison script (the whole Python process) with `threads` threads.
    pub(crate) fn python_run(
        &self,
        site: &Path,
        name: &str,
        script: &str,
        threads: usize,
    ) -> Duration {
        // A directory of its own: Python puts a script's directory first on its path, so
        // nothing there may be named like the packages.
        let scripts = self.work().join("compare");
        std::fs::create_dir_all(&scripts).unwrap_or_else(|e| fail(&e.to_string()));
        let path = scripts.join(format!("{name}_query.py"));
        std::fs::write(&path, script).unwrap_or_else(|e| fail(&e.to_string()));
        let out = self.work().join(format!("{name}-out.csv"));
        let mut cmd = Command::new("python3");
        cmd.arg(&path)
            .arg(self.bids())
            .arg(&out)
            .arg(threads.to_string())
            .env("PYTHONPATH", site)
            .env("POLARS_MAX_THREADS", threads.to_string())
            .stdout(Stdio::null());
        timed(&mut cmd)
    }
}
