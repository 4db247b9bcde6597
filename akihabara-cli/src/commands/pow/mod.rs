//! `akihabara pow prove|verify|selftest|bench`.

mod args;

use std::time::{Duration, Instant};

use akihabara_gpu::{
    Challenge, CpuProver, Failure, MAX_PROOF_BYTES, MAX_SAMPLES, PowError, ProofFile, Prover, Seed,
    Timing, Verdict, Verifier, choose_rows, compute_rows, kernel, merkle,
};
use anyhow::Context;
use serde_json::json;

pub use self::args::{
    Backend, PowBenchArgs, PowCommand, PowProveArgs, PowSelftestArgs, PowVerifyArgs,
};

use crate::exit::{self, bad_input};
use crate::{out, render};

/// `akihabara pow …`.
pub fn run(cmd: PowCommand) -> anyhow::Result<()> {
    match cmd {
        PowCommand::Prove(a) => prove(a),
        PowCommand::Verify(a) => verify(a),
        PowCommand::Selftest(a) => selftest(a),
        PowCommand::Bench(a) => bench(a),
    }
}

fn seed(hex: &str) -> anyhow::Result<Seed> {
    hex.parse().map_err(exit::pow)
}

fn prove(a: PowProveArgs) -> anyhow::Result<()> {
    let ch = Challenge::new(seed(&a.seed)?, a.n, a.count).map_err(exit::pow)?;
    let mut backed = Backed::new(a.backend)?;
    let p = backed.get();
    eprintln!(
        "proving {} product(s) of {n}x{n} int8 matrices on {} ({:.2e} integer ops)…",
        ch.count,
        p.device(),
        ch.ops(),
        n = ch.n
    );
    let spinner = crate::progress::spinner("proving");
    let c = p.commit(&ch);
    spinner.finish_and_clear();
    let c = c.map_err(exit::pow)?;
    let elapsed_ms = c.elapsed.as_secs_f64() * 1e3;
    if let Some(path) = &a.out {
        // A proof file of a large challenge runs to hundreds of MiB.
        let spinner = crate::progress::spinner(&format!("writing {}", path.display()));
        let file = ProofFile::new(&ch, &c.root, &*p, elapsed_ms);
        let written = render::write_file(path, &serde_json::to_string(&file)?);
        spinner.finish_and_clear();
        written?;
    }
    let root = hex::encode(c.root);
    if a.output.json {
        out::println(
            json!({
                "root": root,
                "n": ch.n,
                "count": ch.count,
                "elapsed_ms": elapsed_ms,
                "backend": p.backend(),
                "device": p.device(),
            })
            .to_string(),
        )?;
    } else {
        out::println(format!(
            "root     {root}\nwork     {} x {n}x{n} in {elapsed_ms:.1} ms ({:.3e} ops/s, the prover's own clock)\ndevice   {} ({})",
            ch.count,
            ch.ops() / c.elapsed.as_secs_f64().max(1e-9),
            p.device(),
            p.backend(),
            n = ch.n,
        ))?;
    }
    Ok(())
}

fn secret(hex: Option<&str>) -> anyhow::Result<[u8; 32]> {
    match hex {
        Some(h) => {
            let s: Seed = h
                .parse()
                .map_err(|e: PowError| bad_input(anyhow::anyhow!("--secret: {e}")))?;
            Ok(s.0)
        }
        None => Ok(Seed::random().map_err(exit::pow)?.0),
    }
}

/// `--samples` in 1..=MAX_SAMPLES.
fn check_samples(samples: u32) -> anyhow::Result<()> {
    if samples == 0 {
        return Err(bad_input(anyhow::anyhow!("--samples must be at least 1")));
    }
    if samples > MAX_SAMPLES {
        return Err(bad_input(anyhow::anyhow!(
            "--samples {samples} is more than {MAX_SAMPLES}"
        )));
    }
    Ok(())
}

fn verify(a: PowVerifyArgs) -> anyhow::Result<()> {
    check_samples(a.samples)?;
    let bytes = akihabara_core::fs::read_limited(&a.proof, MAX_PROOF_BYTES)
        .with_context(|| format!("reading {}", a.proof.display()))
        .map_err(bad_input)?;
    let file = ProofFile::parse(&bytes)
        .map_err(|e| bad_input(anyhow::anyhow!("{}: {e}", a.proof.display())))?;
    let ch = file.challenge;
    // A proof of another seed is a rejection (exit 1), like a wrong row:
    // the input was read, and it does not prove what was asked.
    if let Some(want) = &a.seed {
        let want = seed(want)?;
        if want != ch.seed {
            let reason = format!("{} proves seed {}, not {want}", a.proof.display(), ch.seed);
            if a.output.json {
                out::println(
                    json!({
                        "valid": false,
                        "reason": reason,
                        "seed": ch.seed.to_string(),
                        "n": ch.n,
                        "count": ch.count,
                        "samples": 0,
                    })
                    .to_string(),
                )?;
            } else {
                out::println(format!("REJECTED: {reason}"))?;
            }
            return Err(anyhow::anyhow!("the proof is invalid: {reason}"));
        }
    }
    let root = file.root_hash().map_err(bad_input)?;
    let leaves = file.leaf_hashes().map_err(bad_input)?;
    let rows = choose_rows(&ch, &root, &secret(a.secret.as_deref())?, a.samples);
    let t = Instant::now();
    let failure = Verifier::new()
        .check_leaves(&ch, &root, &leaves, &rows)
        .map_err(|e| bad_input(anyhow::anyhow!("{}: {e}", a.proof.display())))?;
    let took = t.elapsed();
    let escape = akihabara_gpu::escape_probability(0.5, rows.len() as u32);
    if a.output.json {
        out::println(
            json!({
                "valid": failure.is_none(),
                "reason": failure.as_ref().map(ToString::to_string),
                "seed": ch.seed.to_string(),
                "n": ch.n,
                "count": ch.count,
                "samples": rows.len(),
                "escape_probability_at_half_skipped": escape,
                "verify_ms": took.as_secs_f64() * 1e3,
            })
            .to_string(),
        )?;
    } else {
        match &failure {
            None => out::println(format!(
                "valid: {} sampled rows recompute to their leaves, the leaves build the root ({:.1} ms)\n\
                 a prover that faked half the rows would pass with probability {escape:.1e}",
                rows.len(),
                took.as_secs_f64() * 1e3
            ))?,
            Some(f) => out::println(format!("REJECTED: {f}"))?,
        }
    }
    match failure {
        None => Ok(()),
        Some(f) => Err(anyhow::anyhow!("the proof is invalid: {f}")),
    }
}

fn selftest(a: PowSelftestArgs) -> anyhow::Result<()> {
    let ch = Challenge::new(Seed::random().map_err(exit::pow)?, a.n, a.count).map_err(exit::pow)?;
    let mut backed = Backed::new(a.backend)?;
    let p = backed.get();
    let c = p.commit(&ch).map_err(exit::pow)?;
    out::println(format!(
        "1. proved {} x {n}x{n} on {} in {:.1} ms: root {}",
        ch.count,
        p.device(),
        c.elapsed.as_secs_f64() * 1e3,
        hex::encode(c.root),
        n = ch.n
    ))?;
    let rows = choose_rows(&ch, &c.root, &Seed::random().map_err(exit::pow)?.0, 40);
    let openings = p.open(&rows).map_err(exit::pow)?;
    let v = Verifier::new();
    let timing = Timing {
        elapsed: c.elapsed,
        round_trip: Duration::ZERO,
    };
    let honest = v
        .verify(&ch, &c.root, &rows, &openings, timing)
        .map_err(exit::pow)?;
    out::println(format!(
        "2. opened {} rows; verified on the CPU: {}",
        rows.len(),
        describe(&honest)
    ))?;

    // Tamper: change one value of the first opened row.
    let mut forged = openings.clone();
    forged[0].values[0] ^= 1;
    let caught = v
        .verify(&ch, &c.root, &rows, &forged, timing)
        .map_err(exit::pow)?;
    out::println(format!(
        "3. one value of row {} of product {} changed: {}",
        rows[0].row,
        rows[0].matrix,
        describe(&caught)
    ))?;

    // A consistent forgery: commit to the wrong row from the start.
    let mut leaves = p.leaves().to_vec();
    let pos = rows[0].position(ch.n) as usize;
    leaves[pos] = merkle::leaf(&forged[0].values);
    let tree = merkle::Tree::new(leaves);
    for (o, r) in forged.iter_mut().zip(&rows) {
        o.path = tree.path(r.position(ch.n) as usize).unwrap_or_default();
    }
    let consistent = v
        .verify(&ch, &tree.root(), &rows, &forged, timing)
        .map_err(exit::pow)?;
    out::println(format!(
        "4. the same change committed in the tree: {}",
        describe(&consistent)
    ))?;

    let ok = honest.is_valid()
        && matches!(caught, Verdict::Rejected(Failure::BadPath { .. }))
        && matches!(consistent, Verdict::Rejected(Failure::WrongValues { .. }));
    if ok {
        out::println("selftest passed")?;
        Ok(())
    } else {
        Err(anyhow::anyhow!("selftest FAILED"))
    }
}

fn describe(v: &Verdict) -> String {
    match v {
        Verdict::Valid { .. } => "valid".into(),
        Verdict::Rejected(f) => format!("rejected ({f})"),
    }
}

fn bench(a: PowBenchArgs) -> anyhow::Result<()> {
    let sizes = if a.n.is_empty() {
        match a.backend {
            Backend::Cpu => vec![512, 1024, 2048],
            Backend::Cuda => vec![8192, 16384],
        }
    } else {
        a.n.clone()
    };
    // Every size is checked before a second of peak measurement is spent.
    for &n in sizes.iter().chain([&a.verify_n]) {
        Challenge::new(Seed([0; 32]), n, a.count).map_err(exit::pow)?;
    }
    check_samples(a.samples)?;
    let threads = kernel::default_threads();
    let mut p = Backed::new(a.backend)?;
    out::println(format!(
        "device: {} ({})",
        p.get().device(),
        p.get().backend()
    ))?;
    let cpu_peak = (a.backend == Backend::Cpu).then(|| kernel::measured_peak(threads, 1.0));
    if let Some(peak) = cpu_peak {
        out::println(format!(
            "measured CPU peak (micro-kernel on L1-resident data, {threads} threads): {peak:.3e} int ops/s"
        ))?;
    }
    out::println(
        "\n| n | count | prove ms | int ops/s | matmul-only ms | prove / matmul | % of peak |",
    )?;
    out::println("|---:|---:|---:|---:|---:|---:|---:|")?;
    for &n in &sizes {
        let ch =
            Challenge::new(Seed::random().map_err(exit::pow)?, n, a.count).map_err(exit::pow)?;
        eprintln!("proving n = {n}…");
        let c = p.get().commit(&ch).map_err(exit::pow)?;
        let secs = c.elapsed.as_secs_f64();
        let ops = ch.ops() / secs;
        let (matmul, peak) = p.peak(n, a.count, cpu_peak)?;
        out::println(format!(
            "| {n} | {} | {:.1} | {ops:.3e} | {} | {} | {:.0}% |",
            ch.count,
            secs * 1e3,
            matmul.map_or("-".into(), |m| format!("{:.1}", m.as_secs_f64() * 1e3)),
            matmul.map_or("-".into(), |m| format!("{:.2}x", secs / m.as_secs_f64())),
            100.0 * ops / peak,
        ))?;
    }

    out::println(format!(
        "\nverification on the CPU ({threads} threads), {} samples:",
        a.samples
    ))?;
    out::println("\n| n | count | rows recomputed | ms |")?;
    out::println("|---:|---:|---:|---:|")?;
    for count in [1, 64] {
        let ch = Challenge::new(Seed::random().map_err(exit::pow)?, a.verify_n, count)
            .map_err(exit::pow)?;
        let rows = choose_rows(
            &ch,
            &[0; 32],
            &Seed::random().map_err(exit::pow)?.0,
            a.samples,
        );
        let t = Instant::now();
        let values = compute_rows(&ch, &rows, threads).map_err(exit::pow)?;
        let leaves: Vec<_> = values.iter().map(|v| merkle::leaf(v)).collect();
        let took = t.elapsed();
        std::hint::black_box(leaves);
        out::println(format!(
            "| {} | {count} | {} | {:.0} |",
            ch.n,
            rows.len(),
            took.as_secs_f64() * 1e3
        ))?;
    }
    Ok(())
}

/// The prover of a `--backend`, kept concrete so `bench` can time CUDA's GEMM.
enum Backed {
    Cpu(CpuProver),
    #[cfg(feature = "cuda")]
    Cuda(Box<akihabara_gpu::cuda::CudaProver>),
}

impl Backed {
    fn new(backend: Backend) -> anyhow::Result<Backed> {
        match backend {
            Backend::Cpu => Ok(Backed::Cpu(CpuProver::new())),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Backed::Cuda(Box::new(
                akihabara_gpu::cuda::CudaProver::new(0).map_err(exit::pow)?,
            ))),
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => Err(exit::pow(PowError::NoBackend("cuda"))),
        }
    }

    fn get(&mut self) -> &mut dyn Prover {
        match self {
            Backed::Cpu(p) => p,
            #[cfg(feature = "cuda")]
            Backed::Cuda(p) => p.as_mut(),
        }
    }

    /// The matmul-only time (CUDA: the library GEMM alone, `count` times)
    /// and the peak ops/s to compare with.
    fn peak(
        &self,
        n: u32,
        count: u32,
        cpu_peak: Option<f64>,
    ) -> anyhow::Result<(Option<Duration>, f64)> {
        match self {
            Backed::Cpu(_) => {
                let _ = (n, count);
                Ok((None, cpu_peak.unwrap_or(f64::MAX)))
            }
            #[cfg(feature = "cuda")]
            Backed::Cuda(gpu) => {
                let one = gpu.time_gemm(n, 10).map_err(exit::pow)?;
                let peak = 2.0 * f64::from(n).powi(3) / one.as_secs_f64();
                Ok((Some(one * count), peak))
            }
        }
    }
}
