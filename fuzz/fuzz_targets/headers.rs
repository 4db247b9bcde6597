//! Legacy request headers: arbitrary header lists (names, raw bytes,
//! duplicates) never panic; what parses has a finite positive timeout.
#![no_main]

use akihabara_core::protocol::{FieldKind, RequestHeaders};
use libfuzzer_sys::fuzz_target;

#[path = "common/header_list.rs"]
mod common;
use common::header_list;

const NAMES: [&str; 10] = [
    "name",
    "timeout",
    "computed_body_hash",
    "bt_header_dendrite_nonce",
    "bt_header_dendrite_version",
    "bt_header_dendrite_hotkey",
    "bt_header_axon_port",
    "bt_header_axon_process_time",
    "bt_header_input_obj_message",
    "x-other",
];

fuzz_target!(|data: &[u8]| {
    // Each header: one byte picks the name, one byte the value length.
    let headers = header_list(&NAMES, data);
    if let Ok(h) = RequestHeaders::parse(headers, &[("message", FieldKind::Str)]) {
        if let Some(t) = h.timeout {
            assert!(t.is_finite() && t > 0.0);
        }
        assert!(h.input_objs.iter().any(|f| f == "message"));
    }
});
