//! What makes a script able to scale out, checked before anything runs: one Kafka source
//! with `group_id`, every aggregate grouped by its `key_column`, every result going to a
//! sink; and the state dir layout of a scale-out run, which a one-process run refuses (and
//! the other way round).

use std::path::Path;

use datafusion_sql::sqlparser::ast;

use super::super::dataflow::{Output, PlannedQuery};
use super::super::Engine;
use crate::error::{Error, Result};
use crate::kafka::KafkaSourceOptions;
use crate::sql::{normalize_name_text, Connector};

/// The scale-out state dir layout is `partitions/<p>/`; a one-process run's state dir
/// holds its fingerprint at the top. Each refuses the other's.
pub(in crate::engine) fn check_layout(
    storage: &dyn crate::storage::Storage,
    dir: &Path,
    scaled: bool,
) -> Result<()> {
    let (marker, message) = match scaled {
        true => (
            dir.join("fingerprint"),
            "it holds the state of a one-process run; a scale-out run (group_id) keeps its state per partition, so give it another --state-dir",
        ),
        false => (
            dir.join("partitions"),
            "it holds the state of a scale-out run (a source with group_id); run the same script with it, or give this run another --state-dir",
        ),
    };
    let exists = storage
        .exists(&marker)
        .map_err(|e| Error::io(format!("cannot read state dir {}", dir.display()), e))?;
    match exists {
        true => Err(Error::StateDir {
            dir: dir.display().to_string(),
            message: message.into(),
        }),
        false => Ok(()),
    }
}

impl Engine {
    /// The options of the script's scale-out source (one with `group_id`), after checking
    /// that the script can scale out: one source, every aggregate grouped by the source's
    /// `key_column`, every result going to a sink. `None`: not a scale-out script.
    pub(in crate::engine) fn scale_out_source(
        &self,
        planned: &[PlannedQuery],
    ) -> Result<Option<KafkaSourceOptions>> {
        let mut roots: Vec<&str> = planned.iter().map(|q| q.root(planned)).collect();
        roots.sort_unstable();
        roots.dedup();
        let grouped =
            roots
                .iter()
                .find_map(|name| match &self.sources.get(*name)?.options.connector {
                    Connector::KafkaSource(options) if options.group_id.is_some() => {
                        Some((*name, options.as_ref().clone()))
                    }
                    _ => None,
                });
        let Some((name, options)) = grouped else {
            return Ok(None);
        };
        if roots.len() > 1 {
            return Err(Error::unsupported(
                format!("source '{name}' with group_id beside other sources in one script"),
                "a scale-out script reads one Kafka source with group_id; run the other sources in a script of their own",
            ));
        }
        let key = options.metadata.key.as_deref().map(normalize_name_text);
        for query in planned {
            let at = |e: Error| e.at(query.location);
            if query.output == Output::Default {
                return Err(at(Error::plan(format!(
                    "source '{name}' has group_id, so each process of the group computes the results of its own partitions: write them with INSERT INTO a sink (a file sink writes one file per partition), not to stdout"
                ))));
            }
            if query.compiled.aggregate.is_none() {
                continue;
            }
            let Some(key) = &key else {
                return Err(at(Error::plan(format!(
                    "source '{name}' has group_id, so its partitions are aggregated by different processes: declare key_column, the column the producer keys messages by, and GROUP BY it, so that every group lives in one partition"
                ))));
            };
            if !groups_by(&query.statement.query, key) {
                return Err(at(Error::plan(format!(
                    "source '{name}' has group_id, so its partitions are aggregated by different processes: GROUP BY must include its key_column '{key}', or a group would be split between partitions and its results would be wrong"
                ))));
            }
        }
        Ok(Some(options))
    }
}

/// Whether `query`'s GROUP BY names column `key`.
fn groups_by(query: &ast::Query, key: &str) -> bool {
    let ast::SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let ast::GroupByExpr::Expressions(expressions, _) = &select.group_by else {
        return false;
    };
    expressions.iter().any(|e| match e {
        ast::Expr::Identifier(ident) => normalize_name_text(&ident.to_string()) == key,
        ast::Expr::CompoundIdentifier(parts) => parts
            .last()
            .is_some_and(|ident| normalize_name_text(&ident.to_string()) == key),
        _ => false,
    })
}
