// akihabara proof of work, version 1: the CUDA kernels (see akihabara-gpu/SPEC.md).
//
// Compiled at run time by NVRTC. The device functions are also plain C99:
// akihabara-gpu's tests compile this file with the host C compiler (with
// AKIHABARA_HOST_TEST defined) and check generation and hashing against the
// Rust implementation, so the arithmetic is tested on machines without a GPU.

#ifdef AKIHABARA_HOST_TEST
#include <stdint.h>
typedef uint8_t u8;
typedef int8_t i8;
typedef uint32_t u32;
typedef int32_t i32;
typedef uint64_t u64;
#define DEV static
#else
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
#define DEV __device__ __forceinline__
#endif

// ---- generation --------------------------------------------------------

DEV u64 splitmix64(u64 x) {
    u64 z = x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Word w of row r: elements 8w .. 8w+7, byte c % 8 of the result.
DEV u64 pow_word(u64 key, u32 r, u32 w) {
    return splitmix64(key ^ (((u64)r << 32) | (u64)w));
}

// ---- blake3 (keyed hash) -------------------------------------------------

#define B3_CHUNK_START 1u
#define B3_CHUNK_END 2u
#define B3_PARENT 4u
#define B3_ROOT 8u
#define B3_KEYED 16u

DEV u32 rotr32(u32 x, u32 n) { return (x >> n) | (x << (32 - n)); }

DEV void b3_g(u32 *v, int a, int b, int c, int d, u32 x, u32 y) {
    v[a] = v[a] + v[b] + x; v[d] = rotr32(v[d] ^ v[a], 16);
    v[c] = v[c] + v[d];     v[b] = rotr32(v[b] ^ v[c], 12);
    v[a] = v[a] + v[b] + y; v[d] = rotr32(v[d] ^ v[a], 8);
    v[c] = v[c] + v[d];     v[b] = rotr32(v[b] ^ v[c], 7);
}

// Compresses one 64-byte block (16 little-endian words) into cv (8 words).
DEV void b3_compress(u32 *cv, const u32 *block, u64 counter, u32 block_len, u32 flags) {
    const u32 IV[4] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au};
    const u8 P[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};
    u32 v[16], m[16], t[16];
    for (int i = 0; i < 8; i++) v[i] = cv[i];
    for (int i = 0; i < 4; i++) v[8 + i] = IV[i];
    v[12] = (u32)counter; v[13] = (u32)(counter >> 32); v[14] = block_len; v[15] = flags;
    for (int i = 0; i < 16; i++) m[i] = block[i];
    for (int round = 0; round < 7; round++) {
        b3_g(v, 0, 4, 8, 12, m[0], m[1]);
        b3_g(v, 1, 5, 9, 13, m[2], m[3]);
        b3_g(v, 2, 6, 10, 14, m[4], m[5]);
        b3_g(v, 3, 7, 11, 15, m[6], m[7]);
        b3_g(v, 0, 5, 10, 15, m[8], m[9]);
        b3_g(v, 1, 6, 11, 12, m[10], m[11]);
        b3_g(v, 2, 7, 8, 13, m[12], m[13]);
        b3_g(v, 3, 4, 9, 14, m[14], m[15]);
        if (round < 6) {
            for (int i = 0; i < 16; i++) t[i] = m[P[i]];
            for (int i = 0; i < 16; i++) m[i] = t[i];
        }
    }
    for (int i = 0; i < 8; i++) cv[i] = v[i] ^ v[i + 8];
}

// Chaining value of chunk `chunk` (1024 bytes = 256 int32) of a row of
// `words` int32 values; `root` when it is the only chunk.
DEV void b3_chunk_cv(const i32 *row, u32 words, u32 chunk, const u32 *key, int root, u32 *cv) {
    u32 first = chunk * 256u;
    u32 len = words - first < 256u ? words - first : 256u;  // words in this chunk
    u32 blocks = (len + 15u) / 16u;
    for (int i = 0; i < 8; i++) cv[i] = key[i];
    for (u32 b = 0; b < blocks; b++) {
        u32 block[16];
        u32 in_block = len - b * 16u < 16u ? len - b * 16u : 16u;
        for (u32 i = 0; i < 16u; i++) block[i] = i < in_block ? (u32)row[first + b * 16u + i] : 0u;
        u32 flags = B3_KEYED;
        if (b == 0) flags |= B3_CHUNK_START;
        if (b + 1 == blocks) flags |= B3_CHUNK_END | (root ? B3_ROOT : 0u);
        b3_compress(cv, block, (u64)chunk, in_block * 4u, flags);
    }
}

// Parent of two chaining values.
DEV void b3_parent(const u32 *left, const u32 *right, const u32 *key, int root, u32 *out) {
    u32 block[16];
    for (int i = 0; i < 8; i++) { block[i] = left[i]; block[8 + i] = right[i]; }
    for (int i = 0; i < 8; i++) out[i] = key[i];
    b3_compress(out, block, 0, 64u, B3_PARENT | B3_KEYED | (root ? B3_ROOT : 0u));
}

#ifndef AKIHABARA_HOST_TEST

// ---- kernels -------------------------------------------------------------

// A, row-major, padded side p: thread (x = word, y = row).
extern "C" __global__ void pow_gen_a(i8 *out, u64 key, u32 n, u32 p) {
    u32 w = blockIdx.x * blockDim.x + threadIdx.x;
    u32 r = blockIdx.y;
    if (8u * w >= p) return;
    u64 word = (r < n) ? pow_word(key, r, w) : 0ull;
    u64 masked = 0;
    for (u32 b = 0; b < 8u; b++) {
        if (8u * w + b < n) masked |= word & (0xFFull << (8u * b));
    }
    *(u64 *)(out + (u64)r * p + 8u * w) = masked;
}

// B, column-major (element (k, c) at c * p + k), padded side p:
// thread (x = row k, y = word w); a warp writes consecutive k: coalesced.
extern "C" __global__ void pow_gen_b(i8 *out, u64 key, u32 n, u32 p) {
    u32 k = blockIdx.x * blockDim.x + threadIdx.x;
    u32 w = blockIdx.y;
    if (k >= p) return;
    u64 word = (k < n) ? pow_word(key, k, w) : 0ull;
    for (u32 b = 0; b < 8u; b++) {
        u32 c = 8u * w + b;
        if (c < p) out[(u64)c * p + k] = (c < n) ? (i8)(u8)(word >> (8u * b)) : 0;
    }
}

// Leaves of rows 0..n of C (row-major, row stride p int32): one block per
// row, one thread per 1024-byte chunk, then a pairwise reduction that
// carries an odd last node up (the same tree as blake3's).
// leaves + 8 * (first + row) receives the 8 words of each leaf.
extern "C" __global__ void pow_hash_rows(const i32 *c, u32 n, u32 p, const u32 *key_words,
                                         u32 *leaves, u64 first) {
    extern __shared__ u32 cvs[];
    u32 row = blockIdx.x;
    u32 t = threadIdx.x;
    u32 chunks = (n + 255u) / 256u;
    u32 key[8];
    for (int i = 0; i < 8; i++) key[i] = key_words[i];
    const i32 *r = c + (u64)row * p;
    for (u32 ch = t; ch < chunks; ch += blockDim.x) {
        b3_chunk_cv(r, n, ch, key, chunks == 1, cvs + 8u * ch);
    }
    __syncthreads();
    // The launch gives at least `chunks` threads: one pair per thread per level.
    for (u32 count = chunks; count > 1; count = (count + 1u) / 2u) {
        u32 half = count / 2u;
        u32 tmp[8];
        int active = 0;
        if (t < half) {
            b3_parent(cvs + 16u * t, cvs + 16u * t + 8u, key, count == 2u, tmp);
            active = 1;
        } else if (t == half && (count & 1u)) {
            for (int j = 0; j < 8; j++) tmp[j] = cvs[8u * (count - 1u) + j];
            active = 1;
        }
        __syncthreads();
        if (active) {
            for (int j = 0; j < 8; j++) cvs[8u * t + j] = tmp[j];
        }
        __syncthreads();
    }
    if (t == 0) {
        for (int j = 0; j < 8; j++) leaves[8u * (first + row) + j] = cvs[j];
    }
}

// One level of the Merkle tree: out[i] = parent(in[2i], in[2i+1]); an odd
// last node is carried up.
extern "C" __global__ void pow_merkle_level(const u32 *in, u64 count, const u32 *key_words, u32 *out) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    u64 half = count / 2u;
    if (i < half) {
        u32 key[8];
        for (int j = 0; j < 8; j++) key[j] = key_words[j];
        u32 h[8];
        // Tree nodes are keyed hashes of 64 bytes: a single-chunk, single-block root.
        u32 block[16];
        for (int j = 0; j < 16; j++) block[j] = in[16u * i + j];
        for (int j = 0; j < 8; j++) h[j] = key[j];
        b3_compress(h, block, 0, 64u, B3_KEYED | B3_CHUNK_START | B3_CHUNK_END | B3_ROOT);
        for (int j = 0; j < 8; j++) out[8u * i + j] = h[j];
    } else if (i == half && (count & 1u)) {
        for (int j = 0; j < 8; j++) out[8u * i + j] = in[8u * (count - 1u) + j];
    }
}
#endif
