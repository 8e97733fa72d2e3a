//! Memory stays bounded on a long SESSION stream: 4 M events on stdin of the binary, each
//! key's two rows one session that closes and is never seen again (2 M sessions in all),
//! and the peak resident memory stays under a bound set by the sessions open at one time,
//! not by the sessions of the whole run.
//!
//! The bound, from first principles: a session ends `GAP_MS` after its last row and closes
//! once the watermark (max event time − `DELAY_MS`) reaches that end, so it is open while
//! the next `(GAP_MS + DELAY_MS) × EVENTS_PER_MS` rows arrive, and until the emission after
//! the batch that closed it (one batch more; two counted). At `EVENTS_PER_SESSION` rows a
//! session that is at most `OPEN_SESSIONS` ≈ 18 000 open sessions. Each holds its bounds
//! and slot (24 bytes), its key (9 bytes in the row format, boxed), a hash-map entry and the
//! state of four aggregates (under 100 bytes): `SESSION_BYTES` = 1 KiB allows for
//! allocator rounding and growth by doubling. Fixed: the same binary and query on a short
//! input (measured in the test), plus `IN_FLIGHT_MB` for full batches and queues. A run
//! that never released its sessions would hold all 2 M of them: at least 100 bytes each
//! (a slot's aggregates alone are about 40, a key's box and map entry about 60), 200 MB,
//! well over the bound. Checked by breaking the release on purpose (a key's emptied entry
//! kept in the map, an emitted session's slot never freed): this test then measured a
//! peak of 663 MB against a bound of 124 MB (75 MB for the short run) and failed.

use crate::common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Events streamed.
const EVENTS: u64 = 4_000_000;
/// Event time `i / EVENTS_PER_MS` ms.
const EVENTS_PER_MS: u64 = 10;
/// Key `i / EVENTS_PER_SESSION`: a key's rows are consecutive, one session, then the key
/// never comes again.
const EVENTS_PER_SESSION: u64 = 2;
const GAP_MS: u64 = 1_000;
const DELAY_MS: u64 = 1_000;
/// Rows of a batch (the binary's default `--batch-size`).
const BATCH_ROWS: u64 = 8_192;
/// Sessions open (or closed and not yet emitted) at any time, at most.
const OPEN_SESSIONS: u64 =
    ((GAP_MS + DELAY_MS) * EVENTS_PER_MS + 2 * BATCH_ROWS) / EVENTS_PER_SESSION;
/// Memory allowed per open session.
const SESSION_BYTES: u64 = 1_024;
/// Batches in flight: decoded input, the cores' queues, results on their way to the sink.
const IN_FLIGHT_MB: u64 = 32;

/// Runs the session query over `events` generated rows on stdin at `--cores 2`; returns
/// its stderr and peak resident memory in kB.
#[cfg(target_os = "linux")]
fn session_run(dir: &Path, events: u64) -> (String, u64) {
    let out = dir.join("out.csv");
    let script = dir.join("q.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE SOURCE s (ts BIGINT, k BIGINT, v DOUBLE,
                 WATERMARK FOR ts AS ts - INTERVAL '{DELAY_MS}' MILLISECOND)
                 WITH (connector = 'stdin', format = 'csv');
             CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
             INSERT INTO out SELECT k, SESSION_START(ts, INTERVAL '{GAP_MS}' MILLISECOND) AS s,
                 COUNT(*) AS n, SUM(v) AS total, MIN(v) AS low, MAX(v) AS high
             FROM s GROUP BY k, SESSION(ts, INTERVAL '{GAP_MS}' MILLISECOND);",
            out.display()
        ),
    )
    .expect("write script");
    let mut child = common::laminar()
        .arg("run")
        .arg(&script)
        .args(["--cores", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn laminar");
    let writer = common::feed_stdin(&mut child, events, |i| {
        format!(
            "{},{},{}.5\n",
            i / EVENTS_PER_MS,
            i / EVENTS_PER_SESSION,
            i % 7
        )
    });
    let peak_kb = common::wait_sampling_peak_rss(&mut child, Duration::from_millis(50));
    writer.join().expect("writer").expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    let err = common::stderr(&output);
    assert!(output.status.success(), "{err}");
    assert!(peak_kb > 0, "no memory reading");

    // Every key one session of its rows, every row counted once, none late.
    let text = std::fs::read_to_string(&out).expect("read output");
    let (mut rows, mut counted) = (0u64, 0u64);
    for line in text.lines().skip(1) {
        let n: u64 = line
            .split(',')
            .nth(2)
            .and_then(|n| n.parse().ok())
            .expect("count");
        rows += 1;
        counted += n;
    }
    assert_eq!(
        rows,
        events.div_ceil(EVENTS_PER_SESSION),
        "one session a key"
    );
    assert_eq!(counted, events, "every event counted once");
    assert!(
        err.contains(&format!("{events} events read, 0 late events dropped")),
        "{err}"
    );
    (err, peak_kb)
}

#[test]
#[cfg(target_os = "linux")]
fn a_long_session_stream_keeps_peak_memory_bounded_by_the_open_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The fixed part: the same binary and query over a short input.
    let (_, fixed_kb) = session_run(dir.path(), 20_000);
    let (_, peak_kb) = session_run(dir.path(), EVENTS);
    let bound_kb = fixed_kb + IN_FLIGHT_MB * 1024 + OPEN_SESSIONS * SESSION_BYTES / 1024;
    eprintln!(
        "peak RSS {} MB for {EVENTS} events ({} sessions; short run {} MB, bound {} MB)",
        peak_kb / 1024,
        EVENTS / EVENTS_PER_SESSION,
        fixed_kb / 1024,
        bound_kb / 1024
    );
    assert!(
        peak_kb < bound_kb,
        "peak RSS {} MB over the bound of {} MB ({} MB fixed + {IN_FLIGHT_MB} MB in flight + \
         {OPEN_SESSIONS} open sessions × {SESSION_BYTES} bytes) for {} sessions",
        peak_kb / 1024,
        bound_kb / 1024,
        fixed_kb / 1024,
        EVENTS / EVENTS_PER_SESSION
    );
}
