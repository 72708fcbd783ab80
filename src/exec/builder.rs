//! Builds a language before its first use, and only when something it is
//! built from changed: a fingerprint of its folder (minus build outputs),
//! the proto and the build command is kept in `<folder>/.stock-matrix-build`,
//! with the folder it was built in. Build outputs may hold that folder's
//! absolute path (CMake's cache, zinc's analysis), so in a moved or copied
//! checkout they are removed and rebuilt: a build never writes outside its
//! own folder.
use crate::exec::process;
use crate::input::config::Language;
use crate::model::run::BuildInfo;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STAMP: &str = ".stock-matrix-build";

fn hash_dir(dir: &Path, rel: &Path, skip: &[String], h: &mut DefaultHasher) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = rel.join(&name);
        let rel_s = rel.to_string_lossy();
        if name == STAMP || name == ".git" || skip.iter().any(|s| s.trim_end_matches('/') == rel_s) {
            continue;
        }
        let ft = e.file_type()?;
        if ft.is_dir() {
            hash_dir(&e.path(), &rel, skip, h)?;
        } else if ft.is_file() {
            rel_s.hash(h);
            std::fs::read(e.path())?.hash(h);
        }
    }
    Ok(())
}

/// The fingerprint of everything a language is built from.
pub fn fingerprint(lang: &Language, proto: &Path) -> std::io::Result<String> {
    let mut h = DefaultHasher::new();
    lang.build.hash(&mut h);
    // The proto folder (every file, by name) or one proto file.
    if proto.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(proto)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            f.file_name().hash(&mut h);
            std::fs::read(&f)?.hash(&mut h);
        }
    } else {
        std::fs::read(proto)?.hash(&mut h);
    }
    hash_dir(&lang.folder, Path::new(""), &lang.outputs, &mut h)?;
    // The folders of the languages it builds upon.
    for (folder, outputs) in &lang.used {
        hash_dir(folder, Path::new(""), outputs, &mut h)?;
    }
    Ok(format!("{:016x}", h.finish()))
}

/// Programs from `requires` that are not on PATH.
pub fn missing_tools(lang: &Language) -> Vec<String> {
    lang.requires
        .iter()
        .filter(|t| which::which(t).is_err())
        .cloned()
        .collect()
}

/// The stamp of a build: its fingerprint, then the folder it was built in.
fn stamp(fingerprint: &str, folder: &Path) -> String {
    format!("{fingerprint}\n{}\n", folder.display())
}

/// The folder the last build was made in, when the stamp names another one.
fn built_elsewhere(lang: &Language) -> Option<String> {
    let text = std::fs::read_to_string(lang.folder.join(STAMP)).ok()?;
    let here = std::path::absolute(&lang.folder).ok()?;
    // A stamp without a folder (an older runner's) says nothing about where.
    let there = text.lines().nth(1)?;
    (there != here.display().to_string()).then(|| there.to_string())
}

/// Is the last successful build still current, and made in this folder?
pub fn up_to_date(lang: &Language, proto: &Path) -> bool {
    let current = std::fs::read_to_string(lang.folder.join(STAMP)).unwrap_or_default();
    let here = std::path::absolute(&lang.folder).unwrap_or_default();
    fingerprint(lang, proto).is_ok_and(|f| stamp(&f, &here) == current)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Makes sure `name` is built; `force` rebuilds even when up to date.
pub async fn ensure_built(
    name: &str,
    lang: &Language,
    proto: &Path,
    log: &Path,
    limit: Duration,
    force: bool,
) -> BuildInfo {
    let start = Instant::now();
    let done = |ok: bool, status: String| BuildInfo {
        ok,
        status,
        duration_ms: start.elapsed().as_secs_f64() * 1000.0,
    };
    let missing = missing_tools(lang);
    if !missing.is_empty() {
        return done(
            false,
            format!(
                "unavailable: {} not found on PATH ({})",
                missing.join(", "),
                if lang.install.is_empty() {
                    "see stock-matrix doctor"
                } else {
                    &lang.install
                }
            ),
        );
    }
    if !lang.folder.is_dir() {
        return done(
            false,
            format!("unavailable: folder {} does not exist", lang.folder.display()),
        );
    }
    if lang.build.is_empty() {
        return done(true, "nothing to build".into());
    }
    if !force && up_to_date(lang, proto) {
        return done(true, "up to date".into());
    }
    if let Some(there) = built_elsewhere(lang) {
        // Made for another checkout: they may point at it and write there.
        note!("{name}: last built in {there}; removing its build outputs here before building");
        for out in &lang.outputs {
            let p = lang.folder.join(out);
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
    let _ = std::fs::remove_file(log);
    match process::run_logged(&lang.build, &lang.folder, log, limit).await {
        Ok(status) if status.success() => {
            if let (Ok(f), Ok(here)) = (fingerprint(lang, proto), std::path::absolute(&lang.folder)) {
                let _ = std::fs::write(lang.folder.join(STAMP), stamp(&f, &here));
            }
            done(true, "built".into())
        }
        Ok(status) => done(
            false,
            format!(
                "build of {name} failed ({status}); log {}:\n{}",
                log.display(),
                tail(log, 15)
            ),
        ),
        Err(e) => done(
            false,
            format!("build of {name} {e}; log {}:\n{}", log.display(), tail(log, 15)),
        ),
    }
}

/// Where a language's build log goes when no run folder is given.
pub fn default_log(root: &Path, name: &str) -> PathBuf {
    root.join("target")
        .join("stock-matrix")
        .join("build-logs")
        .join(format!("{name}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(dir: &Path) -> Language {
        Language {
            folder: dir.to_path_buf(),
            stack: "sh".into(),
            requires: vec!["sh".into()],
            install: String::new(),
            setup: vec![],
            build: vec!["sh".into(), "-c".into(), "echo built >> out/count; echo hello".into()],
            outputs: vec!["out".into()],
            server: vec!["x".into()],
            client: vec!["x".into()],
            ready: Default::default(),
            server_env: Default::default(),
            transports: Default::default(),
            uses: vec![],
            used: vec![],
        }
    }

    #[tokio::test]
    async fn builds_once_then_only_when_a_source_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("main.src"), "v1").unwrap();
        let proto = dir.path().join("proto");
        std::fs::create_dir(&proto).unwrap();
        std::fs::write(proto.join("a.proto"), "syntax").unwrap();
        let l = lang(dir.path());
        let log = dir.path().join("log/build.log");
        let limit = Duration::from_secs(10);
        assert_eq!(ensure_built("x", &l, &proto, &log, limit, false).await.status, "built");
        assert_eq!(
            ensure_built("x", &l, &proto, &log, limit, false).await.status,
            "up to date"
        );
        std::fs::write(dir.path().join("main.src"), "v2").unwrap();
        assert_eq!(ensure_built("x", &l, &proto, &log, limit, false).await.status, "built");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/count"))
                .unwrap()
                .lines()
                .count(),
            2
        );
        // A new proto file next to the others is a change too.
        std::fs::write(proto.join("b.proto"), "syntax").unwrap();
        assert_eq!(ensure_built("x", &l, &proto, &log, limit, false).await.status, "built");
        assert!(std::fs::read_to_string(&log).unwrap().contains("hello"));
    }

    #[tokio::test]
    async fn a_change_in_a_language_it_uses_rebuilds_it_but_not_in_that_ones_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let (own, base) = (dir.path().join("own"), dir.path().join("base"));
        for d in [own.join("out"), base.join("bin")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(base.join("service.src"), "v1").unwrap();
        let proto = dir.path().join("p.proto");
        std::fs::write(&proto, "").unwrap();
        let mut l = lang(&own);
        l.used = vec![(base.clone(), vec!["bin".into()])];
        let log = dir.path().join("build.log");
        let limit = Duration::from_secs(10);
        assert_eq!(ensure_built("x", &l, &proto, &log, limit, false).await.status, "built");
        std::fs::write(base.join("bin/service"), "binary").unwrap();
        assert_eq!(
            ensure_built("x", &l, &proto, &log, limit, false).await.status,
            "up to date"
        );
        std::fs::write(base.join("service.src"), "v2").unwrap();
        assert_eq!(ensure_built("x", &l, &proto, &log, limit, false).await.status, "built");
    }

    #[tokio::test]
    async fn a_failing_build_and_a_missing_tool_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let proto = dir.path().join("p.proto");
        std::fs::write(&proto, "").unwrap();
        let mut l = lang(dir.path());
        l.build = vec!["sh".into(), "-c".into(), "echo compile error >&2; exit 3".into()];
        let b = ensure_built(
            "x",
            &l,
            &proto,
            &dir.path().join("b.log"),
            Duration::from_secs(10),
            false,
        )
        .await;
        assert!(
            !b.ok && b.status.contains("failed") && b.status.contains("compile error"),
            "{}",
            b.status
        );
        l.requires = vec!["no-such-tool-xyz".into()];
        let b = ensure_built(
            "x",
            &l,
            &proto,
            &dir.path().join("b.log"),
            Duration::from_secs(10),
            false,
        )
        .await;
        assert!(!b.ok && b.status.contains("no-such-tool-xyz"), "{}", b.status);
    }
}
