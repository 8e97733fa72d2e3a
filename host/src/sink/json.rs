//! JSON lines output in which every value of a result stays distinguishable: a SQL NULL is
//! `null` with its key present, and a float that JSON has no number for is a string —
//! `"NaN"`, `"Infinity"`, `"-Infinity"` (the spelling of JavaScript, Python's `json` and
//! Jackson) — where arrow-json alone writes `null` for all three and leaves NULLs out.
//! Finite values are written by arrow-json's own encoders, unchanged.

use std::io::Write;
use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrowPrimitiveType, AsArray, PrimitiveArray};
use arrow::datatypes::{DataType, FieldRef, Float16Type, Float32Type, Float64Type};
use arrow::error::ArrowError;
use arrow::json::writer::{
    make_encoder, Encoder, EncoderFactory, EncoderOptions, LineDelimited, NullableEncoder,
};
use arrow::json::WriterBuilder;
use arrow::record_batch::RecordBatch;

/// Writes `batch` to `out` as one JSON object per line, every column's key in every object.
pub(crate) fn write_lines<W: Write>(out: W, batch: &RecordBatch) -> Result<(), ArrowError> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(SpelledFloats))
        .build::<_, LineDelimited>(out);
    writer.write(batch)?;
    writer.finish()
}

/// Options without a factory: arrow-json's own encoders, for the finite floats.
static PLAIN: LazyLock<EncoderOptions> = LazyLock::new(EncoderOptions::default);

/// Encodes float columns (also inside lists and structs) with NaN and the infinities
/// spelled out as strings.
#[derive(Debug)]
struct SpelledFloats;

impl EncoderFactory for SpelledFloats {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let encoder = match array.data_type() {
            DataType::Float16 => spelled::<Float16Type>(field, array, |v| v.to_f64())?,
            DataType::Float32 => spelled::<Float32Type>(field, array, f64::from)?,
            DataType::Float64 => spelled::<Float64Type>(field, array, |v| v)?,
            _ => return Ok(None),
        };
        Ok(Some(encoder))
    }
}

/// An encoder of the float column `array` that spells out its non-finite values.
fn spelled<'a, T: ArrowPrimitiveType>(
    field: &'a FieldRef,
    array: &'a dyn Array,
    to_f64: fn(T::Native) -> f64,
) -> Result<NullableEncoder<'a>, ArrowError> {
    let values = array.as_primitive::<T>();
    let encoder = Spelled {
        values,
        to_f64,
        finite: make_encoder(field, array, &PLAIN)?,
    };
    Ok(NullableEncoder::new(
        Box::new(encoder),
        array.logical_nulls(),
    ))
}

/// A float column's encoder: non-finite values as strings, the rest by arrow-json.
struct Spelled<'a, T: ArrowPrimitiveType> {
    values: &'a PrimitiveArray<T>,
    to_f64: fn(T::Native) -> f64,
    finite: NullableEncoder<'a>,
}

impl<T: ArrowPrimitiveType> Encoder for Spelled<'_, T> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let value = (self.to_f64)(self.values.value(idx));
        if value.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if value == f64::INFINITY {
            out.extend_from_slice(b"\"Infinity\"");
        } else if value == f64::NEG_INFINITY {
            out.extend_from_slice(b"\"-Infinity\"");
        } else {
            self.finite.encode(idx, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Float64Array, Int64Array};

    fn lines(batch: &RecordBatch) -> String {
        let mut out = Vec::new();
        write_lines(&mut out, batch).expect("writes");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn nan_infinities_and_null_are_all_distinguishable() {
        let batch = RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(f64::NAN),
                    Some(f64::INFINITY),
                    Some(f64::NEG_INFINITY),
                    None,
                    Some(2.5),
                    Some(-0.0),
                ])) as _,
            ),
            (
                "y",
                Arc::new(Float32Array::from(vec![
                    Some(f32::NAN),
                    Some(f32::INFINITY),
                    Some(f32::NEG_INFINITY),
                    None,
                    Some(1.5),
                    Some(3.0),
                ])) as _,
            ),
            (
                "n",
                Arc::new(Int64Array::from(vec![
                    None,
                    Some(1),
                    Some(2),
                    None,
                    Some(4),
                    Some(5),
                ])) as _,
            ),
        ])
        .expect("batch");
        assert_eq!(
            lines(&batch),
            "{\"x\":\"NaN\",\"y\":\"NaN\",\"n\":null}\n\
             {\"x\":\"Infinity\",\"y\":\"Infinity\",\"n\":1}\n\
             {\"x\":\"-Infinity\",\"y\":\"-Infinity\",\"n\":2}\n\
             {\"x\":null,\"y\":null,\"n\":null}\n\
             {\"x\":2.5,\"y\":1.5,\"n\":4}\n\
             {\"x\":-0.0,\"y\":3.0,\"n\":5}\n"
        );
    }
}
