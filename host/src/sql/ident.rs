//! SQL's rule for names, as DataFusion applies it: unquoted identifiers are
//! case-insensitive (normalised to lower case), quoted ones keep their case. Every name a
//! script declares or refers to (sources, sinks, streams, columns, the watermark column,
//! aggregates) goes through here, so `Bids`, `BIDS` and `bids` are one name and `"Bids"`
//! another.

use datafusion_sql::sqlparser::ast::{Ident, ObjectName};

/// The name an identifier stands for.
pub(crate) fn normalize_ident(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The name a possibly qualified object name stands for (its parts joined with `.`).
pub(crate) fn normalize_object_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => normalize_ident(ident),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The name a name given through the embedded API stands for, read as SQL reads an
/// identifier (as DataFusion's `register_batch` does): `Bids` is `bids`, `"Bids"` keeps
/// its case.
pub(crate) fn normalize_name_text(name: &str) -> String {
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(quoted) => quoted.to_string(),
        None => name.to_lowercase(),
    }
}

/// An identifier that stands for `name` exactly, quoted when lower-casing would change it.
pub(crate) fn ident_for(name: &str) -> Ident {
    if name.to_lowercase() == name {
        Ident::new(name)
    } else {
        Ident::with_quote('"', name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_names_fold_to_lower_case_and_quoted_ones_keep_theirs() {
        assert_eq!(normalize_ident(&Ident::new("Bids")), "bids");
        assert_eq!(normalize_ident(&Ident::with_quote('"', "Bids")), "Bids");
        let name = ObjectName::from(vec![Ident::new("Bids")]);
        assert_eq!(normalize_object_name(&name), "bids");
        assert_eq!(normalize_ident(&ident_for("Bids")), "Bids");
        assert_eq!(normalize_name_text("Bids"), "bids");
        assert_eq!(normalize_name_text("\"Bids\""), "Bids");
        assert_eq!(normalize_ident(&ident_for("bids")), "bids");
    }
}
