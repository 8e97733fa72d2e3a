//! An operand of an operator: an expression over the input batch, read straight from the
//! batch where it is nothing but a column.

use arrow::array::ArrayRef;
use arrow::record_batch::RecordBatch;
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::PhysicalExpr;
use std::sync::Arc;

use super::execution_error;
use crate::error::Result;

/// An expression an operator evaluates over each input batch (a GROUP BY key, the window
/// bound, an aggregate's argument).
#[derive(Debug, Clone)]
pub struct Operand {
    expr: Arc<dyn PhysicalExpr>,
    /// The column `expr` reads, where it is nothing but a column.
    column: Option<usize>,
}

impl Operand {
    /// The operand `expr`.
    pub fn new(expr: Arc<dyn PhysicalExpr>) -> Self {
        let column = expr.downcast_ref::<Column>().map(Column::index);
        Self { expr, column }
    }

    /// The expression.
    pub fn expr(&self) -> &Arc<dyn PhysicalExpr> {
        &self.expr
    }

    /// Whether the operand is nothing but a column (its evaluation cannot fail on a row).
    pub fn is_column(&self) -> bool {
        self.column.is_some()
    }

    /// Its value for every row of `batch`: the batch's own column where the operand is
    /// one, without evaluating anything.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        match self.column {
            Some(index) if index < batch.num_columns() => Ok(Arc::clone(batch.column(index))),
            _ => self
                .expr
                .evaluate(batch)
                .and_then(|v| v.into_array(batch.num_rows()))
                .map_err(execution_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use datafusion_expr::Operator as BinaryOp;
    use datafusion_physical_expr::expressions::{binary, col, lit};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Int64Array::from(vec![10, 20, 30])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn a_column_is_the_batch_column_itself() {
        let batch = batch();
        let operand = Operand::new(col("b", &batch.schema()).expect("b"));
        let value = operand.evaluate(&batch).expect("evaluate");
        assert!(Arc::ptr_eq(&value, batch.column(1)));
    }

    #[test]
    fn an_expression_is_evaluated_row_by_row() {
        let batch = batch();
        let schema = batch.schema();
        let sum = binary(
            col("a", &schema).expect("a"),
            BinaryOp::Plus,
            lit(100i64),
            &schema,
        )
        .expect("a + 100");
        let value = Operand::new(sum).evaluate(&batch).expect("evaluate");
        assert_eq!(value.len(), 3);
        assert_eq!(value.as_primitive::<Int64Type>().values(), &[101, 102, 103]);
    }
}
