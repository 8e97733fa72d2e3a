//! SELECT lists: evaluates one expression per output column.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_physical_expr::PhysicalExpr;

use super::{execution_error, Operator};
use crate::error::Result;

/// Computes a new batch from expressions over the input batch.
#[derive(Debug)]
pub struct ProjectOperator {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    schema: SchemaRef,
}

impl ProjectOperator {
    /// A projection producing `schema` (one field per expression).
    pub fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Self {
        Self { exprs, schema }
    }
}

impl Operator for ProjectOperator {
    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let columns = self
            .exprs
            .iter()
            .map(|e| e.evaluate(&batch).and_then(|v| v.into_array(rows)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(execution_error)?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }
}
