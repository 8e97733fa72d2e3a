//! WHERE and HAVING: keeps the rows whose predicate is TRUE (NULL counts as false).

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use datafusion_physical_expr::PhysicalExpr;

use super::{execution_error, Operator};
use crate::error::{Error, Result};

/// Evaluates a boolean expression and keeps the matching rows.
#[derive(Debug)]
pub struct FilterOperator {
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOperator {
    /// A filter keeping rows where `predicate` is true.
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        Self { predicate }
    }
}

impl Operator for FilterOperator {
    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mask = self
            .predicate
            .evaluate(&batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(execution_error)?;
        let mask = mask.as_boolean_opt().ok_or_else(|| {
            Error::Execution(format!(
                "filter predicate {} is not boolean",
                self.predicate
            ))
        })?;
        Ok(filter_record_batch(&batch, mask)?)
    }
}
