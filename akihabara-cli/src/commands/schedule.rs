//! `akihabara schedule`.

use std::path::PathBuf;

use akihabara_core::strategy::{self, AllocationRequest, Eligibility};
use akihabara_core::{AccountId, Block, Layout, Metagraph, Schedule, Tao, Window};
use anyhow::Context;
use clap::Args;

use super::{read_metagraph, window_len};
use crate::exit::bad_input;
use crate::{out, render};

/// Which window to schedule.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// First block of the window [default: the window containing the snapshot's block]
    #[arg(long, value_name = "BLOCK")]
    pub window_start: Option<u64>,
    /// Blocks per window [default: 720, i.e. 2 * tempo 360 as on mainnet]
    #[arg(long, value_name = "L", conflicts_with = "tempo")]
    pub window_len: Option<u64>,
    /// Subnet tempo: shorthand for --window-len 2*T
    #[arg(long, value_name = "T")]
    pub tempo: Option<u64>,
    /// Minimum blocks for any validator that is served
    #[arg(long, value_name = "N", default_value_t = akihabara_core::strategy::DEFAULT_MIN_BLOCKS)]
    pub min_blocks: u64,
}

/// Which validators may be served.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Serve only validators with at least this stake, in TAO (e.g. 1000 or 0.5)
    #[arg(long, value_name = "TAO")]
    pub min_stake: Option<Tao>,
    /// Serve at most this many validators, highest stake first
    #[arg(long, value_name = "N")]
    pub max_validators: Option<usize>,
    /// Never serve these hotkeys (comma-separated SS58)
    #[arg(long, value_name = "SS58,...", value_delimiter = ',')]
    pub deny: Vec<String>,
    /// Serve only these hotkeys; they must still pass every other check
    #[arg(long, value_name = "SS58,...", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Also serve neurons without a validator permit
    #[arg(long)]
    pub ignore_permits: bool,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Metagraph snapshot (JSON; `-` reads standard input)
    #[arg(long, value_name = "FILE")]
    pub metagraph: PathBuf,
    /// Allocation strategy: proportional, stake, equal or emission
    #[arg(long, value_name = "NAME", default_value = "proportional")]
    pub strategy: String,
    /// contiguous (one slot per validator) or interleaved (spread through the window)
    #[arg(long, value_name = "LAYOUT", default_value = "contiguous")]
    pub layout: String,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print the schedule as JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Also draw the window as a Gantt strip into this SVG file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

impl WindowArgs {
    /// The window to schedule; `block` is the snapshot's block, used when no start is given.
    pub fn resolve(&self, block: Block) -> anyhow::Result<Window> {
        let len = window_len(self.window_len, self.tempo)?;
        let window = match self.window_start {
            Some(start) => Window::new(Block(start), len)?,
            None => Window::containing(block, len)?,
        };
        if self.min_blocks > len {
            anyhow::bail!(
                "--min-blocks {} is larger than the window ({len} blocks)",
                self.min_blocks
            );
        }
        Ok(window)
    }
}

impl FilterArgs {
    /// The eligibility filter these flags describe.
    pub fn build(&self) -> anyhow::Result<Eligibility> {
        let parse = |list: &[String], flag: &str| -> anyhow::Result<Vec<AccountId>> {
            list.iter()
                .map(|s| s.parse::<AccountId>().with_context(|| format!("--{flag}")))
                .collect()
        };
        let mut e = Eligibility::new().deny(parse(&self.deny, "deny")?);
        if !self.allow.is_empty() {
            e = e.allow_only(parse(&self.allow, "allow")?);
        }
        if let Some(t) = self.min_stake {
            e = e.min_stake(t);
        }
        if let Some(n) = self.max_validators {
            e = e.max_validators(n);
        }
        if self.ignore_permits {
            e = e.ignore_permits();
        }
        Ok(e)
    }
}

/// Builds the schedule the flags describe (every error here is bad input).
pub fn build(a: &ScheduleArgs, mg: &Metagraph) -> anyhow::Result<Schedule> {
    let strategy = strategy::by_name(&a.strategy)?;
    let layout: Layout = a.layout.parse()?;
    let window = a.window.resolve(mg.block())?;
    let candidates = a.filter.build()?.candidates(mg);
    let req = AllocationRequest::new(window, a.window.min_blocks, candidates)?;
    Ok(Schedule::build(&*strategy, &req, layout)?)
}

pub fn run(a: ScheduleArgs) -> anyhow::Result<()> {
    let mg = read_metagraph(&a.metagraph).map_err(bad_input)?;
    let schedule = build(&a, &mg).map_err(bad_input)?;
    for note in schedule.notes() {
        eprintln!("note: {note}");
    }
    // The picture first: an --svg that cannot be written fails (exit 2)
    // before anything is printed.
    if let Some(path) = &a.svg {
        render::write_file(path, &render::schedule_svg(&schedule))?;
    }
    if a.json {
        out::println(serde_json::to_string_pretty(&schedule)?)?;
    } else {
        out::print(render::schedule_table(&schedule, &mg, a.window.min_blocks))?;
    }
    if let (Some(path), false) = (&a.svg, a.json) {
        out::println(format!("wrote {}", path.display()))?;
    }
    Ok(())
}
