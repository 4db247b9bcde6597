//! The CPU's exact int8 product, `C = A · B` with int32 sums.
//!
//! `B` is packed once into column panels of [`NR`] columns holding pairs of
//! rows as `i16` (`[b(2p, c), b(2p+1, c)]`), so a pair of multiply-adds is
//! one `vpmaddwd` lane on x86-64 with AVX2; rows of `A` are packed the same
//! way and taken [`MR`] at a time. Each `i16 × i16` pair sum is at most
//! `2 · 128 · 128 = 2^15`, so nothing saturates and every sum is exact
//! whatever the order. Without AVX2 the same loops run in portable Rust.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::generate::MatrixGen;

/// Rows of `A` per micro-kernel call.
pub const MR: usize = 4;
/// Columns per panel.
pub const NR: usize = 16;
/// Rows of `A` a thread takes at once (they share each `B` panel from cache).
const MC: usize = 64;

/// `B`, generated and packed into panels.
pub struct PackedB {
    n: usize,
    pairs: usize,
    panels: usize,
    data: Vec<i16>,
}

impl PackedB {
    /// Bytes `PackedB::generate` allocates for side `n`.
    pub fn bytes(n: u32) -> u64 {
        let n = u64::from(n);
        n.div_ceil(2) * n.div_ceil(NR as u64) * (NR as u64) * 2 * 2
    }

    /// Generates and packs `B` (all `n × n` elements) on `threads` threads.
    pub fn generate(b: &MatrixGen, n: u32, threads: usize) -> PackedB {
        let nu = n as usize;
        let pairs = nu.div_ceil(2);
        let panels = nu.div_ceil(NR);
        let mut data = vec![0i16; pairs * panels * NR * 2];
        let per_panel = pairs * NR * 2;
        let threads = threads.clamp(1, panels);
        let panels_each = panels.div_ceil(threads);
        std::thread::scope(|s| {
            for (i, chunk) in data.chunks_mut(panels_each * per_panel).enumerate() {
                s.spawn(move || pack_panels(b, nu, pairs, i * panels_each, chunk));
            }
        });
        PackedB {
            n: nu,
            pairs,
            panels,
            data,
        }
    }

    fn panel(&self, t: usize) -> &[i16] {
        let len = self.pairs * NR * 2;
        &self.data[t * len..(t + 1) * len]
    }
}

/// Fills the panels from `first` on (as many as `out` holds) of `B`.
fn pack_panels(b: &MatrixGen, n: usize, pairs: usize, first: usize, out: &mut [i16]) {
    let per_panel = pairs * NR * 2;
    let panels = out.len() / per_panel;
    let (c0, c1) = (first * NR, ((first + panels) * NR).min(n));
    let mut r0 = vec![0i8; panels * NR];
    let mut r1 = vec![0i8; panels * NR];
    for p in 0..pairs {
        b.fill_range(2 * p as u32, c0 as u32, &mut r0[..c1 - c0]);
        if 2 * p + 1 < n {
            b.fill_range(2 * p as u32 + 1, c0 as u32, &mut r1[..c1 - c0]);
        } else {
            r1.fill(0);
        }
        for t in 0..panels {
            let base = t * per_panel + p * NR * 2;
            for c in 0..NR {
                out[base + 2 * c] = i16::from(r0[t * NR + c]);
                out[base + 2 * c + 1] = i16::from(r1[t * NR + c]);
            }
        }
    }
}

/// Rows `rows` of `A · B` without packing `B`: each row of `B` is generated
/// as it is needed and added in, columns split over `threads`. Cheaper than
/// [`PackedB`] when only a few rows of a product are wanted.
pub fn few_rows(
    a: &MatrixGen,
    b: &MatrixGen,
    n: u32,
    rows: &[u32],
    threads: usize,
) -> Vec<Vec<i32>> {
    let nu = n as usize;
    let arows: Vec<Vec<i8>> = rows
        .iter()
        .map(|&r| {
            let mut v = vec![0i8; nu];
            a.fill_row(r, &mut v);
            v
        })
        .collect();
    let mut out = vec![vec![0i32; nu]; rows.len()];
    // Column ranges in whole words (8 columns), one per thread.
    let words = nu.div_ceil(8);
    let threads = threads.clamp(1, words);
    let per = words.div_ceil(threads) * 8;
    let parts: Vec<Vec<Vec<i32>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let arows = &arows;
                s.spawn(move || {
                    let (c0, c1) = ((t * per).min(nu), ((t + 1) * per).min(nu));
                    if c0 >= c1 {
                        return Vec::new(); // more threads than column ranges
                    }
                    let mut acc = vec![vec![0i32; c1 - c0]; arows.len()];
                    let mut brow = vec![0i8; c1 - c0];
                    for k in 0..nu {
                        b.fill_range(k as u32, c0 as u32, &mut brow);
                        for (ar, acc) in arows.iter().zip(acc.iter_mut()) {
                            axpy(i32::from(ar[k]), &brow, acc);
                        }
                    }
                    acc
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    for (t, part) in parts.into_iter().enumerate() {
        let c0 = (t * per).min(nu);
        for (row, p) in out.iter_mut().zip(part) {
            row[c0..c0 + p.len()].copy_from_slice(&p);
        }
    }
    out
}

/// `acc += x · b`, widening.
#[inline]
fn axpy(x: i32, b: &[i8], acc: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        unsafe { axpy_avx2(x, b, acc) };
        return;
    }
    axpy_portable(x, b, acc);
}

#[inline(always)]
fn axpy_portable(x: i32, b: &[i8], acc: &mut [i32]) {
    for (a, &v) in acc.iter_mut().zip(b) {
        *a += x * i32::from(v);
    }
}

/// The portable loop, compiled for AVX2 (the compiler vectorises it).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn axpy_avx2(x: i32, b: &[i8], acc: &mut [i32]) {
    axpy_portable(x, b, acc)
}

/// Threads the CPU prover and verifier use: all the machine has.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Computes rows `rows` of `A · B` (A from `a`) on `threads` threads and
/// hands each finished row to `sink(position in rows, row)`.
pub fn multiply_rows<F>(a: &MatrixGen, rows: &[u32], b: &PackedB, threads: usize, sink: F)
where
    F: Fn(usize, &[i32]) + Sync,
{
    let blocks = rows.len().div_ceil(MC);
    let next = AtomicUsize::new(0);
    let work = || {
        let mut apack = vec![0u32; MC * b.pairs];
        let mut arow = vec![0i8; b.pairs * 2];
        let mut c = vec![0i32; MC * b.panels * NR];
        loop {
            let blk = next.fetch_add(1, Ordering::Relaxed);
            if blk >= blocks {
                break;
            }
            let first = blk * MC;
            let count = MC.min(rows.len() - first);
            pack_a(a, &rows[first..first + count], b, &mut apack, &mut arow);
            c.fill(0);
            for t in 0..b.panels {
                let panel = b.panel(t);
                for r in (0..count).step_by(MR) {
                    let mut acc = [[0i32; NR]; MR];
                    micro(
                        &apack[r * b.pairs..(r + MR) * b.pairs],
                        b.pairs,
                        panel,
                        &mut acc,
                    );
                    for (i, row) in acc.iter().enumerate() {
                        let dst = (r + i) * b.panels * NR + t * NR;
                        c[dst..dst + NR].copy_from_slice(row);
                    }
                }
            }
            for i in 0..count {
                let row = &c[i * b.panels * NR..i * b.panels * NR + b.n];
                sink(first + i, row);
            }
        }
    };
    let threads = threads.clamp(1, blocks.max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
}

/// Packs `rows` of `A` as `u32` words holding the pair `(a(r, 2p), a(r, 2p+1))`
/// as two `i16` (low half first); rows past `rows.len()` up to a multiple of
/// `MR` are zero.
fn pack_a(a: &MatrixGen, rows: &[u32], b: &PackedB, out: &mut [u32], scratch: &mut [i8]) {
    let padded_rows = rows.len().div_ceil(MR) * MR;
    out[rows.len() * b.pairs..padded_rows * b.pairs].fill(0);
    for (i, &r) in rows.iter().enumerate() {
        scratch.fill(0);
        a.fill_row(r, &mut scratch[..b.n]);
        for p in 0..b.pairs {
            let lo = i16::from(scratch[2 * p]) as u16 as u32;
            let hi = i16::from(scratch[2 * p + 1]) as u16 as u32;
            out[i * b.pairs + p] = lo | (hi << 16);
        }
    }
}

/// `acc[r][c] += Σ_p a(r, 2p)·b(2p, c) + a(r, 2p+1)·b(2p+1, c)` for one panel.
#[inline]
fn micro(a: &[u32], pairs: usize, panel: &[i16], acc: &mut [[i32; NR]; MR]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        unsafe { avx2::micro(a, pairs, panel, acc) };
        return;
    }
    micro_portable(a, pairs, panel, acc);
}

fn micro_portable(a: &[u32], pairs: usize, panel: &[i16], acc: &mut [[i32; NR]; MR]) {
    for p in 0..pairs {
        let bp = &panel[p * NR * 2..(p + 1) * NR * 2];
        for (r, row) in acc.iter_mut().enumerate() {
            let w = a[r * pairs + p];
            let a0 = i32::from(w as u16 as i16);
            let a1 = i32::from((w >> 16) as u16 as i16);
            for (c, x) in row.iter_mut().enumerate() {
                *x += a0 * i32::from(bp[2 * c]) + a1 * i32::from(bp[2 * c + 1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// The AVX2 micro-kernel: 4 rows × 16 columns in eight registers.
    ///
    /// # Safety
    /// The CPU must support AVX2. Slices must hold `MR * pairs` words and
    /// `pairs * NR * 2` halves (checked).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn micro(a: &[u32], pairs: usize, panel: &[i16], acc: &mut [[i32; NR]; MR]) {
        assert!(a.len() >= MR * pairs && panel.len() >= pairs * NR * 2);
        let mut c = [[_mm256_setzero_si256(); 2]; MR];
        let bptr = panel.as_ptr();
        for p in 0..pairs {
            // SAFETY: p < pairs, so the 32 halves at p * 32 are inside `panel`.
            let (b0, b1) = unsafe {
                (
                    _mm256_loadu_si256(bptr.add(p * NR * 2) as *const __m256i),
                    _mm256_loadu_si256(bptr.add(p * NR * 2 + 16) as *const __m256i),
                )
            };
            for (r, cr) in c.iter_mut().enumerate() {
                let av = _mm256_set1_epi32(a[r * pairs + p] as i32);
                cr[0] = _mm256_add_epi32(cr[0], _mm256_madd_epi16(av, b0));
                cr[1] = _mm256_add_epi32(cr[1], _mm256_madd_epi16(av, b1));
            }
        }
        for (r, cr) in c.iter().enumerate() {
            let mut out = [0i32; NR];
            // SAFETY: `out` holds 16 i32 = two 256-bit stores.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, cr[0]);
                _mm256_storeu_si256(out.as_mut_ptr().add(8) as *mut __m256i, cr[1]);
            }
            for (x, o) in acc[r].iter_mut().zip(out) {
                *x += o;
            }
        }
    }
}

/// Integer operations per second the micro-kernel reaches on data that stays
/// in L1 (no memory traffic), over all `threads`: the CPU peak the prover's
/// throughput is compared with. Runs for about `seconds`.
pub fn measured_peak(threads: usize, seconds: f64) -> f64 {
    const PAIRS: usize = 64;
    let a: Vec<u32> = (0..MR * PAIRS)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) & 0x007f_007f)
        .collect();
    let panel: Vec<i16> = (0..PAIRS * NR * 2).map(|i| (i % 127) as i16 - 63).collect();
    let per_call = (2 * MR * NR * 2 * PAIRS) as f64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let run = || {
        let mut acc = [[0i32; NR]; MR];
        let mut calls = 0u64;
        let t = std::time::Instant::now();
        while std::time::Instant::now() < deadline {
            for _ in 0..256 {
                micro(
                    std::hint::black_box(&a),
                    PAIRS,
                    std::hint::black_box(&panel),
                    &mut acc,
                );
            }
            calls += 256;
            // 256 calls add at most 256 · 64 · 2 · 127 · 63 to an element,
            // well inside i32; unbounded, a fast CPU overflows it.
            std::hint::black_box(&mut acc);
            acc = [[0i32; NR]; MR];
        }
        calls as f64 * per_call / t.elapsed().as_secs_f64()
    };
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.max(1)).map(|_| s.spawn(run)).collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Seed, Side};

    fn naive(a: &MatrixGen, b: &MatrixGen, n: u32, row: u32) -> Vec<i32> {
        (0..n)
            .map(|c| {
                (0..n)
                    .map(|k| i32::from(a.element(row, k)) * i32::from(b.element(k, c)))
                    .sum()
            })
            .collect()
    }

    /// The peak measurement runs its micro-kernel for as long as it is
    /// asked without overflowing its accumulators (a debug build panics on
    /// overflow): before, a fast CPU overflowed them within a second.
    #[test]
    fn the_peak_measurement_does_not_overflow() {
        assert!(measured_peak(1, 1.5) > 0.0);
    }

    #[test]
    fn rows_match_the_definition_at_awkward_sizes() {
        for n in [1u32, 2, 3, 15, 16, 17, 33, 70] {
            let a = MatrixGen::new(&Seed([n as u8; 32]), 1, Side::A);
            let b = MatrixGen::new(&Seed([n as u8; 32]), 1, Side::B);
            let packed = PackedB::generate(&b, n, 2);
            let rows: Vec<u32> = (0..n).rev().collect();
            let out = std::sync::Mutex::new(vec![Vec::new(); rows.len()]);
            multiply_rows(&a, &rows, &packed, 3, |i, row| {
                out.lock().expect("lock")[i] = row.to_vec();
            });
            let out = out.into_inner().expect("lock");
            for (i, &r) in rows.iter().enumerate() {
                assert_eq!(out[i], naive(&a, &b, n, r), "n {n} row {r}");
            }
        }
    }

    #[test]
    fn few_rows_match_the_definition() {
        for n in [1u32, 7, 8, 9, 31, 40] {
            let a = MatrixGen::new(&Seed([9; 32]), n, Side::A);
            let b = MatrixGen::new(&Seed([9; 32]), n, Side::B);
            let rows = [0, n - 1, n / 2];
            let got = few_rows(&a, &b, n, &rows, 3);
            for (g, &r) in got.iter().zip(&rows) {
                assert_eq!(g, &naive(&a, &b, n, r), "n {n} row {r}");
            }
        }
    }

    #[test]
    fn portable_and_dispatched_kernels_agree() {
        let pairs = 9;
        let a: Vec<u32> = (0..MR * pairs)
            .map(|i| {
                let lo = (i as i16 * 37 % 256 - 128) as u16 as u32;
                let hi = (i as i16 * 91 % 256 - 128) as u16 as u32;
                lo | (hi << 16)
            })
            .collect();
        let panel: Vec<i16> = (0..pairs * NR * 2)
            .map(|i| (i as i16 * 53) % 256 - 128)
            .collect();
        let mut x = [[0i32; NR]; MR];
        let mut y = [[0i32; NR]; MR];
        micro(&a, pairs, &panel, &mut x);
        micro_portable(&a, pairs, &panel, &mut y);
        assert_eq!(x, y);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        // All -128: every product is +16384, a row sums to n * 16384.
        let pairs = 50;
        let w = (-128i16 as u16 as u32) | ((-128i16 as u16 as u32) << 16);
        let a = vec![w; MR * pairs];
        let panel = vec![-128i16; pairs * NR * 2];
        let mut acc = [[0i32; NR]; MR];
        micro(&a, pairs, &panel, &mut acc);
        assert!(acc.iter().flatten().all(|&v| v == 100 * 16384));
    }
}
