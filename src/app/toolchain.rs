//! The toolchain commands: `doctor` (what each language needs and whether it
//! is here) and `setup` (installing system packages through each language's
//! setup script), and the set-up a run does by itself.
use crate::app::exit::{self, usage, Exit};
use crate::exec::builder;
use crate::exec::process;
use crate::input::config::{Language, Matrix};
use std::path::Path;
use std::time::{Duration, Instant};

/// The named languages (each checked against matrix.toml), or all when none are named.
pub fn pick_languages(m: &Matrix, names: &[String]) -> Result<Vec<String>, Exit> {
    if names.is_empty() {
        return Ok(m.languages.keys().cloned().collect());
    }
    for n in names {
        m.language(n).map_err(usage)?;
    }
    Ok(names.to_vec())
}

pub fn doctor(m: &Matrix) -> i32 {
    let proto = m.root.join("proto");
    let mut all_ok = true;
    for (name, lang) in &m.languages {
        let missing = builder::missing_tools(lang);
        let found: Vec<String> = lang
            .requires
            .iter()
            .filter(|t| !missing.contains(t))
            .map(|t| {
                format!(
                    "{t} ({})",
                    which::which(t).map(|p| p.display().to_string()).unwrap_or_default()
                )
            })
            .collect();
        let state = if !missing.is_empty() {
            all_ok = false;
            format!("MISSING {}", missing.join(", "))
        } else {
            "ok".into()
        };
        let build = if lang.build.is_empty() {
            "nothing to build"
        } else if builder::up_to_date(lang, &proto) {
            "built, up to date"
        } else {
            "needs a build (stock-matrix build)"
        };
        say!("{name:<11} {state:<28} stack: {}", lang.stack);
        if !found.is_empty() {
            say!("{:<11} found: {}", "", found.join(", "));
        }
        if !missing.is_empty() {
            say!(
                "{:<11} get it: {}",
                "",
                if lang.install.is_empty() {
                    "see implementations/ README"
                } else {
                    &lang.install
                }
            );
        }
        if !lang.setup.is_empty() {
            say!(
                "{:<11} system packages: `stock-matrix setup {name}` runs {} in {}",
                "",
                lang.setup.join(" "),
                lang.folder.display()
            );
        }
        say!("{:<11} {build}", "");
    }
    if all_ok {
        exit::OK
    } else {
        exit::RED
    }
}

pub async fn setup(m: &Matrix, names: &[String]) -> Result<i32, Exit> {
    let mut code = exit::OK;
    for name in pick_languages(m, names)? {
        let lang = &m.languages[&name];
        if lang.setup.is_empty() {
            continue;
        }
        note!("setup {name}: {}", lang.setup.join(" "));
        let log = builder::default_log(&m.root, &format!("setup-{name}"));
        let _ = std::fs::remove_file(&log);
        match run_setup(lang, &log).await {
            (Ok(()), ..) => note!("setup {name}: ok"),
            (Err(why), text, _) => {
                code = exit::RED;
                note!("setup {name}: FAILED ({why}); log {}:\n{text}", log.display());
            }
        }
    }
    Ok(code)
}

/// Runs a language's setup script with its output in `log`: the result,
/// the log's text and the seconds it took.
async fn run_setup(lang: &Language, log: &Path) -> (Result<(), String>, String, f64) {
    let start = Instant::now();
    let result = match process::run_logged(&lang.setup, &lang.folder, log, Duration::from_secs(1800)).await {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(s.to_string()),
        Err(e) => Err(e),
    };
    (
        result,
        std::fs::read_to_string(log).unwrap_or_default(),
        start.elapsed().as_secs_f64(),
    )
}

/// Can this process install system packages (root, with apt-get)?
pub fn can_install() -> bool {
    nix::unistd::geteuid().is_root() && which::which("apt-get").is_ok()
}

/// The packages a setup script said it installs (its `installing: …` line).
fn installed(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.strip_prefix("installing:"))
        .map(|p| p.trim().to_string())
}

/// Runs the setup scripts of `langs` before a run builds them, when this
/// process can install system packages: a script installs only what is
/// missing and says nothing when nothing is. Says which packages it installed
/// and how long that took. When it cannot install, it does nothing: a language
/// whose tools are missing is then unavailable, and says what to run.
pub async fn auto_setup(m: &Matrix, langs: &[String], logs: &Path) {
    if !can_install() {
        return;
    }
    for name in langs {
        let lang = &m.languages[name];
        if lang.setup.is_empty() {
            continue;
        }
        let log = logs.join(format!("setup-{name}.log"));
        match run_setup(lang, &log).await {
            (Ok(()), text, took) => {
                if let Some(packages) = installed(&text) {
                    note!("setup {name}: installed {packages} ({took:.0} s; `--no-setup` skips this)");
                }
            }
            (Err(why), _, took) => note!("setup {name}: FAILED ({why}) after {took:.0} s; log {}", log.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_installed_packages_come_from_the_scripts_line() {
        let log = "Reading package lists...\ninstalling: protobuf-compiler grpc-proto\nSetting up ...\n";
        assert_eq!(installed(log).as_deref(), Some("protobuf-compiler grpc-proto"));
        assert_eq!(installed("nothing to do\n"), None);
    }
}
