//! `akihabara metagraph`: a subnet's metagraph, read from the chain.

use akihabara_core::chain::ChainClient;
use akihabara_core::metagraph::snapshot;
use clap::Args;

use crate::args::SubnetArgs;
use crate::{out, render};

#[derive(Debug, Args)]
pub struct MetagraphArgs {
    #[command(flatten)]
    pub subnet: SubnetArgs,
    /// Print the snapshot JSON (the format --metagraph reads)
    #[arg(long)]
    pub json: bool,
}

/// `akihabara metagraph`.
pub fn run(a: MetagraphArgs) -> anyhow::Result<()> {
    let mg = a
        .subnet
        .call(async |chain, netuid| chain.metagraph(netuid).await)?;
    if a.json {
        out::println(snapshot::to_string(&mg))?;
        return Ok(());
    }
    out::println(format!(
        "netuid {} at block {}: {} neurons",
        mg.netuid(),
        mg.block(),
        mg.len()
    ))?;
    let rows: Vec<Vec<String>> = mg
        .neurons()
        .iter()
        .map(|n| {
            vec![
                n.uid.to_string(),
                n.hotkey.to_string(),
                render::format_tao(n.stake.to_tao()),
                if n.validator_permit { "yes" } else { "" }.to_owned(),
                n.axon.map(|s| s.to_string()).unwrap_or_default(),
                n.incentive.map(|v| format!("{v:.4}")).unwrap_or_default(),
                n.dividends.map(|v| format!("{v:.4}")).unwrap_or_default(),
            ]
        })
        .collect();
    use render::Align::{Left, Right};
    out::print(render::table(
        &[
            ("UID", Right),
            ("HOTKEY", Left),
            ("STAKE (α)", Right),
            ("PERMIT", Left),
            ("AXON", Left),
            ("INCENTIVE", Right),
            ("DIVIDENDS", Right),
        ],
        &rows,
    ))?;
    Ok(())
}
