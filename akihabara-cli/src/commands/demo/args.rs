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
    /// Make the miner with this uid cheat: it skips every odd row. Uids are
    /// those of the MINER column: the miners follow the validators, so with
    /// 2 validators and 3 miners they are 2 to 4
    #[arg(long, value_name = "UID")]
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
    // On a real chain the uids are the chain's, checked once it is read.
    let miner_uids = a.validators..a.validators.saturating_add(a.miners);
    if a.network.is_none()
        && let Some(u) = a.cheat_miner.iter().find(|u| !miner_uids.contains(u))
    {
        return bad(cheat_uid_error(*u, &miner_uids));
    }
    Challenge::new(Seed([0; 32]), a.n, a.count).map_err(bad_input)?;
    strategy::by_name(&a.strategy).map_err(bad_input)?;
    Ok(())
}

/// The error for a `--cheat-miner` uid that is not a miner's.
fn cheat_uid_error(uid: u16, miners: &std::ops::Range<u16>) -> String {
    format!(
        "--cheat-miner {uid}: not a miner's uid; the miners' uids are {} to {} (the MINER column)",
        miners.start,
        miners.end.saturating_sub(1)
    )
}

/// `--cheat-miner` against the miners a real chain has.
pub(super) fn check_cheat_uids(a: &DemoArgs, miners: &[u16]) -> anyhow::Result<()> {
    match a.cheat_miner.iter().find(|u| !miners.contains(u)) {
        None => Ok(()),
        Some(u) => {
            let list: Vec<String> = miners.iter().map(u16::to_string).collect();
            Err(bad_input(anyhow::anyhow!(
                "--cheat-miner {u}: not a miner's uid; the dev miners' uids on this chain are {}",
                list.join(", ")
            )))
        }
    }
}
