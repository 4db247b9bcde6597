// Host harness for kernels/pow.cu (see tests/kernels.rs): runs its device
// functions on the CPU. Usage: host_kernels KEY_HEX ROW N  -> prints
// "elements" of row ROW (first N), then the blake3 keyed leaf of the row
// whose int32 values are i * 7919 - 1000003 for i in 0..N, with key bytes 0..31.
#define AKIHABARA_HOST_TEST 1
#include <stdio.h>
#include <stdlib.h>
#include "../kernels/pow.cu"

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    u64 key = strtoull(argv[1], NULL, 16);
    u32 row = (u32)strtoul(argv[2], NULL, 10);
    u32 n = (u32)strtoul(argv[3], NULL, 10);
    for (u32 c = 0; c < n; c++) {
        u64 w = pow_word(key, row, c / 8u);
        printf("%d ", (int)(i8)(u8)(w >> (8u * (c % 8u))));
    }
    printf("\n");
    i32 *vals = malloc(sizeof(i32) * n);
    for (u32 i = 0; i < n; i++) vals[i] = (i32)(i * 7919u) - 1000003;
    u32 keyw[8];
    for (int i = 0; i < 8; i++)
        keyw[i] = (u32)(4 * i) | (u32)(4 * i + 1) << 8 | (u32)(4 * i + 2) << 16 | (u32)(4 * i + 3) << 24;
    u32 chunks = (n + 255u) / 256u;
    u32 *cvs = malloc(32u * chunks);
    for (u32 ch = 0; ch < chunks; ch++) b3_chunk_cv(vals, n, ch, keyw, chunks == 1, cvs + 8u * ch);
    // The kernel's reduction, one simulated thread after another per phase.
    u32 *tmp = malloc(32u * chunks);
    for (u32 count = chunks; count > 1; count = (count + 1u) / 2u) {
        u32 half = count / 2u;
        for (u32 t = 0; t <= half; t++) {
            if (t < half) b3_parent(cvs + 16u * t, cvs + 16u * t + 8u, keyw, count == 2u, tmp + 8u * t);
            else if (count & 1u) for (int j = 0; j < 8; j++) tmp[8u * t + j] = cvs[8u * (count - 1u) + j];
        }
        for (u32 t = 0; t < (count + 1u) / 2u; t++) for (int j = 0; j < 8; j++) cvs[8u * t + j] = tmp[8u * t + j];
    }
    for (int j = 0; j < 8; j++) printf("%02x%02x%02x%02x", cvs[j] & 255, (cvs[j] >> 8) & 255, (cvs[j] >> 16) & 255, cvs[j] >> 24);
    printf("\n");
    // A Merkle node as pow_merkle_level computes it: keyed hash of left || right.
    u32 block[16], h[8];
    for (int j = 0; j < 16; j++) block[j] = j * 0x01010101u;
    for (int j = 0; j < 8; j++) h[j] = keyw[j];
    b3_compress(h, block, 0, 64u, B3_KEYED | B3_CHUNK_START | B3_CHUNK_END | B3_ROOT);
    for (int j = 0; j < 8; j++) printf("%02x%02x%02x%02x", h[j] & 255, (h[j] >> 8) & 255, (h[j] >> 16) & 255, h[j] >> 24);
    printf("\n");
    return 0;
}
