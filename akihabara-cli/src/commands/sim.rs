//! `akihabara sim`.

use std::path::PathBuf;

use akihabara_core::sim::{SimConfig, SimReport, Simulation};
use clap::Args;

use super::{read_metagraph, window_len};
use crate::exit::bad_input;
use crate::{out, render};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Synthetic validators (heavy-tailed stakes), at most 65536
    #[arg(
        long,
        value_name = "V",
        default_value_t = 64,
        conflicts_with = "metagraph"
    )]
    pub validators: usize,
    /// Miners, at most 65536; miner i runs strategy i mod (number of strategies)
    #[arg(long, value_name = "M", default_value_t = 256)]
    pub miners: usize,
    /// Windows to simulate, at most 100000 (and miners x validators x
    /// windows at most 2^32)
    #[arg(long, value_name = "W", default_value_t = 20)]
    pub windows: usize,
    /// Strategies to compare (comma-separated)
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        default_value = "stake,equal,proportional,emission"
    )]
    pub strategies: Vec<String>,
    /// Take validators (permits and stakes) from a metagraph snapshot instead
    #[arg(long, value_name = "FILE")]
    pub metagraph: Option<PathBuf>,
    /// RNG seed; the same seed replays the same simulation
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Blocks per window
    #[arg(
        long,
        value_name = "L",
        default_value_t = 720,
        conflicts_with = "tempo"
    )]
    pub window_len: u64,
    /// Subnet tempo: shorthand for --window-len 2*T
    #[arg(long, value_name = "T")]
    pub tempo: Option<u64>,
    /// Minimum blocks for any validator that is served
    #[arg(long, value_name = "N", default_value_t = akihabara_core::strategy::DEFAULT_MIN_BLOCKS)]
    pub min_blocks: u64,
    /// Per-window log-normal stake drift, 0 to 1 (0 keeps stakes fixed)
    #[arg(long, value_name = "SIGMA", default_value_t = 0.02)]
    pub stake_drift: f64,
    /// Leave out the wall-clock column, so equal seeds give byte-identical output
    #[arg(long)]
    pub no_timing: bool,
    /// Print the report as JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Also draw the comparison as bar charts into this SVG file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

pub fn config(a: &SimArgs) -> anyhow::Result<SimConfig> {
    let len = window_len(Some(a.window_len).filter(|_| a.tempo.is_none()), a.tempo)?;
    if a.min_blocks > len {
        anyhow::bail!(
            "--min-blocks {} is larger than the window ({len} blocks)",
            a.min_blocks
        );
    }
    if a.strategies.is_empty() {
        anyhow::bail!("--strategies needs at least one name");
    }
    let mut cfg = SimConfig::default()
        .validators(a.validators)
        .miners(a.miners)
        .windows(a.windows)
        .window_len(len)
        .min_blocks(a.min_blocks)
        .seed(a.seed)
        .stake_drift(a.stake_drift);
    if let Some(path) = &a.metagraph {
        cfg = cfg.metagraph(read_metagraph(path)?);
    }
    Ok(cfg)
}

pub fn simulate(a: &SimArgs) -> anyhow::Result<SimReport> {
    let cfg = config(a).map_err(bad_input)?;
    let names: Vec<&str> = a.strategies.iter().map(|s| s.trim()).collect();
    let sim = Simulation::with_builtins(cfg, &names).map_err(bad_input)?;
    let bar = crate::progress::bar(a.windows as u64, "windows", "simulating");
    let report = sim.run(|w| bar.set_position(w as u64)).map_err(bad_input)?;
    bar.finish_and_clear();
    Ok(if a.no_timing {
        report.without_timings()
    } else {
        report
    })
}

pub fn run(a: SimArgs) -> anyhow::Result<()> {
    let report = simulate(&a)?;
    // The picture first: an --svg that cannot be written fails (exit 2)
    // before anything is printed.
    if let Some(path) = &a.svg {
        render::write_file(path, &render::sim_svg(&report))?;
    }
    if a.json {
        out::println(serde_json::to_string_pretty(&report)?)?;
    } else {
        out::print(render::sim_table(&report))?;
    }
    if let (Some(path), false) = (&a.svg, a.json) {
        out::println(format!("wrote {}", path.display()))?;
    }
    Ok(())
}
