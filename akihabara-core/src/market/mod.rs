//! The job market between miners and validators (feature `net`): what a
//! validator asks of a miner's executors and what the miner answers, apart
//! from where jobs run ([`executor`](crate::executor)).
//!
//! - [`jobs`]: signed job requests, the miner's accept policy, signed
//!   receipts in a crash-safe store.
//! - [`accept`]: reference accept policies (per-class limits, a script).
//! - [`receipts`]: the signed receipts' store, bounded on disk.
//! - [`flight`]: the budget of calls worked on past their caller.
//! - [`logs`]: a running job's output lines, kept for its validator.
//! - [`volumes`]: a job's input and output files, moved over HTTP by the
//!   miner.
//! - [`wire`]: the jobs and allocation synapses.
//! - [`server`]: the miner's [`JobService`](server::JobService), answering
//!   them from a fleet.
//! - [`client`]: the validator's calls ([`submit_job`](client::submit_job),
//!   [`query_job`](client::query_job), [`allocate`](client::allocate),
//!   [`deallocate`](client::deallocate)), which check every receipt.

pub mod accept;
pub mod client;
pub mod flight;
pub mod jobs;
pub mod logs;
pub mod receipts;
pub mod server;
mod table;
pub mod volumes;
pub mod wire;

#[cfg(test)]
mod tests;
