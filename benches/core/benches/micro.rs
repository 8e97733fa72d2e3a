//! Criterion micro benchmarks of Laminar's hot loops: tumbling-window assignment, grouped
//! accumulator updates, and emitting a closed window.
//!
//! ```text
//! cargo bench -p laminar-core-benches --bench micro
//! ```

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use criterion::{criterion_main, Criterion, Throughput};
use datafusion_physical_expr::expressions::col;
use laminar::aggregate::native_accumulator;
use laminar::gen::SplitMix64;
use laminar::operator::{AggregateCall, GroupColumn, Operand, WindowAggregate};
use laminar::window::TumblingWindow;

/// Event times in the window-assignment bench.
const EVENTS: usize = 1_000_000;
/// Rows per batch handed to an accumulator.
const ROWS: usize = 8_192;
/// Distinct groups (slots) the rows of a batch spread over.
const SLOTS: usize = 1_000;

/// `TumblingWindow::start_of` over 1 M event times: ms since 2024-01-01, roughly in order
/// with up to 2 s of disorder, in 10 s windows.
fn window_assignment(c: &mut Criterion) {
    let mut rng = SplitMix64::new(7);
    let start_ms = 1_704_067_200_000_i64;
    let times: Vec<i64> = (0..EVENTS as i64)
        .map(|i| start_ms + i / 10 - rng.below(2_001) as i64)
        .collect();
    let window = TumblingWindow::new(10_000).expect("a 10 s window is valid");
    let mut starts = Vec::with_capacity(EVENTS);

    let mut group = c.benchmark_group("window_assignment");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("tumbling_start_of_1M", |b| {
        b.iter(|| {
            starts.clear();
            starts.extend(
                black_box(&times)
                    .iter()
                    .map(|&t| window.start_of(t).unwrap_or(i64::MIN)),
            );
            black_box(&starts);
        })
    });
    group.finish();
}

/// One `update` of 8192 Float64 rows spread over 1000 slots at random (slots precomputed),
/// for SUM and COUNT.
fn accumulator_update(c: &mut Criterion) {
    let mut rng = SplitMix64::new(11);
    let slots: Vec<u32> = (0..ROWS).map(|_| rng.below(SLOTS as u64) as u32).collect();
    let prices: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..ROWS).map(|_| (100 + rng.below(100_000)) as f64 / 100.0),
    ));
    let args = [prices];

    let mut group = c.benchmark_group("accumulator_update");
    group.throughput(Throughput::Elements(ROWS as u64));
    for (name, return_type) in [("sum", DataType::Float64), ("count", DataType::Int64)] {
        group.bench_function(format!("{name}_f64_8192_rows_1000_slots"), |b| {
            let mut acc = native_accumulator(name, Some(&DataType::Float64), &return_type)
                .expect("SUM and COUNT over Float64 are native aggregates");
            // Size the state once, so that the measured updates only fold values in.
            acc.update(&args, &slots, SLOTS)
                .expect("update with valid slots succeeds");
            b.iter(|| {
                acc.update(black_box(&args), black_box(&slots), SLOTS)
                    .expect("update with valid slots succeeds");
            });
        });
    }
    group.finish();
}

/// Emitting one closed window: one row opens a window (one group, COUNT and SUM), then
/// the watermark passes its end and the operator evaluates it into a result batch. The
/// time per iteration is one window's update plus its emission and the freeing of the
/// emitted batch (reference: LaminarDB's window emit, ~773 ns; target < 1 µs).
fn window_emit(c: &mut Criterion) {
    let input = Arc::new(Schema::new(vec![
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("auction", DataType::Int64, false),
        Field::new("price", DataType::Float64, false),
    ]));
    let output = Arc::new(Schema::new(vec![
        Field::new(
            "window_start",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        ),
        Field::new("auction", DataType::Int64, true),
        Field::new("n", DataType::Int64, true),
        Field::new("volume", DataType::Float64, true),
    ]));
    let column = |name: &str| col(name, &input).expect("the column exists");
    let call = |name: &str, returns: DataType| AggregateCall {
        args: vec![Operand::new(column("price"))],
        accumulator: native_accumulator(name, Some(&DataType::Float64), &returns)
            .expect("native aggregate"),
    };
    let mut operator = WindowAggregate::new(
        TumblingWindow::new(10_000).expect("a 10 s window is valid"),
        column("window_start"),
        false,
        vec![GroupColumn::WindowStart, GroupColumn::Key(0)],
        vec![column("auction")],
        vec![DataType::Int64],
        vec![
            call("count", DataType::Int64),
            call("sum", DataType::Float64),
        ],
        output,
    )
    .expect("valid operator");
    // One input row, fed again each iteration: the operator opens window 0 for it, and
    // the watermark at the window's end closes and emits it, so every iteration does the
    // whole work of a new window. (The operator trusts the event-time stage before it to
    // drop late rows, so the same row opening a window again is what a new window's first
    // row does.) Building an input batch per iteration would time the bench, not the
    // operator, and inputs built ahead come back cold from memory.
    let batch = RecordBatch::try_new(
        Arc::clone(&input),
        vec![
            Arc::new(TimestampMillisecondArray::from(vec![0])),
            Arc::new(Int64Array::from(vec![7])),
            Arc::new(Float64Array::from(vec![2.5])),
        ],
    )
    .expect("batch");
    let mut group = c.benchmark_group("window_emit");
    group.throughput(Throughput::Elements(1));
    // The engine hands the operator one output vector for the whole run.
    let mut emitted = Vec::with_capacity(1);
    group.bench_function("one_group_count_sum", |b| {
        b.iter(|| {
            operator.update(&batch).expect("update");
            operator.advance(10_000, &mut emitted).expect("advance");
            assert_eq!(emitted.len(), 1, "one window per iteration");
            // The emitted batch is freed inside the timing too.
            black_box(&emitted);
            emitted.clear();
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
        targets = super::window_assignment, super::accumulator_update, super::window_emit
    }
}

criterion_main!(harness::benches);
