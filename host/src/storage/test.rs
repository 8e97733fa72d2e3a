//! Tests of the storage seam: the file system implementation and the injected faults.

use std::io::ErrorKind;
use std::sync::Arc;

use super::{FaultyStorage, FsStorage, Storage};

fn fs() -> Arc<dyn Storage> {
    Arc::new(FsStorage::new())
}

#[test]
fn fs_create_append_read_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.bin");
    let storage = fs();
    let mut file = storage.create(&path).unwrap();
    file.write_all(b"hello ").unwrap();
    file.sync_data().unwrap();
    drop(file);
    let mut file = storage.open_append(&path).unwrap();
    file.write_all(b"world").unwrap();
    assert_eq!(storage.read(&path).unwrap(), b"hello world");
    file.set_len(5).unwrap();
    file.write_all(b"!").unwrap();
    assert_eq!(storage.read(&path).unwrap(), b"hello!");
    assert_eq!(storage.file_len(&path).unwrap(), 6);
    let reader = storage.open_read(&path).unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(reader.read_at(&mut buf, 2).unwrap(), 3);
    assert_eq!(&buf, b"llo");
    assert_eq!(reader.len().unwrap(), 6);
}

#[test]
fn fs_dir_operations() {
    let dir = tempfile::tempdir().unwrap();
    let storage = fs();
    let sub = dir.path().join("x/y");
    storage.create_dir_all(&sub).unwrap();
    for name in ["b", "a", "c"] {
        storage.create(&sub.join(name)).unwrap();
    }
    storage.rename(&sub.join("c"), &sub.join("d")).unwrap();
    storage.remove_file(&sub.join("b")).unwrap();
    storage.sync_dir(&sub).unwrap();
    let names: Vec<_> = storage.read_dir(&sub).unwrap();
    assert_eq!(names, vec![sub.join("a"), sub.join("d")]);
    assert!(storage.exists(&sub.join("a")).unwrap());
    assert!(!storage.exists(&sub.join("b")).unwrap());
}

#[test]
fn map_is_aligned_and_matches_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    let storage = fs();
    let mut file = storage.create(&path).unwrap();
    file.write_all(&[7u8; 1000]).unwrap();
    drop(file);
    let map = storage.read_aligned(&path).unwrap();
    assert_eq!(map.as_ptr() as usize % 16, 0);
    assert_eq!(&map[..], &[7u8; 1000][..]);
    storage.create(&path).unwrap();
    drop(map);
    assert!(storage.read_aligned(&path).unwrap().is_empty());
}

#[test]
fn faulty_counts_writes_and_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStorage::new(fs());
    let mut file = faulty.create(&dir.path().join("f")).unwrap();
    file.write_all(b"abc").unwrap();
    file.write_all(b"de").unwrap();
    file.sync_data().unwrap();
    faulty.sync_dir(dir.path()).unwrap();
    assert_eq!(
        (faulty.writes(), faulty.syncs(), faulty.bytes_written()),
        (2, 2, 5)
    );
}

#[test]
fn faulty_no_space_at_write_is_storage_full_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let faulty = FaultyStorage::new(fs());
    faulty.no_space_at_write(2);
    let mut file = faulty.create(&path).unwrap();
    file.write_all(b"one").unwrap();
    let err = file.write_all(b"two").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    file.write_all(b"three").unwrap();
    assert_eq!(faulty.read(&path).unwrap(), b"onethree");
}

#[test]
fn faulty_no_space_after_bytes_writes_what_fits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let faulty = FaultyStorage::new(fs());
    faulty.no_space_after_bytes(5);
    let mut file = faulty.create(&path).unwrap();
    file.write_all(b"abc").unwrap();
    assert_eq!(
        file.write_all(b"defg").unwrap_err().kind(),
        ErrorKind::StorageFull
    );
    assert_eq!(
        file.write_all(b"h").unwrap_err().kind(),
        ErrorKind::StorageFull
    );
    assert_eq!(faulty.read(&path).unwrap(), b"abcde");
}

#[test]
fn faulty_short_write_leaves_partial_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let faulty = FaultyStorage::new(fs());
    faulty.short_write_at(1);
    let mut file = faulty.create(&path).unwrap();
    let err = file.write_all(b"abcdef").unwrap_err();
    assert!(err.to_string().contains("short write"), "{err}");
    assert_eq!(faulty.read(&path).unwrap(), b"abc");
}

#[test]
fn faulty_fail_sync_at() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStorage::new(fs());
    faulty.fail_sync_at(2);
    let mut file = faulty.create(&dir.path().join("f")).unwrap();
    file.sync_data().unwrap();
    assert!(faulty.sync_dir(dir.path()).is_err());
    file.sync_data().unwrap();
    assert_eq!(faulty.syncs(), 3);
}
