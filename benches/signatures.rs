//! sr25519 signature checks as the axon makes them, against schnorrkel's,
//! in the same run: one check, and a batch of 16 signatures from one key
//! (per signature). akihabara checks on curve25519-dalek 5 where its
//! AVX-512 IFMA backend runs (the CPU has it and the build asked for it, as
//! `.cargo/config.toml` does on x86-64) and with schnorrkel 0.11
//! (curve25519-dalek 4: AVX2 at best on stable Rust) elsewhere; the first
//! line printed says which this machine gets.
//!
//! Where AVX-512 IFMA runs, akihabara's check must cost less than
//! schnorrkel's, or the fallback to schnorrkel is the better choice there
//! too. Measured on an AMD EPYC (Zen 4, 2 cores, 2026-12-02): one check
//! 18.2 µs against 29.9 µs (61 %), a batch of 16 8.4 µs against 12.2 µs
//! per signature (69 %).
//!
//! Run: `cargo bench --bench signatures`

use akihabara::wallet::{Keypair, Signature, VerifyingKey, checks_on_avx512_ifma, verify_batch};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// As long as a legacy request's signed message
/// (`nonce.dendrite.axon.uuid.body_hash`).
const MESSAGE: &[u8] = b"1796034599439611167.5ED8gDXoyA4qe5dzfa4KDPnVWdd7fcgjjoj9hjVoMDcr6uUm.\
5FKktvQ9adM6LDucqE4LKnhmc8iQT1w1G5UogB31WNScPbYZ.f9e1f492-eca8-11f1-90d2-02fc00000001.\
41acc52bb2384a3aba200e0ce40577eaf625069a1e6630f4df5d3c45384524a0";

fn bench(c: &mut Criterion) {
    println!(
        "checks on AVX-512 IFMA: {} (built for it with --cfg curve25519_dalek_backend=\"avx512\": {})",
        checks_on_avx512_ifma(),
        cfg!(curve25519_dalek_backend = "avx512")
    );
    let keypair = Keypair::from_uri("//validator").expect("dev key");
    let key = VerifyingKey::new(&keypair.account()).expect("a key");
    let signature = keypair.sign(MESSAGE);
    let public = schnorrkel::PublicKey::from_bytes(keypair.account().as_bytes()).expect("a key");
    let sig = schnorrkel::Signature::from_bytes(&signature.0).expect("a signature");
    let ctx = schnorrkel::signing_context(b"substrate");

    let mut one = c.benchmark_group("sr25519 check");
    let name = if checks_on_avx512_ifma() {
        "akihabara (dalek 5, AVX-512 IFMA)"
    } else {
        "akihabara (schnorrkel here)"
    };
    one.bench_function(name, |b| {
        b.iter(|| assert!(key.verify(MESSAGE, &signature)))
    });
    one.bench_function("schnorrkel 0.11 (dalek 4)", |b| {
        b.iter(|| assert!(public.verify(ctx.bytes(MESSAGE), &sig).is_ok()))
    });
    one.finish();

    let n = 16;
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| [MESSAGE, format!(".{i}").as_bytes()].concat())
        .collect();
    let ours: Vec<Signature> = messages.iter().map(|m| keypair.sign(m)).collect();
    let items: Vec<_> = messages
        .iter()
        .zip(&ours)
        .map(|(m, s)| (&key, m.as_slice(), s))
        .collect();
    let sigs: Vec<schnorrkel::Signature> = ours
        .iter()
        .map(|s| schnorrkel::Signature::from_bytes(&s.0).expect("a signature"))
        .collect();
    let keys = vec![public; n];
    let mut batch = c.benchmark_group("sr25519 batch of 16");
    batch.throughput(Throughput::Elements(n as u64));
    batch.bench_function(format!("{name}: verify_batch"), |b| {
        b.iter(|| assert!(verify_batch(&items)))
    });
    batch.bench_function("schnorrkel 0.11 verify_batch", |b| {
        b.iter(|| {
            let transcripts = messages.iter().map(|m| ctx.bytes(m));
            assert!(schnorrkel::verify_batch(transcripts, &sigs, &keys, true).is_ok())
        })
    });
    batch.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
