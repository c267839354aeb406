//! `tessera crd`: prints the CustomResourceDefinitions generated from the Rust types.

use anyhow::Context;

/// Prints the InjectionProfile CRD as YAML.
pub fn run() -> anyhow::Result<()> {
    let yaml = tessera_webhook::crd::injection_profile_yaml().context("serialising the CRD")?;
    print!("{yaml}");
    Ok(())
}
