//! Organic jobs: end users send work through a validator's gateway, and the
//! validator routes it to miners.
//!
//! - [`Gateway`]: clients ([`keys`]), jobs ([`jobs`]) and the operator's
//!   [`OrderRules`], kept in the validator's [`Store`](crate::store::Store),
//!   so a restart loses no job.
//! - [`http`]: the HTTP API (`POST /v1/jobs`, `GET /v1/jobs/{id}`, its
//!   `logs` as server-sent events, `DELETE` to cancel), described by the
//!   OpenAPI document it serves at `/openapi.json`.
//! - [`Router`]: hands queued jobs to miners over the jobs protocol
//!   ([`market`](crate::market)), best score first, moving on when one
//!   declines, and follows each to its end. With a [`CrossChecker`], a
//!   share of finished jobs is run again on a trusted executor and a miner
//!   whose result differs is penalised, with the evidence kept.
//!
//! ```no_run
//! use std::sync::Arc;
//! use akihabara::gateway::{Gateway, OrderRules, http::{HttpSettings, Listener}};
//! use akihabara::store::Embedded;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = Arc::new(Embedded::open("/var/lib/akihabara/gateway.redb")?);
//! let clients = akihabara::gateway::keys::Clients::new("/var/lib/akihabara/clients.json");
//! let rules = OrderRules {
//!     classes: ["cpu".to_owned()].into(),
//!     images: ["busybox:latest".to_owned()].into(),
//!     ..OrderRules::default()
//! };
//! let gateway = Gateway::open(store, clients, rules)?;
//! let (client, key) = gateway.clients().add_key("acme", &Default::default(), 0)?;
//! println!("{}: {key}", client.id);
//! let listener = Listener::bind("127.0.0.1:8080".parse()?, HttpSettings::default()).await?;
//! listener.serve(gateway, std::future::pending()).await;
//! # Ok(()) }
//! ```

pub mod cross;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod order;
mod router;
mod service;

#[cfg(test)]
mod tests;

pub use cross::CrossChecker;
pub use jobs::{CrossCheck, Evidence, JobState, OrganicJob};
pub use order::{FieldError, JobOrder, OrderRules};
pub use router::{Candidate, ChainMiners, MinerDirectory, Router, RouterSettings};
pub use service::{
    Freshness, Gateway, MAX_ACTIVE_PER_CLIENT, MAX_PREFLIGHTS, MAX_PREFLIGHTS_PER_CLIENT,
    MAX_STREAMS, MAX_STREAMS_PER_CLIENT, OrganicWork, SubmitError,
};

/// Why the gateway could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The chain (the miners' directory) failed.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// The dendrite could not be built.
    #[error(transparent)]
    Dendrite(#[from] crate::dendrite::DendriteError),
    /// The system gave no randomness for an id or a key.
    #[error("no system randomness: {0}")]
    Randomness(#[source] crate::gpu::PowError),
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// A setting or a client's limits that cannot be used.
    #[error("{0}")]
    Setting(String),
}
