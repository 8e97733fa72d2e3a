//! Faults at every write and every sync of a durable run's state (disk full, a short
//! write, a failed fsync), injected through the storage seam (`FaultyStorage`, redb's
//! pattern): each ends the run with a clean error, the state dir still recovers (the
//! previous checkpoint stays valid), and the next run writes exactly the output of a run
//! that never failed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use laminar::checkpoint::inspect;
use laminar::gen::{write_bids, BidsConfig};
use laminar::sink::{CollectSink, Sink};
use laminar::sql::FormatKind;
use laminar::storage::{FaultyStorage, FsStorage, Storage};
use laminar::{Engine, EngineConfig};

fn script(input: &Path, out: &Path) -> String {
    format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
            channel VARCHAR, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)
         WITH (connector = 'file', path = '{}', format = 'csv', batch_size = '500');
         CREATE SINK out WITH (connector = 'file', path = '{}', format = 'csv');
         INSERT INTO out SELECT auction, window_start, COUNT(*) AS n, SUM(price) AS volume
         FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND)
         GROUP BY window_start, window_end, auction;",
        input.display(),
        out.display()
    )
}

/// Runs the script with state in `state` through `storage`, checkpointing at every batch.
fn run(sql: &str, state: &Path, storage: Arc<dyn Storage>) -> laminar::Result<()> {
    let mut engine = Engine::with_config(EngineConfig {
        state_dir: Some(state.to_path_buf()),
        checkpoint_interval: Duration::ZERO,
        storage,
        ..EngineConfig::default()
    });
    engine.set_notice_handler(Box::new(|_| {}));
    let collected = CollectSink::new();
    engine.run_script(
        sql,
        &mut |_| Ok(Box::new(collected.clone()) as Box<dyn Sink>),
        &mut |_| {},
    )?;
    Ok(())
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .expect("sink file")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    NoSpace,
    ShortWrite,
    FailedSync,
}

#[test]
fn a_fault_at_any_state_write_or_sync_is_a_clean_error_and_the_next_run_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("bids.csv");
    let config = BidsConfig {
        rows: 4_000,
        seed: 3,
        auctions: 20,
        events_per_second: 1_000,
        ..BidsConfig::default()
    };
    let mut file = std::fs::File::create(&input).expect("input");
    write_bids(&config, FormatKind::Csv, &mut file).expect("bids");
    let out = dir.path().join("out.csv");
    let sql = script(&input, &out);

    // A clean run: the expected output, and how many writes and syncs the state takes.
    let counting = FaultyStorage::new(Arc::new(FsStorage::new()));
    run(&sql, &dir.path().join("clean"), Arc::new(counting.clone())).expect("clean run");
    let expected = sorted_lines(&out);
    let (writes, syncs) = (counting.writes(), counting.syncs());
    assert!(writes >= 8 && syncs >= 8, "{writes} writes, {syncs} syncs");

    let mut failures = 0;
    for fault in [Fault::NoSpace, Fault::ShortWrite, Fault::FailedSync] {
        let count = match fault {
            Fault::FailedSync => syncs,
            _ => writes,
        };
        for n in 1..=count {
            let state = dir.path().join(format!("state-{fault:?}-{n}"));
            std::fs::remove_file(&out).ok();
            let faulty = FaultyStorage::new(Arc::new(FsStorage::new()));
            match fault {
                Fault::NoSpace => faulty.no_space_at_write(n),
                Fault::ShortWrite => faulty.short_write_at(n),
                Fault::FailedSync => faulty.fail_sync_at(n),
            };
            let what = format!("{fault:?} at operation {n}");
            match run(&sql, &state, Arc::new(faulty)) {
                Ok(()) => panic!("{what}: the run did not fail"),
                Err(err) => {
                    let text = err.to_string();
                    assert!(text.contains("injected fault"), "{what}: {text}");
                    assert!(!text.contains('\n'), "{what}: {text}");
                    failures += 1;
                }
            }
            // Recovery would succeed, and the next run (healthy disk) completes with the
            // output of a run that never failed.
            if state.exists() {
                let storage: Arc<dyn laminar::storage::Storage> = Arc::new(FsStorage::new());
                let report = inspect(&storage, &state).expect("inspect");
                let recovery = report.recovery();
                assert!(recovery.is_ok(), "{what}: {recovery:?}\n{report}");
            }
            run(&sql, &state, Arc::new(FsStorage::new()))
                .unwrap_or_else(|e| panic!("{what}: the next run failed: {e}"));
            assert_eq!(sorted_lines(&out), expected, "{what}");
        }
    }
    assert_eq!(failures, 2 * writes + syncs);
}
