//! A state dir belongs to one query: another query or another plugin build is refused
//! with what differs; `laminar state inspect` shows checkpoints and whether recovery
//! would succeed, names a corrupt checkpoint, and recovery falls back to the one before
//! it with a warning — and still writes exactly the uninterrupted output.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{laminar, stderr, stdout};

/// 400 bids over 100 s, read one row per batch: with checkpoints every millisecond a run
/// takes several whatever the machine's speed (each syncs its file).
fn data() -> String {
    let mut text = String::from("ts,auction,price\n");
    for i in 0..400 {
        text.push_str(&format!("{},{},{}.5\n", i * 250, i % 3, i % 11));
    }
    text
}

fn script(dir: &Path, aggregate: &str) -> std::path::PathBuf {
    let path = dir.join("q.sql");
    std::fs::write(dir.join("in.csv"), data()).expect("data");
    std::fs::write(
        &path,
        format!(
            "CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE,
                WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH (connector = 'file', path = 'in.csv', format = 'csv', batch_size = '1');
             CREATE SINK out WITH (connector = 'file', path = 'out.csv', format = 'csv');
             INSERT INTO out SELECT auction, window_start, {aggregate} AS v
             FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
             GROUP BY auction, window_start, window_end;"
        ),
    )
    .expect("script");
    path
}

fn run(dir: &Path, script: &Path, crash_at: Option<&str>) -> Output {
    let mut cmd = laminar();
    cmd.current_dir(dir).arg("run").arg(script).args([
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "1ms",
    ]);
    match crash_at {
        Some(point) => cmd.env("LAMINAR_CRASH_AT", point),
        None => cmd.env_remove("LAMINAR_CRASH_AT"),
    };
    cmd.output().expect("run laminar")
}

fn inspect(dir: &Path) -> String {
    let out = laminar()
        .current_dir(dir)
        .args(["state", "inspect", "state"])
        .output()
        .expect("inspect");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn sorted(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .expect("output")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn another_query_is_refused_naming_what_differs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = script(dir.path(), "SUM(price)");
    let crashed = run(dir.path(), &first, Some("before-complete"));
    assert!(!crashed.status.success());
    let other = script(dir.path(), "MAX(price)");
    let out = run(dir.path(), &other, None);
    common::assert_clean_error(&out, &["state dir", "another script", "the query differs"]);
}

#[test]
fn another_build_of_a_plugin_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let with_plugin = |path: &Path| {
        let sql = std::fs::read_to_string(dir.path().join("q.sql")).expect("script");
        std::fs::write(
            dir.path().join("p.sql"),
            format!("CREATE AGGREGATE agg FROM '{}';\n{sql}", path.display()),
        )
        .expect("script");
        dir.path().join("p.sql")
    };
    script(dir.path(), "agg(price)");
    let first = with_plugin(&laminar_tests::guest("median"));
    let crashed = run(dir.path(), &first, Some("before-complete"));
    assert!(!crashed.status.success(), "{}", stderr(&crashed));
    let second = with_plugin(&laminar_tests::guest("median_v2_alone"));
    let out = run(dir.path(), &second, None);
    common::assert_clean_error(&out, &["plugin 'agg' is another build"]);
}

#[test]
fn inspect_names_a_corrupt_checkpoint_and_recovery_falls_back_to_the_one_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = script(dir.path(), "SUM(price)");
    // The uninterrupted output.
    let plain = laminar()
        .current_dir(dir.path())
        .arg("run")
        .arg(&script)
        .output()
        .expect("run");
    assert!(plain.status.success(), "{}", stderr(&plain));
    let expected = sorted(&dir.path().join("out.csv"));
    std::fs::remove_file(dir.path().join("out.csv")).expect("remove");

    let crashed = run(dir.path(), &script, Some("before-complete"));
    assert!(!crashed.status.success());
    let report = inspect(dir.path());
    assert!(report.contains("checkpoint "), "{report}");
    assert!(
        report.contains("recovery: would succeed, from checkpoint"),
        "{report}"
    );

    // Damage the newest checkpoint.
    let checkpoints = dir.path().join("state/checkpoints");
    let mut files: Vec<_> = std::fs::read_dir(&checkpoints)
        .expect("checkpoints")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let newest = files.last().expect("a checkpoint").clone();
    let mut bytes = std::fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, bytes).expect("write");
    let report = inspect(dir.path());
    let name = newest
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        report.contains("CORRUPT") && report.contains(&name),
        "{report}"
    );
    assert!(
        report.contains("recovery: would succeed, from checkpoint"),
        "{report}"
    );

    let resumed = run(dir.path(), &script, None);
    let err = stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    assert!(
        err.contains("warning: checkpoint") && err.contains("falling back"),
        "{err}"
    );
    assert_eq!(sorted(&dir.path().join("out.csv")), expected);
    assert!(inspect(dir.path()).contains("completed:"));
}

/// The script of `script`, with one piece replaced: what a user might change between
/// runs.
fn variant(dir: &Path, from: &str, to: &str) -> std::path::PathBuf {
    let base = script(dir, "SUM(price)");
    let sql = std::fs::read_to_string(&base).expect("script");
    assert!(sql.contains(from), "{from}");
    let path = dir.join("variant.sql");
    std::fs::write(&path, sql.replace(from, to)).expect("script");
    path
}

#[test]
fn every_change_that_decides_state_or_output_is_refused_naming_what_changed() {
    let cases = [
        // The window is rewritten to plain columns in the plan: the query as written
        // holds it.
        (
            "INTERVAL '10' SECOND",
            "INTERVAL '20' SECOND",
            "the query differs",
            "'20' SECOND",
        ),
        (
            "ts - INTERVAL '1' SECOND",
            "ts - INTERVAL '3' SECOND",
            "source 'bids' watermark differs",
            "ts - 3000 ms",
        ),
        (
            "format = 'csv', batch_size",
            "format = 'csv', on_error = 'skip', batch_size",
            "source 'bids' on_error differs",
            "skip",
        ),
        (
            "path = 'out.csv', format = 'csv'",
            "path = 'out.csv', format = 'json'",
            "sink 'out' differs",
            "json",
        ),
        (
            "price DOUBLE",
            "price BIGINT",
            "source 'bids' columns differs",
            "Int64",
        ),
    ];
    for (from, to, what, shown) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = script(dir.path(), "SUM(price)");
        let crashed = run(dir.path(), &first, Some("before-complete"));
        assert!(!crashed.status.success(), "{from}");
        let changed = variant(dir.path(), from, to);
        let out = run(dir.path(), &changed, None);
        common::assert_clean_error(&out, &["another script", what, shown]);
        // Nothing was written from the old state.
        assert!(!dir.path().join("out.csv").exists(), "{from}");
    }
}

#[test]
fn a_changed_window_is_refused_before_any_checkpoint_with_only_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |size: u32| {
        let path = dir.path().join(format!("q{size}.sql"));
        std::fs::write(
            &path,
            format!(
                "CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE)
                 WITH (connector = 'stdin', format = 'csv');
                 SELECT auction, window_start, COUNT(*) AS n
                 FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '{size}' SECOND)
                 GROUP BY auction, window_start, window_end;"
            ),
        )
        .expect("script");
        path
    };
    let (ten, twenty) = (write(10), write(20));
    // A durable stdin run killed after its first WAL append, long before a checkpoint.
    let mut cmd = laminar();
    cmd.current_dir(dir.path())
        .arg("run")
        .arg(&ten)
        .args(["--state-dir", "state", "--checkpoint-interval", "1h"])
        .env("LAMINAR_CRASH_AT", "wal-after-append")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(b"ts,auction,price\n1000,1,2.5\n2000,1,3.5\n");
    }
    let status = child.wait().expect("wait");
    assert!(!status.success());
    assert!(dir.path().join("state/wal").is_dir());
    assert!(!dir
        .path()
        .join("state/checkpoints")
        .read_dir()
        .expect("checkpoints")
        .any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ckpt"))));
    let out = laminar()
        .current_dir(dir.path())
        .arg("run")
        .arg(&twenty)
        .args(["--state-dir", "state"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    common::assert_clean_error(
        &out,
        &["another script", "the query differs", "'20' SECOND"],
    );
}

/// A stdin run under load: many WAL segments between two checkpoints. With the newest
/// checkpoint damaged, recovery falls back to the one before it, whose input the WAL must
/// still hold; `state inspect` says so only when it is true.
#[test]
fn a_stdin_run_falls_back_to_the_older_checkpoint_after_the_wal_rotated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input = String::from("ts,auction,price\n");
    for i in 0..6000 {
        input.push_str(&format!("{},{},{}.25\n", i * 40, i % 7, i % 13));
    }
    let script = dir.path().join("q.sql");
    std::fs::write(
        &script,
        "CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE,
            WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH (connector = 'stdin', format = 'csv', batch_size = '1000');
         CREATE SINK out WITH (connector = 'file', path = 'out.csv', format = 'csv');
         INSERT INTO out SELECT auction, window_start, COUNT(*) AS n, SUM(price) AS v
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '5' SECOND)
         GROUP BY auction, window_start, window_end;",
    )
    .expect("script");
    let run_with_stdin = |args: &[&str], crash: Option<&str>, stdin: &[u8]| {
        let mut cmd = laminar();
        cmd.current_dir(dir.path())
            .arg("run")
            .arg(&script)
            .args(args);
        match crash {
            Some(point) => cmd.env("LAMINAR_CRASH_AT", point),
            None => cmd.env_remove("LAMINAR_CRASH_AT"),
        };
        common::run_with_stdin(&mut cmd, stdin)
    };
    let plain = run_with_stdin(&[], None, input.as_bytes());
    assert!(plain.status.success(), "{}", stderr(&plain));
    let expected = sorted(&dir.path().join("out.csv"));
    std::fs::remove_file(dir.path().join("out.csv")).expect("remove");

    let durable = [
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "1ms",
        "--wal-segment-bytes",
        "4096",
    ];
    // Every line is in the WAL when the run dies just before it completes.
    let crashed = run_with_stdin(&durable, Some("before-complete"), input.as_bytes());
    assert!(!crashed.status.success());
    let checkpoints = dir.path().join("state/checkpoints");
    let mut files: Vec<_> = std::fs::read_dir(&checkpoints)
        .expect("checkpoints")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let newest = files.last().expect("a checkpoint").clone();
    let mut bytes = std::fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, bytes).expect("write");
    let report = inspect(dir.path());
    assert!(
        report.contains("recovery: would succeed, from checkpoint"),
        "{report}"
    );

    // Every line was logged: the restarted run replays the WAL and needs no more input.
    let resumed = run_with_stdin(&durable, None, b"");
    let err = stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    assert!(err.contains("falling back"), "{err}");
    assert_eq!(sorted(&dir.path().join("out.csv")), expected);
}

/// A run killed mid-way, for the identity tests: its source, sink and state dir.
fn crashed_mid_way(dir: &Path) -> std::path::PathBuf {
    let script = script(dir, "SUM(price)");
    let crashed = run(dir, &script, Some("checkpoint-after-write:2"));
    assert!(!crashed.status.success(), "{}", stderr(&crashed));
    script
}

#[test]
fn a_source_file_changed_under_a_resumed_run_is_refused_saying_so() {
    // Edited before the offset the checkpoint read to.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = crashed_mid_way(dir.path());
    let input = dir.path().join("in.csv");
    let mut bytes = std::fs::read(&input).expect("input");
    bytes[20] = if bytes[20] == b'7' { b'8' } else { b'7' };
    std::fs::write(&input, &bytes).expect("edit");
    let out = run(dir.path(), &script, None);
    common::assert_clean_error(
        &out,
        &[
            "source 'bids' file",
            "is not the one the checkpoint read",
            "remove the state dir",
        ],
    );

    // Replaced by another, longer file.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = crashed_mid_way(dir.path());
    let longer: String = std::iter::once("ts,auction,price\n".to_string())
        .chain((0..900).map(|i| format!("{},{},{}.75\n", i * 100, i % 5, i % 3)))
        .collect();
    std::fs::remove_file(dir.path().join("in.csv")).expect("remove");
    std::fs::write(dir.path().join("in.csv"), longer).expect("replace");
    let out = run(dir.path(), &script, None);
    common::assert_clean_error(
        &out,
        &["is not the one the checkpoint read", "bytes are not"],
    );

    // Appended to: the bytes read are the same, and the run goes on.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = crashed_mid_way(dir.path());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("in.csv"))
        .expect("open");
    std::io::Write::write_all(&mut file, b"100000,1,1.5\n").expect("append");
    let out = run(dir.path(), &script, None);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A run killed after a checkpoint that recorded some sink output (how many checkpoints
/// come before the first window closes depends on the machine's speed: later crash
/// points are tried until one has).
fn crashed_with_sink_output() -> (tempfile::TempDir, std::path::PathBuf) {
    for n in [2, 3, 5, 8, 13, 21, 34, 55] {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = script(dir.path(), "SUM(price)");
        let crashed = run(
            dir.path(),
            &script,
            Some(&format!("checkpoint-after-write:{n}")),
        );
        if crashed.status.success() {
            break;
        }
        let report = inspect(dir.path());
        let newest = report
            .lines()
            .rfind(|l| l.trim_start().starts_with("checkpoint "))
            .unwrap_or_default();
        let sink_bytes = newest
            .split("sink out at ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if sink_bytes > 0 {
            return (dir, script);
        }
    }
    panic!("no checkpoint recorded sink output before the run ended");
}

#[test]
fn a_sink_file_changed_under_a_resumed_run_is_refused_not_cut() {
    let (dir, script) = crashed_with_sink_output();
    let partial = laminar::sink::partial_path(&dir.path().join("out.csv"));
    let len = std::fs::metadata(&partial).expect("partial sink").len() as usize;
    // A longer file of other bytes: once cut back to the checkpoint's length and appended
    // to; now refused, and left as it is.
    let other = "x".repeat(len + 100);
    std::fs::write(&partial, &other).expect("replace");
    let out = run(dir.path(), &script, None);
    common::assert_clean_error(
        &out,
        &[
            "sink file",
            "is not the file the checkpoint recorded",
            "remove the state dir",
        ],
    );
    assert_eq!(std::fs::read_to_string(&partial).expect("sink"), other);
}

#[test]
fn a_resumed_run_says_where_it_resumed_from_and_how_much_was_read_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = crashed_mid_way(dir.path());
    let out = run(dir.path(), &script, None);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("laminar: resuming from checkpoint ") && err.contains("at byte "),
        "{err}"
    );
    let before: u64 = err
        .split("; resumed from checkpoint ")
        .nth(1)
        .and_then(|rest| rest.split(", which had read ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume in the summary: {err}"));
    assert!(before > 0 && before < 400, "{err}");
    assert!(err.contains("400 events read"), "{err}");
}
