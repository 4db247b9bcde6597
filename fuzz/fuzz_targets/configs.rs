//! The daemons' TOML configs (`miner run`, `validator run`, `gateway serve`)
//! with environment overrides and `--set` flags: arbitrary text never panics
//! the loader, and the checks the daemons run on the values they read
//! (store address, strategy, layout, rate limit) never panic either.
//!
//! The input is the TOML text, then optionally a NUL byte and `--set`
//! values one per line, then a NUL byte and `NAME=VALUE` lines taken as
//! `AKIHABARA_NAME` environment variables.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The CLI has no library target: its config module is compiled here from
// its source, with the one item it takes from the rest of the CLI.
#[allow(dead_code)]
#[path = "../../akihabara-cli/src/config/mod.rs"]
mod config;

mod exit {
    /// The CLI tags the error for exit code 2; nothing to tag here.
    pub fn bad_input(e: anyhow::Error) -> anyhow::Error {
        e
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let toml = parts.next().unwrap_or_default();
    let sets: Vec<String> = parts
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let env: Vec<(String, String)> = parts
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("AKIHABARA_{k}"), v.to_owned()))
        .collect();

    if let Ok(m) = config::parse::<config::MinerConfig>(toml, "fuzz", env.clone(), &sets) {
        let _ = akihabara_core::store::check_address(&m.state.store());
        let _ = akihabara_core::strategy::by_name(&m.schedule.strategy);
        let _ = m.schedule.layout.parse::<akihabara_core::Layout>();
        if let Some(rps) = m.axon.rate_limit {
            let _ = akihabara_core::axon::RateLimit::new(rps, m.axon.burst);
        }
        let _ = m.jobs.volumes();
    }
    if let Ok(v) = config::parse::<config::ValidatorConfig>(toml, "fuzz", env.clone(), &sets) {
        let _ = akihabara_core::store::check_address(&v.state.store());
        let _ = v.scoring.library();
    }
    let _ = config::parse::<config::GatewayConfig>(toml, "fuzz", env, &sets);
});
