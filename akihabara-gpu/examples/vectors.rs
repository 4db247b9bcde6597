//! Prints the test vectors of SPEC.md (run: cargo run -p akihabara-gpu --example vectors).
use akihabara_gpu::{Challenge, CpuProver, MatrixGen, Prover, Seed, Side, choose_rows, merkle};

fn main() -> Result<(), akihabara_gpu::PowError> {
    let seed: Seed = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".parse()?;
    for (j, side) in [(0, Side::A), (0, Side::B), (1, Side::A)] {
        let g = MatrixGen::new(&seed, j, side);
        let mut row = [0i8; 10];
        g.fill_row(3, &mut row);
        println!(
            "matrix {j} {side:?}: key {:#018x}, row 3 cols 0..10 {:?}",
            g.key(),
            row
        );
    }
    let ch = Challenge::new(seed, 5, 2)?;
    let mut p = CpuProver::new();
    let c = p.commit(&ch)?;
    let rows = akihabara_gpu::compute_rows(&ch, &[akihabara_gpu::RowRef { matrix: 1, row: 4 }], 1)?;
    println!("n 5 count 2: C_1 row 4 = {:?}", rows[0]);
    println!("leaf(C_1 row 4) = {}", hex::encode(merkle::leaf(&rows[0])));
    println!("root = {}", hex::encode(c.root));
    let picked = choose_rows(&ch, &c.root, &[0x11; 32], 3);
    println!("rows for secret 0x11..: {picked:?}");
    Ok(())
}
