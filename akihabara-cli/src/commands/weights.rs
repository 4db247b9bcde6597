//! `akihabara weights normalize` (the chain writes live in `chain.rs`).

use akihabara_core::Uid;
use akihabara_core::weights::{convert_for_emit, normalize_max_weight};
use serde_json::json;

use crate::args::{WeightsCommand, WeightsNormalizeArgs};
use crate::exit::bad_input;
use crate::out;

/// `akihabara weights …`.
pub fn run(cmd: WeightsCommand) -> anyhow::Result<()> {
    match cmd {
        WeightsCommand::Normalize(a) => normalize(a),
        WeightsCommand::Set(a) => super::chain::set_weights(a),
        WeightsCommand::Commit(a) => super::chain::commit_weights(a),
        WeightsCommand::Reveal(a) => super::chain::reveal_weights(a),
    }
}

fn normalize(a: WeightsNormalizeArgs) -> anyhow::Result<()> {
    let uids: Vec<Uid> = a.uids.iter().copied().map(Uid).collect();
    let weights = match a.max_weight_limit {
        Some(limit) => normalize_max_weight(&a.weights, limit).map_err(bad_input)?,
        None => a.weights.clone(),
    };
    let w = convert_for_emit(&uids, &weights).map_err(bad_input)?;
    let uids: Vec<u16> = w.uids.iter().map(|u| u.0).collect();
    if a.json {
        out::println(json!({ "uids": uids, "weights": w.weights }).to_string())?;
    } else if w.is_empty() {
        out::println("every weight is zero: nothing to set on chain")?;
    } else {
        out::println("UID  WEIGHT (u16)")?;
        for (u, v) in uids.iter().zip(&w.weights) {
            out::println(format!("{u:<4} {v}"))?;
        }
    }
    Ok(())
}
