//! The catalog DataFusion's SQL planner sees: the sources of one query, the built-in
//! scalar functions and aggregates.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{plan_err, Result as DfResult, TableReference};
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{AggregateUDF, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF};

/// Planner context for one statement.
pub(crate) struct PlanningContext {
    tables: HashMap<String, SchemaRef>,
    scalars: HashMap<String, Arc<ScalarUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
    options: ConfigOptions,
}

impl PlanningContext {
    /// A context with DataFusion's built-in functions and no tables.
    pub(crate) fn new() -> Self {
        let mut scalars = HashMap::new();
        for f in datafusion_functions::all_default_functions() {
            for alias in f.aliases() {
                scalars.insert(alias.clone(), Arc::clone(&f));
            }
            scalars.insert(f.name().to_string(), f);
        }
        let mut aggregates = HashMap::new();
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            for alias in f.aliases() {
                aggregates.insert(alias.clone(), Arc::clone(&f));
            }
            aggregates.insert(f.name().to_string(), f);
        }
        let planners: Vec<Arc<dyn ExprPlanner>> = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
        ];
        let mut options = ConfigOptions::default();
        options.sql_parser.map_string_types_to_utf8view = false;
        Self {
            tables: HashMap::new(),
            scalars,
            aggregates,
            planners,
            options,
        }
    }

    /// Makes `name` resolvable with the given schema.
    pub(crate) fn add_table(&mut self, name: &str, schema: SchemaRef) {
        self.tables.insert(name.to_string(), schema);
    }

    /// Makes a user-defined aggregate callable; it shadows a built-in of the same name.
    pub(crate) fn add_aggregate(&mut self, udaf: Arc<AggregateUDF>) {
        self.aggregates.insert(udaf.name().to_string(), udaf);
    }

    /// Makes a user-defined scalar function callable; it shadows a built-in of the same
    /// name.
    pub(crate) fn add_scalar(&mut self, udf: Arc<ScalarUDF>) {
        self.scalars.insert(udf.name().to_string(), udf);
    }

    /// Whether `name` (lower case) is a scalar function or an aggregate it can call.
    pub(crate) fn knows_function(&self, name: &str) -> bool {
        self.scalars.contains_key(name) || self.aggregates.contains_key(name)
    }

    /// Planner options.
    pub(crate) fn config(&self) -> &ConfigOptions {
        &self.options
    }
}

impl ContextProvider for PlanningContext {
    fn get_table_source(&self, name: TableReference) -> DfResult<Arc<dyn TableSource>> {
        match self.tables.get(name.table()) {
            Some(schema) => Ok(Arc::new(LogicalTableSource::new(Arc::clone(schema)))),
            None => {
                let mut known: Vec<_> = self.tables.keys().cloned().collect();
                known.sort();
                plan_err!(
                    "unknown source or stream '{}'; declared: {}",
                    name.table(),
                    if known.is_empty() {
                        "none (use CREATE SOURCE)".to_string()
                    } else {
                        known.join(", ")
                    }
                )
            }
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalars.get(name).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregates.get(name).cloned()
    }

    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.scalars.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.aggregates.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
}
