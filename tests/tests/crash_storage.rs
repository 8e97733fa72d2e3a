//! Crashes that lose every byte and every name that was not synced. A durable run (a file
//! source, and stdin through its write-ahead log, each into a file sink) runs on a
//! `CrashStorage` and crashes after each of its syncs in turn: between two syncs nothing
//! durable changes, so this reaches every durable state a power loss can leave, whatever
//! named point of the code it falls at (checkpoint start, after the sink sync, before and
//! after the checkpoint file, after a sink write, around the completion marker, after WAL
//! appends and syncs). The restarted run finds only what was durable — a file whose name
//! was never synced in its directory is gone — and some restarts crash again. Every run
//! that completes writes exactly the uninterrupted run's output, with the same counters.
//! (A `kill -9` keeps the page cache, so the crash tests with a real process cannot catch
//! a missing fsync; these can.)

use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use laminar::gen::{write_bids, BidsConfig};
use laminar::sink::{CollectSink, Sink};
use laminar::sql::FormatKind;
use laminar::storage::CrashStorage;
use laminar::{Engine, EngineConfig, RunSummary, StdinReader};

fn script(source: &str, out: &Path) -> String {
    format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
            channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
         WITH ({source}, format = 'csv', batch_size = '40', on_error = 'skip');
         CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
         INSERT INTO out SELECT auction, window_start, COUNT(*) AS n, SUM(price) AS volume
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND)
         GROUP BY window_start, window_end, auction;",
        out.display()
    )
}

/// The input: a few hundred bids with late ones and a bad row.
fn input() -> Vec<u8> {
    let config = BidsConfig {
        rows: 480,
        seed: 11,
        auctions: 6,
        events_per_second: 120,
        ..BidsConfig::default()
    };
    let mut bytes = Vec::new();
    write_bids(&config, FormatKind::Csv, &mut bytes).expect("bids");
    bytes.extend_from_slice(b"not,a,bid\n");
    bytes
}

/// One run of `sql` with its state in `state` on `storage`; stdin (when given) is the
/// input after the line the run says it resumes after.
fn run(
    sql: &str,
    state: &Path,
    storage: &CrashStorage,
    stdin: Option<&Arc<Vec<u8>>>,
) -> laminar::Result<RunSummary> {
    let resume_after = Arc::new(Mutex::new(0usize));
    let mut config = EngineConfig {
        state_dir: Some(state.to_path_buf()),
        checkpoint_interval: Duration::ZERO,
        storage: Arc::new(storage.clone()),
        cores: 1,
        decode_threads: 0,
        ..EngineConfig::default()
    };
    config.wal = config.wal.clone().interval(Duration::ZERO);
    if let Some(input) = stdin {
        let (input, resume_after) = (Arc::clone(input), Arc::clone(&resume_after));
        config.stdin = StdinReader::new(move || {
            let skip = *resume_after.lock().expect("resume line");
            let rest: Vec<u8> = input
                .split_inclusive(|&b| b == b'\n')
                .skip(skip)
                .flatten()
                .copied()
                .collect();
            Box::new(Cursor::new(rest))
        });
    }
    let mut engine = Engine::with_config(config);
    let notices = Arc::clone(&resume_after);
    engine.set_notice_handler(Box::new(move |text| {
        if let Some(n) = text.strip_prefix("resuming after input line ") {
            *notices.lock().expect("resume line") = n.trim().parse().expect("line number");
        }
    }));
    let collected = CollectSink::new();
    engine.run_script(
        sql,
        &mut |_| Ok(Box::new(collected.clone()) as Box<dyn Sink>),
        &mut |_| {},
    )
}

fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn counters(s: &RunSummary) -> [u64; 5] {
    [
        s.events_read,
        s.late_events_dropped,
        s.bad_rows_skipped,
        s.windows_emitted,
        s.rows_emitted,
    ]
}

/// Crashes the run after each of its syncs in turn; each restart (crashing again after a
/// few syncs for every third crash point) must end with the uninterrupted output.
fn every_crash_point_restarts_to_the_uninterrupted_output(stdin: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let bytes = Arc::new(input());
    let out = root.join("out.csv");
    let source = if stdin {
        "connector = 'stdin'".to_string()
    } else {
        let path = root.join("bids.csv");
        std::fs::write(&path, bytes.as_slice()).expect("input");
        format!("connector = 'file', path = '{}'", path.display())
    };
    let sql = script(&source, &out);
    let stdin = stdin.then_some(&bytes);

    let clean = CrashStorage::new(root);
    let summary = run(&sql, &root.join("clean"), &clean, stdin).expect("uninterrupted run");
    let expected = sorted_lines(&clean.contents(&out).expect("sink file"));
    assert!(expected.len() > 20, "{} rows", expected.len());
    assert!(summary.late_events_dropped > 0 && summary.bad_rows_skipped == 1);
    let clean_counters = counters(&summary);
    let syncs = clean.syncs();
    assert!(syncs > 20, "{syncs} syncs");

    for k in 0..syncs {
        let state = root.join(format!("state-{k}"));
        let crashing = CrashStorage::new(root).crash_after_syncs(k);
        let result = run(&sql, &state, &crashing, stdin);
        if !crashing.has_crashed() {
            // The run needed fewer syncs this time (stdin's group commit): it completed.
            result.expect("a run that did not crash");
            continue;
        }
        assert!(result.is_err(), "crash after sync {k}: the run went on");
        let mut storage = crashing.after_crash();
        let mut restarts = 0;
        let summary = loop {
            restarts += 1;
            assert!(restarts <= 3, "crash after sync {k}: no progress");
            if k % 3 == 0 && restarts == 1 {
                let again = storage.clone().crash_after_syncs(3 + k % 5);
                let result = run(&sql, &state, &again, stdin);
                if again.has_crashed() {
                    storage = again.after_crash();
                    continue;
                }
                break result;
            }
            break run(&sql, &state, &storage, stdin);
        };
        let summary = summary.unwrap_or_else(|e| panic!("crash after sync {k}: restart: {e}"));
        let written = storage
            .contents(&out)
            .unwrap_or_else(|| panic!("crash after sync {k}: no sink file"));
        assert_eq!(
            sorted_lines(&written),
            expected,
            "crash after sync {k}: the output differs"
        );
        assert_eq!(
            counters(&summary),
            clean_counters,
            "crash after sync {k}: counters"
        );
    }
}

#[test]
fn a_file_source_run_survives_a_crash_after_any_sync() {
    every_crash_point_restarts_to_the_uninterrupted_output(false);
}

#[test]
fn a_stdin_run_survives_a_crash_after_any_sync() {
    every_crash_point_restarts_to_the_uninterrupted_output(true);
}
