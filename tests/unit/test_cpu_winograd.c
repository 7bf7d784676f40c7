// 3x3 stride-1 conv2d by Winograd's F(4x4, 3x3) (engine/backends/cpu/cpu_winograd.c) against a
// double-precision direct conv, beside the direct conv's own error, and its promise of bits: the
// portable kernel, AVX2 forced, 1 to 8 threads, the fused form (U made a block of output channels
// at a time) and the blocked one (U stored, a scratch small enough to force several tile and
// channel blocks) give the same bits; group_norm_conv2d gives group_norm, then conv2d's. Shapes
// cover partial tiles (H, W not multiples of 4, H != W), pads 0, 1 and 2, channel counts that are
// not multiples of the register tile, and SD1.5's 320 channels. Also which convs the
// auto mode sends to Winograd, and $DATO_CPU_CONV refused by name when unknown.
#include <math.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu_ops.h" // white box: the plan, the mode and the scratch size
#include "rng.h"
#include "test_util.h"

// max |winograd - exact| / max |exact|, and its ratio to the direct conv's: F(4x4, 3x3)'s transforms
// scale values by up to 10 (A^T's 8, B^T's 5) before the GEMM's rounding, measured 6-10x the direct
// conv's error (1.6e-5 at 320 channels).
#define TOL 3e-5
#define TOL_VS_DIRECT 16.0

static dato_rng rng;

static float* randn(size_t n) {
    float* x = malloc(n * sizeof(float) + 4);
    dato_rng_fill_normal(&rng, x, n);
    return x;
}

static dato_backend open_cpu(int threads, const char* isa, const char* conv) {
    if (isa) setenv("DATO_CPU_ISA", isa, 1);
    else unsetenv("DATO_CPU_ISA");
    setenv("DATO_CPU_CONV", conv, 1);
    dato_backend be;
    dato_error err;
    dato_status st = dato_backend_cpu_init(&be, threads, &err);
    CHECK(st == DATO_OK, "cpu init at %d threads: %s", threads, err.msg);
    unsetenv("DATO_CPU_ISA");
    unsetenv("DATO_CPU_CONV");
    return be;
}

// out (B, Co, Ho, Wo) in double: the conv as its definition says.
static void conv_exact(double* out, const float* x, const float* w, const float* b, int batch, int ci, int h, int wd,
                       int co, int pad, int ho, int wo) {
    for (int n = 0; n < batch; n++)
        for (int o = 0; o < co; o++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double acc = b[o];
                    for (int c = 0; c < ci; c++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = oy + ky - pad, ix = ox + kx - pad;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                acc += (double)x[(((size_t)n * ci + c) * h + iy) * wd + ix] *
                                       w[(((size_t)o * ci + c) * 3 + ky) * 3 + kx];
                            }
                    out[(((size_t)n * co + o) * ho + oy) * wo + ox] = acc;
                }
}

// test_rel_err_f64 of float results (n) against exact, through scratch (n doubles).
static double rel_err(const float* got, const double* exact, size_t n, double* scratch) {
    for (size_t i = 0; i < n; i++) scratch[i] = got[i];
    return test_rel_err_f64(scratch, exact, n);
}

// Winograd on every backend of wino (the same bits on each), against the exact conv and beside
// the direct conv's error; with groups > 0 also group_norm_conv2d against group_norm, then conv2d.
static void test_conv(dato_backend* wino, int n_wino, dato_backend* direct, int batch, int ci, int h, int wd, int co,
                      int pad, int groups) {
    int ho = h + 2 * pad - 2, wo = wd + 2 * pad - 2;
    size_t nx = (size_t)batch * ci * h * wd, no = (size_t)batch * co * ho * wo;
    float* x = randn(nx);                      // (B, Ci, H, W)
    float* w = randn((size_t)co * ci * 9);     // (Co, Ci, 3, 3)
    float* b = randn(co);                      // (Co)
    float* first = malloc(no * sizeof(float)); // (B, Co, Ho, Wo) the first backend's result
    float* out = malloc(no * sizeof(float)), *direct_out = malloc(no * sizeof(float));
    double* exact = malloc(no * sizeof(double));
    conv_exact(exact, x, w, b, batch, ci, h, wd, co, pad, ho, wo);
    dato_tensor tx = dato_tensor_f32_4d(x, batch, ci, h, wd), tw = dato_tensor_f32_4d(w, co, ci, 3, 3);
    dato_tensor tb = dato_tensor_f32_1d(b, co), to = dato_tensor_f32_4d(out, batch, co, ho, wo);
    dato_tensor tf = dato_tensor_f32_4d(first, batch, co, ho, wo), td = dato_tensor_f32_4d(direct_out, batch, co, ho, wo);
    dato_error err;
    int differ = 0;
    for (int i = 0; i < n_wino; i++) {
        dato_status st = wino[i].ops->conv2d(&wino[i], i ? &to : &tf, &tx, &tw, &tb, 1, 1, pad, pad, &err);
        CHECK(st == DATO_OK, "conv2d: %s", err.msg);
        if (i) differ |= memcmp(first, out, no * sizeof(float)) != 0;
    }
    CHECK(direct->ops->conv2d(direct, &td, &tx, &tw, &tb, 1, 1, pad, pad, &err) == DATO_OK, "direct: %s", err.msg);
    double* widened = malloc(no * sizeof(double));
    double e_wino = rel_err(first, exact, no, widened), e_direct = rel_err(direct_out, exact, no, widened);
    free(widened);
    printf("winograd B%d %dx%dx%d -> %d pad %d: max|err|/max|exact| = %.2e (tol %.0e), %.1fx the direct conv's %.2e "
           "(tol %.0fx), %s\n", batch, ci, h, wd, co, pad, e_wino, TOL, e_wino / e_direct, e_direct, TOL_VS_DIRECT,
           differ ? "BITS DIFFER" : "the same bits on every backend");
    CHECK(e_wino <= TOL && e_wino <= TOL_VS_DIRECT * e_direct, "winograd B%d %dx%dx%d -> %d: error %.2e", batch, ci, h,
          wd, co, e_wino);
    CHECK(!differ, "winograd B%d %dx%dx%d -> %d: bits differ between backends", batch, ci, h, wd, co);

    if (groups) { // the fused GroupNorm + SiLU: group_norm then conv2d's bits
        float* gamma = randn(ci), *beta = randn(ci), *normed = malloc(nx * sizeof(float));
        for (size_t i = 0; i < nx; i++) x[i] = 3.0f * x[i] + 1.0f; // statistics far from (0, 1)
        dato_tensor tg = dato_tensor_f32_1d(gamma, ci), tbe = dato_tensor_f32_1d(beta, ci);
        dato_tensor tn = dato_tensor_f32_4d(normed, batch, ci, h, wd);
        CHECK(wino[0].ops->group_norm(&wino[0], &tn, &tx, &tg, &tbe, groups, 1e-5f, 1, &err) == DATO_OK, "gn: %s", err.msg);
        CHECK(wino[0].ops->conv2d(&wino[0], &tf, &tn, &tw, &tb, 1, 1, pad, pad, &err) == DATO_OK, "conv: %s", err.msg);
        differ = 0;
        for (int i = 0; i < n_wino; i++) {
            CHECK(wino[i].ops->group_norm_conv2d(&wino[i], &to, &tx, &tg, &tbe, groups, 1e-5f, 1, &tw, &tb, 1, 1, pad,
                                                 pad, &err) == DATO_OK, "group_norm_conv2d: %s", err.msg);
            differ |= memcmp(first, out, no * sizeof(float)) != 0;
        }
        printf("  group_norm_conv2d G%d silu: %s\n", groups,
               differ ? "BITS DIFFER" : "group_norm then conv2d's bits on every backend");
        CHECK(!differ, "group_norm_conv2d B%d %dx%dx%d: bits differ from group_norm then conv2d", batch, ci, h, wd);
        free(gamma), free(beta), free(normed);
    }
    free(x), free(w), free(b), free(first), free(out), free(direct_out), free(exact);
}

// Which convs auto sends to Winograd: many channels and tiles; not the default model's, not strided,
// not 1x1, not few tiles; direct mode none; winograd mode any 3x3 stride-1.
static void test_modes(void) {
    dato_backend au = open_cpu(2, NULL, "auto"), di = open_cpu(2, NULL, "direct"), wi = open_cpu(2, NULL, "winograd");
    const cpu_backend *a = au.impl, *d = di.impl, *w = wi.impl;
    cpu_winograd_plan pl;
    CHECK(cpu_winograd_plan_conv(a, 2, 320, 320, 64, 64, 3, 3, 1, 1, 1, 1, 0, &pl) == 1, "SD1.5 64x64 320 -> 320");
    CHECK(pl.th == 16 && pl.tw == 16 && !pl.fused && pl.cb * ((320 + pl.cb - 1) / pl.cb) >= 320,
          "its tiles: %lld x %lld, U stored", (long long)pl.th, (long long)pl.tw);
    CHECK(cpu_winograd_plan_conv(a, 2, 1280, 1280, 16, 16, 3, 3, 1, 1, 1, 1, 1, &pl) == 1 && pl.fused &&
              pl.tb == 32 && pl.kc == 256,
          "SD1.5 16x16 1280: 32 tiles, U made in K blocks of 256 (fused %d, %lld tiles, kc %lld)", pl.fused,
          (long long)pl.tb, (long long)pl.kc);
    CHECK(cpu_winograd_plan_conv(a, 4, 1280, 1280, 16, 16, 3, 3, 1, 1, 1, 1, 1, &pl) == 1 && !pl.fused,
          "64 tiles: U stored");
    CHECK(cpu_winograd_plan_conv(a, 2, 1280, 1280, 8, 8, 3, 3, 1, 1, 1, 1, 0, &pl) == 0, "8 tiles: direct");
    CHECK(cpu_winograd_plan_conv(a, 40, 32, 48, 14, 14, 3, 3, 1, 1, 1, 1, 0, &pl) == 0, "the default model: direct");
    CHECK(cpu_winograd_plan_conv(a, 2, 320, 320, 64, 64, 3, 3, 2, 2, 1, 1, 0, &pl) == 0, "strided: direct");
    CHECK(cpu_winograd_plan_conv(a, 2, 320, 320, 64, 64, 1, 1, 1, 1, 0, 0, 0, &pl) == 0, "1x1: direct");
    CHECK(cpu_winograd_plan_conv(d, 2, 320, 320, 64, 64, 3, 3, 1, 1, 1, 1, 0, &pl) == 0, "direct mode");
    CHECK(cpu_winograd_plan_conv(w, 40, 32, 48, 14, 14, 3, 3, 1, 1, 1, 1, 0, &pl) == 1, "winograd mode");
    CHECK(cpu_winograd_plan_conv(w, 1, 4, 4, 5000000, 3, 3, 3, 1, 1, 1, 1, 0, &pl) == 1, "a tall thin input fits");
    CHECK(cpu_winograd_plan_conv(w, 1, 4, 4, 3, 5000000, 3, 3, 1, 1, 1, 1, 0, &pl) == 0,
          "a row of tiles over the scratch: direct");
    dato_backend_destroy(&au), dato_backend_destroy(&di), dato_backend_destroy(&wi);
    setenv("DATO_CPU_CONV", "fft", 1);
    dato_backend be;
    dato_error err;
    dato_status st = dato_backend_cpu_init(&be, 1, &err);
    unsetenv("DATO_CPU_CONV");
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "DATO_CPU_CONV") && strstr(err.msg, "'fft'") &&
              strstr(err.msg, "auto, winograd or direct"),
          "an unknown mode is refused by name: %s", err.msg);
}

int main(void) {
    dato_rng_seed(&rng, 11);
    test_modes();
    // generic at 1 thread first; a scratch of 1/64 of the default forces several tile and channel blocks
    dato_backend wino[6] = {open_cpu(1, "generic", "winograd"), open_cpu(2, "avx2", "winograd"),
                            open_cpu(1, NULL, "winograd"),      open_cpu(2, NULL, "winograd"),
                            open_cpu(3, NULL, "winograd"),      open_cpu(8, NULL, "winograd")};
    // and U stored: every other backend runs these convs fused (U made a block at a time), so both
    // forms must give the same bits
    ((cpu_backend*)wino[4].impl)->wino_floats = CPU_WINO_FLOATS / 64;
    ((cpu_backend*)wino[4].impl)->wino_fused_floats = 0;
    cpu_winograd_plan small, fused;
    CHECK(cpu_winograd_plan_conv(wino[4].impl, 2, 320, 320, 12, 12, 3, 3, 1, 1, 1, 1, 1, &small) == 1 &&
              !small.fused && small.block_rows < 2 * small.th && small.cb < 320,
          "at 1/64 of the scratch, SD's channels go in several tile and channel blocks: %lld of %lld tile rows, %lld "
          "of 320 channels", (long long)small.block_rows, (long long)(2 * small.th), (long long)small.cb);
    CHECK(cpu_winograd_plan_conv(wino[3].impl, 2, 320, 320, 12, 12, 3, 3, 1, 1, 1, 1, 1, &fused) == 1 &&
              fused.fused && fused.kc == 160,
          "18 tiles: fused, Ci in 2 K blocks of 160 (%lld)", (long long)fused.kc);
    dato_backend direct = open_cpu(2, NULL, "direct");
    test_conv(wino, 6, &direct, 3, 7, 13, 11, 5, 1, 0);     // partial tiles both ways, tiny channels
    test_conv(wino, 6, &direct, 1, 9, 6, 7, 130, 0, 0);     // pad 0, Co over a register tile's multiple
    test_conv(wino, 6, &direct, 2, 33, 10, 9, 20, 2, 0);    // pad 2
    test_conv(wino, 6, &direct, 2, 128, 16, 16, 136, 1, 32); // auto's smallest, GroupNorm fused
    test_conv(wino, 6, &direct, 2, 320, 12, 12, 320, 1, 32); // SD1.5's channels; several blocks of both at 1/64
    for (int i = 0; i < 6; i++) dato_backend_destroy(&wino[i]);
    dato_backend_destroy(&direct);
    return test_summary();
}
