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
    let writer = common::feed_stdin(&mut child, EVENTS, |i| {
        format!("{},{},{}.5\n", i / 10, i % KEYS, i % 7)
    });
    let peak_kb = common::wait_sampling_peak_rss(&mut child, Duration::from_millis(50));
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

/// Runs `laminar run script --state-dir state …` on `input` minus the lines the run says
/// it resumes after (all of it on a fresh state dir), sampling its peak resident memory;
/// returns its output and the peak in kB.
#[cfg(target_os = "linux")]
fn durable_stdin_run(
    dir: &std::path::Path,
    script: &std::path::Path,
    input: &std::sync::Arc<Vec<u8>>,
    crash_at: Option<&str>,
) -> (std::process::Output, u64) {
    use std::io::{BufRead, BufReader, Read};
    let mut cmd = common::laminar();
    cmd.current_dir(dir).arg("run").arg(script).args([
        "--state-dir",
        "state",
        "--checkpoint-interval",
        "1h",
        "--wal-segment-bytes",
        "8388608",
    ]);
    match crash_at {
        Some(point) => cmd.env("LAMINAR_CRASH_AT", point),
        None => cmd.env_remove("LAMINAR_CRASH_AT"),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let pid = child.id();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    // A durable stdin run names the line it resumes after before it reads stdin.
    let mut first = String::new();
    let skip: usize = loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("stderr") == 0 {
            panic!("no resume line: {first}");
        }
        first.push_str(&line);
        if let Some(n) = line
            .trim()
            .strip_prefix("laminar: resuming after input line ")
        {
            break n.parse().expect("line number");
        }
        if line.starts_with("laminar: reading stdin from its first line") {
            break 0;
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    let input = std::sync::Arc::clone(input);
    let writer = std::thread::spawn(move || {
        let start = if skip == 0 {
            0
        } else {
            memchr_nth_newline(&input, skip)
        };
        // A broken pipe when the run is stopped at its crash point is expected.
        let _ = stdin.write_all(&input[start..]);
    });
    let mut rest = String::new();
    let reader = std::thread::spawn(move || {
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let mut peak_kb = 0;
    while child.try_wait().expect("wait").is_none() {
        if let Some(kb) = common::peak_rss_kb(pid) {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.join();
    let mut output = child.wait_with_output().expect("wait");
    output.stderr = format!("{first}{}", reader.join().expect("stderr")).into_bytes();
    (output, peak_kb)
}

/// The offset just after the `n`-th newline of `bytes`.
#[cfg(target_os = "linux")]
fn memchr_nth_newline(bytes: &[u8], n: usize) -> usize {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(n - 1)
        .map_or(bytes.len(), |(i, _)| i + 1)
}

/// A durable stdin run killed with 90 % of a long input in its WAL and no checkpoint:
/// the restart replays the WAL a record at a time, so its peak memory stays near the first
/// run's (it once read the whole WAL tail, about 1.3 times its size, before the first
/// row), and it still writes every event exactly once.
#[test]
#[cfg(target_os = "linux")]
fn a_restart_replaying_a_long_wal_keeps_memory_bounded() {
    const REPLAY_EVENTS: u64 = 4_000_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("q.sql");
    std::fs::write(
        &script,
        "CREATE SOURCE s (ts BIGINT, k BIGINT, v DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
             WITH (connector = 'stdin', format = 'csv');
         CREATE SINK out WITH (connector = 'file', path = 'out.csv', format = 'csv');
         INSERT INTO out SELECT window_start, k, COUNT(*) AS n
         FROM TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' SECOND)
         GROUP BY window_start, window_end, k;",
    )
    .expect("write script");
    let mut text = Vec::with_capacity(80 << 20);
    for i in 0..REPLAY_EVENTS {
        text.extend_from_slice(format!("{},{},{}.5\n", i / 10, i % KEYS, i % 7).as_bytes());
    }
    let input = std::sync::Arc::new(text);
    // Chunks of 8192 lines: stop after 90 % of them are in the WAL.
    let chunks = REPLAY_EVENTS.div_ceil(8192);
    let crash = format!("wal-after-append:{}", chunks * 9 / 10);
    let (first, first_peak) = durable_stdin_run(dir.path(), &script, &input, Some(&crash));
    assert!(!first.status.success(), "{}", common::stderr(&first));
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("state/wal"))
        .expect("wal")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum();
    assert!(wal_bytes > 30 << 20, "{wal_bytes} bytes of WAL");

    let (resumed, peak) = durable_stdin_run(dir.path(), &script, &input, None);
    let err = common::stderr(&resumed);
    assert!(resumed.status.success(), "{err}");
    eprintln!(
        "first run peak {} MB, restart peak {} MB, WAL {} MB",
        first_peak >> 10,
        peak >> 10,
        wal_bytes >> 20
    );
    assert!(
        peak < first_peak + (wal_bytes >> 10) / 2 + (16 << 10),
        "restart peak {} MB against {} MB before the crash with {} MB of WAL to replay",
        peak >> 10,
        first_peak >> 10,
        wal_bytes >> 20
    );
    let text = std::fs::read_to_string(dir.path().join("out.csv")).expect("read output");
    let counted: u64 = text
        .lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .nth(2)
                .and_then(|n| n.parse::<u64>().ok())
                .expect("count")
        })
        .sum();
    assert_eq!(counted, REPLAY_EVENTS, "every event counted once");
}
