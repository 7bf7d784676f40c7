// linear on the CPU, out (M, N) = x (M, K) @ w (N, K)^T + bias, and the team GEMM that
// linear and conv2d share.
#include <cblas.h>
#include <limits.h>
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
    dato_status st;
    if ((st = cpu_check("linear", "out", out, 0, err)) || (st = cpu_check("linear", "x", x, 0, err)) ||
        (st = cpu_check("linear", "weight", w, 0, err)))
        return st;
    if (b && (st = cpu_check("linear", "bias", b, 1, err))) return st;
    char sw[96], sx[96], so[96];
    // a 1x1 conv weight (N, K, 1, 1) is the same matrix (LDM's VAE attention stores them so)
    int is_matrix = w->ndim == 2 || (w->ndim == 4 && w->shape[2] == 1 && w->shape[3] == 1);
    if (!is_matrix)
        return dato_fail(err, DATO_ERR_INVALID, "linear: weight %s is not (N, K) or (N, K, 1, 1)",
                         dato_shape_str(w, sw, sizeof sw));
    int64_t n = w->shape[0], kdim = w->shape[1];
    if (n < 1 || kdim < 1)
        return dato_fail(err, DATO_ERR_INVALID, "linear: weight %s is empty", dato_shape_str(w, sw, sizeof sw));
    if (x->shape[x->ndim - 1] != kdim)
        return dato_fail(err, DATO_ERR_INVALID, "linear: weight %s does not match input features %lld of x %s",
                         dato_shape_str(w, sw, sizeof sw), (long long)x->shape[x->ndim - 1],
                         dato_shape_str(x, sx, sizeof sx));
    int64_t m = dato_tensor_numel(x) / kdim;
    if (out->shape[out->ndim - 1] != n || dato_tensor_numel(out) != m * n)
        return dato_fail(err, DATO_ERR_INVALID, "linear: out %s, expected %lld rows of %lld for x %s, weight %s",
                         dato_shape_str(out, so, sizeof so), (long long)m, (long long)n,
                         dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw));
    if (b && b->shape[0] != n)
        return dato_fail(err, DATO_ERR_INVALID, "linear: bias (%lld) does not match output features %lld",
                         (long long)b->shape[0], (long long)n);
    if (m == 0) return DATO_OK;
    if (m > INT_MAX || n > INT_MAX || kdim > INT_MAX)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "linear: x %s, weight %s exceed the int sizes of BLAS",
                         dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw));

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
