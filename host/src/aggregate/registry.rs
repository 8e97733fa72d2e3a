//! Which aggregate functions run natively, and the accumulator for each input type.

use arrow::datatypes::*;

use super::avg::AvgAccumulator;
use super::count::CountAccumulator;
use super::min_max::StringMinMaxAccumulator;
use super::primitive::PrimitiveAccumulator;
use super::GroupAccumulator;
use crate::error::{Error, Result};

/// Names of the aggregate functions with a native streaming implementation.
pub const NATIVE_AGGREGATES: &[&str] = &["count", "sum", "min", "max", "avg"];

/// Builds the native accumulator for `name` over an argument of type `arg_type`,
/// producing `return_type` (the type DataFusion planned for the call).
pub fn native_accumulator(
    name: &str,
    arg_type: Option<&DataType>,
    return_type: &DataType,
) -> Result<Box<dyn GroupAccumulator>> {
    let unsupported = || {
        Error::unsupported(
            format!(
                "{}({})",
                name.to_uppercase(),
                arg_type.map(|t| t.to_string()).unwrap_or_default()
            ),
            "streaming aggregates support COUNT, and SUM, MIN, MAX, AVG over integers and \
             floating point numbers (MIN/MAX also over strings and timestamps)",
        )
    };
    Ok(match name {
        "count" => Box::new(CountAccumulator::default()),
        "avg" | "mean" => match return_type {
            DataType::Float64 => Box::new(AvgAccumulator::default()),
            _ => return Err(unsupported()),
        },
        "sum" => match return_type {
            DataType::Int64 => Box::new(PrimitiveAccumulator::<Int64Type, _>::new(
                return_type.clone(),
                0,
                |a: &mut i64, v| *a = a.wrapping_add(v),
            )),
            DataType::UInt64 => Box::new(PrimitiveAccumulator::<UInt64Type, _>::new(
                return_type.clone(),
                0,
                |a: &mut u64, v| *a = a.wrapping_add(v),
            )),
            DataType::Float64 => Box::new(PrimitiveAccumulator::<Float64Type, _>::new(
                return_type.clone(),
                0.0,
                |a: &mut f64, v| *a += v,
            )),
            _ => return Err(unsupported()),
        },
        "min" | "max" => min_max(name == "min", return_type).ok_or_else(unsupported)?,
        _ => return Err(unsupported()),
    })
}

/// MIN/MAX for every primitive type of `data_type`, or `None` if unsupported.
fn min_max(is_min: bool, data_type: &DataType) -> Option<Box<dyn GroupAccumulator>> {
    macro_rules! primitive {
        ($t:ty) => {{
            let identity = if is_min {
                <$t as ArrowPrimitiveType>::Native::MAX_TOTAL_ORDER
            } else {
                <$t as ArrowPrimitiveType>::Native::MIN_TOTAL_ORDER
            };
            let acc: Box<dyn GroupAccumulator> = if is_min {
                Box::new(PrimitiveAccumulator::<$t, _>::new(
                    data_type.clone(),
                    identity,
                    |a: &mut <$t as ArrowPrimitiveType>::Native, v| {
                        if v.is_lt(*a) {
                            *a = v
                        }
                    },
                ))
            } else {
                Box::new(PrimitiveAccumulator::<$t, _>::new(
                    data_type.clone(),
                    identity,
                    |a: &mut <$t as ArrowPrimitiveType>::Native, v| {
                        if v.is_gt(*a) {
                            *a = v
                        }
                    },
                ))
            };
            Some(acc)
        }};
    }
    match data_type {
        DataType::Int8 => primitive!(Int8Type),
        DataType::Int16 => primitive!(Int16Type),
        DataType::Int32 => primitive!(Int32Type),
        DataType::Int64 => primitive!(Int64Type),
        DataType::UInt8 => primitive!(UInt8Type),
        DataType::UInt16 => primitive!(UInt16Type),
        DataType::UInt32 => primitive!(UInt32Type),
        DataType::UInt64 => primitive!(UInt64Type),
        DataType::Float32 => primitive!(Float32Type),
        DataType::Float64 => primitive!(Float64Type),
        DataType::Date32 => primitive!(Date32Type),
        DataType::Date64 => primitive!(Date64Type),
        DataType::Timestamp(TimeUnit::Second, _) => primitive!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => primitive!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => primitive!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => primitive!(TimestampNanosecondType),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(Box::new(
            StringMinMaxAccumulator::new(is_min, data_type.clone()),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    fn run(name: &str, input: ArrayRef, ret: DataType, slots: &[u32]) -> ArrayRef {
        let mut acc = native_accumulator(name, Some(input.data_type()), &ret).unwrap();
        acc.update(&[input], slots, 3).unwrap();
        acc.evaluate(&[0, 1, 2]).unwrap()
    }

    #[test]
    fn sum_skips_nulls_and_is_null_without_values() {
        let input: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(5), Some(7)]));
        let out = run("sum", input, DataType::Int64, &[0, 1, 0, 2]);
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(out.value(0), 6);
        assert!(out.is_null(1));
        assert_eq!(out.value(2), 7);
    }

    #[test]
    fn sum_wraps_on_overflow_like_datafusion() {
        let input: ArrayRef = Arc::new(Int64Array::from(vec![i64::MAX, 1]));
        let out = run("sum", input, DataType::Int64, &[0, 0]);
        assert_eq!(out.as_primitive::<Int64Type>().value(0), i64::MIN);
    }

    #[test]
    fn min_max_avg_count() {
        let input: ArrayRef = Arc::new(Float64Array::from(vec![Some(2.0), Some(-1.0), None]));
        let min = run("min", input.clone(), DataType::Float64, &[0, 0, 1]);
        assert_eq!(min.as_primitive::<Float64Type>().value(0), -1.0);
        assert!(min.is_null(1));
        let max = run("max", input.clone(), DataType::Float64, &[0, 0, 1]);
        assert_eq!(max.as_primitive::<Float64Type>().value(0), 2.0);
        let avg = run("avg", input.clone(), DataType::Float64, &[0, 0, 1]);
        assert_eq!(avg.as_primitive::<Float64Type>().value(0), 0.5);
        assert!(avg.is_null(1));
        let count = run("count", input, DataType::Int64, &[0, 0, 1]);
        let count = count.as_primitive::<Int64Type>();
        assert_eq!((count.value(0), count.value(1), count.value(2)), (2, 0, 0));
    }

    #[test]
    fn slots_are_reset_after_evaluate() {
        let input: ArrayRef = Arc::new(Int64Array::from(vec![3, 4]));
        let mut acc = native_accumulator("max", Some(&DataType::Int64), &DataType::Int64).unwrap();
        acc.update(std::slice::from_ref(&input), &[0, 1], 2)
            .unwrap();
        acc.evaluate(&[0]).unwrap();
        acc.update(&[Arc::new(Int64Array::from(vec![1]))], &[0], 2)
            .unwrap();
        let out = acc.evaluate(&[0, 1]).unwrap();
        let out = out.as_primitive::<Int64Type>();
        assert_eq!((out.value(0), out.value(1)), (1, 4));

        let floats: ArrayRef = Arc::new(Float64Array::from(vec![3.0, 5.0]));
        let mut avg =
            native_accumulator("avg", Some(&DataType::Float64), &DataType::Float64).unwrap();
        avg.update(&[floats], &[0, 0], 1).unwrap();
        let first = avg.evaluate(&[0]).unwrap();
        assert_eq!(first.null_count(), 0, "every group saw a value");
        assert_eq!(first.as_primitive::<Float64Type>().value(0), 4.0);
        avg.update(&[Arc::new(Float64Array::from(vec![10.0]))], &[0], 1)
            .unwrap();
        let second = avg.evaluate(&[0]).unwrap();
        assert_eq!(second.as_primitive::<Float64Type>().value(0), 10.0);
    }

    #[test]
    fn every_native_state_survives_bytes_and_merge() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(4),
            None,
            Some(-9),
            Some(7),
            Some(1),
        ]));
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(0.5),
            Some(2.5),
            None,
            Some(-1.0),
            Some(3.0),
        ]));
        let strings: ArrayRef = Arc::new(StringArray::from(vec![
            Some("b"),
            None,
            Some("a"),
            Some("c"),
            Some("bb"),
        ]));
        let slots = [0, 1, 1, 0, 2];
        for (name, input, ret) in [
            ("count", &ints, DataType::Int64),
            ("sum", &ints, DataType::Int64),
            ("sum", &floats, DataType::Float64),
            ("min", &ints, DataType::Int64),
            ("max", &floats, DataType::Float64),
            ("avg", &floats, DataType::Float64),
            ("min", &strings, DataType::Utf8),
            ("max", &strings, DataType::Utf8),
        ] {
            let make = || native_accumulator(name, Some(input.data_type()), &ret).unwrap();
            // Slot 3 never sees a row: its state is empty and must stay NULL/zero.
            crate::aggregate::state_test::check_state_round_trip(
                &make,
                std::slice::from_ref(input),
                &slots,
                4,
            );
        }
    }

    #[test]
    fn string_min_max() {
        let input: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("a"), None]));
        let out = run("min", input, DataType::Utf8, &[0, 0, 1]);
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "a");
        assert!(out.is_null(1));
    }

    #[test]
    fn unsupported_aggregate_says_what_is_supported() {
        let err = native_accumulator("median", Some(&DataType::Float64), &DataType::Float64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("MEDIAN") && err.contains("SUM"), "{err}");
    }
}
