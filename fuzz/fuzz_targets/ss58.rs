//! SS58 decoding: never panics, and what decodes re-encodes to the same text.
#![no_main]

use akihabara_core::AccountId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok((prefix, id)) = AccountId::from_ss58_any(text)
    {
        assert_eq!(id.to_ss58_with_prefix(prefix), text);
    }
});
