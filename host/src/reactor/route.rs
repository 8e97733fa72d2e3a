//! Routing: which core owns each row. The GROUP BY key expressions are evaluated once per
//! row here, hashed, and the row goes to core `hash % cores` with its evaluated keys, so
//! the window aggregate on that core does not evaluate them again.
//!
//! The hash is a fixed function of the key values (DataFusion's `create_hashes` with a
//! fixed seed), so a group always lands on the same core, in a run and after a restart
//! with the same core count; a checkpoint's groups are routed by the same function.

use arrow::array::{new_null_array, Array, ArrayRef, UInt32Array};
use arrow::compute::take;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_common::hash_utils::{create_hashes, RandomState};

use crate::error::Result;
use crate::operator::Operand;

/// The seed of the routing hash.
const ROUTING_SEED: u64 = 0x006c_616d_696e_6172;

/// Rows bound for one core and their evaluated key columns.
#[derive(Debug)]
pub(crate) struct Routed {
    /// The rows.
    pub(crate) batch: RecordBatch,
    /// One array per key expression, row for row.
    pub(crate) keys: Vec<ArrayRef>,
}

/// Splits batches by the hash of their GROUP BY keys.
#[derive(Debug)]
pub(crate) struct Router {
    keys: Vec<Operand>,
    cores: usize,
    hashes: Vec<u64>,
    rows_of: Vec<Vec<u32>>,
}

impl Router {
    /// A router over `cores` cores (at least one) for rows keyed by `keys`.
    pub(crate) fn new(keys: Vec<Operand>, cores: usize) -> Self {
        let cores = cores.max(1);
        Self {
            keys,
            cores,
            hashes: Vec::new(),
            rows_of: vec![Vec::new(); cores],
        }
    }

    /// The rows of `batch` for each core (`None` where a core gets none), in their order.
    pub(crate) fn route(&mut self, batch: &RecordBatch) -> Result<Vec<Option<Routed>>> {
        let keys = self
            .keys
            .iter()
            .map(|key| key.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        self.split(batch, keys)
    }

    /// Splits rows whose key columns are `keys` (a snapshot's groups, on restore).
    pub(crate) fn split(
        &mut self,
        batch: &RecordBatch,
        keys: Vec<ArrayRef>,
    ) -> Result<Vec<Option<Routed>>> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok((0..self.cores).map(|_| None).collect());
        }
        let core_of = |hash: u64| (hash % self.cores as u64) as usize;
        // No key columns: one group per window, so every row goes to one core.
        let only = if keys.is_empty() || self.cores == 1 {
            Some(0)
        } else {
            self.hashes.clear();
            self.hashes.resize(rows, 0);
            create_hashes(
                &keys,
                &RandomState::with_seed(ROUTING_SEED),
                &mut self.hashes,
            )?;
            let first = core_of(self.hashes[0]);
            self.hashes
                .iter()
                .all(|&h| core_of(h) == first)
                .then_some(first)
        };
        if let Some(core) = only {
            let mut out: Vec<Option<Routed>> = (0..self.cores).map(|_| None).collect();
            out[core] = Some(Routed {
                batch: batch.clone(),
                keys,
            });
            return Ok(out);
        }
        for rows in &mut self.rows_of {
            rows.clear();
        }
        for (row, &hash) in self.hashes.iter().enumerate() {
            self.rows_of[core_of(hash)].push(row as u32);
        }
        let mut out = Vec::with_capacity(self.cores);
        for rows in &self.rows_of {
            if rows.is_empty() {
                out.push(None);
                continue;
            }
            let indices = UInt32Array::from(rows.clone());
            let keys = keys
                .iter()
                .map(|k| take(k.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            out.push(Some(Routed {
                batch: take_rows(batch, &indices)?,
                keys,
            }));
        }
        Ok(out)
    }
}

/// The rows of `batch` at `indices`. A column that is all NULL (one the source does not
/// decode because the query never reads it) becomes a NULL column of the new length
/// without looking at each row.
fn take_rows(batch: &RecordBatch, indices: &UInt32Array) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|column| {
            if column.null_count() == column.len() {
                Ok(new_null_array(column.data_type(), indices.len()))
            } else {
                take(column.as_ref(), indices, None)
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(indices.len()));
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion_physical_expr::expressions::col;
    use std::sync::Arc;

    fn batch(keys: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("i", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from_iter_values(0..keys.len() as i64)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn every_row_goes_to_one_core_in_order_and_a_key_always_to_the_same_one() {
        let keys: Vec<Option<&str>> = (0..200)
            .map(|i| match i % 7 {
                0 => None,
                1 => Some("b"),
                2 => Some("c"),
                3 => Some("d"),
                4 => Some("e"),
                5 => Some("f"),
                _ => Some("a"),
            })
            .collect();
        let input = batch(&keys);
        let key = col("k", &input.schema()).unwrap();
        let mut router = Router::new(vec![Operand::new(key)], 3);
        let routed = router.route(&input).unwrap();
        let mut seen = Vec::new();
        let mut core_of_key = std::collections::HashMap::new();
        for (core, part) in routed.iter().enumerate() {
            let Some(part) = part else { continue };
            let rows = part.batch.column(1).as_primitive::<Int64Type>();
            assert!(rows.values().windows(2).all(|w| w[0] < w[1]), "order kept");
            let routed_keys = part.keys[0].as_string::<i32>();
            for (i, row) in rows.values().iter().enumerate() {
                seen.push(*row);
                let key = keys[*row as usize];
                let routed_key = routed_keys.is_valid(i).then(|| routed_keys.value(i));
                assert_eq!(routed_key, key, "keys travel with their rows");
                assert_eq!(*core_of_key.entry(key).or_insert(core), core);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..200).collect::<Vec<i64>>());
        assert!(
            core_of_key
                .values()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 1
        );
        // The same keys in another batch go to the same cores.
        let again = router.route(&batch(&[Some("a"), None, Some("f")])).unwrap();
        for (core, part) in again.iter().enumerate() {
            let Some(part) = part else { continue };
            let routed_keys = part.keys[0].as_string::<i32>();
            for i in 0..part.batch.num_rows() {
                let key = routed_keys.is_valid(i).then(|| routed_keys.value(i));
                assert_eq!(core_of_key[&key], core);
            }
        }
    }

    #[test]
    fn rows_without_keys_all_go_to_the_first_core() {
        let input = batch(&[Some("a"), Some("b")]);
        let routed = Router::new(vec![], 4).route(&input).unwrap();
        assert_eq!(routed[0].as_ref().map(|r| r.batch.num_rows()), Some(2));
        assert!(routed[1..].iter().all(Option::is_none));
    }

    #[test]
    fn a_column_of_nulls_stays_nulls_of_each_part_length() {
        let input = batch(&[Some("a"), Some("b"), Some("c"), Some("d"), Some("e")]);
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("unread", DataType::Utf8, true),
        ]));
        let with_nulls = RecordBatch::try_new(
            schema,
            vec![
                Arc::clone(input.column(0)),
                new_null_array(&DataType::Utf8, input.num_rows()),
            ],
        )
        .unwrap();
        let key = col("k", &with_nulls.schema()).unwrap();
        let parts = Router::new(vec![Operand::new(key)], 2)
            .route(&with_nulls)
            .unwrap();
        let mut rows = 0;
        for part in parts.iter().flatten() {
            let unread = part.batch.column(1);
            assert_eq!(unread.len(), part.batch.num_rows());
            assert_eq!(unread.null_count(), unread.len());
            assert_eq!(unread.data_type(), &DataType::Utf8);
            rows += part.batch.num_rows();
        }
        assert_eq!(rows, 5);
        assert_eq!(parts.iter().flatten().count(), 2, "both cores get rows");
    }
}
