//! Bids `(ts, auction, bidder, price, channel)` in arrival order.
//!
//! Arrival time advances at a fixed rate. An on-time bid's event time trails its arrival by
//! up to `disorder_ms`; a late bid (a `late_fraction` of all bids) trails by a further
//! 30–60 s, so it is late for any window of up to 30 s with a watermark delay of at most
//! `disorder_ms`.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::rng::SplitMix64;
use crate::error::{Error, Result};
use crate::sql::FormatKind;

/// Parameters of the bids generator.
#[derive(Debug, Clone)]
pub struct BidsConfig {
    /// Number of bids.
    pub rows: u64,
    /// Random seed.
    pub seed: u64,
    /// Maximum lag of an on-time bid's event time behind its arrival, in ms.
    pub disorder_ms: u64,
    /// Fraction of bids that arrive far too late (0.0–1.0).
    pub late_fraction: f64,
    /// Number of distinct auctions.
    pub auctions: u64,
    /// Arrivals per second of event time.
    pub events_per_second: u64,
    /// Event time of the first arrival (epoch ms); default 2024-01-01T00:00:00.
    pub start_ms: i64,
}

impl Default for BidsConfig {
    fn default() -> Self {
        Self {
            rows: 100_000,
            seed: 42,
            disorder_ms: 2_000,
            late_fraction: 0.01,
            auctions: 1_000,
            events_per_second: 1_000,
            start_ms: 1_704_067_200_000,
        }
    }
}

const CHANNELS: [&str; 5] = ["apple", "google", "facebook", "baidu", "test"];

/// The schema of generated bids: `ts TIMESTAMP, auction BIGINT, bidder BIGINT, price DOUBLE,
/// channel VARCHAR`.
pub fn bids_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Float64, true),
        Field::new("channel", DataType::Utf8, true),
    ]))
}

/// Produces bids batch by batch, in arrival order.
#[derive(Debug, Clone)]
pub struct BidsGenerator {
    config: BidsConfig,
    rng: SplitMix64,
    produced: u64,
}

impl BidsGenerator {
    /// A generator for `config`.
    pub fn new(config: &BidsConfig) -> Result<Self> {
        if !(0.0..=1.0).contains(&config.late_fraction) {
            return Err(Error::plan("late fraction must be between 0 and 1"));
        }
        if config.auctions == 0 || config.events_per_second == 0 {
            return Err(Error::plan(
                "auctions and events per second must be positive",
            ));
        }
        Ok(Self {
            rng: SplitMix64::new(config.seed),
            config: config.clone(),
            produced: 0,
        })
    }

    /// The next at most `max_rows` bids, or `None` when all were produced.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<RecordBatch>> {
        let config = &self.config;
        let n = (config.rows - self.produced).min(max_rows.max(1) as u64) as usize;
        if n == 0 {
            return Ok(None);
        }
        let rng = &mut self.rng;
        let hot = (config.auctions / 10).max(1);
        let mut ts = Vec::with_capacity(n);
        let mut auction = Vec::with_capacity(n);
        let mut bidder = Vec::with_capacity(n);
        let mut price = Vec::with_capacity(n);
        let mut channel = Vec::with_capacity(n);
        for i in self.produced..self.produced + n as u64 {
            let arrival = config.start_ms + (i * 1000 / config.events_per_second) as i64;
            let mut lag = rng.below(config.disorder_ms + 1) as i64;
            if rng.unit() < config.late_fraction {
                lag += config.disorder_ms as i64 + 30_000 + rng.below(30_001) as i64;
            }
            ts.push((arrival - lag) * 1_000_000);
            // Half of the bids go to the hottest tenth of the auctions.
            let id = if rng.below(2) == 0 {
                rng.below(hot)
            } else {
                rng.below(config.auctions)
            };
            auction.push(1000 + id as i64);
            bidder.push(1 + rng.below(10_000) as i64);
            price.push((100 + rng.below(100_000)) as f64 / 100.0);
            channel.push(CHANNELS[rng.below(CHANNELS.len() as u64) as usize]);
        }
        self.produced += n as u64;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(ts)),
            Arc::new(Int64Array::from(auction)),
            Arc::new(Int64Array::from(bidder)),
            Arc::new(Float64Array::from(price)),
            Arc::new(StringArray::from(channel)),
        ];
        Ok(Some(RecordBatch::try_new(bids_schema(), columns)?))
    }
}

/// Generates all bids as batches of at most `batch_rows` rows, in arrival order.
pub fn bids_batches(config: &BidsConfig, batch_rows: usize) -> Result<Vec<RecordBatch>> {
    let mut generator = BidsGenerator::new(config)?;
    let mut batches = Vec::new();
    while let Some(batch) = generator.next_batch(batch_rows)? {
        batches.push(batch);
    }
    Ok(batches)
}

/// Writes generated bids to `out` as CSV (with a header) or JSON lines.
pub fn write_bids(config: &BidsConfig, format: FormatKind, out: &mut dyn Write) -> Result<()> {
    let mut generator = BidsGenerator::new(config)?;
    let mut first = true;
    while let Some(batch) = generator.next_batch(65_536)? {
        match format {
            FormatKind::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(first)
                    .with_timestamp_format("%Y-%m-%dT%H:%M:%S%.3f".to_string())
                    .build(&mut *out);
                writer.write(&batch)?;
            }
            FormatKind::Json => {
                let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
                writer.write(&batch)?;
                writer.finish()?;
            }
        }
        first = false;
    }
    out.flush()
        .map_err(|e| Error::io("cannot write generated bids", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_and_late_fraction_is_respected() {
        let config = BidsConfig {
            rows: 20_000,
            late_fraction: 0.05,
            ..BidsConfig::default()
        };
        let a = bids_batches(&config, 1000).unwrap();
        let b = bids_batches(&config, 7000).unwrap();
        let a = arrow::compute::concat_batches(&bids_schema(), &a).unwrap();
        let b = arrow::compute::concat_batches(&bids_schema(), &b).unwrap();
        assert_eq!(a, b);
        let ts = a
            .column(0)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .unwrap();
        let mut max = i64::MIN;
        let mut far_behind = 0;
        for t in ts.values().iter() {
            if *t < max.saturating_sub(30_000_000_000) {
                far_behind += 1;
            }
            max = max.max(*t);
        }
        let fraction = far_behind as f64 / 20_000.0;
        assert!((0.03..0.07).contains(&fraction), "{fraction}");
    }
}
