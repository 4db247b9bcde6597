//! Proof-of-work decoding: proof files, wire openings and challenge
//! synapses from arbitrary bytes never panic, and what decodes is in range.
#![no_main]

use akihabara_gpu::synapse::{PowChallenge, PowOpen};
use akihabara_gpu::{MAX_N, ProofFile, WireOpening};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ProofFile::parse(data) {
        assert!(p.challenge.n >= 1 && p.challenge.n <= MAX_N);
        if let Ok(leaves) = p.leaf_hashes() {
            assert!(leaves.len() as u64 <= p.challenge.leaves() + 1);
        }
    }
    if let Ok(o) = serde_json::from_slice::<WireOpening>(data)
        && let Ok(opening) = o.decode(1024)
    {
        assert!(opening.values.len() <= 1024 && opening.path.len() <= 64);
    }
    if let Ok(c) = serde_json::from_slice::<PowChallenge>(data)
        && let Ok(ch) = c.challenge()
    {
        assert!(ch.n >= 1 && ch.count >= 1);
    }
    if let Ok(o) = serde_json::from_slice::<PowOpen>(data) {
        let _ = o.row_refs();
        let _ = o.decoded(64);
    }
});
