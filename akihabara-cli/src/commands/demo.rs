//! `akihabara demo`: a one-command tour on a synthetic subnet.

use akihabara_core::Window;
use akihabara_core::schedule::{Layout, Schedule};
use akihabara_core::sim::{self, SimConfig, Simulation};
use akihabara_core::strategy::{self, AllocationRequest, BUILTIN_STRATEGIES, Eligibility};
use serde_json::json;
use std::fmt::Write as _;

use super::sim::progress_bar;
use crate::args::DemoArgs;
use crate::exit::bad_input;
use crate::{out, render};

const WINDOWS: usize = 20;

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let mg = sim::synthetic_metagraph(a.validators, 3, a.seed).map_err(bad_input)?;
    let window = Window::containing(mg.block(), 720)?;
    let req = AllocationRequest::new(window, 40, Eligibility::new().candidates(&mg))?;
    let strat = strategy::by_name("proportional")?;
    let contiguous = Schedule::build(&*strat, &req, Layout::Contiguous)?;
    let interleaved = Schedule::build(&*strat, &req, Layout::Interleaved)?;

    let cfg = SimConfig::default()
        .metagraph(mg.clone())
        .miners(a.miners)
        .windows(WINDOWS)
        .seed(a.seed);
    let bar = progress_bar(WINDOWS as u64, "simulating");
    let report = Simulation::with_builtins(cfg, BUILTIN_STRATEGIES)?
        .run(|w| bar.set_position(w as u64))
        .map_err(bad_input)?;
    bar.finish_and_clear();

    if a.json {
        let doc = json!({
            "demo": "scheduling preview (simulation: synthetic subnet, no chain, no GPU)",
            "seed": a.seed,
            "schedule": contiguous,
            "interleaved_slots": interleaved.slots().len(),
            "simulation": report,
        });
        return Ok(out::println(serde_json::to_string_pretty(&doc)?)?);
    }
    let mut text = String::new();
    writeln!(
        text,
        "akihabara demo: scheduling preview on a synthetic subnet (a simulation: no chain, no GPU)\n\
         seed {}, {} validators and {} miners, block {}\n",
        a.seed,
        a.validators,
        mg.len() - a.validators,
        mg.block().get()
    )?;
    writeln!(
        text,
        "1. Each miner splits every window of 720 blocks (2 x tempo 360) across the"
    )?;
    writeln!(
        text,
        "   validators, in proportion to stake, with at least 40 blocks each:\n"
    )?;
    text.push_str(&indent(&render::schedule_table(&contiguous, &mg, 40)));
    writeln!(
        text,
        "\n   With --layout interleaved the same counts are spread through the window in\n   \
         {} slots, so a validator polling every 25 blocks sees steady service.\n",
        interleaved.slots().len()
    )?;
    writeln!(
        text,
        "2. Which strategy should a miner run? {} miners over {WINDOWS} windows:\n",
        a.miners
    )?;
    text.push_str(&indent(&render::sim_table(&report)));
    writeln!(
        text,
        "\nNext steps:\n  akihabara schedule --help     schedule your own subnet from a metagraph snapshot\n  \
         akihabara sim --help          compare strategies at scale, draw them with --svg\n\n\
         Still to come in the demo: axons, proofs of work, scores and weights."
    )?;
    Ok(out::print(text)?)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("   {l}\n")
            }
        })
        .collect()
}
