//! `affine(x DOUBLE) -> DOUBLE`: `x * 2 + 1`, as a Laminar Wasm scalar function. NULL in,
//! NULL out. It exists to compare a scalar computed inside Wasm with the same SQL
//! expression computed natively (`x * 2 + 1` in DOUBLE arithmetic gives the same bits).

use laminar_guest_scalar::{export_scalar, Args, DataType, Scalar, Value};

/// The affine map `x * 2 + 1`.
pub struct Affine;

/// `x * 2 + 1`, in the order SQL evaluates it.
pub fn affine(x: f64) -> f64 {
    x * 2.0 + 1.0
}

impl Scalar for Affine {
    const NAME: &'static str = "affine";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    fn eval(args: &Args<'_>) -> Value {
        Value::Float64(affine(args.f64(0)))
    }
}

export_scalar!(Affine);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_adds_one() {
        assert_eq!(affine(0.0), 1.0);
        assert_eq!(affine(-0.5), 0.0);
        assert_eq!(affine(10.25), 21.5);
    }
}
