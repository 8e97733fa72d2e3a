//! `shout(s VARCHAR) -> VARCHAR`: `s` in upper case followed by `!`, the same value as the
//! SQL expression `upper(s) || '!'`, as a Laminar Wasm scalar function. NULL in, NULL out.
//! Upper case is Unicode's full mapping (`ß` becomes `SS`), as Rust's `str::to_uppercase`
//! and DataFusion's `upper` both apply it.

use laminar_guest_scalar::{export_scalar, Args, DataType, Scalar, Value};

/// The shouting function.
pub struct Shout;

/// `s` in upper case, then `!`.
pub fn shout(s: &str) -> String {
    let mut out = s.to_uppercase();
    out.push('!');
    out
}

impl Scalar for Shout {
    const NAME: &'static str = "shout";
    const ARGS: &'static [DataType] = &[DataType::Utf8];
    const RETURNS: DataType = DataType::Utf8;

    fn eval(args: &Args<'_>) -> Value {
        Value::Utf8(shout(args.str(0)))
    }
}

export_scalar!(Shout);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_case_and_a_bang() {
        assert_eq!(shout("web"), "WEB!");
        assert_eq!(shout(""), "!");
        assert_eq!(shout("straße"), "STRASSE!");
    }
}
