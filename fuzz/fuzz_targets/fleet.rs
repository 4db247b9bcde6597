//! Fleet files (`[health]`, `[[executors]]`): arbitrary text never panics
//! the parser or the check for serving validators' jobs, and a fleet that
//! parses has executors with unique, non-empty ids.
#![no_main]

use akihabara_core::executor::FleetConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fleet.toml");
    if let Ok(cfg) = FleetConfig::parse(text, path) {
        assert!(!cfg.executors.is_empty());
        assert!(!cfg.health.interval.is_zero() && !cfg.health.timeout.is_zero());
        let _ = cfg.check_remote_jobs(path);
    }
});
