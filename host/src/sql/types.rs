//! SQL column types of `CREATE SOURCE` mapped to Arrow types (as DataFusion maps them).

use arrow::datatypes::{DataType, TimeUnit};
use datafusion_sql::sqlparser::ast::{self, TimezoneInfo};

use crate::error::{Error, Result};

/// The Arrow type of a SQL column type.
pub(crate) fn arrow_type(sql: &ast::DataType) -> Result<DataType> {
    use ast::DataType as S;
    Ok(match sql {
        S::Boolean | S::Bool => DataType::Boolean,
        S::TinyInt(_) => DataType::Int8,
        S::SmallInt(_) | S::Int2(_) => DataType::Int16,
        S::Int(_) | S::Integer(_) | S::Int4(_) => DataType::Int32,
        S::BigInt(_) | S::Int8(_) => DataType::Int64,
        S::TinyIntUnsigned(_) => DataType::UInt8,
        S::SmallIntUnsigned(_) => DataType::UInt16,
        S::IntUnsigned(_) | S::IntegerUnsigned(_) => DataType::UInt32,
        S::BigIntUnsigned(_) => DataType::UInt64,
        S::Real | S::Float4 | S::Float(_) => DataType::Float32,
        S::Double(_) | S::DoublePrecision | S::Float8 | S::Float64 => DataType::Float64,
        S::Varchar(_)
        | S::Char(_)
        | S::Text
        | S::String(_)
        | S::CharacterVarying(_)
        | S::Character(_)
        | S::Nvarchar(_) => DataType::Utf8,
        S::Date => DataType::Date32,
        S::Timestamp(precision, tz) => {
            let unit = match precision {
                None | Some(9) => TimeUnit::Nanosecond,
                Some(0) => TimeUnit::Second,
                Some(3) => TimeUnit::Millisecond,
                Some(6) => TimeUnit::Microsecond,
                Some(p) => {
                    return Err(Error::plan(format!(
                        "TIMESTAMP({p}) is not supported; use a precision of 0, 3, 6 or 9"
                    )))
                }
            };
            let zone = match tz {
                TimezoneInfo::None | TimezoneInfo::WithoutTimeZone => None,
                _ => Some("+00:00".into()),
            };
            DataType::Timestamp(unit, zone)
        }
        other => return Err(Error::unsupported(
            format!("column type {other}"),
            "use BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, REAL, DOUBLE, VARCHAR, DATE or TIMESTAMP",
        )),
    })
}
