//! Criterion benches of the durability layer: a validated zero-copy state get, a WAL
//! append of a ~100-byte record, and a group-commit sync (fdatasync) of a batch of appends
//! on a real file.
//!
//! ```text
//! cargo bench -p laminar-core-benches --bench durability
//! ```

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_main, Criterion, Throughput};
use laminar::gen::SplitMix64;
use laminar::state::StateStore;
use laminar::storage::{FsStorage, Storage};
use laminar::wal::{RecordKind, SyncMode, WalConfig, WalWriter};

/// Keys in the state store of the get bench.
const KEYS: usize = 10_000;
/// Appends covered by one sync in the group-commit bench.
const BATCH: usize = 100;

/// A state value: a window start, a float state and four counters.
type Value = (i64, f64, [u64; 4]);

fn key(i: usize) -> Vec<u8> {
    format!("window/{i:08}").into_bytes()
}

/// A ~100-byte stdin line, as the WAL holds input.
fn record(i: u64) -> Vec<u8> {
    let line = format!(
        "{i},2024-01-01T00:00:00.000Z,auction-{:06},{:>12.4},bidder-{:08}",
        i % 997,
        i as f64 * 0.37,
        i % 100_003
    );
    let mut bytes = line.into_bytes();
    bytes.resize(99, b' ');
    bytes.push(b'\n');
    bytes
}

fn storage() -> Arc<dyn Storage> {
    Arc::new(FsStorage::new())
}

/// `StateStore::get` of a small value: validated `rkyv::access`, from a memory-mapped
/// state file and from memory, keys in random order.
fn state_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = StateStore::new();
    for i in 0..KEYS {
        let value: Value = (i as i64, i as f64 * 0.5, [i as u64; 4]);
        store.put(&key(i), &value).expect("put");
    }
    let path = dir.path().join("state.bin");
    store
        .write_file_atomic(&*storage(), &path)
        .expect("write state file");
    let mapped = StateStore::open_file(&*storage(), &path).expect("open state file");
    let mut rng = SplitMix64::new(11);
    let order: Vec<Vec<u8>> = (0..4096)
        .map(|_| key(rng.below(KEYS as u64) as usize))
        .collect();

    let mut group = c.benchmark_group("state_get");
    group.throughput(Throughput::Elements(1));
    for (name, store) in [("mapped_file", &mapped), ("in_memory", &store)] {
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % order.len();
                let value = store.get::<Value>(black_box(&order[next])).expect("valid");
                black_box(value.map(|v| v.0.to_native()))
            });
        });
    }
    group.finish();
}

/// Opens a WAL in `dir` with `config`.
fn wal(dir: &Path, config: WalConfig) -> WalWriter {
    WalWriter::open(storage(), dir, config).expect("open WAL").0
}

/// `WalWriter::append` of a 100-byte record (framing, checksum, buffering), including the
/// amortized `write` of the buffer every 1 MiB (no fsync: `SyncMode::Buffer`).
fn wal_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = WalConfig::default()
        .sync_mode(SyncMode::Buffer)
        .segment_size(8 << 20);
    let mut wal = wal(dir.path(), config);
    let payload = record(42);
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("append_100B", |b| {
        b.iter(|| {
            let lsn = wal
                .append(RecordKind::Input, black_box(&payload))
                .expect("append");
            if wal.pending_bytes() >= 1 << 20 {
                wal.sync().expect("write");
                wal.remove_segments_before(lsn)
                    .expect("remove old segments");
            }
            black_box(lsn)
        });
    });
    group.finish();
}

/// Group commit: 100 appends of 100-byte records, then one `sync` (write + fdatasync) on a
/// real file in a temp dir.
fn wal_group_commit(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut wal = wal(dir.path(), WalConfig::default().segment_size(4 << 20));
    let payloads: Vec<Vec<u8>> = (0..BATCH as u64).map(record).collect();
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("group_commit_100x100B_fdatasync", |b| {
        b.iter(|| {
            for payload in &payloads {
                wal.append(RecordKind::Input, payload).expect("append");
            }
            let durable = wal.sync().expect("sync");
            wal.remove_segments_before(durable)
                .expect("remove old segments");
            black_box(durable)
        });
    });
    group.finish();
}

/// The criterion entry points; `criterion_group!` generates an undocumented `pub fn`.
mod harness {
    #![allow(missing_docs)]

    criterion::criterion_group! {
        name = benches;
        config = laminar_core_benches::criterion_config();
        targets = super::state_get, super::wal_append, super::wal_group_commit
    }
}

criterion_main!(harness::benches);
