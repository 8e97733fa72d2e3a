//! Decoding on worker threads and aggregating on several cores change nothing: the oracle
//! query over out-of-order bids with late events and NULLs, read from a CSV file (the
//! library, `decode_threads` 0, 1 and 2 with `cores` 1, 2 and 3) and from a CSV file and
//! stdin of the binary (`--cores` 1, 2 and 3), at batch sizes 1, 7 and 8192, gives the
//! same rows (as multisets, bit for bit: a group's rows reach one core in arrival order,
//! so even float sums agree), the same counters (windows emitted included), and
//! DataFusion's answer. A reordered, lost or repeated chunk would move the watermark and
//! change the late count or the rows; a group split over two cores would give two rows
//! for it, a window counted once per core a larger window count. A bad row deep in the
//! file is reported at the same line, and skipped rows are counted the same, at every
//! thread count.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use laminar::gen::BidsConfig;
use laminar::{Engine, EngineConfig};
use laminar_tests::{assert_rows_match, batch_sql, collect, sorted_rows, Bids, Value};

const WINDOW_MS: i64 = 10_000;
const DELAY_MS: i64 = 3_000;

/// `rows` bids with NULLs (every 13th bidder, 17th price, 19th channel) and late events.
fn bids_with_nulls(rows: u64) -> Bids {
    Bids::with_nulls(&BidsConfig {
        rows,
        seed: 41,
        disorder_ms: 4_000,
        late_fraction: 0.02,
        auctions: 150,
        events_per_second: 2_000,
        ..BidsConfig::default()
    })
}

fn source(connector: &str, extra: &str) -> String {
    format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
             channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '3' SECOND)
         WITH ({connector}, format = 'csv'{extra});\n"
    )
}

const QUERY: &str = "SELECT auction, window_start, window_end, COUNT(*), SUM(price), MIN(price),
        MAX(price), AVG(price), COUNT(bidder), MIN(channel), COUNT(price, bidder)
    FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
    WHERE channel <> 'test' OR channel IS NULL
    GROUP BY window_start, window_end, auction;";

const ORACLE_SQL: &str = "SELECT auction,
        date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws,
        date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') + INTERVAL '10 seconds' AS we,
        COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price), COUNT(bidder), MIN(channel),
        COUNT(price, bidder)
    FROM kept WHERE channel <> 'test' OR channel IS NULL
    GROUP BY auction, ws";

/// The data set, its CSV file, DataFusion's answer and the late count.
struct Case {
    _dir: tempfile::TempDir,
    csv: std::path::PathBuf,
    rows: u64,
    expected: Vec<Vec<Value>>,
    late: u64,
}

fn case(rows: u64) -> Case {
    let bids = bids_with_nulls(rows);
    let (kept, late) = bids.on_time(WINDOW_MS, DELAY_MS);
    assert!(late > rows / 200, "the data must contain late events");
    let expected = sorted_rows(&batch_sql(kept, ORACLE_SQL, Vec::new(), 1));
    assert!(!expected.is_empty());
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    bids.write_csv(&csv);
    Case {
        _dir: dir,
        csv,
        rows,
        expected,
        late,
    }
}

/// The library's settings with `threads` decoder threads on `cores` cores.
fn config(threads: usize, cores: usize, batch_size: usize) -> EngineConfig {
    EngineConfig {
        batch_size,
        decode_threads: threads,
        cores,
        ..EngineConfig::default()
    }
}

/// Runs the query over the file with the library and checks it against the oracle.
fn run_file(case: &Case, threads: usize, cores: usize, batch_size: usize) -> Vec<Vec<Value>> {
    let connector = format!("connector = 'file', path = '{}'", case.csv.display());
    let sql = source(&connector, "") + QUERY;
    let mut engine = Engine::with_config(config(threads, cores, batch_size));
    let (results, summary) = collect(&mut engine, &sql).expect("query runs");
    let what = format!("{threads} decode threads, {cores} cores, batch size {batch_size}");
    let actual = sorted_rows(&results);
    assert_rows_match(&actual, &case.expected);
    assert_eq!(summary.events_read, case.rows, "{what}");
    assert_eq!(summary.late_events_dropped, case.late, "{what}");
    assert_eq!(summary.bad_rows_skipped, 0, "{what}");
    assert_eq!(summary.rows_emitted, case.expected.len() as u64, "{what}");
    actual
}

/// Runs the query with the binary over stdin (or the CSV file, `from_file`); returns its
/// rows and its summary line up to the timing.
fn run_binary(
    case: &Case,
    from_file: bool,
    cores: usize,
    batch_size: usize,
) -> (Vec<Vec<Value>>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.csv");
    let script = dir.path().join("q.sql");
    let connector = match from_file {
        true => format!("connector = 'file', path = '{}'", case.csv.display()),
        false => "connector = 'stdin'".to_string(),
    };
    std::fs::write(
        &script,
        source(&connector, "")
            + &format!(
                "CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');\nINSERT INTO out {QUERY}",
                out.display()
            ),
    )
    .expect("write script");
    let mut child = common::laminar()
        .arg("run")
        .arg(&script)
        .args(["--cores", &cores.to_string()])
        .args(["--batch-size", &batch_size.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let data = match from_file {
        true => Vec::new(),
        false => std::fs::read(&case.csv).expect("read csv"),
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    let err = common::stderr(&output);
    assert!(output.status.success(), "{err}");
    let counts = format!(
        "{} events read, {} late events dropped, 0 bad rows skipped",
        case.rows, case.late
    );
    assert!(err.contains(&counts), "--cores {cores}: {err}");
    let summary = err
        .lines()
        .find(|l| l.contains("events read"))
        .and_then(|l| l.split(" in ").next())
        .expect("summary line")
        .to_string();
    let actual = laminar_tests::read_oracle_results_csv(&out);
    assert_rows_match(&actual, &case.expected);
    (actual, summary)
}

#[test]
fn a_csv_file_gives_the_same_results_at_every_thread_and_core_count_and_batch_size() {
    for (rows, sizes) in [(3_000, &[1][..]), (40_000, &[7, 8192][..])] {
        let case = case(rows);
        for &batch_size in sizes {
            let single = run_file(&case, 0, 1, batch_size);
            for (threads, cores) in [(1, 1), (0, 2), (1, 2), (2, 3)] {
                let actual = run_file(&case, threads, cores, batch_size);
                assert!(
                    actual == single,
                    "{threads} decode threads on {cores} cores at batch size {batch_size} changed the output"
                );
            }
        }
    }
}

#[test]
fn the_binary_gives_the_same_results_at_every_core_count_and_batch_size() {
    for (rows, sizes) in [(3_000, &[1][..]), (40_000, &[7, 8192][..])] {
        let case = case(rows);
        for &batch_size in sizes {
            for from_file in [false, true] {
                let what = if from_file { "file" } else { "stdin" };
                let (single, summary) = run_binary(&case, from_file, 1, batch_size);
                for cores in [2, 3] {
                    let (actual, other) = run_binary(&case, from_file, cores, batch_size);
                    let what = format!("{what}, --cores {cores}, batch size {batch_size}");
                    assert_eq!(other, summary, "{what}");
                    assert!(actual == single, "{what} changed the output");
                }
            }
        }
    }
}

/// Writes the bids with bad lines among them (at 0-based data rows `bad`) and returns the
/// file's line numbers of those rows (the header is line 1).
fn csv_with_bad_rows(path: &Path, rows: u64, bad: &[usize]) -> Vec<u64> {
    let bids = bids_with_nulls(rows);
    bids.write_csv(path);
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for &row in bad {
        lines[row + 1] = "not-a-time,7,8,1.5,web".into();
    }
    std::fs::write(path, lines.join("\n") + "\n").expect("write csv");
    bad.iter().map(|&row| row as u64 + 2).collect()
}

#[test]
fn a_bad_row_deep_in_the_file_is_reported_and_counted_the_same_at_every_thread_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bad.csv");
    let bad_lines = csv_with_bad_rows(&csv, 30_000, &[21_345, 21_350, 27_001]);
    let connector = format!("connector = 'file', path = '{}'", csv.display());
    for batch_size in [7, 8192] {
        let mut first_error: Option<String> = None;
        let mut skipped: Option<(Vec<Vec<Value>>, u64, u64, u64)> = None;
        for (threads, cores) in [(0, 1), (1, 2), (2, 3)] {
            let config = || config(threads, cores, batch_size);
            let what = format!("{threads} decode threads, {cores} cores, batch size {batch_size}");

            let sql = source(&connector, ", on_error = 'fail'") + QUERY;
            let err = collect(&mut Engine::with_config(config()), &sql)
                .expect_err("a bad row fails the run")
                .to_string();
            assert!(
                err.contains(&format!(":{}: ", bad_lines[0])),
                "{what}: {err}"
            );
            match &first_error {
                None => first_error = Some(err),
                Some(first) => assert_eq!(&err, first, "{what}"),
            }

            let sql = source(&connector, ", on_error = 'skip'") + QUERY;
            let (results, summary) =
                collect(&mut Engine::with_config(config()), &sql).expect("query runs");
            assert_eq!(summary.bad_rows_skipped, 3, "{what}");
            assert_eq!(summary.events_read, 30_000 - 3, "{what}");
            let got = (
                sorted_rows(&results),
                summary.events_read,
                summary.late_events_dropped,
                summary.windows_emitted,
            );
            match &skipped {
                None => skipped = Some(got),
                Some(first) => assert!(&got == first, "{what} changed the output"),
            }
        }
    }
}

#[test]
fn a_query_without_aggregate_gives_the_same_rows_in_the_same_order_at_every_core_count() {
    let rows = 20_000;
    let bids = bids_with_nulls(rows);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    bids.write_csv(&csv);
    let select = "SELECT ts, auction, price * 2 AS doubled, channel FROM";
    let filter = "WHERE price > 100 OR channel IS NULL";
    let expected = sorted_rows(&batch_sql(
        bids.all.clone(),
        &format!("{select} kept {filter}"),
        Vec::new(),
        1,
    ));
    let connector = format!("connector = 'file', path = '{}'", csv.display());
    let sql = source(&connector, "") + &format!("{select} bids {filter};");
    let run = |threads: usize, cores: usize, batch_size: usize| {
        let mut engine = Engine::with_config(config(threads, cores, batch_size));
        let (results, summary) = collect(&mut engine, &sql).expect("query runs");
        assert_eq!(summary.events_read, rows);
        let schema = results[0].schema();
        datafusion::arrow::compute::concat_batches(&schema, &results).expect("concat")
    };
    let single = run(0, 1, 7);
    assert_rows_match(&sorted_rows(std::slice::from_ref(&single)), &expected);
    for (threads, cores, batch_size) in [(1, 2, 7), (2, 3, 7), (1, 2, 8192), (0, 3, 1)] {
        let got = run(threads, cores, batch_size);
        assert!(
            got == single,
            "{threads} decode threads on {cores} cores at batch size {batch_size}: other rows or another order"
        );
    }
}
