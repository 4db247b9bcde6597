//! [`SnapshotChain`]: a simulated chain from a metagraph snapshot.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    BlockStream, ChainClient, ChainError, Hyperparameters, Receipt, Reveal, check_weights,
};
use crate::clock::{Clock, SystemClock};
use crate::wallet::Keypair;
use crate::{Block, Hotkey, Metagraph, Netuid, Neuron, Rao, Uid};

/// What the simulation recorded (one JSON line each in the record file).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Submission {
    /// A `set_weights` call that was accepted.
    SetWeights {
        /// Simulated block at which it was recorded.
        block: Block,
        /// Subnet the weights are for.
        netuid: Netuid,
        /// Validator hotkey that sent them.
        hotkey: Hotkey,
        /// Destination uids, one per weight.
        uids: Vec<Uid>,
        /// u16 weights, in the order of `uids`.
        weights: Vec<u16>,
        /// Version key sent with the weights.
        version_key: u64,
    },
    /// A `commit_weights` call that was accepted.
    CommitWeights {
        /// Simulated block at which it was recorded.
        block: Block,
        /// Subnet the commitment is for.
        netuid: Netuid,
        /// Validator hotkey that committed.
        hotkey: Hotkey,
        /// The commitment, hex.
        commit: String,
    },
    /// `reveal_weights` that matched its commitment.
    RevealWeights {
        /// Simulated block at which it was recorded.
        block: Block,
        /// Subnet the weights are for.
        netuid: Netuid,
        /// Validator hotkey that revealed them.
        hotkey: Hotkey,
        /// Destination uids, one per weight.
        uids: Vec<Uid>,
        /// u16 weights, in the order of `uids`.
        weights: Vec<u16>,
        /// Version key sent with the weights.
        version_key: u64,
    },
    /// `burned_register` (the simulation burns nothing).
    BurnedRegister {
        /// Simulated block at which it was recorded.
        block: Block,
        /// Subnet registered on.
        netuid: Netuid,
        /// Coldkey that paid.
        coldkey: Hotkey,
        /// Hotkey registered.
        hotkey: Hotkey,
        /// Its new uid.
        uid: Uid,
    },
    /// A `serve_axon` call that was accepted.
    ServeAxon {
        /// Simulated block at which it was recorded.
        block: Block,
        /// Subnet the axon serves.
        netuid: Netuid,
        /// Hotkey whose axon it is.
        hotkey: Hotkey,
        /// IP and port the axon was announced at.
        axon: SocketAddr,
    },
}

struct State {
    metagraph: Metagraph,
    last_weights: BTreeMap<Hotkey, Block>,
    commits: BTreeMap<Hotkey, Vec<([u8; 32], Block)>>,
}

/// **A simulation**, not a chain: a subnet read from a metagraph snapshot,
/// whose block advances with time (one block per `block_time`; the wall
/// clock unless [`SnapshotChain::with_clock`] injects another), and
/// which appends every submission to a JSON-lines record file. It applies
/// the checks a chain would (registration, rate limit, version key, uid
/// range) so offline runs fail where the real chain would.
pub struct SnapshotChain {
    state: Mutex<State>,
    hyper: Hyperparameters,
    clock: Arc<dyn Clock>,
    block_time: Duration,
    record: Option<PathBuf>,
}

impl std::fmt::Debug for SnapshotChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotChain")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl SnapshotChain {
    /// A simulated chain at the snapshot's block, 12 s per block.
    pub fn new(metagraph: Metagraph) -> SnapshotChain {
        SnapshotChain {
            state: Mutex::new(State {
                metagraph,
                last_weights: BTreeMap::new(),
                commits: BTreeMap::new(),
            }),
            hyper: Hyperparameters::default(),
            clock: Arc::new(SystemClock::new()),
            block_time: Duration::from_secs(12),
            record: None,
        }
    }

    /// Reads the snapshot file.
    pub fn open(path: impl AsRef<Path>) -> Result<SnapshotChain, ChainError> {
        let mg = crate::metagraph::snapshot::read(path.as_ref())
            .map_err(|source| ChainError::Snapshot { source })?;
        Ok(SnapshotChain::new(mg))
    }

    /// Uses these hyperparameters.
    pub fn hyperparameters(mut self, h: Hyperparameters) -> SnapshotChain {
        self.hyper = h;
        self
    }

    /// Reads time from `clock` instead of the wall clock, so a run replays
    /// exactly: the block is the snapshot's plus `clock.elapsed() / block_time`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> SnapshotChain {
        self.clock = clock;
        self
    }

    /// Advances one block per `t` of the clock's time (at least 1 ms).
    pub fn block_time(mut self, t: Duration) -> SnapshotChain {
        self.block_time = t.max(Duration::from_millis(1));
        self
    }

    /// Appends submissions to `path` (JSON lines).
    pub fn record_to(mut self, path: impl Into<PathBuf>) -> SnapshotChain {
        self.record = Some(path.into());
        self
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, ChainError> {
        self.state
            .lock()
            .map_err(|_| ChainError::Io("the simulated chain's state is poisoned".into()))
    }

    fn now(&self, st: &State) -> Block {
        let ticks = self.clock.elapsed().as_nanos() / self.block_time.as_nanos().max(1);
        Block(st.metagraph.block().0 + ticks as u64)
    }

    fn check_netuid(&self, st: &State, netuid: Netuid) -> Result<(), ChainError> {
        if st.metagraph.netuid() == netuid {
            Ok(())
        } else {
            Err(ChainError::NoSubnet(netuid))
        }
    }

    fn record(&self, s: &Submission) -> Result<(), ChainError> {
        let Some(path) = &self.record else {
            return Ok(());
        };
        let line = serde_json::to_string(s).map_err(|e| ChainError::Record {
            path: path.clone(),
            source: e.into(),
        })?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}").and_then(|()| f.sync_data()))
            .map_err(|source| ChainError::Record {
                path: path.clone(),
                source,
            })
    }
}

fn receipt(block: Block, s: &Submission) -> Receipt {
    let bytes = serde_json::to_vec(s).unwrap_or_default();
    Receipt {
        block,
        extrinsic: format!("0x{}", hex::encode(blake2_256(&bytes))),
    }
}

fn blake2_256(data: &[u8]) -> [u8; 32] {
    use blake2::Digest;
    blake2::Blake2b::<blake2::digest::consts::U32>::digest(data).into()
}

#[async_trait::async_trait]
impl ChainClient for SnapshotChain {
    async fn block(&self) -> Result<Block, ChainError> {
        let st = self.lock()?;
        Ok(self.now(&st))
    }

    /// A twentieth of a simulated block (at most 50 ms).
    fn block_poll_interval(&self) -> Duration {
        (self.block_time / 20).clamp(Duration::from_millis(1), Duration::from_millis(50))
    }

    async fn metagraph(&self, netuid: Netuid) -> Result<Metagraph, ChainError> {
        let st = self.lock()?;
        self.check_netuid(&st, netuid)?;
        Ok(st.metagraph.clone())
    }

    async fn hyperparameters(&self, netuid: Netuid) -> Result<Hyperparameters, ChainError> {
        let st = self.lock()?;
        self.check_netuid(&st, netuid)?;
        Ok(self.hyper.clone())
    }

    async fn uid_of(&self, netuid: Netuid, hotkey: &Hotkey) -> Result<Option<Uid>, ChainError> {
        let st = self.lock()?;
        self.check_netuid(&st, netuid)?;
        Ok(st.metagraph.by_hotkey(hotkey).map(|n| n.uid))
    }

    async fn serve_axon(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        ip: IpAddr,
        port: u16,
    ) -> Result<Option<Receipt>, ChainError> {
        let hotkey = &hotkey.account();
        let mut st = self.lock()?;
        self.check_netuid(&st, netuid)?;
        let axon = SocketAddr::new(ip, port);
        let n = st
            .metagraph
            .by_hotkey(hotkey)
            .ok_or(ChainError::NotRegistered {
                hotkey: *hotkey,
                netuid,
            })?;
        if n.axon == Some(axon) {
            return Ok(None);
        }
        let block = self.now(&st);
        let s = Submission::ServeAxon {
            block,
            netuid,
            hotkey: *hotkey,
            axon,
        };
        self.record(&s)?;
        let mut neurons = st.metagraph.neurons().to_vec();
        if let Some(n) = neurons.iter_mut().find(|n| n.hotkey == *hotkey) {
            n.axon = Some(axon);
        }
        st.metagraph = Metagraph::new(netuid, st.metagraph.block(), neurons)
            .map_err(|source| ChainError::Metagraph { source })?;
        Ok(Some(receipt(block, &s)))
    }

    async fn set_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        uids: &[Uid],
        weights: &[u16],
        version_key: u64,
    ) -> Result<Receipt, ChainError> {
        let hotkey = &hotkey.account();
        let mut st = self.lock()?;
        self.check_netuid(&st, netuid)?;
        if st.metagraph.by_hotkey(hotkey).is_none() {
            return Err(ChainError::NotRegistered {
                hotkey: *hotkey,
                netuid,
            });
        }
        check_weights(uids, weights, st.metagraph.len())?;
        if version_key < self.hyper.weights_version {
            return Err(ChainError::VersionTooLow {
                given: version_key,
                required: self.hyper.weights_version,
            });
        }
        if self.hyper.commit_reveal_enabled {
            return Err(ChainError::CommitRevealRequired(netuid));
        }
        let block = self.now(&st);
        if let Some(last) = st.last_weights.get(hotkey) {
            let next = Block(last.0.saturating_add(self.hyper.weights_rate_limit));
            if block < next {
                return Err(ChainError::RateLimited { last: *last, next });
            }
        }
        let s = Submission::SetWeights {
            block,
            netuid,
            hotkey: *hotkey,
            uids: uids.to_vec(),
            weights: weights.to_vec(),
            version_key,
        };
        self.record(&s)?;
        st.last_weights.insert(*hotkey, block);
        Ok(receipt(block, &s))
    }

    async fn subscribe_blocks(&self) -> Result<BlockStream, ChainError> {
        let (tx, stream) = BlockStream::channel(16);
        let clock = self.clock.clone();
        let first = self.lock()?.metagraph.block();
        let step = self.block_time;
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let ticks = clock.elapsed().as_nanos() / step.as_nanos().max(1);
                let now = Block(first.0 + ticks as u64);
                if last != Some(now) {
                    if tx.send(Ok(now)).await.is_err() {
                        break;
                    }
                    last = Some(now);
                }
                tokio::time::sleep(step.min(Duration::from_millis(50))).await;
            }
        });
        Ok(stream)
    }

    async fn commit_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        commit: [u8; 32],
    ) -> Result<Receipt, ChainError> {
        let hotkey = hotkey.account();
        let mut st = self.lock()?;
        self.check_netuid(&st, netuid)?;
        if st.metagraph.by_hotkey(&hotkey).is_none() {
            return Err(ChainError::NotRegistered { hotkey, netuid });
        }
        if !self.hyper.commit_reveal_enabled {
            return Err(ChainError::Rejected(format!(
                "commit-reveal is disabled on netuid {netuid} (simulated CommitRevealDisabled)"
            )));
        }
        let block = self.now(&st);
        let s = Submission::CommitWeights {
            block,
            netuid,
            hotkey,
            commit: format!("0x{}", hex::encode(commit)),
        };
        self.record(&s)?;
        st.commits.entry(hotkey).or_default().push((commit, block));
        Ok(receipt(block, &s))
    }

    async fn reveal_weights(
        &self,
        netuid: Netuid,
        hotkey: &Keypair,
        reveal: &Reveal,
    ) -> Result<Receipt, ChainError> {
        let hotkey = hotkey.account();
        let mut st = self.lock()?;
        self.check_netuid(&st, netuid)?;
        if st.metagraph.by_hotkey(&hotkey).is_none() {
            return Err(ChainError::NotRegistered { hotkey, netuid });
        }
        check_weights(&reveal.uids, &reveal.weights, st.metagraph.len())?;
        let hash = reveal.hash(&hotkey, netuid);
        let block = self.now(&st);
        let pending = st.commits.entry(hotkey).or_default();
        let Some(at) = pending.iter().position(|(h, _)| *h == hash) else {
            return Err(ChainError::NoCommitment(netuid));
        };
        let s = Submission::RevealWeights {
            block,
            netuid,
            hotkey,
            uids: reveal.uids.clone(),
            weights: reveal.weights.clone(),
            version_key: reveal.version_key,
        };
        self.record(&s)?;
        pending.remove(at);
        st.last_weights.insert(hotkey, block);
        Ok(receipt(block, &s))
    }

    async fn burned_register(
        &self,
        netuid: Netuid,
        coldkey: &Keypair,
        hotkey: &Hotkey,
    ) -> Result<Receipt, ChainError> {
        let mut st = self.lock()?;
        self.check_netuid(&st, netuid)?;
        if st.metagraph.by_hotkey(hotkey).is_some() {
            return Err(ChainError::Rejected(format!(
                "hotkey {hotkey} is already registered on netuid {netuid} (simulated HotKeyAlreadyRegisteredInSubNet)"
            )));
        }
        let uid = u16::try_from(st.metagraph.len())
            .map(Uid)
            .map_err(|_| ChainError::Rejected("the simulated subnet is full".into()))?;
        let block = self.now(&st);
        let coldkey = coldkey.account();
        let s = Submission::BurnedRegister {
            block,
            netuid,
            coldkey,
            hotkey: *hotkey,
            uid,
        };
        self.record(&s)?;
        let mut neuron = Neuron::new(uid, *hotkey, Rao(0), false);
        neuron.coldkey = Some(coldkey);
        let mut neurons = st.metagraph.neurons().to_vec();
        neurons.push(neuron);
        st.metagraph = Metagraph::new(netuid, st.metagraph.block(), neurons)
            .map_err(|source| ChainError::Metagraph { source })?;
        Ok(receipt(block, &s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str) -> Keypair {
        Keypair::from_uri(uri).expect("dev key")
    }

    /// Netuid 7: //v1 (uid 0, validator), //m1 and //m2 (uids 1-2).
    fn chain() -> SnapshotChain {
        let neurons = ["//v1", "//m1", "//m2"]
            .iter()
            .enumerate()
            .map(|(i, uri)| {
                Neuron::new(
                    Uid(i as u16),
                    key(uri).account(),
                    Rao(1_000 * (3 - i as u64)),
                    i == 0,
                )
            })
            .collect();
        SnapshotChain::new(Metagraph::new(Netuid(7), Block(100), neurons).expect("metagraph"))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The simulation never awaits anything pending: one poll completes it.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the simulation awaited something"),
        }
    }

    /// With an injected clock the chain's blocks are a function of that
    /// clock alone, so a simulation replays exactly.
    #[test]
    fn an_injected_clock_makes_blocks_replay() {
        let clock = crate::clock::ManualClock::new();
        let c = chain()
            .block_time(Duration::from_secs(12))
            .with_clock(Arc::new(clock.clone()));
        let start = block_on(c.block()).expect("block");
        clock.advance(Duration::from_secs(11));
        assert_eq!(block_on(c.block()).expect("block"), start);
        clock.advance(Duration::from_secs(1));
        assert_eq!(block_on(c.block()).expect("block"), Block(start.0 + 1));
        clock.advance(Duration::from_secs(120));
        assert_eq!(block_on(c.block()).expect("block"), Block(start.0 + 11));
    }

    #[tokio::test]
    async fn blocks_advance_with_time_and_waits_are_bounded() {
        let c = chain().block_time(Duration::from_millis(20));
        let b = c.block().await.expect("block");
        let next = c
            .wait_for_block(b, Duration::from_secs(5))
            .await
            .expect("next");
        assert!(next > b);
        let far = Block(b.0 + 1_000_000);
        let t = std::time::Instant::now();
        assert!(matches!(
            c.wait_for_block(far, Duration::from_millis(100)).await,
            Err(ChainError::Timeout(_))
        ));
        assert!(t.elapsed() < Duration::from_secs(2));
        let mut blocks = c.subscribe_blocks().await.expect("subscribe");
        let first = blocks.next().await.expect("a block").expect("ok");
        let second = blocks.next().await.expect("a block").expect("ok");
        assert!(second > first);
    }

    #[test]
    fn weights_are_checked_recorded_and_rate_limited() {
        let dir = tempfile::tempdir().expect("dir");
        let rec = dir.path().join("submissions.jsonl");
        let c = chain().record_to(&rec);
        let net = Netuid(7);
        let v = key("//v1");
        let r = block_on(c.set_weights(net, &v, &[Uid(1), Uid(2)], &[65535, 100], 0)).expect("set");
        assert!(r.extrinsic.starts_with("0x") && r.extrinsic.len() == 66);
        assert!(matches!(
            block_on(c.set_weights(net, &v, &[Uid(1)], &[1], 0)),
            Err(ChainError::RateLimited { .. })
        ));
        assert!(matches!(
            block_on(c.set_weights(net, &v, &[Uid(1), Uid(1)], &[1, 2], 0)),
            Err(ChainError::BadWeights(_))
        ));
        assert!(matches!(
            block_on(c.set_weights(net, &v, &[Uid(999)], &[1], 0)),
            Err(ChainError::BadWeights(_))
        ));
        assert!(matches!(
            block_on(c.set_weights(net, &key("//stranger"), &[Uid(1)], &[1], 0)),
            Err(ChainError::NotRegistered { .. })
        ));
        assert!(matches!(
            block_on(c.metagraph(Netuid(8))),
            Err(ChainError::NoSubnet(_))
        ));
        let lines = std::fs::read_to_string(&rec).expect("record");
        let s: Submission =
            serde_json::from_str(lines.lines().next().expect("line")).expect("json");
        assert!(
            matches!(s, Submission::SetWeights { ref weights, .. } if weights == &[65535, 100])
        );
        assert_eq!(lines.lines().count(), 1);
    }

    #[test]
    fn commit_reveal_serve_and_register() {
        let net = Netuid(7);
        let v = key("//v1");
        let plain = chain();
        assert!(matches!(
            block_on(plain.commit_weights(net, &v, [0; 32])),
            Err(ChainError::Rejected(_))
        ));
        let c = chain().hyperparameters(Hyperparameters {
            commit_reveal_enabled: true,
            ..Hyperparameters::default()
        });
        assert!(matches!(
            block_on(c.set_weights(net, &v, &[Uid(1)], &[1], 0)),
            Err(ChainError::CommitRevealRequired(_))
        ));
        let reveal = Reveal::new(vec![Uid(1), Uid(2)], vec![65535, 7], 0).expect("salt");
        block_on(c.commit_weights(net, &v, reveal.hash(&v.account(), net))).expect("commit");
        let mut forged = reveal.clone();
        forged.weights[1] = 8;
        assert!(matches!(
            block_on(c.reveal_weights(net, &v, &forged)),
            Err(ChainError::NoCommitment(_))
        ));
        block_on(c.reveal_weights(net, &v, &reveal)).expect("reveal");
        assert!(matches!(
            block_on(c.reveal_weights(net, &v, &reveal)),
            Err(ChainError::NoCommitment(_)),
        ));

        let m1 = key("//m1");
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(
            block_on(c.serve_axon(net, &m1, ip, 8091))
                .expect("serve")
                .is_some()
        );
        assert!(
            block_on(c.serve_axon(net, &m1, ip, 8091))
                .expect("again")
                .is_none()
        );
        let mg = block_on(c.metagraph(net)).expect("mg");
        assert_eq!(
            mg.by_uid(Uid(1)).and_then(|n| n.axon),
            Some(SocketAddr::new(ip, 8091))
        );

        let newcomer = key("//m3").account();
        block_on(c.burned_register(net, &key("//cold"), &newcomer)).expect("register");
        assert_eq!(
            block_on(c.uid_of(net, &newcomer)).expect("uid"),
            Some(Uid(3))
        );
        assert!(matches!(
            block_on(c.burned_register(net, &key("//cold"), &newcomer)),
            Err(ChainError::Rejected(_))
        ));
    }
}
