//! What the client reads from the runtime, decoded by field name against the
//! live chain's metadata (fields it does not name are skipped, so runtime
//! upgrades that add fields do not break it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use subxt::ext::scale_decode::DecodeAsType;
use subxt::utils::AccountId32;

use crate::chain::{ChainError, Hyperparameters};
use crate::{AccountId, Block, Metagraph, Netuid, Neuron, Rao, Uid};

/// `pallet_subtensor::AxonInfo`.
#[derive(Clone, Debug, PartialEq, Eq, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
pub(crate) struct AxonInfo {
    pub ip: u128,
    pub port: u16,
    pub ip_type: u8,
    pub protocol: u8,
}

impl AxonInfo {
    /// The served address; `None` for the chain's empty default (ip 0).
    pub fn addr(&self) -> Option<SocketAddr> {
        if self.ip == 0 {
            return None;
        }
        let ip = match self.ip_type {
            4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(self.ip).ok()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.ip)),
            _ => return None,
        };
        Some(SocketAddr::new(ip, self.port))
    }
}

/// The chain's encoding of an address: (ip as u128, ip_type 4 or 6).
pub(crate) fn encode_ip(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 4),
        IpAddr::V6(v6) => (u128::from(v6), 6),
    }
}

/// `SubnetInfoRuntimeApi::get_metagraph`, the fields the SDK uses.
#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
pub(crate) struct MetagraphInfo {
    pub netuid: u16,
    pub block: u64,
    pub hotkeys: Vec<AccountId32>,
    pub coldkeys: Vec<AccountId32>,
    pub axons: Vec<AxonInfo>,
    pub validator_permit: Vec<bool>,
    pub last_update: Vec<u64>,
    pub emission: Vec<u64>,
    pub dividends: Vec<u16>,
    pub incentives: Vec<u16>,
    pub alpha_stake: Vec<u64>,
    pub total_stake: Vec<u64>,
}

impl MetagraphInfo {
    /// Our metagraph; every per-uid list must have one entry per hotkey.
    pub fn into_metagraph(self) -> Result<Metagraph, ChainError> {
        let n = self.hotkeys.len();
        let lens = [
            ("coldkeys", self.coldkeys.len()),
            ("axons", self.axons.len()),
            ("validator_permit", self.validator_permit.len()),
            ("last_update", self.last_update.len()),
            ("emission", self.emission.len()),
            ("dividends", self.dividends.len()),
            ("incentives", self.incentives.len()),
            ("alpha_stake", self.alpha_stake.len()),
            ("total_stake", self.total_stake.len()),
        ];
        if let Some((name, len)) = lens.iter().find(|(_, len)| *len != n) {
            return Err(ChainError::Unsupported(format!(
                "a consistent metagraph: {n} hotkeys but {len} {name}"
            )));
        }
        let mut neurons = Vec::with_capacity(n);
        for i in 0..n {
            let uid = u16::try_from(i)
                .map_err(|_| ChainError::Unsupported(format!("a metagraph of {n} uids")))?;
            let mut neuron = Neuron::new(
                Uid(uid),
                AccountId::from_bytes(self.hotkeys[i].0),
                Rao(self.alpha_stake[i]),
                self.validator_permit[i],
            );
            neuron.coldkey = Some(AccountId::from_bytes(self.coldkeys[i].0));
            neuron.total_stake = Some(Rao(self.total_stake[i]));
            neuron.axon = self.axons[i].addr();
            neuron.last_update = Some(Block(self.last_update[i]));
            neuron.incentive = Some(f64::from(self.incentives[i]) / f64::from(u16::MAX));
            neuron.dividends = Some(f64::from(self.dividends[i]) / f64::from(u16::MAX));
            neuron.emission = Some(self.emission[i] as f64 / 1e9);
            neurons.push(neuron);
        }
        Metagraph::new(Netuid(self.netuid), Block(self.block), neurons)
            .map_err(|e| ChainError::Unsupported(format!("a valid metagraph: {e}")))
    }
}

/// `SubnetInfoRuntimeApi::get_subnet_hyperparams`, the fields the SDK uses.
#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
pub(crate) struct HyperparamsInfo {
    pub tempo: u16,
    pub weights_rate_limit: u64,
    pub commit_reveal_weights_enabled: bool,
    pub weights_version: u64,
    pub max_weights_limit: u16,
}

impl From<HyperparamsInfo> for Hyperparameters {
    fn from(h: HyperparamsInfo) -> Hyperparameters {
        Hyperparameters {
            tempo: u64::from(h.tempo),
            weights_rate_limit: h.weights_rate_limit,
            commit_reveal_enabled: h.commit_reveal_weights_enabled,
            weights_version: h.weights_version,
            max_weight_limit: h.max_weights_limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axon_addresses_round_trip() {
        for addr in ["127.0.0.2:8091", "[2001:db8::1]:9000", "8.8.4.4:1"] {
            let a: SocketAddr = addr.parse().expect("addr");
            let (ip, ip_type) = encode_ip(a.ip());
            let info = AxonInfo {
                ip,
                port: a.port(),
                ip_type,
                protocol: 4,
            };
            assert_eq!(info.addr(), Some(a));
        }
        let empty = AxonInfo {
            ip: 0,
            port: 0,
            ip_type: 0,
            protocol: 0,
        };
        assert_eq!(empty.addr(), None);
        let bad = AxonInfo {
            ip: u128::MAX,
            port: 1,
            ip_type: 4,
            protocol: 4,
        };
        assert_eq!(bad.addr(), None, "an IPv4 type with a too-wide ip");
    }
}
