//! The relations (sources and streams) a query reads, the table-valued windows' tables
//! (`FROM TUMBLE(TABLE s, …)`) among them.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    self, Expr, FunctionArg, FunctionArgExpr, TableFactor, Visit, Visitor,
};

use super::ident::normalize_object_name;

/// The names of every relation `query` reads, normalized as SQL identifiers, in the order
/// they appear (a name may repeat).
pub(crate) fn relations_read(query: &ast::Query) -> Vec<String> {
    let mut collector = Collector::default();
    let _ = query.visit(&mut collector);
    collector.names
}

#[derive(Default)]
struct Collector {
    names: Vec<String>,
}

impl Visitor for Collector {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, args, .. } = factor else {
            return ControlFlow::Continue(());
        };
        match args {
            // A table-valued window: its first argument names the table it reads.
            Some(args) => {
                if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(expr))) = args.args.first() {
                    match expr {
                        Expr::Identifier(ident) => {
                            self.names
                                .push(normalize_object_name(&ast::ObjectName::from(vec![
                                    ident.clone()
                                ])))
                        }
                        Expr::CompoundIdentifier(parts) => self
                            .names
                            .push(normalize_object_name(&ast::ObjectName::from(parts.clone()))),
                        _ => {}
                    }
                }
            }
            None => self.names.push(normalize_object_name(name)),
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{parse_script, PlanningContext, Statement};

    fn read_by(sql: &str) -> Vec<String> {
        let statements = parse_script(sql, &PlanningContext::new()).expect("parses");
        match &statements[0].1 {
            Statement::Query(q) => relations_read(&q.query),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_and_table_valued_references_are_both_found() {
        assert_eq!(read_by("SELECT a FROM Bids"), vec!["bids"]);
        assert_eq!(
            read_by(
                "SELECT window_start, COUNT(*) FROM TUMBLE(TABLE clean, DESCRIPTOR(ts), INTERVAL '1' SECOND) GROUP BY window_start, window_end"
            ),
            vec!["clean"]
        );
        assert_eq!(
            read_by("SELECT a FROM (SELECT a FROM \"Inner\") AS x"),
            vec!["Inner"]
        );
    }
}
