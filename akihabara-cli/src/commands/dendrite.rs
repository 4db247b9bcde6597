//! `akihabara dendrite call`: one signed call to an axon.

use akihabara_core::dendrite::{AuthMode, AxonTarget, CallResult, Dendrite};
use akihabara_core::protocol::{Ping, SpecsQuery, Synapse};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::axon::positive_seconds;
use crate::args::{OutputArgs, SignerArgs};
use crate::out;

#[derive(Debug, Subcommand)]
pub enum DendriteCommand {
    /// Send one synapse and print the answer (exit 1 unless the axon says 200)
    #[command(after_help = "\
Examples:
  akihabara dendrite call --port 8091 --axon-hotkey 5F… --synapse Ping --message hi --count 41
  akihabara dendrite call --ip 10.0.0.5 --port 8091 --axon-hotkey 5F… --synapse SpecsQuery --json")]
    Call(DendriteCallArgs),
}

/// Built-in synapses.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SynapseName {
    /// Echo a message and count + 1
    #[value(name = "Ping")]
    Ping,
    /// The axon machine's CPUs, memory and GPUs
    #[value(name = "SpecsQuery")]
    SpecsQuery,
}

/// How the dendrite signs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AuthArg {
    /// bittensor 6-10 signed headers
    Legacy,
    /// bittensor 11 btauth/1
    Btauth,
}

/// `akihabara dendrite call`.
#[derive(Debug, Args)]
pub struct DendriteCallArgs {
    #[command(flatten)]
    pub signer: SignerArgs,
    /// Axon address
    #[arg(long, default_value = "127.0.0.1")]
    pub ip: std::net::IpAddr,
    /// Axon port
    #[arg(long)]
    pub port: u16,
    /// The axon's hotkey (SS58); signed into the call
    #[arg(long, value_name = "SS58")]
    pub axon_hotkey: akihabara_core::AccountId,
    /// Which synapse to send
    #[arg(long, value_enum, default_value = "Ping")]
    pub synapse: SynapseName,
    /// Ping: the message
    #[arg(long, default_value = "hello")]
    pub message: String,
    /// Ping: the count
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub count: i64,
    /// SpecsQuery: leave GPUs out
    #[arg(long)]
    pub no_gpus: bool,
    /// Seconds to wait
    #[arg(
        long,
        value_name = "S",
        default_value_t = 12.0,
        allow_negative_numbers = true
    )]
    pub timeout: f64,
    /// Signing scheme
    #[arg(long, value_enum, default_value = "legacy")]
    pub auth: AuthArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn report<S: Synapse>(r: CallResult<S>, target: &AxonTarget, json: bool) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Out<'a, S> {
        status: u16,
        message: &'a str,
        elapsed_s: f64,
        synapse: Option<&'a S>,
    }
    let o = Out {
        status: r.status,
        message: &r.message,
        elapsed_s: r.elapsed.as_secs_f64(),
        synapse: r.synapse.as_ref(),
    };
    if json {
        out::println(serde_json::to_string(&o)?)?;
    } else if r.answered {
        let mut text = format!("{} {} ({:.1} ms)", r.status, r.message, o.elapsed_s * 1e3);
        if let Some(s) = &r.synapse {
            text.push('\n');
            text.push_str(&serde_json::to_string_pretty(s)?);
        }
        out::println(text)?;
    }
    if r.status != 200 {
        anyhow::bail!("{}", failure_line(&r, target));
    }
    Ok(())
}

/// What a failed call means, and what to check next.
fn failure_line<S>(r: &CallResult<S>, t: &AxonTarget) -> String {
    let at = format!("{}:{}", t.ip, t.port);
    match (r.answered, r.status) {
        (false, 503) => format!(
            "no axon at {at} (connection refused): is the miner running, and are --ip and --port its axon's?"
        ),
        (false, 408) => format!("no answer from {at}: {}", r.message),
        (false, _) => format!("the call to {at} failed: {}", r.message),
        (true, 401) if r.message.contains("Signature mismatch") => format!(
            "the axon at {at} refused our signature (401): the signed message names the axon's \
             hotkey as {}; is --axon-hotkey the hotkey this axon serves?",
            t.hotkey
        ),
        (true, status) => format!("the axon at {at} answered {status}: {}", r.message),
    }
}

/// `akihabara dendrite call`.
pub fn run(cmd: DendriteCommand) -> anyhow::Result<()> {
    let DendriteCommand::Call(a) = cmd;
    call_one(a)
}

fn call_one(a: DendriteCallArgs) -> anyhow::Result<()> {
    let timeout = positive_seconds("--timeout", a.timeout)?;
    let keypair = a.signer.hotkey()?;
    let auth = match a.auth {
        AuthArg::Legacy => AuthMode::Legacy,
        AuthArg::Btauth => AuthMode::BtAuth,
    };
    let own_ip = if a.ip.is_loopback() {
        "127.0.0.1"
    } else {
        "0.0.0.0"
    };
    let dendrite = Dendrite::with_options(keypair, auth, own_ip)?;
    let target = AxonTarget::new(a.ip, a.port, a.axon_hotkey);
    runtime()?.block_on(async move {
        match a.synapse {
            SynapseName::Ping => report(
                dendrite
                    .call(&target, Ping::new(a.message, a.count), timeout)
                    .await,
                &target,
                a.output.json,
            ),
            SynapseName::SpecsQuery => {
                let q = SpecsQuery {
                    include_gpus: !a.no_gpus,
                    ..SpecsQuery::default()
                };
                report(
                    dendrite.call(&target, q, timeout).await,
                    &target,
                    a.output.json,
                )
            }
        }
    })
}
