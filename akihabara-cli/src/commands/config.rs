//! `akihabara config init`.

use anyhow::Context;

use crate::args::{ConfigInitArgs, Role};
use crate::config::{MINER_TEMPLATE, VALIDATOR_TEMPLATE};
use crate::exit::bad_input;
use crate::out;

/// Writes the role's commented template.
pub fn init(a: ConfigInitArgs) -> anyhow::Result<()> {
    let text = match a.role {
        Role::Miner => MINER_TEMPLATE,
        Role::Validator => VALIDATOR_TEMPLATE,
    };
    match &a.out {
        None => Ok(out::print(text)?),
        Some(path) => {
            if path.exists() {
                return Err(bad_input(anyhow::anyhow!(
                    "{} exists; not overwriting it (remove it first)",
                    path.display()
                )));
            }
            akihabara_core::fs::write_atomic(
                path,
                text.as_bytes(),
                akihabara_core::fs::Access::Shared,
            )
            .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
    }
}
