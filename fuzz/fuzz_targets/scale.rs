//! What a subtensor node answers to `SubnetInfoRuntimeApi::get_metagraph`
//! and `get_subnet_hyperparams`, as raw SCALE typed by the runtime's own
//! metadata (`../shared/chain/subtensor-local-spec293.scale`): arbitrary
//! bytes never panic the decoder or its checks, and a metagraph that
//! decodes has one entry per uid.
#![no_main]

use std::sync::OnceLock;

use akihabara_core::chain::{decode_hyperparams_answer, decode_metagraph_answer};
use libfuzzer_sys::fuzz_target;

fn metadata() -> &'static subxt::Metadata {
    static MD: OnceLock<subxt::Metadata> = OnceLock::new();
    MD.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/chain/subtensor-local-spec293.scale"
        );
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        subxt::Metadata::decode_from(&bytes).expect("the shared metadata decodes")
    })
}

fuzz_target!(|data: &[u8]| {
    let md = metadata();
    if let Ok(Some(mg)) = decode_metagraph_answer(md, data) {
        for (i, n) in mg.neurons().iter().enumerate() {
            assert_eq!(usize::from(n.uid.get()), i);
        }
    }
    let _ = decode_hyperparams_answer(md, data);
});
