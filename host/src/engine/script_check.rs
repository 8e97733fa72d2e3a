//! Checks a whole script before any statement runs, for shapes that would lose data: a
//! late sink written by two queries, or one sink receiving both results and late rows
//! (their columns differ), a file sink on a path the script reads or another sink writes
//! (the run would replace its own input), and two sources reading stdin (there is one);
//! and a file sink whose directory is missing or whose path is a directory. Each is an
//! error naming `script:line:column`, found before a single input row is read. (Several
//! queries may `INSERT INTO` one sink: the dataflow appends each query's rows to it.)

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use datafusion_sql::sqlparser::ast;

use crate::error::{Error, Result, SqlLocation};
use crate::sql::{Connector, QueryStatement, Statement};

/// The checks of the module docs over the parsed `statements`.
pub(super) fn check_script(statements: &[(SqlLocation, Statement)]) -> Result<()> {
    let mut sources = HashMap::new();
    let mut sinks = HashMap::new();
    let mut streams: HashMap<String, &ast::Query> = HashMap::new();
    // Each sink's first writer, and whether it writes late rows.
    let mut writers: HashMap<&str, (SqlLocation, bool)> = HashMap::new();
    let mut stdin_reader: HashMap<String, SqlLocation> = HashMap::new();
    let mut paths: HashMap<PathBuf, String> = HashMap::new();
    for (i, (location, statement)) in statements.iter().enumerate() {
        let at = |e: Error| e.at(*location);
        match statement {
            Statement::CreateSource(def) => {
                if let Connector::File(path) = &def.options.connector {
                    if let Some(other) = paths.get(&comparable(path)).filter(|o| o.contains("sink"))
                    {
                        return Err(at(Error::plan(format!(
                            "source '{}' reads {}, and {other}: the run would destroy its own input; write the results to another file",
                            def.name,
                            path.display()
                        ))));
                    }
                    paths.insert(comparable(path), format!("source '{}' reads it", def.name));
                }
                sources.insert(def.name.clone(), def);
            }
            Statement::CreateSink(def) => {
                if let Connector::File(path) = &def.connector {
                    if let Some(other) = paths.get(&comparable(path)) {
                        return Err(at(Error::plan(format!(
                            "sink '{}' writes {}, and {other}: the run would destroy it; write the results to another file",
                            def.name,
                            path.display()
                        ))));
                    }
                    check_sink_path(&def.name, path).map_err(at)?;
                    paths.insert(comparable(path), format!("sink '{}' writes it", def.name));
                }
                sinks.insert(def.name.clone(), def);
            }
            Statement::CreateStream { name, query } => {
                streams.insert(name.clone(), &query.query);
                if !super::read_later(name, &statements[i + 1..]) {
                    check_query(query, *location, &streams, &sources, &mut stdin_reader)?;
                }
            }
            Statement::Query(query) => {
                let late = query.late_sink.iter().map(|s| (s, true));
                for (sink, late) in query.sink.iter().map(|s| (s, false)).chain(late) {
                    match writers.get(sink.as_str()) {
                        Some((first, false)) if !late => {}
                        Some((first, _)) => {
                            return Err(at(Error::plan(format!(
                                "sink '{sink}' is written by the query at line {}, column {} already: late rows need a sink of their own (their columns are the source's); give LATE DATA TO its own sink",
                                first.line, first.column
                            ))));
                        }
                        None => {
                            writers.insert(sink, (*location, late));
                        }
                    }
                }
                check_query(query, *location, &streams, &sources, &mut stdin_reader)?;
            }
            Statement::CreateAggregate { .. } => {}
        }
    }
    Ok(())
}

/// One source of the script may read stdin (any number of queries may read that source).
fn check_query(
    query: &QueryStatement,
    location: SqlLocation,
    streams: &HashMap<String, &ast::Query>,
    sources: &HashMap<String, &crate::sql::SourceDef>,
    stdin_reader: &mut HashMap<String, SqlLocation>,
) -> Result<()> {
    let mut read = HashSet::new();
    relations_read(&query.query, streams, &mut read, 0);
    for name in read {
        let Some(def) = sources.get(&name) else {
            continue;
        };
        if !matches!(def.options.connector, Connector::Stdio) {
            continue;
        }
        if let Some((other, first)) = stdin_reader.iter().find(|(other, _)| **other != name) {
            return Err(Error::plan(format!(
                "source '{name}' reads stdin, which source '{other}' (read by the query at line {}, column {}) reads already: there is one stdin; declare one source over it and read that in every query",
                first.line, first.column
            ))
            .at(location));
        }
        stdin_reader.entry(name.clone()).or_insert(location);
    }
    Ok(())
}

/// The sources and streams `query` reads, through the streams it reads.
fn relations_read(
    query: &ast::Query,
    streams: &HashMap<String, &ast::Query>,
    read: &mut HashSet<String>,
    depth: usize,
) {
    for name in crate::sql::relations_read(query) {
        if let Some(stream) = streams.get(&name) {
            if depth < 16 {
                relations_read(stream, streams, read, depth + 1);
            }
        }
        read.insert(name);
    }
}

/// A file sink's path must name a file in a directory that exists: found before the run,
/// not after the whole input was processed.
fn check_sink_path(sink: &str, path: &Path) -> Result<()> {
    if path.is_dir() {
        return Err(Error::plan(format!(
            "sink '{sink}' writes {}, which is a directory; name a file",
            path.display()
        )));
    }
    let parent = crate::storage::parent_of(path);
    if !parent.is_dir() {
        return Err(Error::plan(format!(
            "sink '{sink}' writes {}, but the directory {} does not exist; create it first",
            path.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// A path as it can be compared with another: absolute, and resolved where it exists.
fn comparable(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}
