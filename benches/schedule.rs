//! Scheduling benchmarks: every strategy with every layout at 16, 256, 4,096
//! and 65,536 validators, `validator_at`, and a full `sim` run.
//!
//! Two window shapes per size:
//! * `mainnet`: 720 blocks, min 40 (at most 18 validators can be served);
//! * `wide`: 64 blocks per validator, so every validator is served and the
//!   layout emits as many slots as the strategy spreads blocks.
//!
//! Targets (benchmarks, not tests): under 20 µs at 256 validators, under
//! 20 ms at 65,536; `sim` with 256 validators, 1,000 miners and 100 windows
//! under 5 s on 2 cores. Run: `cargo bench --bench schedule`.

use std::hint::black_box;
use std::time::Duration;

use akihabara::sim::{SimConfig, Simulation};
use akihabara::strategy::{self, AllocationRequest, BUILTIN_STRATEGIES, Candidate};
use akihabara::{AccountId, Block, Layout, Rao, Schedule, Uid, Window};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// `n` validators with heavy-tailed stakes and competitor loads (seeded LCG).
fn candidates(n: usize) -> Vec<Candidate> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((x >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
            let tao = 1000.0 * u.powf(-1.0 / 1.16);
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&x.to_le_bytes());
            Candidate::new(
                Uid(i as u16),
                AccountId::from_bytes(key),
                Rao((tao * 1e9) as u64),
            )
            .with_competitor_load((x % 5000) as f64)
        })
        .collect()
}

fn strategies(c: &mut Criterion) {
    for (shape, per_validator) in [("mainnet", None), ("wide", Some(64u64))] {
        let mut group = c.benchmark_group(format!("schedule/{shape}"));
        for n in [16usize, 256, 4096, 65536] {
            let len = per_validator.map_or(720, |p| p * n as u64);
            let window = Window::new(Block(7200), len).expect("window");
            let cands = candidates(n);
            let req = AllocationRequest::new(window, 40, cands).expect("request");
            for name in BUILTIN_STRATEGIES {
                let s = strategy::by_name(name).expect("strategy");
                for layout in [Layout::Contiguous, Layout::Interleaved] {
                    group.bench_with_input(
                        BenchmarkId::new(format!("{name}/{layout}"), n),
                        &req,
                        |b, req| b.iter(|| Schedule::build(&*s, black_box(req), layout)),
                    );
                }
            }
        }
        group.finish();
    }
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("validator_at");
    for n in [256usize, 65536] {
        let window = Window::new(Block(0), 64 * n as u64).expect("window");
        let req = AllocationRequest::new(window, 40, candidates(n)).expect("request");
        let s =
            Schedule::build(&strategy::Proportional, &req, Layout::Interleaved).expect("schedule");
        let mut b0 = 0u64;
        group.bench_function(BenchmarkId::new("interleaved", n), |b| {
            b.iter(|| {
                b0 = (b0 + 7919) % window.len;
                black_box(s.validator_at(Block(b0)))
            })
        });
    }
    group.finish();
}

fn sim(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.bench_function("256v-1000m-100w", |b| {
        b.iter(|| {
            let cfg = SimConfig::default()
                .validators(256)
                .miners(1000)
                .windows(100);
            Simulation::with_builtins(cfg, BUILTIN_STRATEGIES)
                .expect("strategies")
                .run(|_| {})
                .expect("sim")
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = strategies, lookup, sim
}
criterion_main!(benches);
