//! Live plugin swaps (`laminar run … --reload-plugins`) through the real binary, on a
//! durable stdin run with `median` (`operators/median`, state version 1) whose file is
//! replaced mid-stream (copied beside it and renamed into place):
//! - by `operators/median-v2` (state version 2, reads 1): swapped at the next checkpoint
//!   barrier, one line says so, and the output equals a model computed here (both builds
//!   compute the same median, so the values do not depend on the swap point);
//! - the same, killed (`kill -9`) shortly after the swap and resumed; and aborted at a
//!   crash point inside the swap (the fingerprint names the new build, the newest
//!   checkpoint holds the old one's states) and resumed: the output equals the model;
//! - by a file that is no component, a build that traps in `merge` (`median_v2_traps`),
//!   one returning BIGINT (`median_v2_bigint`) and one that traps in `evaluate`
//!   (`median_v2_evaluate_traps`): each leaves the old build running
//!   with one line saying why, a good build still takes over after them, and the output
//!   equals the model;
//! - with `--reload-plugins=sighup`, a replaced file is swapped only after SIGHUP;
//! - from the library (`EngineConfig::reload_plugins`, `ReloadSignal::on_request_only`),
//!   a replaced file is swapped only after `ReloadSignal::request`, the line going to the
//!   notice handler.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Input rows: event time `i * STEP_MS`.
const ROWS: u64 = 24_000;
const STEP_MS: u64 = 2;
const WINDOW_MS: u64 = 10_000;
const KEYS: u64 = 97;
/// How long a test waits for something the run should do.
const PATIENCE: Duration = Duration::from_secs(180);

const SCRIPT: &str = "CREATE AGGREGATE median FROM 'median.wasm';
CREATE SOURCE bids (ts BIGINT, auction BIGINT, price DOUBLE,
    WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
WITH (connector = 'stdin', format = 'csv', header = 'false');
CREATE SINK out WITH (connector = 'file', path = 'out.csv', format = 'csv');
INSERT INTO out SELECT auction, window_start, COUNT(*) AS n, median(price) AS mid
FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
GROUP BY window_start, window_end, auction;";

/// Input row `i` (without its newline).
fn row(i: u64) -> String {
    let price = ((i * 7919 + i / 3) % 1000) as f64 / 10.0;
    format!("{},{},{price}", i * STEP_MS, i % KEYS)
}

fn rows(range: std::ops::Range<u64>) -> String {
    range.map(|i| row(i) + "\n").collect()
}

/// The model: per (auction, window start) the count and the median of the prices (rows
/// arrive in event-time order, so none is late). Sorted lines as the sink writes them,
/// parsed back: (auction, window start text, count, median).
fn model() -> Vec<(i64, i64, u64, f64)> {
    let mut groups: BTreeMap<(i64, i64), Vec<f64>> = BTreeMap::new();
    for i in 0..ROWS {
        let ts = (i * STEP_MS) as i64;
        let start = ts - ts.rem_euclid(WINDOW_MS as i64);
        let price = ((i * 7919 + i / 3) % 1000) as f64 / 10.0;
        groups
            .entry(((i % KEYS) as i64, start))
            .or_default()
            .push(price);
    }
    groups
        .into_iter()
        .map(|((key, start), mut values)| {
            values.sort_by(f64::total_cmp);
            let n = values.len();
            let mid = match n % 2 {
                1 => values[n / 2],
                _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
            };
            (key, start, n as u64, mid)
        })
        .collect()
}

/// The sink's rows, parsed and sorted; the window start as epoch ms (written as a
/// timestamp or a number).
fn output(dir: &Path) -> Vec<(i64, i64, u64, f64)> {
    output_of(dir, "out.csv")
}

/// The rows of sink file `file` in `dir`, as [`output`].
fn output_of(dir: &Path, file: &str) -> Vec<(i64, i64, u64, f64)> {
    let text = std::fs::read_to_string(dir.join(file)).expect("read the sink file");
    let mut out: Vec<(i64, i64, u64, f64)> = text
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 4, "{line}");
            (
                f[0].parse().expect("auction"),
                window_ms(f[1]),
                f[2].parse().expect("count"),
                f[3].parse().expect("median"),
            )
        })
        .collect();
    out.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    out
}

/// `1970-01-01T00:00:10` (or a number) as epoch ms.
fn window_ms(text: &str) -> i64 {
    if let Ok(ms) = text.parse() {
        return ms;
    }
    let time = text
        .strip_prefix("1970-01-01T")
        .unwrap_or_else(|| panic!("window start {text:?}"));
    let parts: Vec<f64> = time
        .split(':')
        .map(|p| p.parse().expect("time part"))
        .collect();
    ((parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]) * 1000.0).round() as i64
}

fn assert_output_is_the_model(dir: &Path) {
    let got = output(dir);
    let want = model();
    assert_eq!(got.len(), want.len(), "rows written vs the model");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "a row differs from the model");
    }
}

/// A `laminar run` of [`SCRIPT`] reading stdin, with its stderr lines.
struct Run {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

/// Puts guest `build` at `DIR/median.wasm` at once (copied beside it, then renamed).
fn put_plugin(dir: &Path, build: &str) {
    put_bytes(
        dir,
        &std::fs::read(laminar_tests::guest(build)).expect("read guest"),
    );
}

fn put_bytes(dir: &Path, bytes: &[u8]) {
    let tmp = dir.join("median.wasm.new");
    std::fs::write(&tmp, bytes).expect("write plugin");
    std::fs::rename(&tmp, dir.join("median.wasm")).expect("rename plugin");
}

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("q.sql"), SCRIPT).expect("script");
    put_plugin(dir.path(), "median");
    dir
}

impl Run {
    /// Starts the run in `dir` on `cores` with `extra` arguments (and `crash` as
    /// `LAMINAR_CRASH_AT`).
    fn start(dir: &Path, cores: u32, extra: &[&str], crash: Option<&str>) -> Self {
        let mut cmd = common::laminar();
        cmd.current_dir(dir)
            .args(["run", "q.sql", "--state-dir", "state", "--cores"])
            .arg(cores.to_string())
            .args(["--checkpoint-interval", "50ms", "--plugin-cache"])
            .arg(laminar_tests::plugin_cache_dir())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match crash {
            Some(point) => cmd.env("LAMINAR_CRASH_AT", point),
            None => cmd.env_remove("LAMINAR_CRASH_AT"),
        };
        let mut child = cmd.spawn().expect("spawn laminar");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// The first stderr line (from now on) holding `piece`; fails after [`PATIENCE`].
    fn wait_line(&mut self, piece: &str) -> String {
        let give_up = Instant::now() + PATIENCE;
        while Instant::now() < give_up {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(piece) {
                    return line;
                }
            }
        }
        let _ = self.child.kill();
        panic!("no line with {piece:?} in time: {:#?}", self.seen);
    }

    /// Waits until the sink holds at least one row written by this run.
    fn wait_rows(&mut self, dir: &Path) {
        let give_up = Instant::now() + PATIENCE;
        let out = dir.join("out.csv");
        while Instant::now() < give_up {
            let lines = std::fs::read_to_string(&out).map_or(0, |t| t.lines().count());
            if lines >= 2 {
                return;
            }
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("no rows written in time: {:#?}", self.seen);
    }

    /// Lines seen so far holding `piece`.
    fn lines_with(&mut self, piece: &str) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen
            .iter()
            .filter(|l| l.contains(piece))
            .cloned()
            .collect()
    }

    /// Closes stdin and waits for a successful end; returns every stderr line.
    fn finish(mut self) -> Vec<String> {
        self.stdin.take();
        let give_up = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > give_up {
                let _ = self.child.kill();
                panic!("the run did not end: {:#?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends with the pipe.
        for line in self.lines.iter() {
            self.seen.push(line);
        }
        assert!(status.success(), "run failed: {:#?}", self.seen);
        self.seen
    }

    /// `kill -9`.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a run that aborts by itself (a crash point), its stdin still open.
    fn wait_crash(mut self) {
        let status = self.child.wait().expect("wait");
        self.stdin.take();
        for line in self.lines.iter() {
            self.seen.push(line);
        }
        assert!(!status.success(), "meant to crash: {:#?}", self.seen);
    }
}

/// Resumes the run in `dir` (the plugin at its path as it is) and feeds it the input after
/// the line it resumes after; returns its stderr lines.
fn resume(dir: &Path) -> Vec<String> {
    let mut run = Run::start(dir, 2, &["--reload-plugins"], None);
    let line = run.wait_line(" line");
    let after = match line.split("resuming after input line ").nth(1) {
        Some(n) => n.trim().parse::<u64>().expect("line number"),
        None => {
            assert!(line.contains("from its first line"), "{line}");
            0
        }
    };
    run.write(&rows(after..ROWS));
    run.finish()
}

/// The one `swapped live` line: v1 to v2, groups moved.
fn check_swap_line(line: &str) {
    for piece in [
        "plugin 'median' swapped live from build ",
        "(state version 1) to build ",
        "(state version 2) at checkpoint ",
        " group states moved, paused ",
        " ms moving them)",
    ] {
        assert!(line.contains(piece), "missing {piece:?} in {line}");
    }
    let groups: u64 = line
        .split(" group states moved")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no group count in {line}"));
    assert!(groups > 0, "{line}");
}

/// Runs v1 on two cores half way, swaps v2 in, kills the run (`kill -9`) shortly after
/// the swap, and resumes it with the rest of the input: the checkpoints after the swap
/// name build 2, which is at the path, so the resumed run neither swaps nor upgrades.
fn swap_kill_and_resume(dir: &Path) {
    let mut run = half_way(dir, 2, &["--reload-plugins"], None);
    put_plugin(dir, "median_v2");
    check_swap_line(&run.wait_line("swapped live"));
    run.write(&rows(ROWS / 2..ROWS * 3 / 4));
    std::thread::sleep(Duration::from_millis(150));
    run.kill();
    let err = resume(dir);
    assert!(
        !err.iter().any(|l| ["swapped live", "warning", "upgraded"]
            .iter()
            .any(|p| l.contains(p))),
        "{err:#?}"
    );
}

/// Starts a run with v1 on `cores`, feeds half the input and waits until it wrote rows.
fn half_way(dir: &Path, cores: u32, extra: &[&str], crash: Option<&str>) -> Run {
    let mut run = Run::start(dir, cores, extra, crash);
    run.write(&rows(0..ROWS / 2));
    run.wait_rows(dir);
    run
}

#[test]
fn a_plugin_file_replaced_mid_stream_is_swapped_in_at_a_barrier() {
    let dir = setup();
    let mut run = half_way(dir.path(), 2, &["--reload-plugins"], None);
    // The rest of the input arrives over about two seconds while the new build is put in
    // place: the swap falls mid-stream, between batches still coming in.
    let mut stdin = run.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        let mut next = ROWS / 2;
        while next < ROWS {
            let end = (next + 100).min(ROWS);
            stdin.write_all(rows(next..end).as_bytes())?;
            stdin.flush()?;
            next = end;
            std::thread::sleep(Duration::from_millis(15));
        }
        Ok::<(), std::io::Error>(())
    });
    put_plugin(dir.path(), "median_v2");
    let line = run.wait_line("swapped live");
    check_swap_line(&line);
    feeder.join().expect("feeder").expect("feed stdin");
    let err = run.finish();
    assert_eq!(
        err.iter().filter(|l| l.contains("swapped live")).count(),
        1,
        "{err:#?}"
    );
    assert!(!err.iter().any(|l| l.contains("warning")), "{err:#?}");
    assert_output_is_the_model(dir.path());

    // The state dir now names build 2: the same command is no upgrade.
    let again = common::laminar()
        .current_dir(dir.path())
        .args(["run", "q.sql", "--state-dir", "state"])
        .stdin(Stdio::null())
        .output()
        .expect("run again");
    let text = common::stderr(&again);
    assert!(again.status.success(), "{text}");
    assert!(text.contains("already ran to completion"), "{text}");
}

#[test]
fn a_run_killed_shortly_after_a_swap_resumes_with_the_new_build() {
    let dir = setup();
    swap_kill_and_resume(dir.path());
    assert_output_is_the_model(dir.path());
}

#[test]
fn a_crash_inside_the_swap_resumes_from_the_old_builds_checkpoint_through_the_new_build() {
    let dir = setup();
    // Aborts right after the fingerprint names build 2, before any checkpoint holds its
    // states: the newest checkpoint holds build 1's.
    let run = half_way(
        dir.path(),
        2,
        &["--reload-plugins"],
        Some("live-swap-recorded"),
    );
    put_plugin(dir.path(), "median_v2");
    run.wait_crash();

    let err = resume(dir.path());
    let upgraded: Vec<&String> = err.iter().filter(|l| l.contains("upgraded")).collect();
    assert_eq!(upgraded.len(), 1, "{err:#?}");
    assert!(
        upgraded[0].contains("group states migrated from state version 1 to 2"),
        "{err:#?}"
    );
    assert_output_is_the_model(dir.path());
}

#[test]
fn builds_that_cannot_take_over_leave_the_running_build_with_one_line_each() {
    let dir = setup();
    // On the query thread (the other tests run two cores).
    let mut run = half_way(dir.path(), 1, &["--reload-plugins"], None);

    put_bytes(dir.path(), b"\0asm but not really a component");
    let line = run.wait_line("was not loaded");
    assert!(
        line.contains("plugin 'median': the new build at "),
        "{line}"
    );

    put_plugin(dir.path(), "median_v2_traps");
    let line = run.wait_line("was not swapped in");
    for piece in [
        "merge",
        "trapped",
        "median build 2 gave up in merge",
        "(state version 1) keeps running",
    ] {
        assert!(line.contains(piece), "missing {piece:?} in {line}");
    }

    put_plugin(dir.path(), "median_v2_bigint");
    let line = run.wait_line("was not swapped in");
    for piece in ["BIGINT", "DOUBLE", "a live swap keeps the query's types"] {
        assert!(line.contains(piece), "missing {piece:?} in {line}");
    }

    // Merges the states, then traps in `evaluate`: tried before it takes over.
    put_plugin(dir.path(), "median_v2_evaluate_traps");
    let line = run.wait_line("was not swapped in");
    for piece in ["evaluate", "median build 2 gave up in evaluate"] {
        assert!(line.contains(piece), "missing {piece:?} in {line}");
    }

    // Build 1 kept running all along: a good build still takes over after them.
    run.write(&rows(ROWS / 2..ROWS * 3 / 4));
    put_plugin(dir.path(), "median_v2");
    check_swap_line(&run.wait_line("swapped live"));
    run.write(&rows(ROWS * 3 / 4..ROWS));
    let err = run.finish();
    assert_eq!(
        err.iter().filter(|l| l.contains("warning")).count(),
        4,
        "{err:#?}"
    );
    // The host never panics (the trapping guest's own panic is quoted in its line).
    assert!(!err.iter().any(|l| l.starts_with("thread ")), "{err:#?}");
    assert_output_is_the_model(dir.path());
}

#[test]
fn with_reload_on_sighup_only_a_replaced_file_waits_for_the_signal() {
    let dir = setup();
    let mut run = half_way(dir.path(), 2, &["--reload-plugins=sighup"], None);
    put_plugin(dir.path(), "median_v2");
    // Many polls and checkpoints pass without a swap.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(run.lines_with("swapped live").is_empty(), "{:#?}", run.seen);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &run.child.id().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    check_swap_line(&run.wait_line("swapped live"));
    run.write(&rows(ROWS / 2..ROWS));
    run.finish();
    assert_output_is_the_model(dir.path());
}

#[test]
fn reloading_needs_a_state_dir() {
    let dir = setup();
    let out = common::laminar()
        .current_dir(dir.path())
        .args(["run", "q.sql", "--reload-plugins"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    common::assert_clean_error(&out, &["--reload-plugins", "--state-dir"]);
}

#[test]
fn an_embedding_program_swaps_on_request_through_engine_config() {
    use laminar::{Engine, EngineConfig, ReloadSignal, StdinReader};
    use std::sync::{Arc, Mutex};

    let dir = setup();
    let path = |name: &str| dir.path().join(name);
    let script = SCRIPT
        .replace(
            "'median.wasm'",
            &format!("'{}'", path("median.wasm").display()),
        )
        .replace("'out.csv'", &format!("'{}'", path("out.csv").display()));
    let (reader, mut writer) = std::io::pipe().expect("pipe");
    let reader = Mutex::new(Some(reader));
    let signal = ReloadSignal::on_request_only();
    let config = EngineConfig {
        state_dir: Some(path("state")),
        checkpoint_interval: Duration::from_millis(20),
        cores: 2,
        plugins: laminar_tests::plugin_options(),
        reload_plugins: Some(signal.clone()),
        stdin: StdinReader::new(move || match reader.lock().expect("lock").take() {
            Some(reader) => Box::new(reader),
            None => Box::new(std::io::empty()),
        }),
        ..EngineConfig::default()
    };
    let mut engine = Engine::with_config(config);
    let notices: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&notices);
    engine.set_notice_handler(Box::new(move |text| {
        seen.lock().expect("lock").push(text.to_string())
    }));

    let feeder = {
        let notices = Arc::clone(&notices);
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            writer
                .write_all(rows(0..ROWS / 2).as_bytes())
                .expect("write");
            let out = dir.join("out.csv");
            let give_up = Instant::now() + PATIENCE;
            while std::fs::read_to_string(&out).map_or(0, |t| t.lines().count()) < 2 {
                assert!(Instant::now() < give_up, "no rows written");
                std::thread::sleep(Duration::from_millis(20));
            }
            put_plugin(&dir, "median_v2");
            std::thread::sleep(Duration::from_millis(600));
            let swapped = |n: &Mutex<Vec<String>>| {
                n.lock()
                    .expect("lock")
                    .iter()
                    .any(|l| l.contains("swapped live"))
            };
            assert!(!swapped(&notices), "swapped before the request");
            signal.request();
            while !swapped(&notices) {
                assert!(Instant::now() < give_up, "no swap after the request");
                std::thread::sleep(Duration::from_millis(20));
            }
            writer
                .write_all(rows(ROWS / 2..ROWS).as_bytes())
                .expect("write");
        })
    };
    let summary = engine
        .run_script(
            &script,
            &mut |_| Err(laminar::Error::Execution("no default output".into())),
            &mut |_| {},
        )
        .expect("run");
    feeder.join().expect("feeder");
    assert_eq!(summary.events_read, ROWS);
    let notices = notices.lock().expect("lock").clone();
    let swaps: Vec<&String> = notices
        .iter()
        .filter(|l| l.contains("swapped live"))
        .collect();
    assert_eq!(swaps.len(), 1, "{notices:#?}");
    check_swap_line(swaps[0]);
    assert_output_is_the_model(dir.path());
}

#[test]
fn a_plugin_two_queries_call_is_swapped_in_both_at_one_barrier() {
    let dir = setup();
    // A second query calling `median`, into a sink of its own.
    let script = format!(
        "{SCRIPT}
CREATE SINK again WITH (connector = 'file', path = 'again.csv', format = 'csv');
INSERT INTO again SELECT auction, window_start, COUNT(*) AS n, median(price) AS mid
FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
GROUP BY window_start, window_end, auction;"
    );
    std::fs::write(dir.path().join("q.sql"), script).expect("script");
    // The checkpoints after the swap hold build 2's states (another encoding) for both
    // queries: had one query kept build 1's, the resumed run would read them as build
    // 2's and fail or differ from the model.
    swap_kill_and_resume(dir.path());
    assert_output_is_the_model(dir.path());
    let again = output_of(dir.path(), "again.csv");
    assert_eq!(
        again,
        model(),
        "the second query's rows differ from the model"
    );
}
