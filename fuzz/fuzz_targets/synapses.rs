//! Every synapse body a miner's axon accepts from the network (jobs,
//! allocations, proof of work, schedule, ping, specs): arbitrary bytes never
//! panic the parser, the body hash or the checks run before any work, and
//! what passes those checks is in range.
#![no_main]

use akihabara_core::market::wire::{Allocate, Deallocate, JobCancel, JobLogs, JobQuery, JobSubmit};
use akihabara_core::protocol::{self, Ping, SpecsQuery, Synapse};
use akihabara_core::schedule::ScheduleQuery;
use akihabara_gpu::synapse::{MAX_OPEN_ROWS, PowChallenge, PowLimits, PowOpen, PowService};
use akihabara_gpu::{CpuProver, MAX_COUNT, MAX_N};
use libfuzzer_sys::fuzz_target;

/// Parses `data` as the body of `S` and hashes what parses.
fn body<S: Synapse>(data: &[u8]) -> Option<S> {
    let env = protocol::parse_body::<S>(data).ok()?;
    let _ = protocol::synapse_body_hash(&env);
    Some(env.body)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the synapse, so each gets the whole corpus.
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    match which % 9 {
        0 => {
            if let Some(s) = body::<JobSubmit>(data) {
                // The signature check runs on whatever arrived.
                let _ = s.request.verify();
                let _ = s.request.message();
            }
        }
        1 => {
            // JobQuery, JobCancel and JobLogs carry the same field.
            let _ = body::<JobQuery>(data);
            let _ = body::<JobCancel>(data);
            let _ = body::<JobLogs>(data);
        }
        2 => {
            if let Some(a) = body::<Allocate>(data) {
                // The key and the sealing key are parsed before any executor is held.
                let _ = akihabara_core::executor::access::SshPublicKey::parse(&a.ssh_public_key);
                let _ = akihabara_core::executor::access::SealingKey::parse(&a.sealing_key);
            }
        }
        3 => {
            if let Some(d) = body::<Deallocate>(data) {
                let _ = akihabara_core::executor::access::check_allocation_id(&d.allocation_id);
            }
        }
        4 => {
            let _ = body::<ScheduleQuery>(data);
        }
        5 => {
            if let Some(c) = body::<PowChallenge>(data)
                && let Ok(ch) = c.challenge()
            {
                assert!((1..=MAX_N).contains(&ch.n) && (1..=MAX_COUNT).contains(&ch.count));
                // The miner's bound is checked before any work.
                let service = PowService::new(Box::new(CpuProver::new()));
                if service.check(&ch).is_ok() {
                    let n = u128::from(ch.n);
                    assert!(n * n * n * u128::from(ch.count) <= PowLimits::default().max_work);
                }
            }
        }
        6 => {
            if let Some(o) = body::<PowOpen>(data)
                && let Ok(rows) = o.row_refs()
            {
                assert!(rows.len() <= MAX_OPEN_ROWS);
            }
        }
        7 => {
            if let Some(p) = body::<Ping>(data) {
                let _ = p.answer("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
            }
        }
        _ => {
            let _ = body::<SpecsQuery>(data);
        }
    }
});
