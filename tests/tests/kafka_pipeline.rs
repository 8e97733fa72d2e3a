//! Kafka in and out through the real `laminar` binary against the real broker
//! (`LAMINAR_KAFKA_BOOTSTRAP`; skipped with a notice without one).
//!
//! - Oracle: a 4-partition topic of out-of-order bids with late rows and NULL prices,
//!   auctions spread over every partition, read with `stop_at = 'end'` into a file sink
//!   at `--cores` 1 and 2 and batch sizes 7 and 8192. The result equals DataFusion over
//!   the rows the contract keeps, lateness decided per partition by a model written here.
//! - Exactly once: the same topic into an `exactly_once` Kafka sink (with the Wasm
//!   `median`) and a file sink, killed with SIGKILL at 16 random moments and at named
//!   crash points around the transaction, restarted each time: a `read_committed`
//!   consumer reads the output topic, which as a multiset equals an uninterrupted run's,
//!   and so does the file.

use crate::common;
use crate::common::bids::{self, committed_rows, on_time, oracle, read_results, Bid};
use crate::common::kafka::{bootstrap, create_topic, producer, send};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use laminar::gen::SplitMix64;
use laminar_tests::assert_rows_close;
use rdkafka::producer::Producer;

const PARTITIONS: i32 = 4;

/// Produces `per_partition` bids to each of 4 partitions, auctions 0..20 in every
/// partition.
fn produce(brokers: &str, per_partition: usize, seed: u64) -> (String, Vec<Bid>) {
    bids::produce(brokers, PARTITIONS, per_partition, seed, |rng, _| {
        rng.below(20) as i64
    })
}

fn source(brokers: &str, topic: &str, batch_size: usize) -> String {
    format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE,
             WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
         WITH (connector = 'kafka', brokers = '{brokers}', topic = '{topic}', format = 'json',
               stop_at = 'end', batch_size = '{batch_size}');\n"
    )
}

const QUERY: &str = "SELECT auction, window_start, COUNT(*) AS n, COUNT(price) AS priced,
        SUM(price) AS volume, MIN(price) AS low, MAX(price) AS high
    FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
    GROUP BY auction, window_start, window_end";

#[test]
fn a_four_partition_topic_with_late_rows_and_nulls_matches_datafusion() {
    let Some(brokers) = bootstrap("kafka_pipeline oracle") else {
        return;
    };
    let (topic, bids) = produce(&brokers, 2_000, 11);
    let (kept, late) = on_time(&bids);
    assert!(late > 50, "the data must hold late rows: {late}");
    let expected = oracle(&kept, false);
    let dir = tempfile::tempdir().expect("tempdir");
    for cores in ["1", "2"] {
        for batch_size in [7, 8192] {
            let what = format!("--cores {cores}, batch size {batch_size}");
            let out = dir.path().join(format!("out-{cores}-{batch_size}.csv"));
            let script = format!(
                "{}CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
                 INSERT INTO out {QUERY};",
                source(&brokers, &topic, batch_size),
                out.display()
            );
            let script_path = dir.path().join("q.sql");
            std::fs::write(&script_path, script).expect("script");
            let output = common::laminar()
                .arg("run")
                .arg(&script_path)
                .args(["--cores", cores])
                .output()
                .expect("run laminar");
            let err = common::stderr(&output);
            assert!(output.status.success(), "{what}: {err}");
            assert!(
                err.contains(&format!(
                    "{} events read, {late} late events dropped, 0 bad rows skipped",
                    bids.len()
                )),
                "{what}: {err}"
            );
            assert_rows_close(&read_results(&out, false), &expected, 1e-9, &what);
        }
    }
}

/// How a crashing run is stopped.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// `kill -9` once the file sink's partial file holds this many bytes.
    Past(u64),
    /// The binary aborts itself at this crash point (`LAMINAR_CRASH_AT`).
    At(&'static str),
}

/// A durable run of the exactly-once script.
fn durable_run(script: &Path, state: &Path, cores: &str, crash_at: Option<&str>) -> Command {
    let mut cmd = common::laminar();
    cmd.arg("run")
        .arg(script)
        .arg("--state-dir")
        .arg(state)
        .args(["--checkpoint-interval", "200ms", "--cores", cores])
        .env_remove("LAMINAR_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(point) = crash_at {
        cmd.env("LAMINAR_CRASH_AT", point);
    }
    cmd
}

/// The script: `bids` into an exactly-once Kafka sink (with the Wasm median) and a file
/// sink.
fn exactly_once_script(brokers: &str, input: &str, output: &str, file: &Path) -> String {
    format!(
        "CREATE AGGREGATE median FROM '{}';
         {}CREATE SINK stats WITH (connector = 'kafka', brokers = '{brokers}', topic = '{output}',
               format = 'json', key = 'auction', delivery = 'exactly_once');
         CREATE SINK copy WITH (connector = 'file', path = '{}', format = 'csv');
         INSERT INTO stats SELECT auction, window_start, COUNT(*) AS n, COUNT(price) AS priced,
             SUM(price) AS volume, MIN(price) AS low, MAX(price) AS high, median(price) AS mid
           FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
           GROUP BY auction, window_start, window_end;
         INSERT INTO copy SELECT auction, window_start, COUNT(*) AS n, COUNT(price) AS priced,
             SUM(price) AS volume, MIN(price) AS low, MAX(price) AS high, median(price) AS mid
           FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
           GROUP BY auction, window_start, window_end;\n",
        laminar_tests::guest("median").display(),
        source(brokers, input, 500),
        file.display()
    )
}

#[test]
fn kill_9_around_the_transaction_loses_and_repeats_no_row_of_the_exactly_once_sink() {
    let Some(brokers) = bootstrap("kafka_pipeline exactly once") else {
        return;
    };
    let (input, bids) = produce(&brokers, 25_000, 29);
    let (kept, _) = on_time(&bids);
    let expected = oracle(&kept, true);
    let dir = tempfile::tempdir().expect("tempdir");

    // The uninterrupted run: its topic and file equal the oracle.
    let reference_topic = create_topic(&brokers, 3);
    let reference_file = dir.path().join("reference.csv");
    let script = dir.path().join("reference.sql");
    std::fs::write(
        &script,
        exactly_once_script(&brokers, &input, &reference_topic, &reference_file),
    )
    .expect("script");
    let out = durable_run(&script, &dir.path().join("reference-state"), "2", None)
        .output()
        .expect("reference run");
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_rows_close(
        &read_results(&reference_file, true),
        &expected,
        1e-9,
        "reference",
    );
    assert_rows_close(
        &committed_rows(&brokers, &reference_topic),
        &expected,
        1e-9,
        "reference topic",
    );

    // Killed again and again.
    let output_topic = create_topic(&brokers, 3);
    let file = dir.path().join("copy.csv");
    let script = dir.path().join("crashing.sql");
    std::fs::write(
        &script,
        exactly_once_script(&brokers, &input, &output_topic, &file),
    )
    .expect("script");
    let state = dir.path().join("state");
    let reference_bytes = std::fs::metadata(&reference_file)
        .expect("reference file")
        .len();
    let partial = laminar::sink::partial_path(&file);
    let mut rng = SplitMix64::new(3);
    // Kills at rising shares of the output (so that each lands in a run still going),
    // with the named points around the transaction mixed in, then those at the end.
    let mut plan: Vec<Crash> = (0..16)
        .map(|i| Crash::Past(reference_bytes * (i * 55 + rng.below(50)) / 1_000))
        .collect();
    for (at, point) in [
        (2, "checkpoint-after-sink-sync:1"),
        (5, "checkpoint-after-write:1"),
        (8, "checkpoint-after-commit:1"),
        (11, "checkpoint-after-write:2"),
    ] {
        plan.insert(at, Crash::At(point));
    }
    plan.extend(["before-complete", "complete-after-commit", "after-complete"].map(Crash::At));
    let mut hits = 0;
    let mut plan = plan.into_iter();
    for attempt in 0.. {
        assert!(attempt < 80, "the run never completed");
        let cores = if attempt % 2 == 0 { "2" } else { "1" };
        match plan.next() {
            Some(Crash::Past(bytes)) => {
                let mut child = durable_run(&script, &state, cores, None)
                    .spawn()
                    .expect("spawn");
                if common::kill_once_grown(&mut child, &partial, bytes, Duration::ZERO) {
                    hits += 1;
                }
                if hits == 3 {
                    // `state inspect` shows each partition's offset and event time.
                    let report = common::laminar()
                        .args(["state", "inspect"])
                        .arg(&state)
                        .output()
                        .expect("inspect");
                    let text = common::stdout(&report);
                    for partition in 0..PARTITIONS {
                        assert!(
                            text.contains(&format!("partition {partition} offset ")),
                            "{text}"
                        );
                        assert!(
                            text.contains(&format!("partition {partition} max event time ")),
                            "{text}"
                        );
                    }
                }
            }
            Some(Crash::At(point)) => {
                let out = durable_run(&script, &state, cores, Some(point))
                    .output()
                    .expect("run");
                if !out.status.success() {
                    hits += 1;
                }
            }
            None => {
                let out = durable_run(&script, &state, cores, None)
                    .output()
                    .expect("run");
                assert!(out.status.success(), "{}", common::stderr(&out));
                break;
            }
        }
    }
    assert!(hits >= 14, "only {hits} crashes hit a running process");
    // As a multiset, every row once: the oracle's (and so the uninterrupted run's),
    // floating-point sums within their last bits.
    assert_rows_close(
        &committed_rows(&brokers, &output_topic),
        &expected,
        1e-9,
        "the committed output after kill -9s",
    );
    assert_rows_close(
        &read_results(&file, true),
        &expected,
        1e-9,
        "file sink after kill -9s",
    );
}

/// Lines of `path` once it holds `lines`, or what it holds at `deadline`.
fn wait_for_lines(path: &Path, lines: usize, deadline: Instant) -> usize {
    loop {
        let now = std::fs::read_to_string(path).map_or(0, |t| t.lines().count());
        if now >= lines || Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_idle_partition_stops_holding_windows_back_after_idle_timeout() {
    let Some(brokers) = bootstrap("kafka_pipeline idle partitions") else {
        return;
    };
    let topic = create_topic(&brokers, 2);
    let plain = producer(&brokers, None);
    let base = 1_700_000_000_000i64;
    // Partition 0 runs to 40 s of event time, partition 1 stops at 15 s.
    for (partition, until) in [(0, 40_000), (1, 15_000)] {
        for t in (0..until).step_by(500) {
            let value = format!(r#"{{"ts":{},"auction":1,"price":1.0}}"#, base + t);
            send(&plain, &topic, partition, "1", &value);
        }
    }
    plain.flush(Duration::from_secs(30)).expect("flush");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut children = Vec::new();
    for idle in ["", ", idle_timeout = '300ms'"] {
        let out = dir.path().join(format!("out{}.csv", children.len()));
        let script = format!(
            "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE,
                 WATERMARK FOR ts AS ts)
             WITH (connector = 'kafka', brokers = '{brokers}', topic = '{topic}',
                   format = 'json'{idle});
             CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
             INSERT INTO out SELECT window_start, COUNT(*) AS n
             FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND)
             GROUP BY window_start, window_end;",
            out.display()
        );
        let path = dir.path().join(format!("q{}.sql", children.len()));
        std::fs::write(&path, script).expect("script");
        let child = common::laminar()
            .arg("run")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        children.push((child, out));
    }
    // With idleness, partition 1 stops holding the watermark at 15 s: the windows up to
    // [20 s, 30 s) close (header + 3 rows). Without it, only [0 s, 10 s) can.
    let idle_lines = wait_for_lines(&children[1].1, 4, Instant::now() + Duration::from_secs(30));
    let held_lines = wait_for_lines(&children[0].1, 3, Instant::now() + Duration::from_secs(1));
    for (child, _) in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_eq!(idle_lines, 4, "with idle_timeout the windows to 30 s close");
    assert_eq!(
        held_lines, 2,
        "without it the silent partition holds them back"
    );
}

#[test]
fn an_unreachable_broker_or_exactly_once_without_a_state_dir_is_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 1: the error comes within the 2 s timeout, never a hang.
    let unreachable = "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE)
        WITH (connector = 'kafka', brokers = '127.0.0.1:1', topic = 'bids', format = 'json',
              timeout = '2s');
        SELECT auction FROM bids;";
    let started = Instant::now();
    let out = common::run_script(dir.path(), unreachable, &[]);
    assert!(started.elapsed() < Duration::from_secs(20), "it hung");
    common::assert_clean_error(&out, &["127.0.0.1:1", "bids"]);

    let Some(brokers) = bootstrap("kafka_pipeline exactly once without a state dir") else {
        return;
    };
    let topic = create_topic(&brokers, 1);
    let script = format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE)
            WITH (connector = 'kafka', brokers = '{brokers}', topic = '{topic}', format = 'json',
                  stop_at = 'end');
         CREATE SINK out WITH (connector = 'kafka', brokers = '{brokers}', topic = '{topic}',
                  format = 'json', delivery = 'exactly_once');
         INSERT INTO out SELECT auction FROM bids;"
    );
    let out = common::run_script(dir.path(), &script, &[]);
    common::assert_clean_error(&out, &["exactly_once", "state dir"]);
}
