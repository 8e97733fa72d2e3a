//! The SQL surface: a script parser for Laminar's streaming DDL on top of sqlparser,
//! rewriting of the window forms (TUMBLE, HOP, CUMULATE, SESSION) into plain columns, and DataFusion's planner context.

mod context;
mod ddl;
mod ident;
mod interval;
mod parser;
mod relations;
mod types;
mod window_rewrite;

pub(crate) use context::PlanningContext;
pub(crate) use ddl::WithOptions;
pub use ddl::{Connector, FormatKind, OnError, SinkDef, SourceDef, SourceOptions};
pub(crate) use ident::{ident_for, normalize_name_text, normalize_object_name};
pub(crate) use parser::{parse_script, QueryStatement, Statement};
pub(crate) use relations::relations_read;
pub(crate) use window_rewrite::{rewrite_windows, WindowClause, WINDOW_END, WINDOW_START};
