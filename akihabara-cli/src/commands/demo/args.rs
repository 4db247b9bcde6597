//! The flags of `akihabara demo`, and their checks.

use akihabara_core::strategy;
use akihabara_gpu::{Challenge, Seed};
use clap::Args;

use crate::exit::bad_input;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Validators
    #[arg(long, value_name = "V", default_value_t = 2)]
    pub validators: u16,
    /// Miners
    #[arg(long, value_name = "M", default_value_t = 3)]
    pub miners: u16,
    /// Windows to run
    #[arg(long, value_name = "W", default_value_t = 3)]
    pub windows: u32,
    /// Matrix size of each challenge
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub n: u32,
    /// Products per challenge
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub count: u32,
    /// Rows a validator opens per challenge
    #[arg(long, value_name = "S", default_value_t = 16)]
    pub samples: u32,
    /// Make miner number I (1-based) cheat: it skips every odd row
    #[arg(long, value_name = "I")]
    pub cheat_miner: Vec<u16>,
    /// The miners' allocation strategy
    #[arg(long, value_name = "NAME", default_value = "proportional")]
    pub strategy: String,
    /// Run against a real chain instead of the simulation: `local` or a ws:// URL
    /// of a dev chain whose subnet was set up by ../shared/chain/setup_subnet.py
    /// (dev keys //validator1.. and //miner1..; --validators and --miners are
    /// taken from the chain)
    #[arg(long, value_name = "NET")]
    pub network: Option<String>,
    /// The subnet, with --network
    #[arg(long, value_name = "N", default_value_t = 2, requires = "network")]
    pub netuid: u16,
    /// Print one JSON document instead of text
    #[arg(long)]
    pub json: bool,
}

pub(super) fn check(a: &DemoArgs) -> anyhow::Result<()> {
    let bad = |m: String| Err(bad_input(anyhow::anyhow!(m)));
    if !(1..=16).contains(&a.validators) {
        return bad(format!(
            "--validators must be 1 to 16, not {}",
            a.validators
        ));
    }
    if !(1..=32).contains(&a.miners) {
        return bad(format!("--miners must be 1 to 32, not {}", a.miners));
    }
    if !(1..=50).contains(&a.windows) {
        return bad(format!("--windows must be 1 to 50, not {}", a.windows));
    }
    if a.samples == 0 {
        return bad("--samples must be at least 1".into());
    }
    if a.n > 2048 {
        return bad(format!(
            "--n {} is too large for a demo (at most 2048)",
            a.n
        ));
    }
    if let Some(i) = a.cheat_miner.iter().find(|i| **i == 0 || **i > a.miners) {
        return bad(format!(
            "--cheat-miner {i}: miners are numbered 1 to {}",
            a.miners
        ));
    }
    Challenge::new(Seed([0; 32]), a.n, a.count).map_err(bad_input)?;
    strategy::by_name(&a.strategy).map_err(bad_input)?;
    Ok(())
}
