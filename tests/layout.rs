//! The source layout shows the architecture, and this test keeps it so:
//! folders are layered (a folder imports only folders below it), no module
//! imports a module that imports it back, and the pure folders neither spawn
//! processes nor write files.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first: a folder may use its own modules and those of earlier folders.
const LAYERS: [&str; 11] = [
    "model",
    "contract",
    "input",
    "plan",
    "judge",
    "report",
    "bench",
    "exec",
    "reference",
    "runner",
    "app",
];
/// Folders whose code must not spawn a process or write a file.
const PURE: [&str; 6] = ["model", "input", "plan", "judge", "report", "bench"];
const EFFECTS: [&str; 10] = [
    "std::process::Command",
    "tokio::process",
    "Command::new",
    "fs::write",
    "File::create",
    "create_dir",
    "remove_file",
    "remove_dir",
    "OpenOptions",
    "fs::rename",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/app/mod.rs` → `app`, `src/app/exit.rs` → `app::exit`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).filter(|p| *p != "mod").collect();
    parts.join("::")
}

/// Every module path each module names (`crate::a::b`, `super::x`), resolved
/// to the longest known module.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph = BTreeMap::new();
    for f in &files {
        let me = module_of(src, f);
        let text = std::fs::read_to_string(f).unwrap();
        let mut deps = BTreeSet::new();
        for (root, tail) in paths(&text) {
            let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
            let base: Vec<&str> = if root == "super" {
                let mut parent: Vec<&str> = me.split("::").collect();
                // A file's `super` is its parent module; `mod.rs` is the folder itself.
                if !f.ends_with("mod.rs") {
                    parent.pop();
                }
                parent.pop();
                parent
            } else {
                vec![]
            };
            let full: Vec<&str> = base.into_iter().chain(tail).filter(|s| !s.is_empty()).collect();
            if let Some(target) = (1..=full.len())
                .rev()
                .map(|n| full[..n].join("::"))
                .find(|m| modules.contains(m))
            {
                // A module may use its own submodules and its parent's items.
                if target != me && !target.starts_with(&format!("{me}::")) && !me.starts_with(&format!("{target}::")) {
                    deps.insert(target);
                }
            }
        }
        graph.insert(me, deps);
    }
    graph
}

/// Every `crate::a::b…` and `super::a…` path in the text (lower-case
/// segments; `{x, y}` after a path gives one path per item).
fn paths(text: &str) -> Vec<(&'static str, Vec<String>)> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for root in ["crate", "super"] {
        let pat = format!("{root}::");
        let mut at = 0;
        while let Some(i) = text[at..].find(&pat) {
            let start = at + i;
            at = start + pat.len();
            if start > 0 && text[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut segs = Vec::new();
            let mut rest = &text[at..];
            loop {
                let seg = ident(rest);
                if seg.is_empty() {
                    break;
                }
                rest = &rest[seg.len()..];
                segs.push(seg);
                match rest.strip_prefix("::") {
                    Some(r) => rest = r,
                    None => break,
                }
            }
            if let Some(group) = rest.strip_prefix('{') {
                for item in group.split('}').next().unwrap_or("").split(',') {
                    let item = ident(item.trim());
                    if !item.is_empty() && item != "self" {
                        out.push((root, segs.iter().cloned().chain([item]).collect()));
                    }
                }
            }
            out.push((root, segs));
        }
    }
    out
}

fn folder(module: &str) -> &str {
    module.split("::").next().unwrap()
}

#[test]
fn folders_are_layered() {
    let graph = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // The scan sees the imports that must be there.
    assert!(
        graph["app::run"].contains("runner") && graph["runner::client"].contains("judge"),
        "{graph:?}"
    );
    assert!(
        graph["judge"].contains("input::cases") && graph["report::junit"].contains("model::run"),
        "{graph:?}"
    );
    let rank = |m: &str| LAYERS.iter().position(|l| *l == folder(m));
    let mut upward = Vec::new();
    for (me, deps) in &graph {
        let Some(mine) = rank(me) else { continue };
        for d in deps {
            if rank(d).is_some_and(|theirs| theirs > mine) {
                upward.push(format!("{me} → {d}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that go up the layers {LAYERS:?}:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // Depth-first search for a cycle, reporting its path.
    fn visit<'a>(
        m: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(i) = stack.iter().position(|s| *s == m) {
            return Some(stack[i..].iter().chain([&m]).copied().collect::<Vec<_>>().join(" → "));
        }
        if !done.insert(m) {
            return None;
        }
        stack.push(m);
        for d in g.get(m).into_iter().flatten() {
            if let Some(cycle) = visit(d, g, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {cycle}");
        }
    }
}

#[test]
fn pure_folders_spawn_nothing_and_write_nothing() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for dir in PURE {
        let mut files = Vec::new();
        sources(&src.join(dir), &mut files);
        assert!(!files.is_empty(), "src/{dir} has no sources");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                for e in EFFECTS.iter().filter(|e| line.contains(*e)) {
                    found.push(format!("{}:{}: {e}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "effects in pure folders {PURE:?}:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_see_a_cycle_and_an_effect() {
    // The checker itself: a fake tree with a cycle and a write must be caught.
    let dir = std::env::temp_dir().join(format!("stock-matrix-layout-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("judge")).unwrap();
    std::fs::write(dir.join("judge/mod.rs"), "use crate::judge::a::X;\n").unwrap();
    std::fs::write(dir.join("judge/a.rs"), "use crate::judge::b::Y;\n").unwrap();
    std::fs::write(
        dir.join("judge/b.rs"),
        "use crate::judge::a::Z;\nfn f() { std::fs::write(\"x\", \"\"); }\n",
    )
    .unwrap();
    let g = imports(&dir);
    assert!(
        g["judge::a"].contains("judge::b") && g["judge::b"].contains("judge::a"),
        "{g:?}"
    );
    let text = std::fs::read_to_string(dir.join("judge/b.rs")).unwrap();
    assert!(EFFECTS.iter().any(|e| text.contains(e)));
    std::fs::remove_dir_all(&dir).unwrap();
}
