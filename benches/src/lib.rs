//! Shared pieces of Laminar's benchmarks: the compared queries and a small seeded RNG.

/// Laminar's windowed query: per auction and 10 s tumbling window, the count, sum, min,
/// max and average of the price, emitted as each window closes.
pub const LAMINAR_QUERY: &str = "SELECT auction, TUMBLE_START(ts, INTERVAL '10' SECOND) AS ws, \
     COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price) \
     FROM bids GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND)";

/// The same aggregation as a DataFusion batch query, with `date_bin` in place of the
/// tumbling window: same groups, same aggregates, same number of result rows.
pub const DATAFUSION_QUERY: &str = "SELECT auction, \
     date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws, \
     COUNT(*), SUM(price), MIN(price), MAX(price), AVG(price) \
     FROM bids GROUP BY auction, ws";

/// A tiny deterministic generator (SplitMix64) for benchmark inputs; not for cryptography.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n` must be positive; the slight modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
