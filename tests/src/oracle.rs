//! The oracle side of the tests: which generated rows are on time (from the lateness
//! model), DataFusion batch SQL over them, and running Laminar over the same batches.

use arrow::array::{AsArray, BooleanArray};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::TimestampNanosecondType;
use arrow::record_batch::RecordBatch;
use datafusion::arrow;
use datafusion::logical_expr::AggregateUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use laminar::gen::{bids_batches, bids_schema, BidsConfig};
use laminar::sink::{CollectSink, Sink};
use laminar::time::WatermarkSpec;
use laminar::{Engine, RunSummary};

use crate::late_flags;

/// Generated bids, as batches in arrival order.
pub struct Bids {
    /// The batches Laminar reads.
    pub batches: Vec<RecordBatch>,
    /// All rows in one batch.
    pub all: RecordBatch,
}

impl Bids {
    /// Generates bids with `config`, in batches of `batch_rows`.
    pub fn generate(config: &BidsConfig, batch_rows: usize) -> Self {
        let batches = bids_batches(config, batch_rows).expect("generate");
        let all = concat_batches(&bids_schema(), &batches).expect("concat");
        Self { batches, all }
    }

    /// Generates bids with `config` in one batch, with NULLs in every 13th bidder, 17th
    /// price and 19th channel.
    pub fn with_nulls(config: &BidsConfig) -> Self {
        let all = Self::generate(config, 8192).all;
        let mask = |every: usize| {
            BooleanArray::from(
                (0..all.num_rows())
                    .map(|i| i % every == 0)
                    .collect::<Vec<_>>(),
            )
        };
        let mut columns: Vec<arrow::array::ArrayRef> = all.columns().to_vec();
        for (column, every) in [(2, 13), (3, 17), (4, 19)] {
            columns[column] =
                arrow::compute::nullif(&columns[column], &mask(every)).expect("nullif");
        }
        let all = RecordBatch::try_new(all.schema(), columns).expect("batch");
        Self {
            batches: vec![all.clone()],
            all,
        }
    }

    /// Writes every row to a CSV file with a header, as arrow's CSV writer does.
    pub fn write_csv(&self, path: &std::path::Path) {
        let file = std::fs::File::create(path).expect("create csv");
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(file);
        writer.write(&self.all).expect("write csv");
    }

    /// The rows on time for tumbling windows of `window_ms` and a watermark `delay_ms`
    /// behind the largest event time, per the lateness model; and the number of late rows.
    pub fn on_time(&self, window_ms: i64, delay_ms: i64) -> (RecordBatch, u64) {
        let times: Vec<i64> = self
            .all
            .column(0)
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .iter()
            .map(|ns| ns.div_euclid(1_000_000))
            .collect();
        let late = late_flags(&times, window_ms, delay_ms);
        let late_count = late.iter().filter(|&&l| l).count() as u64;
        let keep = BooleanArray::from(late.iter().map(|l| !l).collect::<Vec<_>>());
        (
            filter_record_batch(&self.all, &keep).expect("filter"),
            late_count,
        )
    }
}

/// Runs `sql` in DataFusion over `kept` registered as table `kept`, with `udafs`
/// registered, on `partitions` target partitions (more than one exercises partial
/// aggregation: state and merge).
pub fn batch_sql(
    kept: RecordBatch,
    sql: &str,
    udafs: Vec<AggregateUDF>,
    partitions: usize,
) -> Vec<RecordBatch> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = SessionConfig::new().with_target_partitions(partitions);
        let ctx = SessionContext::new_with_config(config);
        for udaf in udafs {
            ctx.register_udaf(udaf);
        }
        if partitions > 1 {
            // Split the rows so that every partition aggregates part of each group.
            let rows = kept.num_rows();
            let chunk = rows.div_ceil(partitions).max(1);
            let parts: Vec<Vec<RecordBatch>> = (0..rows)
                .step_by(chunk)
                .map(|start| vec![kept.slice(start, chunk.min(rows - start))])
                .collect();
            let table =
                datafusion::datasource::MemTable::try_new(kept.schema(), parts).expect("mem table");
            ctx.register_table("kept", std::sync::Arc::new(table))
                .expect("register");
        } else {
            ctx.register_batch("kept", kept).expect("register");
        }
        ctx.sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run")
    })
}

/// A Laminar engine with `batches` registered as source `bids`, watermark `delay_ms`.
pub fn engine_over(engine: &mut Engine, batches: &[RecordBatch], delay_ms: i64) {
    engine
        .register_batches(
            "bids",
            bids_schema(),
            batches.to_vec(),
            Some(WatermarkSpec {
                column: "ts".into(),
                delay_ms,
            }),
        )
        .expect("register");
}

/// Runs `sql` on `engine`, collecting the rows.
pub fn collect(engine: &mut Engine, sql: &str) -> laminar::Result<(Vec<RecordBatch>, RunSummary)> {
    let collected = CollectSink::new();
    let summary = engine.run_script(
        sql,
        &mut |_| Ok(Box::new(collected.clone()) as Box<dyn Sink>),
        &mut |_| {},
    )?;
    Ok((collected.take(), summary))
}
