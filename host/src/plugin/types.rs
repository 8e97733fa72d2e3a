//! The SQL types a plugin can take and return, and how they map to Arrow.

use std::fmt;

use arrow::datatypes::{DataType, TimeUnit};

use super::bindings::DataType as WitType;
use super::scalar_bindings::DataType as ScalarWitType;

/// An argument or result type of a plugin aggregate or scalar function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginType {
    /// DOUBLE (Arrow Float64)
    Float64,
    /// BIGINT (Arrow Int64)
    Int64,
    /// VARCHAR (Arrow Utf8)
    Utf8,
    /// BOOLEAN
    Boolean,
    /// TIMESTAMP, crossing the boundary as microseconds since the epoch
    Timestamp,
}

impl PluginType {
    /// The Arrow type values of this type have on the host side.
    pub fn arrow_type(self) -> DataType {
        match self {
            PluginType::Float64 => DataType::Float64,
            PluginType::Int64 => DataType::Int64,
            PluginType::Utf8 => DataType::Utf8,
            PluginType::Boolean => DataType::Boolean,
            PluginType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

impl From<WitType> for PluginType {
    fn from(t: WitType) -> Self {
        match t {
            WitType::Float64 => PluginType::Float64,
            WitType::Int64 => PluginType::Int64,
            WitType::Utf8 => PluginType::Utf8,
            WitType::Boolean => PluginType::Boolean,
            WitType::Timestamp => PluginType::Timestamp,
        }
    }
}

impl From<ScalarWitType> for PluginType {
    fn from(t: ScalarWitType) -> Self {
        match t {
            ScalarWitType::Float64 => PluginType::Float64,
            ScalarWitType::Int64 => PluginType::Int64,
            ScalarWitType::Utf8 => PluginType::Utf8,
            ScalarWitType::Boolean => PluginType::Boolean,
            ScalarWitType::Timestamp => PluginType::Timestamp,
        }
    }
}

impl fmt::Display for PluginType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginType::Float64 => "DOUBLE",
            PluginType::Int64 => "BIGINT",
            PluginType::Utf8 => "VARCHAR",
            PluginType::Boolean => "BOOLEAN",
            PluginType::Timestamp => "TIMESTAMP",
        })
    }
}
