//! From a parsed query to a pipeline: DataFusion plans the SQL, we compile its logical
//! plan into our operator chain and reject the shapes a stream cannot run.

mod compile;
mod query;

pub(crate) use compile::CompiledQuery;
pub(crate) use query::plan_query;
