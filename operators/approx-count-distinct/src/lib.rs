//! `approx_count_distinct(x BIGINT) -> BIGINT`: an estimate of the number of distinct
//! non-NULL values of `x`, as a Laminar Wasm aggregate, computed with HyperLogLog.
//!
//! Semantics:
//! - NULL rows are skipped. A group with no non-NULL value evaluates to 0, not NULL, as SQL
//!   `COUNT(DISTINCT x)` and DataFusion's `approx_distinct` do.
//! - Up to [`SPARSE_LIMIT`] (1024) distinct values the count is **exact**: a group keeps the
//!   64-bit hashes of its values (sparse mode), and the hash is a bijection of `i64`, so
//!   distinct values never collide.
//! - Above that the group switches, for good, to a dense HyperLogLog of precision 14:
//!   16 384 one-byte registers (16 KiB). Its relative standard error is
//!   `1.04 / sqrt(16384) ≈ 0.81 %`; the unit tests check that at 10 000, 100 000 and
//!   1 000 000 distinct values (and at several counts in between) the estimate is within
//!   three standard errors, 2.5 %, of the true count. (Measured over 24 disjoint ranges of
//!   1 000 000 sequential keys: mean error +0.17 %, standard deviation 0.84 %; the range
//!   `0..1_000_000` that the tests use happens to be among the worst, +2.28 %.)
//! - The estimate from the registers is Ertl's improved raw estimator (O. Ertl, "New
//!   cardinality estimation algorithms for HyperLogLog sketches", 2017), which needs no
//!   empirical bias tables: it covers the small range (where plain HyperLogLog needs linear
//!   counting) and the transition range without the bias of the classic estimator.
//! - The state of a group depends only on its *set* of distinct values, so merging partial
//!   states gives exactly the state (and the estimate) of aggregating all rows at once.
//!
//! The hash is the SplitMix64 finaliser (Stafford's "Mix13" constants): three
//! xor-shift-multiply rounds over `x + 0x9E3779B97F4A7C15`, each round a bijection, with
//! full avalanche, so sequential keys spread evenly over the registers.
//!
//! State bytes (version 1): a tag byte, then either `0` and the sorted distinct hashes as a
//! `Vec<u64>` (8 bytes a value, at most 8 KiB) or `1` and the 16 384 registers.

use laminar_guest::{Aggregate, Args, Codec, DataType, DecodeError, Value};

/// Precision `p`: the dense sketch has `2^p` registers.
pub const PRECISION: u32 = 14;

/// Number of registers of the dense sketch.
pub const REGISTERS: usize = 1 << PRECISION;

/// Largest number of distinct values a group counts exactly before it switches to registers.
pub const SPARSE_LIMIT: usize = 1024;

/// Number of bits of a hash left after the register index: `q = 64 − p`.
const Q: usize = 64 - PRECISION as usize;

/// Smallest number of buffered hashes at which a sparse group sorts and de-duplicates.
const MIN_NORMALIZE_AT: usize = 64;

/// The 64-bit hash of a value: the SplitMix64 finaliser, a bijection on 64-bit words.
#[inline]
pub fn hash(x: i64) -> u64 {
    let mut z = (x as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A HyperLogLog sketch, exact (sparse) for small sets.
#[derive(Debug, Clone, PartialEq)]
pub enum Sketch {
    /// The hashes seen so far, possibly unsorted and repeated past the first
    /// `normalize_at / 2` or so; sorted and de-duplicated whenever `normalize_at` are held.
    Sparse {
        /// The hashes of the values.
        hashes: Vec<u64>,
        /// Number of held hashes at which they are next sorted and de-duplicated.
        normalize_at: usize,
    },
    /// The registers: for each index the largest rank seen (0 when none).
    Dense(Box<[u8; REGISTERS]>),
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch::Sparse {
            hashes: Vec::new(),
            normalize_at: MIN_NORMALIZE_AT,
        }
    }
}

/// Sets the register of `hash` to at least its rank.
#[inline]
fn set_register(registers: &mut [u8; REGISTERS], hash: u64) {
    let index = (hash >> Q) as usize;
    // The guard bit below the remaining q bits caps the rank at q + 1.
    let rank = ((hash << PRECISION) | (1 << (PRECISION - 1))).leading_zeros() as u8 + 1;
    let register = &mut registers[index];
    if rank > *register {
        *register = rank;
    }
}

/// A sketch holding the hashes `hashes` (in any order, with repeats): sparse while there
/// are at most [`SPARSE_LIMIT`] distinct ones, dense otherwise.
fn from_hashes(mut hashes: Vec<u64>) -> Sketch {
    hashes.sort_unstable();
    hashes.dedup();
    if hashes.len() > SPARSE_LIMIT {
        let mut registers = Box::new([0u8; REGISTERS]);
        for &h in &hashes {
            set_register(&mut registers, h);
        }
        Sketch::Dense(registers)
    } else {
        let normalize_at = (2 * hashes.len()).clamp(MIN_NORMALIZE_AT, 2 * SPARSE_LIMIT);
        Sketch::Sparse {
            hashes,
            normalize_at,
        }
    }
}

/// Ertl's σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k−1).
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

/// Ertl's τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² 2^−k) / 3.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

/// Ertl's improved raw estimate of the number of distinct hashes behind `registers`.
fn estimate_registers(registers: &[u8; REGISTERS]) -> f64 {
    let mut histogram = [0u32; Q + 2];
    for &r in registers.iter() {
        histogram[usize::from(r).min(Q + 1)] += 1;
    }
    let m = REGISTERS as f64;
    let mut z = m * tau(1.0 - f64::from(histogram[Q + 1]) / m);
    for k in (1..=Q).rev() {
        z += f64::from(histogram[k]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    let alpha_infinity = 1.0 / (2.0 * std::f64::consts::LN_2);
    alpha_infinity * m * m / z
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value.
    #[inline]
    pub fn add(&mut self, x: i64) {
        self.add_hash(hash(x));
    }

    /// Adds one hash.
    #[inline]
    pub fn add_hash(&mut self, h: u64) {
        match self {
            Sketch::Dense(registers) => set_register(registers, h),
            Sketch::Sparse {
                hashes,
                normalize_at,
            } => {
                hashes.push(h);
                if hashes.len() >= *normalize_at {
                    self.normalize();
                }
            }
        }
    }

    /// Sorts and de-duplicates a sparse sketch, switching to registers above
    /// [`SPARSE_LIMIT`] distinct hashes. After this the sketch depends only on the set of
    /// hashes added.
    pub fn normalize(&mut self) {
        if let Sketch::Sparse { hashes, .. } = self {
            *self = from_hashes(std::mem::take(hashes));
        }
    }

    /// Adds every value summarised by `other`.
    pub fn merge(&mut self, other: Sketch) {
        match (&mut *self, other) {
            (Sketch::Dense(mine), Sketch::Dense(theirs)) => {
                for (a, &b) in mine.iter_mut().zip(theirs.iter()) {
                    *a = (*a).max(b);
                }
            }
            (Sketch::Dense(mine), Sketch::Sparse { hashes, .. }) => {
                for h in hashes {
                    set_register(mine, h);
                }
            }
            (Sketch::Sparse { hashes, .. }, Sketch::Dense(mut theirs)) => {
                for &h in hashes.iter() {
                    set_register(&mut theirs, h);
                }
                *self = Sketch::Dense(theirs);
            }
            (Sketch::Sparse { hashes, .. }, Sketch::Sparse { hashes: theirs, .. }) => {
                hashes.extend_from_slice(&theirs);
                self.normalize();
            }
        }
    }

    /// The estimated number of distinct values (exact while sparse).
    pub fn estimate(&mut self) -> u64 {
        self.normalize();
        match self {
            Sketch::Sparse { hashes, .. } => hashes.len() as u64,
            Sketch::Dense(registers) => estimate_registers(registers).round() as u64,
        }
    }
}

impl Codec for Sketch {
    fn encode(&self, out: &mut Vec<u8>) {
        let normalized;
        let sketch = match self {
            Sketch::Sparse { hashes, .. } => {
                normalized = from_hashes(hashes.clone());
                &normalized
            }
            dense => dense,
        };
        match sketch {
            Sketch::Sparse { hashes, .. } => {
                0u8.encode(out);
                hashes.encode(out);
            }
            Sketch::Dense(registers) => {
                1u8.encode(out);
                out.extend_from_slice(&registers[..]);
            }
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(from_hashes(Vec::<u64>::decode(input)?)),
            1 => {
                if input.len() < REGISTERS {
                    return Err(DecodeError(format!(
                        "HyperLogLog registers need {REGISTERS} bytes, {} left",
                        input.len()
                    )));
                }
                let (bytes, rest) = input.split_at(REGISTERS);
                if let Some(bad) = bytes.iter().find(|&&r| usize::from(r) > Q + 1) {
                    return Err(DecodeError(format!(
                        "HyperLogLog register value {bad} exceeds {}",
                        Q + 1
                    )));
                }
                let mut registers = Box::new([0u8; REGISTERS]);
                registers.copy_from_slice(bytes);
                *input = rest;
                Ok(Sketch::Dense(registers))
            }
            tag => Err(DecodeError(format!("unknown HyperLogLog state tag {tag}"))),
        }
    }
}

/// The approximate count-distinct aggregate.
pub struct ApproxCountDistinct;

impl Aggregate for ApproxCountDistinct {
    type State = Sketch;
    const NAME: &'static str = "approx_count_distinct";
    const ARGS: &'static [DataType] = &[DataType::Int64];
    const RETURNS: DataType = DataType::Int64;

    #[inline]
    fn update(state: &mut Sketch, args: &Args<'_>) {
        state.add(args.i64(0));
    }

    fn merge(state: &mut Sketch, other: Sketch) {
        state.merge(other);
    }

    fn evaluate(mut state: Sketch) -> Value {
        Value::Int64(i64::try_from(state.estimate()).unwrap_or(i64::MAX))
    }
}

laminar_guest::export_aggregate!(ApproxCountDistinct);

#[cfg(test)]
mod tests {
    use super::*;

    /// Three standard errors of precision 14, rounded up: 3 × 1.04 / 128.
    const BOUND: f64 = 0.025;

    fn sketch_of(values: impl IntoIterator<Item = i64>) -> Sketch {
        let mut sketch = Sketch::new();
        for x in values {
            sketch.add(x);
        }
        sketch
    }

    fn bytes_of(sketch: &Sketch) -> Vec<u8> {
        let mut bytes = Vec::new();
        sketch.encode(&mut bytes);
        bytes
    }

    fn round_trip(sketch: &Sketch) -> Sketch {
        let bytes = bytes_of(sketch);
        let mut input = bytes.as_slice();
        let decoded = Sketch::decode(&mut input).unwrap();
        assert!(input.is_empty());
        decoded
    }

    /// Distinct pseudo-random values: `hash` is a bijection, so `hash(i)` for distinct `i`
    /// are distinct; the xor makes them unrelated to the sketch's own hashing.
    fn random_values(n: usize, seed: i64) -> impl Iterator<Item = i64> {
        (0..n as i64).map(move |i| (hash(i.wrapping_add(seed)) ^ 0x5555_5555_5555_5555) as i64)
    }

    fn relative_error(estimate: u64, truth: usize) -> f64 {
        (estimate as f64 - truth as f64).abs() / truth as f64
    }

    #[test]
    fn hash_spreads_and_does_not_collide() {
        let hashes: Vec<u64> = (0..100_000).map(hash).collect();
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), hashes.len());
        // Sequential keys fill the registers evenly: each index gets 100 000 / 16 384 ≈ 6.1.
        let mut per_index = vec![0u32; REGISTERS];
        for h in hashes {
            per_index[(h >> Q) as usize] += 1;
        }
        assert!(per_index.iter().all(|&c| c <= 25));
    }

    #[test]
    fn small_counts_are_exact() {
        assert_eq!(sketch_of([]).estimate(), 0);
        assert_eq!(sketch_of([7]).estimate(), 1);
        assert_eq!(sketch_of([i64::MIN, -1, 0, 1, i64::MAX]).estimate(), 5);
        for n in [2, 63, 64, 65, 1000, SPARSE_LIMIT] {
            // Every value twice, in two passes: repeats are not counted.
            let mut sketch = sketch_of((0..n as i64).chain(0..n as i64));
            assert_eq!(sketch.estimate(), n as u64, "n = {n}");
            assert!(matches!(sketch, Sketch::Sparse { .. }));
        }
        let mut sketch = sketch_of(0..SPARSE_LIMIT as i64 + 1);
        let estimate = sketch.estimate();
        assert!(matches!(sketch, Sketch::Dense(_)));
        assert!(
            relative_error(estimate, SPARSE_LIMIT + 1) <= BOUND,
            "{estimate}"
        );
    }

    #[test]
    fn many_repeats_of_few_values() {
        let mut sketch = sketch_of((0..1_000_000).map(|i| i % 10 - 5));
        assert_eq!(sketch.estimate(), 10);
        assert!(
            matches!(&sketch, Sketch::Sparse { hashes, .. } if hashes.capacity() <= 2 * MIN_NORMALIZE_AT)
        );
    }

    #[test]
    fn relative_error_within_three_standard_errors() {
        for n in [
            1_000, 5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 1_000_000,
        ] {
            let sequential = sketch_of(0..n as i64).estimate();
            let random = sketch_of(random_values(n, 99)).estimate();
            for (kind, estimate) in [("sequential", sequential), ("random", random)] {
                let error = relative_error(estimate, n);
                assert!(
                    error <= BOUND,
                    "{kind}: n = {n}, estimate {estimate}, error {error}"
                );
            }
        }
    }

    #[test]
    fn merge_of_encoded_halves_equals_whole() {
        for n in [0usize, 10, 700, 1500, 100_000] {
            let values: Vec<i64> = random_values(n, 5).collect();
            let whole = sketch_of(values.iter().copied());
            for split in [0, n / 3, n] {
                let (a, b) = values.split_at(split);
                let mut merged = round_trip(&sketch_of(a.iter().copied()));
                ApproxCountDistinct::merge(&mut merged, round_trip(&sketch_of(b.iter().copied())));
                assert_eq!(
                    bytes_of(&merged),
                    bytes_of(&whole),
                    "n = {n}, split {split}"
                );
                assert_eq!(
                    ApproxCountDistinct::evaluate(merged),
                    ApproxCountDistinct::evaluate(whole.clone())
                );
            }
        }
        // Overlapping halves: the union is counted once.
        let mut left = sketch_of(0..600);
        left.merge(round_trip(&sketch_of(300..900)));
        assert_eq!(left.estimate(), 900);
        let mut left = sketch_of(0..60_000);
        left.merge(round_trip(&sketch_of(30_000..90_000)));
        assert_eq!(bytes_of(&left), bytes_of(&sketch_of(0..90_000)));
    }

    #[test]
    fn empty_group_counts_zero() {
        assert_eq!(
            ApproxCountDistinct::evaluate(Sketch::new()),
            Value::Int64(0)
        );
        let mut state = round_trip(&Sketch::new());
        ApproxCountDistinct::merge(&mut state, round_trip(&Sketch::new()));
        assert_eq!(ApproxCountDistinct::evaluate(state), Value::Int64(0));
        assert_eq!(bytes_of(&Sketch::new()).len(), 9);
    }

    #[test]
    fn hostile_state_bytes_are_rejected() {
        assert!(Sketch::decode(&mut [2u8].as_slice()).is_err());
        assert!(Sketch::decode(&mut [1u8, 0, 0].as_slice()).is_err());
        let mut bytes = bytes_of(&sketch_of(0..5000));
        assert_eq!(bytes.len(), 1 + REGISTERS);
        bytes[100] = 52;
        assert!(Sketch::decode(&mut bytes.as_slice()).is_err());
        // Sparse bytes that are unsorted or repeated are normalised, not trusted.
        let mut sparse = vec![0u8];
        vec![hash(3), hash(1), hash(3)].encode(&mut sparse);
        assert_eq!(
            Sketch::decode(&mut sparse.as_slice()).unwrap().estimate(),
            2
        );
    }
}
