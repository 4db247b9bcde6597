//! Which validators a miner is willing to serve.

use std::collections::HashSet;

use super::{Candidate, stake_order};
use crate::{Hotkey, Metagraph, Tao};

/// The filter shared by all strategies.
///
/// A neuron is a candidate when it holds a validator permit (unless
/// [`ignore_permits`](Eligibility::ignore_permits)), has at least
/// [`min_stake`](Eligibility::min_stake), is not on the deny list and, when an
/// allow list is set, is on it. An allow list only restricts: an allowed
/// validator must still pass every other check. Finally at most
/// [`max_validators`](Eligibility::max_validators) are kept, highest stake first.
///
/// ```
/// use akihabara_core::strategy::Eligibility;
/// use akihabara_core::Tao;
/// let filter = Eligibility::new()
///     .min_stake("1000".parse::<Tao>().unwrap())
///     .max_validators(64);
/// # let _ = filter;
/// ```
#[derive(Debug, Clone)]
pub struct Eligibility {
    require_permit: bool,
    min_stake: Tao,
    deny: HashSet<Hotkey>,
    allow: Option<HashSet<Hotkey>>,
    max_validators: Option<usize>,
}

impl Default for Eligibility {
    fn default() -> Self {
        Eligibility::new()
    }
}

impl Eligibility {
    /// Validators with a permit and any stake.
    pub fn new() -> Eligibility {
        Eligibility {
            require_permit: true,
            min_stake: Tao::ZERO,
            deny: HashSet::new(),
            allow: None,
            max_validators: None,
        }
    }

    /// Also consider neurons without a validator permit.
    pub fn ignore_permits(mut self) -> Eligibility {
        self.require_permit = false;
        self
    }

    /// Minimum stake, in TAO.
    pub fn min_stake(mut self, tao: Tao) -> Eligibility {
        self.min_stake = tao;
        self
    }

    /// Never serve these hotkeys.
    pub fn deny(mut self, hotkeys: impl IntoIterator<Item = Hotkey>) -> Eligibility {
        self.deny.extend(hotkeys);
        self
    }

    /// Serve only these hotkeys (they must still pass the other checks).
    pub fn allow_only(mut self, hotkeys: impl IntoIterator<Item = Hotkey>) -> Eligibility {
        self.allow.get_or_insert_with(HashSet::new).extend(hotkeys);
        self
    }

    /// Keep at most `n` validators, highest stake first.
    pub fn max_validators(mut self, n: usize) -> Eligibility {
        self.max_validators = Some(n);
        self
    }

    /// The eligible validators of `mg`, sorted by descending stake, ties by uid.
    pub fn candidates(&self, mg: &Metagraph) -> Vec<Candidate> {
        let min = self.min_stake.to_rao();
        let mut out: Vec<Candidate> = mg
            .neurons()
            .iter()
            .filter(|n| !self.require_permit || n.validator_permit)
            .filter(|n| n.stake >= min)
            .filter(|n| !self.deny.contains(&n.hotkey))
            .filter(|n| self.allow.as_ref().is_none_or(|a| a.contains(&n.hotkey)))
            .map(|n| Candidate {
                uid: n.uid,
                hotkey: n.hotkey,
                stake: n.stake,
                competitor_load: n.competitor_load,
            })
            .collect();
        out.sort_by(stake_order);
        if let Some(max) = self.max_validators {
            out.truncate(max);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metagraph::tests::hotkey;
    use crate::{Block, Netuid, Neuron, Rao, Uid};

    fn mg() -> Metagraph {
        let n = |uid: u16, tao: u64, permit: bool| {
            Neuron::new(
                Uid(uid),
                hotkey(uid.into()),
                Rao(tao * 1_000_000_000),
                permit,
            )
        };
        Metagraph::new(
            Netuid(1),
            Block(0),
            vec![
                n(0, 10, true),
                n(1, 500, true),
                n(2, 5000, false),
                n(3, 500, true),
                n(4, 2000, true),
            ],
        )
        .unwrap()
    }

    fn uids(c: &[Candidate]) -> Vec<u16> {
        c.iter().map(|c| c.uid.0).collect()
    }

    #[test]
    fn filters_and_orders() {
        let g = mg();
        assert_eq!(uids(&Eligibility::new().candidates(&g)), vec![4, 1, 3, 0]);
        assert_eq!(
            uids(&Eligibility::new().ignore_permits().candidates(&g)),
            vec![2, 4, 1, 3, 0]
        );
        let min = Eligibility::new().min_stake("500".parse().unwrap());
        assert_eq!(uids(&min.candidates(&g)), vec![4, 1, 3]);
        assert_eq!(
            uids(&Eligibility::new().max_validators(2).candidates(&g)),
            vec![4, 1]
        );
        assert_eq!(
            uids(&Eligibility::new().deny([hotkey(4)]).candidates(&g)),
            vec![1, 3, 0]
        );
        // An allow list restricts but never bypasses the permit or stake checks.
        let allow = Eligibility::new()
            .min_stake("100".parse().unwrap())
            .allow_only([hotkey(0), hotkey(2), hotkey(3)]);
        assert_eq!(uids(&allow.candidates(&g)), vec![3]);
    }
}
