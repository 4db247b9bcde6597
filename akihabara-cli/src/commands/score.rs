//! `akihabara score`.

use std::path::{Path, PathBuf};

use akihabara::roles::score_epoch;
use akihabara_core::score::{Ema, Measurements, Penalties, ScoringConfig};
use anyhow::Context;
use clap::Args;
use serde_json::json;

use crate::args::OutputArgs;
use crate::commands::read_metagraph;
use crate::exit::bad_input;
use crate::{out, render};

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Metagraph snapshot (JSON): the uids that may be scored
    #[arg(long, value_name = "FILE")]
    pub metagraph: PathBuf,
    /// What was measured this epoch (JSON; see examples/measurements.json)
    #[arg(long, value_name = "FILE")]
    pub measurements: PathBuf,
    /// gpu-table, hardware-class, pow or composite
    #[arg(long, value_name = "NAME", default_value = "gpu-table")]
    pub scorer: String,
    /// Scorer configuration (TOML; see examples/scoring.toml)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep EMA and penalties across runs in this file (created if missing)
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What `--state` keeps between epochs.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    ema: Ema,
    penalties: Penalties,
}

/// The largest measurements or state file read, bytes: a few hundred bytes
/// per uid, so a subnet of 4,096 uids is a few MiB.
const MAX_JSON_BYTES: u64 = 64 << 20;

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    akihabara_core::fs::read_limited(path, MAX_JSON_BYTES)
        .with_context(|| format!("reading the {what} {}", path.display()))
        .map_err(bad_input)
}

/// `akihabara score`.
pub fn run(a: ScoreArgs) -> anyhow::Result<()> {
    let metagraph = read_metagraph(&a.metagraph)
        .with_context(|| format!("metagraph {}", a.metagraph.display()))
        .map_err(bad_input)?;
    let m: Measurements = serde_json::from_slice(&read(&a.measurements, "measurements")?)
        .with_context(|| format!("measurements {}", a.measurements.display()))
        .map_err(bad_input)?;
    m.validate_against(&metagraph)
        .with_context(|| format!("measurements {}", a.measurements.display()))
        .map_err(bad_input)?;
    let config = match &a.config {
        Some(p) => {
            let text = akihabara_core::fs::read_text_limited(p, crate::config::MAX_CONFIG_BYTES)
                .with_context(|| format!("reading the configuration {}", p.display()))
                .map_err(bad_input)?;
            ScoringConfig::from_toml(&text)
                .with_context(|| format!("configuration {}", p.display()))
                .map_err(bad_input)?
        }
        None => ScoringConfig::default(),
    };
    let alpha = config.ema.as_ref().map_or(0.1, |e| e.alpha);
    let decay = config.penalty.as_ref().map_or(0.5, |p| p.decay);
    let mut state = match &a.state {
        Some(p) if p.exists() => serde_json::from_slice::<State>(&read(p, "state file")?)
            .with_context(|| format!("state file {}", p.display()))
            .map_err(bad_input)?,
        _ => State {
            ema: Ema::new(alpha).map_err(bad_input)?,
            penalties: Penalties::new(decay).map_err(bad_input)?,
        },
    };
    if a.state.is_some() {
        state.penalties.advance(&m);
    }
    let scorer = config
        .build(&a.scorer, a.state.is_some().then_some(&state.penalties))
        .map_err(bad_input)?;
    // The validator's epoch, as `validator run` scores it.
    let ema = a.state.is_some().then_some(&mut state.ema);
    let epoch = score_epoch(&*scorer, &m, ema).map_err(bad_input)?;
    let (scores, weights) = (epoch.smoothed, epoch.weights);
    for w in &scores.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(p) = &a.state {
        render::write_file(p, &serde_json::to_string_pretty(&state)?)
            .context("saving the state")?;
    }
    if a.output.json {
        let per_uid: serde_json::Map<String, serde_json::Value> = scores
            .scores
            .iter()
            .map(|(u, s)| (u.0.to_string(), json!(s.get())))
            .collect();
        out::println(
            json!({
                "scorer": scorer.name(),
                "scores": per_uid,
                "weights": {
                    "uids": weights.uids.iter().map(|u| u.0).collect::<Vec<_>>(),
                    "weights": weights.weights,
                },
                "warnings": scores.warnings,
            })
            .to_string(),
        )?;
        return Ok(());
    }
    out::println(format!(
        "{} scorer{} · {} miners scored\n\nUID  HOTKEY                                            SCORE         WEIGHT (u16)",
        scorer.name(),
        if a.state.is_some() { " with EMA" } else { "" },
        scores.scores.len()
    ))?;
    for (uid, s) in &scores.scores {
        let hotkey = metagraph
            .neurons()
            .iter()
            .find(|n| n.uid == *uid)
            .map(|n| n.hotkey.to_string())
            .unwrap_or_default();
        let w = weights
            .uids
            .iter()
            .position(|u| u == uid)
            .map_or(0, |i| weights.weights[i]);
        out::println(format!("{:<4} {hotkey:<49} {:<13.6} {w}", uid.0, s.get()))?;
    }
    if weights.is_empty() {
        out::println("\nevery score is zero: no weights would be set")?;
    }
    Ok(())
}
