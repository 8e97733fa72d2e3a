//! Bad input gives one clear error line naming the place, a non-zero exit and no panic;
//! `on_error = 'skip'` skips bad rows and counts them.

use crate::common;

use common::{assert_clean_error, run_script, stderr, stdout};

const HEADER: &str = "ts,auction,price\n";

fn source(path: &str, extra: &str) -> String {
    format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE,
            WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH (connector = 'file', path = '{path}', format = 'csv'{extra});\n"
    )
}

const QUERY: &str =
    "SELECT auction, COUNT(*) AS n FROM bids GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND);";

fn run_with_data(data: &str, extra: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bids.csv"), data).expect("write data");
    run_script(
        dir.path(),
        &(source("bids.csv", extra) + QUERY),
        &["--output", "csv"],
    )
}

#[test]
fn malformed_number_names_file_line_and_column() {
    let out = run_with_data(
        &format!("{HEADER}2024-01-01T00:00:01,1,2.5\n2024-01-01T00:00:02,abc,1.0\n"),
        "",
    );
    assert_clean_error(&out, &["bids.csv:3:", "'abc'", "auction"]);
}

#[test]
fn wrong_column_count_names_the_line() {
    let out = run_with_data(
        &format!("{HEADER}2024-01-01T00:00:01,1,2.5\n2024-01-01T00:00:02,1\n"),
        "",
    );
    assert_clean_error(&out, &["bids.csv:3:", "expected 3"]);
}

#[test]
fn unparseable_timestamp_names_the_line() {
    let out = run_with_data(&format!("{HEADER}yesterday,1,2.5\n"), "");
    assert_clean_error(&out, &["bids.csv:2:", "'yesterday'", "ts"]);
}

#[test]
fn null_event_time_names_the_line() {
    let out = run_with_data(&format!("{HEADER}2024-01-01T00:00:01,1,2.5\n,1,2.5\n"), "");
    assert_clean_error(&out, &["bids.csv:3:", "NULL"]);
}

#[test]
fn the_first_bad_row_is_named_whatever_the_batch_size() {
    // A NULL event time on line 3, a malformed number on line 6: line 3 is the input's
    // first error, whether both rows share a batch or not, at any thread count.
    let data = format!(
        "{HEADER}2024-01-01T00:00:01,1,2.5\n,1,2.5\n2024-01-01T00:00:02,1,2.5\n\
         2024-01-01T00:00:03,1,2.5\n2024-01-01T00:00:04,abc,1.0\n"
    );
    for batch in ["1", "2", "8192"] {
        for cores in ["1", "2"] {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("bids.csv"), &data).expect("write data");
            let out = run_script(
                dir.path(),
                &(source("bids.csv", "") + QUERY),
                &["--output", "csv", "--batch-size", batch, "--cores", cores],
            );
            assert_clean_error(&out, &["bids.csv:3:", "NULL"]);
        }
    }
}

#[test]
fn skip_policy_skips_and_counts_bad_rows() {
    let out = run_with_data(
        &format!(
            "{HEADER}2024-01-01T00:00:01,1,2.5\nbad,1,1\n2024-01-01T00:00:02,x,1\n2024-01-01T00:00:03,1\n2024-01-01T00:00:04,1,4.0\n"
        ),
        ", on_error = 'skip'",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "auction,n\n1,2\n");
    assert!(
        stderr(&out).contains("3 bad rows skipped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_column_is_a_planning_error_with_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bids.csv"), HEADER).expect("write");
    let out = run_script(
        dir.path(),
        &(source("bids.csv", "")
            + "SELECT nope, COUNT(*) FROM bids GROUP BY nope, TUMBLE(ts, INTERVAL '1' SECOND);"),
        &[],
    );
    assert_clean_error(&out, &["query.sql:4:", "nope"]);
}

#[test]
fn unknown_function_is_a_planning_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bids.csv"), HEADER).expect("write");
    let out = run_script(
        dir.path(),
        &(source("bids.csv", "") + "SELECT frobnicate(price) FROM bids;"),
        &[],
    );
    assert_clean_error(&out, &["query.sql:", "frobnicate"]);
}

#[test]
fn syntax_error_names_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_script(dir.path(), "SELECT a\n  FROM bids WHERE (;", &[]);
    assert_clean_error(&out, &["query.sql:2:", "syntax error"]);
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_script(dir.path(), &(source("missing.csv", "") + QUERY), &[]);
    assert_clean_error(&out, &["missing.csv", "No such file"]);
}

#[test]
fn missing_script_is_a_clean_error() {
    let out = common::laminar()
        .args(["run", "/nonexistent/q.sql"])
        .output()
        .expect("run");
    assert_clean_error(&out, &["/nonexistent/q.sql"]);
}

#[test]
fn unsupported_shapes_say_what_to_write_instead() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bids.csv"), HEADER).expect("write");
    for (query, expected) in [
        ("SELECT auction, COUNT(*) FROM bids GROUP BY auction;", "without a window"),
        ("SELECT auction FROM bids ORDER BY auction;", "ORDER BY"),
        ("SELECT a.auction FROM bids a JOIN bids b ON a.auction = b.auction;", "join"),
        ("SELECT auction, COUNT(*) FROM bids GROUP BY auction, TUMBLE(ts, INTERVAL '1' SECOND) EMIT CHANGES;", "EMIT CHANGES"),
        ("SELECT COUNT(DISTINCT auction) FROM bids GROUP BY TUMBLE(ts, INTERVAL '1' SECOND);", "DISTINCT"),
    ] {
        let out = run_script(dir.path(), &(source("bids.csv", "") + query), &[]);
        assert_clean_error(&out, &["unsupported", expected]);
    }
}
