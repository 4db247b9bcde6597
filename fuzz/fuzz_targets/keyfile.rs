//! btcli keyfile JSON: never panics; whatever parses re-renders and parses to the same key.
#![no_main]

use akihabara_core::wallet::{KeyMaterial, keyfile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(material) = keyfile::parse(data) {
        let again = match &material {
            KeyMaterial::Secret(kp) => keyfile::parse(&keyfile::render_secret(kp)),
            KeyMaterial::Public(a) => keyfile::parse(&keyfile::render_public(a)),
        }
        .expect("rendered keyfiles parse");
        assert_eq!(again.account(), material.account());
    }
});
