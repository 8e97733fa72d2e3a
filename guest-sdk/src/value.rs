//! The value a finished group evaluates to.

use crate::DataType;

/// The result of one group: a value of the aggregate's declared result type, or NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL: e.g. a group with no non-NULL input.
    Null,
    /// DOUBLE
    Float64(f64),
    /// BIGINT
    Int64(i64),
    /// VARCHAR
    Utf8(String),
    /// BOOLEAN
    Boolean(bool),
    /// TIMESTAMP as microseconds since the epoch.
    Timestamp(i64),
}

impl Value {
    /// The type of a non-NULL value.
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Float64(_) => DataType::Float64,
            Value::Int64(_) => DataType::Int64,
            Value::Utf8(_) => DataType::Utf8,
            Value::Boolean(_) => DataType::Boolean,
            Value::Timestamp(_) => DataType::Timestamp,
        })
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float64(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int64(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Utf8(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
