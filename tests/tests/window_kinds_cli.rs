//! HOP, CUMULATE and SESSION windows through the `laminar` binary: over CSV and JSON files
//! and stdin, at several core counts and batch sizes, against the oracles of
//! `oracle_window_kinds` (DataFusion batch SQL over the rows the contract keeps, and the
//! sequential session model); the late sink against the contract's late rows in arrival
//! order; a HOP stream read by a later query and a HOP filtered on its window bounds.

use crate::common;
use crate::oracle_window_kinds::*;
use laminar_tests::{assert_rows_match, batch_sql, sorted_rows, Value};

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use datafusion::arrow::array::UInt32Array;
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

// ---- through the binary -----------------------------------------------------------------

fn write_json(batch: &RecordBatch, path: &Path) {
    let file = std::fs::File::create(path).expect("create json");
    let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(file);
    writer.write(batch).expect("write json");
    writer.finish().expect("finish json");
}

/// A CSV result file read with the given column types, as sorted rows.
fn read_results(path: &Path, types: &[DataType]) -> Vec<Vec<Value>> {
    let schema = Arc::new(Schema::new(
        types
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("c{i}"), t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let file = std::fs::File::open(path).expect("open results");
    let reader = datafusion::arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .build(file)
        .expect("csv reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("csv batch")).collect();
    sorted_rows(&batches)
}

/// Runs `query` through the binary over `input` (a CSV or JSON file, or CSV on stdin),
/// writing to a CSV file sink; returns the rows and stderr.
fn run_binary(
    dir: &Path,
    input: &Path,
    format: &str,
    stdin: bool,
    query: &str,
    args: &[&str],
    types: &[DataType],
) -> (Vec<Vec<Value>>, String) {
    let out = dir.join("out.csv");
    let connector = if stdin {
        "connector = 'stdin'".to_string()
    } else {
        format!("connector = 'file', path = '{}'", input.display())
    };
    let script = dir.join("q.sql");
    // Statements before the query (a CREATE SINK) come first.
    let (prefix, query) = match query.rsplit_once(";\n") {
        Some((prefix, query)) => (format!("{prefix};"), query),
        None => (String::new(), query),
    };
    std::fs::write(
        &script,
        format!(
            "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
                 channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '3' SECOND)
             WITH ({connector}, format = '{format}');
             CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
             {prefix}
             INSERT INTO out {query};",
            out.display()
        ),
    )
    .expect("write script");
    let mut child = common::laminar()
        .arg("run")
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let data = if stdin {
        std::fs::read(input).expect("read input")
    } else {
        Vec::new()
    };
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || pipe.write_all(&data));
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    let err = common::stderr(&output);
    assert!(output.status.success(), "{err}");
    (read_results(&out, types), err)
}

#[test]
fn hop_cumulate_and_session_through_the_binary_over_files_and_stdin() {
    let bids = bids(6_000, 37);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    let json = dir.path().join("bids.json");
    bids.write_csv(&csv);
    write_json(&bids.all, &json);
    let rows = bids.all.num_rows();
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);

    let (kept, hop_late) = unnested(&bids.all, |t| hop_windows(t, 2_000, 10_000), DELAY_MS);
    let hop_expected = sorted_rows(&batch_sql(
        kept,
        &format!("SELECT auction, ws, we, COUNT(*), SUM(price), MAX(price) FROM kept WHERE {FILTER} GROUP BY auction, ws, we"),
        Vec::new(),
        1,
    ));
    let hop_query = format!(
        "SELECT auction, window_start, window_end, COUNT(*), SUM(price), MAX(price)
         FROM HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)
         WHERE {FILTER} GROUP BY window_start, window_end, auction"
    );
    let (kept, cumulate_late) =
        unnested(&bids.all, |t| cumulate_windows(t, 2_000, 10_000), DELAY_MS);
    let cumulate_expected = sorted_rows(&batch_sql(
        kept,
        &format!("SELECT auction, ws, we, COUNT(*), SUM(price), MAX(price) FROM kept WHERE {FILTER} GROUP BY auction, ws, we"),
        Vec::new(),
        1,
    ));
    let cumulate_query = format!(
        "SELECT auction, window_start, window_end, COUNT(*), SUM(price), MAX(price)
         FROM CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)
         WHERE {FILTER} GROUP BY window_start, window_end, auction"
    );
    let (sessions, session_late) =
        session_model(&bids.all, 2_000, DELAY_MS, channel_passes(&bids.all));
    let session_expected = session_rows(&bids.all, &sessions);
    let session_query = format!(
        "SELECT auction, SESSION_START(ts, INTERVAL '2' SECOND), SESSION_END(ts, INTERVAL '2' SECOND),
                {SESSION_AGGREGATES}
         FROM bids WHERE {FILTER} GROUP BY auction, SESSION(ts, INTERVAL '2' SECOND)"
    );
    let fixed_types = [
        DataType::Int64,
        ts.clone(),
        ts.clone(),
        DataType::Int64,
        DataType::Float64,
        DataType::Float64,
    ];
    let session_types = [
        DataType::Int64,
        ts.clone(),
        ts,
        DataType::Int64,
        DataType::Float64,
        DataType::Float64,
        DataType::Int64,
    ];
    let runs: [(&Path, &str, bool, &str, &str); 3] = [
        (&csv, "csv", false, "1", "8192"),
        (&json, "json", false, "2", "7"),
        (&csv, "csv", true, "3", "1"),
    ];
    for (input, format, stdin, cores, batch_size) in runs {
        let args = ["--cores", cores, "--batch-size", batch_size];
        let what = format!("{format}, stdin {stdin}, {cores} cores, batch size {batch_size}");
        for (query, expected, late, types) in [
            (&hop_query, &hop_expected, hop_late.len(), &fixed_types[..]),
            (
                &cumulate_query,
                &cumulate_expected,
                cumulate_late.len(),
                &fixed_types[..],
            ),
            (
                &session_query,
                &session_expected,
                session_late.len(),
                &session_types[..],
            ),
        ] {
            let (actual, err) = run_binary(dir.path(), input, format, stdin, query, &args, types);
            assert_rows_match(&actual, expected);
            assert!(
                err.contains(&format!("{rows} events read, {late} late events dropped")),
                "{what}: {err}"
            );
        }
    }
}

/// Rows of `batches` in their order (not sorted), timestamps as epoch ms.
fn ordered_rows(batches: &[RecordBatch]) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for batch in batches {
        for i in 0..batch.num_rows() {
            rows.extend(sorted_rows(&[batch.slice(i, 1)]));
        }
    }
    rows
}

/// The rows of a late sink's CSV file (the bids' source columns), in file order.
fn read_late_sink(path: &Path) -> Vec<RecordBatch> {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let source_types = [
        ts,
        DataType::Int64,
        DataType::Int64,
        DataType::Float64,
        DataType::Utf8,
    ];
    let file = std::fs::File::open(path).expect("late sink");
    let schema = Arc::new(Schema::new(
        ["ts", "auction", "bidder", "price", "channel"]
            .iter()
            .zip(&source_types)
            .map(|(name, t)| Field::new(*name, t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    datafusion::arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .build(file)
        .expect("csv reader")
        .map(|b| b.expect("csv batch"))
        .collect()
}

#[test]
fn the_late_sink_holds_exactly_the_contracts_late_rows_in_arrival_order() {
    let bids = bids(6_000, 38);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    bids.write_csv(&csv);
    let rows = bids.all.num_rows();
    let late_path = dir.path().join("late.csv");
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let (_, hop_late) = unnested(&bids.all, |t| hop_windows(t, 2_000, 10_000), DELAY_MS);
    let (_, cumulate_late) = unnested(&bids.all, |t| cumulate_windows(t, 2_000, 10_000), DELAY_MS);
    let (_, tumble_late) = unnested(&bids.all, |t| hop_windows(t, 10_000, 10_000), DELAY_MS);
    let late_sink = format!(
        "CREATE SINK late_bids WITH (connector = 'file', path = '{}', format = 'csv');",
        late_path.display()
    );
    let queries = [
        (
            "HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)",
            &hop_late,
        ),
        (
            "CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)",
            &cumulate_late,
        ),
        (
            "TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)",
            &tumble_late,
        ),
    ];
    for (stdin, cores, batch_size) in [(false, "2", "7"), (true, "3", "8192"), (false, "1", "1")] {
        for (window, late) in queries {
            assert!(late.len() > 50);
            let query = format!(
                "SELECT auction, window_start, COUNT(*) FROM {window}
                 WHERE {FILTER} GROUP BY window_start, window_end, auction
                 EMIT ON WINDOW CLOSE LATE DATA TO late_bids"
            );
            let (_, err) = run_binary(
                dir.path(),
                &csv,
                "csv",
                stdin,
                &format!("{late_sink}\n{query}"),
                &["--cores", cores, "--batch-size", batch_size],
                &[DataType::Int64, ts.clone(), DataType::Int64],
            );
            let what = format!("{window}, stdin {stdin}, {cores} cores, batch size {batch_size}");
            assert!(
                err.contains(&format!(
                    "{rows} events read, {} late events dropped",
                    late.len()
                )),
                "{what}: {err}"
            );
            let written = read_late_sink(&late_path);
            let indices = UInt32Array::from(late.iter().map(|&i| i as u32).collect::<Vec<_>>());
            let expected = take_record_batch(&bids.all, &indices).expect("take");
            assert_eq!(ordered_rows(&written), ordered_rows(&[expected]), "{what}");
        }
    }
}

#[test]
fn a_hop_stream_read_by_a_later_query_matches_datafusion() {
    let bids = bids(8_000, 39);
    let (kept, _) = unnested(&bids.all, |t| hop_windows(t, 5_000, 15_000), DELAY_MS);
    let expected = sorted_rows(&batch_sql(
        kept,
        "SELECT * FROM (SELECT auction, ws, we, COUNT(*) AS n, SUM(price) AS s
                        FROM kept GROUP BY auction, ws, we) WHERE n > 1",
        Vec::new(),
        1,
    ));
    assert!(expected.len() > 100);
    let (actual, _) = run_engine(
        &bids,
        7,
        2,
        "CREATE STREAM busy AS
           SELECT auction, window_start, window_end, COUNT(*) AS n, SUM(price) AS s
           FROM HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '5' SECOND, INTERVAL '15' SECOND)
           GROUP BY window_start, window_end, auction;
         SELECT * FROM busy WHERE n > 1",
    );
    assert_rows_match(&actual, &expected);
}

#[test]
fn hop_filtered_on_its_window_bounds_matches_datafusion() {
    // A WHERE on window_start filters (row, window) pairs: the rows then carry each
    // window's bounds rather than going to the aggregate once by pane.
    let bids = bids(8_000, 40);
    let (kept, late) = unnested(&bids.all, |t| hop_windows(t, 2_000, 10_000), DELAY_MS);
    let expected = sorted_rows(&batch_sql(
        kept,
        "SELECT auction, ws, we, COUNT(*), SUM(price) FROM kept
         WHERE ws >= TIMESTAMP '2024-01-01T00:00:06' GROUP BY auction, ws, we",
        Vec::new(),
        1,
    ));
    for (batch_size, cores) in [(7, 1), (8192, 3)] {
        let (actual, summary) = run_engine(
            &bids,
            batch_size,
            cores,
            "SELECT auction, window_start, window_end, COUNT(*), SUM(price)
             FROM HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '10' SECOND)
             WHERE window_start >= TIMESTAMP '2024-01-01T00:00:06'
             GROUP BY window_start, window_end, auction",
        );
        assert_rows_match(&actual, &expected);
        assert_eq!(summary.late_events_dropped, late.len() as u64);
    }
}

#[test]
fn a_session_late_sink_holds_exactly_the_models_late_rows_in_arrival_order() {
    // SESSION lateness is decided per key after WHERE (by the aggregate): the late sink
    // must hold exactly the sequential model's late rows, every source column, in arrival
    // order, as many as the summary counts; from a file and stdin, at 1 and 2 cores, with
    // and without --state-dir (checkpointing every 10 ms).
    let bids = bids(6_000, 41);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bids.csv");
    bids.write_csv(&csv);
    let rows = bids.all.num_rows();
    let late_path = dir.path().join("late.csv");
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let (sessions, late) = session_model(&bids.all, 2_000, DELAY_MS, channel_passes(&bids.all));
    assert!(
        late.len() > 50,
        "the data must hold late rows: {}",
        late.len()
    );
    let expected_results = session_rows(&bids.all, &sessions);
    let indices = UInt32Array::from(late.iter().map(|&i| i as u32).collect::<Vec<_>>());
    let expected_late = ordered_rows(&[take_record_batch(&bids.all, &indices).expect("take")]);
    let query = format!(
        "CREATE SINK late_bids WITH (connector = 'file', path = '{}', format = 'csv');
         SELECT auction, SESSION_START(ts, INTERVAL '2' SECOND), SESSION_END(ts, INTERVAL '2' SECOND),
                {SESSION_AGGREGATES}
         FROM bids WHERE {FILTER} GROUP BY auction, SESSION(ts, INTERVAL '2' SECOND)
         EMIT ON WINDOW CLOSE LATE DATA TO late_bids",
        late_path.display()
    );
    let types = [
        DataType::Int64,
        ts.clone(),
        ts,
        DataType::Int64,
        DataType::Float64,
        DataType::Float64,
        DataType::Int64,
    ];
    for (stdin, cores, batch_size, durable) in [
        (false, "1", "7", false),
        (false, "2", "8192", true),
        (true, "1", "8192", true),
        (true, "2", "1", false),
    ] {
        let state = dir
            .path()
            .join(format!("state-{stdin}-{cores}-{batch_size}"));
        let mut args = vec!["--cores", cores, "--batch-size", batch_size];
        let state_arg = state.display().to_string();
        if durable {
            args.extend(["--state-dir", &state_arg, "--checkpoint-interval", "10ms"]);
        }
        let what =
            format!("stdin {stdin}, {cores} cores, batch size {batch_size}, durable {durable}");
        let (actual, err) = run_binary(dir.path(), &csv, "csv", stdin, &query, &args, &types);
        assert_rows_match(&actual, &expected_results);
        assert!(
            err.contains(&format!(
                "{rows} events read, {} late events dropped",
                late.len()
            )),
            "{what}: {err}"
        );
        let written = ordered_rows(&read_late_sink(&late_path));
        assert_eq!(written.len(), late.len(), "{what}");
        assert!(written == expected_late, "{what}: late rows differ");
    }
}
