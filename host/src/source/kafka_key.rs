//! The `key_column` of a Kafka source: the column the producer keys its messages by.
//!
//! The message key fills the column, read as text in the column's type (`'7'` is the
//! BIGINT 7; a VARBINARY column takes the key's bytes). Where the message value carries
//! the column too (a JSON field of that name), the two must agree: a message whose key
//! does not match its value's column is a bad row, never aggregated under the wrong
//! group. With `group_id` (scale-out), every message must have a key, since the partition
//! a group lives in follows from it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray, StringArray};
use arrow::compute::kernels::cmp::neq;
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast_with_options, is_not_null, CastOptions};
use arrow::datatypes::DataType;

use crate::error::Result;
use crate::text::shown;

/// How the key column of a source is filled and checked.
#[derive(Debug, Clone)]
pub(super) struct KeyColumn {
    /// The column's name, for messages.
    pub(super) name: String,
    /// Its declared type.
    pub(super) data_type: DataType,
    /// Its index among the value's columns, where the value carries it too.
    pub(super) in_value: Option<usize>,
    /// Whether a message without a key is a bad row (scale-out).
    pub(super) required: bool,
}

/// The key column of a chunk's rows and, for each row, why it is bad (if it is).
pub(super) struct ResolvedKeys {
    /// The column, one value per row.
    pub(super) column: ArrayRef,
    /// `Some(reason)` for each bad row.
    pub(super) bad: Vec<Option<String>>,
}

impl KeyColumn {
    /// Whether the value's decoder should read the column as well: a JSON object may
    /// carry it; a VARBINARY key has no JSON form.
    pub(super) fn read_from_json(data_type: &DataType) -> bool {
        !matches!(data_type, DataType::Binary)
    }

    /// Resolves the column for rows whose message keys are `keys` and whose value
    /// carried `value` (the decoded column, where the value has it).
    pub(super) fn resolve(
        &self,
        keys: &[Option<&[u8]>],
        value: Option<&ArrayRef>,
    ) -> Result<ResolvedKeys> {
        let mut bad: Vec<Option<String>> = keys
            .iter()
            .map(|k| match k {
                None if self.required => Some(format!(
                    "the message has no key; with group_id every message must be keyed by key_column '{}'",
                    shown(&self.name, 80)
                )),
                Some(k) if self.data_type != DataType::Binary && std::str::from_utf8(k).is_err() => {
                    Some("the message key is not UTF-8".to_string())
                }
                _ => None,
            })
            .collect();
        if self.data_type == DataType::Binary {
            let column: ArrayRef = Arc::new(keys.iter().copied().collect::<BinaryArray>());
            return Ok(ResolvedKeys { column, bad });
        }
        let text: StringArray = keys
            .iter()
            .map(|k| k.and_then(|k| std::str::from_utf8(k).ok()))
            .collect();
        let options = CastOptions {
            safe: true,
            ..CastOptions::default()
        };
        let parsed = cast_with_options(&text, &self.data_type, &options)?;
        for (row, reason) in bad.iter_mut().enumerate() {
            if reason.is_none() && text.is_valid(row) && parsed.is_null(row) {
                *reason = Some(format!(
                    "the message key '{}' is not a {} (key_column '{}')",
                    shown(text.value(row), 80),
                    self.data_type,
                    shown(&self.name, 80)
                ));
            }
        }
        let Some(value) = value else {
            return Ok(ResolvedKeys {
                column: parsed,
                bad,
            });
        };
        // Where both are there, they must agree.
        let differs = neq(&parsed, value)?;
        for (row, reason) in bad.iter_mut().enumerate() {
            if reason.is_none() && differs.is_valid(row) && differs.value(row) {
                *reason = Some(format!(
                    "the message key '{}' does not match its value's key_column '{}' ({}); a message must be keyed by its key_column",
                    shown(text.value(row), 80),
                    shown(&self.name, 80),
                    shown(&value_text(value, row), 80)
                ));
            }
        }
        let has_value: BooleanArray = is_not_null(value.as_ref())?;
        let column = zip(&has_value, value, &parsed)?;
        Ok(ResolvedKeys { column, bad })
    }
}

/// Row `row` of `array` as text, for a message.
fn value_text(array: &ArrayRef, row: usize) -> String {
    arrow::util::display::array_value_to_string(array, row).unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::Int64Type;

    fn bigint(in_value: bool, required: bool) -> KeyColumn {
        KeyColumn {
            name: "auction".into(),
            data_type: DataType::Int64,
            in_value: in_value.then_some(0),
            required,
        }
    }

    #[test]
    fn the_key_fills_the_column_in_its_type_and_a_bad_key_is_a_bad_row() {
        let keys: Vec<Option<&[u8]>> = vec![Some(b"7"), Some(b"x"), None];
        let resolved = bigint(false, false).resolve(&keys, None).expect("resolve");
        let column = resolved.column.as_primitive::<Int64Type>();
        assert_eq!(column.value(0), 7);
        assert!(resolved.bad[0].is_none());
        assert!(resolved.bad[1]
            .as_deref()
            .unwrap_or("")
            .contains("not a Int64"));
        // Without group_id a message may lack a key: the column is NULL.
        assert!(resolved.bad[2].is_none() && column.is_null(2));
        let required = bigint(false, true).resolve(&keys, None).expect("resolve");
        assert!(required.bad[2].as_deref().unwrap_or("").contains("no key"));
    }

    #[test]
    fn a_key_that_disagrees_with_the_value_is_a_bad_row() {
        let keys: Vec<Option<&[u8]>> = vec![Some(b"7"), Some(b"8"), Some(b"9")];
        let value: ArrayRef = Arc::new(Int64Array::from(vec![Some(7), Some(3), None]));
        let resolved = bigint(true, true)
            .resolve(&keys, Some(&value))
            .expect("resolve");
        assert!(resolved.bad[0].is_none());
        let why = resolved.bad[1].as_deref().unwrap_or("");
        assert!(why.contains("'8'") && why.contains("(3)"), "{why}");
        // The value lacks the field: the key fills it.
        assert!(resolved.bad[2].is_none());
        let column = resolved.column.as_primitive::<Int64Type>();
        assert_eq!((column.value(0), column.value(2)), (7, 9));
    }
}
