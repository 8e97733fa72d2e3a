//! Upgrading a plugin under a durable query, through the real binary: a run with the Wasm
//! `median` (build 1, state version 1) aborts mid-stream right after a checkpoint (a crash
//! point, as `kill -9` would stop it), and the same command resumes with another file at the plugin's path:
//! - build 2 (`operators/median-v2`: state version 2, another encoding, reads version 1):
//!   the run goes on, prints one line naming both builds and the groups migrated, and its
//!   output equals DataFusion's `median` over the on-time rows;
//! - a build 2 that does not read version 1 (`median_v2_alone`): refused, naming both
//!   versions;
//! - a hostile build 2 that reads version 1 but traps in `merge` (`median_v2_traps`):
//!   refused with the trap, and the state dir is left as it was: build 1 resumes it and
//!   writes the oracle's output.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use laminar::gen::BidsConfig;
use laminar_tests::{assert_rows_match, batch_sql, sorted_rows, Bids, Value};

const WINDOW_MS: i64 = 10_000;
const DELAY_MS: i64 = 3_000;

/// The checkpoint after whose file the first run aborts: with `--cores 1` one is taken at
/// every batch of 500 rows, so this is about 15 000 rows into the 40 000.
const CRASH_AT: &str = "checkpoint-after-write:30";

struct Upgrade {
    dir: tempfile::TempDir,
    expected: Vec<Vec<Value>>,
}

impl Upgrade {
    /// Bids, a script reading them with `median` from `DIR/median.wasm`, the oracle.
    fn new(seed: u64) -> Self {
        let bids = Bids::generate(
            &BidsConfig {
                rows: 40_000,
                seed,
                disorder_ms: 3_000,
                late_fraction: 0.01,
                auctions: 30,
                events_per_second: 500,
                ..BidsConfig::default()
            },
            4096,
        );
        let (kept, late) = bids.on_time(WINDOW_MS, DELAY_MS);
        assert!(late > 50, "the data must hold late events");
        let expected = sorted_rows(&batch_sql(
            kept,
            "SELECT auction,
                date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws,
                COUNT(*), median(price)
             FROM kept GROUP BY auction, ws",
            Vec::new(),
            1,
        ));
        assert!(expected.len() > 200);
        let dir = tempfile::tempdir().expect("tempdir");
        bids.write_csv(&dir.path().join("bids.csv"));
        std::fs::write(
            dir.path().join("q.sql"),
            "CREATE AGGREGATE median FROM 'median.wasm';
             CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
                 channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '3' SECOND)
             WITH (connector = 'file', path = 'bids.csv', format = 'csv', batch_size = '500');
             CREATE SINK out WITH (connector = 'file', path = 'out.csv', format = 'csv');
             INSERT INTO out SELECT auction, window_start, COUNT(*) AS n, median(price) AS mid
             FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
             GROUP BY window_start, window_end, auction;",
        )
        .expect("script");
        Self { dir, expected }
    }

    /// `laminar run q.sql --state-dir state` with guest `build` at the plugin's path,
    /// aborting at `crash` if given.
    fn run(&self, build: &str, crash: Option<&str>) -> Output {
        std::fs::copy(
            laminar_tests::guest(build),
            self.dir.path().join("median.wasm"),
        )
        .expect("copy plugin");
        let mut cmd = common::laminar();
        cmd.current_dir(self.dir.path())
            .args(["run", "q.sql", "--state-dir", "state"])
            .args(["--checkpoint-interval", "1ms", "--plugin-cache"])
            .arg(laminar_tests::plugin_cache_dir());
        // The crashing run on the query thread (a checkpoint at every batch), resumed runs
        // on two cores (the restored windows are split between them).
        match crash {
            Some(point) => cmd.args(["--cores", "1"]).env("LAMINAR_CRASH_AT", point),
            None => cmd.args(["--cores", "2"]).env_remove("LAMINAR_CRASH_AT"),
        };
        cmd.output().expect("run laminar")
    }

    /// Build 1 runs and aborts at a checkpoint mid-stream.
    fn crash_v1(&self) {
        let out = self.run("median", Some(CRASH_AT));
        let err = common::stderr(&out);
        assert!(!out.status.success(), "the run was meant to crash: {err}");
        assert!(err.contains("crash point"), "{err}");
    }

    fn output(&self) -> Vec<Vec<Value>> {
        read_results(&self.dir.path().join("out.csv"))
    }
}

/// The sink's rows: auction, window start, count, median.
fn read_results(path: &Path) -> Vec<Vec<Value>> {
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("n", DataType::Int64, true),
        Field::new("mid", DataType::Float64, true),
    ]));
    let file = std::fs::File::open(path).expect("open results");
    let reader = datafusion::arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .build(file)
        .expect("csv reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("csv batch")).collect();
    sorted_rows(&batches)
}

/// The number in `... upgraded ...: N group states ...`.
fn groups_moved(line: &str) -> u64 {
    line.rsplit("): ")
        .next()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no group count in {line:?}"))
}

#[test]
fn a_run_of_median_v1_killed_mid_stream_resumes_with_a_v2_that_reads_v1() {
    let upgrade = Upgrade::new(31);
    upgrade.crash_v1();
    let out = upgrade.run("median_v2", None);
    let err = common::stderr(&out);
    assert!(out.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("upgraded")).collect();
    assert_eq!(lines.len(), 1, "one upgrade line: {err}");
    let line = lines[0];
    for piece in [
        "plugin 'median' upgraded from build ",
        "(state version 1) to build ",
        "(state version 2)",
        "group states migrated from state version 1 to 2",
    ] {
        assert!(line.contains(piece), "missing {piece:?} in {line}");
    }
    assert!(groups_moved(line) > 0, "{line}");
    assert!(err.contains("resuming from checkpoint"), "{err}");
    assert_rows_match(&upgrade.output(), &upgrade.expected);

    // The state dir now belongs to build 2: running it again is no upgrade.
    let again = upgrade.run("median_v2", None);
    let err = common::stderr(&again);
    assert!(again.status.success(), "{err}");
    assert!(!err.contains("upgraded"), "{err}");
    assert!(err.contains("already ran to completion"), "{err}");
}

#[test]
fn builds_that_cannot_take_over_are_refused_and_leave_the_state_dir_to_v1() {
    let upgrade = Upgrade::new(37);
    upgrade.crash_v1();

    let refused = upgrade.run("median_v2_alone", None);
    common::assert_clean_error(
        &refused,
        &[
            "plugin 'median' is another build that does not read",
            "(state version 1) then",
            "(state version 2) now, which reads state version 2 only",
        ],
    );

    // One error line, with the guest's own panic message as its captured output.
    let hostile = upgrade.run("median_v2_traps", None);
    let err = common::stderr(&hostile);
    assert!(!hostile.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for piece in [
        "error: plugin 'median' failed in merge: trapped",
        "median build 2 gave up in merge",
    ] {
        assert!(lines[0].contains(piece), "missing {piece:?} in {err}");
    }

    let resumed = upgrade.run("median", None);
    let err = common::stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    assert!(!err.contains("upgraded"), "{err}");
    assert!(err.contains("resuming from checkpoint"), "{err}");
    assert_rows_match(&upgrade.output(), &upgrade.expected);
}

/// Guests this module needs, so a missing one fails with the build's reason.
#[test]
fn the_upgrade_guests_are_built() {
    for name in ["median", "median_v2", "median_v2_alone", "median_v2_traps"] {
        let path: PathBuf = laminar_tests::guest(name);
        assert!(path.is_file(), "{}", path.display());
    }
}
