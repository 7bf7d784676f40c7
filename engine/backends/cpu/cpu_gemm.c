// The CPU backend's GEMM: C (M, N) = A (M, K) @ B (+ bias), in BLIS's loop order over packed
// panels of B (A's rows are read in place), with a 6x16 register micro-kernel (AVX2 + FMA) and a
// portable one beside it.
//
// Every element of C is one chain of fused multiply-adds over k = 0..K-1 in order, started at 0,
// then the bias added once. A k-block continues the chain from C, so the bits do not depend on
// how M, N and K are blocked nor on which thread computes which block: 1 to any number of
// threads, one image at a time or the whole batch, give the same bits, and the portable kernel
// (fmaf) gives the AVX2 kernel's bits. OpenBLAS could promise none of this (its result depended
// on the block shape). Speed on a dense B is 10-30% behind OpenBLAS at SD's large shapes; the
// engine gains where a library cannot follow: conv2d's B gathered from a padded input, no call
// or thread start-up per small GEMM (docs/BENCHMARKS.md, issue 22).
//
// Blocking (per thread, cpu_ops.h sizes the scratch): a KC x NR panel of B (16 KiB) stays in L1
// while the MR-row slices of an MC x KC block of A (72 KiB) stream from L2; a KC x NC block of B
// (512 KiB) is packed once and serves every block of A. A is not packed: at the UNets' small K
// (32 to 288 in the default model) copying it cost about as much as the multiply-adds (the
// default model's linears ran about 25% faster read in place, paired against OpenBLAS on a loaded
// machine); only a last partial MR-row slice is copied, zero-padded.
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

// ---- micro-kernels: c (MR, NR) at ldc, = (accumulate ? c : 0) + a @ bp ----------------------------
// a: (MR, kc) rows of A read in place at lda (A is not packed: its rows stream from cache as they
// are, which at the UNets' small K cost less than copying them); bp: (kc, NR) packed panel of B,
// 32-byte aligned.

static void kernel_generic(int kc, const float* a, int lda, const float* bp, float* c, int ldc, int accumulate) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) acc[i][j] = accumulate ? c[i * ldc + j] : 0.0f;
    for (int p = 0; p < kc; p++, bp += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(a[(size_t)i * lda + p], bp[j], acc[i][j]);
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * ldc + j] = acc[i][j];
}

#ifdef GEMM_HAVE_AVX2
// 12 accumulators (6 rows x 2 vectors of 8) hide the FMA latency on both FMA pipes.
static void kernel_avx2(int kc, const float* a, int lda, const float* bp, float* c, int ldc, int accumulate) {
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
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * (size_t)lda, *a3 = a + 3 * (size_t)lda, *a4 = a + 4 * (size_t)lda,
                *a5 = a + 5 * (size_t)lda;
    for (int p = 0; p < kc; p++, bp += NR) {
        __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8), x;
        x = _mm256_broadcast_ss(a0 + p), c0a = _mm256_fmadd_ps(x, b0, c0a), c0b = _mm256_fmadd_ps(x, b1, c0b);
        x = _mm256_broadcast_ss(a1 + p), c1a = _mm256_fmadd_ps(x, b0, c1a), c1b = _mm256_fmadd_ps(x, b1, c1b);
        x = _mm256_broadcast_ss(a2 + p), c2a = _mm256_fmadd_ps(x, b0, c2a), c2b = _mm256_fmadd_ps(x, b1, c2b);
        x = _mm256_broadcast_ss(a3 + p), c3a = _mm256_fmadd_ps(x, b0, c3a), c3b = _mm256_fmadd_ps(x, b1, c3b);
        x = _mm256_broadcast_ss(a4 + p), c4a = _mm256_fmadd_ps(x, b0, c4a), c4b = _mm256_fmadd_ps(x, b1, c4b);
        x = _mm256_broadcast_ss(a5 + p), c5a = _mm256_fmadd_ps(x, b0, c5a), c5b = _mm256_fmadd_ps(x, b1, c5b);
    }
    _mm256_storeu_ps(c + 0 * ldc, c0a), _mm256_storeu_ps(c + 0 * ldc + 8, c0b);
    _mm256_storeu_ps(c + 1 * ldc, c1a), _mm256_storeu_ps(c + 1 * ldc + 8, c1b);
    _mm256_storeu_ps(c + 2 * ldc, c2a), _mm256_storeu_ps(c + 2 * ldc + 8, c2b);
    _mm256_storeu_ps(c + 3 * ldc, c3a), _mm256_storeu_ps(c + 3 * ldc + 8, c3b);
    _mm256_storeu_ps(c + 4 * ldc, c4a), _mm256_storeu_ps(c + 4 * ldc + 8, c4b);
    _mm256_storeu_ps(c + 5 * ldc, c5a), _mm256_storeu_ps(c + 5 * ldc + 8, c5b);
}
#endif

typedef void (*gemm_kernel)(int kc, const float* a, int lda, const float* bp, float* c, int ldc, int accumulate);

// The kernel of each ISA level (cpu_ops.h); a level this build lacks runs the best one below it.
static gemm_kernel kernel_for(cpu_isa isa) {
#ifdef GEMM_HAVE_AVX2
    if (isa >= CPU_ISA_AVX2) return kernel_avx2;
#endif
    (void)isa;
    return kernel_generic;
}

// ---- packing: blocks of B into the kernels' panels, zero-padded to whole panels --------------------

// B rows [p0, p0 + kc), columns [j0, j0 + nc) into ceil(nc / NR) panels (kc, NR).
static void pack_b(float* bp, const cpu_gemm_args* g, int p0, int kc, int j0, int nc) {
    for (int jr = 0; jr < nc; jr += NR, bp += (size_t)NR * kc) {
        int cols = nc - jr < NR ? nc - jr : NR;
        if (g->im2col_x) { // gathered in place; lanes past N read valid offsets and are never stored
            const int32_t* at = g->col_offset + j0 + jr; // (NR)
            for (int p = 0; p < kc; p++) {
                const float* src = g->im2col_x + g->row_offset[p0 + p];
                for (int j = 0; j < NR; j++) bp[p * NR + j] = src[at[j]];
            }
        } else if (g->b_transposed) { // B stored as (N, K): column j of B is row j
            const float* src = g->b + (size_t)(j0 + jr) * g->ldb + p0; // (cols, kc) at ldb
            for (int j = 0; j < NR; j++)
                if (j < cols)
                    for (int p = 0; p < kc; p++) bp[p * NR + j] = src[(size_t)j * g->ldb + p];
                else
                    for (int p = 0; p < kc; p++) bp[p * NR + j] = 0.0f;
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

// Each KC x NC block of B is packed once and multiplied by every MC x KC block of A in the part.
static void gemm_part(gemm_kernel kernel, const cpu_gemm_args* g, int i0, int m, int j0, int n, float* pack) {
    float* a_edge = pack;                             // (MR, KC) the last rows of A, zero-padded to MR
    float* bp = pack + (size_t)MR * KC;               // (NC / NR panels of (KC, NR))
    float edge[MR * NR] __attribute__((aligned(32))); // (MR, NR) a partial tile of C
    int k_blocks = g->k == 0 ? 1 : (g->k + KC - 1) / KC; // K = 0 still writes C = 0 (+ bias)
    for (int jc = j0; jc < j0 + n; jc += NC) {
        int nc = j0 + n - jc < NC ? j0 + n - jc : NC;
        for (int kb = 0; kb < k_blocks; kb++) {
            int p0 = kb * KC, kc = g->k - p0 < KC ? g->k - p0 : KC;
            pack_b(bp, g, p0, kc, jc, nc);
            for (int ic = i0; ic < i0 + m; ic += MC) {
                int mc = i0 + m - ic < MC ? i0 + m - ic : MC;
                int full = mc / MR * MR; // rows in whole panels; the rest go through a_edge
                if (full < mc) {
                    memset(a_edge, 0, (size_t)MR * kc * sizeof(float));
                    for (int i = 0; i < mc - full; i++)
                        memcpy(a_edge + (size_t)i * kc, g->a + (size_t)(ic + full + i) * g->lda + p0, (size_t)kc * sizeof(float));
                }
                for (int jr = 0; jr < nc; jr += NR) {
                    int cols = nc - jr < NR ? nc - jr : NR;
                    for (int ir = 0; ir < mc; ir += MR) {
                        int rows = mc - ir < MR ? mc - ir : MR;
                        float* c = g->c + (size_t)(ic + ir) * g->ldc + jc + jr; // (rows, cols) at ldc
                        const float* a_rows = rows == MR ? g->a + (size_t)(ic + ir) * g->lda + p0 : a_edge;
                        int lda = rows == MR ? g->lda : kc;
                        const float* b_panel = bp + (size_t)jr * kc;
                        if (rows == MR && cols == NR) {
                            kernel(kc, a_rows, lda, b_panel, c, g->ldc, kb > 0);
                            continue;
                        }
                        for (int i = 0; i < rows; i++)
                            memcpy(edge + i * NR, c + (size_t)i * g->ldc, (size_t)cols * sizeof(float));
                        kernel(kc, a_rows, lda, b_panel, edge, NR, kb > 0);
                        for (int i = 0; i < rows; i++)
                            memcpy(c + (size_t)i * g->ldc, edge + i * NR, (size_t)cols * sizeof(float));
                    }
                }
            }
        }
        // the bias, once, after the whole chain (as a separate pass would add it)
        if (g->row_bias || g->col_bias)
            for (int i = i0; i < i0 + m; i++) {
                float* c = g->c + (size_t)i * g->ldc; // (N)
                if (g->row_bias)
                    for (int j = jc; j < jc + nc; j++) c[j] += g->row_bias[i];
                if (g->col_bias)
                    for (int j = jc; j < jc + nc; j++) c[j] += g->col_bias[j];
            }
    }
}

// ---- drivers ---------------------------------------------------------------------------------------

static float* thread_pack(const cpu_backend* cpu) {
    return cpu->pack + (size_t)omp_get_thread_num() * CPU_GEMM_PACK_FLOATS;
}

void cpu_gemm_team(const cpu_backend* cpu, const cpu_gemm_args* g) {
    if (g->m <= 0 || g->n <= 0) return;
    // One part per thread, cut along N (in whole panels) when there are enough columns, else
    // along M: each thread packs only its own panels.
    int parts = omp_get_num_threads();
    int by_n = g->n >= parts * 4 * NR;
    int unit = by_n ? NR : MR, extent = by_n ? g->n : g->m;
    int step = ((extent + parts - 1) / parts + unit - 1) / unit * unit;
    gemm_kernel kernel = kernel_for(cpu->isa);
    float* pack = thread_pack(cpu);
    #pragma omp for schedule(static)
    for (int t = 0; t < parts; t++) {
        int lo = t * step, len = extent - lo < step ? extent - lo : step;
        if (len <= 0) continue;
        if (by_n) gemm_part(kernel, g, 0, g->m, lo, len, pack);
        else gemm_part(kernel, g, lo, len, 0, g->n, pack);
    }
}

void cpu_gemm_one(const cpu_backend* cpu, const cpu_gemm_args* g) {
    if (g->m <= 0 || g->n <= 0) return;
    gemm_part(kernel_for(cpu->isa), g, 0, g->m, 0, g->n, thread_pack(cpu));
}
