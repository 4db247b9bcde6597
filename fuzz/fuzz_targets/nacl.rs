//! `$NACL` decoding with a fixed key (Argon2 would make each run take seconds):
//! never panics, and only data sealed under the key opens.
#![no_main]

use akihabara_core::wallet::crypto;
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [42u8; 32];

fuzz_target!(|data: &[u8]| {
    let mut input = b"$NACL".to_vec();
    input.extend_from_slice(data);
    let _ = crypto::nacl_decrypt_with_key(&input, &KEY);
    let _ = crypto::check_encrypted(&input);
    let _ = crypto::nacl_decrypt_with_key(data, &KEY);
    // Round trip of the input as plaintext.
    let sealed = crypto::nacl_encrypt_with_key(data, &KEY).expect("encrypt");
    assert_eq!(
        &crypto::nacl_decrypt_with_key(&sealed, &KEY).expect("opens")[..],
        data
    );
});
