//! btauth/1 header parsing: arbitrary headers never panic; what parses has
//! version 1, a decimal nonce and a 64-byte signature.
#![no_main]

use akihabara_core::protocol::btauth;
use libfuzzer_sys::fuzz_target;

#[path = "common/header_list.rs"]
mod common;
use common::header_list;

const NAMES: [&str; 7] = [
    "X-Bittensor-Version",
    "x-bittensor-hotkey",
    "X-Bittensor-Nonce",
    "X-Bittensor-Signature",
    "X-Bittensor-Receiver",
    "X-Bittensor-Crypto",
    "content-type",
];

fuzz_target!(|data: &[u8]| {
    let headers = header_list(&NAMES, data);
    if let Ok(h) = btauth::parse(headers.iter().copied()) {
        assert_eq!(h.signature.0.len(), 64);
        let _ = btauth::verify(
            &h,
            "POST",
            "/Ping",
            b"{}",
            &h.hotkey,
            &btauth::VerifyOptions::default(),
            h.nonce,
        );
    }
});
