//! What a state dir belongs to: every part of a query that decides its state and its
//! output (the query as written, its plan and window, each source's columns, watermark
//! and options, the sink), the Laminar state format, and each plugin it calls (content
//! hash and state version). A run whose fingerprint differs is refused with each
//! difference named — state is never mixed.

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

/// One named part of a query's identity: `what` it is ("the window", "source 'bids'
/// watermark") and its value as text.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct FingerprintPart {
    /// What the part is, in words.
    pub what: String,
    /// Its value.
    pub value: String,
}

/// The identity of one durable query.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The checkpoint format of the writer.
    pub format: u32,
    /// The Laminar version that wrote the state dir.
    pub laminar_version: String,
    /// Everything that decides the state and the output, part by part.
    pub parts: Vec<FingerprintPart>,
    /// The plugins it calls, sorted by name.
    pub plugins: Vec<PluginPrint>,
}

impl Fingerprint {
    /// A fingerprint of this build of Laminar over `parts` (`(what, value)` pairs).
    pub fn new(parts: Vec<(String, String)>, mut plugins: Vec<PluginPrint>) -> Self {
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            format: CHECKPOINT_FORMAT,
            laminar_version: env!("CARGO_PKG_VERSION").to_string(),
            parts: parts
                .into_iter()
                .map(|(what, value)| FingerprintPart { what, value })
                .collect(),
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
        for old in &self.parts {
            match now.parts.iter().find(|p| p.what == old.what) {
                None => out.push(format!(
                    "{} was `{}`, this run has none",
                    old.what,
                    shorten(&old.value)
                )),
                Some(new) if new.value != old.value => {
                    let (then, now) = changed_span(&old.value, &new.value);
                    out.push(format!("{} differs: `{then}` then, `{now}` now", old.what));
                }
                Some(_) => {}
            }
        }
        for new in &now.parts {
            if !self.parts.iter().any(|p| p.what == new.what) {
                out.push(format!(
                    "{} is `{}` now, the state dir has none",
                    new.what,
                    shorten(&new.value)
                ));
            }
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
            parts: a
                .parts
                .iter()
                .map(|p| FingerprintPart {
                    what: p.what.to_string(),
                    value: p.value.to_string(),
                })
                .collect(),
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

/// Characters of context kept on each side of a change.
const CONTEXT: usize = 24;

/// The part of `old` and of `new` that differs, with a little context on each side, so a
/// message can show what changed in a long query (`… INTERVAL '10' SECOND …`).
fn changed_span(old: &str, new: &str) -> (String, String) {
    let old_chars: Vec<char> = old.chars().collect();
    let new_chars: Vec<char> = new.chars().collect();
    let prefix = old_chars
        .iter()
        .zip(&new_chars)
        .take_while(|(a, b)| a == b)
        .count();
    let max_suffix = old_chars.len().min(new_chars.len()) - prefix;
    let suffix = old_chars
        .iter()
        .rev()
        .zip(new_chars.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let excerpt = |chars: &[char]| {
        let start = prefix.saturating_sub(CONTEXT);
        let end = (chars.len() - suffix + CONTEXT).min(chars.len());
        let mut text = String::new();
        if start > 0 {
            text.push('…');
        }
        text.extend(&chars[start..end]);
        if end < chars.len() {
            text.push('…');
        }
        shorten(&text)
    };
    (excerpt(&old_chars), excerpt(&new_chars))
}

/// A value on one line, escaped, cut to 160 characters.
fn shorten(text: &str) -> String {
    crate::text::shown(&crate::error::one_line(text), 160)
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

    fn parts(query: &str) -> Vec<(String, String)> {
        vec![
            ("the query".into(), query.into()),
            ("source 'bids' watermark".into(), "ts - 5000 ms".into()),
        ]
    }

    #[test]
    fn equal_fingerprints_have_no_differences() {
        let a = Fingerprint::new(parts("SELECT 1"), vec![plugin("ab", 1)]);
        assert!(a.differences(&a.clone()).is_empty());
    }

    #[test]
    fn every_difference_is_named() {
        let old = Fingerprint::new(parts("SELECT 1"), vec![plugin("aaaa", 1)]);
        let new = Fingerprint::new(parts("SELECT 2"), vec![plugin("bbbb", 2)]);
        let text = old.differences(&new).join("; ");
        assert!(
            text.contains("the query differs: `SELECT 1` then, `SELECT 2` now"),
            "{text}"
        );
        assert!(text.contains("another build"), "{text}");
        assert!(text.contains("state-version 2"), "{text}");
        let none = Fingerprint::new(parts("SELECT 1"), Vec::new());
        assert!(old.differences(&none).join("").contains("no longer used"));
        let fewer = Fingerprint::new(parts("SELECT 1")[..1].to_vec(), Vec::new());
        let text = none.differences(&fewer).join("; ");
        assert!(
            text.contains("source 'bids' watermark was `ts - 5000 ms`"),
            "{text}"
        );
    }

    #[test]
    fn a_change_in_a_long_value_is_shown_with_its_context() {
        let head = "SELECT auction, COUNT(*) FROM bids WHERE price > 10 AND channel <> 'x' ";
        let old = format!("{head}GROUP BY auction, TUMBLE(ts, INTERVAL '10' SECOND)");
        let new = format!("{head}GROUP BY auction, TUMBLE(ts, INTERVAL '20' SECOND)");
        let (then, now) = changed_span(&old, &new);
        assert_eq!(then, "…n, TUMBLE(ts, INTERVAL '10' SECOND)");
        assert_eq!(now, "…n, TUMBLE(ts, INTERVAL '20' SECOND)");
        let (then, now) = changed_span("abc", "abcd");
        assert_eq!((then.as_str(), now.as_str()), ("abc", "abcd"));
    }
}
