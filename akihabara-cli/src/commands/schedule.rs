//! `akihabara schedule`.

use akihabara_core::schedule::{Layout, Schedule};
use akihabara_core::strategy::{self, AllocationRequest, Eligibility};
use akihabara_core::{AccountId, Metagraph};
use anyhow::Context;

use super::read_metagraph;
use crate::args::{FilterArgs, ScheduleArgs};
use crate::exit::bad_input;
use crate::{out, render};

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
    if a.json {
        out::println(serde_json::to_string_pretty(&schedule)?)?;
    } else {
        out::print(render::schedule_table(&schedule, &mg, a.window.min_blocks))?;
    }
    if let Some(path) = &a.svg {
        render::write_file(path, &render::schedule_svg(&schedule))?;
        if !a.json {
            out::println(format!("wrote {}", path.display()))?;
        }
    }
    Ok(())
}
