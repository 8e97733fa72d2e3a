//! The CSV decode rate of one core: `laminar run`'s file source over 200 000 generated
//! bids (about 9.5 MB), read and decoded on the query thread (`decode_threads` 0, one
//! core), with a query that keeps no row, so the time is reading, cutting lines, splitting
//! every line into its fields and building the one column the query reads (`auction`;
//! the source decodes only the columns a query reads) into Arrow. Throughput is in bytes
//! of CSV per second.
//!
//! ```text
//! cargo bench -p laminar-core-benches --bench decode
//! ```

use std::hint::black_box;

use criterion::{criterion_main, Criterion, Throughput};
use laminar::gen::{write_bids, BidsConfig};
use laminar::sql::FormatKind;
use laminar::{Engine, EngineConfig};

/// Rows in the generated file.
const ROWS: u64 = 200_000;

fn csv_decode(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bids.csv");
    let config = BidsConfig {
        rows: ROWS,
        ..BidsConfig::default()
    };
    let mut file = std::fs::File::create(&path).expect("create csv");
    write_bids(&config, FormatKind::Csv, &mut file).expect("write csv");
    drop(file);
    let bytes = std::fs::metadata(&path).expect("csv size").len();
    let sql = format!(
        "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
             channel VARCHAR) WITH (connector = 'file', path = '{}', format = 'csv');
         SELECT auction FROM bids WHERE auction < 0;",
        path.display()
    );
    let mut group = c.benchmark_group("csv_decode");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("one_core_200k_bids", |b| {
        b.iter(|| {
            let mut engine = Engine::with_config(EngineConfig {
                decode_threads: 0,
                cores: 1,
                ..EngineConfig::default()
            });
            let rows = engine.execute(&sql).expect("query runs");
            black_box(rows)
        })
    });
    group.finish();
}

/// The criterion entry points; `criterion_group!` generates an undocumented `pub fn`.
mod harness {
    #![allow(missing_docs)]

    criterion::criterion_group! {
        name = benches;
        config = laminar_core_benches::criterion_config();
        targets = super::csv_decode
    }
}

criterion_main!(harness::benches);
