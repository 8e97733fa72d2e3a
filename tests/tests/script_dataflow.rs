//! A script is one dataflow: one source feeds a filter written by two `INSERT INTO` one
//! sink, a TUMBLE aggregate, and a windowed stream rolled up by a one-minute window, all
//! in one pass through the real `laminar` binary, from a file and from stdin, at
//! `--cores` 1 and 2. Each sink must equal DataFusion batch SQL over the same rows (the
//! on-time ones, per the lateness model, for the windows); the source is read once (the
//! summary counts its rows once, and each query's line counts them again); and kill -9 at
//! random moments and named crash points with `--state-dir` resumes the whole script to
//! exactly the sinks of an uninterrupted run.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use laminar::gen::{BidsConfig, SplitMix64};
use laminar::sink::partial_path;
use laminar_tests::{assert_rows_close, assert_rows_match, batch_sql, sorted_rows, Bids, Value};

const ROWS: u64 = 30_000;

fn bids(rows: u64) -> Bids {
    Bids::with_nulls(&BidsConfig {
        rows,
        seed: 41,
        disorder_ms: 4_000,
        late_fraction: 0.02,
        auctions: 50,
        events_per_second: 1_000,
        ..BidsConfig::default()
    })
}

/// The script: `source_with` is the source's connector options.
fn script(dir: &Path, source_with: &str) -> String {
    let sink = |name: &str| {
        format!(
            "CREATE SINK {name} WITH (connector = 'file', path = '{}', format = 'csv');\n",
            dir.join(format!("{name}.csv")).display()
        )
    };
    format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
             channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '3' SECOND)
         WITH ({source_with}, format = 'csv', batch_size = '1000');
         {}{}{}
         CREATE STREAM per_10s AS
             SELECT auction, window_start, window_end, COUNT(*) AS bids, SUM(price) AS volume
             FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
             GROUP BY auction, window_start, window_end;
         INSERT INTO picked SELECT ts, auction, price FROM bids WHERE price > 990;
         INSERT INTO picked SELECT ts, auction, price FROM bids WHERE price < 10;
         INSERT INTO tens
             SELECT auction, window_start, COUNT(*) AS bids, MAX(price) AS top
             FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
             GROUP BY auction, window_start, window_end;
         INSERT INTO minutes
             SELECT auction, window_start, SUM(bids) AS bids, SUM(volume) AS volume
             FROM TUMBLE(TABLE per_10s, DESCRIPTOR(window_start), INTERVAL '1' MINUTE)
             GROUP BY auction, window_start, window_end;\n",
        sink("picked"),
        sink("tens"),
        sink("minutes"),
    )
}

/// The sinks and the columns each holds.
fn sinks() -> [(&'static str, Vec<(&'static str, DataType)>); 3] {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    [
        (
            "picked",
            vec![
                ("ts", ts.clone()),
                ("auction", DataType::Int64),
                ("price", DataType::Float64),
            ],
        ),
        (
            "tens",
            vec![
                ("auction", DataType::Int64),
                ("window_start", ts.clone()),
                ("bids", DataType::Int64),
                ("top", DataType::Float64),
            ],
        ),
        (
            "minutes",
            vec![
                ("auction", DataType::Int64),
                ("window_start", ts),
                ("bids", DataType::Int64),
                ("volume", DataType::Float64),
            ],
        ),
    ]
}

/// DataFusion over the same rows, sink by sink: the filters over every row, the windows
/// over the rows on time for 10-second windows (the roll-up adds up 10-second windows,
/// so it keeps what they kept).
fn oracle(bids: &Bids) -> Vec<Vec<Vec<Value>>> {
    let (kept, late) = bids.on_time(10_000, 3_000);
    assert!(late > 100, "the data must hold late rows");
    let bin =
        |size: &str| format!("date_bin(INTERVAL '{size}', ts, TIMESTAMP '1970-01-01T00:00:00')");
    let picked = batch_sql(
        bids.all.clone(),
        "SELECT ts, auction, price FROM kept WHERE price > 990 OR price < 10",
        Vec::new(),
        1,
    );
    let tens = batch_sql(
        kept.clone(),
        &format!(
            "SELECT auction, {} AS ws, COUNT(*), MAX(price) FROM kept GROUP BY auction, ws",
            bin("10 seconds")
        ),
        Vec::new(),
        1,
    );
    let minutes = batch_sql(
        kept,
        &format!(
            "SELECT auction, {} AS ws, COUNT(*), SUM(price) FROM kept GROUP BY auction, ws",
            bin("1 minute")
        ),
        Vec::new(),
        1,
    );
    [picked, tens, minutes]
        .iter()
        .map(|batches| sorted_rows(batches))
        .collect()
}

fn read_sink(path: &Path, columns: &[(&str, DataType)]) -> Vec<Vec<Value>> {
    let schema = std::sync::Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, t)| Field::new(*name, t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = datafusion::arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .build(file)
        .expect("csv reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("csv batch")).collect();
    sorted_rows(&batches)
}

fn check_sinks(dir: &Path, expected: &[Vec<Vec<Value>>], what: &str) {
    for ((name, columns), expected) in sinks().iter().zip(expected) {
        let actual = read_sink(&dir.join(format!("{name}.csv")), columns);
        assert!(!actual.is_empty(), "{what}: sink {name} is empty");
        match *name {
            "minutes" => {
                assert_rows_close(&actual, expected, 1e-6, &format!("{what}, sink {name}"))
            }
            _ => assert_rows_match(&actual, expected),
        }
    }
}

/// The summary says the source was read once and gives one line per query.
fn check_summary(stderr: &str, rows: u64, what: &str) {
    assert!(
        stderr.contains(&format!("laminar: {rows} events read,")),
        "{what}: the source must be read once: {stderr}"
    );
    let query_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" events, ") && l.contains(" rows to "))
        .collect();
    assert_eq!(query_lines.len(), 5, "{what}: one line per query: {stderr}");
    for sink in [
        "stream 'per_10s'",
        "sink 'picked'",
        "sink 'tens'",
        "sink 'minutes'",
    ] {
        assert!(
            query_lines.iter().any(|l| l.ends_with(sink)),
            "{what}: no line for {sink}: {stderr}"
        );
    }
    assert_eq!(
        query_lines
            .iter()
            .filter(|l| l.contains(&format!(": {rows} events, ")))
            .count(),
        4,
        "{what}: each query over the source is given every row: {stderr}"
    );
}

#[test]
fn one_source_feeds_every_query_from_a_file_and_from_stdin_at_one_and_two_cores() {
    let bids = bids(ROWS);
    let expected = oracle(&bids);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    bids.write_csv(&csv);
    for input in ["file", "stdin"] {
        for cores in ["1", "2"] {
            let what = format!("{input}, --cores {cores}");
            let out = tempfile::tempdir().expect("tempdir");
            let source_with = match input {
                "file" => format!("connector = 'file', path = '{}'", csv.display()),
                _ => "connector = 'stdin'".to_string(),
            };
            let script_path = out.path().join("q.sql");
            std::fs::write(&script_path, script(out.path(), &source_with)).expect("script");
            let mut cmd = common::laminar();
            cmd.arg("run")
                .arg(&script_path)
                .args(["--cores", cores])
                .stdin(match input {
                    "file" => Stdio::null(),
                    _ => Stdio::from(std::fs::File::open(&csv).expect("input")),
                });
            let output = cmd.output().expect("run laminar");
            let err = common::stderr(&output);
            assert!(output.status.success(), "{what}: {err}");
            check_summary(&err, ROWS, &what);
            check_sinks(out.path(), &expected, &what);
        }
    }
}

/// Where a crashing run is stopped.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// `kill -9` once the `tens` sink's partial file holds this many bytes.
    PastBytes(u64),
    /// The binary aborts itself at this crash point (`LAMINAR_CRASH_AT`).
    At(&'static str),
}

fn durable_command(script: &Path, state: &Path, cores: &str) -> Command {
    let mut cmd = common::laminar();
    cmd.arg("run")
        .arg(script)
        .arg("--state-dir")
        .arg(state)
        .args(["--checkpoint-interval", "100ms", "--cores", cores])
        .env_remove("LAMINAR_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn kill_9_with_a_state_dir_resumes_the_whole_script_exactly() {
    let rows = 200_000;
    let bids = bids(rows);
    let expected = oracle(&bids);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    bids.write_csv(&csv);
    let source_with = format!("connector = 'file', path = '{}'", csv.display());
    let script_path: PathBuf = dir.path().join("q.sql");
    std::fs::write(&script_path, script(dir.path(), &source_with)).expect("script");

    // The uninterrupted run, for the size of its output.
    let reference = durable_command(&script_path, &dir.path().join("reference"), "2")
        .output()
        .expect("reference run");
    assert!(reference.status.success(), "{}", common::stderr(&reference));
    check_sinks(dir.path(), &expected, "uninterrupted");
    let tens_bytes = std::fs::metadata(dir.path().join("tens.csv"))
        .expect("tens")
        .len();
    for name in ["picked", "tens", "minutes"] {
        std::fs::remove_file(dir.path().join(format!("{name}.csv"))).expect("remove");
    }

    let mut rng = SplitMix64::new(7);
    let mut crashes: Vec<Crash> = (0..8)
        .map(|i| Crash::PastBytes(tens_bytes * (i * 10 + rng.below(10)) / 100))
        .collect();
    for (at, point) in [
        (1, "checkpoint-after-sink-sync:2"),
        (3, "checkpoint-after-write:2"),
        (5, "sink-after-write:40"),
    ] {
        crashes.insert(at, Crash::At(point));
    }
    crashes.extend([Crash::At("before-complete"), Crash::At("after-complete")]);
    let state = dir.path().join("state");
    let partial = partial_path(&dir.path().join("tens.csv"));
    let mut hits = 0;
    let mut plan = crashes.into_iter();
    for attempt in 0.. {
        assert!(attempt < 60, "the run never completed");
        let cores = if attempt % 2 == 0 { "2" } else { "1" };
        let mut cmd = durable_command(&script_path, &state, cores);
        let crash = plan.next();
        if let Some(Crash::At(point)) = crash {
            cmd.env("LAMINAR_CRASH_AT", point);
        }
        let mut child = cmd.spawn().expect("spawn laminar");
        let stopped = match crash {
            Some(Crash::PastBytes(bytes)) => {
                common::kill_once_grown(&mut child, &partial, bytes, Duration::ZERO)
            }
            _ => false,
        };
        let output = child.wait_with_output().expect("wait");
        let err = common::stderr(&output);
        if stopped || (crash.is_some() && !output.status.success()) {
            hits += 1;
            continue;
        }
        assert!(output.status.success(), "attempt {attempt}: {err}");
        if crash.is_none() {
            break;
        }
    }
    assert!(hits >= 8, "only {hits} crashes hit a running process");
    check_sinks(dir.path(), &expected, "after kill -9s");
}

/// The numbered findings of the scripts issue, each through the binary.
mod findings {
    use super::common;

    const DATA: &str = "ts,auction,price,channel\n\
        1000,1,5.0,web\n2000,2,1000.0,test\n3000,1,1.0,app\n12000,2,7.5,web\n\
        14000,1,0.5,app\n25000,2,2.0,web\n";

    fn source(connector: &str) -> String {
        format!(
            "CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE, channel VARCHAR,
                 WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH ({connector}, format = 'csv');\n"
        )
    }

    fn file_source() -> String {
        source("connector = 'file', path = 'bids.csv'")
    }

    fn sorted(text: &str) -> Vec<String> {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    #[test]
    fn two_inserts_into_one_sink_append_both_queries_rows_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bids.csv"), DATA).expect("data");
        let script = format!(
            "{}CREATE SINK o WITH (connector = 'file', path = 'o.csv', format = 'csv');
             INSERT INTO o SELECT ts, price FROM bids WHERE price > 999;
             INSERT INTO o SELECT ts, price FROM bids WHERE price < 2;",
            file_source()
        );
        for state in [None, Some("state")] {
            let mut args = vec![];
            if let Some(state) = state {
                args = vec!["--state-dir", state];
            }
            let out = common::run_script(dir.path(), &script, &args);
            assert!(out.status.success(), "{}", common::stderr(&out));
            let written = std::fs::read_to_string(dir.path().join("o.csv")).expect("sink");
            assert_eq!(
                sorted(&written),
                ["14000,0.5", "2000,1000.0", "3000,1.0", "ts,price"],
                "{state:?}"
            );
        }
    }

    #[test]
    fn queries_over_one_stdin_source_each_get_every_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = format!(
            "{}CREATE SINK a WITH (connector = 'file', path = 'a.csv', format = 'csv');
             CREATE SINK b WITH (connector = 'file', path = 'b.csv', format = 'csv');
             INSERT INTO a SELECT ts FROM bids WHERE auction = 1;
             INSERT INTO b SELECT ts FROM bids WHERE auction = 2;",
            source("connector = 'stdin'")
        );
        std::fs::write(dir.path().join("q.sql"), &script).expect("script");
        let mut cmd = common::laminar();
        cmd.current_dir(dir.path()).args(["run", "q.sql"]);
        let out = common::run_with_stdin(&mut cmd, DATA.as_bytes());
        let err = common::stderr(&out);
        assert!(out.status.success(), "{err}");
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).expect("sink");
        assert_eq!(read("a.csv"), "ts\n1000\n3000\n14000\n");
        assert_eq!(read("b.csv"), "ts\n2000\n12000\n25000\n");
        assert!(err.contains("laminar: 6 events read,"), "{err}");
    }

    #[test]
    fn a_stream_feeds_windowed_queries_and_a_windowed_stream_is_rolled_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bids.csv"), DATA).expect("data");
        let script = format!(
            "{}CREATE STREAM clean AS SELECT ts, auction, price FROM bids WHERE channel <> 'test';
             CREATE STREAM tens AS SELECT auction, window_start, window_end, COUNT(*) AS n
                 FROM TUMBLE(TABLE clean, DESCRIPTOR(ts), INTERVAL '10' SECOND)
                 GROUP BY auction, window_start, window_end;
             CREATE SINK g WITH (connector = 'file', path = 'g.csv', format = 'csv');
             INSERT INTO g SELECT auction, TUMBLE_START(ts, INTERVAL '10' SECOND) AS w, SUM(price) AS v
                 FROM clean GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND);
             SELECT auction, window_start, SUM(n) AS n, MIN(stream_window_start) AS first
                 FROM TUMBLE(TABLE tens, DESCRIPTOR(window_start), INTERVAL '1' MINUTE)
                 GROUP BY auction, window_start, window_end;",
            file_source()
        );
        let out = common::run_script(dir.path(), &script, &["--output", "csv"]);
        let err = common::stderr(&out);
        assert!(out.status.success(), "{err}");
        let grouped = std::fs::read_to_string(dir.path().join("g.csv")).expect("sink");
        assert_eq!(
            sorted(&grouped),
            [
                "1,1970-01-01T00:00:00,6.0",
                "1,1970-01-01T00:00:10,0.5",
                "2,1970-01-01T00:00:10,7.5",
                "2,1970-01-01T00:00:20,2.0",
                "auction,w,v",
            ]
        );
        assert_eq!(
            sorted(&common::stdout(&out)),
            [
                "1,1970-01-01T00:00:00,3,1970-01-01T00:00:00",
                "2,1970-01-01T00:00:00,2,1970-01-01T00:00:10",
                "auction,window_start,n,first",
            ]
        );
    }

    #[test]
    fn an_error_in_the_last_statement_stops_the_run_before_anything_ran() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bids.csv"), DATA).expect("data");
        let script = format!(
            "{}CREATE SINK o WITH (connector = 'file', path = 'o.csv', format = 'csv');
             INSERT INTO o SELECT ts FROM bids;
             SELECT ts FROM bids;
             SELECT no_such_column FROM bids;",
            file_source()
        );
        let out = common::run_script(dir.path(), &script, &["--output", "csv"]);
        common::assert_clean_error(&out, &["query.sql:7:14", "no_such_column"]);
        assert!(common::stdout(&out).is_empty());
        assert!(!dir.path().join("o.csv").exists());
    }

    #[test]
    fn one_query_prints_to_stdout_and_each_query_has_its_summary_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bids.csv"), DATA).expect("data");
        let two_printing = format!(
            "{}SELECT ts FROM bids WHERE auction = 1;
             SELECT ts FROM bids WHERE auction = 2;",
            file_source()
        );
        let out = common::run_script(dir.path(), &two_printing, &["--output", "csv"]);
        common::assert_clean_error(
            &out,
            &["query.sql:5:", "only one query of a script may print"],
        );
        assert!(common::stdout(&out).is_empty());

        let one_printing = format!(
            "{}CREATE SINK o WITH (connector = 'file', path = 'o.csv', format = 'csv');
             SELECT ts FROM bids WHERE auction = 1;
             INSERT INTO o SELECT ts FROM bids WHERE auction = 2;",
            file_source()
        );
        let out = common::run_script(dir.path(), &one_printing, &["--output", "csv"]);
        let err = common::stderr(&out);
        assert!(out.status.success(), "{err}");
        assert_eq!(common::stdout(&out), "ts\n1000\n3000\n14000\n");
        assert!(
            err.contains(
                "query.sql:5:14: 6 events, 0 late, 0 bad rows, 0 windows, 3 rows to stdout"
            ),
            "{err}"
        );
        assert!(
            err.contains(
                "query.sql:6:14: 6 events, 0 late, 0 bad rows, 0 windows, 3 rows to sink 'o'"
            ),
            "{err}"
        );
        assert!(err.contains("laminar: 6 events read, 0 late events dropped, 0 bad rows skipped, 0 windows emitted (6 rows)"), "{err}");
    }

    #[test]
    fn inspect_tells_a_stdin_producer_where_to_resume_and_a_fresh_run_says_it_reads_from_the_start()
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = format!(
            "{}CREATE SINK o WITH (connector = 'file', path = 'o.csv', format = 'csv');
             INSERT INTO o SELECT ts FROM bids;",
            source("connector = 'stdin'")
        );
        std::fs::write(dir.path().join("q.sql"), &script).expect("script");
        let mut cmd = common::laminar();
        cmd.current_dir(dir.path())
            .args(["run", "q.sql", "--state-dir", "state"])
            .env("LAMINAR_CRASH_AT", "before-complete");
        let out = common::run_with_stdin(&mut cmd, DATA.as_bytes());
        let err = common::stderr(&out);
        assert!(
            !out.status.success(),
            "the run must stop at its crash point: {err}"
        );
        assert!(!err.contains("resuming after input line 0"), "{err}");
        assert!(err.contains("reading stdin from its first line"), "{err}");

        let inspected = common::laminar()
            .current_dir(dir.path())
            .args(["state", "inspect", "state"])
            .output()
            .expect("inspect");
        let report = common::stdout(&inspected);
        assert!(inspected.status.success(), "{report}");
        assert!(
            report.contains("stdin: resume after input line 7"),
            "{report}"
        );

        let mut cmd = common::laminar();
        cmd.current_dir(dir.path())
            .args(["run", "q.sql", "--state-dir", "state"]);
        let out = common::run_with_stdin(&mut cmd, b"");
        let err = common::stderr(&out);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("resuming after input line 7"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("o.csv")).expect("sink"),
            "ts\n1000\n2000\n3000\n12000\n14000\n25000\n"
        );
    }

    #[test]
    fn an_empty_result_in_a_csv_file_sink_is_its_header_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("bids.csv"), DATA).expect("data");
        let script = format!(
            "{}CREATE SINK o WITH (connector = 'file', path = 'o.csv', format = 'csv');
             INSERT INTO o SELECT ts, price FROM bids WHERE price > 5000;",
            file_source()
        );
        let out = common::run_script(dir.path(), &script, &[]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("o.csv")).expect("sink"),
            "ts,price\n"
        );
    }
}
