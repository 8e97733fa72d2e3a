//! Input that would make memory grow without bound: a stream without newlines (a binary
//! piped by mistake) or one enormous line. A line over 16 MiB is a bad row naming its
//! line, skipped and counted under `on_error = 'skip'`, read past without being kept: peak
//! memory stays small whatever its length (one 1.5 GB line once took 4.7 GB).

use crate::common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

fn script(dir: &std::path::Path, on_error: &str) -> std::path::PathBuf {
    let path = dir.join(format!("q-{on_error}.sql"));
    std::fs::write(
        &path,
        format!(
            "CREATE SOURCE s (ts BIGINT, k BIGINT, v DOUBLE)
                 WITH (connector = 'stdin', format = 'csv', header = 'false', on_error = '{on_error}');
             SELECT k, window_start, COUNT(*) AS n
             FROM TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' SECOND)
             GROUP BY k, window_start, window_end;"
        ),
    )
    .expect("script");
    path
}

/// Runs `script` with `head`, `long_line` bytes of `x` without a newline, then `tail` on
/// stdin; returns the output and the peak memory in kB.
fn run(script: &std::path::Path, long_line: usize, tail: &[u8]) -> (std::process::Output, u64) {
    let mut child = common::laminar()
        .arg("run")
        .args(["--output", "csv"])
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    let tail = tail.to_vec();
    let writer = std::thread::spawn(move || {
        let block = vec![b'x'; 1 << 20];
        let _ = stdin.write_all(b"1000,1,2.5\n");
        let mut left = long_line;
        while left > 0 {
            let n = left.min(block.len());
            if stdin.write_all(&block[..n]).is_err() {
                return;
            }
            left -= n;
        }
        let _ = stdin.write_all(&tail);
    });
    let mut peak = 0;
    while child.try_wait().expect("wait").is_none() {
        peak = peak.max(common::peak_rss_kb(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = writer.join();
    (child.wait_with_output().expect("output"), peak)
}

#[test]
fn a_line_over_the_limit_is_a_bad_row_naming_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _) = run(&script(dir.path(), "fail"), 20 << 20, b"\n2000,1,3.5\n");
    common::assert_clean_error(
        &out,
        &["stdin:2", "longer than 16 MiB", "on_error = 'skip'"],
    );
}

#[test]
#[cfg(target_os = "linux")]
fn a_huge_line_is_skipped_and_counted_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, peak) = run(
        &script(dir.path(), "skip"),
        300 << 20,
        b"\n2000,1,3.5\n2100,2,1.0\n",
    );
    let err = common::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("3 events read") && err.contains("1 bad rows skipped"),
        "{err}"
    );
    let rows = common::stdout(&out);
    assert_eq!(rows.lines().count(), 4, "header and three windows: {rows}");
    eprintln!("peak RSS {} MB with a 300 MB line", peak >> 10);
    assert!(
        peak < 200 << 10,
        "peak RSS {} MB with a 300 MB line",
        peak >> 10
    );
}

#[test]
fn a_stream_without_any_newline_ends_as_one_bad_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, _) = run(&script(dir.path(), "skip"), 40 << 20, b"");
    let err = common::stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("1 events read"), "{err}");
    assert!(err.contains("1 bad rows skipped"), "{err}");
}
