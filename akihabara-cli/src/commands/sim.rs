//! `akihabara sim`.

use akihabara_core::sim::{SimConfig, SimReport, Simulation};
use indicatif::{ProgressBar, ProgressStyle};

use super::{read_metagraph, window_len};
use crate::args::SimArgs;
use crate::exit::bad_input;
use crate::{out, render};

/// A progress bar on standard error; indicatif draws nothing when it is not a terminal.
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {pos}/{len} windows, {elapsed} elapsed, about {eta} left",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
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
    let bar = progress_bar(a.windows as u64, "simulating");
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
    if a.json {
        out::println(serde_json::to_string_pretty(&report)?)?;
    } else {
        out::print(render::sim_table(&report))?;
    }
    if let Some(path) = &a.svg {
        render::write_file(path, &render::sim_svg(&report))?;
        if !a.json {
            out::println(format!("wrote {}", path.display()))?;
        }
    }
    Ok(())
}
