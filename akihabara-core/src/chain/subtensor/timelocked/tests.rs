//! The timelocked calls, encoded against the metadata of Finney (spec 393)
//! and of the local test runtime (spec 293), byte for byte.

use super::*;
use crate::chain::subtensor::shared_metadata as metadata;

/// Call data as the runtime decodes it: pallet index, call index, fields;
/// checked against the pin and the arguments as this release encodes them,
/// as the client does before signing.
fn encode(md: &Metadata, (tx, args): &(impl subxt::transactions::Payload, Vec<u8>)) -> Vec<u8> {
    crate::chain::subtensor::trust::check_call_bytes(md, tx, args, false)
        .expect("the call bytes are the pinned ones");
    subxt::ext::frame_decode::extrinsics::encode_call_data(
        tx.pallet_name(),
        tx.call_name(),
        tx.call_data(),
        md,
        md.types(),
    )
    .expect("the call encodes against the metadata's types")
}

fn indices(md: &Metadata, call: &str) -> (u8, u8) {
    let pallet = md.pallet_by_name("SubtensorModule").expect("pallet");
    let variant = pallet.call_variant_by_name(call).expect("call");
    (pallet.call_index(), variant.index)
}

#[test]
fn finney_takes_commit_timelocked_weights_and_its_mechanism_form() {
    let Some(md) = metadata("finney.scale") else {
        return;
    };
    let sealed = vec![0xab; 300];
    let p = pick(&md, None).expect("pick");
    assert_eq!(p.need, requirements::COMMIT_TIMELOCKED);
    assert!(p.with_hotkey);
    assert_eq!(p.rule, RoundRule::Timelocked);
    let bytes = encode(
        &md,
        &call(
            &p,
            Netuid(64),
            None,
            sealed.clone(),
            DrandRound(123_456_789),
            4,
        ),
    );
    let (pallet, idx) = indices(&md, "commit_timelocked_weights");
    assert_eq!(idx, 113);
    let mut want = vec![pallet, idx];
    want.extend(64u16.to_le_bytes());
    want.extend([0xb1, 0x04]); // compact(300) = 300 << 2 | 1, two bytes
    want.extend(&sealed);
    want.extend(123_456_789u64.to_le_bytes());
    want.extend(4u16.to_le_bytes());
    assert_eq!(bytes, want);

    let p = pick(&md, Some(MechId(1))).expect("pick");
    assert_eq!(p.need, requirements::COMMIT_TIMELOCKED_MECH);
    let bytes = encode(
        &md,
        &call(
            &p,
            Netuid(64),
            Some(MechId(1)),
            sealed.clone(),
            DrandRound(7),
            4,
        ),
    );
    let (pallet, idx) = indices(&md, "commit_timelocked_mechanism_weights");
    assert_eq!(idx, 118);
    let mut want = vec![pallet, idx];
    want.extend(64u16.to_le_bytes());
    want.push(1);
    want.extend([0xb1, 0x04]);
    want.extend(&sealed);
    want.extend(7u64.to_le_bytes());
    want.extend(4u16.to_le_bytes());
    assert_eq!(bytes, want);
}

#[test]
fn the_local_runtime_takes_commit_crv3_weights() {
    let Some(md) = metadata("subtensor-local-spec293.scale") else {
        return;
    };
    let p = pick(&md, None).expect("pick");
    assert_eq!(p.need, requirements::COMMIT_CRV3);
    assert!(!p.with_hotkey);
    assert_eq!(p.rule, RoundRule::Crv3);
    let bytes = encode(
        &md,
        &call(&p, Netuid(2), None, vec![1, 2, 3], DrandRound(1000), 4),
    );
    let (pallet, idx) = indices(&md, "commit_crv3_weights");
    assert_eq!(idx, 99);
    let mut want = vec![pallet, idx, 2, 0, 3 << 2, 1, 2, 3];
    want.extend(1000u64.to_le_bytes());
    assert_eq!(bytes, want);
    // No mechanisms here: naming one is refused, naming the call.
    let err = pick(&md, Some(MechId(0))).expect_err("no mechanisms");
    assert!(
        err.to_string()
            .contains("call SubtensorModule.commit_timelocked_mechanism_weights"),
        "{err}"
    );
}

#[test]
fn windows_follow_each_runtimes_reveal() {
    let s = RevealSchedule {
        netuid: Netuid(2),
        tempo: 10,
        reveal_period_epochs: 1,
        block_time: Duration::from_secs(1),
    };
    // Filed under epoch 5 (block 52): spec 293 reveals at block 62 only
    // (as observed on the local chain); later runtimes all through epoch 6.
    let filed = timelock::filed_epoch(Netuid(2), 10, Block(52));
    assert_eq!(filed, 5);
    assert_eq!(
        window(&s, filed + 1, RoundRule::Crv3),
        (Block(62), Block(62))
    );
    assert_eq!(
        window(&s, filed + 1, RoundRule::Timelocked),
        (Block(63), Block(73))
    );
    assert_eq!(storage_index(Netuid(2), Some(MechId(1))), 4098);
}
