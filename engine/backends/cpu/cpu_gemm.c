// The CPU backend's GEMM: C (M, N) = A (M, K) @ B (+ bias), in BLIS's loop order over packed
// panels of B (A's rows are read in place, at lda or gathered from conv2d's padded input), with a
// 6x16 register micro-kernel (AVX2 + FMA), a 6x32 one over two panels (AVX-512, picked at run
// time) and a portable one beside them.
//
// Every element of C is one chain of fused multiply-adds over k = 0..K-1 in order, started at 0,
// then the bias added once. A k-block continues the chain from C, so the bits do not depend on
// how M, N and K are blocked nor on which thread computes which block: 1 to any number of
// threads, one image at a time or the whole batch, either form of conv2d, give the same bits,
// and the portable kernel (fmaf) gives the AVX2 and AVX-512 kernels' bits. OpenBLAS could promise none of
// this (its result depended on the block shape). Speed on a dense B is 10-30% behind OpenBLAS at
// SD's large shapes; the engine gains where a library cannot follow: conv2d's operands gathered
// from a padded input, no call or thread start-up per small GEMM (docs/BENCHMARKS.md, issue 22).
//
// Blocking (per thread, cpu_ops.h sizes the scratch): the MR-row slices of an MC x KC block of A
// (144 KiB) and the KC x 2 NR panel pair of B (64 KiB) stream from L2 into the micro-kernel; a
// KC x NC block of B (2.5 MiB) is packed once and serves every block of A. K is cut into equal
// blocks. KC is large because each K block costs a load and a store of C, from L3 or memory at
// SD's 8192-row linears: with K = 320 and 640 in one block and 1280 in three, those run 1.1-1.2x
// faster than with 256-deep blocks, though the panels no longer fit L1 (docs/BENCHMARKS.md,
// issue 22); NC holds SD's widest GEGLU input (1280 columns), so its A is computed once per row.
// The next slice's C is prefetched while a slice multiplies. A is not packed: at the UNets'
// small K (32 to 288 in the default model) copying it cost about as much as the multiply-adds
// (the default model's linears ran about 25% faster read in place, paired against OpenBLAS on a
// loaded machine); only a last partial MR-row slice read at lda is copied, zero-padded. A
// gathered A (conv2d's output positions as rows) takes all of K in one block where the panels
// hold it, since its C is stored transposed, through a tile, once.
#include <math.h>
#include <omp.h>

#include "cpu_ops.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define GEMM_HAVE_AVX2 1
#endif

#define MR CPU_GEMM_MR
#define NR CPU_GEMM_NR
#define KC CPU_GEMM_KC
#define MC CPU_GEMM_MC
#define NC CPU_GEMM_NC

// ---- micro-kernels: c (MR, NR) at ldc, = (accumulate ? c : 0) + a @ bp (+ rb + cb) ----------------
// a: MR rows gathered in place, element (i, p) at x[roff[i] + coff[p]]: rows of A at lda (roff = i
// lda, coff NULL: p) or of conv2d's padded input (cpu_conv.c). Neither is copied: at the UNets' small K
// a copy cost about as much as the multiply-adds. bp: a (kc, NR) panel of B, its rows ldbp floats
// apart: NR in a packed panel, or B's own rows read in place (cpu_gemm_rows).
// rb (MR), cb (NR): the epilogue's row and column biases, or NULL; given on K's last block only,
// each added after the chain, row then column, as separate passes over C would add them (the
// bits are theirs) without the passes: on the default model's 32-channel outputs those cost more
// than a tenth of the GEMM.

static void kernel_generic(int kc, const float* x, const int32_t* roff, const int32_t* coff, const float* bp,
                           int ldbp, const float* rb, const float* cb, float* c, int ldc, int accumulate) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = accumulate ? c[i * ldc + j] : 0.0f;
    for (int p = 0; p < kc; p++, bp += ldbp)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(x[roff[i] + (coff ? coff[p] : p)], bp[j], acc[i][j]);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) {
            float v = acc[i][j];
            if (rb) v += rb[i];
            if (cb) v += cb[j];
            c[i * ldc + j] = v;
        }
}

#ifdef GEMM_HAVE_AVX2
// 12 accumulators (6 rows x 2 vectors of 8) hide the FMA latency on both FMA pipes; the six row
// bases sit in registers. Gathered, one offset load per k serves them all; rows read at lda
// (coff NULL) skip that load, which costs about 10% at SD's shapes. Inlined into both.
static inline __attribute__((always_inline)) void kernel_avx2_body(int kc, const float* x, const int32_t* roff,
                                                                   const int32_t* coff, int gathered, const float* bp,
                                                                   int ldbp, const float* rb, const float* cb, float* c, int ldc,
                                                                   int accumulate) {
    __m256 c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b;
    if (accumulate) {
        c0a = _mm256_loadu_ps(c + 0 * ldc), c0b = _mm256_loadu_ps(c + 0 * ldc + 8);
        c1a = _mm256_loadu_ps(c + 1 * ldc), c1b = _mm256_loadu_ps(c + 1 * ldc + 8);
        c2a = _mm256_loadu_ps(c + 2 * ldc), c2b = _mm256_loadu_ps(c + 2 * ldc + 8);
        c3a = _mm256_loadu_ps(c + 3 * ldc), c3b = _mm256_loadu_ps(c + 3 * ldc + 8);
        c4a = _mm256_loadu_ps(c + 4 * ldc), c4b = _mm256_loadu_ps(c + 4 * ldc + 8);
        c5a = _mm256_loadu_ps(c + 5 * ldc), c5b = _mm256_loadu_ps(c + 5 * ldc + 8);
    } else {
        c0a = c0b = c1a = c1b = c2a = c2b = c3a = c3b = c4a = c4b = c5a = c5b = _mm256_setzero_ps();
    }
    const float *a0 = x + roff[0], *a1 = x + roff[1], *a2 = x + roff[2], *a3 = x + roff[3], *a4 = x + roff[4],
                *a5 = x + roff[5];
    // Opaque to the optimizer, which would otherwise fold roff[i] + coff[p] into an integer add per
    // row and step (six more instructions in a loop of 27): each broadcast is then base + 4 o.
    __asm__("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5));
    for (int p = 0; p < kc; p++, bp += ldbp) {
        int64_t o = gathered ? coff[p] : p;
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8), v;
        v = _mm256_broadcast_ss(a0 + o), c0a = _mm256_fmadd_ps(v, b0, c0a), c0b = _mm256_fmadd_ps(v, b1, c0b);
        v = _mm256_broadcast_ss(a1 + o), c1a = _mm256_fmadd_ps(v, b0, c1a), c1b = _mm256_fmadd_ps(v, b1, c1b);
        v = _mm256_broadcast_ss(a2 + o), c2a = _mm256_fmadd_ps(v, b0, c2a), c2b = _mm256_fmadd_ps(v, b1, c2b);
        v = _mm256_broadcast_ss(a3 + o), c3a = _mm256_fmadd_ps(v, b0, c3a), c3b = _mm256_fmadd_ps(v, b1, c3b);
        v = _mm256_broadcast_ss(a4 + o), c4a = _mm256_fmadd_ps(v, b0, c4a), c4b = _mm256_fmadd_ps(v, b1, c4b);
        v = _mm256_broadcast_ss(a5 + o), c5a = _mm256_fmadd_ps(v, b0, c5a), c5b = _mm256_fmadd_ps(v, b1, c5b);
    }
    if (rb) {
        __m256 v;
        v = _mm256_broadcast_ss(rb + 0), c0a = _mm256_add_ps(c0a, v), c0b = _mm256_add_ps(c0b, v);
        v = _mm256_broadcast_ss(rb + 1), c1a = _mm256_add_ps(c1a, v), c1b = _mm256_add_ps(c1b, v);
        v = _mm256_broadcast_ss(rb + 2), c2a = _mm256_add_ps(c2a, v), c2b = _mm256_add_ps(c2b, v);
        v = _mm256_broadcast_ss(rb + 3), c3a = _mm256_add_ps(c3a, v), c3b = _mm256_add_ps(c3b, v);
        v = _mm256_broadcast_ss(rb + 4), c4a = _mm256_add_ps(c4a, v), c4b = _mm256_add_ps(c4b, v);
        v = _mm256_broadcast_ss(rb + 5), c5a = _mm256_add_ps(c5a, v), c5b = _mm256_add_ps(c5b, v);
    }
    if (cb) {
        __m256 b0 = _mm256_loadu_ps(cb), b1 = _mm256_loadu_ps(cb + 8);
        c0a = _mm256_add_ps(c0a, b0), c0b = _mm256_add_ps(c0b, b1), c1a = _mm256_add_ps(c1a, b0);
        c1b = _mm256_add_ps(c1b, b1), c2a = _mm256_add_ps(c2a, b0), c2b = _mm256_add_ps(c2b, b1);
        c3a = _mm256_add_ps(c3a, b0), c3b = _mm256_add_ps(c3b, b1), c4a = _mm256_add_ps(c4a, b0);
        c4b = _mm256_add_ps(c4b, b1), c5a = _mm256_add_ps(c5a, b0), c5b = _mm256_add_ps(c5b, b1);
    }
    _mm256_storeu_ps(c + 0 * ldc, c0a), _mm256_storeu_ps(c + 0 * ldc + 8, c0b);
    _mm256_storeu_ps(c + 1 * ldc, c1a), _mm256_storeu_ps(c + 1 * ldc + 8, c1b);
    _mm256_storeu_ps(c + 2 * ldc, c2a), _mm256_storeu_ps(c + 2 * ldc + 8, c2b);
    _mm256_storeu_ps(c + 3 * ldc, c3a), _mm256_storeu_ps(c + 3 * ldc + 8, c3b);
    _mm256_storeu_ps(c + 4 * ldc, c4a), _mm256_storeu_ps(c + 4 * ldc + 8, c4b);
    _mm256_storeu_ps(c + 5 * ldc, c5a), _mm256_storeu_ps(c + 5 * ldc + 8, c5b);
}

static void kernel_avx2_rows(int kc, const float* x, const int32_t* roff, const int32_t* coff, const float* bp,
                             int ldbp, const float* rb, const float* cb, float* c, int ldc, int accumulate) {
    kernel_avx2_body(kc, x, roff, coff, 0, bp, ldbp, rb, cb, c, ldc, accumulate);
}

static void kernel_avx2_gathered(int kc, const float* x, const int32_t* roff, const int32_t* coff, const float* bp,
                                 int ldbp, const float* rb, const float* cb, float* c, int ldc, int accumulate) {
    kernel_avx2_body(kc, x, roff, coff, 1, bp, ldbp, rb, cb, c, ldc, accumulate);
}

// AVX-512: 6 rows x two adjacent panels (32 columns) in 12 zmm accumulators, each broadcast
// serving two FMAs as in the AVX2 kernel. Every lane is the same fmaf chain, so its bits are the
// AVX2 kernel's. bp, bp_hi: the two panels, both ldbp floats a row; c and c_hi: the destinations
// of their columns (c + NR in place, or two tiles), at the same ldc; cb: (2 NR) both panels'
// column biases.
#define AVX512 __attribute__((target("avx512f")))
AVX512 static inline __attribute__((always_inline)) void kernel_avx512_body(int kc, const float* x, const int32_t* roff,
                                                                            const int32_t* coff, int gathered,
                                                                            const float* bp, const float* bp_hi,
                                                                            int ldbp, const float* rb,
                                                                            const float* cb, float* c, float* c_hi,
                                                                            int ldc, int accumulate) {
    __m512 c0a, c0b, c1a, c1b, c2a, c2b, c3a, c3b, c4a, c4b, c5a, c5b;
    if (accumulate) {
        c0a = _mm512_loadu_ps(c + 0 * ldc), c0b = _mm512_loadu_ps(c_hi + 0 * ldc);
        c1a = _mm512_loadu_ps(c + 1 * ldc), c1b = _mm512_loadu_ps(c_hi + 1 * ldc);
        c2a = _mm512_loadu_ps(c + 2 * ldc), c2b = _mm512_loadu_ps(c_hi + 2 * ldc);
        c3a = _mm512_loadu_ps(c + 3 * ldc), c3b = _mm512_loadu_ps(c_hi + 3 * ldc);
        c4a = _mm512_loadu_ps(c + 4 * ldc), c4b = _mm512_loadu_ps(c_hi + 4 * ldc);
        c5a = _mm512_loadu_ps(c + 5 * ldc), c5b = _mm512_loadu_ps(c_hi + 5 * ldc);
    } else {
        c0a = c0b = c1a = c1b = c2a = c2b = c3a = c3b = c4a = c4b = c5a = c5b = _mm512_setzero_ps();
    }
    const float *a0 = x + roff[0], *a1 = x + roff[1], *a2 = x + roff[2], *a3 = x + roff[3], *a4 = x + roff[4],
                *a5 = x + roff[5];
    __asm__("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+r"(a4), "+r"(a5)); // as in the AVX2 kernel
    for (int p = 0; p < kc; p++, bp += ldbp, bp_hi += ldbp) {
        int64_t o = gathered ? coff[p] : p;
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp_hi), v;
        v = _mm512_set1_ps(a0[o]), c0a = _mm512_fmadd_ps(v, b0, c0a), c0b = _mm512_fmadd_ps(v, b1, c0b);
        v = _mm512_set1_ps(a1[o]), c1a = _mm512_fmadd_ps(v, b0, c1a), c1b = _mm512_fmadd_ps(v, b1, c1b);
        v = _mm512_set1_ps(a2[o]), c2a = _mm512_fmadd_ps(v, b0, c2a), c2b = _mm512_fmadd_ps(v, b1, c2b);
        v = _mm512_set1_ps(a3[o]), c3a = _mm512_fmadd_ps(v, b0, c3a), c3b = _mm512_fmadd_ps(v, b1, c3b);
        v = _mm512_set1_ps(a4[o]), c4a = _mm512_fmadd_ps(v, b0, c4a), c4b = _mm512_fmadd_ps(v, b1, c4b);
        v = _mm512_set1_ps(a5[o]), c5a = _mm512_fmadd_ps(v, b0, c5a), c5b = _mm512_fmadd_ps(v, b1, c5b);
    }
    if (rb) {
        __m512 v;
        v = _mm512_set1_ps(rb[0]), c0a = _mm512_add_ps(c0a, v), c0b = _mm512_add_ps(c0b, v);
        v = _mm512_set1_ps(rb[1]), c1a = _mm512_add_ps(c1a, v), c1b = _mm512_add_ps(c1b, v);
        v = _mm512_set1_ps(rb[2]), c2a = _mm512_add_ps(c2a, v), c2b = _mm512_add_ps(c2b, v);
        v = _mm512_set1_ps(rb[3]), c3a = _mm512_add_ps(c3a, v), c3b = _mm512_add_ps(c3b, v);
        v = _mm512_set1_ps(rb[4]), c4a = _mm512_add_ps(c4a, v), c4b = _mm512_add_ps(c4b, v);
        v = _mm512_set1_ps(rb[5]), c5a = _mm512_add_ps(c5a, v), c5b = _mm512_add_ps(c5b, v);
    }
    if (cb) {
        __m512 b0 = _mm512_loadu_ps(cb), b1 = _mm512_loadu_ps(cb + NR);
        c0a = _mm512_add_ps(c0a, b0), c0b = _mm512_add_ps(c0b, b1), c1a = _mm512_add_ps(c1a, b0);
        c1b = _mm512_add_ps(c1b, b1), c2a = _mm512_add_ps(c2a, b0), c2b = _mm512_add_ps(c2b, b1);
        c3a = _mm512_add_ps(c3a, b0), c3b = _mm512_add_ps(c3b, b1), c4a = _mm512_add_ps(c4a, b0);
        c4b = _mm512_add_ps(c4b, b1), c5a = _mm512_add_ps(c5a, b0), c5b = _mm512_add_ps(c5b, b1);
    }
    _mm512_storeu_ps(c + 0 * ldc, c0a), _mm512_storeu_ps(c_hi + 0 * ldc, c0b);
    _mm512_storeu_ps(c + 1 * ldc, c1a), _mm512_storeu_ps(c_hi + 1 * ldc, c1b);
    _mm512_storeu_ps(c + 2 * ldc, c2a), _mm512_storeu_ps(c_hi + 2 * ldc, c2b);
    _mm512_storeu_ps(c + 3 * ldc, c3a), _mm512_storeu_ps(c_hi + 3 * ldc, c3b);
    _mm512_storeu_ps(c + 4 * ldc, c4a), _mm512_storeu_ps(c_hi + 4 * ldc, c4b);
    _mm512_storeu_ps(c + 5 * ldc, c5a), _mm512_storeu_ps(c_hi + 5 * ldc, c5b);
}

AVX512 static void kernel_avx512_rows(int kc, const float* x, const int32_t* roff, const int32_t* coff,
                                      const float* bp, const float* bp_hi, int ldbp, const float* rb,
                                      const float* cb, float* c, float* c_hi, int ldc, int accumulate) {
    kernel_avx512_body(kc, x, roff, coff, 0, bp, bp_hi, ldbp, rb, cb, c, c_hi, ldc, accumulate);
}

AVX512 static void kernel_avx512_gathered(int kc, const float* x, const int32_t* roff, const int32_t* coff,
                                          const float* bp, const float* bp_hi, int ldbp, const float* rb,
                                          const float* cb, float* c, float* c_hi, int ldc, int accumulate) {
    kernel_avx512_body(kc, x, roff, coff, 1, bp, bp_hi, ldbp, rb, cb, c, c_hi, ldc, accumulate);
}
#endif

typedef void (*gemm_kernel)(int kc, const float* x, const int32_t* roff, const int32_t* coff, const float* bp,
                            int ldbp, const float* rb, const float* cb, float* c, int ldc, int accumulate);
// Two panels at once: columns [0, NR) to c, [NR, 2 NR) to c_hi; cb (2 NR).
typedef void (*gemm_kernel_wide)(int kc, const float* x, const int32_t* roff, const int32_t* coff, const float* bp,
                                 const float* bp_hi, int ldbp, const float* rb, const float* cb, float* c,
                                 float* c_hi, int ldc, int accumulate);

// The kernel of each ISA level (cpu_ops.h) for rows of A gathered or read at lda; a level this
// build lacks runs the best one below it.
static gemm_kernel kernel_for(cpu_isa isa, int gathered) {
#ifdef GEMM_HAVE_AVX2
    if (isa >= CPU_ISA_AVX2) return gathered ? kernel_avx2_gathered : kernel_avx2_rows;
#endif
    (void)isa, (void)gathered;
    return kernel_generic;
}

// The two-panel kernel of the level, or NULL where the level has none (one panel at a time).
static gemm_kernel_wide kernel_wide_for(cpu_isa isa, int gathered) {
#ifdef GEMM_HAVE_AVX2
    if (isa >= CPU_ISA_AVX512) return gathered ? kernel_avx512_gathered : kernel_avx512_rows;
#endif
    (void)isa, (void)gathered;
    return NULL;
}

// ---- packing: blocks of B into the kernels' panels, zero-padded to whole panels --------------------

// B rows [p0, p0 + kc), columns [j0, j0 + nc) into ceil(nc / NR) panels (kc, NR).
static void pack_b(float* bp, const cpu_gemm_args* g, int p0, int kc, int j0, int nc) {
    for (int jr = 0; jr < nc; jr += NR, bp += (size_t)NR * kc) {
        int cols = nc - jr < NR ? nc - jr : NR;
        if (g->b_x) { // gathered in place; lanes past N read valid offsets and are never stored
            const int32_t* at = g->b_col_offset + j0 + jr; // (NR)
            for (int p = 0; p < kc; p++) {
                const float* src = g->b_x + g->b_row_offset[p0 + p];
                for (int j = 0; j < NR; j++) bp[p * NR + j] = src[at[j]];
            }
        } else if (g->b_transposed) { // B stored as (N, K): column j of B is row j
            const float* src = g->b + (size_t)(j0 + jr) * g->ldb + p0; // (cols, kc) at ldb
            // In blocks of 8 rows of the panel: each column's 8 reads are contiguous and the
            // block's writes stay in 8 lines (column by column over all kc rows, each write
            // landed on a line of its own: 1.1x at 512 rows of A, 1.4x at 2, where B is the work).
            int p = 0;
            if (cols == NR)
                for (; p + 8 <= kc; p += 8)
                    for (int j = 0; j < NR; j++)
                        for (int q = 0; q < 8; q++) bp[(p + q) * NR + j] = src[(size_t)j * g->ldb + p + q];
            for (int j = 0; j < NR; j++)
                for (int r = p; r < kc; r++) bp[r * NR + j] = j < cols ? src[(size_t)j * g->ldb + r] : 0.0f;
        } else {
            const float* src = g->b + (size_t)p0 * g->ldb + j0 + jr; // (kc, cols) at ldb
            if (cols == NR) {
                for (int p = 0; p < kc; p++)
                    for (int j = 0; j < NR; j++) bp[p * NR + j] = src[(size_t)p * g->ldb + j];
                continue;
            }
            for (int p = 0; p < kc; p++)
                for (int j = 0; j < NR; j++) bp[p * NR + j] = j < cols ? src[(size_t)p * g->ldb + j] : 0.0f;
        }
    }
}

// ---- one part of C: rows [i0, i0 + m), columns [j0, j0 + n), all of K -----------------------------

// Copies a (rows, cols) tile of C at (i, j) into tile (MR, NR) or, with store, back. Stored
// transposed, C's element (i, j) is at c_row_offset[i] + j ldc (the rows of several images'
// outputs make one GEMM).
static void tile_io(const cpu_gemm_args* g, int i, int j, int rows, int cols, float* tile, int store) {
    if (g->c_transposed)
        for (int r = 0; r < rows; r++) {
            float* e = g->c + g->c_row_offset[i + r] + (size_t)j * g->ldc; // (cols) at ldc
            const float* t = tile + r * NR;
            if (store && cols == NR) // the common case, unrolled
                for (int q = 0; q < NR; q++) e[(size_t)q * g->ldc] = t[q];
            else
                for (int q = 0; q < cols; q++)
                    if (store) e[(size_t)q * g->ldc] = t[q];
                    else tile[r * NR + q] = e[(size_t)q * g->ldc];
        }
    else
        for (int r = 0; r < rows; r++) {
            float* e = g->c + (size_t)(i + r) * g->ldc + j; // (cols)
            if (store) memcpy(e, tile + r * NR, (size_t)cols * sizeof(float));
            else memcpy(tile + r * NR, e, (size_t)cols * sizeof(float));
        }
}

// Each KC x NC block of B is packed once and multiplied by every MC x KC block of A in the part.
static void gemm_part(cpu_isa isa, const cpu_gemm_args* g, int i0, int m, int j0, int n, float* pack) {
    gemm_kernel kernel = kernel_for(isa, g->a_x != NULL);
    gemm_kernel_wide wide = kernel_wide_for(isa, g->a_x != NULL);
    float* a_edge = pack;                             // (MR, KC) A's last rows at lda, zero-padded to MR
    float* bp = pack + (size_t)MR * KC;               // (NC / NR panels of (KC, NR))
    float* a_stage = bp + (size_t)KC * NC;            // (MC, KC) a block of GEGLU's output, a_geglu
    float tile[2][MR * NR] __attribute__((aligned(64))); // (2, MR, NR) tiles of C partial or stored transposed
    float col_bias[NC], row_bias[MC];                 // (NC), (MC) the block's biases, zero-padded to whole tiles
    // K in equal blocks of at most KC: no thin last block whose pass over C costs more than its
    // multiply-adds (K = 640 is 2 x 320, not 512 + 128). A gathered A (conv2d) takes all of K in one
    // block where the panels hold it: its C is stored transposed, which costs more than a pass.
    // K = 0 still writes C = 0 (+ bias).
    int k_blocks = g->k == 0 ? 1 : (g->k + KC - 1) / KC;
    if (g->a_x && cpu_gemm_one_k_block(g->k, n)) k_blocks = 1;
    int k_step = (g->k + k_blocks - 1) / k_blocks;
    for (int jc = j0; jc < j0 + n; jc += NC) {
        int nc = j0 + n - jc < NC ? j0 + n - jc : NC;
        if (g->col_bias)
            for (int j = 0; j < (nc + NR - 1) / NR * NR; j++) col_bias[j] = j < nc ? g->col_bias[jc + j] : 0.0f;
        for (int kb = 0; kb < k_blocks; kb++) {
            int p0 = kb * k_step, kc = g->k - p0 < k_step ? g->k - p0 : k_step;
            pack_b(bp, g, p0, kc, jc, nc);
            for (int ic = i0; ic < i0 + m; ic += MC) {
                int mc = i0 + m - ic < MC ? i0 + m - ic : MC;
                int full = mc / MR * MR; // rows in whole slices; read at lda, the rest go through a_edge
                int last = kb == k_blocks - 1; // the epilogue's block
                if (g->row_bias && last)
                    for (int i = 0; i < (mc + MR - 1) / MR * MR; i++) row_bias[i] = i < mc ? g->row_bias[ic + i] : 0.0f;
                if (g->a_geglu) { // GEGLU of the block's rows, whole slices (zeros past M)
                    for (int i = 0; i < mc; i++) {
                        const float* row = g->a + (size_t)(ic + i) * g->lda + p0; // (2K) from column p0
                        cpu_geglu_row(a_stage + (size_t)i * kc, row, row + g->k, kc);
                    }
                    memset(a_stage + (size_t)mc * kc, 0, (size_t)((mc + MR - 1) / MR * MR - mc) * kc * sizeof(float));
                } else if (!g->a_x && full < mc) {
                    memset(a_edge, 0, (size_t)MR * kc * sizeof(float));
                    for (int i = 0; i < mc - full; i++)
                        memcpy(a_edge + (size_t)i * kc, g->a + (size_t)(ic + full + i) * g->lda + p0, (size_t)kc * sizeof(float));
                }
                for (int jr = 0, panels; jr < nc; jr += panels * NR) {
                    int cols = nc - jr < NR ? nc - jr : NR;
                    panels = wide && nc - jr >= 2 * NR ? 2 : 1; // two whole panels go through the wide kernel
                    const float* b_panel = bp + (size_t)jr * kc, *b_hi = b_panel + (size_t)kc * NR; // (kc, NR) each
                    const float* cb = g->col_bias && last ? col_bias + jr : NULL; // (panels NR)
                    for (int ir = 0; ir < mc; ir += MR) {
                        int rows = mc - ir < MR ? mc - ir : MR;
                        // where the slice's rows of A are: x[roff[i] + coff[p]]
                        const float* x;
                        const int32_t* coff = NULL; // rows read at lda, or staged
                        int32_t roff[MR];
                        if (g->a_x) { // gathered; rows past M repeat the first (valid, never stored)
                            x = g->a_x, coff = g->a_col_offset + p0;
                            for (int i = 0; i < MR; i++) roff[i] = g->a_row_offset[ic + ir + (i < rows ? i : 0)];
                        } else if (g->a_geglu) {
                            x = a_stage + (size_t)ir * kc;
                            for (int i = 0; i < MR; i++) roff[i] = i * kc;
                        } else if (rows == MR) {
                            x = g->a + (size_t)(ic + ir) * g->lda + p0;
                            for (int i = 0; i < MR; i++) roff[i] = i * g->lda;
                        } else {
                            x = a_edge;
                            for (int i = 0; i < MR; i++) roff[i] = i * kc;
                        }
                        const float* rb = g->row_bias && last ? row_bias + ir : NULL; // (MR)
                        if (panels == 2) {
                            if (rows == MR && !g->c_transposed) {
                                float* c = g->c + (size_t)(ic + ir) * g->ldc + jc + jr; // (MR, 2 NR) at ldc
                                if (ir + 2 * MR <= mc) // the next slice's C, from L3 or memory
                                    for (int i = MR; i < 2 * MR; i++)
                                        __builtin_prefetch(c + (size_t)i * g->ldc, 1, 3),
                                            __builtin_prefetch(c + (size_t)i * g->ldc + NR, 1, 3);
                                wide(kc, x, roff, coff, b_panel, b_hi, NR, rb, cb, c, c + NR, g->ldc, kb > 0);
                                continue;
                            }
                            for (int h = 0; h < 2 && kb > 0; h++) tile_io(g, ic + ir, jc + jr + h * NR, rows, NR, tile[h], 0);
                            wide(kc, x, roff, coff, b_panel, b_hi, NR, rb, cb, tile[0], tile[1], NR, kb > 0);
                            for (int h = 0; h < 2; h++) tile_io(g, ic + ir, jc + jr + h * NR, rows, NR, tile[h], 1);
                            continue;
                        }
                        if (rows == MR && cols == NR && !g->c_transposed) {
                            kernel(kc, x, roff, coff, b_panel, NR, rb, cb, g->c + (size_t)(ic + ir) * g->ldc + jc + jr,
                                   g->ldc, kb > 0);
                            continue;
                        }
                        if (kb > 0) tile_io(g, ic + ir, jc + jr, rows, cols, tile[0], 0);
                        kernel(kc, x, roff, coff, b_panel, NR, rb, cb, tile[0], NR, kb > 0);
                        tile_io(g, ic + ir, jc + jr, rows, cols, tile[0], 1);
                    }
                }
            }
        }
    }
}

int cpu_gemm_one_k_block(int k, int n) {
    int nc = n < NC ? n : NC;
    return (size_t)k * (size_t)((nc + NR - 1) / NR * NR) <= (size_t)KC * NC;
}

// ---- drivers ---------------------------------------------------------------------------------------

static float* thread_pack(const cpu_backend* cpu) {
    return cpu->pack + (size_t)omp_get_thread_num() * CPU_GEMM_PACK_FLOATS;
}

void cpu_gemm_team(const cpu_backend* cpu, const cpu_gemm_args* g) {
    if (g->m <= 0 || g->n <= 0) return;
    // One part per thread, cut along N (in whole panels) when there are enough columns and few
    // rows, else along M: each thread packs only its own panels, or reads only its own rows of A.
    // A tall A (SD's linears at 64x64 latents: 8192 rows) read by every thread cost 1.14x at N = 320.
    int parts = omp_get_num_threads();
    int by_n = g->n >= parts * 4 * NR && !g->a_geglu && g->m < parts * 8 * MC; // GEGLU's A: each row's once
    int unit = by_n ? NR : MR, extent = by_n ? g->n : g->m;
    int step = ((extent + parts - 1) / parts + unit - 1) / unit * unit;
    float* pack = thread_pack(cpu);
    #pragma omp for schedule(static)
    for (int t = 0; t < parts; t++) {
        int lo = t * step, len = extent - lo < step ? extent - lo : step;
        if (len <= 0) continue;
        if (by_n) gemm_part(cpu->isa, g, 0, g->m, lo, len, pack);
        else gemm_part(cpu->isa, g, lo, len, 0, g->n, pack);
    }
}

void cpu_gemm_one(const cpu_backend* cpu, const cpu_gemm_args* g) {
    if (g->m <= 0 || g->n <= 0) return;
    gemm_part(cpu->isa, g, 0, g->m, 0, g->n, thread_pack(cpu));
}

void cpu_gemm_rows(cpu_isa isa, int k, const float* a, int lda, const float* b, int ldb, int n, float* c, int ldc,
                   int accumulate) {
    gemm_kernel kernel = kernel_for(isa, 0);
    gemm_kernel_wide wide = kernel_wide_for(isa, 0);
    int32_t roff[MR];
    for (int i = 0; i < MR; i++) roff[i] = i * lda;
    for (int j = 0; j < n;) {
        if (wide && n - j >= 2 * NR) {
            wide(k, a, roff, NULL, b + j, b + j + NR, ldb, NULL, NULL, c + j, c + j + NR, ldc, accumulate);
            j += 2 * NR;
        } else {
            kernel(k, a, roff, NULL, b + j, ldb, NULL, NULL, c + j, ldc, accumulate);
            j += NR;
        }
    }
}
