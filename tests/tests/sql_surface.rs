//! The SQL surface end to end through the CLI: sinks, streams, JSON sources, BIGINT event
//! time, and the bundled generator. Expected values are worked out by hand in each test.

use crate::common;

use common::{laminar, run_script, stderr, stdout};

#[test]
fn insert_into_file_sink_writes_json_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("in.json"),
        "{\"ts\": 1000, \"user\": \"a\", \"amount\": 2}\n\
         {\"ts\": 5000, \"user\": \"a\", \"amount\": 3}\n\
         {\"ts\": 7000, \"user\": \"b\", \"amount\": 10}\n\
         {\"ts\": 21000, \"user\": \"a\", \"amount\": 1}\n",
    )
    .expect("data");
    let out = run_script(
        dir.path(),
        "CREATE SOURCE pay (ts BIGINT, user VARCHAR, amount BIGINT)
            WITH (connector = 'file', path = 'in.json', format = 'json');
         CREATE SINK totals WITH (connector = 'file', path = 'out.json', format = 'json');
         INSERT INTO totals
         SELECT user, window_start, SUM(amount) AS total, MIN(amount) AS smallest
         FROM TUMBLE(TABLE pay, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY user, window_start, window_end;",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "results go to the sink, not stdout");
    let written = std::fs::read_to_string(dir.path().join("out.json")).expect("sink file");
    let mut lines: Vec<&str> = written.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            r#"{"user":"a","window_start":"1970-01-01T00:00:00","total":5,"smallest":2}"#,
            r#"{"user":"a","window_start":"1970-01-01T00:00:20","total":1,"smallest":1}"#,
            r#"{"user":"b","window_start":"1970-01-01T00:00:00","total":10,"smallest":10}"#,
        ]
    );
    assert!(
        stderr(&out).contains("4 events read, 0 late events dropped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn create_stream_can_be_selected_from_and_late_events_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    // With a 0 s delay, the event at 2 s arrives after 15 s closed window [0, 10): late.
    std::fs::write(
        dir.path().join("in.csv"),
        "1000,x\n15000,x\n2000,x\n16000,y\n",
    )
    .expect("data");
    let out = run_script(
        dir.path(),
        "CREATE SOURCE s (ts BIGINT, k VARCHAR, WATERMARK FOR ts AS ts)
            WITH (connector = 'file', path = 'in.csv', format = 'csv');
         CREATE STREAM per_key AS
            SELECT k, TUMBLE_START(ts, INTERVAL '10' SECOND) AS w, COUNT(*) AS n
            FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND);
         SELECT k, n * 100 AS pct FROM per_key WHERE n > 0;",
        &["--output", "csv"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.remove(0), "k,pct");
    lines.sort();
    assert_eq!(lines, ["x,100", "x,100", "y,100"]);
    assert!(
        stderr(&out).contains("1 late events dropped"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_stream_nobody_reads_is_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), "ts,v\n1,5\n2,7\n").expect("data");
    let out = run_script(
        dir.path(),
        "CREATE SOURCE s (ts BIGINT, v BIGINT) WITH (connector = 'file', path = 'in.csv');
         CREATE STREAM total AS SELECT SUM(v) AS total, AVG(v) AS mean FROM s GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE);",
        &["--output", "csv"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "total,mean\n12,6.0\n");
}

#[test]
fn filters_and_projections_run_without_a_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("in.csv"), "1,apple,3\n2,pear,10\n3,fig,\n").expect("data");
    let out = run_script(
        dir.path(),
        "CREATE SOURCE s (id BIGINT, fruit VARCHAR, qty INT) WITH (connector = 'file', path = 'in.csv');
         SELECT id, upper(fruit) AS name, CASE WHEN qty > 5 THEN 'many' ELSE 'few' END AS size
         FROM s WHERE qty IS NOT NULL;",
        &["--output", "csv"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "id,name,size\n1,APPLE,few\n2,PEAR,many\n");
}

#[test]
fn generator_is_seeded_and_its_output_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gen = |name: &str, seed: &str| {
        let status = laminar()
            .current_dir(dir.path())
            .args([
                "gen",
                "bids",
                "--rows",
                "5000",
                "--out",
                name,
                "--seed",
                seed,
                "--late-fraction",
                "0.1",
            ])
            .status()
            .expect("gen");
        assert!(status.success());
        std::fs::read_to_string(dir.path().join(name)).expect("read")
    };
    let a = gen("a.csv", "1");
    assert_eq!(a, gen("b.csv", "1"), "same seed, same data");
    assert_ne!(a, gen("c.csv", "2"));
    assert!(a.starts_with("ts,auction,bidder,price,channel\n"));
    assert_eq!(a.lines().count(), 5001);
    let out = run_script(
        dir.path(),
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE, channel VARCHAR,
            WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
            WITH (connector = 'file', path = 'a.csv');
         SELECT COUNT(*) AS n FROM bids GROUP BY TUMBLE(ts, INTERVAL '1' HOUR);",
        &["--output", "csv"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Each bid is either counted in a window or reported as late: none is lost.
    let counted: u64 = stdout(&out)
        .lines()
        .skip(1)
        .map(|l| l.parse::<u64>().expect("count"))
        .sum();
    let err = stderr(&out);
    let late: u64 = err
        .split(" late events dropped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("late count in summary");
    assert!(late > 0, "{err}");
    assert_eq!(counted + late, 5000, "{err}");
}
