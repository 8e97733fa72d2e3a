//! Smaller things a new user of scripts ran into (issue 29), each pinned through the
//! binary: a bare integer in a TIMESTAMP column is epoch milliseconds in CSV and JSON alike;
//! NaN, ±infinity and NULL stay apart in CSV and JSON output; an empty CSV result still has
//! its header; duplicate WITH options, too many cores and flag errors are reported plainly.

use crate::common;

use common::{assert_clean_error, run_script, stderr, stdout};

/// Runs `script` in a fresh directory holding `files`, with `extra` arguments.
fn run_with(files: &[(&str, &str)], script: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, data) in files {
        std::fs::write(dir.path().join(name), data).expect("write data");
    }
    run_script(dir.path(), script, extra)
}

/// The rows of stdout, sorted.
fn sorted_rows(out: &std::process::Output) -> Vec<String> {
    let mut rows: Vec<String> = stdout(out).lines().map(str::to_string).collect();
    rows.sort();
    rows
}

#[test]
fn a_bare_integer_in_a_timestamp_column_is_epoch_milliseconds_in_csv_and_json() {
    let csv =
        "ts,auction,price\n1704067203000,7,2.5\n2024-01-01T00:00:04,7,1.5\n1704067215000,7,9.0\n";
    let json = "{\"ts\":1704067203000,\"auction\":7,\"price\":2.5}\n\
                {\"ts\":\"2024-01-01T00:00:04\",\"auction\":7,\"price\":1.5}\n\
                {\"ts\":\"1704067215000\",\"auction\":7,\"price\":9.0}\n";
    for (file, data, format) in [("in.csv", csv, "csv"), ("in.json", json, "json")] {
        let source = format!(
            "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE,
                WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH (connector = 'file', path = '{file}', format = '{format}');\n"
        );
        let rows = run_with(
            &[(file, data)],
            &(source.clone() + "SELECT ts, auction, price FROM bids;"),
            &["--output", "csv"],
        );
        assert!(rows.status.success(), "{format}: {}", stderr(&rows));
        assert_eq!(
            sorted_rows(&rows),
            [
                "2024-01-01T00:00:03,7,2.5",
                "2024-01-01T00:00:04,7,1.5",
                "2024-01-01T00:00:15,7,9.0",
                "ts,auction,price"
            ],
            "{format}"
        );
        // In 2024, not in 1970: the windows hold every row and none is late.
        let windows = run_with(
            &[(file, data)],
            &(source
                + "SELECT TUMBLE_START(ts, INTERVAL '10' SECOND) AS w, COUNT(*) AS n
                   FROM bids GROUP BY TUMBLE(ts, INTERVAL '10' SECOND);"),
            &["--output", "csv"],
        );
        let err = stderr(&windows);
        assert!(windows.status.success(), "{format}: {err}");
        assert_eq!(
            sorted_rows(&windows),
            ["2024-01-01T00:00:00,2", "2024-01-01T00:00:10,1", "w,n"],
            "{format}"
        );
        assert!(
            err.contains("3 events read, 0 late events dropped"),
            "{err}"
        );
    }
}

#[test]
fn a_number_that_is_no_integer_in_a_timestamp_column_is_an_error_naming_the_column() {
    for (file, data, format) in [
        ("in.csv", "ts,price\n1704067203000.5,2.5\n", "csv"),
        (
            "in.json",
            "{\"ts\":1704067203000.5,\"price\":2.5}\n",
            "json",
        ),
    ] {
        let script = format!(
            "CREATE SOURCE bids (ts TIMESTAMP, price DOUBLE)
             WITH (connector = 'file', path = '{file}', format = '{format}');
             SELECT ts, price FROM bids;"
        );
        let out = run_with(&[(file, data)], &script, &[]);
        assert_clean_error(&out, &[&format!("{file}:"), "column 'ts'"]);
    }
}

const SPECIAL_FLOATS: &str = "id,price\n1,NaN\n2,inf\n3,-inf\n4,\n5,2.5\n";

fn special_floats_source() -> &'static str {
    "CREATE SOURCE bids (id BIGINT, price DOUBLE)
     WITH (connector = 'file', path = 'in.csv', format = 'csv');\n"
}

#[test]
fn nan_infinities_and_null_are_distinguishable_in_csv_and_json_output() {
    let query = "SELECT id, price, price * 2 AS doubled FROM bids;";
    let script = special_floats_source().to_string() + query;
    let csv = run_with(&[("in.csv", SPECIAL_FLOATS)], &script, &["--output", "csv"]);
    assert!(csv.status.success(), "{}", stderr(&csv));
    assert_eq!(
        sorted_rows(&csv),
        [
            "1,NaN,NaN",
            "2,inf,inf",
            "3,-inf,-inf",
            "4,,",
            "5,2.5,5.0",
            "id,price,doubled"
        ]
    );
    let json = run_with(
        &[("in.csv", SPECIAL_FLOATS)],
        &script,
        &["--output", "json"],
    );
    assert!(json.status.success(), "{}", stderr(&json));
    assert_eq!(
        sorted_rows(&json),
        [
            r#"{"id":1,"price":"NaN","doubled":"NaN"}"#,
            r#"{"id":2,"price":"Infinity","doubled":"Infinity"}"#,
            r#"{"id":3,"price":"-Infinity","doubled":"-Infinity"}"#,
            r#"{"id":4,"price":null,"doubled":null}"#,
            r#"{"id":5,"price":2.5,"doubled":5.0}"#,
        ]
    );
    // A JSON file sink writes the same lines.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), SPECIAL_FLOATS).expect("write data");
    let sink = special_floats_source().to_string()
        + "CREATE SINK out WITH (connector = 'file', path = 'out.json', format = 'json');
           INSERT INTO out "
        + query;
    let out = run_script(dir.path(), &sink, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(dir.path().join("out.json")).expect("sink file");
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort();
    assert_eq!(lines, sorted_rows(&json));
}

#[test]
fn an_empty_csv_result_on_stdout_is_its_header_line() {
    let script = special_floats_source().to_string() + "SELECT id, price FROM bids WHERE id > 100;";
    let out = run_with(&[("in.csv", SPECIAL_FLOATS)], &script, &["--output", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "id,price\n");
    // JSON lines of no rows are no lines.
    let out = run_with(
        &[("in.csv", SPECIAL_FLOATS)],
        &script,
        &["--output", "json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

const BIDS: &str = "ts,auction,price\n1000,1,2.0\n2000,1,3.0\n12000,2,4.0\n";

fn bids_source(extra: &str) -> String {
    format!(
        "CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE,
            WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH (connector = 'file', path = 'bids.csv'{extra});\n"
    )
}

#[test]
fn cores_above_the_cpu_count_are_capped_with_a_warning_naming_the_count() {
    let script = bids_source("")
        + "SELECT auction, COUNT(*) AS n FROM bids GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND);";
    let started = std::time::Instant::now();
    let out = run_with(
        &[("bids.csv", BIDS)],
        &script,
        &["--output", "csv", "--cores", "10000"],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: --cores 10000 is more than the ") && err.contains("CPUs available"),
        "{err}"
    );
    assert_eq!(sorted_rows(&out), ["1,2", "2,1", "auction,n"]);
    // 10 000 core and decoder threads took seconds to start.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn flag_errors_name_the_flag_without_a_sql_prefix() {
    let script = bids_source("") + "SELECT auction FROM bids;";
    for (args, expected) in [
        (&["--batch-size", "0"][..], "--batch-size"),
        (&["--plugin-memory-mb", "0"][..], "--plugin-memory-mb"),
        (&["--plugin-timeout-ms", "0"][..], "--plugin-timeout-ms"),
        (&["--plugin", "=x.wasm"][..], "--plugin '=x.wasm'"),
        (&["--cores", "0"][..], "--cores"),
    ] {
        let out = run_with(&[("bids.csv", BIDS)], &script, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("SQL error"), "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    let out = run_with(&[("bids.csv", BIDS)], &script, &["--plugin-memory-mb", "0"]);
    assert_clean_error(
        &out,
        &["error: --plugin-memory-mb must be between 1 and 4096"],
    );
}

#[test]
fn an_option_given_twice_is_an_error_naming_it() {
    let source = bids_source(", path = 'other.csv'") + "SELECT auction FROM bids;";
    let out = run_with(&[("bids.csv", BIDS)], &source, &[]);
    assert_clean_error(
        &out,
        &[
            "query.sql:1:",
            "source 'bids'",
            "option 'path' is given twice",
        ],
    );
    let sink = bids_source("")
        + "CREATE SINK out WITH (connector = 'file', path = 'a.csv', PATH = 'b.csv');
           INSERT INTO out SELECT auction FROM bids;";
    let out = run_with(&[("bids.csv", BIDS)], &sink, &[]);
    assert_clean_error(&out, &["sink 'out'", "option 'path' is given twice"]);
}

#[test]
fn every_window_kind_plans_and_an_unknown_one_is_answered_with_the_kinds_that_exist() {
    for window in [
        "HOP(ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND)",
        "SESSION(ts, INTERVAL '5' SECOND)",
    ] {
        let script = bids_source("")
            + &format!("SELECT auction, COUNT(*) AS n FROM bids GROUP BY auction, {window};");
        let out = run_with(&[("bids.csv", BIDS)], &script, &["--output", "csv"]);
        assert!(out.status.success(), "{window}: {}", stderr(&out));
    }
    for query in [
        "SELECT auction, COUNT(*) FROM bids GROUP BY auction, TUMBLING(ts, INTERVAL '10' SECOND);",
        "SELECT auction, COUNT(*) FROM bids GROUP BY auction, SLIDE(ts, INTERVAL '1' SECOND, INTERVAL '10' SECOND);",
        "SELECT window_start, COUNT(*) FROM TUMBLING(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY window_start, window_end;",
    ] {
        let out = run_with(&[("bids.csv", BIDS)], &(bids_source("") + query), &[]);
        assert_clean_error(
            &out,
            &["unknown window function", "TUMBLE", "HOP", "SESSION", "CUMULATE"],
        );
        assert!(!stderr(&out).contains("Did you mean"), "{}", stderr(&out));
    }
}

#[test]
fn relative_paths_in_a_script_resolve_against_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("scripts")).expect("mkdir");
    std::fs::write(dir.path().join("bids.csv"), BIDS).expect("write data");
    let script = dir.path().join("scripts").join("q.sql");
    std::fs::write(&script, bids_source("") + "SELECT auction FROM bids;").expect("script");
    // Run from the data's directory: the script's own directory holds no bids.csv.
    let out = common::laminar()
        .current_dir(dir.path())
        .args(["run", "--output", "csv"])
        .arg(&script)
        .output()
        .expect("run laminar");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sorted_rows(&out), ["1", "1", "2", "auction"]);
}
