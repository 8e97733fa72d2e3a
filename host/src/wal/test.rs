//! WAL behaviour by name: reopen and continue, torn tail cut, corrupt records named,
//! rotation, segment removal, group commit (fjall `journal/test.rs` style).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::storage::{FaultyStorage, FsStorage, Storage};

pub(super) fn fs() -> Arc<dyn Storage> {
    Arc::new(FsStorage::new())
}

pub(super) fn payload(i: u64) -> Vec<u8> {
    format!("line {i},2024-01-01T00:00:{:02}Z,{}\n", i % 60, i * 7).into_bytes()
}

/// Opens `dir`, appends records `payload(first..first + n)` and syncs.
pub(super) fn append_synced(dir: &Path, n: u64, config: WalConfig) -> WalWriter {
    let (mut wal, recovery) = WalWriter::open(fs(), dir, config).unwrap();
    for i in recovery.next_lsn()..recovery.next_lsn() + n {
        assert_eq!(wal.append(RecordKind::Input, &payload(i)).unwrap(), i);
    }
    wal.sync().unwrap();
    wal
}

/// Recovers `dir` and reads every record.
pub(super) fn recover_all(dir: &Path) -> Result<(Recovery, Vec<WalRecord>), WalError> {
    let recovery = recover(&*fs(), dir)?;
    let records = recovery.read_from(fs(), recovery.first_lsn())?.read_all()?;
    Ok((recovery, records))
}

fn assert_records(records: &[WalRecord], lsns: std::ops::RangeInclusive<u64>) {
    let got: Vec<(u64, Vec<u8>)> = records.iter().map(|r| (r.lsn, r.payload.clone())).collect();
    let want: Vec<(u64, Vec<u8>)> = lsns.map(|i| (i, payload(i))).collect();
    assert_eq!(got, want);
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Byte offset of the record with index `index` (0-based) in a one-segment log.
fn record_offset(index: u64) -> u64 {
    (0..index)
        .map(|i| 9 + payload(i + 1).len() as u64)
        .sum::<u64>()
        + 24
}

fn small_segments() -> WalConfig {
    WalConfig::default().segment_size(200)
}

#[test]
fn wal_reopen_and_continue() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 3, WalConfig::default()));
    let mut wal = append_synced(dir.path(), 2, WalConfig::default());
    assert_eq!((wal.durable_lsn(), wal.last_lsn()), (5, 5));
    assert_eq!(wal.sync().unwrap(), 5);
    drop(wal);
    let (recovery, records) = recover_all(dir.path()).unwrap();
    assert_eq!(recovery.torn_tail(), None);
    assert_eq!(recovery.next_lsn(), 6);
    assert_records(&records, 1..=5);
    assert_eq!(
        segments(dir.path()),
        vec![dir.path().join("wal-00000000000000000001.log")]
    );
}

#[test]
fn wal_empty_directory_is_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet");
    let (recovery, records) = recover_all(&missing).unwrap();
    assert_eq!(
        (recovery.first_lsn(), recovery.last_lsn(), records.len()),
        (1, 0, 0)
    );
    let (wal, recovery) = WalWriter::open(fs(), &missing, WalConfig::default()).unwrap();
    assert_eq!((wal.last_lsn(), recovery.next_lsn()), (0, 1));
}

#[test]
fn wal_torn_tail_cut() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 3, WalConfig::default()));
    let file = dir.path().join("wal-00000000000000000001.log");
    let intact = std::fs::metadata(&file).unwrap().len();
    // Half of a fourth record, as a crash in the middle of a write leaves it.
    let mut frame = Vec::new();
    entry::encode(&mut frame, RecordKind::Input, &payload(4));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&frame[..frame.len() / 2]);
    std::fs::write(&file, &bytes).unwrap();

    let (mut wal, recovery) = WalWriter::open(fs(), dir.path(), WalConfig::default()).unwrap();
    let torn = recovery.torn_tail().unwrap();
    assert_eq!((torn.file.clone(), torn.offset), (file.clone(), intact));
    assert_eq!(torn.bytes_cut, (frame.len() / 2) as u64);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), intact);
    assert_eq!(wal.append(RecordKind::Input, &payload(4)).unwrap(), 4);
    wal.sync().unwrap();
    drop(wal);
    assert_records(&recover_all(dir.path()).unwrap().1, 1..=4);
}

#[test]
fn wal_torn_tail_checksum_mismatch_in_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 3, WalConfig::default()));
    let file = dir.path().join("wal-00000000000000000001.log");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let (recovery, records) = recover_all(dir.path()).unwrap();
    assert_eq!(recovery.torn_tail().unwrap().offset, record_offset(2));
    assert_records(&records, 1..=2);
}

#[test]
fn wal_corrupt_middle_record_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 3, WalConfig::default()));
    let file = dir.path().join("wal-00000000000000000001.log");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = record_offset(1);
    bytes[at as usize + 12] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let err = recover_all(dir.path()).unwrap_err();
    match &err {
        WalError::Corrupt {
            file: f, offset, ..
        } => assert_eq!((f, *offset), (&file, at)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("wal-00000000000000000001.log"),
        "{message}"
    );
    assert!(message.contains(&format!("byte offset {at}")), "{message}");
    assert!(message.contains("record LSN 2"), "{message}");
    // Nothing was cut: the damage is left for a person to look at.
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert!(WalWriter::open(fs(), dir.path(), WalConfig::default()).is_err());
}

#[test]
fn wal_unknown_record_kind_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 1, WalConfig::default()));
    let file = dir.path().join("wal-00000000000000000001.log");
    let mut bytes = std::fs::read(&file).unwrap();
    let kind = 77u8;
    bytes.extend_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&[kind]).to_le_bytes());
    bytes.push(kind);
    std::fs::write(&file, &bytes).unwrap();
    let err = recover_all(dir.path()).unwrap_err().to_string();
    assert!(err.contains("unknown record kind 77"), "{err}");
}

#[test]
fn wal_rotation_names_segments_by_first_lsn() {
    let dir = tempfile::tempdir().unwrap();
    let wal = append_synced(dir.path(), 12, small_segments());
    let files = segments(dir.path());
    assert!(files.len() > 2, "{files:?}");
    assert_eq!(wal.segment_files(), files);
    let summary = inspect(&*fs(), dir.path()).unwrap();
    let mut next = 1;
    for (s, file) in summary.iter().zip(&files) {
        assert_eq!(&s.file, file);
        assert_eq!(s.first_lsn, next);
        assert_eq!(
            file.file_name().unwrap().to_str().unwrap(),
            segment::file_name(next)
        );
        assert_eq!(s.status, SegmentStatus::Ok);
        assert!(s.bytes <= 200, "{s:?}");
        next = s.last_lsn.unwrap() + 1;
    }
    assert_eq!(next, 13);
    drop(wal);
    assert_records(&recover_all(dir.path()).unwrap().1, 1..=12);
}

#[test]
fn wal_corrupt_record_in_earlier_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 12, small_segments()));
    let first = &segments(dir.path())[0];
    let mut bytes = std::fs::read(first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x02;
    std::fs::write(first, &bytes).unwrap();
    let err = recover_all(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&first.display().to_string()), "{err}");
    assert!(matches!(
        inspect(&*fs(), dir.path()).unwrap()[0].status,
        SegmentStatus::Corrupt { .. }
    ));
}

#[test]
fn wal_truncated_earlier_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 12, small_segments()));
    let first = &segments(dir.path())[0];
    let len = std::fs::metadata(first).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(first)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let err = recover_all(dir.path()).unwrap_err().to_string();
    assert!(err.contains("later segments follow"), "{err}");
}

#[test]
fn wal_gap_between_segments_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 12, small_segments()));
    let files = segments(dir.path());
    std::fs::remove_file(&files[1]).unwrap();
    let err = recover_all(dir.path()).unwrap_err().to_string();
    assert!(err.contains("gap in LSNs"), "{err}");
    assert!(err.contains(&files[2].display().to_string()), "{err}");
}

#[test]
fn wal_torn_segment_header_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 3, WalConfig::default()));
    let torn = dir.path().join(segment::file_name(4));
    std::fs::write(&torn, &segment::encode_header(4)[..10]).unwrap();
    let (mut wal, recovery) = WalWriter::open(fs(), dir.path(), WalConfig::default()).unwrap();
    assert_eq!(recovery.torn_tail().unwrap().bytes_cut, 10);
    assert_eq!(recovery.next_lsn(), 4);
    assert!(!torn.exists());
    wal.append(RecordKind::Input, &payload(4)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    assert_records(&recover_all(dir.path()).unwrap().1, 1..=4);
}

#[test]
fn wal_remove_segments_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = append_synced(dir.path(), 12, small_segments());
    let before: Vec<SegmentSummary> = inspect(&*fs(), dir.path()).unwrap();
    let checkpoint = before[2].first_lsn + 1; // records < this are covered
    assert_eq!(wal.remove_segments_before(checkpoint).unwrap(), 2);
    let after = inspect(&*fs(), dir.path()).unwrap();
    assert_eq!(after[0].first_lsn, before[2].first_lsn);
    let recovery = recover(&*fs(), dir.path()).unwrap();
    let replay = recovery
        .read_from(fs(), checkpoint)
        .unwrap()
        .read_all()
        .unwrap();
    assert_records(&replay, checkpoint..=12);
    assert!(matches!(
        recovery.read_from(fs(), 1),
        Err(WalError::MissingRecords { .. })
    ));
    assert!(matches!(
        recovery.read_from(fs(), 14),
        Err(WalError::MissingRecords { .. })
    ));
    // Never the active segment, whatever the LSN.
    wal.remove_segments_before(u64::MAX).unwrap();
    assert_eq!(segments(dir.path()), wal.segment_files());
    assert_eq!(segments(dir.path()).len(), 1);
    assert_eq!(wal.append(RecordKind::Input, &payload(13)).unwrap(), 13);
    wal.sync().unwrap();
    drop(wal);
    let (recovery, records) = recover_all(dir.path()).unwrap();
    assert_eq!(records.last().unwrap().lsn, 13);
    assert_eq!(recovery.first_lsn(), records[0].lsn);
}

#[test]
fn wal_read_from_skips_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 12, small_segments()));
    let recovery = recover(&*fs(), dir.path()).unwrap();
    for from in 1..=13 {
        let records = recovery.read_from(fs(), from).unwrap().read_all().unwrap();
        assert_records(&records, from..=12);
    }
}

#[test]
fn wal_group_commit_one_sync_covers_many_appends() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyStorage::new(fs()));
    let config = WalConfig::default()
        .interval(Duration::from_secs(3600))
        .max_pending_bytes(10_000);
    let (mut wal, _) = WalWriter::open(faulty.clone(), dir.path(), config).unwrap();
    let syncs_after_open = faulty.syncs();
    let now = Instant::now();
    wal.append(RecordKind::Input, &payload(1)).unwrap();
    assert_eq!(
        wal.maybe_sync(now).unwrap(),
        Some(1),
        "the first record syncs at once"
    );
    for i in 2..=50 {
        wal.append(RecordKind::Input, &payload(i)).unwrap();
        assert_eq!(wal.maybe_sync(now).unwrap(), None);
    }
    assert_eq!(wal.durable_lsn(), 1);
    assert!(wal.sync_due().is_some());
    let later = now + Duration::from_secs(3601);
    assert_eq!(wal.maybe_sync(later).unwrap(), Some(50));
    assert_eq!(faulty.syncs() - syncs_after_open, 2);
    assert_eq!(wal.sync_due(), None);
    assert_eq!(wal.maybe_sync(later).unwrap(), None);
    // The byte limit triggers a sync without waiting for the interval.
    let mut synced_at = None;
    for i in 51..=2000 {
        wal.append(RecordKind::Input, &payload(i)).unwrap();
        if let Some(lsn) = wal.maybe_sync(Instant::now()).unwrap() {
            synced_at = Some(lsn);
            break;
        }
    }
    let lsn = synced_at.expect("max_pending_bytes forces a sync");
    assert!(wal.pending_bytes() == 0 && lsn > 100 && lsn < 400, "{lsn}");
}

#[test]
fn wal_buffer_mode_never_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyStorage::new(fs()));
    let config = small_segments().sync_mode(SyncMode::Buffer);
    let (mut wal, _) = WalWriter::open(faulty.clone(), dir.path(), config).unwrap();
    for i in 1..=20 {
        wal.append(RecordKind::Input, &payload(i)).unwrap();
    }
    assert_eq!(wal.sync().unwrap(), 20);
    wal.remove_segments_before(10).unwrap();
    assert_eq!(faulty.syncs(), 0);
    assert!(faulty.writes() > 0);
}

#[test]
fn wal_inspect_reports_torn_tail_without_cutting() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 12, small_segments()));
    let files = segments(dir.path());
    let last = files.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&[5, 0, 0]);
    std::fs::write(last, &bytes).unwrap();
    let summary = inspect(&*fs(), dir.path()).unwrap();
    let end = summary.last().unwrap();
    assert_eq!(
        end.status,
        SegmentStatus::TornTail {
            offset: bytes.len() as u64 - 3,
            bytes: 3
        }
    );
    assert_eq!(
        std::fs::read(last).unwrap(),
        bytes,
        "inspect changes nothing"
    );
    assert_eq!(summary.iter().map(|s| s.records).sum::<u64>(), 12);
}

#[test]
fn background_wal_keeps_order_rotates_and_removes_segments() {
    let dir = tempfile::tempdir().unwrap();
    drop(append_synced(dir.path(), 3, small_segments()));
    let (wal, _) = WalWriter::open(fs(), dir.path(), small_segments()).unwrap();
    let mut wal = BackgroundWal::spawn(wal).unwrap();
    assert_eq!(wal.last_lsn(), 3);
    for i in 4..=40 {
        assert_eq!(
            wal.append(RecordKind::Input, payload(i), i % 9 == 0)
                .unwrap(),
            i
        );
    }
    assert_eq!(wal.sync().unwrap(), 40);
    assert_eq!(wal.durable_lsn(), 40);
    let (_, records) = recover_all(dir.path()).unwrap();
    assert_records(&records, 1..=40);
    assert!(segments(dir.path()).len() > 2);
    assert!(wal.remove_segments_before(30).unwrap() > 0);
    let (recovery, records) = recover_all(dir.path()).unwrap();
    assert!(recovery.first_lsn() > 1 && recovery.first_lsn() <= 30);
    assert_records(&records, recovery.first_lsn()..=40);
}

#[test]
fn background_wal_syncs_by_group_commit_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::default().interval(Duration::from_millis(5));
    let (wal, _) = WalWriter::open(fs(), dir.path(), config).unwrap();
    let mut wal = BackgroundWal::spawn(wal).unwrap();
    wal.append(RecordKind::Input, payload(1), false).unwrap();
    wal.append(RecordKind::Input, payload(2), false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.durable_lsn() < 2 {
        assert!(Instant::now() < deadline, "group commit never synced");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(wal);
    let (_, records) = recover_all(dir.path()).unwrap();
    assert_records(&records, 1..=2);
}

#[test]
fn large_records_written_past_the_buffer_keep_order_and_survive_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let config = WalConfig::default().segment_size(300 << 10);
    let big = |i: u64| vec![(i % 251) as u8; 100 << 10];
    let (mut wal, _) = WalWriter::open(fs(), dir.path(), config.clone()).unwrap();
    for i in 1..=12 {
        let record = if i % 3 == 0 { payload(i) } else { big(i) };
        assert_eq!(wal.append(RecordKind::Input, &record).unwrap(), i);
    }
    assert_eq!(wal.sync().unwrap(), 12);
    drop(wal);
    assert!(segments(dir.path()).len() > 2, "rotated");
    let (_, records) = recover_all(dir.path()).unwrap();
    assert_eq!(records.len(), 12);
    for record in &records {
        let i = record.lsn;
        let want = if i % 3 == 0 { payload(i) } else { big(i) };
        assert_eq!(record.payload, want, "record {i}");
    }
}
