//! The runs the durability figures time: each spawns the `laminar` binary on generated
//! data, with or without a state dir, and reads what it needs from the run summary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The windowed query of the end-to-end benches, into a CSV file sink.
const QUERY: &str = "SELECT auction, window_start, window_end,
       COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price)
FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end;";

/// The binary, a working directory and the generated bids.
pub(crate) struct Bench {
    laminar: PathBuf,
    work: PathBuf,
    bids: PathBuf,
}

impl Bench {
    /// Generates `events` bids into `work` (once; reused when present).
    pub(crate) fn new(laminar: PathBuf, work: PathBuf, events: u64) -> Self {
        std::fs::create_dir_all(&work)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", work.display())));
        let work = work.canonicalize().unwrap_or(work);
        let bids = work.join(format!("bids-{events}.csv"));
        if !bids.is_file() {
            let status = Command::new(&laminar)
                .args([
                    "gen",
                    "bids",
                    "--rows",
                    &events.to_string(),
                    "--rate",
                    "10000",
                ])
                .arg("--out")
                .arg(&bids)
                .status()
                .unwrap_or_else(|e| fail(&format!("cannot run laminar gen: {e}")));
            if !status.success() {
                fail("laminar gen bids failed");
            }
        }
        Self {
            laminar,
            work,
            bids,
        }
    }

    /// The generated input.
    pub(crate) fn bids(&self) -> &Path {
        &self.bids
    }

    /// The working directory.
    pub(crate) fn work(&self) -> &Path {
        &self.work
    }

    /// The `laminar` binary.
    pub(crate) fn laminar(&self) -> &Path {
        &self.laminar
    }

    /// Writes the windowed query over a `bids` source `WITH (source_with, format = 'csv')`
    /// into a CSV file sink, as script `name`.
    pub(crate) fn script(&self, name: &str, source_with: &str) -> PathBuf {
        self.script_into(name, source_with, "out.csv")
    }

    /// [`script`](Self::script), into the sink file `sink` of the working directory.
    pub(crate) fn script_into(&self, name: &str, source_with: &str, sink: &str) -> PathBuf {
        let path = self.work.join(name);
        let sql = format!(
            "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
                channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
             WITH ({source_with}, format = 'csv');
             CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
             INSERT INTO out {QUERY}",
            self.work.join(sink).display()
        );
        std::fs::write(&path, sql).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        path
    }

    /// A fresh state dir for one run.
    fn state_dir(&self) -> PathBuf {
        let dir = self.work.join("state");
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// `laminar run script --quiet`, durable with checkpoints every `interval` or not.
    pub(crate) fn command(&self, script: &Path, durable: bool, interval: &str) -> Command {
        let mut cmd = Command::new(&self.laminar);
        cmd.arg("run").arg(script).arg("--quiet");
        if durable {
            cmd.arg("--state-dir")
                .arg(self.state_dir())
                .args(["--checkpoint-interval", interval]);
        }
        cmd.stdout(Stdio::null());
        cmd
    }

    /// One run over the CSV file; its wall time.
    pub(crate) fn file_run(&self, durable: bool) -> Duration {
        let script = self.script(
            "file.sql",
            &format!("connector = 'file', path = '{}'", self.bids.display()),
        );
        let mut cmd = self.command(&script, durable, "10s");
        timed(&mut cmd)
    }

    /// One run with the CSV file on stdin; its wall time.
    pub(crate) fn stdin_run(&self, durable: bool) -> Duration {
        let script = self.script("stdin.sql", "connector = 'stdin'");
        let mut cmd = self.command(&script, durable, "10s");
        let input = std::fs::File::open(&self.bids).unwrap_or_else(|e| fail(&e.to_string()));
        cmd.stdin(input);
        timed(&mut cmd)
    }

    /// Feeds the first `events` bids on stdin with checkpoints far apart, kills the run
    /// (`kill -9`) once every line is in the WAL, and times the restarted run with empty
    /// stdin: replaying the WAL through the query and finishing. Returns the WAL's size and
    /// the time.
    pub(crate) fn recovery_run(&self, events: u64) -> (u64, Duration) {
        let script = self.script("recovery.sql", "connector = 'stdin'");
        let state = self.state_dir();
        let mut cmd = Command::new(&self.laminar);
        cmd.arg("run")
            .arg(&script)
            .arg("--state-dir")
            .arg(&state)
            .args(["--checkpoint-interval", "1h", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| fail(&e.to_string()));
        let data = std::fs::read_to_string(&self.bids).unwrap_or_else(|e| fail(&e.to_string()));
        let head: String = data
            .split_inclusive('\n')
            .take(events as usize + 1)
            .collect();
        let mut stdin = child.stdin.take().unwrap_or_else(|| fail("no stdin"));
        stdin
            .write_all(head.as_bytes())
            .unwrap_or_else(|e| fail(&e.to_string()));
        let wal = state.join("query-1").join("wal");
        let wal_bytes = wait_until_stable(&wal, head.len() as u64);
        let _ = child.kill();
        let _ = child.wait();
        drop(stdin);

        let mut restart = Command::new(&self.laminar);
        restart
            .arg("run")
            .arg(&script)
            .arg("--state-dir")
            .arg(&state)
            .args(["--checkpoint-interval", "1h", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        (wal_bytes, timed(&mut restart))
    }

    /// A query holding `groups` open groups (one distinct key per event, one long window)
    /// is fed its events, waits past the checkpoint interval, and gets one more event: the
    /// checkpoint at that batch holds every group. Returns its size and time.
    pub(crate) fn checkpoint_of_groups(&self, groups: u64) -> (u64, Duration) {
        let script = self.work.join("groups.sql");
        let sql = format!(
            "CREATE SOURCE s (ts BIGINT, k BIGINT, v DOUBLE, WATERMARK FOR ts AS ts)
                 WITH (connector = 'stdin', format = 'csv');
             CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
             INSERT INTO out SELECT k, COUNT(*) AS n, SUM(v) AS total
             FROM TUMBLE(TABLE s, DESCRIPTOR(ts), INTERVAL '1' DAY)
             GROUP BY window_start, window_end, k;",
            self.work.join("groups-out.csv").display()
        );
        std::fs::write(&script, sql).unwrap_or_else(|e| fail(&e.to_string()));
        let mut child = Command::new(&self.laminar)
            .arg("run")
            .arg(&script)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--checkpoint-interval", "3s"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| fail(&e.to_string()));
        let mut stdin = child.stdin.take().unwrap_or_else(|| fail("no stdin"));
        let mut lines = String::with_capacity(groups as usize * 16);
        for k in 0..groups {
            lines.push_str(&format!("{},{k},1.5\n", k % 1000));
        }
        stdin
            .write_all(lines.as_bytes())
            .unwrap_or_else(|e| fail(&e.to_string()));
        std::thread::sleep(Duration::from_secs(4));
        stdin
            .write_all(b"1000,0,1.5\n")
            .unwrap_or_else(|e| fail(&e.to_string()));
        drop(stdin);
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| fail(&e.to_string()));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            fail(&err);
        }
        // "...; N checkpoints in T s (last: B bytes in S s)"
        let last = err
            .rsplit("(last: ")
            .next()
            .unwrap_or_else(|| fail(&format!("no checkpoint in: {err}")));
        let mut words = last.split_whitespace();
        let bytes = words.next().and_then(|b| b.parse().ok()).unwrap_or(0);
        let secs: f64 = words.nth(2).and_then(|s| s.parse().ok()).unwrap_or(0.0);
        (bytes, Duration::from_secs_f64(secs))
    }
}

/// Runs `plain` and `durable` alternately `repeats` times; the best time of each.
pub(crate) fn best_of(
    repeats: usize,
    plain: impl Fn() -> Duration,
    durable: impl Fn() -> Duration,
) -> (Duration, Duration) {
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..repeats.max(1) {
        best.0 = best.0.min(plain());
        best.1 = best.1.min(durable());
    }
    best
}

/// Runs `cmd` to its end (failing the bench if it fails); its wall time.
pub(crate) fn timed(cmd: &mut Command) -> Duration {
    timed_together(std::slice::from_mut(cmd))
}

/// Starts every command of `cmds` at once and waits for all of them (failing the bench if
/// one fails); the wall time until the last one ended.
pub(crate) fn timed_together(cmds: &mut [Command]) -> Duration {
    let started = Instant::now();
    let children: Vec<_> = cmds
        .iter_mut()
        .map(|cmd| {
            cmd.spawn()
                .unwrap_or_else(|e| fail(&format!("{cmd:?}: {e}")))
        })
        .collect();
    for (mut child, cmd) in children.into_iter().zip(cmds.iter()) {
        let status = child.wait().unwrap_or_else(|e| fail(&e.to_string()));
        if !status.success() {
            fail(&format!("{cmd:?} failed"));
        }
    }
    started.elapsed()
}

/// Waits until the WAL in `dir` stops growing once it holds about `expected` bytes of
/// input; returns its size.
fn wait_until_stable(dir: &Path, expected: u64) -> u64 {
    let size = || -> u64 {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        let now = size();
        if now >= expected && now == last {
            return now;
        }
        last = now;
    }
    fail("the WAL did not take in the input within 120 s")
}

/// Stops the bench with `problem`.
pub(crate) fn fail(problem: &str) -> ! {
    eprintln!("process-bench: {problem}");
    std::process::exit(1)
}
