//! The flags of `akihabara axon serve`.

use std::path::PathBuf;

use akihabara_core::Tao;
use clap::{Args, Subcommand};

use crate::args::SignerArgs;

#[derive(Debug, Subcommand)]
pub enum AxonCommand {
    /// Listen for synapses until SIGINT/SIGTERM or --duration
    #[command(after_help = "\
Prints one JSON line when listening, {\"event\":\"ready\",\"hotkey\":…,\"port\":…},
and one when stopped, with request counts by HTTP status.

Callers authenticate with bittensor's legacy signed headers (bittensor 6-10)
or btauth/1 (bittensor 11). Without --metagraph every caller that signs
correctly is served, minus --blacklist; with it, callers must be registered,
hold a validator permit and --min-stake. --allow restricts further; it never
lets anyone skip the other checks.

With --fleet the axon also runs validators' jobs and allocations on the
fleet's executors: a signed JobRequest is accepted whenever an executor of
its class is free (receipts signed and kept in --state-dir); an Allocate
installs the validator's SSH key on an ssh executor until it expires or is
deallocated. Allocations and receipts survive a restart.

Examples:
  akihabara axon serve --wallet.name miner --port 8091
  akihabara axon serve --wallet.name miner --port 8091 --fleet fleet.toml
  akihabara axon serve --wallet.name miner --ip 0.0.0.0 --port 8091 \\
      --metagraph mg.json --min-stake 1000 --rate-limit 5 --burst 20")]
    Serve(AxonServeArgs),
}

/// `akihabara axon serve`.
#[derive(Debug, Args)]
pub struct AxonServeArgs {
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,
    /// Port to listen on (0 picks a free one, printed in the ready line)
    #[arg(long)]
    pub port: u16,
    /// Stop after this many seconds
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub duration: Option<f64>,
    /// Refuse these hotkeys (comma-separated SS58)
    #[arg(long, value_name = "SS58,…", value_delimiter = ',')]
    pub blacklist: Vec<akihabara_core::AccountId>,
    /// Serve only these hotkeys (comma-separated SS58; other checks still apply)
    #[arg(long, value_name = "SS58,…", value_delimiter = ',')]
    pub allow: Vec<akihabara_core::AccountId>,
    /// Refuse hotkeys owned by these coldkeys (needs --metagraph)
    #[arg(
        long,
        value_name = "SS58,…",
        value_delimiter = ',',
        requires = "metagraph"
    )]
    pub deny_coldkey: Vec<akihabara_core::AccountId>,
    /// Serve only hotkeys owned by these coldkeys (needs --metagraph)
    #[arg(
        long,
        value_name = "SS58,…",
        value_delimiter = ',',
        requires = "metagraph"
    )]
    pub allow_coldkey: Vec<akihabara_core::AccountId>,
    /// Metagraph snapshot: callers must be registered in it
    #[arg(long, value_name = "FILE")]
    pub metagraph: Option<PathBuf>,
    /// Least stake a caller needs, in TAO (with --metagraph)
    #[arg(long, value_name = "TAO", requires = "metagraph")]
    pub min_stake: Option<Tao>,
    /// Serve callers without a validator permit (with --metagraph)
    #[arg(long, requires = "metagraph")]
    pub no_permit_required: bool,
    /// Per-hotkey requests per second
    #[arg(long, value_name = "RPS", allow_negative_numbers = true)]
    pub rate_limit: Option<f64>,
    /// Per-hotkey burst above the rate [default: max(1, RPS)]
    #[arg(long, value_name = "N", requires = "rate_limit")]
    pub burst: Option<u32>,
    /// Requests handled at once; more queue by stake
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_concurrent: usize,
    /// Largest request body in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Cap on a request's timeout, in seconds
    #[arg(
        long,
        value_name = "S",
        default_value_t = 300.0,
        allow_negative_numbers = true
    )]
    pub max_timeout: f64,
    /// Refuse btauth/1 (bittensor 11) requests
    #[arg(long)]
    pub no_btauth: bool,
    /// Threads serving HTTP, 1 to 256. 1 (the default) is the cheapest per
    /// call: signatures are checked on a thread of their own either way
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Also serve jobs and allocations (JobSubmit, JobQuery, Allocate,
    /// Deallocate) on the executors of this fleet file (see `akihabara
    /// executor check --help` for its format)
    #[arg(long, value_name = "FILE")]
    pub fleet: Option<PathBuf>,
    /// Where the job receipts and allocations are kept across restarts
    /// [default: ~/.akihabara/miner/<hotkey SS58>]
    #[arg(long, value_name = "DIR", requires = "fleet")]
    pub state_dir: Option<PathBuf>,
    /// Let jobs' input and output URLs reach loopback and private addresses
    /// (tests, or a miner serving its own validator on a private network)
    #[arg(long, requires = "fleet")]
    pub allow_private_file_urls: bool,
}
