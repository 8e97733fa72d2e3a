//! Ctrl-C and SIGTERM through the real binary: a signalled `laminar run` stops reading,
//! prints the summary of what ran marked `interrupted` and exits 128 + the signal (130 for
//! SIGINT, 143 for SIGTERM), leaves no `.laminar-` temporary sink file and never touches a
//! destination that a bounded run had not committed; a durable run checkpoints at the stop,
//! says which stdin line to resend after, and the same command resumes it to exactly the
//! output of a run that was never stopped.
//!
//! The scripts read a small file and stdin, which the test keeps open: the run cannot end
//! by itself, so the signal always finds it running, with the file source's rows already
//! in the bounded sink's temporary file (at `--cores 1` the run is then blocked in a read
//! of stdin on its query thread).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{laminar, stderr};

/// The longest a run may take to start, to stop or to finish.
const PATIENCE: Duration = Duration::from_secs(60);

const FILE_ROWS: &str = "ts,auction,price\n1000,1,2.5\n2000,2,3.5\n";

/// A bounded query from file `f.csv` into sink `o` (`o.csv`), and one over stdin to stdout.
const MIXED: &str = "
CREATE SOURCE f (ts BIGINT, auction BIGINT, price DOUBLE)
    WITH (connector = 'file', path = 'f.csv', format = 'csv');
CREATE SOURCE s (ts BIGINT, auction BIGINT, price DOUBLE)
    WITH (connector = 'stdin', format = 'csv');
CREATE SINK o WITH (connector = 'file', path = 'o.csv', format = 'csv');
INSERT INTO o SELECT * FROM f;
SELECT * FROM s;
";

/// What a run printed to stdout so far, read by a thread of its own.
type Printed = Arc<Mutex<String>>;

/// Reads `child`'s stdout as it comes, until it closes (then the thread ends).
fn follow_stdout(child: &mut Child) -> (Printed, std::thread::JoinHandle<()>) {
    let printed = Printed::default();
    let mut out = child.stdout.take().expect("stdout");
    let sink = Arc::clone(&printed);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            sink.lock().expect("stdout buffer").push_str(&text);
        }
    });
    (printed, reader)
}

/// `laminar run query.sql` in `dir` with `args`, its stdin kept open.
fn start(dir: &Path, script: &str, args: &[&str]) -> (Child, ChildStdin) {
    std::fs::write(dir.join("query.sql"), script).expect("write script");
    let mut child = laminar()
        .current_dir(dir)
        .args(["run", "query.sql", "--output", "csv"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let stdin = child.stdin.take().expect("stdin");
    (child, stdin)
}

/// Waits until `ready` holds, or fails after [`PATIENCE`] (killing `child`).
fn wait_until(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before {what}");
        }
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("no {what} after {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` (`INT`, `TERM`) to `child`.
fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// The run's output once it ended; fails (killing it) if it does not end in time.
fn finish(mut child: Child, stdin: ChildStdin) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > PATIENCE {
            let _ = child.kill();
            panic!("the run did not stop within {PATIENCE:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(stdin);
    child.wait_with_output().expect("collect output")
}

/// The names in `dir` that hold `.laminar-`: temporary or partial sink files.
fn sink_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".laminar-"))
        .collect()
}

/// Whether the bounded sink `o.csv` has its temporary file in `dir` (the file source's
/// rows were written to it).
fn temporary_written(dir: &Path) -> bool {
    sink_leftovers(dir).iter().any(|n| n.ends_with(".tmp"))
}

/// Runs `MIXED` at `cores`, signals it once it waits on stdin, and checks the stop.
fn stop_a_run_waiting_on_stdin(cores: &str, sig: &str, code: i32) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("f.csv"), FILE_ROWS).expect("write input");
    std::fs::write(dir.path().join("o.csv"), "precious\n").expect("write old output");
    let (mut child, mut stdin) = start(dir.path(), MIXED, &["--cores", cores]);
    let (printed, reader) = follow_stdout(&mut child);
    stdin
        .write_all(b"ts,auction,price\n5000,5,7.5\n")
        .expect("write stdin");
    stdin.flush().expect("flush stdin");
    wait_until(&mut child, "rows of both sources", || {
        temporary_written(dir.path())
            && printed
                .lock()
                .expect("stdout buffer")
                .contains("5000,5,7.5")
    });
    signal(&child, sig);
    let output = finish(child, stdin);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(code), "{err}");
    let summary = err
        .lines()
        .find(|l| l.starts_with("laminar: interrupted: "))
        .unwrap_or_else(|| panic!("no interrupted summary: {err}"));
    assert!(summary.contains("events read"), "{err}");
    assert!(
        err.contains("query.sql:7:1: 2 events") && err.contains("query.sql:8:1: 1 events"),
        "a line per query of what ran: {err}"
    );
    assert!(err.contains("before the end of input"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(sink_leftovers(dir.path()), Vec::<String>::new(), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("o.csv")).expect("read o.csv"),
        "precious\n",
        "the destination of an uncommitted run keeps its content"
    );
    // What was printed before the stop stays, and nothing more came.
    reader.join().expect("stdout reader");
    let printed = printed.lock().expect("stdout buffer").clone();
    assert_eq!(printed, "ts,auction,price\n5000,5,7.5\n");
}

#[test]
fn sigint_stops_a_run_blocked_on_stdin_and_removes_its_temporary_sink_file() {
    // One core: the read of stdin blocks on the query thread.
    stop_a_run_waiting_on_stdin("1", "INT", 130);
}

#[test]
fn sigint_stops_a_run_with_decoder_threads_the_same_way() {
    stop_a_run_waiting_on_stdin("2", "INT", 130);
}

#[test]
fn sigterm_stops_a_run_and_exits_143() {
    stop_a_run_waiting_on_stdin("2", "TERM", 143);
}

/// A windowed query over file `f.csv` into sink `o` and one over stdin into sink `p`.
const DURABLE: &str = "
CREATE SOURCE f (ts BIGINT, auction BIGINT, price DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
    WITH (connector = 'file', path = 'f.csv', format = 'csv');
CREATE SOURCE s (ts BIGINT, auction BIGINT, price DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
    WITH (connector = 'stdin', format = 'csv');
CREATE SINK o WITH (connector = 'file', path = 'o.csv', format = 'csv');
CREATE SINK p WITH (connector = 'file', path = 'p.csv', format = 'csv');
INSERT INTO o SELECT auction, window_start, COUNT(*) AS n, SUM(price) AS total
    FROM TUMBLE(TABLE f, DESCRIPTOR(ts), INTERVAL '10' SECOND)
    GROUP BY auction, window_start, window_end;
INSERT INTO p SELECT auction, window_start, COUNT(*) AS n, SUM(price) AS total
    FROM TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '10' SECOND)
    GROUP BY auction, window_start, window_end;
";

/// Out-of-order rows (some late), `rows` of them after the header.
fn bids(rows: u64) -> Vec<String> {
    let mut lines = vec!["ts,auction,price".to_string()];
    for i in 1..=rows as i64 {
        let ts = i * 10 - (i * 7919 % 13) * 250;
        lines.push(format!("{ts},{},{}.25", i % 7, i % 11));
    }
    lines
}

/// A file's lines, sorted (rows within one emission come in no fixed order).
fn sorted_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_durable_run_stopped_by_sigint_checkpoints_and_resumes_to_the_uninterrupted_output() {
    let input = bids(20_000);
    let text = |lines: &[String]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    // The run that is never stopped.
    let whole = tempfile::tempdir().expect("tempdir");
    std::fs::write(whole.path().join("f.csv"), text(&input)).expect("write input");
    let (child, mut stdin) = start(whole.path(), DURABLE, &["--state-dir", "state"]);
    stdin
        .write_all(text(&input).as_bytes())
        .expect("write stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", stderr(&output));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("f.csv"), text(&input)).expect("write input");
    std::fs::write(dir.path().join("o.csv"), "precious\n").expect("write old output");
    let (mut child, mut stdin) = start(dir.path(), DURABLE, &["--state-dir", "state"]);
    stdin
        .write_all(text(&input[..10_001]).as_bytes())
        .expect("write stdin");
    stdin.flush().expect("flush stdin");
    // The stdin query's closed windows are in its live sink: its input was read.
    let p = dir.path().join("p.csv");
    wait_until(&mut child, "windows of the stdin query", || {
        std::fs::read_to_string(&p).is_ok_and(|t| t.lines().count() > 10)
    });
    signal(&child, "INT");
    let output = finish(child, stdin);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(err.contains("laminar: interrupted: "), "{err}");
    assert!(
        err.contains(" checkpoints in "),
        "a checkpoint at the stop: {err}"
    );
    assert!(
        err.contains("run the same command again to resume"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("o.csv")).expect("read o.csv"),
        "precious\n",
        "not committed at the stop"
    );
    assert!(
        !sink_leftovers(dir.path())
            .iter()
            .any(|n| n.ends_with(".tmp")),
        "{:?}",
        sink_leftovers(dir.path())
    );
    let after: usize = err
        .split("resend the input after line ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line: {err}"));
    assert!((1..=10_001).contains(&after), "{err}");

    // The same command again, given the input after that line.
    let (child, mut stdin) = start(dir.path(), DURABLE, &["--state-dir", "state"]);
    stdin
        .write_all(text(&input[after..]).as_bytes())
        .expect("write stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(&format!("resuming after input line {after}")),
        "{err}"
    );
    for sink in ["o.csv", "p.csv"] {
        assert_eq!(
            sorted_lines(&dir.path().join(sink)),
            sorted_lines(&whole.path().join(sink)),
            "{sink}"
        );
    }
    assert_eq!(sink_leftovers(dir.path()), Vec::<String>::new());
}
