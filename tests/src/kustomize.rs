//! Kustomizations checked and rendered without the network: [`unresolved`] follows every local
//! reference of a kustomization (resources, components, generator files, patch files) as
//! kustomize resolves them, relative to the directory that names them, and lists those that
//! lead nowhere — what `kubectl kustomize` fails on first, checked where kubectl is missing.
//! [`render`] runs `kubectl kustomize` when kubectl is installed.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

/// References under `dir`'s kustomization (and the kustomizations it includes) that name no
/// file or directory, each as `kustomization: reference`. Empty when everything resolves.
pub fn unresolved(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    walk(dir, &mut missing, 0);
    missing
}

fn walk(dir: &Path, missing: &mut Vec<String>, depth: usize) {
    let file = dir.join("kustomization.yaml");
    let Some(doc) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_yaml_ng::from_str::<Value>(&t).ok())
    else {
        missing.push(format!("{}: no readable kustomization.yaml", dir.display()));
        return;
    };
    for reference in references(&doc) {
        // Remote bases would need the network; none is shipped.
        if reference.contains("://") || reference.starts_with("github.com/") {
            missing.push(format!("{}: remote {reference}", file.display()));
            continue;
        }
        let target = dir.join(&reference);
        if target.is_dir() && depth < 16 {
            walk(&target, missing, depth + 1);
        } else if !target.is_file() {
            missing.push(format!("{}: {reference}", file.display()));
        }
    }
}

/// Local paths a kustomization names.
fn references(doc: &Value) -> Vec<String> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let mut out = strings(doc.get("resources"));
    out.extend(strings(doc.get("components")));
    for generator in ["configMapGenerator", "secretGenerator"] {
        for g in doc
            .get(generator)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            // `key=path` or `path`.
            out.extend(
                strings(g.get("files"))
                    .into_iter()
                    .map(|f| f.split_once('=').map_or(f.clone(), |(_, p)| p.to_string())),
            );
        }
    }
    for p in doc
        .get("patches")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        out.extend(p.get("path").and_then(Value::as_str).map(str::to_string));
    }
    out
}

/// `kubectl kustomize dir`: the rendered objects, `None` when kubectl is not installed (saying
/// so), a panic with kubectl's message when rendering fails.
pub fn render(dir: &Path) -> Option<Vec<serde_json::Value>> {
    let Ok(out) = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
    else {
        eprintln!(
            "skipping the render of {}: kubectl is not installed",
            dir.display()
        );
        return None;
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let docs = serde_yaml_ng::Deserializer::from_str(&text)
        .filter_map(|d| serde_json::Value::deserialize(d).ok())
        .filter(|v| !v.is_null())
        .collect();
    Some(docs)
}

/// Every directory under `root` holding a kustomization.yaml, sorted.
pub fn overlays(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .collect();
    out.sort();
    out
}
