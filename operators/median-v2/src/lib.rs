//! `median(x DOUBLE) -> DOUBLE`, build 2: the same exact median as `operators/median`,
//! with another state encoding (state version 2), and able to read the states of build 1
//! (`READS_STATE_VERSIONS = [1]`), so a durable query started with build 1 resumes with
//! this one (see interface `upgrade` in `wit/laminar-udaf.wit`).
//!
//! State bytes, version 2: a tag byte `2`, the number of values as a `u32`
//! (little-endian), then the values in ascending [`f64::total_cmp`] order, each as its
//! `f64` bits (little-endian). Version 1 (`operators/median`) is the SDK's `Vec<f64>`
//! encoding in arrival order; [`Median::migrate`] reads it and sorts.

use laminar_guest::{Aggregate, Args, Codec, DataType, DecodeError, Value};

/// The exact median aggregate, state version 2.
pub struct Median;

/// Every non-NULL value of a group; written sorted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Values(pub Vec<f64>);

/// The tag byte of a version 2 state.
const TAG: u8 = 2;

impl Codec for Values {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        out.push(TAG);
        // Groups hold far fewer than 2^32 values (state bytes are capped at 4 GiB).
        (sorted.len() as u32).encode(out);
        for value in &sorted {
            value.encode(out);
        }
    }

    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let tag = u8::decode(input)?;
        if tag != TAG {
            return Err(DecodeError(format!(
                "tag {tag}: not a version 2 median state"
            )));
        }
        let count = u32::decode(input)? as usize;
        if input.len() < count.saturating_mul(8) {
            return Err(DecodeError(format!(
                "{count} values need {} bytes, {} left",
                count * 8,
                input.len()
            )));
        }
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            values.push(f64::decode(input)?);
        }
        Ok(Values(values))
    }
}

/// The median of `values` (sorted in place), or `None` when empty: the middle value, or
/// the mean of the two middle ones for an even count, as build 1 and DataFusion.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

impl Aggregate for Median {
    type State = Values;
    const NAME: &'static str = "median";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;
    const STATE_VERSION: u32 = 2;
    const READS_STATE_VERSIONS: &'static [u32] = &[1];

    #[inline]
    fn update(state: &mut Values, args: &Args<'_>) {
        state.0.push(args.f64(0));
    }

    fn merge(state: &mut Values, mut other: Values) {
        if state.0.len() < other.0.len() {
            std::mem::swap(state, &mut other);
        }
        state.0.extend_from_slice(&other.0);
    }

    fn evaluate(mut state: Values) -> Value {
        median(&mut state.0).into()
    }

    fn migrate(version: u32, mut bytes: &[u8]) -> Result<Values, String> {
        match version {
            1 => Vec::<f64>::decode(&mut bytes)
                .map(Values)
                .map_err(|e| format!("a version 1 median state: {e}")),
            other => Err(format!("median reads state versions 1 and 2, not {other}")),
        }
    }
}

laminar_guest::export_aggregate!(Median);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_2_round_trips_sorted() {
        let mut bytes = Vec::new();
        Values(vec![3.0, -1.0, 2.0]).encode(&mut bytes);
        assert_eq!(bytes[0], TAG);
        let decoded = Values::decode(&mut bytes.as_slice()).unwrap();
        assert_eq!(decoded, Values(vec![-1.0, 2.0, 3.0]));
        assert!(Values::decode(&mut &bytes[..3]).is_err());
    }

    #[test]
    fn version_1_states_migrate_exactly() {
        let mut v1 = Vec::new();
        vec![5.0, 1.0, 4.0, 2.0].encode(&mut v1);
        let state = Median::migrate(1, &v1).unwrap();
        assert_eq!(Median::evaluate(state), Value::Float64(3.0));
        assert!(Median::migrate(3, &v1).is_err());
        assert!(Median::migrate(1, &v1[..5]).is_err());
    }
}
