//! The command line shared by the end-to-end bench binaries: `--events`, `--keys`,
//! `--batch` and `--rate`.

use std::error::Error;
use std::time::Instant;

use datafusion::arrow::record_batch::RecordBatch;
use laminar::gen::{bids_batches, BidsConfig};

/// Workload settings of an end-to-end bench.
#[derive(Debug, Clone)]
pub struct BenchArgs {
    /// Number of bids.
    pub events: u64,
    /// Number of distinct auctions (group keys).
    pub keys: u64,
    /// Rows per Arrow batch, for every engine.
    pub batch: usize,
    /// Bids per second of event time.
    pub rate: u64,
}

impl BenchArgs {
    /// Parses `--events`, `--keys`, `--batch` and `--rate` (each followed by a positive
    /// integer, `_` separators allowed), starting from `events` bids, 1 000 keys, batches
    /// of 8 192 and 10 000 bids per second; `None` when help was asked for. `usage` is
    /// appended to error messages.
    pub fn parse(
        mut args: impl Iterator<Item = String>,
        events: u64,
        usage: &str,
    ) -> Result<Option<Self>, Box<dyn Error>> {
        let mut parsed = BenchArgs {
            events,
            keys: 1_000,
            batch: 8_192,
            rate: 10_000,
        };
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "--events" => &mut parsed.events,
                "--keys" => &mut parsed.keys,
                "--rate" => &mut parsed.rate,
                "--batch" => {
                    parsed.batch = usize::try_from(positive(&flag, args.next(), usage)?)
                        .map_err(|_| format!("{flag}: value too large"))?;
                    continue;
                }
                other => return Err(format!("unknown argument '{other}'\n{usage}").into()),
            };
            *slot = positive(&flag, args.next(), usage)?;
        }
        Ok(Some(parsed))
    }
}

impl BenchArgs {
    /// Generates the bids in memory (seed 42, event time up to `disorder_ms` behind
    /// arrival, nothing late) in batches of `batch` rows, and prints what was generated.
    pub fn generate_bids(&self, disorder_ms: u64) -> Result<Vec<RecordBatch>, Box<dyn Error>> {
        let config = BidsConfig {
            rows: self.events,
            seed: 42,
            disorder_ms,
            late_fraction: 0.0,
            auctions: self.keys,
            events_per_second: self.rate,
            ..BidsConfig::default()
        };
        let generated = Instant::now();
        let batches = bids_batches(&config, self.batch)?;
        println!(
            "{} events, {} keys, batch {}, {} events/s of event time ({:.0} s in 10 s windows); \
             generated in {:.2} s",
            self.events,
            self.keys,
            self.batch,
            self.rate,
            self.events as f64 / self.rate as f64,
            generated.elapsed().as_secs_f64(),
        );
        Ok(batches)
    }
}

/// The positive integer that follows `flag`.
fn positive(flag: &str, value: Option<String>, usage: &str) -> Result<u64, Box<dyn Error>> {
    let value = value.ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
    match value.replace('_', "").parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{flag}: expected a positive integer, got '{value}'").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<BenchArgs>, Box<dyn Error>> {
        BenchArgs::parse(args.iter().map(|s| s.to_string()), 7, "usage")
    }

    #[test]
    fn flags_override_defaults_and_bad_values_are_errors() {
        let args = parse(&["--events", "1_000", "--batch", "64"])
            .unwrap()
            .unwrap();
        assert_eq!(
            (args.events, args.keys, args.batch, args.rate),
            (1_000, 1_000, 64, 10_000)
        );
        assert_eq!(parse(&[]).unwrap().unwrap().events, 7);
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--keys", "0"]).is_err());
        assert!(parse(&["--rate"]).is_err());
        assert!(parse(&["--nope"]).is_err());
    }
}
