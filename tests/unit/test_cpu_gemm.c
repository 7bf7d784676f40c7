// The CPU backend's GEMM (engine/backends/cpu/cpu_gemm.c) against a double-precision reference,
// and its promise of bits: the portable kernel, the AVX2 kernel, one thread and a team of 2, 3
// or 8, and conv2d's two ways of sharing work (runs of images per thread, the team over bands of
// rows) give the same bits, those of one fmaf chain per output. Shapes cover partial register
// tiles (M % 6, N % 16), several K blocks (K > 512, and > 1024), several N blocks (N > 1280),
// K = 0, padded leading dimensions, both B layouts and both biases. geglu_linear gives geglu,
// then linear's bits; group_norm_conv2d group_norm, then conv2d's; cpu_gemm_rows (B in place, K
// in blocks) the chain's. Also $DATO_CPU_ISA: a known level caps the kernels, an unknown one is
// refused by name.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu_ops.h" // white box: the GEMM entry points and the ISA level
#include "rng.h"
#include "test_util.h"

static dato_rng rng;

static float* randn(size_t n) {
    float* x = malloc(n * sizeof(float) + 4);
    dato_rng_fill_normal(&rng, x, n);
    return x;
}

typedef struct {
    int m, n, k, b_transposed, pad, row_bias, col_bias;
} gemm_case;

static dato_backend open_cpu(int threads, const char* isa) {
    if (isa) setenv("DATO_CPU_ISA", isa, 1);
    else unsetenv("DATO_CPU_ISA");
    dato_backend be;
    dato_error err;
    dato_status st = dato_backend_cpu_init(&be, threads, &err);
    CHECK(st == DATO_OK, "cpu init at %d threads: %s", threads, err.msg);
    unsetenv("DATO_CPU_ISA");
    return be;
}

// C on backend be: the team's GEMM in a parallel region of `threads`, or one thread's.
static void run_gemm(const dato_backend* be, const cpu_gemm_args* g, int team) {
    const cpu_backend* cpu = be->impl;
    if (!team) {
        cpu_gemm_one(cpu, g);
        return;
    }
    #pragma omp parallel num_threads(cpu->threads)
    cpu_gemm_team(cpu, g);
}

// One case on every backend; returns the largest error over the bound k * 2^-24 * sum |a b|.
static void test_case(dato_backend* bes, int n_bes, const gemm_case* t) {
    int lda = t->k + t->pad, ldb = (t->b_transposed ? t->k : t->n) + t->pad, ldc = t->n + t->pad;
    size_t b_rows = t->b_transposed ? (size_t)t->n : (size_t)t->k;
    float* a = randn((size_t)t->m * lda);   // (M, K) at lda
    float* b = randn(b_rows * ldb);         // (K, N) or (N, K) at ldb
    float* rb = randn((size_t)t->m);        // (M)
    float* cb = randn((size_t)t->n);        // (N)
    size_t c_size = (size_t)t->m * ldc;
    float* first = malloc(c_size * sizeof(float) + 4); // (M, N) at ldc: the first run's result
    float* c = malloc(c_size * sizeof(float) + 4);
    cpu_gemm_args g = {.m = t->m, .n = t->n, .k = t->k, .a = a, .lda = lda, .b = b, .ldb = ldb,
                       .b_transposed = t->b_transposed, .c = c, .ldc = ldc,
                       .row_bias = t->row_bias ? rb : NULL, .col_bias = t->col_bias ? cb : NULL};
    int differ = 0;
    for (int i = 0; i < n_bes; i++)
        for (int team = 0; team < 2; team++) {
            for (size_t e = 0; e < c_size; e++) c[e] = NAN; // every element must be written
            run_gemm(&bes[i], &g, team);
            if (i == 0 && team == 0) memcpy(first, c, c_size * sizeof(float));
            for (int r = 0; r < t->m; r++) differ |= memcmp(first + (size_t)r * ldc, c + (size_t)r * ldc, (size_t)t->n * 4) != 0;
        }
    double worst = 0; // |c - ref| / (k * 2^-24 * sum |a b| + |bias| 2^-23 + tiny)
    for (int i = 0; i < t->m; i++)
        for (int j = 0; j < t->n; j++) {
            double ref = 0, mag = 0;
            for (int p = 0; p < t->k; p++) {
                double bv = t->b_transposed ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                ref += (double)a[(size_t)i * lda + p] * bv;
                mag += fabs((double)a[(size_t)i * lda + p] * bv);
            }
            double bias = (t->row_bias ? rb[i] : 0.0) + (t->col_bias ? cb[j] : 0.0);
            ref += bias;
            double bound = (t->k + 2) * ldexp(1.0, -24) * (mag + fabs(bias)) + 1e-30;
            double e = fabs((double)first[(size_t)i * ldc + j] - ref) / bound;
            if (e > worst || e != e) worst = e;
        }
    printf("gemm %4dx%4dx%4d %s pad %d%s%s: error %.3f of the bound, %s\n", t->m, t->n, t->k,
           t->b_transposed ? "B^T" : "B  ", t->pad, t->row_bias ? " +row bias" : "", t->col_bias ? " +col bias" : "",
           worst, differ ? "BITS DIFFER" : "same bits on every backend and split");
    CHECK(worst <= 1.0, "gemm %dx%dx%d: error %.3f of the bound k 2^-24 sum|ab|", t->m, t->n, t->k, worst);
    CHECK(!differ, "gemm %dx%dx%d: bits differ between kernels, thread counts or splits", t->m, t->n, t->k);
    free(a), free(b), free(rb), free(cb), free(first), free(c);
}

// cpu_gemm_rows (Winograd's fused form): one register tile's rows of A against B read in place at
// its own stride, K in two calls (the second continuing the chains from C), N = 48 (a panel pair
// and a single panel): each element the fmaf chain over all of K, at every ISA level up to the CPU's.
static void test_gemm_rows(cpu_isa best) {
    enum { MR = CPU_GEMM_MR, K1 = 37, K2 = 300, K = K1 + K2, N = 48, LDA = K + 3, LDB = N + 5, LDC = N + 7 };
    float* a = randn((size_t)MR * LDA); // (MR, K) at LDA
    float* b = randn((size_t)K * LDB);  // (K, N) at LDB
    float chain[MR][N], c[MR * LDC];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int p = 0; p < K; p++) acc = fmaf(a[i * LDA + p], b[p * LDB + j], acc);
            chain[i][j] = acc;
        }
    const cpu_isa levels[] = {CPU_ISA_GENERIC, CPU_ISA_AVX2, CPU_ISA_AVX512};
    for (int l = 0; l < 3 && levels[l] <= best; l++) {
        for (int e = 0; e < MR * LDC; e++) c[e] = NAN;
        cpu_gemm_rows(levels[l], K1, a, LDA, b, LDB, N, c, LDC, 0);
        cpu_gemm_rows(levels[l], K2, a + K1, LDA, b + (size_t)K1 * LDB, LDB, N, c, LDC, 1);
        int differ = 0;
        for (int i = 0; i < MR; i++) differ |= memcmp(chain[i], c + i * LDC, N * sizeof(float)) != 0;
        printf("gemm_rows %dx%dx%d in 2 K blocks, level %d: %s\n", MR, N, K, (int)levels[l],
               differ ? "BITS DIFFER" : "the fmaf chain's bits");
        CHECK(!differ, "cpu_gemm_rows at level %d: bits differ from the chain", (int)levels[l]);
    }
    free(a), free(b);
}

// conv2d's promise, output by output: one fmaf chain over the taps (ci, ky, kx) in order, the
// padding's zeros included, started at 0, then the bias.
static void conv_chain(float* out, const float* x, const float* w, const float* b, int batch, int ci, int hw, int co,
                       int k, int stride, int pad, int ho) {
    for (int n = 0; n < batch; n++)
        for (int o = 0; o < co; o++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < ho; ox++) {
                    float acc = 0.0f;
                    for (int c = 0; c < ci; c++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
                                float v = iy < 0 || iy >= hw || ix < 0 || ix >= hw ? 0.0f
                                          : x[(((size_t)n * ci + c) * hw + iy) * hw + ix];
                                acc = fmaf(v, w[(((size_t)o * ci + c) * k + ky) * k + kx], acc);
                            }
                    out[(((size_t)n * co + o) * ho + oy) * ho + ox] = acc + b[o];
                }
}

// conv2d at 1, 2 and 3 threads and with the portable kernel: the same bits, and those of
// conv_chain. Both forms of its GEMM (cpu_conv.c): positions as rows for the small convs, channels
// as rows at Co = 240 and 250 with K = 576. Batch 6: a run of images per thread at 1, 2 and 3;
// batch 5: the team at 2 and 3; batch 20 of 64x62x62: a thread's images in several runs (its
// share holds 15); a 64x260x260 input: the team over several bands of rows.
static void test_conv_bits(dato_backend* bes, int n_bes, int batch, int ci, int hw, int co, int k, int stride) {
    int pad = k / 2, ho = (hw + 2 * pad - k) / stride + 1;
    size_t nx = (size_t)batch * ci * hw * hw, nw = (size_t)co * ci * k * k, no = (size_t)batch * co * ho * ho;
    float* x = randn(nx);  // (B, Ci, H, W)
    float* w = randn(nw);  // (Co, Ci, k, k)
    float* b = randn(co);  // (Co)
    float* ref = malloc(no * sizeof(float)), *out = malloc(no * sizeof(float)); // (B, Co, Ho, Wo)
    conv_chain(ref, x, w, b, batch, ci, hw, co, k, stride, pad, ho);
    int differ = 0;
    for (int i = 0; i < n_bes; i++) {
        dato_tensor tx = dato_tensor_f32_4d(x, batch, ci, hw, hw), tw = dato_tensor_f32_4d(w, co, ci, k, k);
        dato_tensor tb = dato_tensor_f32_1d(b, co), to = dato_tensor_f32_4d(out, batch, co, ho, ho);
        dato_error err;
        dato_status st = bes[i].ops->conv2d(&bes[i], &to, &tx, &tw, &tb, stride, stride, pad, pad, &err);
        CHECK(st == DATO_OK, "conv2d: %s", err.msg);
        differ |= memcmp(ref, out, no * sizeof(float)) != 0;
    }
    printf("conv2d B%d %dx%dx%d -> %d k%d s%d: %s\n", batch, ci, hw, hw, co, k, stride,
           differ ? "BITS DIFFER" : "the fmaf chain's bits at 1, 2, 3 threads, avx2 and generic");
    CHECK(!differ, "conv2d B%d: bits differ from the chain", batch);
    free(x), free(w), free(b), free(ref), free(out);
}

// geglu_linear (GEGLU staged a block of A at a time inside the GEMM) against geglu, then linear:
// the same bits, at 1, 2, 3 threads, avx2 and generic. Shapes: partial register tiles and MC blocks
// (M = 151), several K blocks (F = 600), N over a team's split (N = 200), no bias.
static void test_geglu_linear(dato_backend* bes, int n_bes, int m, int f, int n, int bias) {
    float* x = randn((size_t)m * 2 * f);  // (M, 2F): [hidden, gate]
    float* w = randn((size_t)n * f);      // (N, F)
    float* b = randn((size_t)n);          // (N)
    float* gated = malloc((size_t)m * f * sizeof(float));           // (M, F)
    float* ref = malloc((size_t)m * n * sizeof(float)), *out = malloc((size_t)m * n * sizeof(float)); // (M, N)
    dato_tensor tx = dato_tensor_f32_2d(x, m, 2 * f), tg = dato_tensor_f32_2d(gated, m, f);
    dato_tensor tw = dato_tensor_f32_2d(w, n, f), tb = dato_tensor_f32_1d(b, n);
    dato_tensor tr = dato_tensor_f32_2d(ref, m, n), to = dato_tensor_f32_2d(out, m, n);
    dato_error err;
    CHECK(bes[0].ops->geglu(&bes[0], &tg, &tx, &err) == DATO_OK, "geglu: %s", err.msg);
    CHECK(bes[0].ops->linear(&bes[0], &tr, &tg, &tw, bias ? &tb : NULL, &err) == DATO_OK, "linear: %s", err.msg);
    int differ = 0;
    for (int i = 0; i < n_bes; i++) {
        CHECK(bes[i].ops->geglu_linear(&bes[i], &to, &tx, &tw, bias ? &tb : NULL, &err) == DATO_OK,
              "geglu_linear: %s", err.msg);
        differ |= memcmp(ref, out, (size_t)m * n * sizeof(float)) != 0;
    }
    printf("geglu_linear M%d F%d N%d%s: %s\n", m, f, n, bias ? " bias" : "",
           differ ? "BITS DIFFER" : "geglu then linear's bits at 1, 2, 3 threads, avx2 and generic");
    CHECK(!differ, "geglu_linear M%d F%d N%d: bits differ from geglu then linear", m, f, n);
    // its check: an odd last dim of x is refused by name
    dato_tensor odd = dato_tensor_f32_2d(x, m, 2 * f - 1);
    CHECK(bes[0].ops->geglu_linear(&bes[0], &to, &odd, &tw, NULL, &err) == DATO_ERR_INVALID &&
              strstr(err.msg, "geglu_linear") && strstr(err.msg, "odd"),
          "an odd x is refused: %s", err.msg);
    free(x), free(w), free(b), free(gated), free(ref), free(out);
}

// group_norm_conv2d (GroupNorm and SiLU applied as the conv copies its input) against group_norm,
// then conv2d: the same bits at 1, 2, 3 threads, avx2 and generic, in both forms of the conv's GEMM and
// both ways of sharing it, strided, 1x1, with and without SiLU.
static void test_group_norm_conv(dato_backend* bes, int n_bes, int batch, int ci, int hw, int co, int k, int stride,
                                 int groups, int silu) {
    int pad = k / 2, ho = (hw + 2 * pad - k) / stride + 1;
    size_t nx = (size_t)batch * ci * hw * hw, no = (size_t)batch * co * ho * ho;
    float* x = randn(nx);                      // (B, Ci, H, W)
    float* w = randn((size_t)co * ci * k * k); // (Co, Ci, k, k)
    float* b = randn(co);                      // (Co)
    float* gamma = randn(ci), *beta = randn(ci); // (Ci)
    for (size_t i = 0; i < nx; i++) x[i] = 3.0f * x[i] + 1.0f; // statistics far from (0, 1)
    float* normed = malloc(nx * sizeof(float));                 // (B, Ci, H, W)
    float* ref = malloc(no * sizeof(float)), *out = malloc(no * sizeof(float)); // (B, Co, Ho, Wo)
    dato_tensor tx = dato_tensor_f32_4d(x, batch, ci, hw, hw), tn = dato_tensor_f32_4d(normed, batch, ci, hw, hw);
    dato_tensor tw = dato_tensor_f32_4d(w, co, ci, k, k), tb = dato_tensor_f32_1d(b, co);
    dato_tensor tg = dato_tensor_f32_1d(gamma, ci), tbe = dato_tensor_f32_1d(beta, ci);
    dato_tensor tr = dato_tensor_f32_4d(ref, batch, co, ho, ho), to = dato_tensor_f32_4d(out, batch, co, ho, ho);
    dato_error err;
    CHECK(bes[0].ops->group_norm(&bes[0], &tn, &tx, &tg, &tbe, groups, 1e-5f, silu, &err) == DATO_OK, "gn: %s", err.msg);
    CHECK(bes[0].ops->conv2d(&bes[0], &tr, &tn, &tw, &tb, stride, stride, pad, pad, &err) == DATO_OK, "conv: %s", err.msg);
    int differ = 0;
    for (int i = 0; i < n_bes; i++) {
        CHECK(bes[i].ops->group_norm_conv2d(&bes[i], &to, &tx, &tg, &tbe, groups, 1e-5f, silu, &tw, &tb, stride, stride,
                                            pad, pad, &err) == DATO_OK, "group_norm_conv2d: %s", err.msg);
        differ |= memcmp(ref, out, no * sizeof(float)) != 0;
    }
    printf("group_norm_conv2d B%d %dx%dx%d G%d%s -> %d k%d s%d: %s\n", batch, ci, hw, hw, groups, silu ? " silu" : "",
           co, k, stride, differ ? "BITS DIFFER" : "group_norm then conv2d's bits at 1, 2, 3 threads, avx2 and generic");
    CHECK(!differ, "group_norm_conv2d B%d: bits differ from group_norm then conv2d", batch);
    free(x), free(w), free(b), free(gamma), free(beta), free(normed), free(ref), free(out);
}

static void test_isa_variable(void) {
    dato_backend be;
    dato_error err;
    setenv("DATO_CPU_ISA", "avx3", 1);
    dato_status st = dato_backend_cpu_init(&be, 1, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "DATO_CPU_ISA") && strstr(err.msg, "'avx3'") &&
              strstr(err.msg, "generic, avx2 or avx512"),
          "an unknown level is refused by name: %s", err.msg);
    be = open_cpu(1, "generic");
    CHECK(((cpu_backend*)be.impl)->isa == CPU_ISA_GENERIC, "generic caps the kernels");
    dato_backend_destroy(&be);
    dato_backend best = open_cpu(1, NULL), capped = open_cpu(1, "avx512");
    CHECK(((cpu_backend*)capped.impl)->isa == ((cpu_backend*)best.impl)->isa, "a cap above the CPU changes nothing");
    printf("this CPU's level: %s\n", (const char*[]){"generic", "avx2", "avx512"}[((cpu_backend*)best.impl)->isa]);
    dato_backend_destroy(&best);
    dato_backend_destroy(&capped);
}

int main(void) {
    dato_rng_seed(&rng, 7);
    test_isa_variable();
    // generic at 1 thread first: every other result must equal its bits, the CPU's best level
    // (AVX-512 or AVX2) and AVX2 forced at 2 threads among them
    dato_backend bes[6] = {open_cpu(1, "generic"), open_cpu(2, "avx2"), open_cpu(1, NULL),
                           open_cpu(2, NULL),      open_cpu(3, NULL),   open_cpu(8, NULL)};
    static const gemm_case cases[] = {
        {1, 1, 1, 0, 0, 0, 0},       {5, 15, 7, 0, 0, 1, 0},     {6, 16, 256, 0, 0, 0, 0},
        {7, 17, 257, 1, 0, 0, 1},    {13, 33, 600, 0, 3, 1, 1},  {32, 196, 288, 0, 0, 1, 0},
        {48, 49, 432, 0, 0, 1, 0},   {73, 530, 300, 1, 5, 0, 1}, {150, 64, 32, 1, 0, 0, 1},
        {392, 256, 32, 1, 0, 0, 1},  {40, 1100, 70, 0, 0, 1, 0}, {9, 20, 0, 0, 2, 1, 1},
        {200, 3, 513, 1, 1, 0, 0},   {1300, 140, 70, 1, 0, 0, 1}, // a tall A: cut along M, but at 8 threads
        {20, 1300, 40, 0, 0, 1, 0},  {7, 40, 1100, 1, 2, 1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_case(bes, 6, &cases[i]);
    test_gemm_rows(((const cpu_backend*)bes[2].impl)->isa);
    dato_backend conv_bes[5] = {bes[0], bes[1], bes[2], bes[3], bes[4]};
    test_conv_bits(conv_bes, 5, 6, 8, 14, 32, 3, 1);  // a run of images per thread
    test_conv_bits(conv_bes, 5, 6, 8, 14, 20, 3, 2);  // stride 2
    test_conv_bits(conv_bes, 5, 5, 8, 14, 12, 3, 1);  // the team at 2 and 3 threads
    test_conv_bits(conv_bes, 5, 6, 8, 9, 20, 1, 1);   // 1x1: no padded copy
    test_conv_bits(conv_bes, 5, 20, 64, 62, 4, 3, 1); // several runs per thread
    test_conv_bits(conv_bes, 5, 1, 64, 260, 4, 3, 1); // the team over several bands of rows
    // channels as rows: K x Co over the packed panels (asserted, as the panels' size sets it)
    CHECK(!cpu_gemm_one_k_block(96 * 9, 770), "conv 96 -> 770 3x3 takes channels as rows");
    test_conv_bits(conv_bes, 5, 4, 96, 8, 770, 3, 1);
    test_conv_bits(conv_bes, 5, 3, 96, 9, 780, 3, 2); // the same, strided, the team at 2
    test_group_norm_conv(conv_bes, 5, 6, 32, 14, 32, 3, 1, 8, 1);   // positions as rows
    test_group_norm_conv(conv_bes, 5, 5, 16, 14, 12, 3, 2, 4, 0);   // the team, strided, no SiLU
    test_group_norm_conv(conv_bes, 5, 4, 96, 8, 770, 3, 1, 32, 1);  // channels as rows
    test_group_norm_conv(conv_bes, 5, 6, 8, 9, 20, 1, 1, 2, 1);     // 1x1
    test_geglu_linear(conv_bes, 5, 151, 128, 32, 1);
    test_geglu_linear(conv_bes, 5, 151, 600, 200, 0);
    test_geglu_linear(conv_bes, 5, 5, 7, 3, 1);
    test_geglu_linear(conv_bes, 5, 13, 40, 1300, 1); // several N blocks: A computed once per block
    for (int i = 0; i < 6; i++) dato_backend_destroy(&bes[i]);
    return test_summary();
}
