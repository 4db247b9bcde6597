//! btauth/1 header parsing: arbitrary headers never panic; what parses has
//! version 1, a decimal nonce and a 64-byte signature.
#![no_main]

use akihabara_core::protocol::btauth;
use libfuzzer_sys::fuzz_target;

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
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 {
        let name = NAMES[rest[0] as usize % NAMES.len()];
        let len = (rest[1] as usize).min(rest.len() - 2);
        headers.push((name, &rest[2..2 + len]));
        rest = &rest[2 + len..];
    }
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
