//! Memory stays bounded on a long input: 10 M events (about 200 MB of CSV) stream through
//! stdin of the binary, and its peak resident memory stays under a bound that does not
//! grow with the input (the README states it): only open windows hold state, every queue
//! is bounded, results go to the sink as windows close. The results are checked too: one
//! row per (window, key), counts adding up to every event.

use crate::common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

/// Events streamed.
const EVENTS: u64 = 10_000_000;
/// Keys (`k = i % KEYS`); event time `i / 10` ms, one-second windows.
const KEYS: u64 = 100;
/// The bound on peak resident memory (the README's figure): the binary, its DataFusion and
/// wasmtime code, the batches in flight and a few open windows of 100 groups.
const PEAK_RSS_BOUND_MB: u64 = 400;

/// Peak resident set of process `pid` so far (`VmHWM`), in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
#[cfg(target_os = "linux")]
fn ten_million_events_through_stdin_keep_peak_memory_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.csv");
    let script = dir.path().join("q.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE SOURCE s (ts BIGINT, k BIGINT, v DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
                 WITH (connector = 'stdin', format = 'csv');
             CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
             INSERT INTO out SELECT window_start, k, COUNT(*) AS n, SUM(v) AS total
             FROM TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' SECOND)
             GROUP BY window_start, window_end, k;",
            out.display()
        ),
    )
    .expect("write script");
    let mut child = common::laminar()
        .arg("run")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut text = String::with_capacity(1 << 20);
        for i in 0..EVENTS {
            text.push_str(&format!("{},{},{}.5\n", i / 10, i % KEYS, i % 7));
            if text.len() >= 1 << 20 {
                stdin.write_all(text.as_bytes())?;
                text.clear();
            }
        }
        stdin.write_all(text.as_bytes())
    });
    let mut peak_kb = 0;
    while child.try_wait().expect("wait").is_none() {
        if let Some(kb) = peak_rss_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().expect("writer").expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    let err = common::stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains(&format!("{EVENTS} events read, 0 late events dropped")),
        "{err}"
    );
    assert!(peak_kb > 0, "no memory reading");
    eprintln!("peak RSS {} MB for {EVENTS} events", peak_kb / 1024);
    assert!(
        peak_kb < PEAK_RSS_BOUND_MB * 1024,
        "peak RSS {} MB over the {PEAK_RSS_BOUND_MB} MB bound for {EVENTS} events",
        peak_kb / 1024
    );

    let text = std::fs::read_to_string(&out).expect("read output");
    let mut rows = 0u64;
    let mut counted = 0u64;
    for line in text.lines().skip(1) {
        let n: u64 = line
            .split(',')
            .nth(2)
            .and_then(|n| n.parse().ok())
            .expect("count");
        rows += 1;
        counted += n;
    }
    let windows = (EVENTS / 10).div_ceil(1000);
    assert_eq!(rows, windows * KEYS, "one row per window and key");
    assert_eq!(counted, EVENTS, "every event counted once");
}
