//! Exactly-once recovery after `kill -9`: the real binary runs a windowed query into a
//! file sink with `--state-dir`, is killed again and again — once its output reaches
//! rising shares of the uninterrupted run's (after a further random delay) and at named
//! crash points (checkpoint writing, WAL sync, sink writes, completion) — and restarted
//! with the same command each time. When the input ends, the sink file must hold exactly
//! the rows of a run that was never killed (as multisets) and the run summary the same
//! counters. Covers a file source, a query with the Wasm `median` plugin, and stdin, where
//! the test resends the input after the line the restarted run reports. Restarts
//! alternate between decoding on worker threads and on the query thread (`--cores 1`).

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use laminar::gen::{write_bids, BidsConfig, SplitMix64};
use laminar::sink::partial_path;
use laminar::sql::FormatKind;

/// How a run is stopped.
#[derive(Debug, Clone)]
enum Crash {
    /// `kill -9` once the run's sink file holds this share of the uninterrupted run's
    /// output, and a further `then` later. Kills follow the run's progress rather than the
    /// clock, so that on a fast machine a run still cannot reach the end of its input
    /// before every planned kill has hit it.
    Past { share: f64, then: Duration },
    /// The binary aborts itself at this crash point (`LAMINAR_CRASH_AT`).
    At(&'static str),
}

/// The longest a kill waits after its share is written: it lands anywhere between two
/// checkpoints (150 ms apart), yet a run cannot get far past its share.
const KILL_DELAY_MS: u64 = 150;

/// Named points reached while the input is read, each with the hit that crashes
/// (`name:N`).
const POINTS: &[&str] = &[
    "checkpoint-start:3",
    "checkpoint-after-sink-sync:2",
    "checkpoint-before-write:4",
    "checkpoint-after-write:2",
    "sink-after-write:3",
];

/// Points at the end of the input: between the last sync and the completion marker, and
/// between the marker and the rename of the sink file into place.
const END_POINTS: &[&str] = &["before-complete", "after-complete"];

/// Stdin runs crash at WAL points too.
const WAL_POINTS: &[&str] = &["wal-after-append:30", "wal-after-sync:20"];

struct Scenario {
    dir: tempfile::TempDir,
    script: PathBuf,
    out: PathBuf,
    /// The size of the uninterrupted run's sink file, once [`reference`](Self::reference)
    /// has run.
    reference_bytes: u64,
}

impl Scenario {
    fn new(source_with: &str, query: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out.csv");
        let script = dir.path().join("q.sql");
        std::fs::write(
            &script,
            format!(
                "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
                    channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
                 WITH ({source_with}, format = 'csv', batch_size = '2000');
                 CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
                 INSERT INTO out {query}",
                out.display()
            ),
        )
        .expect("script");
        Self {
            dir,
            script,
            out,
            reference_bytes: 0,
        }
    }

    fn command(&self, state_dir: Option<&Path>) -> Command {
        let mut cmd = common::laminar();
        cmd.arg("run").arg(&self.script);
        if let Some(state_dir) = state_dir {
            cmd.arg("--state-dir")
                .arg(state_dir)
                .args(["--checkpoint-interval", "150ms"]);
        }
        cmd.env_remove("LAMINAR_CRASH_AT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// The uninterrupted run: sorted sink rows and the summary's counters; notes the sink
    /// file's size.
    fn reference(&mut self, stdin: Option<&Path>) -> (Vec<String>, String) {
        let mut cmd = self.command(None);
        if let Some(input) = stdin {
            cmd.stdin(std::fs::File::open(input).expect("input"));
        }
        let out = cmd.output().expect("reference run");
        let err = common::stderr(&out);
        assert!(out.status.success(), "{err}");
        self.reference_bytes = std::fs::metadata(&self.out).expect("sink file").len();
        (sorted_lines(&self.out), counters(&err))
    }
}

/// The counters of the run summary (everything before the timing).
fn counters(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("events read"))
        .unwrap_or_else(|| panic!("no run summary in: {stderr}"));
    line.split(" in ").next().unwrap_or(line).to_string()
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("sink file");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// A schedule of crashes: kills at rising shares of the output (up to 80 %, each with a
/// random jitter and a random delay of up to [`KILL_DELAY_MS`] after it) with the named
/// points mixed in, then the points at the end of the input.
fn schedule(seed: u64, kills: usize, points: &[&'static str]) -> Vec<Crash> {
    let mut rng = SplitMix64::new(seed);
    let step = 0.8 / kills as f64;
    let mut crashes: Vec<Crash> = (0..kills)
        .map(|i| Crash::Past {
            share: step * (i as f64 + rng.below(1_000) as f64 / 1_000.0),
            then: Duration::from_millis(rng.below(KILL_DELAY_MS)),
        })
        .collect();
    for (i, point) in points.iter().enumerate() {
        let at = (i * 3 + 1).min(crashes.len());
        crashes.insert(at, Crash::At(point));
    }
    crashes.extend(END_POINTS.iter().map(|p| Crash::At(p)));
    crashes
}

/// Runs `scenario` with crashes until a run completes; returns the crashes that hit a
/// running process and the final summary's counters.
fn run_with_crashes(
    scenario: &Scenario,
    crashes: &[Crash],
    stdin: Option<&Path>,
) -> (usize, String) {
    let state = scenario.dir.path().join("state");
    // The file the sink writes before the run completes: a bounded run's partial file,
    // renamed into place at the end; a live (stdin) run writes its destination itself.
    let written = match stdin {
        Some(_) => scenario.out.clone(),
        None => partial_path(&scenario.out),
    };
    let mut crashed = 0;
    let mut plan = crashes.iter();
    for attempt in 0.. {
        assert!(attempt < 200, "the run never completed");
        let crash = plan.next();
        let mut cmd = scenario.command(Some(&state));
        // Every other restart decodes on the query thread alone: a run resumed with
        // another number of cores must go on exactly where the last one stopped.
        if attempt % 2 == 1 {
            cmd.args(["--cores", "1"]);
        }
        if let Some(Crash::At(point)) = crash {
            cmd.env("LAMINAR_CRASH_AT", point);
        }
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn laminar");
        let stderr = child.stderr.take().expect("stderr");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        // Lines of stderr read while waiting for the resume line; kept for the summary.
        let mut seen = Vec::new();
        let writer = stdin.and_then(|input| {
            // The restarted run says where it resumes before it reads stdin (a run that
            // already completed says so instead, and reads nothing).
            let resume_line = lines_rx.iter().find_map(|l| {
                let found = match l.strip_prefix("laminar: resuming after input line ") {
                    Some(n) => Some(n.trim().parse::<usize>().expect("line number")),
                    None => l
                        .starts_with("laminar: reading stdin from its first line")
                        .then_some(0),
                };
                seen.push(l);
                found
            })?;
            let data = std::fs::read_to_string(input).expect("input");
            let rest: String = data
                .split_inclusive('\n')
                .skip(resume_line)
                .collect::<String>();
            let mut pipe = child.stdin.take().expect("stdin");
            Some(std::thread::spawn(move || {
                // Fails with a broken pipe when the run is killed: the next run resends.
                let _ = pipe.write_all(rest.as_bytes());
            }))
        });
        // Closes stdin of a run that did not ask for input.
        drop(child.stdin.take());
        let killed = match crash {
            Some(Crash::Past { share, then }) => {
                let bytes = (*share * scenario.reference_bytes as f64) as u64;
                common::kill_once_grown(&mut child, &written, bytes, *then)
            }
            _ => false,
        };
        let status = child.wait().expect("wait");
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        let _ = reader.join();
        seen.extend(lines_rx.try_iter());
        let err = seen.join("\n");
        if killed || (matches!(crash, Some(Crash::At(_))) && !status.success()) {
            assert!(!err.contains("panicked"), "{err}");
            crashed += 1;
            continue;
        }
        assert!(status.success(), "attempt {attempt} failed: {err}");
        return (crashed, counters(&err));
    }
    unreachable!()
}

fn bids_file(dir: &Path, rows: u64, seed: u64) -> PathBuf {
    let path = dir.join("bids.csv");
    let config = BidsConfig {
        rows,
        seed,
        disorder_ms: 3_000,
        late_fraction: 0.01,
        auctions: 500,
        events_per_second: 2_000,
        ..BidsConfig::default()
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("bids"));
    write_bids(&config, FormatKind::Csv, &mut file).expect("write bids");
    file.flush().expect("flush");
    path
}

const WINDOWED: &str =
    "SELECT auction, window_start, window_end, COUNT(*) AS n, SUM(price) AS volume,
        MIN(price) AS low, MAX(price) AS high, AVG(price) AS mean, COUNT(bidder) AS bidders
    FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
    WHERE channel <> 'test'
    GROUP BY window_start, window_end, auction;";

#[test]
fn a_file_run_killed_two_dozen_times_writes_exactly_the_uninterrupted_output() {
    let input_dir = tempfile::tempdir().expect("tempdir");
    let input = bids_file(input_dir.path(), 1_000_000, 5);
    let mut scenario = Scenario::new(
        &format!("connector = 'file', path = '{}'", input.display()),
        WINDOWED,
    );
    let (expected, expected_counters) = scenario.reference(None);
    assert!(expected.len() > 10_000);
    std::fs::remove_file(&scenario.out).expect("remove reference output");

    let crashes = schedule(11, 17, POINTS);
    let (crashed, got_counters) = run_with_crashes(&scenario, &crashes, None);
    assert!(
        crashed >= 20,
        "only {crashed} crashes hit a running process"
    );
    assert_eq!(got_counters, expected_counters);
    assert_eq!(sorted_lines(&scenario.out), expected);
}

#[test]
fn a_query_with_the_wasm_median_survives_kills() {
    let input_dir = tempfile::tempdir().expect("tempdir");
    let input = bids_file(input_dir.path(), 500_000, 9);
    let plugin = laminar_tests::guest("median");
    let query =
        "SELECT auction, window_start, COUNT(*) AS n, median(price) AS mid, SUM(price) AS volume
        FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
        GROUP BY window_start, window_end, auction;";
    let mut scenario = Scenario::new(
        &format!("connector = 'file', path = '{}'", input.display()),
        query,
    );
    let script = std::fs::read_to_string(&scenario.script).expect("script");
    std::fs::write(
        &scenario.script,
        format!(
            "CREATE AGGREGATE median FROM '{}';\n{script}",
            plugin.display()
        ),
    )
    .expect("script");
    let (expected, expected_counters) = scenario.reference(None);
    std::fs::remove_file(&scenario.out).expect("remove reference output");

    let crashes = schedule(12, 6, &POINTS[..4]);
    let (crashed, got_counters) = run_with_crashes(&scenario, &crashes, None);
    assert!(crashed >= 6, "only {crashed} crashes hit a running process");
    assert_eq!(got_counters, expected_counters);
    assert_eq!(sorted_lines(&scenario.out), expected);
}

#[test]
fn a_stdin_run_resent_from_the_reported_line_loses_and_repeats_nothing() {
    let input_dir = tempfile::tempdir().expect("tempdir");
    let input = bids_file(input_dir.path(), 1_000_000, 13);
    let mut scenario = Scenario::new("connector = 'stdin'", WINDOWED);
    let (expected, expected_counters) = scenario.reference(Some(&input));
    std::fs::remove_file(&scenario.out).expect("remove reference output");

    let mut points = WAL_POINTS.to_vec();
    points.extend_from_slice(&POINTS[..3]);
    let crashes = schedule(14, 8, &points);
    let (crashed, got_counters) = run_with_crashes(&scenario, &crashes, Some(&input));
    assert!(crashed >= 8, "only {crashed} crashes hit a running process");
    assert_eq!(got_counters, expected_counters);
    assert_eq!(sorted_lines(&scenario.out), expected);
}

/// A query with the Wasm `median` plugin, killed and restarted like the others.
fn median_scenario(input: &Path, query: &str) -> Scenario {
    let plugin = laminar_tests::guest("median");
    let scenario = Scenario::new(
        &format!("connector = 'file', path = '{}'", input.display()),
        query,
    );
    let script = std::fs::read_to_string(&scenario.script).expect("script");
    std::fs::write(
        &scenario.script,
        format!(
            "CREATE AGGREGATE median FROM '{}';\n{script}",
            plugin.display()
        ),
    )
    .expect("script");
    scenario
}

/// Declares a CSV late sink `late.csv` beside the scenario's output; returns its path.
fn with_late_sink(scenario: &Scenario) -> PathBuf {
    let late = scenario.dir.path().join("late.csv");
    let script = std::fs::read_to_string(&scenario.script).expect("script");
    let script = script.replacen(
        "INSERT INTO out",
        &format!(
            "CREATE SINK late_out WITH (connector = 'file', path = '{}', format = 'csv');\nINSERT INTO out",
            late.display()
        ),
        1,
    );
    std::fs::write(&scenario.script, script).expect("script");
    late
}

#[test]
fn a_hop_query_with_the_wasm_median_and_a_late_sink_survives_kills() {
    let input_dir = tempfile::tempdir().expect("tempdir");
    let input = bids_file(input_dir.path(), 300_000, 15);
    let mut scenario = median_scenario(
        &input,
        "SELECT auction, window_start, window_end, COUNT(*) AS n, median(price) AS mid,
                SUM(price) AS volume
         FROM HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '6' SECOND)
         GROUP BY window_start, window_end, auction
         EMIT ON WINDOW CLOSE LATE DATA TO late_out;",
    );
    let late = with_late_sink(&scenario);
    let (expected, expected_counters) = scenario.reference(None);
    assert!(expected.len() > 10_000);
    let expected_late = std::fs::read_to_string(&late).expect("late sink");
    assert!(expected_late.lines().count() > 1_000, "{expected_counters}");
    assert!(
        expected_counters.contains(&format!(
            "{} late events",
            expected_late.lines().count() - 1
        )),
        "{expected_counters}"
    );
    std::fs::remove_file(&scenario.out).expect("remove reference output");
    std::fs::remove_file(&late).expect("remove reference late rows");

    let crashes = schedule(16, 6, &POINTS[..4]);
    let (crashed, got_counters) = run_with_crashes(&scenario, &crashes, None);
    assert!(crashed >= 6, "only {crashed} crashes hit a running process");
    assert_eq!(got_counters, expected_counters);
    assert_eq!(sorted_lines(&scenario.out), expected);
    // The late rows, in arrival order, exactly once.
    assert!(std::fs::read_to_string(&late).expect("late sink") == expected_late);
}

#[test]
fn a_session_query_with_the_wasm_median_and_a_late_sink_survives_kills() {
    let input_dir = tempfile::tempdir().expect("tempdir");
    let input = bids_file(input_dir.path(), 300_000, 17);
    let mut scenario = median_scenario(
        &input,
        "SELECT auction, SESSION_START(ts, INTERVAL '1' SECOND) AS s,
                SESSION_END(ts, INTERVAL '1' SECOND) AS e, COUNT(*) AS n,
                median(price) AS mid, SUM(price) AS volume
         FROM bids WHERE channel <> 'test'
         GROUP BY auction, SESSION(ts, INTERVAL '1' SECOND)
         EMIT ON WINDOW CLOSE LATE DATA TO late_out;",
    );
    let late = with_late_sink(&scenario);
    let (expected, expected_counters) = scenario.reference(None);
    assert!(expected.len() > 1_000);
    let expected_late = std::fs::read_to_string(&late).expect("late sink");
    // The late sink holds exactly the rows the summary counts late (the header aside).
    assert!(expected_late.lines().count() > 100, "{expected_counters}");
    assert!(
        expected_counters.contains(&format!(
            "{} late events",
            expected_late.lines().count() - 1
        )),
        "{expected_counters}"
    );
    std::fs::remove_file(&scenario.out).expect("remove reference output");
    std::fs::remove_file(&late).expect("remove reference late rows");

    let crashes = schedule(18, 6, &POINTS[..4]);
    let (crashed, got_counters) = run_with_crashes(&scenario, &crashes, None);
    assert!(crashed >= 6, "only {crashed} crashes hit a running process");
    assert_eq!(got_counters, expected_counters);
    assert_eq!(sorted_lines(&scenario.out), expected);
    // The late rows, in arrival order, exactly once.
    assert!(std::fs::read_to_string(&late).expect("late sink") == expected_late);
}

#[test]
fn a_cumulate_query_with_a_late_sink_survives_kills() {
    let input_dir = tempfile::tempdir().expect("tempdir");
    let input = bids_file(input_dir.path(), 300_000, 19);
    let mut scenario = Scenario::new(
        &format!("connector = 'file', path = '{}'", input.display()),
        "SELECT auction, window_start, window_end, COUNT(*) AS n, SUM(price) AS volume,
                MAX(price) AS high
         FROM CUMULATE(TABLE bids, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '8' SECOND)
         WHERE channel <> 'test'
         GROUP BY window_start, window_end, auction
         EMIT ON WINDOW CLOSE LATE DATA TO late_out;",
    );
    let late = with_late_sink(&scenario);
    let (expected, expected_counters) = scenario.reference(None);
    assert!(expected.len() > 10_000);
    let expected_late = std::fs::read_to_string(&late).expect("late sink");
    assert!(expected_late.lines().count() > 1_000, "{expected_counters}");
    std::fs::remove_file(&scenario.out).expect("remove reference output");
    std::fs::remove_file(&late).expect("remove reference late rows");

    let crashes = schedule(20, 6, &POINTS[..4]);
    let (crashed, got_counters) = run_with_crashes(&scenario, &crashes, None);
    assert!(crashed >= 6, "only {crashed} crashes hit a running process");
    assert_eq!(got_counters, expected_counters);
    assert_eq!(sorted_lines(&scenario.out), expected);
    assert!(std::fs::read_to_string(&late).expect("late sink") == expected_late);
}
