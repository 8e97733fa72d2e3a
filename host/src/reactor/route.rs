//! Routing: which core owns each row. The GROUP BY key expressions are evaluated once per
//! row here, hashed, and the row goes to the core the hash picks with its evaluated keys, so
//! the window aggregate on that core does not evaluate them again.
//!
//! The hash is a fixed function of the key values (DataFusion's `create_hashes` with a
//! fixed seed), so a group always lands on the same core, in a run and after a restart
//! with the same core count; a checkpoint's groups are routed by the same function.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::{take, take_record_batch};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_common::hash_utils::{create_hashes, RandomState};

use crate::error::Result;
use crate::nulls::NullColumns;
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
    /// The columns the cores read besides the keys (sorted); the others are not copied.
    read: Vec<usize>,
    cores: usize,
    hashes: Vec<u64>,
    /// The rows of the batch being routed, core by core (see [`RowsByCore`]).
    by_core: RowsByCore,
    nulls: NullColumns,
}

impl Router {
    /// A router over `cores` cores (at least one) for rows keyed by `keys`, whose cores
    /// read the columns `read` of each batch besides the keys.
    pub(crate) fn new(keys: Vec<Operand>, mut read: Vec<usize>, cores: usize) -> Self {
        let cores = cores.max(1);
        read.sort_unstable();
        read.dedup();
        Self {
            keys,
            read,
            cores,
            hashes: Vec::new(),
            by_core: RowsByCore::default(),
            nulls: NullColumns::default(),
        }
    }

    /// The rows of `batch` for each core (`None` where a core gets none), in their order:
    /// every row, or only the rows `selected` (ascending) where it is given. A column the
    /// cores do not read is NULL in what they get.
    pub(crate) fn route(
        &mut self,
        batch: &RecordBatch,
        selected: Option<&[u32]>,
    ) -> Result<Vec<Option<Routed>>> {
        if let Some(rows) = selected {
            // A key expression may fail on a row that is not selected (a late row's CAST):
            // evaluate it over the selected rows alone.
            if !self.keys.iter().all(Operand::is_column) {
                let batch = take_record_batch(batch, &UInt32Array::from(rows.to_vec()))?;
                return self.route(&batch, None);
            }
        }
        let keys = self
            .keys
            .iter()
            .map(|key| key.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        self.partition(batch, keys, selected, false)
    }

    /// Splits rows whose key columns are `keys` (a snapshot's groups, on restore), every
    /// column copied.
    pub(crate) fn split(
        &mut self,
        batch: &RecordBatch,
        keys: Vec<ArrayRef>,
    ) -> Result<Vec<Option<Routed>>> {
        self.partition(batch, keys, None, true)
    }

    /// The rows of `batch` (those `selected`, where given) for each core, keyed by `keys`;
    /// `every_column`: copy the columns the cores do not read too.
    fn partition(
        &mut self,
        batch: &RecordBatch,
        keys: Vec<ArrayRef>,
        selected: Option<&[u32]>,
        every_column: bool,
    ) -> Result<Vec<Option<Routed>>> {
        let rows = selected.map_or(batch.num_rows(), <[u32]>::len);
        let mut out: Vec<Option<Routed>> = (0..self.cores).map(|_| None).collect();
        if rows == 0 {
            return Ok(out);
        }
        // The core that gets every row, if one does.
        let whole = if keys.is_empty() || self.cores == 1 {
            // No key columns: one group per window, so every row goes to one core (a whole
            // batch goes as it is, below).
            if let Some(selected) = selected {
                self.by_core.all_to_first(selected, self.cores);
            }
            Some(0)
        } else {
            self.hashes.clear();
            self.hashes.resize(batch.num_rows(), 0);
            create_hashes(
                &keys,
                &RandomState::with_seed(ROUTING_SEED),
                &mut self.hashes,
            )?;
            self.by_core.split(&self.hashes, selected, self.cores);
            (0..self.cores).find(|&core| self.by_core.rows(core).len() == rows)
        };
        if let (Some(core), None) = (whole, selected) {
            // Every row of the batch is this core's: the batch as it is, no copy.
            out[core] = Some(Routed {
                batch: batch.clone(),
                keys,
            });
            return Ok(out);
        }
        for (core, part) in out.iter_mut().enumerate() {
            let rows = self.by_core.rows(core);
            if rows.is_empty() {
                continue;
            }
            let indices = UInt32Array::from(rows.to_vec());
            let taken_keys = keys
                .iter()
                .map(|k| take(k.as_ref(), &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let read = (!every_column).then_some(self.read.as_slice());
            *part = Some(Routed {
                batch: take_rows(batch, &indices, &keys, &taken_keys, read, &mut self.nulls)?,
                keys: taken_keys,
            });
        }
        Ok(out)
    }
}

/// Core counts up to which [`RowsByCore::split`] places the rows with one pass over them a
/// core rather than a counting sort.
const PASSES_UP_TO: usize = 4;

/// Row numbers grouped by core, each core's in their order, in one reused buffer: a pass a
/// core for a few cores, a counting sort for more (no growing vector per core, whose length
/// each push would load and store again).
#[derive(Debug, Default)]
struct RowsByCore {
    /// The core of each routed row, in row order.
    core_of_row: Vec<u32>,
    /// Where each core's rows start in `rows`, and (last) their end.
    starts: Vec<usize>,
    /// The next free slot of each core while the rows are placed.
    next: Vec<usize>,
    /// The rows, core by core.
    rows: Vec<u32>,
}

impl RowsByCore {
    /// The rows of core `core`, ascending.
    fn rows(&self, core: usize) -> &[u32] {
        &self.rows[self.starts[core]..self.starts[core + 1]]
    }

    /// The rows `selected` all to the first core.
    fn all_to_first(&mut self, selected: &[u32], cores: usize) {
        self.rows.clear();
        self.rows.extend_from_slice(selected);
        self.starts.clear();
        self.starts.push(0);
        self.starts.resize(cores + 1, self.rows.len());
    }

    /// Each row of a batch whose keys hash to `hashes` (every row, or those `selected`)
    /// to the core its hash picks.
    fn split(&mut self, hashes: &[u64], selected: Option<&[u32]>, cores: usize) {
        self.core_of_row.clear();
        match selected {
            Some(selected) => self.core_of_row.extend(
                selected
                    .iter()
                    .map(|&row| core_of(hashes[row as usize], cores) as u32),
            ),
            None => self
                .core_of_row
                .extend(hashes.iter().map(|&hash| core_of(hash, cores) as u32)),
        }
        if cores <= PASSES_UP_TO {
            self.split_by_passes(selected, cores);
            return;
        }
        self.starts.clear();
        self.starts.resize(cores + 1, 0);
        let starts = &mut self.starts[..];
        for &core in &self.core_of_row {
            starts[core as usize + 1] += 1;
        }
        for core in 0..cores {
            starts[core + 1] += starts[core];
        }
        self.next.clear();
        self.next.extend_from_slice(&self.starts[..cores]);
        self.rows.clear();
        self.rows.resize(self.core_of_row.len(), 0);
        // Plain slices, so their addresses stay in registers across the stores.
        let (core_of_row, rows, next) = (
            &self.core_of_row[..],
            &mut self.rows[..],
            &mut self.next[..],
        );
        let mut place = |index: usize, row: u32| {
            let core = core_of_row[index] as usize;
            rows[next[core]] = row;
            next[core] += 1;
        };
        match selected {
            Some(selected) => selected
                .iter()
                .enumerate()
                .for_each(|(index, &row)| place(index, row)),
            None => (0..self.core_of_row.len()).for_each(|row| place(row, row as u32)),
        }
    }

    /// Places the rows of `core_of_row` (those `selected`, where given) core by core, one
    /// pass a core: every row is written at the core's next slot and the slot moves on
    /// only for the core's own rows, so the position stays in a register and nothing
    /// branches on the row (a counting sort instead loads and stores a per-core counter
    /// for every row, one after another).
    fn split_by_passes(&mut self, selected: Option<&[u32]>, cores: usize) {
        let count = self.core_of_row.len();
        self.starts.clear();
        self.rows.clear();
        // One slot past the end: the last pass writes there once every row is placed.
        self.rows.resize(count + 1, 0);
        let (core_of_row, rows) = (&self.core_of_row[..], &mut self.rows[..]);
        let mut at = 0;
        for core in 0..cores as u32 {
            self.starts.push(at);
            match selected {
                Some(selected) => {
                    for (&owner, &row) in core_of_row.iter().zip(selected) {
                        rows[at] = row;
                        at += usize::from(owner == core);
                    }
                }
                None => {
                    for (row, &owner) in core_of_row.iter().enumerate() {
                        rows[at] = row as u32;
                        at += usize::from(owner == core);
                    }
                }
            }
        }
        self.starts.push(at);
        self.rows.truncate(count);
    }
}

/// The core of a row whose key hashes to `hash`: the hash scaled to `0..cores` by a
/// multiply and a shift (its high bits pick the core), not a division a row.
fn core_of(hash: u64, cores: usize) -> usize {
    ((u128::from(hash) * cores as u128) >> 64) as usize
}

/// The rows of `batch` at `indices`. A column that is one of the key columns `keys` (a
/// GROUP BY of a plain column, or of the window bounds) is the rows already taken of it,
/// `taken_keys`, rather than a second copy. A column that is all NULL (one the source does
/// not decode because the query never reads it), or that is not among the columns `read`
/// (when given) and may hold NULLs, becomes a NULL column of the new length without
/// looking at each row.
fn take_rows(
    batch: &RecordBatch,
    indices: &UInt32Array,
    keys: &[ArrayRef],
    taken_keys: &[ArrayRef],
    read: Option<&[usize]>,
    nulls: &mut NullColumns,
) -> Result<RecordBatch> {
    let schema = batch.schema();
    let columns = batch
        .columns()
        .iter()
        .enumerate()
        .map(|(index, column)| {
            let unread = read.is_some_and(|read| read.binary_search(&index).is_err())
                && schema.field(index).is_nullable();
            if let Some(key) = keys.iter().position(|key| Arc::ptr_eq(key, column)) {
                Ok(Arc::clone(&taken_keys[key]))
            } else if unread || column.null_count() == column.len() {
                Ok(nulls.get(index, column.data_type(), indices.len()))
            } else {
                take(column.as_ref(), indices, None)
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(indices.len()));
    Ok(RecordBatch::try_new_with_options(
        schema, columns, &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{new_null_array, Array, AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion_physical_expr::expressions::col;
    use std::sync::Arc;

    fn batch(keys: &[Option<&str>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("i", DataType::Int64, true),
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
        let mut router = Router::new(vec![Operand::new(key)], vec![1], 3);
        let routed = router.route(&input, None).unwrap();
        let mut seen = Vec::new();
        let mut core_of_key = std::collections::HashMap::new();
        for (core, part) in routed.iter().enumerate() {
            let Some(part) = part else { continue };
            let rows = part.batch.column(1).as_primitive::<Int64Type>();
            assert!(rows.values().windows(2).all(|w| w[0] < w[1]), "order kept");
            assert!(
                Arc::ptr_eq(&part.keys[0], part.batch.column(0)),
                "a key that is a column is copied once"
            );
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
        let again = router
            .route(&batch(&[Some("a"), None, Some("f")]), None)
            .unwrap();
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
        let routed = Router::new(vec![], vec![0, 1], 4)
            .route(&input, None)
            .unwrap();
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
        let parts = Router::new(vec![Operand::new(key)], vec![1], 2)
            .route(&with_nulls, None)
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

    #[test]
    fn only_the_selected_rows_are_routed_and_unread_columns_are_not_copied() {
        let keys: Vec<Option<&str>> = (0..50).map(|i| Some(["a", "b", "c", "d"][i % 4])).collect();
        let input = batch(&keys);
        let key = col("k", &input.schema()).unwrap();
        let selected: Vec<u32> = (0..50).filter(|i| i % 3 != 0).collect();
        for read in [vec![1], vec![]] {
            let mut router = Router::new(vec![Operand::new(key.clone())], read.clone(), 2);
            let parts = router.route(&input, Some(&selected)).unwrap();
            let mut seen = Vec::new();
            for part in parts.iter().flatten() {
                let rows = part.batch.column(1);
                if read.is_empty() {
                    assert_eq!(rows.null_count(), rows.len(), "an unread column is NULL");
                    seen.extend(
                        part.keys[0]
                            .as_string::<i32>()
                            .iter()
                            .map(|k| k.unwrap().to_owned()),
                    );
                    continue;
                }
                let rows = rows.as_primitive::<Int64Type>();
                assert!(rows.values().windows(2).all(|w| w[0] < w[1]), "order kept");
                for (i, row) in rows.values().iter().enumerate() {
                    assert_eq!(
                        part.keys[0].as_string::<i32>().value(i),
                        keys[*row as usize].unwrap()
                    );
                    seen.push(row.to_string());
                }
            }
            assert_eq!(seen.len(), selected.len(), "every selected row, once");
            if !read.is_empty() {
                let mut seen: Vec<u32> = seen.iter().map(|r| r.parse().unwrap()).collect();
                seen.sort_unstable();
                assert_eq!(seen, selected);
            }
        }
        // Rows that all go to one core are still only the selected ones.
        let one = batch(&[Some("a"); 10]);
        let mut router = Router::new(vec![Operand::new(key)], vec![1], 2);
        let parts = router.route(&one, Some(&[2, 5])).unwrap();
        let part = parts.iter().flatten().next().unwrap();
        assert_eq!(
            part.batch.column(1).as_primitive::<Int64Type>().values(),
            &[2, 5]
        );
        assert_eq!(parts.iter().flatten().count(), 1);
    }

    #[test]
    fn rows_are_placed_by_core_in_order_at_every_core_count_with_or_without_a_selection() {
        // Both placements (a pass a core up to PASSES_UP_TO cores, a counting sort above)
        // against a plain filter of the rows by their core.
        let hashes: Vec<u64> = (0..500u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 17))
            .collect();
        let selected: Vec<u32> = (0..500).filter(|i| i % 3 != 1).collect();
        for cores in 1..=PASSES_UP_TO + 5 {
            for selection in [None, Some(&selected[..]), Some(&selected[..0])] {
                let mut by_core = RowsByCore::default();
                by_core.split(&hashes, selection, cores);
                let rows: Vec<u32> = selection.map_or_else(|| (0..500).collect(), <[u32]>::to_vec);
                for core in 0..cores {
                    let want: Vec<u32> = rows
                        .iter()
                        .copied()
                        .filter(|&row| core_of(hashes[row as usize], cores) == core)
                        .collect();
                    assert_eq!(by_core.rows(core), &want[..], "{cores} cores, core {core}");
                }
                assert_eq!(by_core.rows.len(), rows.len());
            }
        }
    }
}
