//! Operators of a pipeline: stateless filter and projection, and the window aggregate.

mod filter;
mod group_table;
mod operand;
mod project;
mod sessions;
mod window_aggregate;

pub use filter::FilterOperator;
pub use operand::Operand;
pub use project::ProjectOperator;
pub use window_aggregate::{
    AggregateCall, GroupColumn, ReplaceJob, Replacement, WindowAggregate, WindowSnapshot,
};

use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// A stateless, batch-at-a-time transformation.
pub trait Operator: Send + std::fmt::Debug {
    /// Transforms one batch (the result may have fewer rows, or none).
    fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch>;
}

/// Maps an error raised while evaluating an expression over data.
pub(crate) fn execution_error(err: datafusion_common::DataFusionError) -> crate::Error {
    crate::Error::Execution(crate::error::one_line(&err.strip_backtrace()))
}
