//! What the client needs from the runtime, checked against its metadata.
//!
//! The client reads the live chain's metadata at run time (subxt's dynamic
//! API), so a runtime upgrade never forces a rebuild. This table is the
//! contract: every call, storage item and runtime API the client uses. Before
//! each operation the client checks its entries, so a runtime that lacks one
//! gives [`ChainError::Unsupported`] naming it, never a panic or a garbled
//! extrinsic. The tests check the table against finney's metadata (spec 393)
//! and the local test runtime's (spec 293) where `../shared/chain` has them.

use subxt::Metadata;

use crate::chain::ChainError;

/// One thing the client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// A call: pallet, call name, and its argument names in order.
    Call(&'static str, &'static str, &'static [&'static str]),
    /// A storage item: pallet, entry.
    Storage(&'static str, &'static str),
    /// A runtime API method: trait, method.
    Api(&'static str, &'static str),
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Need::Call(p, c, args) => write!(f, "call {p}.{c}({})", args.join(", ")),
            Need::Storage(p, s) => write!(f, "storage {p}.{s}"),
            Need::Api(t, m) => write!(f, "runtime API {t}.{m}"),
        }
    }
}

const SM: &str = "SubtensorModule";

/// `set_weights`.
pub const SET_WEIGHTS: Need = Need::Call(
    SM,
    "set_weights",
    &["netuid", "dests", "weights", "version_key"],
);
/// `commit_weights`.
pub const COMMIT_WEIGHTS: Need = Need::Call(SM, "commit_weights", &["netuid", "commit_hash"]);
/// `reveal_weights`.
pub const REVEAL_WEIGHTS: Need = Need::Call(
    SM,
    "reveal_weights",
    &["netuid", "uids", "values", "salt", "version_key"],
);
/// `serve_axon`.
pub const SERVE_AXON: Need = Need::Call(
    SM,
    "serve_axon",
    &[
        "netuid",
        "version",
        "ip",
        "port",
        "ip_type",
        "protocol",
        "placeholder1",
        "placeholder2",
    ],
);
/// `burned_register`.
pub const BURNED_REGISTER: Need = Need::Call(SM, "burned_register", &["netuid", "hotkey"]);
/// `Uids`.
pub const UIDS: Need = Need::Storage(SM, "Uids");
/// `Axons`.
pub const AXONS: Need = Need::Storage(SM, "Axons");
/// `SubnetworkN`.
pub const SUBNETWORK_N: Need = Need::Storage(SM, "SubnetworkN");
/// `LastUpdate`.
pub const LAST_UPDATE: Need = Need::Storage(SM, "LastUpdate");
/// `NetworksAdded`.
pub const NETWORKS_ADDED: Need = Need::Storage(SM, "NetworksAdded");
/// `get_metagraph`.
pub const GET_METAGRAPH: Need = Need::Api("SubnetInfoRuntimeApi", "get_metagraph");
/// `get_subnet_hyperparams`.
pub const GET_HYPERPARAMS: Need = Need::Api("SubnetInfoRuntimeApi", "get_subnet_hyperparams");

/// `commit_crv3_weights` (timelocked commits before spec 297; the local
/// test runtime, spec 293).
pub const COMMIT_CRV3: Need = Need::Call(
    SM,
    "commit_crv3_weights",
    &["netuid", "commit", "reveal_round"],
);
/// `commit_timelocked_weights` (spec 297 and later; Finney, spec 393).
pub const COMMIT_TIMELOCKED: Need = Need::Call(
    SM,
    "commit_timelocked_weights",
    &["netuid", "commit", "reveal_round", "commit_reveal_version"],
);
/// `commit_timelocked_mechanism_weights` (runtimes with mechanisms).
pub const COMMIT_TIMELOCKED_MECH: Need = Need::Call(
    SM,
    "commit_timelocked_mechanism_weights",
    &[
        "netuid",
        "mecid",
        "commit",
        "reveal_round",
        "commit_reveal_version",
    ],
);
/// `RevealPeriodEpochs`.
pub const REVEAL_PERIOD: Need = Need::Storage(SM, "RevealPeriodEpochs");
/// `CommitRevealWeightsVersion` (spec 297 and later).
pub const CR_VERSION: Need = Need::Storage(SM, "CommitRevealWeightsVersion");
/// `TimelockedWeightCommits` (spec 297 and later).
pub const TIMELOCKED_COMMITS: Need = Need::Storage(SM, "TimelockedWeightCommits");
/// `CRV3WeightCommits` (before spec 297).
pub const CRV3_COMMITS: Need = Need::Storage(SM, "CRV3WeightCommits");
/// `WeightCommits` (hash commits).
pub const WEIGHT_COMMITS: Need = Need::Storage(SM, "WeightCommits");
/// `Weights`.
pub const WEIGHTS: Need = Need::Storage(SM, "Weights");
/// `Drand.Pulses`.
pub const PULSES: Need = Need::Storage("Drand", "Pulses");
/// `Drand.LastStoredRound`.
pub const LAST_STORED_ROUND: Need = Need::Storage("Drand", "LastStoredRound");

/// Everything the client uses.
pub const ALL: &[Need] = &[
    SET_WEIGHTS,
    COMMIT_WEIGHTS,
    REVEAL_WEIGHTS,
    SERVE_AXON,
    BURNED_REGISTER,
    UIDS,
    AXONS,
    SUBNETWORK_N,
    LAST_UPDATE,
    NETWORKS_ADDED,
    GET_METAGRAPH,
    GET_HYPERPARAMS,
];

/// Whether `metadata` provides `need`.
pub fn provides(metadata: &Metadata, need: Need) -> bool {
    match need {
        Need::Call(pallet, call, args) => metadata
            .pallet_by_name(pallet)
            .and_then(|p| p.call_variant_by_name(call))
            .is_some_and(|v| {
                v.fields.len() == args.len()
                    && v.fields
                        .iter()
                        .zip(args)
                        .all(|(f, a)| f.name.as_deref() == Some(*a))
            }),
        Need::Storage(pallet, entry) => metadata
            .pallet_by_name(pallet)
            .and_then(|p| p.storage())
            .and_then(|s| s.entry_by_name(entry))
            .is_some(),
        Need::Api(api, method) => metadata
            .runtime_api_trait_by_name(api)
            .and_then(|t| t.method_by_name(method))
            .is_some(),
    }
}

/// The entries of `needs` that `metadata` lacks.
pub fn missing(metadata: &Metadata, needs: &[Need]) -> Vec<Need> {
    needs
        .iter()
        .copied()
        .filter(|n| !provides(metadata, *n))
        .collect()
}

/// [`ChainError::Unsupported`] for the first missing entry of `needs`.
pub fn require(metadata: &Metadata, needs: &[Need]) -> Result<(), ChainError> {
    match missing(metadata, needs).first() {
        None => Ok(()),
        Some(n) => Err(ChainError::Unsupported(format!(
            "{n} (spec version checked: this client reads metadata at run time)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finney_and_the_local_runtime_provide_everything() {
        for name in ["finney.scale", "subtensor-local-spec293.scale"] {
            let Some(md) = crate::chain::subtensor::shared_metadata(name) else {
                continue;
            };
            assert_eq!(missing(&md, ALL), Vec::<Need>::new(), "{name}");
            let common = [
                REVEAL_PERIOD,
                WEIGHT_COMMITS,
                WEIGHTS,
                PULSES,
                LAST_STORED_ROUND,
            ];
            assert_eq!(missing(&md, &common), Vec::<Need>::new(), "{name}");
            // Each runtime has one generation of timelocked commits.
            let (has, lacks) = if name == "finney.scale" {
                (
                    vec![
                        COMMIT_TIMELOCKED,
                        COMMIT_TIMELOCKED_MECH,
                        CR_VERSION,
                        TIMELOCKED_COMMITS,
                    ],
                    vec![COMMIT_CRV3],
                )
            } else {
                (
                    vec![COMMIT_CRV3, CRV3_COMMITS],
                    vec![
                        COMMIT_TIMELOCKED,
                        COMMIT_TIMELOCKED_MECH,
                        CR_VERSION,
                        TIMELOCKED_COMMITS,
                    ],
                )
            };
            assert_eq!(missing(&md, &has), Vec::<Need>::new(), "{name}");
            assert_eq!(missing(&md, &lacks), lacks, "{name}");
            let absent = Need::Call(SM, "no_such_call", &[]);
            let renamed = Need::Call(
                SM,
                "set_weights",
                &["netuid", "uids", "weights", "version_key"],
            );
            assert_eq!(
                missing(&md, &[absent, renamed, UIDS]),
                vec![absent, renamed]
            );
            let err = require(&md, &[absent]).expect_err("absent");
            assert!(
                err.to_string()
                    .contains("call SubtensorModule.no_such_call"),
                "{err}"
            );
        }
    }
}
