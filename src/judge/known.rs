//! The known-failing and known-flaky lists (`known-failing.toml`,
//! `known-flaky.toml`): each entry a glob over test ids, the reason with its
//! evidence, and optionally the symptom, a regular expression the failure
//! must show for the entry to cover it. An entry with a symptom covers
//! only the failure it describes: the same test failing some other way
//! stays red.
use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "known")]
    entries: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    /// Glob over test ids (`client=python/server=*/tls=*/key=ec-p521/*`).
    pattern: String,
    /// Why it is on the list: the evidence, in words.
    reason: String,
    /// A regular expression one of a failed try's reasons must match
    /// (`expected OK, got UNAVAILABLE .*Socket closed`); absent: any failure.
    #[serde(default)]
    symptom: Option<String>,
}

/// One pattern of a list.
#[derive(Debug, Clone)]
pub struct Entry {
    pub pattern: String,
    pub reason: String,
    pub symptom: Option<Regex>,
}

impl Entry {
    /// Whether this entry covers a failed try with these reasons: any
    /// failure without a symptom, else one whose reasons show it.
    pub fn covers(&self, reasons: &[String]) -> bool {
        self.symptom
            .as_ref()
            .is_none_or(|s| reasons.iter().any(|r| s.is_match(r)))
    }

    /// The entry as a report names it: its pattern, and its symptom if any.
    pub fn label(&self) -> String {
        match &self.symptom {
            Some(s) => format!("{}, symptom /{}/", self.pattern, s.as_str()),
            None => self.pattern.clone(),
        }
    }
}

/// A known-failing or known-flaky list.
#[derive(Debug, Clone, Default)]
pub struct KnownList {
    pub path: String,
    pub entries: Vec<Entry>,
    /// Every entry's pattern, in the entries' order: one pass over a test
    /// id finds all the entries that match it.
    globs: GlobSet,
}

/// A known list that could not be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("failed to read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: pattern {pattern:?} has no reason; every entry needs one")]
    NoReason { path: String, pattern: String },
    #[error("{path}: pattern {pattern:?}: {message}")]
    BadPattern {
        path: String,
        pattern: String,
        message: String,
    },
    #[error("{path}: pattern {pattern:?} has no symptom; every entry of this list needs one (a regular expression of the failure it lists)")]
    NoSymptom { path: String, pattern: String },
    #[error("{path}: pattern {pattern:?}: symptom is not a regular expression: {message}")]
    BadSymptom {
        path: String,
        pattern: String,
        message: String,
    },
}

impl KnownList {
    /// Parses a list; every entry needs a pattern and a non-empty reason.
    pub fn parse(path: &str, src: &str) -> Result<KnownList, ListError> {
        let path = path.to_string();
        let file: File = toml::from_str(src).map_err(|e| ListError::Syntax {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut entries = Vec::new();
        let mut globs = GlobSetBuilder::new();
        for e in file.entries {
            if e.reason.trim().is_empty() {
                return Err(ListError::NoReason {
                    path,
                    pattern: e.pattern,
                });
            }
            globs.add(Glob::new(&e.pattern).map_err(|err| ListError::BadPattern {
                path: path.clone(),
                pattern: e.pattern.clone(),
                message: err.to_string(),
            })?);
            let symptom = e
                .symptom
                .as_deref()
                .map(Regex::new)
                .transpose()
                .map_err(|err| ListError::BadSymptom {
                    path: path.clone(),
                    pattern: e.pattern.clone(),
                    message: err.to_string(),
                })?;
            entries.push(Entry {
                pattern: e.pattern,
                reason: e.reason,
                symptom,
            });
        }
        let globs = globs.build().map_err(|err| ListError::Syntax {
            path: path.clone(),
            message: format!("its patterns do not make one glob set: {err}"),
        })?;
        Ok(KnownList { path, entries, globs })
    }

    /// Loads a list; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<KnownList, ListError> {
        match std::fs::read_to_string(path) {
            Ok(src) => KnownList::parse(&path.display().to_string(), &src),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownList {
                path: path.display().to_string(),
                ..KnownList::default()
            }),
            Err(source) => Err(ListError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The list as one whose every entry names its symptom (known-flaky: a
    /// flake that passes on retry must not hide a new failure of its test).
    pub fn with_symptoms(self) -> Result<KnownList, ListError> {
        match self.entries.iter().find(|e| e.symptom.is_none()) {
            Some(e) => Err(ListError::NoSymptom {
                path: self.path.clone(),
                pattern: e.pattern.clone(),
            }),
            None => Ok(self),
        }
    }

    pub fn find<'a>(&'a self, id: &'a str) -> Option<&'a Entry> {
        self.matching(id).next()
    }

    /// Every entry whose pattern matches `id`, in the list's order.
    pub fn matching<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        // GlobSet::matches gives the indices sorted: the list's order.
        self.globs.matches(id).into_iter().map(|i| &self.entries[i])
    }

    /// Patterns that match none of `ids` (every test id the matrix can have).
    pub fn stale<'a>(&'a self, ids: &[String]) -> Vec<&'a Entry> {
        let mut seen = vec![false; self.entries.len()];
        let mut left = seen.len();
        let mut hits = Vec::new();
        for id in ids {
            if left == 0 {
                break;
            }
            self.globs.matches_into(id, &mut hits);
            for &i in &hits {
                if !seen[i] {
                    seen[i] = true;
                    left -= 1;
                }
            }
        }
        self.entries
            .iter()
            .zip(seen)
            .filter(|(_, s)| !s)
            .map(|(e, _)| e)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symptom_is_a_regular_expression_over_the_reasons() {
        let list = KnownList::parse(
            "kflaky",
            "[[known]]\npattern = \"*/case=get\"\nreason = \"r\"\nsymptom = 'got UNAVAILABLE .*(Socket closed|Broken pipe)'\n",
        )
        .unwrap();
        let e = list.find("client=go/server=go/tls=none/set=unary/case=get").unwrap();
        let reasons = |r: &str| vec!["flaky: passed on try 2 after failing".to_string(), r.to_string()];
        assert!(e.covers(&reasons(
            r#"step 2 Get: status: expected OK, got UNAVAILABLE "Broken pipe""#
        )));
        assert!(!e.covers(&reasons(
            r#"step 1 Put: status: expected UNAVAILABLE, got DEADLINE_EXCEEDED "x""#
        )));
        assert!(e.label().contains("symptom /got UNAVAILABLE"), "{}", e.label());
        let bad = KnownList::parse("kf", "[[known]]\npattern = \"x\"\nreason = \"r\"\nsymptom = \"(\"\n");
        let message = bad.unwrap_err().to_string();
        assert!(
            message.starts_with("kf: pattern \"x\": symptom is not a regular expression"),
            "{message}"
        );
    }

    #[test]
    fn an_entry_without_a_symptom_covers_any_failure() {
        let list = KnownList::parse("kf", "[[known]]\npattern = \"*\"\nreason = \"r\"\n").unwrap();
        assert!(list.entries[0].covers(&["anything".to_string()]));
        assert_eq!(list.entries[0].label(), "*");
        let message = list.with_symptoms().unwrap_err().to_string();
        assert!(message.starts_with("kf: pattern \"*\" has no symptom"), "{message}");
    }

    #[test]
    fn every_matching_entry_comes_in_the_list_order_and_unmatched_ones_are_stale() {
        let entry = |p: &str| format!("[[known]]\npattern = \"{p}\"\nreason = \"r\"\n");
        let src = ["client=go/*", "*/case=get", "client=go/*/case=put", "*/case=get"]
            .map(entry)
            .concat();
        let list = KnownList::parse("kf", &src).unwrap();
        let order = |id: &str| -> Vec<String> { list.matching(id).map(|e| e.pattern.clone()).collect() };
        assert_eq!(
            order("client=go/server=go/case=get"),
            ["client=go/*", "*/case=get", "*/case=get"]
        );
        assert_eq!(order("client=rust/server=go/case=get"), ["*/case=get", "*/case=get"]);
        assert!(order("client=rust/server=go/case=put").is_empty());
        let ids = [
            "client=rust/server=go/case=get".to_string(),
            "client=go/x/case=get".to_string(),
        ];
        let stale: Vec<&str> = list.stale(&ids).iter().map(|e| e.pattern.as_str()).collect();
        assert_eq!(stale, ["client=go/*/case=put"]);
        assert_eq!(KnownList::default().stale(&ids).len(), 0);
        assert!(KnownList::default().find("client=go/x").is_none());
    }
}
