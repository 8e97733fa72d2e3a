//! WAL under injected faults (disk full, short writes, failed fsyncs): a clean error, a
//! poisoned writer, and recovery that reads back at least everything acknowledged.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use super::test::{append_synced, fs, payload, recover_all};
use super::*;
use crate::storage::FaultyStorage;

fn config() -> WalConfig {
    WalConfig::default().segment_size(300)
}

/// Appends records 1..=30, syncing every 4th, through `storage`; returns the durable LSN
/// acknowledged before the first error (and whether one happened).
fn workload(storage: Arc<FaultyStorage>, dir: &Path) -> (Lsn, bool) {
    let Ok((mut wal, recovery)) = WalWriter::open(storage, dir, config()) else {
        return (0, true);
    };
    assert_eq!(recovery.next_lsn(), 1);
    for i in 1..=30 {
        if wal.append(RecordKind::Input, &payload(i)).is_err() {
            return (wal.durable_lsn(), true);
        }
        if i % 4 == 0 && wal.sync().is_err() {
            let acknowledged = wal.durable_lsn();
            assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
            return (acknowledged, true);
        }
    }
    match wal.sync() {
        Ok(lsn) => (lsn, false),
        Err(_) => (wal.durable_lsn(), true),
    }
}

/// Recovery after a failed workload: an intact prefix holding every acknowledged record.
fn assert_recovers_prefix(dir: &Path, acknowledged: Lsn, what: &str) {
    let (_, records) = recover_all(dir).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        records.len() as u64 >= acknowledged,
        "{what}: lost acknowledged records"
    );
    for (i, record) in records.iter().enumerate() {
        let lsn = i as u64 + 1;
        assert_eq!(
            (record.lsn, &record.payload),
            (lsn, &payload(lsn)),
            "{what}"
        );
    }
    // And the log can be continued.
    drop(append_synced(dir, 1, config()));
}

#[test]
fn wal_no_space_on_append_is_a_clean_error_and_synced_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 10, config()));
    let faulty = Arc::new(FaultyStorage::new(fs()));
    let (mut wal, _) = WalWriter::open(faulty.clone(), dir.path(), config()).unwrap();
    faulty.no_space_after_bytes(0);
    wal.append(RecordKind::Input, &payload(11)).unwrap();
    let err = wal.sync().unwrap_err();
    match &err {
        WalError::Io { context, source } => {
            assert_eq!(source.kind(), ErrorKind::StorageFull);
            assert!(context.contains("wal-00000000000000000"), "{context}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert_eq!(wal.durable_lsn(), 10);
    let poisoned = wal.append(RecordKind::Input, &payload(12)).unwrap_err();
    assert!(poisoned.to_string().contains("reopen"), "{poisoned}");
    drop(wal);
    assert_recovers_prefix(dir.path(), 10, "no space");
}

#[test]
fn wal_short_write_leaves_a_torn_tail_that_recovery_cuts() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 10, config()));
    let faulty = Arc::new(FaultyStorage::new(fs()));
    let (mut wal, _) = WalWriter::open(faulty.clone(), dir.path(), config()).unwrap();
    faulty.short_write_at(faulty.writes() + 1);
    wal.append(RecordKind::Input, &payload(11)).unwrap();
    assert!(wal.sync().is_err());
    drop(wal);
    let recovery = recover(&*fs(), dir.path()).unwrap();
    assert!(recovery.torn_tail().is_some_and(|t| t.bytes_cut > 0));
    assert_eq!(recovery.last_lsn(), 10);
    assert_recovers_prefix(dir.path(), 10, "short write");
}

#[test]
fn wal_failed_fsync_poisons_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyStorage::new(fs()));
    let (mut wal, _) = WalWriter::open(faulty.clone(), dir.path(), config()).unwrap();
    wal.append(RecordKind::Input, &payload(1)).unwrap();
    wal.sync().unwrap();
    faulty.fail_sync_at(faulty.syncs() + 1);
    wal.append(RecordKind::Input, &payload(2)).unwrap();
    assert!(wal
        .sync()
        .unwrap_err()
        .to_string()
        .contains("cannot sync WAL segment"));
    assert_eq!(wal.durable_lsn(), 1);
    assert!(matches!(
        wal.maybe_sync(std::time::Instant::now()),
        Err(WalError::Poisoned { .. })
    ));
    drop(wal);
    assert_recovers_prefix(dir.path(), 1, "failed fsync");
}

#[test]
fn wal_every_write_and_sync_failure_recovers_an_acknowledged_prefix() {
    let clean = tempfile::tempdir().unwrap();
    let counting = Arc::new(FaultyStorage::new(fs()));
    assert_eq!(workload(counting.clone(), clean.path()), (30, false));
    let (writes, syncs) = (counting.writes(), counting.syncs());
    assert!(writes > 5 && syncs > 5, "{writes} writes, {syncs} syncs");
    for n in 1..=writes {
        for fault in ["no space", "short write"] {
            let dir = tempfile::tempdir().unwrap();
            let faulty = Arc::new(FaultyStorage::new(fs()));
            match fault {
                "no space" => faulty.no_space_at_write(n),
                _ => faulty.short_write_at(n),
            };
            let (acknowledged, failed) = workload(faulty, dir.path());
            assert!(failed, "{fault} at write {n} went unnoticed");
            assert_recovers_prefix(dir.path(), acknowledged, &format!("{fault} at write {n}"));
        }
    }
    for n in 1..=syncs {
        let dir = tempfile::tempdir().unwrap();
        let faulty = Arc::new(FaultyStorage::new(fs()));
        faulty.fail_sync_at(n);
        let (acknowledged, failed) = workload(faulty, dir.path());
        assert!(failed, "failed sync {n} went unnoticed");
        assert_recovers_prefix(dir.path(), acknowledged, &format!("failed sync {n}"));
    }
}

#[test]
fn background_wal_failed_fsync_reaches_the_appending_side() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyStorage::new(fs()));
    let (wal, _) = WalWriter::open(faulty.clone(), dir.path(), config()).unwrap();
    let mut wal = BackgroundWal::spawn(wal).unwrap();
    wal.append(RecordKind::Input, payload(1), false).unwrap();
    assert_eq!(wal.sync().unwrap(), 1);
    faulty.fail_sync_at(faulty.syncs() + 1);
    wal.append(RecordKind::Input, payload(2), true).unwrap();
    // The failed sync happens on the WAL thread; the next request returns it.
    let err = wal.sync().unwrap_err();
    assert!(err.to_string().contains("cannot sync WAL segment"), "{err}");
    assert!(matches!(
        wal.append(RecordKind::Input, payload(3), false),
        Err(WalError::Poisoned { .. })
    ));
    assert_eq!(wal.durable_lsn(), 1);
    drop(wal);
    assert_recovers_prefix(dir.path(), 1, "failed fsync on the WAL thread");
}

#[test]
fn background_wal_no_space_is_an_error_and_synced_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 10, config()));
    let faulty = Arc::new(FaultyStorage::new(fs()));
    let (wal, _) = WalWriter::open(faulty.clone(), dir.path(), config()).unwrap();
    let mut wal = BackgroundWal::spawn(wal).unwrap();
    faulty.no_space_after_bytes(0);
    wal.append(RecordKind::Input, payload(11), false).unwrap();
    let err = wal.sync().unwrap_err();
    assert!(
        err.to_string().contains("No space") || err.to_string().contains("no space"),
        "{err}"
    );
    drop(wal);
    assert_recovers_prefix(dir.path(), 10, "no space on the WAL thread");
}

#[test]
fn wal_short_write_of_a_large_record_is_an_error_and_recovery_keeps_the_synced_prefix() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 5, config()));
    let faulty = Arc::new(FaultyStorage::new(fs()));
    let (mut wal, _) = WalWriter::open(faulty.clone(), dir.path(), WalConfig::default()).unwrap();
    faulty.short_write_at(faulty.writes() + 2);
    // Written past the buffer: header, then the payload, which is cut short.
    let err = wal
        .append(RecordKind::Input, &vec![7u8; 200 << 10])
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot write WAL segment"),
        "{err}"
    );
    assert!(matches!(wal.sync(), Err(WalError::Poisoned { .. })));
    drop(wal);
    let recovery = recover(&*fs(), dir.path()).unwrap();
    assert!(recovery.torn_tail().is_some_and(|t| t.bytes_cut > 0));
    assert_recovers_prefix(dir.path(), 5, "short write of a large record");
}
