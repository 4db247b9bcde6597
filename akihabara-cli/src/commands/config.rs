//! `akihabara config init`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::config::{MINER_TEMPLATE, VALIDATOR_TEMPLATE};
use crate::exit::bad_input;
use crate::out;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a commented template to standard output or --out
    Init(ConfigInitArgs),
}

#[derive(Debug, Args)]
pub struct ConfigInitArgs {
    /// Which daemon the template is for
    #[arg(long, value_enum)]
    pub role: Role,
    /// Write here instead of standard output (refuses to overwrite)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A daemon role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// `akihabara miner run`
    Miner,
    /// `akihabara validator run`
    Validator,
}

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
