//! The workspace's shape, as STYLE.md section 1 states it: no import circle between files of a
//! crate, no server crate depending on the simulator, and no crate holding more than 30% of the
//! project's Rust outside tests. These read the source tree; they do not build anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Crates whose `src/` is checked for file-level import circles.
const CRATES: &[&str] = &[
    "kernel",
    "core",
    "inject",
    "sim",
    "bound",
    "serve",
    "webhook",
    "extender",
    "device-plugin",
    "dra",
    "mps",
    "cli",
];

/// Crates that run as servers (or their node agents): none of them may use the simulator.
const SERVERS: &[&str] = &[
    "serve",
    "webhook",
    "extender",
    "device-plugin",
    "dra",
    "mps",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path inside its crate: `src/cluster/mod.rs` → `["cluster"]`,
/// `src/decide.rs` → `["decide"]`, `src/lib.rs` → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Whether a file is test code (a `tests.rs` or anything under a `tests/` module folder).
fn is_test_file(module: &[String]) -> bool {
    module.iter().any(|m| m == "tests")
}

/// A file's code without comments and without its top-level `#[cfg(test)] mod … {` (and all
/// after it).
fn code_outside_tests(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "#[cfg(test)]" && lines.peek().is_some_and(|l| l.starts_with("mod ")) {
            // `mod tests;` declares a file (left out by name); `mod tests {` ends the code.
            if lines.next().is_some_and(|l| l.ends_with(';')) {
                continue;
            }
            break;
        }
        if !line.trim_start().starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The module paths a file names through `crate::`, `super::` and `self::` paths, resolved
/// against its own module path (`here`). Comments and test modules are left out.
fn referenced_modules(text: &str, here: &[String]) -> Vec<Vec<String>> {
    let code = code_outside_tests(text);
    let parent = here[..here.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (start, base) in [
        ("crate::", Vec::new()),
        ("super::", parent),
        ("self::", here.to_vec()),
    ] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(start) {
            let preceded = rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
            rest = &rest[i + start.len()..];
            if preceded {
                continue;
            }
            let mut base = base.clone();
            let mut tail = rest;
            while let Some(t) = tail.strip_prefix("super::") {
                base.pop();
                tail = t;
            }
            path_tails(tail, &base, &mut out);
        }
    }
    out
}

/// Extends `base` with the lower-case segments at the start of `tail` (`a::b::Item`, or each
/// path of a `{a::X, b}` group) and collects the results; non-module items are trimmed later.
fn path_tails(tail: &str, base: &[String], out: &mut Vec<Vec<String>>) {
    if let Some(group) = tail.strip_prefix('{') {
        let inner = group.split('}').next().unwrap_or("");
        for item in inner.split(',') {
            path_tails(item.trim(), base, out);
        }
        return;
    }
    let mut path = base.to_vec();
    let mut rest = tail;
    loop {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.is_empty() {
            break;
        }
        path.push(name.clone());
        match rest[name.len()..].strip_prefix("::") {
            Some(next) if next.starts_with('{') => return path_tails(next, &path, out),
            Some(next) => rest = next,
            None => break,
        }
    }
    out.push(path);
}

/// The file-level import graph of one crate's non-test files: an edge from a file to the file
/// that defines the deepest module it names, leaving out a module naming its own submodules
/// (declaring and re-exporting children is not an import).
fn import_graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_path(src, f), f.clone()))
        .filter(|(m, _)| !is_test_file(m))
        .collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (here, file) in &modules {
        let text = fs::read_to_string(file).unwrap_or_default();
        let edges = graph.entry(here.clone()).or_default();
        for mut target in referenced_modules(&text, here) {
            while !target.is_empty() && !modules.contains_key(&target) {
                target.pop();
            }
            let own_child = target.len() > here.len() && target.starts_with(here);
            if &target != here && !own_child && modules.contains_key(&target) {
                edges.insert(target);
            }
        }
    }
    graph
}

/// Every pair of files that import each other, directly or through others (one cycle each).
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<BTreeSet<Vec<String>>> = Vec::new();
    for module in graph.keys() {
        let reached = reach(module);
        if reached.contains(module) {
            let members: BTreeSet<Vec<String>> = reached
                .into_iter()
                .filter(|m| reach(m).contains(module))
                .collect();
            if !found.contains(&members) {
                found.push(members);
            }
        }
    }
    found.into_iter().map(|c| c.into_iter().collect()).collect()
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut circles = Vec::new();
    for krate in CRATES {
        let src = root().join(krate).join("src");
        for cycle in cycles(&import_graph(&src)) {
            let names: Vec<String> = cycle
                .iter()
                .map(|m| format!("{krate}::{}", m.join("::")))
                .collect();
            circles.push(names.join(" ↔ "));
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_circle_finder_sees_a_circle_between_two_sibling_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    fs::write(
        src.join("a.rs"),
        "use super::b::Thing;\npub struct Other;\n",
    )
    .unwrap();
    fs::write(
        src.join("b.rs"),
        "use crate::a::Other;\npub struct Thing;\n",
    )
    .unwrap();
    let found = cycles(&import_graph(src));
    assert_eq!(
        found,
        vec![vec![vec!["a".to_string()], vec!["b".to_string()]]]
    );

    // A parent re-exporting its child, and the child using the parent, is no circle.
    fs::write(src.join("b.rs"), "pub struct Thing;\n").unwrap();
    fs::create_dir(src.join("c")).unwrap();
    fs::write(
        src.join("c/mod.rs"),
        "mod d;\npub use d::Leaf;\npub struct Root;\n",
    )
    .unwrap();
    fs::write(src.join("c/d.rs"), "use super::Root;\npub struct Leaf;\n").unwrap();
    assert!(cycles(&import_graph(src)).is_empty());
}

/// The workspace's `[dependencies]` names of one crate.
fn dependencies(krate: &str) -> BTreeSet<String> {
    let text = fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap_or_default();
    let deps = text
        .split("\n[dependencies]\n")
        .nth(1)
        .unwrap_or("")
        .split("\n[")
        .next()
        .unwrap_or("");
    deps.lines()
        .filter_map(|l| l.split(['=', '.', ' ']).next())
        .filter(|n| !n.is_empty() && !n.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn no_server_depends_on_the_simulator() {
    for server in SERVERS {
        let deps = dependencies(server);
        assert!(
            !deps.is_empty(),
            "{server}/Cargo.toml lists no dependencies"
        );
        assert!(
            !deps.contains("tessera-sim") && !deps.contains("tessera-bound"),
            "{server} depends on the simulator: {deps:?}"
        );
    }
}

/// Lines of Rust outside tests (test files, `#[cfg(test)]` modules, benches) and comments, per crate.
fn lines_outside_tests(krate: &str) -> usize {
    let src = root().join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .iter()
        .filter(|f| !is_test_file(&module_path(&src, f)))
        .map(|f| {
            let text = fs::read_to_string(f).unwrap_or_default();
            code_outside_tests(&text).lines().count()
        })
        .sum()
}

#[test]
fn no_crate_holds_more_than_30_percent_of_the_code() {
    let counts: Vec<(&str, usize)> = CRATES
        .iter()
        .map(|k| (*k, lines_outside_tests(k)))
        .collect();
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    for (krate, n) in &counts {
        let share = *n as f64 / total as f64;
        assert!(
            share <= 0.30,
            "{krate} holds {n} of {total} lines ({:.0}%): {counts:?}",
            share * 100.0
        );
    }
}
