//! matrix.toml → a validated `Matrix` (pure). Shape errors come from serde
//! (`deny_unknown_fields` everywhere); a second pass checks names and
//! references. Every error names the file, the line and the key.
pub use super::language::{Language, Ready};
use crate::model::tls::{KeyType, TlsMode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A configuration error, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    #[serde(default)]
    run: RunSettings,
    sets: BTreeMap<String, Spanned<String>>,
    languages: BTreeMap<String, Language>,
    profiles: BTreeMap<String, RawProfile>,
}

/// Timing and concurrency defaults of a run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSettings {
    /// How long a server may take from start to answering health checks.
    pub server_ready_ms: u64,
    /// Extra time a client gets for its first step (process start-up).
    pub client_startup_ms: u64,
    /// Time a step may take beyond its own deadline and delay before the
    /// client is considered hung and killed.
    pub step_grace_ms: u64,
    /// How long a language's build may take.
    pub build_timeout_ms: u64,
    /// Client processes that always run at once (one per pair, or per cell); 0 = number of CPUs.
    pub jobs: usize,
    /// Client processes at once at most: beyond `jobs`, another starts only
    /// while the machine has a core to spare (`plan::admit`); 0 = 24 × jobs.
    pub at_most: usize,
    /// Lanes per cell of a client process: its tests that wait (delays, deadlines, cancels,
    /// slow reads) run side by side in lanes 1..N-1, the rest in lane 0; 1 = one
    /// after the other.
    pub lanes: u32,
    /// Run folders kept under `reports/` (the newest); 0 keeps all.
    pub keep_reports: usize,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            server_ready_ms: 30_000,
            client_startup_ms: 20_000,
            step_grace_ms: 10_000,
            build_timeout_ms: 1_800_000,
            jobs: 0,
            at_most: 0,
            lanes: 8,
            keep_reports: 50,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default)]
    description: String,
    clients: Spanned<Vec<Spanned<String>>>,
    servers: Spanned<Vec<Spanned<String>>>,
    tls: Spanned<Vec<Spanned<String>>>,
    sets: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    key_types: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pivot: Option<Spanned<String>>,
}

/// A profile with every name resolved ("*" expanded).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub description: String,
    pub clients: Vec<String>,
    pub servers: Vec<String>,
    pub tls: Vec<TlsMode>,
    pub sets: Vec<String>,
    pub key_types: Vec<KeyType>,
    /// Keep only cells whose client or server is this language.
    pub pivot: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Folder of matrix.toml; relative paths are resolved against it.
    pub root: PathBuf,
    pub run: RunSettings,
    pub sets: BTreeMap<String, PathBuf>,
    pub languages: BTreeMap<String, Language>,
    pub profiles: BTreeMap<String, Profile>,
}

/// The dotted key at `offset`: the last `[table]` header before it plus the
/// key on that line, so a type error names the key as well as the line.
fn key_at(src: &str, offset: usize) -> String {
    let before = &src[..offset.min(src.len())];
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = src[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(src.len());
    let line = &src[line_start..line_end];
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(['[', ']']).trim().to_string())
        .unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().to_string())
        .unwrap_or_default();
    match (table.is_empty(), key.is_empty()) {
        (_, true) => table,
        (true, false) => key,
        (false, false) => format!("{table}.{key}"),
    }
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

impl Matrix {
    /// Reads and validates a matrix file.
    pub fn load(path: &Path) -> Result<Matrix, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // Absolute: implementations run in their own folders.
        let root = std::path::absolute(
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Matrix::parse(&src, path, &root)
    }

    /// Parses matrix text; `path` is only used in messages.
    pub fn parse(src: &str, path: &Path, root: &Path) -> Result<Matrix, ConfigError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_col(src, span.start);
            ConfigError::At {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        };
        let raw: RawMatrix = toml::from_str(src).map_err(|e| match e.span() {
            Some(span) => {
                let key = key_at(src, span.start);
                let message = if key.is_empty() {
                    e.message().to_string()
                } else {
                    format!("{key}: {}", e.message())
                };
                at(span, message)
            }
            None => ConfigError::File {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            },
        })?;
        for (name, lang) in &raw.languages {
            lang.check(name, &raw.languages).map_err(|message| ConfigError::File {
                path: path.to_path_buf(),
                message: format!("languages.{name}: {message}"),
            })?;
        }
        let mut profiles = BTreeMap::new();
        for (pname, p) in &raw.profiles {
            let resolve = |field: &str,
                           list: &Spanned<Vec<Spanned<String>>>,
                           known: Vec<String>|
             -> Result<Vec<String>, ConfigError> {
                if list.get_ref().is_empty() {
                    return Err(at(list.span(), format!("profiles.{pname}.{field}: must not be empty")));
                }
                let mut out = Vec::new();
                for item in list.get_ref() {
                    let name = item.get_ref();
                    if name == "*" {
                        out.extend(known.iter().cloned());
                    } else if known.contains(name) {
                        out.push(name.clone());
                    } else {
                        return Err(at(
                            item.span(),
                            format!(
                                "profiles.{pname}.{field}: unknown name `{name}` (known: {})",
                                known.join(", ")
                            ),
                        ));
                    }
                }
                out.dedup();
                Ok(out)
            };
            let langs: Vec<String> = raw.languages.keys().cloned().collect();
            let clients: Vec<String> = raw
                .languages
                .iter()
                .filter(|(_, l)| l.has_client())
                .map(|(k, _)| k.clone())
                .collect();
            let modes: Vec<String> = TlsMode::ALL.iter().map(|m| m.to_string()).collect();
            let keys: Vec<String> = KeyType::ALL.iter().map(|k| k.as_str().to_string()).collect();
            let key_types = match &p.key_types {
                Some(list) => resolve("key_types", list, keys)?
                    .iter()
                    .filter_map(|k| KeyType::parse(k))
                    .collect(),
                None => vec![KeyType::EcP256],
            };
            if let Some(p) = &p.pivot {
                if !raw.languages.contains_key(p.get_ref()) {
                    return Err(at(
                        p.span(),
                        format!("profiles.{pname}.pivot: unknown language `{}`", p.get_ref()),
                    ));
                }
            }
            profiles.insert(
                pname.clone(),
                Profile {
                    description: p.description.clone(),
                    clients: resolve("clients", &p.clients, clients)?,
                    servers: resolve("servers", &p.servers, langs)?,
                    tls: resolve("tls", &p.tls, modes)?
                        .iter()
                        .filter_map(|m| TlsMode::parse(m))
                        .collect(),
                    sets: resolve("sets", &p.sets, raw.sets.keys().cloned().collect())?,
                    key_types,
                    pivot: p.pivot.as_ref().map(|p| p.get_ref().clone()),
                },
            );
        }
        let sets = raw
            .sets
            .into_iter()
            .map(|(k, v)| (k, root.join(v.into_inner())))
            .collect();
        let mut languages: BTreeMap<String, Language> = raw
            .languages
            .into_iter()
            .map(|(k, mut l)| {
                (k, {
                    l.folder = root.join(&l.folder);
                    l
                })
            })
            .collect();
        super::language::resolve_uses(&mut languages);
        Ok(Matrix {
            root: root.to_path_buf(),
            run: raw.run,
            sets,
            languages,
            profiles,
        })
    }

    /// The languages that have a client (all but plugin servers), sorted.
    pub fn clients(&self) -> Vec<String> {
        self.languages
            .iter()
            .filter(|(_, l)| l.has_client())
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn profile(&self, name: &str) -> Result<&Profile, String> {
        self.profiles.get(name).ok_or_else(|| {
            format!(
                "unknown profile `{name}` (known: {})",
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    pub fn language(&self, name: &str) -> Result<&Language, String> {
        self.languages.get(name).ok_or_else(|| {
            format!(
                "unknown language `{name}` (known: {})",
                self.languages.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests;
