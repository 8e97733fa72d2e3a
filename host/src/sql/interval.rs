//! `INTERVAL '10' SECOND` and friends as a number of milliseconds, via DataFusion.

use datafusion_common::{DFSchema, ScalarValue};
use datafusion_expr::Expr;
use datafusion_sql::planner::{PlannerContext, SqlToRel};
use datafusion_sql::sqlparser::ast;

use super::context::PlanningContext;
use crate::error::{Error, Result};

/// The length of a constant SQL interval in whole milliseconds.
pub(crate) fn interval_millis(context: &PlanningContext, sql: &ast::Expr) -> Result<i64> {
    let planner = SqlToRel::new(context);
    let expr = planner.sql_to_expr(sql.clone(), &DFSchema::empty(), &mut PlannerContext::new())?;
    let not_interval = || {
        Error::plan(format!(
            "expected a constant interval such as INTERVAL '10' SECOND, got {sql}"
        ))
    };
    let Expr::Literal(value, _) = expr else {
        return Err(not_interval());
    };
    let (months, days, nanos) = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) => (v.months, v.days, v.nanoseconds),
        ScalarValue::IntervalDayTime(Some(v)) => (0, v.days, i64::from(v.milliseconds) * 1_000_000),
        ScalarValue::IntervalYearMonth(Some(m)) => (m, 0, 0),
        _ => return Err(not_interval()),
    };
    if months != 0 {
        return Err(Error::plan(format!(
            "interval {sql} has months or years, which have no fixed length; use DAY, HOUR, MINUTE or SECOND"
        )));
    }
    if nanos % 1_000_000 != 0 {
        return Err(Error::plan(format!(
            "interval {sql} is not a whole number of milliseconds"
        )));
    }
    i64::from(days)
        .checked_mul(86_400_000)
        .and_then(|d| d.checked_add(nanos / 1_000_000))
        .ok_or_else(|| Error::plan(format!("interval {sql} is too large")))
}
