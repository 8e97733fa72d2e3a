//! With an unbounded source (stdin), a window's row is printed as soon as the watermark
//! passes its end, while stdin is still open.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn windows_are_printed_before_stdin_closes() {
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
    writeln!(stdin, "1000,home\n2000,home\n3000,cart").expect("write");
    stdin.flush().expect("flush");
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "nothing may be emitted before the watermark passes the window end"
    );
    // Watermark = 11.5 s - 1 s = 10.5 s >= 10 s: the first window closes.
    writeln!(stdin, "11500,home").expect("write");
    stdin.flush().expect("flush");
    let mut lines = Vec::new();
    while lines.len() < 3 {
        lines.push(
            rx.recv_timeout(Duration::from_secs(20))
                .expect("window row while stdin is open"),
        );
    }
    lines[1..].sort();
    assert_eq!(lines[0], "page,window_start,n");
    assert_eq!(
        &lines[1..],
        ["cart,1970-01-01T00:00:00,1", "home,1970-01-01T00:00:00,2"]
    );
    drop(stdin);
    let rest: Vec<String> = rx.iter().collect();
    assert_eq!(rest, ["home,1970-01-01T00:00:10,1"]);
    let status = child.wait().expect("wait");
    assert!(status.success());
}
