//! `tessera overlay DIR`: writes an install for one cluster that works wherever DIR is — the
//! shipped manifests and components under `DIR/tessera/` (Tessera's, replaced on every run) and
//! the example overlay as `DIR/kustomization.yaml` (the operator's: written only when absent,
//! with its paths pointing into `DIR/tessera/`). `kubectl apply -k DIR` then needs neither the
//! repository nor the network; running a newer `tessera overlay DIR` is the upgrade of the base.

mod files;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

/// Where the shipped tree goes inside the overlay directory.
pub const BASE: &str = "tessera";

/// The example overlay the operator edits.
const EXAMPLE: &str = "install/example/kustomization.yaml";

/// `tessera overlay` flags.
#[derive(Debug, Clone, Args)]
pub struct OverlayArgs {
    /// Directory to write (created when missing); `kubectl apply -k DIR` installs it.
    pub dir: PathBuf,
}

/// Writes the base and, when absent, the operator's kustomization.
pub fn run(args: OverlayArgs) -> anyhow::Result<()> {
    let base = args.dir.join(BASE);
    for (path, content) in files::FILES {
        if *path == EXAMPLE {
            continue;
        }
        write(&base.join(path), content)?;
    }
    println!(
        "wrote the shipped manifests to {} (Tessera's: replaced by every `tessera overlay`)",
        base.display()
    );
    let own = args.dir.join("kustomization.yaml");
    if own.exists() {
        println!("kept {} (yours)", own.display());
    } else {
        write(&own, &kustomization())?;
        println!(
            "wrote {}: set the image, the kube-scheduler version and replicas there",
            own.display()
        );
    }
    Ok(())
}

/// The example overlay with its paths pointing into the base beside it.
pub fn kustomization() -> String {
    let example = files::FILES
        .iter()
        .find(|(p, _)| *p == EXAMPLE)
        .map_or("", |(_, c)| c);
    example
        .replace("../../manifests", &format!("{BASE}/manifests"))
        .replace("../components/", &format!("{BASE}/install/components/"))
}

fn write(path: &Path, content: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_kustomization_reaches_nothing_outside_its_directory() {
        let k = kustomization();
        assert!(k.contains("- tessera/manifests"), "{k}");
        assert!(!k.contains("../"), "{k}");
    }
}
