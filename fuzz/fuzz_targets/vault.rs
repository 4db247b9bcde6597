//! ansible-vault 1.1 decoding: never panics on any input.
#![no_main]

use akihabara_core::wallet::crypto;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = crypto::vault_decrypt(data, "password");
    let mut input = b"$ANSIBLE_VAULT;1.1;AES256\n".to_vec();
    input.extend_from_slice(data);
    let _ = crypto::vault_decrypt(&input, "password");
    let _ = crypto::check_encrypted(&input);
});
