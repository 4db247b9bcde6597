//! The measurements file a validator scores from (`score --measurements`):
//! arbitrary JSON never panics the parser or its checks, and what passes
//! the checks scores without a panic and with finite, non-negative scores.
#![no_main]

use akihabara_core::score::{Measurements, ScoringConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = serde_json::from_slice::<Measurements>(data) else {
        return;
    };
    if m.validate().is_err() {
        return;
    }
    let Ok(scorer) = ScoringConfig::default().build("gpu-table", None) else {
        return;
    };
    if let Ok(set) = scorer.score(&m) {
        for s in set.scores.values() {
            assert!(s.get().is_finite() && s.get() >= 0.0, "{s:?}");
        }
    }
});
