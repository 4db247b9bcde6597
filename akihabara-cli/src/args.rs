//! Command-line definitions.

use std::path::PathBuf;

use akihabara_core::Netuid;
use clap::{Args, Parser, Subcommand};

use crate::commands::axon::AxonCommand;
use crate::commands::chain::ChainCommand;
use crate::commands::config::ConfigCommand;
use crate::commands::demo::DemoArgs;
use crate::commands::dendrite::DendriteCommand;
use crate::commands::executor::ExecutorCommand;
use crate::commands::metagraph::MetagraphArgs;
use crate::commands::pow::PowCommand;
use crate::commands::schedule::ScheduleArgs;
use crate::commands::score::ScoreArgs;
use crate::commands::sim::SimArgs;
use crate::commands::wallet::WalletCommand;
use crate::commands::weights::WeightsCommand;
use crate::daemon::{MinerCommand, ValidatorCommand};

/// Run Bittensor compute subnets: mine and validate (proofs of work, jobs,
/// rentals, scores and weights on chain), schedule and simulate strategies.
#[derive(Debug, Parser)]
#[command(name = "akihabara", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 success, 1 failure, 2 bad input (flag, file or value);\n\
calls to a miner (jobs, allocate, deallocate): 3 declined, 4 no answer,\n\
5 a malformed answer or a receipt that is not the miner's signature.\n\
Metagraph files use the snapshot format in the README (version 1 JSON)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The command line as parsed: [`Cli`]'s definition, where a value that
/// looks like a negative number (`--windows -1`) is taken as the flag's
/// value, so its parser says what is wrong with it ("invalid digit"), not
/// "unexpected argument '-1'".
pub fn command() -> clap::Command {
    negative_numbers_are_values(<Cli as clap::CommandFactory>::command())
}

fn negative_numbers_are_values(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| {
        if a.get_action().takes_values() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    })
    .mut_subcommands(negative_numbers_are_values)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Split one window's blocks across validators and show the slots.
    #[command(after_help = "\
Examples:
  akihabara schedule --metagraph mg.json
  akihabara schedule --metagraph mg.json --strategy stake --tempo 360 --window-start 7200
  akihabara schedule --metagraph mg.json --layout interleaved --json > schedule.json

Strategies:
  proportional  exact stake-proportional shares, minimum guaranteed (default)
  stake         the reference Akihabara miner's algorithm
  equal         even split across the highest-stake validators
  emission      competition-aware; needs competitor_load in the snapshot")]
    Schedule(ScheduleArgs),
    /// Simulate miners running different strategies and compare the outcomes.
    #[command(after_help = "\
This is a simulation: synthetic validators (heavy-tailed stakes, or those of
--metagraph) and miners of random capacity; each validator pays its stake out
by share of the compute it received. Same --seed, same numbers (the
allocation-time column measures this machine and is the one exception).

Columns:
  REWARD/COMPUTE  reward per unit of compute / the stake-proportional ideal
  JAIN            fairness of compute per unit of stake across validators
  COVERAGE        share of validators each miner serves at least --min-blocks
  ALLOC µs        mean wall time of one allocation

Example:
  akihabara sim --validators 256 --miners 1000 --windows 100 --svg sim.svg")]
    Sim(SimArgs),
    /// Create, load, list and use btcli-compatible wallets.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Serve the Bittensor axon protocol (Ping, SpecsQuery) with your hotkey.
    #[command(subcommand)]
    Axon(AxonCommand),
    /// Call an axon (ours or a Python bittensor one), signed with your hotkey.
    #[command(subcommand)]
    Dendrite(DendriteCommand),
    /// Score miners from a validator's measurements and show the weights that would be set.
    #[command(after_help = "\
Scorers:
  gpu-table       NI Compute's table: base(model) x min(gpus, 8), 50 points for
                  eight of the best model, doubled when allocated (default table
                  built in; [gpu_table] in --config replaces it); with
                  [gpu_reference] ranges a model is paid only if the verified
                  pow speed reaches its range, at the price that speed reaches,
                  for one GPU (the proof of work times one device)
  hardware-class  sum of relative_value(class) x efficiency x worked seconds
                  (needs [hardware_classes])
  pow             verified proof-of-work ops/s, whatever class the miner
                  names; a failed proof scores 0 and leaves a decaying penalty
  composite       weighted sum of the others (needs [composite])

--state keeps the EMA of scores ([ema] alpha, default 0.1) and the penalties
([penalty] decay, default 0.5) between runs: one run per epoch.

Examples:
  akihabara score --metagraph examples/metagraph.json --measurements examples/measurements.json --scorer gpu-table
  akihabara score --metagraph mg.json --measurements m.json --scorer composite --config examples/scoring.toml --state state.json --json")]
    Score(ScoreArgs),
    /// Normalize weights to u16, and set, commit or reveal them on chain.
    #[command(subcommand)]
    Weights(WeightsCommand),
    /// Read a subnet's metagraph from the chain (one runtime-API call).
    #[command(after_help = "\
--json prints the snapshot format that --metagraph reads everywhere, so
  akihabara metagraph --network finney --netuid 27 --json > mg.json
  akihabara schedule --metagraph mg.json
works. stake_rao is the hotkey's alpha stake on this subnet (rao);
total_stake_rao is the runtime's total stake figure beside it.

Networks: finney, test, local (ws://127.0.0.1:9944), or a ws:// or wss:// URL.")]
    Metagraph(MetagraphArgs),
    /// Run jobs on executors (this machine or SSH hosts) and check a fleet.
    #[command(subcommand)]
    Executor(ExecutorCommand),
    /// Validator side: send a signed job to a miner and read its state
    #[command(subcommand)]
    Jobs(crate::commands::jobs::JobsCommand),
    /// Validator side: sell compute to end users through an HTTP API (organic jobs)
    #[command(subcommand)]
    Gateway(crate::commands::gateway::GatewayCommand),
    /// Validator side: rent an executor from a miner with your SSH key
    #[command(after_help = "\
The miner installs --ssh-key on one of its executors until the allocation
expires or is deallocated, and answers with the login details sealed to a
key made for this call (nothing secret is stored or printed). The
allocation is recorded in STATE/allocations.json for `allocations` and
`deallocate`.

Exit codes: 0 allocated, 2 bad input, 3 the miner declined, 4 no answer,
5 a malformed answer or details that do not open.

Examples:
  akihabara allocate --port 8091 --axon-hotkey 5F… --ssh-key ~/.ssh/id_ed25519.pub
  akihabara allocate --metagraph mg.json --uid 12 --class A100 --duration 86400 --json
  akihabara allocate --network finney --netuid 27 --uid 12 --class A100")]
    Allocate(crate::commands::allocate::AllocateArgs),
    /// Validator side: end an allocation early (the miner revokes the key)
    #[command(after_help = "\
The miner is the one recorded by `allocate`. An allocation the miner no
longer holds (expired) is removed from the record too.

Example:
  akihabara deallocate 3f2a9c…")]
    Deallocate(crate::commands::allocate::DeallocateArgs),
    /// Validator side: list the allocations this hotkey holds (local record)
    #[command(after_help = "\
Reads STATE/allocations.json, written by `allocate` and `deallocate`; no
network call and no password.

Examples:
  akihabara allocations
  akihabara allocations --wallet.name validator --json")]
    Allocations(crate::commands::allocate::AllocationsArgs),
    /// Write to the chain: serve an axon, register, read hyperparameters.
    #[command(subcommand)]
    Chain(ChainCommand),
    /// Prove, verify and benchmark the seeded-matrix proof of work.
    #[command(subcommand)]
    Pow(PowCommand),
    /// Run a whole local subnet in one process: validators, miners, proofs
    /// of work, scores and weights (no chain, no GPU).
    #[command(after_help = "\
The demo starts, on 127.0.0.1, a subnet made of real parts: sr25519 keys,
one axon per miner serving Ping, SpecsQuery and the proof of work (CPU
prover), and validators whose dendrites sign every call. The chain is a
simulation (SnapshotChain: a metagraph in memory that checks and records
weights as subtensor would); nothing leaves the machine.

Each window every miner computes its schedule (which validator it serves
when); in each of its slots that validator challenges it with a fresh seed,
opens rows it picks after the commitment, and verifies them. At the end of
the window each validator scores its verdicts (pow scorer, EMA) and sets
weights on the simulated chain.

Examples:
  akihabara demo
  akihabara demo --cheat-miner 3          # the miner with uid 3 skips half its rows
  akihabara demo --windows 5 --n 512 --json > demo.json
  akihabara demo --network local          # the dev subnet of ../shared/chain

With --network the subnet, the axon addresses (127.0.0.2) and the weights
are the chain's; slots run in order without waiting for their blocks,
because a local dev chain builds blocks only on demand.")]
    Demo(DemoArgs),
    /// Run a miner: serve the axon (proof of work, schedule, jobs) and follow
    /// a schedule across validators, window by window
    #[command(subcommand)]
    Miner(MinerCommand),
    /// Run a validator: challenge miners, score them, set weights once per tempo
    #[command(subcommand)]
    Validator(ValidatorCommand),
    /// Write a commented configuration template for `miner run` or `validator run`
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Which wallet (bittensor's flag names).
#[derive(Debug, Args, Clone)]
pub struct WalletArgs {
    /// Directory holding the wallets
    #[arg(long = "wallet.path", value_name = "DIR", default_value = akihabara_core::wallet::DEFAULT_WALLET_PATH)]
    pub path: PathBuf,
    /// Wallet name
    #[arg(long = "wallet.name", value_name = "NAME", default_value = "default")]
    pub name: String,
    /// Hotkey name
    #[arg(long = "wallet.hotkey", value_name = "NAME", default_value = "default")]
    pub hotkey: String,
}

/// The wallet that signs, and where its password comes from.
#[derive(Debug, Args, Clone)]
pub struct SignerArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Where an existing or new password comes from. Never a flag value.
#[derive(Debug, Args, Clone)]
pub struct PasswordArgs {
    /// Read the password from this file (one trailing newline is dropped).
    /// Otherwise: AKIHABARA_WALLET_PASSWORD, bittensor's BT_PW_<path>, then a prompt.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

/// `--json`, where it means one JSON object on standard output.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

/// Which chain, and how long to wait for it.
#[derive(Debug, Args, Clone)]
pub struct NetworkArgs {
    /// finney, test, local, or a ws:// or wss:// URL
    #[arg(long, value_name = "NET", default_value = "finney")]
    pub network: String,
    /// Seconds to wait for the connection and for each read
    #[arg(long = "chain-timeout", value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
}

/// What a command that signs a chain call may sign.
#[derive(Debug, Args, Clone, Default)]
pub struct ChainSignArgs {
    /// Sign the call even when the node's metadata gives it another pallet
    /// index, call index, argument shape or bytes than every subtensor
    /// runtime this release knows (a runtime upgrade, or a node lying to make
    /// your key sign something else). Off: such a call is refused and nothing
    /// is signed
    #[arg(long)]
    pub sign_unpinned_calls: bool,
}

/// Which subnet, on which chain.
#[derive(Debug, Args, Clone)]
pub struct SubnetArgs {
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Subnet
    #[arg(long, value_name = "N")]
    pub netuid: u16,
}

impl SubnetArgs {
    /// `--netuid` as the chain's type.
    pub fn netuid(&self) -> Netuid {
        Netuid(self.netuid)
    }
}
