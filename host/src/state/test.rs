//! State store tests: typed and raw values, prefix order, the file format round trip,
//! corrupt and truncated files, values that fail validation, and injected write faults.

use std::path::Path;
use std::sync::Arc;

use super::{StateError, StateStore};
use crate::storage::{FaultyStorage, FsStorage, Storage};

fn fs() -> Arc<dyn Storage> {
    Arc::new(FsStorage::new())
}

/// A window snapshot shaped like the checkpoint's: group keys and per-aggregate state
/// bytes, each a byte buffer with u32 offsets.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
struct Columnar {
    start: i64,
    keys: Vec<u8>,
    key_offsets: Vec<u32>,
    states: Vec<(Vec<u8>, Vec<u32>)>,
}

fn columnar(rows: u32) -> Columnar {
    Columnar {
        start: -5,
        keys: (0..rows).flat_map(|r| r.to_le_bytes()).collect(),
        key_offsets: (0..=rows).map(|r| r * 4).collect(),
        states: vec![(
            (0..rows * 8).map(|b| b as u8).collect(),
            (0..=rows).map(|r| r * 8).collect(),
        )],
    }
}

fn sample() -> StateStore {
    let mut store = StateStore::new();
    store.put(b"w/0002", &columnar(3)).unwrap();
    store.put(b"w/0001", &columnar(1)).unwrap();
    store
        .put(b"manifest", &(7u64, String::from("lsn")))
        .unwrap();
    store.put_bytes(b"raw", b"\x01\x02\x03");
    store
}

fn write(store: &StateStore, dir: &Path) -> std::path::PathBuf {
    let path = dir.join("state.bin");
    store.write_file_atomic(&*fs(), &path).unwrap();
    path
}

#[test]
fn state_put_get_delete_in_memory() {
    let mut store = sample();
    assert_eq!(store.origin(), "in-memory state");
    let window = store.get::<Columnar>(b"w/0002").unwrap().unwrap();
    assert_eq!(window.start.to_native(), -5);
    assert_eq!(window.key_offsets.len(), 4);
    assert!(store.get::<Columnar>(b"missing").unwrap().is_none());
    assert_eq!(store.get_bytes(b"raw"), Some(&b"\x01\x02\x03"[..]));
    assert!(store.delete(b"raw"));
    assert!(!store.delete(b"raw"));
    assert_eq!(store.len(), 3);
}

#[test]
fn state_scan_prefix_is_sorted_by_key() {
    let mut store = sample();
    store.put(b"w/0000", &columnar(0)).unwrap();
    let keys: Vec<&[u8]> = store.scan_prefix(b"w/").iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, vec![&b"w/0000"[..], b"w/0001", b"w/0002"]);
    assert_eq!(store.scan_prefix(b"").len(), 5);
    assert!(store.scan_prefix(b"zz").is_empty());
}

#[test]
fn state_file_roundtrip_is_read_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let store = sample();
    let path = write(&store, dir.path());
    let opened = StateStore::open_file(&*fs(), &path).unwrap();
    assert_eq!(opened.len(), 4);
    for (key, bytes) in store.scan_prefix(b"") {
        let read = opened.get_bytes(key).unwrap();
        assert_eq!(read, bytes);
        assert_eq!(
            read.as_ptr() as usize % 16,
            0,
            "value of {key:?} not aligned"
        );
    }
    let window = opened.get::<Columnar>(b"w/0002").unwrap().unwrap();
    assert_eq!(window.states[0].0.len(), 24);
    assert_eq!(
        opened.get::<(u64, String)>(b"manifest").unwrap().unwrap().1,
        "lsn"
    );
    // Same entries, same bytes: writing is deterministic.
    let again = dir.path().join("again.bin");
    opened.write_file(&*fs(), &again).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&again).unwrap()
    );
    assert!(!dir.path().join("state.bin.tmp").exists());
}

#[test]
fn state_big_value_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::new();
    store.put(b"big", &columnar(600_000)).unwrap();
    let path = write(&store, dir.path());
    assert!(std::fs::metadata(&path).unwrap().len() > 7_000_000);
    let opened = StateStore::open_file(&*fs(), &path).unwrap();
    let window = opened.get::<Columnar>(b"big").unwrap().unwrap();
    assert_eq!(window.key_offsets.len(), 600_001);
    assert_eq!(window.states[0].1[600_000].to_native(), 4_800_000);
}

#[test]
fn state_corrupt_bytes_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&sample(), dir.path());
    let clean = std::fs::read(&path).unwrap();
    for at in [0, 9, 20, 30, 40, 60, clean.len() - 1] {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let err = StateStore::open_file(&*fs(), &path).unwrap_err();
        assert!(
            matches!(err, StateError::Corrupt { .. }),
            "byte {at}: {err:?}"
        );
        assert!(err.to_string().contains("state.bin"), "{err}");
    }
}

#[test]
fn state_truncated_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&sample(), dir.path());
    let clean = std::fs::read(&path).unwrap();
    for len in [0, 10, 47, 48, 64, clean.len() - 16, clean.len() - 1] {
        std::fs::write(&path, &clean[..len]).unwrap();
        let err = StateStore::open_file(&*fs(), &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("corrupt state file") && err.contains("state.bin"),
            "{len}: {err}"
        );
    }
    let missing = StateStore::open_file(&*fs(), &dir.path().join("nope")).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[test]
fn state_value_that_fails_validation_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = StateStore::new();
    // A relative pointer far out of bounds, as a String or Vec archive reads it.
    store.put_bytes(b"bad", &[0xff; 8]);
    store.put(b"byte", &7u8).unwrap();
    assert!(matches!(
        store.get::<Vec<u64>>(b"bad"),
        Err(StateError::InvalidValue { .. })
    ));
    let path = write(&store, dir.path());
    let opened = StateStore::open_file(&*fs(), &path).unwrap();
    let err = opened.get::<Vec<u64>>(b"bad").unwrap_err().to_string();
    assert!(err.contains("state.bin") && err.contains("'bad'"), "{err}");
    assert!(opened.get::<Columnar>(b"byte").is_err());
    assert_eq!(opened.get::<u8>(b"byte").unwrap().copied(), Some(7));
}

#[test]
fn state_failed_write_or_sync_leaves_no_valid_looking_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    let mut old = StateStore::new();
    old.put(b"version", &1u32).unwrap();
    old.write_file_atomic(&*fs(), &path).unwrap();
    let mut new = sample();
    new.put(b"big", &columnar(200_000)).unwrap();
    new.put(b"version", &2u32).unwrap();

    let counting = FaultyStorage::new(fs());
    new.write_file_atomic(&counting, &dir.path().join("count.bin"))
        .unwrap();
    let (writes, syncs) = (counting.writes(), counting.syncs());
    assert!(writes >= 2 && syncs == 2, "{writes} writes, {syncs} syncs");
    for n in 1..=writes + syncs {
        for fault in 0..3 {
            let faulty = FaultyStorage::new(fs());
            match fault {
                0 if n <= writes => faulty.no_space_at_write(n),
                1 if n <= writes => faulty.short_write_at(n),
                2 if n <= syncs => faulty.fail_sync_at(n),
                _ => continue,
            };
            let result = new.write_file_atomic(&faulty, &path);
            let opened = StateStore::open_file(&*fs(), &path).unwrap();
            let version = opened.get::<u32>(b"version").unwrap().unwrap().to_native();
            if fault == 2 && n == syncs {
                // The directory sync after the rename failed: the new file is complete.
                assert!(result.is_err());
                assert_eq!(version, 2);
                old.write_file_atomic(&*fs(), &path).unwrap();
            } else {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("state.bin"), "{err}");
                assert_eq!(version, 1, "fault {fault} at {n} replaced the file");
            }
            assert!(!dir.path().join("state.bin.tmp").exists());
        }
    }
}
