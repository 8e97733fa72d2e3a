//! Emission latency on a live stream: events are written to `laminar run`'s stdin at a
//! steady rate (bursts every millisecond, the writer asleep between them), and for each
//! 10 ms window the bench measures the time from writing the event that moves the
//! watermark past the window's end to reading that window's first row from the process's
//! stdout.
//!
//! Event `i` has key `i % 64` and event time `i / 100` ms with no watermark delay, so at
//! 100 000 events/s event time runs at wall-clock speed, 100 windows close per second,
//! and the window ending at `e` ms is closed by event `100 e`, the first with time `e`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::runs::{fail, Bench};

/// Events per event-time millisecond.
const EVENTS_PER_MS: u64 = 100;
/// Window length in ms.
const WINDOW_MS: u64 = 10;
/// Windows left out at the start (the process warming up).
const WARM_UP_WINDOWS: usize = 50;

/// Latency percentiles over the measured windows.
pub(crate) struct Latency {
    /// Windows measured.
    pub(crate) windows: usize,
    /// Median.
    pub(crate) p50: Duration,
    /// 99th percentile.
    pub(crate) p99: Duration,
    /// Largest.
    pub(crate) max: Duration,
    /// Share of the machine's CPU time the hypervisor gave to others during the run
    /// (steal time, from `/proc/stat`), where the system reports it.
    pub(crate) steal: Option<f64>,
}

impl Bench {
    /// Streams `rate` events/s for `seconds` through a `--cores cores` run.
    pub(crate) fn latency_run(&self, rate: u64, seconds: u64, cores: usize) -> Latency {
        let script = self.work().join("latency.sql");
        let sql = format!(
            "CREATE SOURCE s (ts BIGINT, k BIGINT, v DOUBLE, WATERMARK FOR ts AS ts)
                 WITH (connector = 'stdin', format = 'csv');
             SELECT window_end, k, COUNT(*) AS n, SUM(v) AS total
             FROM TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '{WINDOW_MS} milliseconds')
             GROUP BY window_start, window_end, k;"
        );
        std::fs::write(&script, sql).unwrap_or_else(|e| fail(&e.to_string()));
        let mut child = Command::new(self.laminar())
            .arg("run")
            .arg(&script)
            .args(["--output", "csv", "--quiet", "--cores", &cores.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start laminar: {e}")));
        let stdout = child.stdout.take().unwrap_or_else(|| fail("no stdout"));
        let (seen_tx, seen) = mpsc::channel::<(u64, Instant)>();
        let reader = std::thread::spawn(move || {
            let mut last_end = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                let Some(end) = line.split(',').next().and_then(window_end_ms) else {
                    continue;
                };
                if last_end != Some(end) {
                    last_end = Some(end);
                    let _ = seen_tx.send((end, at));
                }
            }
        });

        let cpu_before = CpuTimes::now();
        let mut stdin = child.stdin.take().unwrap_or_else(|| fail("no stdin"));
        let total = rate * seconds;
        let per_tick = (rate / 1000).max(1);
        let started = Instant::now();
        let mut written_at = Vec::with_capacity((total / per_tick) as usize + 1);
        let mut next = 0u64;
        let mut text = String::new();
        while next < total {
            let tick = next / per_tick;
            let due = started + Duration::from_micros(tick * 1_000_000 / (rate / per_tick).max(1));
            wait_until(due);
            text.clear();
            for i in next..(next + per_tick).min(total) {
                text.push_str(&format!("{},{},1.0\n", i / EVENTS_PER_MS, i % 64));
            }
            stdin
                .write_all(text.as_bytes())
                .and_then(|()| stdin.flush())
                .unwrap_or_else(|e| fail(&format!("cannot write to laminar: {e}")));
            written_at.push((next, Instant::now()));
            next += per_tick;
        }
        drop(stdin);
        let status = child.wait().unwrap_or_else(|e| fail(&e.to_string()));
        let _ = reader.join();
        let steal = cpu_before
            .zip(CpuTimes::now())
            .and_then(|(before, after)| after.steal_share_since(&before));
        if !status.success() {
            fail("the latency run failed");
        }

        // The write time of the burst holding event `i`.
        let write_time = |i: u64| -> Option<Instant> {
            let burst = written_at.partition_point(|(first, _)| *first <= i);
            burst.checked_sub(1).map(|b| written_at[b].1)
        };
        let mut latencies: Vec<Duration> = seen
            .try_iter()
            .filter_map(|(end, at)| {
                let closing = end * EVENTS_PER_MS;
                // The last window closes at the end of input, not by an event.
                (closing < total)
                    .then(|| write_time(closing).map(|w| at.saturating_duration_since(w)))?
            })
            .skip(WARM_UP_WINDOWS)
            .collect();
        if latencies.is_empty() {
            fail("no window was emitted during the latency run");
        }
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        Latency {
            windows: latencies.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
            steal,
        }
    }
}

/// The machine's CPU time so far, in clock ticks, from the first line of `/proc/stat`.
struct CpuTimes {
    /// All states together.
    total: u64,
    /// Time a virtual machine's CPUs were ready but the hypervisor ran something else.
    steal: u64,
}

impl CpuTimes {
    /// The current times, or `None` where `/proc/stat` is missing or has no steal field.
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
        // already counted in user and nice.
        Some(Self {
            total: fields.iter().take(8).sum(),
            steal: *fields.get(7)?,
        })
    }

    /// The share of CPU time stolen between `before` and now.
    fn steal_share_since(&self, before: &Self) -> Option<f64> {
        let total = self.total.checked_sub(before.total)?;
        let steal = self.steal.checked_sub(before.steal)?;
        (total > 0).then(|| steal as f64 / total as f64)
    }
}

/// Waits until `due`: asleep until shortly before it, then spinning, so the writer keeps
/// its pace without taking a whole core from the process it measures (on a 2-core
/// machine a writer spinning all the time left `laminar`'s threads one core).
fn wait_until(due: Instant) {
    /// How long before `due` sleeping stops (a sleep may overshoot by about this much).
    const SPIN: Duration = Duration::from_micros(150);
    let now = Instant::now();
    if let Some(ahead) = due.checked_duration_since(now + SPIN) {
        std::thread::sleep(ahead);
    }
    while Instant::now() < due {
        std::hint::spin_loop();
    }
}

/// Milliseconds since the epoch of a window end printed as `1970-01-01T00:00:01.230`
/// (event times here stay within the first day).
fn window_end_ms(text: &str) -> Option<u64> {
    let time = text.strip_prefix("1970-01-01T")?;
    let mut parts = time.splitn(3, ':');
    let hours: u64 = parts.next()?.parse().ok()?;
    let minutes: u64 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, "0"));
    let whole: u64 = whole.parse().ok()?;
    let millis: u64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    Some(((hours * 60 + minutes) * 60 + whole) * 1000 + millis)
}
