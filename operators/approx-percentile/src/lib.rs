//! `approx_percentile(x DOUBLE, p DOUBLE) -> DOUBLE`: an estimate of the `p`-quantile of the
//! non-NULL values of `x` (`p = 0.5` is the median), as a Laminar Wasm aggregate, computed
//! with a merging t-digest (Dunning & Ertl, "Computing extremely accurate quantiles using
//! t-digests", 2019).
//!
//! Semantics:
//! - A row with a NULL `x` or a NULL `p` is skipped; so are NaN and infinite `x` values.
//! - `p` is read from the rows: the group keeps the first `p` it sees (in practice `p` is a
//!   literal, the same on every row) and ignores later ones; merged states keep the
//!   receiving group's `p` when it has one.
//! - A group evaluates to NULL when it has no value, or when its `p` is NaN or outside
//!   `[0, 1]`. `p = 0` gives the exact minimum and `p = 1` the exact maximum.
//! - Estimates interpolate between centroids, so (like `approx_percentile_cont`) the result
//!   need not be one of the input values; it always lies within `[min, max]`.
//!
//! Accuracy: compression δ = 100 with the `k1` scale function (centroids are small near the
//! tails, larger around the median; a group holds at most about 100 centroids, plus a buffer
//! of up to 500 unmerged values). The error is a *rank* error: for uniform and normal data
//! of 10 000 to 100 000 values, whether aggregated in one group or as merged partial states,
//! the estimate `e` for `p` in {0.01, 0.1, 0.5, 0.9, 0.99} satisfies
//! `|rank(e) / n − p| ≤ 0.01`, where `rank(e)` is the number of values below `e` (the unit
//! tests check exactly this bound; the errors measured are about 0.001). Near the tails the
//! error is smaller than around the median. A group that received fewer than 500 values (and no merged state) evaluates
//! from the values themselves: its estimate is exact (an input value, or the interpolation
//! between the two values around rank `p · n`).
//!
//! State bytes (version 2): `p: Option<f64>`, `count: u64`, `min: f64`, `max: f64`, the
//! merged centroids as `Vec<(mean: f64, weight: f64)>` in increasing mean order, then the
//! buffer of values (and merged clusters) not yet compressed, as `Vec<(f64, f64)>` in the
//! order they arrived. The buffer is written as it is, never compressed first: a group
//! restored from its state (merged into an empty group) is then the same digest, evaluates
//! exactly as the uninterrupted group (a small group stays exact) and compresses at the
//! same later row. So a state is at most about 1.7 KiB of centroids plus 8 KiB of buffer.
//! (Version 1 compressed the buffer into the centroids before writing, so a restored group
//! of fewer than 500 values became an estimate: see `tests/tests/plugin_conformance.rs`.)

use laminar_guest::{Aggregate, Args, Codec, DataType, DecodeError, Value};

/// The compression δ of the digest: the number of centroids is at most about δ.
pub const COMPRESSION: f64 = 100.0;

/// How many unmerged values a digest buffers before it merges them into its centroids.
const BUFFER_LIMIT: usize = 5 * COMPRESSION as usize;

/// A cluster of nearby values: their mean and how many there are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Centroid {
    /// Mean of the values in the cluster.
    pub mean: f64,
    /// Number of values in the cluster (a whole number, kept as `f64` for the arithmetic).
    pub weight: f64,
}

/// A merging t-digest with compression [`COMPRESSION`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TDigest {
    /// Merged centroids, in increasing mean order.
    centroids: Vec<Centroid>,
    /// Values and centroids (of merged digests) not yet merged into `centroids`.
    buffer: Vec<Centroid>,
    /// Number of values added, buffered ones included.
    count: u64,
    /// Smallest value added (meaningless while `count == 0`).
    min: f64,
    /// Largest value added (meaningless while `count == 0`).
    max: f64,
}

/// The `k1` scale function `k(q) = δ / (2π) · asin(2q − 1)`.
fn k_of_q(q: f64) -> f64 {
    COMPRESSION / (2.0 * std::f64::consts::PI) * (2.0 * q - 1.0).clamp(-1.0, 1.0).asin()
}

/// The inverse of [`k_of_q`], clamped to `[0, 1]`.
fn q_of_k(k: f64) -> f64 {
    let angle = k * 2.0 * std::f64::consts::PI / COMPRESSION;
    if angle >= std::f64::consts::FRAC_PI_2 {
        1.0
    } else {
        (angle.sin() + 1.0) / 2.0
    }
}

/// `(x1·w1 + x2·w2) / (w1 + w2)`, kept within `[x1, x2]` against rounding.
fn weighted_average(x1: f64, w1: f64, x2: f64, w2: f64) -> f64 {
    let total = w1 + w2;
    if total <= 0.0 {
        return x1;
    }
    let (lo, hi) = if x1 <= x2 { (x1, x2) } else { (x2, x1) };
    ((x1 * w1 + x2 * w2) / total).clamp(lo, hi)
}

impl TDigest {
    /// An empty digest.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds one value; NaN and infinities are ignored.
    #[inline]
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.count == 0 {
            self.min = x;
            self.max = x;
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        self.buffer.push(Centroid {
            mean: x,
            weight: 1.0,
        });
        if self.buffer.len() >= BUFFER_LIMIT {
            self.compress();
        }
    }

    /// Adds every value summarised by `other`.
    pub fn merge(&mut self, mut other: TDigest) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.buffer.append(&mut other.centroids);
        self.buffer.append(&mut other.buffer);
        if self.buffer.len() >= BUFFER_LIMIT {
            self.compress();
        }
    }

    /// Merges the buffer into the centroids: one pass over all clusters in mean order,
    /// joining neighbours while the joined cluster spans at most one unit of `k`.
    pub fn compress(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.buffer);
        all.append(&mut self.centroids);
        // Stable sort: the old centroids form one sorted run, which the sort exploits.
        all.sort_by(|a, b| a.mean.total_cmp(&b.mean));
        let total: f64 = all.iter().map(|c| c.weight).sum();

        let mut merged = Vec::with_capacity(COMPRESSION as usize + 1);
        let mut clusters = all.into_iter();
        let Some(mut current) = clusters.next() else {
            return;
        };
        // Weight of the emitted centroids, and how far (in weight) `current` may reach.
        let mut weight_before = 0.0;
        let mut limit = total * q_of_k(k_of_q(0.0) + 1.0);
        for next in clusters {
            let joined = current.weight + next.weight;
            if weight_before + joined <= limit {
                current.mean += (next.mean - current.mean) * next.weight / joined;
                current.weight = joined;
            } else {
                weight_before += current.weight;
                merged.push(current);
                limit = total * q_of_k(k_of_q(weight_before / total) + 1.0);
                current = next;
            }
        }
        merged.push(current);
        self.centroids = merged;
    }

    /// The estimated `q`-quantile, or `None` for an empty digest or a `q` outside `[0, 1]`.
    pub fn quantile(&mut self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        if self.centroids.is_empty() && self.buffer.iter().all(|c| c.weight == 1.0) {
            // Every value is still buffered on its own (at most BUFFER_LIMIT of them): use
            // them as singleton centroids, which makes the estimate exact.
            self.buffer.sort_by(|a, b| a.mean.total_cmp(&b.mean));
            std::mem::swap(&mut self.centroids, &mut self.buffer);
        } else {
            self.compress();
        }
        Some(self.quantile_of_merged(q))
    }

    /// [`TDigest::quantile`] over the merged centroids (buffer empty, `count > 0`).
    fn quantile_of_merged(&self, q: f64) -> f64 {
        let c = &self.centroids;
        let (Some(first), Some(last)) = (c.first(), c.last()) else {
            return self.min;
        };
        if c.len() == 1 {
            return if q <= 0.0 {
                self.min
            } else if q >= 1.0 {
                self.max
            } else {
                first.mean
            };
        }
        let total = self.count as f64;
        let index = q * total;
        // The extreme values are exact; interpolate between them and the outer centroids.
        if index < 1.0 {
            return self.min;
        }
        if first.weight > 1.0 && index < first.weight / 2.0 {
            return self.min + (index - 1.0) / (first.weight / 2.0 - 1.0) * (first.mean - self.min);
        }
        if index > total - 1.0 {
            return self.max;
        }
        if last.weight > 1.0 && total - index <= last.weight / 2.0 {
            return self.max
                - (total - index - 1.0) / (last.weight / 2.0 - 1.0) * (self.max - last.mean);
        }
        // Between two centroid centres: centroid i covers weight_so_far - w_i / 2 ..
        // weight_so_far + w_i / 2. A singleton (weight 1) is one exact value.
        let mut weight_so_far = first.weight / 2.0;
        for pair in c.windows(2) {
            let (left, right) = (pair[0], pair[1]);
            let step = (left.weight + right.weight) / 2.0;
            if weight_so_far + step > index {
                let mut left_unit = 0.0;
                if left.weight == 1.0 {
                    if index - weight_so_far < 0.5 {
                        return left.mean;
                    }
                    left_unit = 0.5;
                }
                let mut right_unit = 0.0;
                if right.weight == 1.0 {
                    if weight_so_far + step - index <= 0.5 {
                        return right.mean;
                    }
                    right_unit = 0.5;
                }
                let z1 = index - weight_so_far - left_unit;
                let z2 = weight_so_far + step - index - right_unit;
                return weighted_average(left.mean, z2, right.mean, z1);
            }
            weight_so_far += step;
        }
        // Past the centre of the last centroid: interpolate towards the maximum.
        let z1 = index - total - last.weight / 2.0;
        let z2 = last.weight / 2.0 - z1;
        weighted_average(last.mean, z1, self.max, z2)
    }

    /// The merged centroids of the digest (the buffer merged in).
    #[cfg(test)]
    fn merged_centroids(&self) -> Vec<Centroid> {
        if self.buffer.is_empty() {
            self.centroids.clone()
        } else {
            let mut copy = self.clone();
            copy.compress();
            copy.centroids
        }
    }
}

impl Codec for TDigest {
    fn encode(&self, out: &mut Vec<u8>) {
        self.count.encode(out);
        self.min.encode(out);
        self.max.encode(out);
        let pairs = |clusters: &[Centroid]| -> Vec<(f64, f64)> {
            clusters.iter().map(|c| (c.mean, c.weight)).collect()
        };
        pairs(&self.centroids).encode(out);
        pairs(&self.buffer).encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let count = u64::decode(input)?;
        let min = f64::decode(input)?;
        let max = f64::decode(input)?;
        let mut clusters = || -> Result<Vec<Centroid>, DecodeError> {
            Ok(Vec::<(f64, f64)>::decode(input)?
                .into_iter()
                .map(|(mean, weight)| Centroid { mean, weight })
                .collect())
        };
        let centroids = clusters()?;
        let buffer = clusters()?;
        let all = || centroids.iter().chain(&buffer);
        let weights: f64 = all().map(|c| c.weight).sum();
        let well_formed = all()
            .all(|c| c.mean.is_finite() && c.weight >= 1.0 && c.weight.fract() == 0.0)
            && centroids.windows(2).all(|w| w[0].mean <= w[1].mean)
            && weights == count as f64
            && (count == 0 || (min <= max && all().all(|c| (min..=max).contains(&c.mean))));
        if !well_formed {
            return Err(DecodeError(
                "t-digest centroids are unordered, out of [min, max] or do not add up to the count"
                    .to_string(),
            ));
        }
        Ok(Self {
            centroids,
            buffer,
            count,
            min,
            max,
        })
    }
}

/// The state of one group: the percentile asked for and the digest of its values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PercentileState {
    /// The first `p` seen by the group.
    pub p: Option<f64>,
    /// The values of the group.
    pub digest: TDigest,
}

impl PercentileState {
    /// Adds the row `(x, p)`: keeps `p` if the group has none yet and adds `x`.
    #[inline]
    pub fn add(&mut self, x: f64, p: f64) {
        if self.p.is_none() {
            self.p = Some(p);
        }
        self.digest.add(x);
    }

    /// Adds the rows summarised by `other`.
    pub fn merge(&mut self, other: PercentileState) {
        if self.p.is_none() {
            self.p = other.p;
        }
        self.digest.merge(other.digest);
    }

    /// The estimated percentile, or `None` with no values or no valid `p`.
    pub fn finish(mut self) -> Option<f64> {
        self.digest.quantile(self.p?)
    }
}

impl Codec for PercentileState {
    fn encode(&self, out: &mut Vec<u8>) {
        self.p.encode(out);
        self.digest.encode(out);
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            p: Option::<f64>::decode(input)?,
            digest: TDigest::decode(input)?,
        })
    }
}

/// The approximate percentile aggregate.
pub struct ApproxPercentile;

impl Aggregate for ApproxPercentile {
    type State = PercentileState;
    const NAME: &'static str = "approx_percentile";
    const ARGS: &'static [DataType] = &[DataType::Float64, DataType::Float64];
    const RETURNS: DataType = DataType::Float64;
    /// Version 2 writes the uncompressed buffer (version 1 compressed it first).
    const STATE_VERSION: u32 = 2;

    #[inline]
    fn update(state: &mut PercentileState, args: &Args<'_>) {
        state.add(args.f64(0), args.f64(1));
    }

    fn merge(state: &mut PercentileState, other: PercentileState) {
        state.merge(other);
    }

    fn evaluate(state: PercentileState) -> Value {
        state.finish().into()
    }
}

laminar_guest::export_aggregate!(ApproxPercentile);

#[cfg(test)]
mod tests {
    use super::*;

    const PS: [f64; 5] = [0.01, 0.1, 0.5, 0.9, 0.99];

    /// SplitMix64: a deterministic source of uniform bits.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Standard normal (Box–Muller).
        fn normal(&mut self) -> f64 {
            let u1 = 1.0 - self.uniform();
            let u2 = self.uniform();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    fn uniform_data(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng(seed);
        (0..n).map(|_| rng.uniform() * 1000.0 - 200.0).collect()
    }

    fn normal_data(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng(seed);
        (0..n).map(|_| rng.normal() * 15.0 + 40.0).collect()
    }

    fn digest_of(values: &[f64]) -> TDigest {
        let mut digest = TDigest::new();
        for &x in values {
            digest.add(x);
        }
        digest
    }

    fn round_trip<T: Codec>(value: &T) -> T {
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        let mut input = bytes.as_slice();
        let decoded = T::decode(&mut input).unwrap();
        assert!(input.is_empty());
        decoded
    }

    /// |rank(estimate) / n − p|, with rank = number of values strictly below the estimate.
    fn rank_error(sorted: &[f64], estimate: f64, p: f64) -> f64 {
        let below = sorted.partition_point(|&v| v < estimate);
        (below as f64 / sorted.len() as f64 - p).abs()
    }

    fn check_rank_error(values: &[f64], mut digest: TDigest, what: &str) {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        for p in PS {
            let estimate = digest.quantile(p).unwrap();
            let error = rank_error(&sorted, estimate, p);
            assert!(
                error <= 0.01,
                "{what}: n = {}, p = {p}: estimate {estimate} has rank error {error}",
                values.len()
            );
        }
        assert_eq!(digest.quantile(0.0), sorted.first().copied());
        assert_eq!(digest.quantile(1.0), sorted.last().copied());
    }

    #[test]
    fn rank_error_within_one_percent() {
        for n in [10_000, 30_000, 100_000] {
            for (kind, values) in [
                ("uniform", uniform_data(n, n as u64)),
                ("normal", normal_data(n, n as u64 + 1)),
            ] {
                let digest = digest_of(&values);
                assert!(
                    digest.merged_centroids().len() <= 2 * COMPRESSION as usize,
                    "{kind}: {} centroids",
                    digest.merged_centroids().len()
                );
                check_rank_error(&values, digest, kind);
            }
        }
    }

    #[test]
    fn merged_encoded_halves_within_one_percent() {
        for n in [10_000, 100_000] {
            for (kind, values) in [
                ("uniform", uniform_data(n, 7)),
                ("normal", normal_data(n, 8)),
            ] {
                let (a, b) = values.split_at(n * 2 / 5);
                let mut left = round_trip(&digest_of(a));
                left.merge(round_trip(&digest_of(b)));
                assert_eq!(left.count(), n as u64);
                check_rank_error(&values, left, kind);

                // Through the aggregate and its state type as well.
                let state = |part: &[f64]| PercentileState {
                    p: Some(0.5),
                    digest: digest_of(part),
                };
                let mut merged = round_trip(&state(a));
                ApproxPercentile::merge(&mut merged, round_trip(&state(b)));
                let Value::Float64(median) = ApproxPercentile::evaluate(merged) else {
                    panic!("expected a value");
                };
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                assert!(rank_error(&sorted, median, 0.5) <= 0.01);
            }
        }
    }

    #[test]
    fn many_small_merges_stay_accurate() {
        let values = normal_data(50_000, 3);
        let mut digest = TDigest::new();
        for chunk in values.chunks(700) {
            digest.merge(round_trip(&digest_of(chunk)));
        }
        check_rank_error(&values, digest, "normal, 72 partial states");
    }

    #[test]
    fn small_groups_are_exact() {
        let mut digest = digest_of(&[5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(digest.quantile(0.0), Some(1.0));
        assert_eq!(digest.quantile(0.5), Some(3.0));
        assert_eq!(digest.quantile(1.0), Some(5.0));
        let mut one = digest_of(&[7.5]);
        for p in [0.0, 0.3, 1.0] {
            assert_eq!(one.quantile(p), Some(7.5));
        }
        // 400 values, never compressed: the median of 0..400 lies between 199 and 200.
        let values: Vec<f64> = (0..400).map(f64::from).collect();
        let median = digest_of(&values).quantile(0.5).unwrap();
        assert!((199.0..=200.0).contains(&median), "{median}");
    }

    #[test]
    fn a_restored_group_is_the_same_digest() {
        // 400 values: exact while uninterrupted, and still exact (the same digest) after
        // its state is merged into an empty group; 1 234 values: compressed at the same
        // rows either way.
        for n in [1, 5, 400, 499, 500, 1_234] {
            let values = normal_data(n, 11);
            let (before, after) = values.split_at(n / 2);
            let mut restored = TDigest::new();
            restored.merge(round_trip(&digest_of(before)));
            let mut uninterrupted = digest_of(before);
            for &x in after {
                restored.add(x);
                uninterrupted.add(x);
            }
            assert_eq!(restored, uninterrupted, "n = {n}");
            for p in PS {
                let (a, b) = (restored.quantile(p), uninterrupted.quantile(p));
                assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "n = {n}, p = {p}");
            }
        }
    }

    #[test]
    fn empty_non_finite_and_bad_p_are_null() {
        assert_eq!(
            ApproxPercentile::evaluate(PercentileState::default()),
            Value::Null
        );
        let mut state = PercentileState::default();
        state.add(f64::NAN, 0.5);
        state.add(f64::INFINITY, 0.5);
        assert_eq!(state.digest.count(), 0);
        assert_eq!(ApproxPercentile::evaluate(state.clone()), Value::Null);
        state.add(2.0, 0.9);
        assert_eq!(ApproxPercentile::evaluate(state), Value::Float64(2.0));
        for p in [-0.1, 1.5, f64::NAN] {
            let mut state = PercentileState::default();
            state.add(1.0, p);
            state.add(2.0, 0.5);
            assert_eq!(ApproxPercentile::evaluate(state), Value::Null, "p = {p}");
        }
        // An empty state survives encoding and merging.
        let mut state = round_trip(&PercentileState::default());
        ApproxPercentile::merge(&mut state, round_trip(&PercentileState::default()));
        assert_eq!(ApproxPercentile::evaluate(state), Value::Null);
    }

    #[test]
    fn first_p_wins_and_survives_merge() {
        let mut state = PercentileState::default();
        state.add(1.0, 0.0);
        state.add(2.0, 1.0);
        assert_eq!(state.p, Some(0.0));
        let mut empty = PercentileState::default();
        empty.merge(round_trip(&state));
        assert_eq!(empty.p, Some(0.0));
        assert_eq!(ApproxPercentile::evaluate(empty), Value::Float64(1.0));
    }

    #[test]
    fn hostile_state_bytes_are_rejected() {
        let mut bytes = Vec::new();
        digest_of(&[1.0, 2.0, 3.0]).encode(&mut bytes);
        // Change the count so that it no longer matches the centroid weights.
        bytes[0] = 9;
        assert!(TDigest::decode(&mut bytes.as_slice()).is_err());
        assert!(TDigest::decode(&mut [1u8, 2, 3].as_slice()).is_err());
    }
}
