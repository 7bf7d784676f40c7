// linear on the CPU, out (M, N) = x (M, K) @ w (N, K)^T + bias, and the team GEMM that
// linear and conv2d share.
#include <cblas.h>
#include <math.h>
#include <omp.h>

#include "cpu_ops.h"

void cpu_gemm_team(int m, int n, int k, const float* a, int lda, const float* b, int ldb, int b_transposed, float* c,
                   int ldc) {
    // Split C into m_parts x n_parts = blocks, choosing the factor pair whose blocks are the most
    // square: each thread packs its rows of A and its columns of B, so square blocks pack the
    // least for the multiply-adds they feed. At least 4 blocks, whatever the thread count: OpenBLAS's
    // result for an element depends on its block's shape, so a split by thread count would make
    // the last bits depend on it; with 4 blocks, 1 to 4 threads give the same bits (measured: no
    // slower at 2 threads than 2 blocks).
    int threads = omp_get_num_threads(), blocks = threads > 4 ? threads : 4, m_parts = 1, n_parts = blocks;
    double best = INFINITY;
    for (int mp = 1; mp <= blocks; mp++) {
        if (blocks % mp != 0) continue;
        int np = blocks / mp;
        double bm = ceil((double)m / mp), bn = ceil((double)n / np);
        double skew = fabs(log(bm / bn)) + (mp > m || np > n ? 100.0 : 0.0); // no empty blocks if avoidable
        if (skew < best) best = skew, m_parts = mp, n_parts = np;
    }
    int bm = (m + m_parts - 1) / m_parts;
    int bn = (n + n_parts - 1) / n_parts;
    bn = (bn + 15) / 16 * 16; // block columns start on 64-byte boundaries
    #pragma omp for schedule(static)
    for (int t = 0; t < m_parts * n_parts; t++) {
        int m0 = t / n_parts * bm, n0 = t % n_parts * bn;
        int rows = m - m0 < bm ? m - m0 : bm, cols = n - n0 < bn ? n - n0 : bn;
        if (rows <= 0 || cols <= 0) continue;
        const float* bblock = b_transposed ? b + (size_t)n0 * ldb : b + n0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, b_transposed ? CblasTrans : CblasNoTrans, rows, cols, k, 1.0f,
                    a + (size_t)m0 * lda, lda, bblock, ldb, 0.0f, c + (size_t)m0 * ldc + n0, ldc);
    }
}

dato_status cpu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                       const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_linear(out, x, w, b, DATO_DEV_CPU, 0, err));
    int64_t n = w->shape[0], kdim = w->shape[1], m = dato_tensor_numel(x) / kdim;
    if (m == 0) return DATO_OK;

    const float* xd = x->data; // (M, K)
    const float* wd = w->data; // (N, K)
    const float* bd = b ? b->data : NULL; // (N)
    float* od = out->data;     // (M, N)
    #pragma omp parallel num_threads(cpu_threads(be))
    {
        cpu_gemm_team((int)m, (int)n, (int)kdim, xd, (int)kdim, wd, (int)kdim, 1, od, (int)n);
        if (bd) {
            #pragma omp for schedule(static)
            for (int64_t r = 0; r < m; r++) {
                float* o = od + r * n; // (N)
                #pragma omp simd
                for (int64_t j = 0; j < n; j++) o[j] += bd[j];
            }
        }
    }
    return DATO_OK;
}
