//! The subnet's neurons as seen at one block: [`Neuron`], [`Metagraph`], and the
//! versioned JSON snapshot format that every command reads ([`snapshot`]).

pub mod snapshot;

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{Block, Coldkey, Hotkey, Netuid, Rao, Uid};

/// One registered neuron.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Neuron {
    /// Position in the subnet.
    pub uid: Uid,
    /// The hotkey registered at `uid`.
    pub hotkey: Hotkey,
    /// The coldkey owning `hotkey`, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coldkey: Option<Coldkey>,
    /// The hotkey's stake on this subnet, in rao (`stake_rao` in the file).
    #[serde(rename = "stake_rao")]
    pub stake: Rao,
    /// The hotkey's stake across all subnets, where the chain reports it.
    #[serde(
        rename = "total_stake_rao",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub total_stake: Option<Rao>,
    /// Whether the neuron may set weights.
    pub validator_permit: bool,
    /// The served axon as `ip:port`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axon: Option<SocketAddr>,
    /// Block of the neuron's last weight update, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<Block>,
    /// Normalised incentive in `[0, 1]`, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incentive: Option<f64>,
    /// Normalised dividends in `[0, 1]`, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dividends: Option<f64>,
    /// Tokens emitted to the neuron in the last tempo (alpha on a subnet,
    /// in units of 10^9 rao), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emission: Option<f64>,
    /// Compute other miners send this validator per window, in blocks of one
    /// reference miner (used by the `emission` strategy; absent on chain data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub competitor_load: Option<f64>,
}

impl Neuron {
    /// A neuron with the required fields; the optional ones start empty.
    pub fn new(uid: Uid, hotkey: Hotkey, stake: Rao, validator_permit: bool) -> Neuron {
        Neuron {
            uid,
            hotkey,
            coldkey: None,
            stake,
            total_stake: None,
            validator_permit,
            axon: None,
            last_update: None,
            incentive: None,
            dividends: None,
            emission: None,
            competitor_load: None,
        }
    }
}

/// The neurons of one subnet at one block.
///
/// Built only through [`Metagraph::new`] or the snapshot reader, so uids and
/// hotkeys are unique and neurons are sorted by uid.
#[derive(Debug, Clone, PartialEq)]
pub struct Metagraph {
    netuid: Netuid,
    block: Block,
    neurons: Vec<Neuron>,
    by_hotkey: HashMap<Hotkey, usize>,
}

/// Why a set of neurons is not a valid metagraph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetagraphError {
    /// Two neurons share a uid.
    #[error("duplicate uid {0}")]
    DuplicateUid(Uid),
    /// Two uids share a hotkey.
    #[error("hotkey {hotkey} appears at uid {first} and uid {second}")]
    DuplicateHotkey {
        /// The repeated hotkey.
        hotkey: Hotkey,
        /// First uid holding it.
        first: Uid,
        /// Second uid holding it.
        second: Uid,
    },
    /// A float field outside its range.
    #[error("uid {uid}: {field} = {value} is not a finite number in [{min}, {max}]")]
    OutOfRange {
        /// Uid of the neuron with the bad value.
        uid: Uid,
        /// The field name as written in the snapshot.
        field: &'static str,
        /// The offending value.
        value: f64,
        /// Smallest value the field allows.
        min: f64,
        /// Largest value the field allows.
        max: f64,
    },
}

impl Metagraph {
    /// Checks and indexes `neurons` (any order; stored sorted by uid).
    pub fn new(
        netuid: Netuid,
        block: Block,
        mut neurons: Vec<Neuron>,
    ) -> Result<Metagraph, MetagraphError> {
        neurons.sort_by_key(|n| n.uid);
        for pair in neurons.windows(2) {
            if pair[0].uid == pair[1].uid {
                return Err(MetagraphError::DuplicateUid(pair[0].uid));
            }
        }
        let mut by_hotkey = HashMap::with_capacity(neurons.len());
        for (i, n) in neurons.iter().enumerate() {
            check_range(n.uid, "incentive", n.incentive, 0.0, 1.0)?;
            check_range(n.uid, "dividends", n.dividends, 0.0, 1.0)?;
            check_range(n.uid, "emission", n.emission, 0.0, f64::MAX)?;
            check_range(n.uid, "competitor_load", n.competitor_load, 0.0, f64::MAX)?;
            if let Some(first) = by_hotkey.insert(n.hotkey, i) {
                return Err(MetagraphError::DuplicateHotkey {
                    hotkey: n.hotkey,
                    first: neurons[first].uid,
                    second: n.uid,
                });
            }
        }
        Ok(Metagraph {
            netuid,
            block,
            neurons,
            by_hotkey,
        })
    }

    /// The subnet.
    pub fn netuid(&self) -> Netuid {
        self.netuid
    }

    /// The block the snapshot was taken at.
    pub fn block(&self) -> Block {
        self.block
    }

    /// Forgets the axon addresses `keep` refuses (such a neuron then serves
    /// none) and returns how many it forgot.
    #[cfg(feature = "subtensor")]
    pub(crate) fn retain_axons(&mut self, keep: impl Fn(&std::net::SocketAddr) -> bool) -> usize {
        let mut forgotten = 0;
        for n in &mut self.neurons {
            if n.axon.as_ref().is_some_and(|a| !keep(a)) {
                n.axon = None;
                forgotten += 1;
            }
        }
        forgotten
    }

    /// All neurons, sorted by uid.
    pub fn neurons(&self) -> &[Neuron] {
        &self.neurons
    }

    /// Number of neurons.
    pub fn len(&self) -> usize {
        self.neurons.len()
    }

    /// Whether there are no neurons.
    pub fn is_empty(&self) -> bool {
        self.neurons.is_empty()
    }

    /// The neuron at `uid`, in O(log n).
    pub fn by_uid(&self, uid: Uid) -> Option<&Neuron> {
        self.neurons
            .binary_search_by_key(&uid, |n| n.uid)
            .ok()
            .map(|i| &self.neurons[i])
    }

    /// The neuron registered under `hotkey`.
    pub fn by_hotkey(&self, hotkey: &Hotkey) -> Option<&Neuron> {
        self.by_hotkey.get(hotkey).map(|&i| &self.neurons[i])
    }

    /// Sum of all neurons' stake (saturating).
    pub fn total_stake(&self) -> Rao {
        self.neurons.iter().map(|n| n.stake).sum()
    }
}

fn check_range(
    uid: Uid,
    field: &'static str,
    value: Option<f64>,
    min: f64,
    max: f64,
) -> Result<(), MetagraphError> {
    match value {
        Some(v) if !(v.is_finite() && v >= min && v <= max) => Err(MetagraphError::OutOfRange {
            uid,
            field,
            value: v,
            min,
            max,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A deterministic, valid hotkey for uid `i` (test helper).
    pub(crate) fn hotkey(i: u32) -> Hotkey {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&i.to_le_bytes());
        b[31] = 0xAA;
        Hotkey::from_bytes(b)
    }

    #[test]
    fn rejects_duplicates_and_bad_ranges() {
        let n = |uid: u16, hk: u32| Neuron::new(Uid(uid), hotkey(hk), Rao(1), true);
        assert_eq!(
            Metagraph::new(Netuid(1), Block(0), vec![n(1, 1), n(1, 2)]),
            Err(MetagraphError::DuplicateUid(Uid(1)))
        );
        assert!(matches!(
            Metagraph::new(Netuid(1), Block(0), vec![n(1, 1), n(2, 1)]),
            Err(MetagraphError::DuplicateHotkey { .. })
        ));
        let mut bad = n(3, 3);
        bad.incentive = Some(f64::NAN);
        assert!(matches!(
            Metagraph::new(Netuid(1), Block(0), vec![bad]),
            Err(MetagraphError::OutOfRange {
                field: "incentive",
                ..
            })
        ));
        let mg = Metagraph::new(Netuid(1), Block(0), vec![n(5, 5), n(2, 2)]).unwrap();
        assert_eq!(mg.neurons()[0].uid, Uid(2));
        assert_eq!(mg.by_uid(Uid(5)).unwrap().hotkey, hotkey(5));
        assert_eq!(mg.by_hotkey(&hotkey(2)).unwrap().uid, Uid(2));
        assert!(mg.by_uid(Uid(3)).is_none());
    }
}
