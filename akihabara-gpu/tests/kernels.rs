//! The CUDA kernels' arithmetic, checked on the CPU: `kernels/pow.cu` is
//! also plain C, so the host C compiler builds it with a small harness and
//! its generation and blake3 code are compared with the Rust reference.
//! Skips (with the reason) where no C compiler exists; fails then under
//! `AKIHABARA_REQUIRE_PEERS=1`.

use std::path::Path;
use std::process::Command;

use akihabara_gpu::{MatrixGen, Seed, Side};

fn compiler() -> Option<String> {
    ["cc", "gcc", "clang"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_owned)
}

#[test]
fn kernel_generation_and_hashing_match_rust() {
    let Some(cc) = compiler() else {
        let msg = "SKIP kernel_generation_and_hashing_match_rust: no C compiler (cc, gcc, clang)";
        assert!(
            std::env::var_os("AKIHABARA_REQUIRE_PEERS").is_none(),
            "{msg}"
        );
        eprintln!("{msg}");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = dir.path().join("host_kernels");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/host_kernels.c");
    let out = Command::new(&cc)
        .args(["-std=c99", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let node_key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let g = MatrixGen::new(&Seed([3; 32]), 2, Side::B);
    // Sizes: one partial block, one chunk exactly, odd chunk counts, many chunks.
    for (row, n) in [
        (0u32, 3u32),
        (5, 256),
        (7, 257),
        (1, 700),
        (9, 1300),
        (2, 4096),
    ] {
        let run = Command::new(&exe)
            .args([format!("{:x}", g.key()), row.to_string(), n.to_string()])
            .output()
            .expect("run the harness");
        assert!(run.status.success());
        let text = String::from_utf8(run.stdout).expect("utf8");
        let mut lines = text.lines();
        let elems: Vec<i8> = lines
            .next()
            .expect("elements")
            .split_whitespace()
            .map(|x| x.parse().expect("int"))
            .collect();
        let mut want = vec![0i8; n as usize];
        g.fill_row(row, &mut want);
        assert_eq!(elems, want, "generation, row {row} n {n}");

        let values: Vec<u8> = (0..n)
            .flat_map(|i| {
                (i.wrapping_mul(7919) as i32)
                    .wrapping_sub(1_000_003)
                    .to_le_bytes()
            })
            .collect();
        let leaf = blake3::keyed_hash(&node_key, &values);
        assert_eq!(
            lines.next(),
            Some(leaf.to_hex().as_str()),
            "row hash, n {n}"
        );

        let block: Vec<u8> = (0..16u32)
            .flat_map(|j| (j * 0x0101_0101).to_le_bytes())
            .collect();
        let node = blake3::keyed_hash(&node_key, &block);
        assert_eq!(lines.next(), Some(node.to_hex().as_str()), "merkle node");
    }
}
