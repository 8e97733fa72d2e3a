//! What a state dir belongs to: every part of a query that decides its state and its
//! output (the query as written, its plan and window, each source's columns, watermark
//! and options, the sink), the Laminar state format, and each plugin it calls (content
//! hash and state version). A run whose fingerprint differs is refused with each
//! difference named — state is never mixed — except a new build of a plugin that reads
//! the state version the state dir holds ([`Fingerprint::review`]): that is an upgrade,
//! carried out by `plugin::upgrade`.

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
    /// Whether this build may take over another build's state, and the older state
    /// versions it reads (its `upgrade` export): `Some` for an aggregate, `None` for a
    /// scalar function (a new build would change results a resumed run already wrote).
    /// Not stored: a property of the build running now, used only to judge an upgrade.
    #[rkyv(with = rkyv::with::Skip)]
    pub reads_state_versions: Option<Vec<u32>>,
}

impl PluginPrint {
    /// The build in words: `build 1a2b3c4d5e6f (state version 1)`.
    pub fn build_text(&self) -> String {
        format!(
            "build {} (state version {})",
            short_hash(&self.content_hash),
            self.state_version
        )
    }

    /// Whether this build may take over states of `version`: its own, or one it declares
    /// (never for a scalar function).
    pub fn reads(&self, version: u32) -> bool {
        match &self.reads_state_versions {
            Some(older) => version == self.state_version || older.contains(&version),
            None => false,
        }
    }
}

/// A plugin whose build changed since the state dir's fingerprint, in a way the new build
/// accepts (it reads the state version the state dir holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginChange {
    /// The build whose states the state dir holds.
    pub from: PluginPrint,
    /// The build running now.
    pub to: PluginPrint,
}

/// A state dir's fingerprint judged against a run's: what refuses the run, and which
/// plugin builds changed acceptably.
#[derive(Debug, Clone, Default)]
pub struct Review {
    /// Every difference that refuses the run, in words; empty when it may go on.
    pub refusals: Vec<String>,
    /// Plugins upgraded to a build that reads the state dir's states.
    pub changes: Vec<PluginChange>,
}

/// Which build wrote a plugin's states in older checkpoints: checkpoints up to
/// `through_checkpoint` hold states of build `build`, although the fingerprint names a
/// newer one (an upgrade resumed, and the newer build has not checkpointed since). Stored
/// beside the fingerprint; absent in state dirs that were never upgraded.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct PluginStates {
    /// The build (its name, content hash and state version).
    pub build: PluginPrint,
    /// The newest checkpoint id holding its states.
    pub through_checkpoint: u64,
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

    /// [`Fingerprint::differences`], except that a plugin whose new build reads the state
    /// version the state dir holds (the same version, or one it declares it reads) is an
    /// acceptable change, not a refusal. A new build that does not read it is refused,
    /// naming both versions.
    pub fn review(&self, now: &Fingerprint) -> Review {
        let without_plugins = |f: &Fingerprint| Fingerprint {
            plugins: Vec::new(),
            ..f.clone()
        };
        let mut review = Review {
            refusals: without_plugins(self).differences(&without_plugins(now)),
            changes: Vec::new(),
        };
        for old in &self.plugins {
            let Some(new) = now.plugins.iter().find(|p| p.name == old.name) else {
                review
                    .refusals
                    .push(format!("plugin '{}' is no longer used", old.name));
                continue;
            };
            if new.content_hash == old.content_hash && new.state_version == old.state_version {
                continue;
            }
            if new.reads(old.state_version) {
                review.changes.push(PluginChange {
                    from: old.clone(),
                    to: new.clone(),
                });
            } else if new.reads_state_versions.is_none() {
                review.refusals.push(format!(
                    "plugin '{}' is another build (content hash {} then, {} now)",
                    old.name,
                    short_hash(&old.content_hash),
                    short_hash(&new.content_hash)
                ));
            } else {
                review.refusals.push(format!(
                    "plugin '{}' is another build that does not read the state dir's states: \
                     {} then, {} now, which reads state version {} only; a build that \
                     reads version {} (interface `upgrade` in wit/laminar-udaf.wit) resumes \
                     it",
                    old.name,
                    old.build_text(),
                    new.build_text(),
                    versions_text(new),
                    old.state_version
                ));
            }
        }
        for new in &now.plugins {
            if !self.plugins.iter().any(|p| p.name == new.name) {
                review
                    .refusals
                    .push(format!("plugin '{}' was not used before", new.name));
            }
        }
        review
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
            plugins: a.plugins.iter().map(PluginPrint::from).collect(),
        }
    }
}

impl From<&ArchivedPluginPrint> for PluginPrint {
    fn from(p: &ArchivedPluginPrint) -> Self {
        Self {
            name: p.name.to_string(),
            content_hash: p.content_hash.to_string(),
            state_version: p.state_version.to_native(),
            reads_state_versions: None,
        }
    }
}

impl From<&ArchivedPluginStates> for PluginStates {
    fn from(a: &ArchivedPluginStates) -> Self {
        Self {
            build: (&a.build).into(),
            through_checkpoint: a.through_checkpoint.to_native(),
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

/// The versions a build reads, ascending: `1 and 2`, `2`.
fn versions_text(build: &PluginPrint) -> String {
    let mut versions = build.reads_state_versions.clone().unwrap_or_default();
    versions.push(build.state_version);
    versions.sort_unstable();
    versions.dedup();
    let text: Vec<String> = versions.iter().map(u32::to_string).collect();
    match text.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => text.join(""),
    }
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
            reads_state_versions: Some(Vec::new()),
        }
    }

    #[test]
    fn a_new_build_that_reads_the_held_version_is_a_change_not_a_refusal() {
        let old = Fingerprint::new(parts("SELECT 1"), vec![plugin("aaaa", 1)]);
        let fixed = Fingerprint::new(parts("SELECT 1"), vec![plugin("bbbb", 1)]);
        let review = old.review(&fixed);
        assert!(review.refusals.is_empty(), "{:?}", review.refusals);
        assert_eq!(review.changes.len(), 1);
        let mut v2 = plugin("cccc", 2);
        v2.reads_state_versions = Some(vec![1]);
        let review = old.review(&Fingerprint::new(parts("SELECT 1"), vec![v2.clone()]));
        assert!(review.refusals.is_empty());
        assert_eq!(review.changes[0].from.state_version, 1);
        assert_eq!(review.changes[0].to, v2);
        // A changed query is still refused, whatever the plugins.
        let review = old.review(&Fingerprint::new(parts("SELECT 2"), vec![v2]));
        assert_eq!(review.refusals.len(), 1, "{:?}", review.refusals);
    }

    #[test]
    fn a_new_build_that_does_not_read_the_held_version_is_refused_naming_both() {
        let old = Fingerprint::new(parts("SELECT 1"), vec![plugin("aaaa", 1)]);
        let review = old.review(&Fingerprint::new(
            parts("SELECT 1"),
            vec![plugin("bbbb", 2)],
        ));
        assert!(review.changes.is_empty());
        let text = review.refusals.join("; ");
        assert!(text.contains("build aaaa (state version 1) then"), "{text}");
        assert!(text.contains("build bbbb (state version 2) now"), "{text}");
        assert!(text.contains("reads state version 2 only"), "{text}");
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
