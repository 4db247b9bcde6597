//! The flags of `akihabara pow …`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::args::OutputArgs;

/// Where proofs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Every CPU core (packed int8 products, AVX2 where present)
    Cpu,
    /// NVIDIA GPU 0 (cuBLAS int8 GEMM; needs the CUDA driver at run time)
    Cuda,
}

#[derive(Debug, Subcommand)]
pub enum PowCommand {
    /// Compute COUNT exact int8 products of side N from SEED and commit to their rows
    #[command(after_help = "\
The answer is the Merkle root a miner sends a validator. --out writes a proof
file (the root and every leaf) that `akihabara pow verify` checks offline.

Examples:
  akihabara pow prove --seed $(head -c32 /dev/urandom | xxd -p -c64) --n 1024 --count 2
  akihabara pow prove --seed 00…1f --n 8192 --count 4 --backend cuda --json --out proof.json")]
    Prove(PowProveArgs),
    /// Check a proof file: its leaves build its root, and sampled rows recompute to their leaves
    #[command(after_help = "\
Rows are chosen at random (or from --secret and the root), recomputed on the
CPU from the seed and hashed. A prover that faked a fraction f of the rows
passes S samples with probability at most (1-f)^S: 40 samples give 2^-40 at
f = 0.5. Exit 0 valid, 1 rejected, 2 unreadable input.

Example:
  akihabara pow verify --proof proof.json --samples 40")]
    Verify(PowVerifyArgs),
    /// Prove, verify, then tamper with one row and show that verification catches it
    Selftest(PowSelftestArgs),
    /// Time proving and verifying; compare with the device's measured peak
    #[command(after_help = "\
CPU peak: the same micro-kernel on data that stays in L1 (no memory traffic).
CUDA peak: cuBLAS's int8 GEMM of the same size alone, in the same run.
Verification is always timed on the CPU, as a validator without a GPU runs it.")]
    Bench(PowBenchArgs),
}

#[derive(Debug, Args)]
pub struct PowProveArgs {
    /// The challenge seed: 64 hex digits (32 bytes)
    #[arg(long, value_name = "HEX")]
    pub seed: String,
    /// Matrix side (1 to 131071: exactness bound of int8 products in int32)
    #[arg(long, value_name = "N")]
    pub n: u32,
    /// Number of products
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub count: u32,
    /// Where to compute
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Also write a proof file (root and all leaves) for `pow verify`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PowVerifyArgs {
    /// A proof file written by `pow prove --out`
    #[arg(long, value_name = "FILE")]
    pub proof: PathBuf,
    /// Rows to recompute and check, 1 to 1024
    #[arg(long, value_name = "S", default_value_t = 40)]
    pub samples: u32,
    /// Refuse a proof of any other seed
    #[arg(long, value_name = "HEX")]
    pub seed: Option<String>,
    /// Choose rows from this 32-byte secret and the root instead of at random
    #[arg(long, value_name = "HEX")]
    pub secret: Option<String>,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct PowSelftestArgs {
    /// Where to compute
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Matrix side
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub n: u32,
    /// Number of products
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub count: u32,
}

#[derive(Debug, Args)]
pub struct PowBenchArgs {
    /// Where to prove
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Matrix sides to prove (comma-separated) [default: cpu 512,1024,2048; cuda 8192,16384]
    #[arg(long, value_name = "N,…", value_delimiter = ',')]
    pub n: Vec<u32>,
    /// Products per proof
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub count: u32,
    /// Rows the verification benchmark opens, 1 to 1024
    #[arg(long, value_name = "S", default_value_t = 40)]
    pub samples: u32,
    /// Side of the proofs whose verification is timed
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub verify_n: u32,
}
