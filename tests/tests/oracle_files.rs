//! The oracle query over real files: out-of-order bids with late events and NULLs are
//! written as CSV and as JSON lines by arrow's own writers, read by Laminar through
//! `CREATE SOURCE … WITH (connector = 'file')` (and through stdin of the `laminar`
//! binary), and the result must equal DataFusion batch SQL over the rows that were on
//! time. Every input record must be accounted for in the counters.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use laminar::gen::BidsConfig;
use laminar::{Engine, EngineConfig};
use laminar_tests::{assert_rows_match, batch_sql, collect, sorted_rows, Bids, Value};

const WINDOW_MS: i64 = 10_000;
const DELAY_MS: i64 = 3_000;
const ROWS: u64 = 40_000;

/// Bids with NULLs: every 13th bidder, 17th price and 19th channel.
fn bids_with_nulls() -> Bids {
    let bids = Bids::with_nulls(&BidsConfig {
        rows: ROWS,
        seed: 23,
        disorder_ms: 4_000,
        late_fraction: 0.02,
        auctions: 200,
        events_per_second: 2_000,
        ..BidsConfig::default()
    });
    assert!(bids.all.column(3).null_count() > 1_000);
    bids
}

fn write_json(batch: &RecordBatch, path: &Path) {
    let file = std::fs::File::create(path).expect("create json");
    let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(file);
    writer.write(batch).expect("write json");
    writer.finish().expect("finish json");
}

fn source(connector: &str, format: &str, batch_size: usize) -> String {
    format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
             channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '3' SECOND)
         WITH ({connector}, format = '{format}', batch_size = '{batch_size}');\n"
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

#[test]
fn csv_and_json_files_with_late_events_and_nulls_match_datafusion() {
    let bids = bids_with_nulls();
    let (kept, expected_late) = bids.on_time(WINDOW_MS, DELAY_MS);
    assert!(expected_late > 300, "the data must contain late events");
    let expected = sorted_rows(&batch_sql(kept, ORACLE_SQL, Vec::new(), 1));
    assert!(!expected.is_empty());

    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    let json = dir.path().join("bids.json");
    bids.write_csv(&csv);
    write_json(&bids.all, &json);

    let mut first: Option<Vec<Vec<Value>>> = None;
    for (path, format) in [(&csv, "csv"), (&json, "json")] {
        for batch_size in [7, 8192] {
            let connector = format!("connector = 'file', path = '{}'", path.display());
            let sql = source(&connector, format, batch_size) + QUERY;
            let mut engine = Engine::with_config(EngineConfig::default());
            let (results, summary) = collect(&mut engine, &sql).expect("query runs");
            let actual = sorted_rows(&results);
            let what = format!("{format}, batch size {batch_size}");
            assert_rows_match(&actual, &expected);
            assert_eq!(summary.events_read, ROWS, "{what}");
            assert_eq!(summary.late_events_dropped, expected_late, "{what}");
            assert_eq!(summary.bad_rows_skipped, 0, "{what}");
            match &first {
                None => first = Some(actual),
                Some(first) => assert_eq!(&actual, first, "{what} changed the output"),
            }
        }
    }
}

#[test]
fn csv_through_stdin_of_the_binary_matches_datafusion() {
    let bids = bids_with_nulls();
    let (kept, expected_late) = bids.on_time(WINDOW_MS, DELAY_MS);
    let expected = sorted_rows(&batch_sql(kept, ORACLE_SQL, Vec::new(), 1));

    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    bids.write_csv(&csv);
    let out = dir.path().join("out.csv");
    let script = dir.path().join("q.sql");
    std::fs::write(
        &script,
        source("connector = 'stdin'", "csv", 1000)
            + &format!(
                "CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');\nINSERT INTO out {QUERY}",
                out.display()
            ),
    )
    .expect("write script");
    let mut child = common::laminar()
        .arg("run")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let data = std::fs::read(&csv).expect("read csv");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    let err = common::stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{ROWS} events read, {expected_late} late events dropped, 0 bad rows skipped"
        )),
        "{err}"
    );

    assert_rows_match(&laminar_tests::read_oracle_results_csv(&out), &expected);
}
