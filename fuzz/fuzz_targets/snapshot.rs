//! The metagraph snapshot parser: never panics, and whatever it accepts
//! survives a write/read round trip unchanged.
#![no_main]

use akihabara_core::metagraph::snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mg) = snapshot::from_slice(data) {
        let again = snapshot::from_slice(snapshot::to_string(&mg).as_bytes())
            .expect("a written snapshot parses");
        assert_eq!(again, mg);
    }
});
