//! What a state dir belongs to: the query, the sources it reads, the Laminar state format,
//! and each plugin it calls (content hash and state version). A run whose fingerprint
//! differs is refused with the differences named — state is never mixed.

use rkyv::{Archive, Deserialize, Serialize};

use super::manifest::CHECKPOINT_FORMAT;

/// A plugin as the fingerprint knows it.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PluginPrint {
    /// The name SQL calls it by.
    pub name: String,
    /// SHA-256 of the component file, hex.
    pub content_hash: String,
    /// The state version it declares.
    pub state_version: u32,
}

/// The identity of one durable query.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The checkpoint format of the writer.
    pub format: u32,
    /// The Laminar version that wrote the state dir.
    pub laminar_version: String,
    /// The query, as SQL, with where its rows go.
    pub query: String,
    /// The definitions of the sources and sinks it uses.
    pub relations: String,
    /// The plugins it calls, sorted by name.
    pub plugins: Vec<PluginPrint>,
}

impl Fingerprint {
    /// A fingerprint of this build of Laminar.
    pub fn new(query: String, relations: String, mut plugins: Vec<PluginPrint>) -> Self {
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            format: CHECKPOINT_FORMAT,
            laminar_version: env!("CARGO_PKG_VERSION").to_string(),
            query,
            relations,
            plugins,
        }
    }

    /// What differs between the fingerprint a state dir holds (`self`) and `now`, in words;
    /// empty when they match.
    pub fn differences(&self, now: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        if self.format != now.format || self.laminar_version != now.laminar_version {
            out.push(format!(
                "it was written by Laminar {} (state format {}), this is Laminar {} (state format {})",
                self.laminar_version, self.format, now.laminar_version, now.format
            ));
        }
        if self.query != now.query {
            out.push(format!(
                "the query differs: it holds `{}`, this run is `{}`",
                shorten(&self.query),
                shorten(&now.query)
            ));
        }
        if self.relations != now.relations {
            out.push("the sources or sinks are declared differently".to_string());
        }
        for old in &self.plugins {
            match now.plugins.iter().find(|p| p.name == old.name) {
                None => out.push(format!("plugin '{}' is no longer used", old.name)),
                Some(new) => {
                    if new.content_hash != old.content_hash {
                        out.push(format!(
                            "plugin '{}' is another build (content hash {} then, {} now)",
                            old.name,
                            short_hash(&old.content_hash),
                            short_hash(&new.content_hash)
                        ));
                    }
                    if new.state_version != old.state_version {
                        out.push(format!(
                            "plugin '{}' has state-version {} now, the state dir holds version {}",
                            old.name, new.state_version, old.state_version
                        ));
                    }
                }
            }
        }
        for new in &now.plugins {
            if !self.plugins.iter().any(|p| p.name == new.name) {
                out.push(format!("plugin '{}' was not used before", new.name));
            }
        }
        out
    }
}

impl From<&ArchivedFingerprint> for Fingerprint {
    fn from(a: &ArchivedFingerprint) -> Self {
        Self {
            format: a.format.to_native(),
            laminar_version: a.laminar_version.to_string(),
            query: a.query.to_string(),
            relations: a.relations.to_string(),
            plugins: a
                .plugins
                .iter()
                .map(|p| PluginPrint {
                    name: p.name.to_string(),
                    content_hash: p.content_hash.to_string(),
                    state_version: p.state_version.to_native(),
                })
                .collect(),
        }
    }
}

/// The query on one line, escaped, cut to 160 characters.
fn shorten(sql: &str) -> String {
    crate::text::shown(&crate::error::one_line(sql), 160)
}

fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(hash: &str, version: u32) -> PluginPrint {
        PluginPrint {
            name: "median".into(),
            content_hash: hash.into(),
            state_version: version,
        }
    }

    #[test]
    fn equal_fingerprints_have_no_differences() {
        let a = Fingerprint::new("SELECT 1".into(), "r".into(), vec![plugin("ab", 1)]);
        assert!(a.differences(&a.clone()).is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let old = Fingerprint::new("SELECT 1".into(), "r".into(), vec![plugin("aaaa", 1)]);
        let new = Fingerprint::new("SELECT 2".into(), "r".into(), vec![plugin("bbbb", 2)]);
        let text = old.differences(&new).join("; ");
        assert!(text.contains("the query differs"), "{text}");
        assert!(text.contains("another build"), "{text}");
        assert!(text.contains("state-version 2"), "{text}");
        let none = Fingerprint::new("SELECT 1".into(), "r".into(), Vec::new());
        assert!(old.differences(&none).join("").contains("no longer used"));
    }
}
