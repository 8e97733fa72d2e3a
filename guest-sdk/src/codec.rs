//! How a group's state becomes bytes (checkpoints, partial aggregation) and back.

use std::fmt;

/// A state that can be written as bytes and read back. Implemented for numbers, `bool`,
/// `String`, `Vec<T>`, `Option<T>`, fixed-size arrays and tuples of up to four codecs, so
/// most states need no code; implement it for your own types with the same building blocks.
pub trait Codec: Sized {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Reads one value from the front of `input` and advances `input` past it.
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError>;
}

/// State bytes that do not decode: truncated, or written by another version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed state bytes: {}", self.0)
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
    if input.len() < n {
        return Err(DecodeError(format!(
            "{what} needs {n} bytes, {} left",
            input.len()
        )));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

macro_rules! number_codec {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            #[inline]
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
                let bytes = take(input, std::mem::size_of::<$t>(), stringify!($t))?;
                let mut array = [0u8; std::mem::size_of::<$t>()];
                array.copy_from_slice(bytes);
                Ok(<$t>::from_le_bytes(array))
            }
        }
    )*};
}
number_codec!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

impl Codec for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        match u8::decode(input)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError(format!("bool byte {b}"))),
        }
    }
}

impl Codec for usize {
    fn encode(&self, out: &mut Vec<u8>) {
        (*self as u64).encode(out);
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let n = u64::decode(input)?;
        usize::try_from(n).map_err(|_| DecodeError(format!("length {n} too large")))
    }
}

impl<T: Codec> Codec for Vec<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        for item in self {
            item.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let len = usize::decode(input)?;
        // Never trust a length for an allocation: every element takes at least one byte.
        let mut items = Vec::with_capacity(len.min(input.len()));
        for _ in 0..len {
            items.push(T::decode(input)?);
        }
        Ok(items)
    }
}

impl Codec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.len() as u64).encode(out);
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let len = usize::decode(input)?;
        let bytes = take(input, len, "string")?;
        String::from_utf8(bytes.to_vec()).map_err(|e| DecodeError(e.to_string()))
    }
}

impl<T: Codec> Codec for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        self.is_some().encode(out);
        if let Some(value) = self {
            value.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(if bool::decode(input)? {
            Some(T::decode(input)?)
        } else {
            None
        })
    }
}

impl<T: Codec + Default + Copy, const N: usize> Codec for [T; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        for item in self {
            item.encode(out);
        }
    }
    fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
        let mut array = [T::default(); N];
        for item in &mut array {
            *item = T::decode(input)?;
        }
        Ok(array)
    }
}

impl Codec for () {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_input: &mut &[u8]) -> Result<Self, DecodeError> {
        Ok(())
    }
}

macro_rules! tuple_codec {
    ($($name:ident),+) => {
        impl<$($name: Codec),+> Codec for ($($name,)+) {
            #[allow(non_snake_case)]
            fn encode(&self, out: &mut Vec<u8>) {
                let ($($name,)+) = self;
                $($name.encode(out);)+
            }
            fn decode(input: &mut &[u8]) -> Result<Self, DecodeError> {
                Ok(($($name::decode(input)?,)+))
            }
        }
    };
}
tuple_codec!(A);
tuple_codec!(A, B);
tuple_codec!(A, B, C);
tuple_codec!(A, B, C, D);

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Codec + PartialEq + std::fmt::Debug>(value: T) {
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        let mut input = bytes.as_slice();
        assert_eq!(T::decode(&mut input).unwrap(), value);
        assert!(input.is_empty(), "decode must consume exactly the encoding");
    }

    #[test]
    fn values_round_trip() {
        round_trip(1.5f64);
        round_trip(-7i64);
        round_trip((3u64, -2.25f64, true));
        round_trip(vec![1.0f64, f64::INFINITY, -0.0]);
        round_trip(Some("héllo".to_string()));
        round_trip(None::<u32>);
        round_trip([1u8, 2, 3, 4]);
        round_trip(vec![(1u32, "a".to_string()), (2, String::new())]);
    }

    #[test]
    fn truncated_and_hostile_input_is_an_error() {
        let mut bytes = Vec::new();
        vec![1.0f64, 2.0].encode(&mut bytes);
        bytes.pop();
        assert!(Vec::<f64>::decode(&mut bytes.as_slice()).is_err());
        // A huge length with no data must fail, not allocate.
        let mut huge = Vec::new();
        u64::MAX.encode(&mut huge);
        assert!(Vec::<u8>::decode(&mut huge.as_slice()).is_err());
        assert!(bool::decode(&mut [7u8].as_slice()).is_err());
    }
}
