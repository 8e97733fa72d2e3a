//! With an unbounded source (stdin), a window's row is printed as soon as the watermark
//! passes its end, while stdin is still open, and not before, on one core and on several
//! (where a watermark that crosses no window end sends the cores no emission round).

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

#[test]
fn windows_are_printed_before_stdin_closes_on_one_core() {
    windows_are_printed_before_stdin_closes(1);
}

#[test]
fn windows_are_printed_before_stdin_closes_on_two_cores() {
    windows_are_printed_before_stdin_closes(2);
}

#[test]
fn windows_are_printed_before_stdin_closes_on_three_cores() {
    windows_are_printed_before_stdin_closes(3);
}

fn windows_are_printed_before_stdin_closes(cores: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("q.sql");
    std::fs::write(
        &script,
        "CREATE SOURCE clicks (ts BIGINT, page VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
           WITH (connector = 'stdin', format = 'csv', header = 'false');
         SELECT page, window_start, COUNT(*) AS n
         FROM TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND)
         GROUP BY page, window_start, window_end;",
    )
    .expect("script");
    let mut child = common::laminar()
        .args(["run", script.to_str().expect("path"), "--output", "csv"])
        .args(["--cores", &cores.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    send(&mut stdin, "1000,home\n2000,home\n3000,cart");
    nothing_yet(&rx, "before the watermark passes the first window's end");
    // Watermark = 11.5 s - 1 s = 10.5 s >= 10 s: the first window closes.
    send(&mut stdin, "11500,home");
    let mut first = lines(&rx, 3);
    first[1..].sort();
    assert_eq!(first[0], "page,window_start,n");
    assert_eq!(
        &first[1..],
        ["cart,1970-01-01T00:00:00,1", "home,1970-01-01T00:00:00,2"]
    );
    // Watermark 14 s: past no other window end.
    send(&mut stdin, "15000,home");
    nothing_yet(
        &rx,
        "while the watermark (14 s) is inside the second window",
    );
    // Watermark 21 s: the second window ([10 s, 20 s)) closes while stdin is open.
    send(&mut stdin, "22000,cart");
    assert_eq!(lines(&rx, 1), ["home,1970-01-01T00:00:10,2"]);
    drop(stdin);
    let rest: Vec<String> = rx.iter().collect();
    assert_eq!(rest, ["cart,1970-01-01T00:00:20,1"]);
    let status = child.wait().expect("wait");
    assert!(status.success());
}

fn send(stdin: &mut ChildStdin, lines: &str) {
    writeln!(stdin, "{lines}").expect("write");
    stdin.flush().expect("flush");
}

fn nothing_yet(rx: &Receiver<String>, when: &str) {
    if let Ok(line) = rx.recv_timeout(Duration::from_millis(400)) {
        panic!("nothing may be emitted {when}, got {line:?}");
    }
}

fn lines(rx: &Receiver<String>, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(20))
                .expect("window row while stdin is open")
        })
        .collect()
}

/// A durable stdin run that gets a burst and then waits checkpoints all the same, at
/// `--cores 1` (stdin read on the query thread before) and 2: the burst need not stay in
/// the WAL, and a restart does not replay it all.
#[test]
fn a_durable_run_checkpoints_while_stdin_pauses() {
    for cores in ["1", "2"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("q.sql");
        std::fs::write(
            &script,
            "CREATE SOURCE clicks (ts BIGINT, page VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
               WITH (connector = 'stdin', format = 'csv', header = 'false');
             SELECT page, window_start, COUNT(*) AS n
             FROM TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND)
             GROUP BY page, window_start, window_end;",
        )
        .expect("script");
        let mut child = common::laminar()
            .current_dir(dir.path())
            .args(["run", "q.sql", "--output", "csv", "--cores", cores])
            .args(["--state-dir", "state", "--checkpoint-interval", "300ms"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn laminar");
        let mut stdin = child.stdin.take().expect("stdin");
        let burst: String = (0..20_000)
            .map(|i| format!("{},p{}\n", i * 5, i % 9))
            .collect();
        stdin.write_all(burst.as_bytes()).expect("burst");
        stdin.flush().expect("flush");
        let checkpoints = dir.path().join("state/checkpoints");
        let has_checkpoint = || {
            std::fs::read_dir(&checkpoints).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().extension().is_some_and(|x| x == "ckpt"))
            })
        };
        // The burst takes a moment to go through; then the input pauses.
        let mut waited = Duration::ZERO;
        while !has_checkpoint() && waited < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(100));
            waited += Duration::from_millis(100);
        }
        std::thread::sleep(Duration::from_millis(800));
        let report = common::laminar()
            .current_dir(dir.path())
            .args(["state", "inspect", "state"])
            .output()
            .expect("inspect");
        let report = common::stdout(&report);
        assert!(
            has_checkpoint(),
            "--cores {cores}: no checkpoint while stdin pauses: {report}"
        );
        // The checkpoint covers the whole burst: the newest one is at its last line.
        assert!(
            report.contains("input line 20000)"),
            "--cores {cores}: the burst is not covered: {report}"
        );
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", common::stderr(&out));
    }
}
