//! The CUDA prover against the CPU reference. Each test skips, saying why,
//! where no GPU is usable; `AKIHABARA_REQUIRE_GPU=1` makes that a failure.
#![cfg(feature = "cuda")]

use std::time::Duration;

use akihabara_gpu::cuda::{self, CudaProver};
use akihabara_gpu::{
    Challenge, CpuProver, Prover, Seed, Timing, Verifier, choose_rows, compute_rows,
};

#[test]
fn without_a_gpu_every_entry_point_is_a_typed_error() {
    if let Some(why) = cuda::unavailable() {
        eprintln!("no CUDA here ({why}): checking the errors");
        assert!(matches!(
            CudaProver::new(0),
            Err(akihabara_gpu::PowError::Cuda(_))
        ));
        assert!(cuda::devices().is_err());
    } else {
        // A CUDA machine: listing devices must work.
        let d = cuda::devices().expect("devices");
        for g in &d {
            assert!(g.uuid.starts_with("GPU-") && g.memory_bytes > 0, "{g:?}");
        }
    }
}

#[test]
fn gpu_and_cpu_commit_to_the_same_rows() {
    let Some(mut gpu) = cuda::require_gpu("gpu_and_cpu_commit_to_the_same_rows") else {
        return;
    };
    // Fresh seeds every run; sizes around the padding (16) and chunk (256) edges.
    for (n, count) in [
        (1, 1),
        (15, 2),
        (17, 1),
        (100, 3),
        (255, 1),
        (256, 2),
        (1031, 1),
        (4099, 1),
    ] {
        let ch = Challenge::new(Seed::random().expect("seed"), n, count).expect("challenge");
        let g = gpu.commit(&ch).expect("gpu commit");
        let c = CpuProver::new().commit(&ch).expect("cpu commit");
        assert_eq!(g.root, c.root, "n {n} count {count} seed {}", ch.seed);
        let rows = choose_rows(&ch, &g.root, &[1; 32], 6);
        let openings = gpu.open(&rows).expect("open");
        let truth = compute_rows(&ch, &rows, 2).expect("rows");
        for (o, t) in openings.iter().zip(truth) {
            assert_eq!(o.values, t);
        }
        let timing = Timing {
            elapsed: g.elapsed,
            round_trip: Duration::ZERO,
        };
        let v = Verifier::new()
            .verify(&ch, &g.root, &rows, &openings, timing)
            .expect("verify");
        assert!(v.is_valid(), "{v:?}");
    }
}

#[test]
fn gpu_refuses_work_beyond_its_memory() {
    let Some(mut gpu) = cuda::require_gpu("gpu_refuses_work_beyond_its_memory") else {
        return;
    };
    let ch = Challenge::new(Seed([1; 32]), 65_536, 64).expect("challenge");
    assert!(matches!(
        gpu.commit(&ch),
        Err(akihabara_gpu::PowError::Memory { .. })
    ));
}
