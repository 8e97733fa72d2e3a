//! What a new user ran into, each pinned by a test: a line holding two records (a lone
//! carriage return, two JSON objects) is reported or counted, never lost; names follow
//! SQL's case rule; a failed run leaves the previous output file alone.

use crate::common;

use common::{assert_clean_error, run_script, stderr, stdout};

const SUM_PER_WINDOW: &str = "SELECT auction, COUNT(*) AS n, SUM(price) AS volume
    FROM bids GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND);";

fn source(file: &str, format: &str, extra: &str) -> String {
    format!(
        "CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE,
            WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH (connector = 'file', path = '{file}', format = '{format}'{extra});\n"
    )
}

fn run_on(file: &str, data: &str, format: &str, extra: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(file), data).expect("write data");
    run_script(
        dir.path(),
        &(source(file, format, extra) + SUM_PER_WINDOW),
        &["--output", "csv"],
    )
}

const CR_CSV: &str = "ts,auction,price\n1000,7,2.5\r2000,7,3.5\n4000,7,1.5\n12000,7,9.0\n";
const TWO_OBJECTS_JSON: &str =
    "{\"ts\":1000,\"auction\":7,\"price\":2.5}{\"ts\":2000,\"auction\":7,\"price\":3.5}\n\
    {\"ts\":4000,\"auction\":7,\"price\":1.5}\n{\"ts\":12000,\"auction\":7,\"price\":9.0}\n";

#[test]
fn a_csv_line_holding_two_records_is_an_error_naming_the_line() {
    let out = run_on("cr.csv", CR_CSV, "csv", "");
    assert_clean_error(&out, &["cr.csv:2:", "more than one record"]);
}

#[test]
fn a_json_line_holding_two_objects_is_an_error_naming_the_line() {
    let out = run_on("two.json", TWO_OBJECTS_JSON, "json", "");
    assert_clean_error(&out, &["two.json:1:", "more than one JSON object"]);
}

#[test]
fn skipped_lines_holding_two_records_are_counted_and_nothing_else_is_lost() {
    for (file, data, format) in [
        ("cr.csv", CR_CSV, "csv"),
        ("two.json", TWO_OBJECTS_JSON, "json"),
    ] {
        let out = run_on(file, data, format, ", on_error = 'skip'");
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        // The line with two records is skipped and counted; the other two rows of window
        // [0 s, 10 s) and the row at 12 s are all there.
        let mut rows: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
        rows.sort();
        assert_eq!(rows, ["7,1,1.5", "7,1,9.0", "auction,n,volume"], "{format}");
        assert!(
            err.contains("2 events read, 0 late events dropped, 1 bad rows skipped"),
            "{format}: {err}"
        );
    }
}

#[test]
fn crlf_line_endings_keep_working() {
    let data = "ts,auction,price\r\n1000,7,2.5\r\n2000,7,3.5\r\n4000,7,1.5\r\n12000,7,9.0\r\n";
    let out = run_on("crlf.csv", data, "csv", "");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let mut rows: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    rows.sort();
    assert_eq!(rows, ["7,1,9.0", "7,3,7.5", "auction,n,volume"]);
    assert!(
        err.contains("4 events read, 0 late events dropped, 0 bad rows skipped"),
        "{err}"
    );
}

#[test]
fn unquoted_names_are_case_insensitive_in_every_statement() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("case.csv"),
        "Ts,Auction,Price\n1000,7,2.5\n2000,7,3.5\n12000,7,9.0\n",
    )
    .expect("data");
    let out = run_script(
        dir.path(),
        "CREATE SOURCE Bids (Ts BIGINT, Auction BIGINT, Price DOUBLE,
            WATERMARK FOR TS AS ts - INTERVAL '1' SECOND)
         WITH (connector = 'file', path = 'case.csv', format = 'csv');
         CREATE STREAM Busy AS
         SELECT AUCTION, TUMBLE_START(ts, INTERVAL '10' SECOND) AS W, Count(*) AS N
         FROM bids GROUP BY Auction, TUMBLE(TS, INTERVAL '10' SECOND);
         CREATE SINK Out WITH (connector = 'file', path = 'out.csv', format = 'csv');
         INSERT INTO OUT SELECT auction, n FROM BUSY WHERE N > 1;",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(dir.path().join("out.csv")).expect("sink file");
    assert_eq!(written, "auction,n\n7,2\n");
}

#[test]
fn quoted_names_keep_their_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("q.csv"), "1000,7\n2000,7\n").expect("data");
    let script = "CREATE SOURCE \"Bids\" (\"Ts\" BIGINT, auction BIGINT,
            WATERMARK FOR \"Ts\" AS \"Ts\")
         WITH (connector = 'file', path = 'q.csv', format = 'csv');\n";
    let ok = run_script(
        dir.path(),
        &format!("{script}SELECT auction, COUNT(*) AS n FROM \"Bids\" GROUP BY auction, TUMBLE(\"Ts\", INTERVAL '10' SECOND);"),
        &["--output", "csv"],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "auction,n\n7,2\n");
    let unquoted = run_script(
        dir.path(),
        &format!(
            "{script}SELECT COUNT(*) FROM Bids GROUP BY TUMBLE(\"Ts\", INTERVAL '10' SECOND);"
        ),
        &[],
    );
    assert_clean_error(&unquoted, &["unknown source or stream 'bids'", "Bids"]);
}

#[test]
fn redeclaring_a_name_in_another_case_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (first, second) in [
        (
            "CREATE SOURCE Bids (ts BIGINT) WITH (connector = 'stdin');",
            "CREATE SOURCE BIDS (ts BIGINT) WITH (connector = 'stdin');",
        ),
        (
            "CREATE SINK Out WITH (connector = 'stdout');",
            "CREATE SINK oUT WITH (connector = 'stdout');",
        ),
        (
            "CREATE SOURCE Bids (ts BIGINT) WITH (connector = 'stdin');",
            "CREATE STREAM bids AS SELECT ts FROM bids;",
        ),
        (
            "CREATE SOURCE s (Ts BIGINT, ts BIGINT) WITH (connector = 'stdin');",
            "",
        ),
    ] {
        let out = run_script(dir.path(), &format!("{first}\n{second}"), &[]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{first} {second}: {err}");
        assert!(
            err.contains("already declared") || err.contains("declared twice"),
            "{first} {second}: {err}"
        );
    }
}

#[test]
fn a_failed_run_leaves_the_previous_output_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_file = dir.path().join("out.csv");
    std::fs::write(&out_file, "precious\n").expect("old output");
    let sink = "CREATE SINK out WITH (connector = 'file', path = 'out.csv', format = 'csv');\n";
    // The source file is missing.
    let out = run_script(
        dir.path(),
        &(source("missing.csv", "csv", "") + sink + "INSERT INTO out " + SUM_PER_WINDOW),
        &[],
    );
    assert_clean_error(&out, &["missing.csv"]);
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("out"),
        "precious\n"
    );
    // A bad row half way: the run fails after results were written.
    std::fs::write(
        dir.path().join("bad.csv"),
        "1000,7,2.5\n12000,7,1.0\n25000,7,3.0\n26000,x,1.0\n",
    )
    .expect("data");
    let out = run_script(
        dir.path(),
        &(source("bad.csv", "csv", ", batch_size = '1'")
            + sink
            + "INSERT INTO out "
            + SUM_PER_WINDOW),
        &[],
    );
    assert_clean_error(&out, &["bad.csv:4:"]);
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("out"),
        "precious\n"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    // A run that completes replaces it.
    std::fs::write(dir.path().join("good.csv"), "1000,7,2.5\n").expect("data");
    let out = run_script(
        dir.path(),
        &(source("good.csv", "csv", "") + sink + "INSERT INTO out " + SUM_PER_WINDOW),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("out"),
        "auction,n,volume\n7,1,2.5\n"
    );
}

#[test]
fn text_from_a_file_is_shown_escaped_in_an_error() {
    let out = run_on(
        "esc.csv",
        "ts,auction,price\n1000,\u{1b}[31mred\u{7},2.5\n",
        "csv",
        "",
    );
    assert_clean_error(&out, &["esc.csv:2:", "\\u{1b}[31mred"]);
    let err = stderr(&out);
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
}

/// Shapes of a script that would lose data are refused before anything runs: a sink
/// receiving both results and another query's late rows, a sink on the source's own file
/// or on another sink's, and two sources reading the one stdin.
#[test]
fn a_script_that_would_lose_data_is_refused_before_it_reads_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bids.csv"),
        "ts,price\n1000,5.0\n2000,1.0\n",
    )
    .expect("data");
    let source = "CREATE SOURCE bids (ts BIGINT, price DOUBLE)
        WITH (connector = 'file', path = 'bids.csv', format = 'csv');\n";
    let cases = [
        (
            format!(
                "{source}CREATE SINK o WITH (connector = 'file', path = 'o.csv', format = 'csv');
                 INSERT INTO o SELECT ts, price FROM bids WHERE price > 2;
                 SELECT window_start, COUNT(*) FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND)
                 GROUP BY window_start, window_end EMIT ON WINDOW CLOSE LATE DATA TO o;"
            ),
            "late rows need a sink of their own",
        ),
        (
            format!(
                "{source}CREATE SINK o WITH (connector = 'file', path = 'bids.csv', format = 'csv');
                 INSERT INTO o SELECT * FROM bids;"
            ),
            "source 'bids' reads it",
        ),
        (
            format!(
                "CREATE SINK o WITH (connector = 'file', path = './bids.csv', format = 'csv');
                 {source} INSERT INTO o SELECT * FROM bids;"
            ),
            "would destroy its own input",
        ),
        (
            format!(
                "{source}CREATE SINK a WITH (connector = 'file', path = 'o.csv', format = 'csv');
                 CREATE SINK b WITH (connector = 'file', path = 'o.csv', format = 'json');
                 INSERT INTO a SELECT * FROM bids;"
            ),
            "sink 'a' writes it",
        ),
        (
            "CREATE SOURCE s (ts BIGINT, price DOUBLE) WITH (connector = 'stdin', format = 'csv');
             CREATE SOURCE t (ts BIGINT, price DOUBLE) WITH (connector = 'stdin', format = 'csv');
             SELECT * FROM s WHERE price > 2;
             SELECT * FROM t WHERE price < 2;"
                .to_string(),
            "reads stdin, which source 's'",
        ),
    ];
    for (script, expected) in cases {
        let out = common::run_script(dir.path(), &script, &["--output", "csv"]);
        common::assert_clean_error(&out, &[expected]);
        assert!(common::stdout(&out).is_empty(), "{script}");
        assert!(!dir.path().join("o.csv").exists(), "{script}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("bids.csv")).expect("input"),
            "ts,price\n1000,5.0\n2000,1.0\n"
        );
    }
}

#[test]
fn a_sink_in_a_missing_directory_or_on_a_directory_is_refused_before_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bids.csv"), "ts,price\n1000,5.0\n").expect("data");
    std::fs::create_dir(dir.path().join("out")).expect("dir");
    let source = "CREATE SOURCE bids (ts BIGINT, price DOUBLE)
        WITH (connector = 'file', path = 'bids.csv', format = 'csv');\n";
    for (path, expected) in [
        ("missing/o.csv", "the directory missing does not exist"),
        ("out", "which is a directory"),
    ] {
        let script = format!(
            "{source}CREATE SINK o WITH (connector = 'file', path = '{path}', format = 'csv');
             INSERT INTO o SELECT * FROM bids;"
        );
        let out = common::run_script(dir.path(), &script, &[]);
        common::assert_clean_error(&out, &["sink 'o'", expected, ":3:1"]);
    }
}

#[test]
fn a_batch_size_of_zero_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = common::run_script(dir.path(), "SELECT 1;", &["--batch-size", "0"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("--batch-size"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn a_header_in_another_order_is_refused_and_a_byte_order_mark_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("swapped.csv"),
        "price,ts\n5.0,1000\n10.0,2000\n",
    )
    .expect("data");
    for header in ["true", "auto"] {
        for cores in ["1", "2"] {
            let script = format!(
                "CREATE SOURCE bids (ts BIGINT, price DOUBLE)
                    WITH (connector = 'file', path = 'swapped.csv', format = 'csv', header = '{header}');
                 SELECT price FROM bids;"
            );
            let out = common::run_script(dir.path(), &script, &["--cores", cores]);
            common::assert_clean_error(
                &out,
                &[
                    "swapped.csv:1",
                    "another order (price, ts)",
                    "declare them in the file's order",
                ],
            );
        }
    }
    // Excel's CSV and a JSON file starting with a UTF-8 byte-order mark.
    std::fs::write(
        dir.path().join("bom.csv"),
        b"\xef\xbb\xbfts,price\n1000,5.0\n2000,10.0\n".as_slice(),
    )
    .expect("data");
    std::fs::write(
        dir.path().join("bom.json"),
        b"\xef\xbb\xbf{\"ts\":1000,\"price\":5.0}\n{\"ts\":2000,\"price\":10.0}\n".as_slice(),
    )
    .expect("data");
    for (file, format) in [("bom.csv", "csv"), ("bom.json", "json")] {
        for cores in ["1", "2"] {
            let script = format!(
                "CREATE SOURCE bids (ts BIGINT, price DOUBLE)
                    WITH (connector = 'file', path = '{file}', format = '{format}');
                 SELECT price FROM bids;"
            );
            let out =
                common::run_script(dir.path(), &script, &["--output", "csv", "--cores", cores]);
            let err = common::stderr(&out);
            assert!(out.status.success(), "{file}: {err}");
            assert!(
                err.contains("2 events read, 0 late events dropped, 0 bad rows"),
                "{file}: {err}"
            );
            assert_eq!(common::stdout(&out), "price\n5.0\n10.0\n", "{file}");
        }
    }
}

#[test]
fn a_tab_delimiter_is_written_as_backslash_t() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bids.tsv"),
        "ts\tprice\n1000\t5.5\n2000\t1.5\n",
    )
    .expect("data");
    for written in ["\\t", "tab"] {
        let script = format!(
            "CREATE SOURCE bids (ts BIGINT, price DOUBLE)
                WITH (connector = 'file', path = 'bids.tsv', format = 'csv', delimiter = '{written}');
             SELECT price FROM bids;"
        );
        let out = common::run_script(dir.path(), &script, &["--output", "csv"]);
        assert!(out.status.success(), "{written}: {}", common::stderr(&out));
        assert_eq!(common::stdout(&out), "price\n5.5\n1.5\n", "{written}");
    }
    let script = "CREATE SOURCE bids (ts BIGINT, price DOUBLE)
            WITH (connector = 'file', path = 'bids.tsv', format = 'csv', delimiter = ';;');
         SELECT price FROM bids;";
    let out = common::run_script(dir.path(), script, &[]);
    common::assert_clean_error(&out, &["delimiter must be one ASCII character", "'\\t'"]);
}
