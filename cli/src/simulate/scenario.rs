//! Bundled scenario (placeholder until written).
use anyhow::Result;
use super::SimulateArgs;
pub fn run(_args: &SimulateArgs) -> Result<()> { anyhow::bail!("scenario not yet") }
