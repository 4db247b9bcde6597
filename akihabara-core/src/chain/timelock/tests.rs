use super::*;

/// Quicknet's published signature for round 1000
/// (`https://api.drand.sh/52db9ba7…/public/1000`), the pulse subtensor's own
/// tests verify and decrypt with.
const SIG_1000: &str = "b44679b9a59af2ec876b1a6b1ad52ea9b1615fc3982b19576350f93447cb1125e342b73a8dd2bacbe47e4b6b63ed5e39";

fn sig_1000() -> Vec<u8> {
    hex::decode(SIG_1000).expect("hex")
}

fn payload() -> WeightsPayload {
    WeightsPayload {
        hotkey: Some(AccountId::from_bytes([7; 32])),
        uids: vec![2, 3, 4],
        values: vec![65535, 32768, 1],
        version_key: 9,
    }
}

#[test]
fn a_real_pulse_opens_what_was_sealed_to_its_round() {
    let plain = payload().encode();
    let sealed = seal(&plain, DrandRound(1000), 3).expect("seal");
    assert_eq!(sealed.len(), plain.len() + SEAL_OVERHEAD);
    let opened = open(&sealed, &sig_1000()).expect("round 1000's signature opens it");
    assert_eq!(opened, plain);
    assert_eq!(WeightsPayload::decode(&opened).expect("payload"), payload());
}

#[test]
fn another_rounds_signature_does_not_open_it() {
    let sealed = seal(b"weights", DrandRound(1001), 1).expect("seal");
    assert_eq!(
        open(&sealed, &sig_1000()),
        Err(TimelockError::WrongSignature)
    );
}

#[test]
fn the_bytes_are_laid_out_as_arkworks_0_4_writes_them() {
    // U (96 B), then v and w as Vec<u8> (u64 LE length + 32 B), then the body
    // and the cipher suite as Vec<u8>: the layout subtensor deserializes.
    let sealed = seal(&[1, 2, 3], DrandRound(5), 1).expect("seal");
    let len_at = |i: usize| u64::from_le_bytes(sealed[i..i + 8].try_into().expect("8 bytes"));
    assert_eq!(len_at(96), 32);
    assert_eq!(len_at(136), 32);
    let body = len_at(176) as usize;
    assert_eq!(
        body,
        3 + 16 + 8 + 8 + 12,
        "AES output: ct+tag and nonce, each with a length"
    );
    let suite = 184 + body;
    assert_eq!(len_at(suite), 8);
    assert_eq!(&sealed[suite + 8..], b"AES_GCM_");
}

#[test]
fn hostile_bytes_are_errors_not_panics() {
    let sealed = seal(b"weights", DrandRound(1000), 1).expect("seal");
    let sig = sig_1000();
    // v claims 33 bytes: the IBE step would index past its 32-byte hash.
    let mut long_v = sealed[..96].to_vec();
    long_v.extend(33u64.to_le_bytes());
    long_v.extend(&sealed[104..136]);
    long_v.push(0);
    long_v.extend(&sealed[136..]);
    assert_eq!(
        open(&long_v, &sig),
        Err(TimelockError::Malformed("its key blocks are not 32 bytes"))
    );
    for cut in [0, 50, 96, 150, sealed.len() - 1] {
        assert_eq!(
            open(&sealed[..cut], &sig),
            Err(TimelockError::Malformed("it does not deserialize")),
            "cut at {cut}"
        );
    }
    // A length prefix far beyond the input.
    let mut huge = sealed.clone();
    huge[96..104].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        open(&huge, &sig),
        Err(TimelockError::Malformed(_))
    ));
    assert_eq!(open(&sealed, &sig[..47]), Err(TimelockError::Signature));
    assert_eq!(open(&sealed, &[0x00; 48]), Err(TimelockError::Signature));
    assert_eq!(
        open(&sealed, &[0xff; 48]),
        Err(TimelockError::WrongSignature)
    );
    assert!(matches!(
        open(&vec![0; MAX_COMMIT_BYTES + 1], &sig),
        Err(TimelockError::Malformed(_))
    ));
}

#[test]
fn oversized_weights_are_refused_before_encrypting() {
    let n = 1200;
    let big = WeightsPayload {
        hotkey: Some(AccountId::from_bytes([1; 32])),
        uids: (0..n).collect(),
        values: vec![1; usize::from(n)],
        version_key: 0,
    }
    .encode();
    assert_eq!(
        seal(&big, DrandRound(10), 1200),
        Err(TimelockError::TooLarge {
            len: big.len() + SEAL_OVERHEAD,
            max: MAX_COMMIT_BYTES,
            uids: 1200
        })
    );
}

#[test]
fn payload_is_scale_with_and_without_the_hotkey() {
    let p = payload();
    let mut want = vec![32 << 2];
    want.extend([7u8; 32]);
    want.extend([3 << 2, 2, 0, 3, 0, 4, 0]);
    want.extend([3 << 2, 0xff, 0xff, 0x00, 0x80, 1, 0]);
    want.extend(9u64.to_le_bytes());
    assert_eq!(p.encode(), want);
    let legacy = WeightsPayload { hotkey: None, ..p };
    assert_eq!(legacy.encode(), want[33..].to_vec());
    assert_eq!(WeightsPayload::decode(&want[33..]).expect("legacy"), legacy);
    assert_eq!(
        WeightsPayload::decode(&want[..want.len() - 1]),
        Err(TimelockError::Payload)
    );
}

fn schedule(netuid: u16, tempo: u64, rp: u64, block_secs: u64) -> RevealSchedule {
    RevealSchedule {
        netuid: Netuid(netuid),
        tempo,
        reveal_period_epochs: rp,
        block_time: Duration::from_secs(block_secs),
    }
}

#[test]
fn the_timelocked_round_follows_bittensor_drand_1() {
    // Finney-like: netuid 1, tempo 360, reveal after 1 epoch, 12 s blocks.
    let now = Duration::from_millis(QUICKNET_GENESIS * 1000 + 10_000_500);
    let t = target(
        &schedule(1, 360, 1, 12),
        Block(5_000_000),
        now,
        RoundRule::Timelocked,
    );
    // epoch (5_000_000 + 2) / 361 = 13850; reveal epoch 13851 starts at
    // 13851 * 361 - 2 = 5_000_209; the pulse is aimed 3 blocks later.
    assert_eq!((t.commit_epoch, t.reveal_epoch), (13850, 13851));
    assert_eq!(t.first_reveal_block, Block(5_000_209));
    let secs = 10_000.5 + (212.0 * 12.0);
    assert_eq!(t.reveal_round, DrandRound((secs / 3.0) as u64));
    // The round is published no later than the aimed-at time.
    assert!(t.reveal_round.published_at() <= now + Duration::from_secs(212 * 12));
}

#[test]
fn the_crv3_round_is_aimed_before_the_single_reveal_block() {
    let now = Duration::from_secs(QUICKNET_GENESIS + 100_000);
    // netuid 2, tempo 10, 1 s blocks: block 100 is in epoch 103 / 11 = 9;
    // epoch 10 starts at block 107, so the runtime reveals at block 106.
    let t = target(&schedule(2, 10, 1, 1), Block(100), now, RoundRule::Crv3);
    assert_eq!((t.commit_epoch, t.reveal_epoch), (9, 10));
    assert_eq!(t.first_reveal_block, Block(107));
    assert_eq!(
        t.reveal_round,
        DrandRound((100_000u64 + 6).div_ceil(3) - 24)
    );
    // Block 106 runs the epoch: a commit landing in 107 is filed under epoch
    // 10 and revealed at block 117, not at 106.
    let t = target(&schedule(2, 10, 1, 1), Block(106), now, RoundRule::Crv3);
    assert_eq!((t.commit_epoch, t.reveal_epoch), (10, 11));
    assert_eq!(t.first_reveal_block, Block(118));
    assert_eq!(
        t.reveal_round,
        DrandRound((100_000u64 + 11).div_ceil(3) - 24)
    );
}

#[test]
fn degenerate_schedules_do_not_panic() {
    for rule in [RoundRule::Timelocked, RoundRule::Crv3] {
        for s in [
            schedule(0, 0, 0, 0),
            schedule(u16::MAX, u64::MAX, u64::MAX, u64::MAX),
        ] {
            let t = target(&s, Block(u64::MAX), Duration::ZERO, rule);
            assert!(t.reveal_round >= DrandRound(1));
        }
    }
}
