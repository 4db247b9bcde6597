//! Who may call an axon, and who goes first.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::{AccountId, Metagraph, Rao};

/// Blacklist and priority for an axon. Both run on every request, before the
/// signature is checked (as in the Python axon), so they must be cheap.
pub trait Policy: Send + Sync + 'static {
    /// `Some(reason)` refuses the caller with 403
    /// `Forbidden. Key is blacklisted: <reason>.`
    fn blacklist(&self, synapse: &str, hotkey: &AccountId) -> Option<String>;

    /// Higher goes first when requests queue for a worker slot.
    fn priority(&self, _synapse: &str, _hotkey: &AccountId) -> f64 {
        0.0
    }
}

/// A shared policy, so its owner can update it while the axon serves
/// (for instance [`StakePolicy::set_metagraph`] after each sync).
impl<P: Policy> Policy for std::sync::Arc<P> {
    fn blacklist(&self, synapse: &str, hotkey: &AccountId) -> Option<String> {
        (**self).blacklist(synapse, hotkey)
    }

    fn priority(&self, synapse: &str, hotkey: &AccountId) -> f64 {
        (**self).priority(synapse, hotkey)
    }
}

/// Lets everyone in, all at the same priority (for tests and private setups).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn blacklist(&self, _: &str, _: &AccountId) -> Option<String> {
        None
    }
}

/// The usual miner policy: callers must be known to the metagraph, hold a
/// validator permit and enough stake; explicit lists on top. Priority is the
/// caller's stake in TAO.
///
/// Allow lists *restrict*: a hotkey on the allow list still needs a permit
/// and the minimum stake. Deny lists always win.
///
/// ```
/// use akihabara_core::axon::{Policy, StakePolicy};
/// use akihabara_core::metagraph::snapshot;
/// let mg = snapshot::from_slice(br#"{"netuid": 2, "block": 1, "neurons": [
///   {"uid": 0, "hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
///    "stake_rao": 3000000000000, "validator_permit": true}]}"#)?;
/// let alice = mg.neurons()[0].hotkey;
/// let p = StakePolicy::new(Some(mg)).min_stake(akihabara_core::Rao(1));
/// assert_eq!(p.blacklist("Ping", &alice), None);
/// assert_eq!(p.priority("Ping", &alice), 3000.0);
/// # Ok::<(), akihabara_core::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct StakePolicy {
    metagraph: Option<Arc<RwLock<Metagraph>>>,
    require_permit: bool,
    min_stake: Rao,
    allow_hotkeys: Option<HashSet<AccountId>>,
    deny_hotkeys: HashSet<AccountId>,
    allow_coldkeys: Option<HashSet<AccountId>>,
    deny_coldkeys: HashSet<AccountId>,
}

impl StakePolicy {
    /// A policy over `metagraph` (permit required, no minimum stake). Without
    /// a metagraph only the hotkey lists apply.
    pub fn new(metagraph: Option<Metagraph>) -> StakePolicy {
        StakePolicy {
            metagraph: metagraph.map(|m| Arc::new(RwLock::new(m))),
            require_permit: true,
            ..StakePolicy::default()
        }
    }

    /// Whether callers need `validator_permit` (default true).
    pub fn require_permit(mut self, yes: bool) -> StakePolicy {
        self.require_permit = yes;
        self
    }

    /// Least stake a caller must hold.
    pub fn min_stake(mut self, stake: Rao) -> StakePolicy {
        self.min_stake = stake;
        self
    }

    /// Only these hotkeys (still subject to every other check).
    pub fn allow_hotkeys(mut self, keys: impl IntoIterator<Item = AccountId>) -> StakePolicy {
        self.allow_hotkeys = Some(keys.into_iter().collect());
        self
    }

    /// Never these hotkeys.
    pub fn deny_hotkeys(mut self, keys: impl IntoIterator<Item = AccountId>) -> StakePolicy {
        self.deny_hotkeys.extend(keys);
        self
    }

    /// Only hotkeys owned by these coldkeys (needs coldkeys in the metagraph).
    pub fn allow_coldkeys(mut self, keys: impl IntoIterator<Item = AccountId>) -> StakePolicy {
        self.allow_coldkeys = Some(keys.into_iter().collect());
        self
    }

    /// Never hotkeys owned by these coldkeys.
    pub fn deny_coldkeys(mut self, keys: impl IntoIterator<Item = AccountId>) -> StakePolicy {
        self.deny_coldkeys.extend(keys);
        self
    }

    /// Replaces the metagraph (after a sync).
    pub fn set_metagraph(&self, metagraph: Metagraph) {
        if let Some(m) = &self.metagraph
            && let Ok(mut guard) = m.write()
        {
            *guard = metagraph;
        }
    }
}

impl Policy for StakePolicy {
    fn blacklist(&self, _synapse: &str, hotkey: &AccountId) -> Option<String> {
        if self.deny_hotkeys.contains(hotkey) {
            return Some(format!("hotkey {hotkey} is on the deny list"));
        }
        if let Some(allow) = &self.allow_hotkeys
            && !allow.contains(hotkey)
        {
            return Some(format!("hotkey {hotkey} is not on the allow list"));
        }
        let coldkey_rules = self.allow_coldkeys.is_some() || !self.deny_coldkeys.is_empty();
        let Some(mg) = &self.metagraph else {
            if coldkey_rules {
                return Some("coldkey rules need a metagraph, and this axon has none".into());
            }
            return None;
        };
        let Ok(mg) = mg.read() else {
            return Some("metagraph unavailable".into());
        };
        let Some(n) = mg.by_hotkey(hotkey) else {
            return Some(format!(
                "hotkey {hotkey} is not registered on netuid {}",
                mg.netuid()
            ));
        };
        if coldkey_rules {
            let Some(cold) = n.coldkey else {
                return Some(format!("coldkey of hotkey {hotkey} is unknown"));
            };
            if self.deny_coldkeys.contains(&cold) {
                return Some(format!("coldkey {cold} is on the deny list"));
            }
            if let Some(allow) = &self.allow_coldkeys
                && !allow.contains(&cold)
            {
                return Some(format!("coldkey {cold} is not on the allow list"));
            }
        }
        if self.require_permit && !n.validator_permit {
            return Some(format!("hotkey {hotkey} has no validator permit"));
        }
        if n.stake < self.min_stake {
            return Some(format!(
                "hotkey {hotkey} has stake {}, below the minimum {}",
                n.stake.to_tao(),
                self.min_stake.to_tao()
            ));
        }
        None
    }

    fn priority(&self, _synapse: &str, hotkey: &AccountId) -> f64 {
        self.metagraph
            .as_ref()
            .and_then(|m| m.read().ok())
            .and_then(|mg| mg.by_hotkey(hotkey).map(|n| n.stake.0 as f64 / 1e9))
            .unwrap_or(0.0)
    }
}
