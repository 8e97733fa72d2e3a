//! Splits a SQL script into statements and parses Laminar's streaming DDL
//! (`CREATE SOURCE`, `CREATE SINK`, `CREATE STREAM`, `EMIT ON WINDOW CLOSE`) on top of
//! sqlparser; ordinary queries are left to sqlparser and DataFusion.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use datafusion_sql::sqlparser::ast::{self, BinaryOperator, Expr};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::keywords::Keyword;
use datafusion_sql::sqlparser::parser::{Parser, ParserError};
use datafusion_sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::context::PlanningContext;
use super::ddl::{SinkDef, SourceDef, WithOptions};
use super::ident::normalize_ident;
use super::interval::interval_millis;
use super::types::arrow_type;
use crate::error::{Error, Result, SqlLocation};
use crate::time::{EventTimeColumn, WatermarkSpec};

/// A query and where its rows go.
#[derive(Debug, Clone)]
pub(crate) struct QueryStatement {
    /// The SELECT.
    pub(crate) query: Box<ast::Query>,
    /// `INSERT INTO sink`, or `None` for the default output.
    pub(crate) sink: Option<String>,
    /// `EMIT ON WINDOW CLOSE LATE DATA TO sink`: where late rows go.
    pub(crate) late_sink: Option<String>,
}

/// One statement of a script.
#[derive(Debug, Clone)]
pub(crate) enum Statement {
    CreateSource(SourceDef),
    CreateSink(SinkDef),
    CreateStream {
        name: String,
        query: QueryStatement,
    },
    /// `CREATE AGGREGATE name FROM 'path.wasm'` or `CREATE FUNCTION name FROM …`: load a
    /// Wasm plugin (an aggregate or a scalar function) under `name`.
    CreateAggregate {
        name: String,
        path: String,
    },
    Query(QueryStatement),
}

/// Parses every statement of `sql`, each with the location where it starts.
pub(crate) fn parse_script(
    sql: &str,
    context: &PlanningContext,
) -> Result<Vec<(SqlLocation, Statement)>> {
    let sql = blank_table_keyword_in_tumble(sql)?;
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(&sql)
        .map_err(syntax_error)?;
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let next = parser.peek_token();
        if next.token == Token::EOF {
            break;
        }
        let location = SqlLocation {
            line: next.span.start.line,
            column: next.span.start.column,
        };
        let statement = parse_statement(&mut parser, context)
            .map_err(|e| at_end_if_unknown(e.at(location), &sql))?;
        statements.push((location, statement));
        let end = parser.peek_token();
        if end.token != Token::SemiColon && end.token != Token::EOF {
            return Err(Error::SqlSyntax {
                location: SqlLocation {
                    line: end.span.start.line,
                    column: end.span.start.column,
                },
                message: format!("expected ';' or end of script, found {}", end.token),
            });
        }
    }
    Ok(statements)
}

fn parse_statement(parser: &mut Parser<'_>, context: &PlanningContext) -> Result<Statement> {
    if is_word(parser, 0, "CREATE") {
        if is_word(parser, 1, "SOURCE") {
            parser.next_token();
            parser.next_token();
            return parse_create_source(parser, context).map(Statement::CreateSource);
        }
        if is_word(parser, 1, "SINK") {
            parser.next_token();
            parser.next_token();
            return parse_create_sink(parser).map(Statement::CreateSink);
        }
        if is_word(parser, 1, "STREAM") {
            parser.next_token();
            parser.next_token();
            let name = normalize_ident(&parser.parse_identifier().map_err(syntax_error)?);
            parser.expect_keyword(Keyword::AS).map_err(syntax_error)?;
            let query = parse_query(parser, None)?;
            return Ok(Statement::CreateStream { name, query });
        }
        if is_word(parser, 1, "AGGREGATE") || is_word(parser, 1, "FUNCTION") {
            parser.next_token();
            parser.next_token();
            let name = normalize_ident(&parser.parse_identifier().map_err(syntax_error)?);
            parser.expect_keyword(Keyword::FROM).map_err(syntax_error)?;
            let path = parser.parse_literal_string().map_err(syntax_error)?;
            return Ok(Statement::CreateAggregate { name, path });
        }
    }
    if is_word(parser, 0, "INSERT") {
        parser.next_token();
        parser.expect_keyword(Keyword::INTO).map_err(syntax_error)?;
        let sink = normalize_ident(&parser.parse_identifier().map_err(syntax_error)?);
        return parse_query(parser, Some(sink)).map(Statement::Query);
    }
    if is_word(parser, 0, "SELECT")
        || is_word(parser, 0, "WITH")
        || parser.peek_token().token == Token::LParen
    {
        return parse_query(parser, None).map(Statement::Query);
    }
    let next = parser.peek_token();
    Err(Error::SqlSyntax {
        location: SqlLocation {
            line: next.span.start.line,
            column: next.span.start.column,
        },
        message: format!(
            "expected CREATE SOURCE, CREATE SINK, CREATE STREAM, CREATE AGGREGATE, CREATE FUNCTION, INSERT INTO or SELECT, found {}",
            next.token
        ),
    })
}

fn parse_query(parser: &mut Parser<'_>, sink: Option<String>) -> Result<QueryStatement> {
    let query = parser.parse_query().map_err(syntax_error)?;
    let late_sink = parse_emit(parser)?;
    if late_sink.is_some() && late_sink == sink {
        return Err(Error::plan(format!(
            "LATE DATA TO {}: the late rows need a sink of their own, not the query's results sink; declare another with CREATE SINK",
            late_sink.unwrap_or_default()
        )));
    }
    Ok(QueryStatement {
        query,
        sink,
        late_sink,
    })
}

/// `EMIT ON WINDOW CLOSE [LATE DATA TO sink]`: the emit mode Laminar has, and where late
/// rows go; every other emit mode is rejected.
fn parse_emit(parser: &mut Parser<'_>) -> Result<Option<String>> {
    if !is_word(parser, 0, "EMIT") {
        return Ok(None);
    }
    parser.next_token();
    if is_word(parser, 0, "ON") && is_word(parser, 1, "WINDOW") && is_word(parser, 2, "CLOSE") {
        for _ in 0..3 {
            parser.next_token();
        }
        if is_word(parser, 0, "LATE") {
            parser.next_token();
            if !(is_word(parser, 0, "DATA") && is_word(parser, 1, "TO")) {
                return Err(Error::plan(
                    "expected LATE DATA TO sink after EMIT ON WINDOW CLOSE",
                ));
            }
            parser.next_token();
            parser.next_token();
            let sink = normalize_ident(&parser.parse_identifier().map_err(syntax_error)?);
            return Ok(Some(sink));
        }
        return Ok(None);
    }
    let mut mode = Vec::new();
    while !matches!(parser.peek_token().token, Token::SemiColon | Token::EOF) {
        mode.push(parser.next_token().token.to_string());
    }
    Err(Error::unsupported(
        format!("EMIT {}", mode.join(" ")),
        "Laminar emits each window once, when the watermark passes its end (EMIT ON WINDOW CLOSE)",
    ))
}

fn parse_create_source(parser: &mut Parser<'_>, context: &PlanningContext) -> Result<SourceDef> {
    let name = normalize_ident(&parser.parse_identifier().map_err(syntax_error)?);
    parser.expect_token(&Token::LParen).map_err(syntax_error)?;
    let mut fields = Vec::new();
    let mut watermark = None;
    loop {
        if is_word(parser, 0, "WATERMARK") {
            parser.next_token();
            parser.expect_keyword(Keyword::FOR).map_err(syntax_error)?;
            let column = normalize_ident(&parser.parse_identifier().map_err(syntax_error)?);
            parser.expect_keyword(Keyword::AS).map_err(syntax_error)?;
            let expr = parser.parse_expr().map_err(syntax_error)?;
            watermark = Some(watermark_spec(column, &expr, context)?);
        } else {
            let column = parser.parse_column_def().map_err(syntax_error)?;
            let data_type = arrow_type(&column.data_type)?;
            let not_null = column
                .options
                .iter()
                .any(|o| matches!(o.option, ast::ColumnOption::NotNull));
            let name = normalize_ident(&column.name);
            if fields.iter().any(|f: &Field| f.name() == &name) {
                return Err(Error::plan(format!("column '{name}' is declared twice")));
            }
            fields.push(Field::new(name, data_type, !not_null));
        }
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen).map_err(syntax_error)?;
    let options = parse_with_options(parser, &format!("source '{name}'"))?;
    let schema = Arc::new(Schema::new(fields));
    if let Some(spec) = &watermark {
        let field = schema.field_with_name(&spec.column).map_err(|_| {
            Error::plan(format!(
                "WATERMARK FOR names column '{}', which source '{name}' does not declare",
                spec.column
            ))
        })?;
        EventTimeColumn::check_type(&spec.column, field.data_type())?;
    }
    Ok(SourceDef {
        options: options.source_options()?,
        name,
        schema,
        watermark,
    })
}

fn watermark_spec(column: String, expr: &Expr, context: &PlanningContext) -> Result<WatermarkSpec> {
    let delay_ms = match expr {
        Expr::Identifier(id) if normalize_ident(id) == column => 0,
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if matches!(left.as_ref(), Expr::Identifier(id) if normalize_ident(id) == column) => {
            interval_millis(context, right)?
        }
        _ => {
            return Err(Error::plan(format!(
                "WATERMARK FOR {column} AS {expr}: expected `{column} - INTERVAL '…' SECOND` or `{column}`"
            )))
        }
    };
    if delay_ms < 0 {
        return Err(Error::plan("a watermark delay cannot be negative"));
    }
    Ok(WatermarkSpec { column, delay_ms })
}

fn parse_create_sink(parser: &mut Parser<'_>) -> Result<SinkDef> {
    let name = normalize_ident(&parser.parse_identifier().map_err(syntax_error)?);
    let mut options = parse_with_options(parser, &format!("sink '{name}'"))?;
    let (connector, format) = options.sink_connector()?;
    options.finish()?;
    Ok(SinkDef {
        name,
        connector,
        format,
    })
}

/// `WITH (key = value, …)`; values are string literals, numbers or identifiers.
fn parse_with_options(parser: &mut Parser<'_>, what: &str) -> Result<WithOptions> {
    let mut values = BTreeMap::new();
    if parser.parse_keyword(Keyword::WITH) {
        parser.expect_token(&Token::LParen).map_err(syntax_error)?;
        loop {
            // A dotted key (`properties.fetch.min.bytes`) is one key.
            let mut key = parser.parse_identifier().map_err(syntax_error)?.value;
            while parser.consume_token(&Token::Period) {
                key.push('.');
                key.push_str(&parser.parse_identifier().map_err(syntax_error)?.value);
            }
            let key = key.to_ascii_lowercase();
            parser.expect_token(&Token::Eq).map_err(syntax_error)?;
            let value = match parser.next_token().token {
                Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => s,
                Token::Number(n, _) => n,
                Token::Word(w) => w.value,
                other => {
                    return Err(Error::plan(format!(
                        "{what}: option '{key}' needs a value such as 'text', found {other}"
                    )))
                }
            };
            if values.contains_key(&key) {
                // Never last-wins: which of two paths was meant is the user's to say.
                return Err(Error::plan(format!(
                    "{what}: option '{key}' is given twice; give each option once"
                )));
            }
            values.insert(key, value);
            if !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        parser.expect_token(&Token::RParen).map_err(syntax_error)?;
    }
    Ok(WithOptions::new(what, values))
}

fn is_word(parser: &Parser<'_>, n: usize, word: &str) -> bool {
    matches!(&parser.peek_nth_token(n).token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Errors at the end of input carry no location from sqlparser: point at the script's end.
fn at_end_if_unknown(err: Error, sql: &str) -> Error {
    match err {
        Error::SqlSyntax { location, message } if location.line == 0 => {
            let line = sql.trim_end().lines().count().max(1) as u64;
            let column = sql
                .trim_end()
                .lines()
                .last()
                .map_or(0, |l| l.chars().count()) as u64
                + 1;
            Error::SqlSyntax {
                location: SqlLocation { line, column },
                message,
            }
        }
        other => other,
    }
}

/// Turns a sqlparser error ("… at Line: 3, Column: 7") into a located syntax error.
pub(crate) fn syntax_error(err: ParserError) -> Error {
    let text = match &err {
        ParserError::ParserError(s) | ParserError::TokenizerError(s) => s.clone(),
        other => other.to_string(),
    };
    let (message, location) = match text.rfind(" at Line: ") {
        Some(at) => {
            let rest = &text[at + " at Line: ".len()..];
            let mut parts = rest.split(", Column: ");
            let line = parts.next().and_then(|l| l.trim().parse().ok());
            let column = parts.next().and_then(|c| {
                c.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .ok()
            });
            match (line, column) {
                (Some(line), Some(column)) => {
                    (text[..at].to_string(), SqlLocation { line, column })
                }
                _ => (text.clone(), SqlLocation { line: 0, column: 0 }),
            }
        }
        None => (text.clone(), SqlLocation { line: 0, column: 0 }),
    };
    Error::SqlSyntax { location, message }
}

/// `TUMBLE(TABLE bids, …)` (or HOP, CUMULATE, SESSION) is not a table-function argument
/// sqlparser accepts: blank the `TABLE` keyword (same width, so every location in error
/// messages stays right). A SESSION's `TABLE bids PARTITION BY a, b, DESCRIPTOR(ts), …`
/// becomes `bids, __laminar_partition(a, b), DESCRIPTOR(ts), …` (which moves what follows
/// on that line).
fn blank_table_keyword_in_tumble(sql: &str) -> Result<String> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| syntax_error(ParserError::TokenizerError(e.to_string())))?;
    let significant: Vec<_> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset_of = |location: datafusion_sql::sqlparser::tokenizer::Location| {
        let line_start = *line_starts.get((location.line as usize).checked_sub(1)?)?;
        sql[line_start..]
            .char_indices()
            .nth((location.column as usize).checked_sub(1)?)
            .map(|(i, _)| line_start + i)
    };
    let is =
        |t: &Token, word: &str| matches!(t, Token::Word(x) if x.value.eq_ignore_ascii_case(word));
    // (byte range, replacement), in order.
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for (at, w) in significant.windows(3).enumerate() {
        let windowing = ["TUMBLE", "HOP", "CUMULATE", "SESSION"]
            .iter()
            .any(|kind| is(&w[0].token, kind));
        // Another name called the same way (`TUMBLING(TABLE bids, DESCRIPTOR(ts), …)`)
        // is blanked too, so that planning can answer it with the window kinds there are.
        let misspelt = matches!(&w[0].token, Token::Word(_))
            && matches!(
                significant.get(at + 3).map(|t| &t.token),
                Some(Token::Word(_))
            )
            && significant.get(at + 4).map(|t| &t.token) == Some(&Token::Comma)
            && significant
                .get(at + 5)
                .is_some_and(|t| is(&t.token, "DESCRIPTOR"));
        if !((windowing || misspelt) && w[1].token == Token::LParen && is(&w[2].token, "TABLE")) {
            continue;
        }
        let Some(offset) = offset_of(w[2].span.start) else {
            continue;
        };
        edits.push((offset..offset + 5, "     ".into()));
        // TABLE source PARTITION BY a, b, DESCRIPTOR(…)
        let rest = &significant[at + 3..];
        if rest.len() > 3 && is(&rest[1].token, "PARTITION") && is(&rest[2].token, "BY") {
            let Some(descriptor) = rest.iter().position(|t| is(&t.token, "DESCRIPTOR")) else {
                continue;
            };
            let comma = &rest[descriptor - 1];
            let (Some(from), Some(to), Some(comma_at)) = (
                offset_of(rest[1].span.start),
                offset_of(rest[2].span.end),
                offset_of(comma.span.start),
            ) else {
                continue;
            };
            if comma.token != Token::Comma || descriptor < 4 {
                continue;
            }
            edits.push((from..to, ", __laminar_partition(".into()));
            edits.push((comma_at..comma_at + 1, "),".into()));
        }
    }
    let mut out = sql.to_string();
    edits.sort_by_key(|(range, _)| range.start);
    for (range, text) in edits.into_iter().rev() {
        out.replace_range(range, &text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(sql: &str) -> Result<Vec<(SqlLocation, Statement)>> {
        parse_script(sql, &PlanningContext::new())
    }

    #[test]
    fn parses_source_with_watermark_and_options() {
        let stmts = parse(
            "CREATE SOURCE bids (ts TIMESTAMP, auction BIGINT, price DOUBLE,
               WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
             WITH (connector = 'file', path = 'x.csv', format = 'csv', on_error = 'skip');",
        )
        .unwrap();
        let Statement::CreateSource(def) = &stmts[0].1 else {
            panic!()
        };
        assert_eq!(def.schema.fields().len(), 3);
        assert_eq!(def.watermark.as_ref().unwrap().delay_ms, 5000);
        assert_eq!(def.options.on_error, crate::sql::OnError::Skip);
    }

    #[test]
    fn a_dotted_option_key_is_one_key() {
        // Kafka's `properties.<librdkafka key>`; the file connector has no such option.
        let err = parse(
            "CREATE SOURCE s (a BIGINT)
             WITH (connector = 'file', path = 'x.csv', properties.fetch.min.bytes = '1');",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown option 'properties.fetch.min.bytes'"),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse("SELECT a\nFROM bids WHERE").unwrap_err();
        let Error::SqlSyntax { location, .. } = err else {
            panic!("{err}")
        };
        assert_eq!(location.line, 2);
    }

    #[test]
    fn a_session_partition_becomes_an_argument() {
        let sql = "SELECT * FROM SESSION(TABLE bids PARTITION BY a, b, DESCRIPTOR(ts), INTERVAL '1' SECOND)";
        let out = blank_table_keyword_in_tumble(sql).unwrap();
        assert_eq!(
            out,
            "SELECT * FROM SESSION(      bids , __laminar_partition( a, b), DESCRIPTOR(ts), INTERVAL '1' SECOND)"
        );
        let hop = "SELECT * FROM HOP(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND, INTERVAL '2' SECOND)";
        assert!(blank_table_keyword_in_tumble(hop)
            .unwrap()
            .starts_with("SELECT * FROM HOP(      bids,"));
    }

    #[test]
    fn late_data_goes_to_a_sink_of_its_own() {
        let parsed = parse(
            "INSERT INTO out SELECT a FROM b GROUP BY a EMIT ON WINDOW CLOSE LATE DATA TO Late",
        )
        .unwrap();
        let Statement::Query(query) = &parsed[0].1 else {
            panic!("a query")
        };
        assert_eq!(query.late_sink.as_deref(), Some("late"));
        let err = parse(
            "INSERT INTO out SELECT a FROM b GROUP BY a EMIT ON WINDOW CLOSE LATE DATA TO out",
        )
        .unwrap_err();
        assert!(err.to_string().contains("a sink of their own"), "{err}");
        assert!(parse("SELECT a FROM b GROUP BY a EMIT ON WINDOW CLOSE LATE TO x").is_err());
    }

    #[test]
    fn other_emit_modes_are_rejected() {
        let err = parse("SELECT a FROM b GROUP BY a EMIT CHANGES").unwrap_err();
        assert!(err.to_string().contains("EMIT CHANGES"), "{err}");
        assert!(parse("SELECT a FROM b GROUP BY a EMIT ON WINDOW CLOSE").is_ok());
    }

    #[test]
    fn unknown_options_are_errors() {
        let err = parse("CREATE SINK s WITH (connector = 'file', path = 'o', colour = 'red')")
            .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn tumble_table_argument_is_blanked_in_place() {
        let sql = "SELECT * FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '1' SECOND)";
        let out = blank_table_keyword_in_tumble(sql).unwrap();
        assert_eq!(out.len(), sql.len());
        assert!(out.contains("TUMBLE(      bids"));
    }
}
