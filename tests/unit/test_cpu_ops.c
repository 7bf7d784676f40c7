// The CPU backend against naive double-precision references written here (direct convolution
// loops, full-softmax attention, two-pass norms), on random inputs from dato_rng: odd shapes,
// strides, padding, Nq != Nk, single tokens, aliasing, the tiling paths, and the error paths.
// Also the null backend. Tolerances are max|got - ref| / max|ref| unless stated.
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu_ops.h" // white box: to run attention on both of its kernel sets
#include "rng.h"
#include "test_util.h"

static dato_rng rng;

static float* randn(size_t n, float scale) {
    float* x = malloc(n * sizeof(float) + 1);
    dato_rng_fill_normal(&rng, x, n);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

static float* zeros(size_t n) { return calloc(n + 1, sizeof(float)); }

// max|got - ref| / max|ref| against a double reference (the reference is not rounded first).
static double rel_err_d(const float* got, const double* ref, size_t n) {
    double m = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > m || d != d) m = d;
        if (fabs(ref[i]) > r) r = fabs(ref[i]);
    }
    return m / (r > 0 ? r : 1.0);
}

// ---- conv2d ------------------------------------------------------------------------------------

static void conv_ref(double* out, const float* x, const float* w, const float* b, int B, int ci, int h, int wd, int co,
                     int kh, int kw, int sh, int sw, int ph, int pw, int ho, int wo) {
    for (int n = 0; n < B; n++)
        for (int o = 0; o < co; o++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double acc = b ? b[o] : 0.0;
                    for (int c = 0; c < ci; c++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                int iy = oy * sh - ph + ky, ix = ox * sw - pw + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                acc += (double)x[((n * ci + c) * h + iy) * wd + ix] *
                                       w[((o * ci + c) * kh + ky) * kw + kx];
                            }
                    out[((n * co + o) * ho + oy) * wo + ox] = acc;
                }
}

// A conv with kernel kh x kw, stride (sh, sw) and padding (ph, pw) against conv_ref.
static void test_conv_rect(dato_backend* be, int B, int ci, int h, int wd, int co, int kh, int kw, int sh, int sw,
                           int ph, int pw, int bias) {
    int ho = (h + 2 * ph - kh) / sh + 1, wo = (wd + 2 * pw - kw) / sw + 1;
    size_t nx = (size_t)B * ci * h * wd, nw = (size_t)co * ci * kh * kw, no = (size_t)B * co * ho * wo;
    float *x = randn(nx, 1.0f), *w = randn(nw, 0.2f), *b = randn(co, 1.0f), *out = zeros(no);
    double* ref = calloc(no, sizeof(double));
    dato_tensor tx = dato_tensor_f32_4d(x, B, ci, h, wd), tw = dato_tensor_f32_4d(w, co, ci, kh, kw);
    dato_tensor tb = dato_tensor_f32_1d(b, co), to = dato_tensor_f32_4d(out, B, co, ho, wo);
    dato_error err = {{0}};
    dato_status st = be->ops->conv2d(be, &to, &tx, &tw, bias ? &tb : NULL, sh, sw, ph, pw, &err);
    conv_ref(ref, x, w, bias ? b : NULL, B, ci, h, wd, co, kh, kw, sh, sw, ph, pw, ho, wo);
    double e = rel_err_d(out, ref, no);
    printf("conv2d B%d %dx%dx%d -> %d k%dx%d s(%d,%d) p(%d,%d)%s: rel err %.2e\n", B, ci, h, wd, co, kh, kw, sh, sw,
           ph, pw, bias ? " +bias" : "", e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-5, "conv2d rel err %.3e", e);
    free(x), free(w), free(b), free(out), free(ref);
}

// A square conv (the UNet's and VAE's).
static void test_conv(dato_backend* be, int B, int ci, int h, int wd, int co, int k, int stride, int pad, int bias) {
    test_conv_rect(be, B, ci, h, wd, co, k, k, stride, stride, pad, pad, bias);
}

// ---- pools, spatial mean, relu ----------------------------------------------------------------------

// max (avg = 0) or average pool against a double reference; padding is -inf for max, and is
// counted in the divisor only when count_include_pad.
static void test_pool(dato_backend* be, int avg, int B, int c, int h, int w, int k, int stride, int pad,
                      int count_include_pad) {
    int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    size_t nx = (size_t)B * c * h * w, no = (size_t)B * c * ho * wo;
    float *x = randn(nx, 1.0f), *out = zeros(no);
    for (size_t i = 0; i < nx; i++) x[i] -= 3.0f; // all-negative windows: a zero pad would win a max
    double* ref = calloc(no, sizeof(double));
    for (int p = 0; p < B * c; p++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                double m = -INFINITY, sum = 0;
                int count = 0;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        double v = x[((size_t)p * h + iy) * w + ix];
                        m = v > m ? v : m;
                        sum += v;
                        count++;
                    }
                ref[((size_t)p * ho + oy) * wo + ox] = avg ? sum / (count_include_pad ? k * k : count) : m;
            }
    dato_tensor tx = dato_tensor_f32_4d(x, B, c, h, w), to = dato_tensor_f32_4d(out, B, c, ho, wo);
    dato_error err = {{0}};
    dato_status st = avg ? be->ops->avg_pool2d(be, &to, &tx, k, stride, pad, count_include_pad, &err)
                         : be->ops->max_pool2d(be, &to, &tx, k, stride, pad, &err);
    double e = rel_err_d(out, ref, no);
    printf("%s B%d %dx%dx%d k%d s%d p%d%s: rel err %.2e\n", avg ? "avg_pool2d" : "max_pool2d", B, c, h, w, k, stride,
           pad, avg ? (count_include_pad ? " incl. pad" : " excl. pad") : "", e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-6, "pool rel err %.3e", e);
    free(x), free(out), free(ref);
}

static void test_mean_hw(dato_backend* be, int B, int c, int h, int w) {
    size_t hw = (size_t)h * w;
    float *x = randn((size_t)B * c * hw, 1.0f), *out = zeros((size_t)B * c);
    double* ref = calloc((size_t)B * c, sizeof(double));
    for (size_t p = 0; p < (size_t)B * c; p++) {
        for (size_t i = 0; i < hw; i++) ref[p] += x[p * hw + i];
        ref[p] /= (double)hw;
    }
    dato_tensor tx = dato_tensor_f32_4d(x, B, c, h, w), to = dato_tensor_f32_2d(out, B, c);
    dato_error err = {{0}};
    dato_status st = be->ops->mean_hw(be, &to, &tx, &err);
    double e = rel_err_d(out, ref, (size_t)B * c);
    printf("mean_hw B%d %dx%dx%d: rel err %.2e\n", B, c, h, w, e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-6, "mean_hw rel err %.3e", e);
    free(x), free(out), free(ref);
}

// ---- linear ------------------------------------------------------------------------------------

static void test_linear(dato_backend* be, int m, int k, int n, int bias, int weight_4d) {
    float *x = randn((size_t)m * k, 1.0f), *w = randn((size_t)n * k, 0.3f), *b = randn(n, 1.0f);
    float* out = zeros((size_t)m * n);
    double* ref = calloc((size_t)m * n, sizeof(double));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double acc = bias ? b[j] : 0.0;
            for (int c = 0; c < k; c++) acc += (double)x[i * k + c] * w[j * k + c];
            ref[i * n + j] = acc;
        }
    // x as (2, m/2, k) when m is even: leading dims flatten
    dato_tensor tx = m % 2 == 0 ? dato_tensor_f32_3d(x, 2, m / 2, k) : dato_tensor_f32_2d(x, m, k);
    dato_tensor to = m % 2 == 0 ? dato_tensor_f32_3d(out, 2, m / 2, n) : dato_tensor_f32_2d(out, m, n);
    dato_tensor tw = weight_4d ? dato_tensor_f32_4d(w, n, k, 1, 1) : dato_tensor_f32_2d(w, n, k);
    dato_tensor tb = dato_tensor_f32_1d(b, n);
    dato_error err = {{0}};
    dato_status st = be->ops->linear(be, &to, &tx, &tw, bias ? &tb : NULL, &err);
    double e = rel_err_d(out, ref, (size_t)m * n);
    printf("linear %dx%d @ %dx%d^T%s%s: rel err %.2e\n", m, k, n, k, bias ? " +bias" : "",
           weight_4d ? " (4D weight)" : "", e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-5, "linear rel err %.3e", e);
    free(x), free(w), free(b), free(out), free(ref);
}

// ---- norms -------------------------------------------------------------------------------------

static void test_group_norm(dato_backend* be, int B, int c, int h, int w, int groups, int silu, int alias,
                            float offset) {
    size_t n = (size_t)B * c * h * w, hw = (size_t)h * w, cg = (size_t)c / groups;
    float *x = randn(n, 1.0f), *gamma = randn(c, 1.0f), *beta = randn(c, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += offset;
    double* ref = calloc(n, sizeof(double));
    for (int bg = 0; bg < B * groups; bg++) {
        const float* xg = x + bg * cg * hw;
        double mean = 0, var = 0;
        for (size_t i = 0; i < cg * hw; i++) mean += xg[i];
        mean /= (double)(cg * hw);
        for (size_t i = 0; i < cg * hw; i++) var += (xg[i] - mean) * (xg[i] - mean);
        var /= (double)(cg * hw);
        for (size_t i = 0; i < cg * hw; i++) {
            int ch = (int)(bg % groups * cg + i / hw);
            double y = (xg[i] - mean) / sqrt(var + 1e-5) * gamma[ch] + beta[ch];
            ref[bg * cg * hw + i] = silu ? y / (1.0 + exp(-y)) : y;
        }
    }
    float* out = alias ? x : zeros(n);
    dato_tensor tx = dato_tensor_f32_4d(x, B, c, h, w), to = dato_tensor_f32_4d(out, B, c, h, w);
    dato_tensor tg = dato_tensor_f32_1d(gamma, c), tb = dato_tensor_f32_1d(beta, c);
    dato_error err = {{0}};
    dato_status st = be->ops->group_norm(be, &to, &tx, &tg, &tb, groups, 1e-5f, silu, &err);
    double e = rel_err_d(out, ref, n);
    printf("group_norm (%d, %d, %d, %d) groups %d%s%s offset %g: rel err %.2e\n", B, c, h, w, groups,
           silu ? " +silu" : "", alias ? " in place" : "", (double)offset, e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-5, "group_norm rel err %.3e", e);
    if (!alias) free(out);
    free(x), free(gamma), free(beta), free(ref);
}

static void test_layer_norm(dato_backend* be, int rows, int c, int alias) {
    size_t n = (size_t)rows * c;
    float *x = randn(n, 2.0f), *gamma = randn(c, 1.0f), *beta = randn(c, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += 3.0f;
    double* ref = calloc(n, sizeof(double));
    for (int r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int i = 0; i < c; i++) mean += x[r * c + i];
        mean /= c;
        for (int i = 0; i < c; i++) var += (x[r * c + i] - mean) * (x[r * c + i] - mean);
        var /= c;
        for (int i = 0; i < c; i++) ref[r * c + i] = (x[r * c + i] - mean) / sqrt(var + 1e-5) * gamma[i] + beta[i];
    }
    float* out = alias ? x : zeros(n);
    dato_tensor tx = dato_tensor_f32_3d(x, 1, rows, c), to = dato_tensor_f32_3d(out, 1, rows, c);
    dato_tensor tg = dato_tensor_f32_1d(gamma, c), tb = dato_tensor_f32_1d(beta, c);
    dato_error err = {{0}};
    dato_status st = be->ops->layer_norm(be, &to, &tx, &tg, &tb, 1e-5f, &err);
    double e = rel_err_d(out, ref, n);
    printf("layer_norm (%d, %d)%s: rel err %.2e\n", rows, c, alias ? " in place" : "", e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-5, "layer_norm rel err %.3e", e);
    if (!alias) free(out);
    free(x), free(gamma), free(beta), free(ref);
}

// ---- activations ---------------------------------------------------------------------------------

typedef dato_status (*unary_op)(dato_backend*, dato_tensor*, const dato_tensor*, dato_error*);

static double silu_d(double x) { return x / (1.0 + exp(-x)); }
static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double quick_gelu_d(double x) { return x / (1.0 + exp(-1.702 * x)); }
static double relu_d(double x) { return x > 0 ? x : 0.0; }

// Elementwise: max |got - ref| / max(|ref|, 1) per element, in place when alias.
static void test_unary(dato_backend* be, const char* name, unary_op op, double (*ref_fn)(double), size_t n,
                       int alias) {
    float* x = randn(n, 4.0f);
    x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = -30.0f, x[4] = 30.0f; // saturation, no NaN
    double worst = 0;
    double* ref = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) ref[i] = ref_fn(x[i]);
    float* out = alias ? x : zeros(n);
    dato_tensor tx = dato_tensor_f32_2d(x, 1, (int64_t)n), to = dato_tensor_f32_2d(out, 1, (int64_t)n);
    dato_error err = {{0}};
    dato_status st = op(be, &to, &tx, &err);
    for (size_t i = 0; i < n; i++) {
        double d = fabs(out[i] - ref[i]) / fmax(fabs(ref[i]), 1.0);
        if (d > worst || d != d) worst = d;
    }
    printf("%s n=%zu%s: max err %.2e (relative, absolute below 1)\n", name, n, alias ? " in place" : "", worst);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(worst < 1e-6, "%s err %.3e", name, worst);
    if (!alias) free(out);
    free(x), free(ref);
}

static void test_geglu(dato_backend* be, int rows, int f) {
    float *x = randn((size_t)rows * 2 * f, 2.0f), *out = zeros((size_t)rows * f);
    double* ref = calloc((size_t)rows * f, sizeof(double));
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < f; i++) ref[r * f + i] = x[r * 2 * f + i] * gelu_d(x[r * 2 * f + f + i]);
    dato_tensor tx = dato_tensor_f32_3d(x, 1, rows, 2 * f), to = dato_tensor_f32_3d(out, 1, rows, f);
    dato_error err = {{0}};
    dato_status st = be->ops->geglu(be, &to, &tx, &err);
    double e = rel_err_d(out, ref, (size_t)rows * f);
    printf("geglu (%d, %d): rel err %.2e\n", rows, 2 * f, e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-6, "geglu rel err %.3e", e);
    free(x), free(out), free(ref);
}

static void test_softmax(dato_backend* be, int rows, int n, int alias) {
    float* x = randn((size_t)rows * n, 10.0f);
    double* ref = calloc((size_t)rows * n, sizeof(double));
    for (int r = 0; r < rows; r++) {
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) mx = fmax(mx, x[r * n + i]);
        for (int i = 0; i < n; i++) sum += exp(x[r * n + i] - mx);
        for (int i = 0; i < n; i++) ref[r * n + i] = exp(x[r * n + i] - mx) / sum;
    }
    float* out = alias ? x : zeros((size_t)rows * n);
    dato_tensor tx = dato_tensor_f32_2d(x, rows, n), to = dato_tensor_f32_2d(out, rows, n);
    dato_error err = {{0}};
    dato_status st = be->ops->softmax(be, &to, &tx, &err);
    double e = rel_err_d(out, ref, (size_t)rows * n);
    printf("softmax (%d, %d)%s: rel err %.2e\n", rows, n, alias ? " in place" : "", e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-6, "softmax rel err %.3e", e);
    if (!alias) free(out);
    free(x), free(ref);
}

// ---- attention -----------------------------------------------------------------------------------

static void attention_ref(double* out, const float* q, const float* k, const float* v, int B, int nq, int nk,
                          int heads, int d, double scale, int causal) {
    int c = heads * d;
    double* p = calloc((size_t)nk, sizeof(double));
    for (int n = 0; n < B; n++)
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < nq; i++) {
                const float* qi = q + ((size_t)n * nq + i) * c + h * d;
                double mx = -INFINITY, sum = 0;
                int nj = causal ? i + 1 : nk; // causal: keys 0..i
                for (int j = 0; j < nj; j++) {
                    const float* kj = k + ((size_t)n * nk + j) * c + h * d;
                    double s = 0;
                    for (int e = 0; e < d; e++) s += (double)qi[e] * kj[e];
                    p[j] = s * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < nj; j++) sum += (p[j] = exp(p[j] - mx));
                double* oi = out + ((size_t)n * nq + i) * c + h * d;
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (int j = 0; j < nj; j++) acc += p[j] * v[((size_t)n * nk + j) * c + h * d + e];
                    oi[e] = acc / sum;
                }
            }
    free(p);
}

static void test_attention(dato_backend* be, int B, int nq, int nk, int heads, int d, float qk_scale, int causal) {
    int c = heads * d;
    float *q = randn((size_t)B * nq * c, qk_scale), *k = randn((size_t)B * nk * c, qk_scale);
    float *v = randn((size_t)B * nk * c, 1.0f), *out = zeros((size_t)B * nq * c);
    double* ref = calloc((size_t)B * nq * c, sizeof(double));
    float scale = 1.0f / sqrtf((float)d);
    attention_ref(ref, q, k, v, B, nq, nk, heads, d, scale, causal);
    dato_tensor tq = dato_tensor_f32_3d(q, B, nq, c), tk = dato_tensor_f32_3d(k, B, nk, c);
    dato_tensor tv = dato_tensor_f32_3d(v, B, nk, c), to = dato_tensor_f32_3d(out, B, nq, c);
    dato_error err = {{0}};
    dato_status st = be->ops->attention(be, &to, &tq, &tk, &tv, heads, scale, causal, &err);
    double e = rel_err_d(out, ref, (size_t)B * nq * c);
    printf("attention%s B%d Nq %d Nk %d heads %d x %d (q, k x%g): rel err %.2e\n", causal ? " causal" : "", B, nq, nk,
           heads, d, (double)qk_scale, e);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(e < 1e-5, "attention rel err %.3e", e);
    free(q), free(k), free(v), free(out), free(ref);
}

// ---- layout and elementwise ------------------------------------------------------------------------

static void test_layout(dato_backend* be) {
    dato_error err = {{0}};
    int B = 2, c = 35, h = 7, w = 9, hw = h * w;
    size_t n = (size_t)B * c * hw;
    float *x = randn(n, 1.0f), *y = randn(n, 1.0f);

    // upsample: exact copies
    float* up = zeros(4 * n);
    dato_tensor tx = dato_tensor_f32_4d(x, B, c, h, w), tup = dato_tensor_f32_4d(up, B, c, 2 * h, 2 * w);
    CHECK(be->ops->upsample_nearest2x(be, &tup, &tx, &err) == DATO_OK, "%s", err.msg);
    double e = 0;
    for (int i = 0; i < B * c; i++)
        for (int oy = 0; oy < 2 * h; oy++)
            for (int ox = 0; ox < 2 * w; ox++)
                e = fmax(e, fabs(up[(i * 2 * h + oy) * 2 * w + ox] - x[(i * h + oy / 2) * w + ox / 2]));
    printf("upsample_nearest2x: max abs err %g\n", e);
    CHECK(e == 0, "upsample err %g", e);

    // concat: [x (B, 35), y2 (B, 4)] along channels
    float *y2 = randn((size_t)B * 4 * hw, 1.0f), *cat = zeros((size_t)B * (c + 4) * hw);
    dato_tensor ty2 = dato_tensor_f32_4d(y2, B, 4, h, w), tcat = dato_tensor_f32_4d(cat, B, c + 4, h, w);
    CHECK(be->ops->concat_channels(be, &tcat, &tx, &ty2, &err) == DATO_OK, "%s", err.msg);
    e = 0;
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < c + 4; ch++)
            for (int i = 0; i < hw; i++) {
                float want = ch < c ? x[(b * c + ch) * hw + i] : y2[(b * 4 + ch - c) * hw + i];
                e = fmax(e, fabs(cat[(b * (c + 4) + ch) * hw + i] - want));
            }
    printf("concat_channels: max abs err %g\n", e);
    CHECK(e == 0, "concat err %g", e);

    // tokens and back: exact permutations (C = 35 and H*W = 63 cross the 32-wide transpose tiles)
    float *tok = zeros(n), *back = zeros(n);
    dato_tensor ttok = dato_tensor_f32_3d(tok, B, hw, c), tback = dato_tensor_f32_4d(back, B, c, h, w);
    CHECK(be->ops->nchw_to_tokens(be, &ttok, &tx, &err) == DATO_OK, "%s", err.msg);
    CHECK(be->ops->tokens_to_nchw(be, &tback, &ttok, &err) == DATO_OK, "%s", err.msg);
    e = 0;
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < hw; i++) e = fmax(e, fabs(tok[((size_t)b * hw + i) * c + ch] - x[(b * c + ch) * hw + i]));
    e = fmax(e, test_max_abs_diff(back, x, n));
    printf("nchw_to_tokens / tokens_to_nchw: max abs err %g\n", e);
    CHECK(e == 0, "token permutation err %g", e);

    // add (exact in f32), axpby (two roundings: 1e-6 relative), both in place
    float* sum = zeros(n);
    double* ref = calloc(n, sizeof(double));
    dato_tensor ty = dato_tensor_f32_4d(y, B, c, h, w), tsum = dato_tensor_f32_4d(sum, B, c, h, w);
    CHECK(be->ops->add(be, &tsum, &tx, &ty, &err) == DATO_OK, "%s", err.msg);
    e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(sum[i] - (x[i] + y[i])));
    printf("add: max abs err %g\n", e);
    CHECK(e == 0, "add err %g", e);
    for (size_t i = 0; i < n; i++) ref[i] = 0.75 * x[i] - 1.25 * y[i];
    CHECK(be->ops->axpby(be, &tx, 0.75f, &tx, -1.25f, &ty, &err) == DATO_OK, "%s", err.msg); // out aliases a
    e = rel_err_d(x, ref, n);
    printf("axpby in place: rel err %.2e\n", e);
    CHECK(e < 1e-6, "axpby rel err %.3e", e);

    // copy and add_channel_bias
    float* cp = zeros(n);
    dato_tensor tcp = dato_tensor_f32_4d(cp, B, c, h, w);
    CHECK(be->ops->copy(be, &tcp, &ty, &err) == DATO_OK, "%s", err.msg);
    CHECK(test_max_abs_diff(cp, y, n) == 0, "copy differs");
    float* bias = randn((size_t)B * c, 1.0f);
    dato_tensor tbias = dato_tensor_f32_2d(bias, B, c);
    CHECK(be->ops->add_channel_bias(be, &tcp, &tbias, &err) == DATO_OK, "%s", err.msg);
    e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs(cp[i] - (y[i] + bias[i / hw])));
    printf("copy, add_channel_bias: max abs err %g\n", e);
    CHECK(e == 0, "add_channel_bias err %g", e);

    free(x), free(y), free(up), free(y2), free(cat), free(tok), free(back), free(sum), free(ref), free(cp), free(bias);
}

// ---- timestep embedding -------------------------------------------------------------------------

static void test_timestep_embedding(dato_backend* be) {
    // Reference values from diffusers' get_timestep_embedding in torch (f32, CPU) for
    // t = [981, 1, 500], dim 320, at indices 0, 1, 37, 159, 160, 161, 200, 319:
    // flip_sin_to_cos = 1, freq_shift = 0 (SD), then flip = 0, freq_shift = 1.
    static const int idx[8] = {0, 1, 37, 159, 160, 161, 200, 319};
    static const float want_sd[3][8] = {
        {0.679957211f, -0.798429191f, -0.938287616f, 0.994605899f, 0.73325181f, 0.60208869f, -0.652302742f, 0.10372588f},
        {0.540302336f, 0.586503804f, 0.992945611f, 1.0f, 0.841470957f, 0.809946477f, 0.099833414f, 0.00010592537f},
        {-0.883849263f, 0.702759087f, -0.965055048f, 0.998597801f, -0.467771798f, 0.711427927f, -0.262378544f, 0.0529379249f}};
    static const float want_shift[3][8] = {
        {0.73325181f, 0.831231713f, 0.931405663f, 0.0979427248f, 0.679957211f, -0.555926144f, -0.764972925f, 0.995192051f},
        {0.841470957f, 0.809746027f, 0.117000185f, 9.99999902e-05f, 0.540302336f, 0.586780548f, 0.995146692f, 1.0f},
        {-0.467771798f, 0.58159709f, 0.870330215f, 0.0499791615f, -0.883849263f, 0.81347698f, 0.553400874f, 0.998750269f}};
    float t[3] = {981.0f, 1.0f, 500.0f};
    dato_tensor tt = dato_tensor_f32_1d(t, 3);
    float out[3 * 320];
    dato_tensor to = dato_tensor_f32_2d(out, 3, 320);
    dato_error err = {{0}};
    for (int variant = 0; variant < 2; variant++) {
        int flip = variant == 0;
        float shift = variant == 0 ? 0.0f : 1.0f;
        CHECK(be->ops->timestep_embedding(be, &to, &tt, flip, shift, 10000.0f, &err) == DATO_OK, "%s", err.msg);
        double e_torch = 0, e_double = 0;
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < 8; i++)
                e_torch = fmax(e_torch, fabs(out[b * 320 + idx[i]] - (variant == 0 ? want_sd : want_shift)[b][i]));
            for (int i = 0; i < 160; i++) { // the double-precision formula
                double arg = t[b] * exp(-log(10000.0) * i / (160.0 - shift));
                double s = sin(arg), c = cos(arg);
                e_double = fmax(e_double, fabs(out[b * 320 + i] - (flip ? c : s)));
                e_double = fmax(e_double, fabs(out[b * 320 + 160 + i] - (flip ? s : c)));
            }
        }
        printf("timestep_embedding flip %d shift %g: max abs err %.2e vs torch f32, %.2e vs double\n", flip,
               (double)shift, e_torch, e_double);
        CHECK(e_torch < 5e-7, "timestep_embedding vs torch %.3e", e_torch);
        CHECK(e_double < 2e-4, "timestep_embedding vs double %.3e", e_double); // f32 arguments up to 981
    }
}

// ---- error paths -----------------------------------------------------------------------------------

static void expect_error(dato_status st, dato_status want, const dato_error* err, const char* needle) {
    CHECK(st == want, "status %d, want %d (%s)", (int)st, (int)want, err->msg);
    CHECK(strstr(err->msg, needle) != NULL, "message '%s' lacks '%s'", err->msg, needle);
}

static void test_errors(dato_backend* be) {
    float buf[4096] = {0};
    dato_error err = {{0}};
    dato_tensor x = dato_tensor_f32_4d(buf, 1, 16, 8, 8), w = dato_tensor_f32_4d(buf, 64, 32, 3, 3);
    dato_tensor out = dato_tensor_f32_4d(buf, 1, 64, 8, 8);
    expect_error(be->ops->conv2d(be, &out, &x, &w, NULL, 1, 1, 1, 1, &err), DATO_ERR_INVALID, &err,
                 "conv2d: weight (64, 32, 3, 3) does not match input channels 16");
    dato_tensor w_ok = dato_tensor_f32_4d(buf, 4, 16, 3, 3), out_bad = dato_tensor_f32_4d(buf, 1, 4, 7, 8);
    expect_error(be->ops->conv2d(be, &out_bad, &x, &w_ok, NULL, 1, 1, 1, 1, &err), DATO_ERR_INVALID, &err,
                 "expected (1, 4, 8, 8)");
    dato_tensor x16 = x;
    x16.dtype = DATO_F16;
    expect_error(be->ops->conv2d(be, &out, &x16, &w_ok, NULL, 1, 1, 1, 1, &err), DATO_ERR_UNSUPPORTED, &err, "conv2d: x is F16");
    expect_error(be->ops->conv2d(be, &out, NULL, &w_ok, NULL, 1, 1, 1, 1, &err), DATO_ERR_INVALID, &err, "conv2d: x is NULL");
    expect_error(be->ops->conv2d(be, &out, &x, &w_ok, NULL, 0, 1, 1, 1, &err), DATO_ERR_INVALID, &err, "stride (0, 1)");
    dato_tensor w_17 = dato_tensor_f32_4d(buf, 4, 16, 1, 7);
    expect_error(be->ops->conv2d(be, &out, &x, &w_17, NULL, 1, 1, 3, 0, &err), DATO_ERR_INVALID, &err,
                 "pad (3, 0) for kernel 1x7");
    dato_tensor pool_out = dato_tensor_f32_4d(buf, 1, 16, 4, 4);
    expect_error(be->ops->max_pool2d(be, &pool_out, &x, 3, 2, 0, &err), DATO_ERR_INVALID, &err,
                 "max_pool2d: out (1, 16, 4, 4), expected (1, 16, 3, 3)");
    expect_error(be->ops->avg_pool2d(be, &x, &x, 3, 1, 3, 0, &err), DATO_ERR_INVALID, &err,
                 "avg_pool2d: kernel 3, stride 1, pad 3");
    dato_tensor mean_bad = dato_tensor_f32_2d(buf, 1, 15);
    expect_error(be->ops->mean_hw(be, &mean_bad, &x, &err), DATO_ERR_INVALID, &err,
                 "mean_hw: out (1, 15) is not (B, C) of x (1, 16, 8, 8)");

    dato_tensor lx = dato_tensor_f32_2d(buf, 3, 10), lw = dato_tensor_f32_2d(buf, 5, 11), lo = dato_tensor_f32_2d(buf, 3, 5);
    expect_error(be->ops->linear(be, &lo, &lx, &lw, NULL, &err), DATO_ERR_INVALID, &err,
                 "linear: weight (5, 11) does not match input features 10");

    dato_tensor g = dato_tensor_f32_1d(buf, 16);
    expect_error(be->ops->group_norm(be, &x, &x, &g, &g, 5, 1e-5f, 0, &err), DATO_ERR_INVALID, &err,
                 "5 groups do not divide the 16 channels");
    dato_tensor g_short = dato_tensor_f32_1d(buf, 9);
    expect_error(be->ops->layer_norm(be, &lx, &lx, &g_short, &g_short, 1e-5f, &err), DATO_ERR_INVALID, &err,
                 "layer_norm: gamma (9) or beta (9) does not match the last dim 10");

    dato_tensor q = dato_tensor_f32_3d(buf, 2, 10, 12), k = dato_tensor_f32_3d(buf, 2, 7, 12);
    dato_tensor v_bad = dato_tensor_f32_3d(buf, 2, 8, 12), k_bad = dato_tensor_f32_3d(buf, 1, 7, 12);
    expect_error(be->ops->attention(be, &q, &q, &k, &k, 5, 1.0f, 0, &err), DATO_ERR_INVALID, &err,
                 "5 heads do not divide the 12 channels");
    expect_error(be->ops->attention(be, &q, &q, &k, &v_bad, 3, 1.0f, 0, &err), DATO_ERR_INVALID, &err,
                 "attention: v (2, 8, 12) does not match k (2, 7, 12)");
    expect_error(be->ops->attention(be, &q, &q, &k_bad, &k_bad, 3, 1.0f, 0, &err), DATO_ERR_INVALID, &err,
                 "attention: k (1, 7, 12) does not match q (2, 10, 12)");
    expect_error(be->ops->attention(be, &q, &q, &k, &k, 3, 1.0f, 1, &err), DATO_ERR_INVALID, &err,
                 "attention: causal needs as many keys as queries");

    float* wide = calloc(8192, sizeof(float));
    dato_tensor qw = dato_tensor_f32_3d(wide, 1, 1, 8192);
    expect_error(be->ops->attention(be, &qw, &qw, &qw, &qw, 1, 1.0f, 0, &err), DATO_ERR_UNSUPPORTED, &err,
                 "head dim 8192 of q (1, 1, 8192) is too large for the scratch");
    free(wide);

    dato_tensor gx = dato_tensor_f32_2d(buf, 3, 9), go = dato_tensor_f32_2d(buf, 3, 4);
    expect_error(be->ops->geglu(be, &go, &gx, &err), DATO_ERR_INVALID, &err, "geglu: out (3, 4) is not x (3, 9)");
    expect_error(be->ops->add(be, &lo, &lx, &lx, &err), DATO_ERR_INVALID, &err, "add: out (3, 5) does not match a (3, 10)");
    dato_tensor odd = dato_tensor_f32_2d(buf, 2, 7);
    float t[3] = {1, 2, 3};
    dato_tensor t2 = dato_tensor_f32_1d(t, 2), t3 = dato_tensor_f32_1d(t, 3);
    expect_error(be->ops->timestep_embedding(be, &odd, &t2, 1, 0.0f, 10000.0f, &err), DATO_ERR_INVALID, &err,
                 "dim 7 is not even");
    dato_tensor even = dato_tensor_f32_2d(buf, 2, 6);
    expect_error(be->ops->timestep_embedding(be, &even, &t3, 1, 0.0f, 10000.0f, &err), DATO_ERR_INVALID, &err,
                 "t holds 3 timesteps for 2 rows");
    dato_tensor small = dato_tensor_f32_4d(buf, 1, 2, 3, 3), up_bad = dato_tensor_f32_4d(buf, 1, 2, 6, 5);
    expect_error(be->ops->upsample_nearest2x(be, &up_bad, &small, &err), DATO_ERR_INVALID, &err,
                 "upsample_nearest2x: out (1, 2, 6, 5)");
}

// ---- the null backend and memory --------------------------------------------------------------------

static void test_null_and_memory(dato_backend* cpu) {
    dato_backend be;
    dato_backend_null_init(&be);
    CHECK(strcmp(be.name, "null") == 0, "name %s", be.name);
    CHECK(be.ops->alloc(&be, 1024) == NULL, "null alloc returned memory");
    // every op succeeds without touching data (NULL pointers here)
    dato_tensor t = dato_tensor_f32_4d(NULL, 2, 320, 64, 64), w = dato_tensor_f32_4d(NULL, 320, 320, 3, 3);
    dato_error err = {{0}};
    CHECK(be.ops->conv2d(&be, &t, &t, &w, NULL, 1, 1, 1, 1, &err) == DATO_OK, "null conv2d");
    CHECK(be.ops->max_pool2d(&be, &t, &t, 3, 2, 0, &err) == DATO_OK, "null max_pool2d");
    CHECK(be.ops->avg_pool2d(&be, &t, &t, 3, 1, 1, 0, &err) == DATO_OK, "null avg_pool2d");
    CHECK(be.ops->mean_hw(&be, &t, &t, &err) == DATO_OK, "null mean_hw");
    CHECK(be.ops->relu(&be, &t, &t, &err) == DATO_OK, "null relu");
    CHECK(be.ops->attention(&be, &t, &t, &t, &t, 8, 1.0f, 1, &err) == DATO_OK, "null attention");
    CHECK(be.ops->group_norm(&be, &t, &t, &t, &t, 32, 1e-5f, 1, &err) == DATO_OK, "null group_norm");
    CHECK(be.ops->timestep_embedding(&be, &t, NULL, 1, 0.0f, 10000.0f, &err) == DATO_OK, "null timestep_embedding");
    be.ops->synchronize(&be);
    dato_backend_destroy(&be);
    CHECK(be.ops == NULL, "destroy leaves be zeroed");

    void* p = cpu->ops->alloc(cpu, 1000);
    CHECK(p != NULL && (uintptr_t)p % 64 == 0, "cpu alloc %p not 64-byte aligned", p);
    char src[1000], dst[1000];
    memset(src, 7, sizeof src);
    cpu->ops->upload(cpu, p, src, sizeof src);
    cpu->ops->download(cpu, dst, p, sizeof dst);
    CHECK(memcmp(src, dst, sizeof src) == 0, "upload/download round trip");
    cpu->ops->free(cpu, p);
}

int main(void) {
    dato_rng_seed(&rng, 20240601);
    dato_backend be;
    dato_error err = {{0}};
    // 3 threads: more than the tests' smallest splits, so uneven blocks and idle threads occur
    if (dato_backend_cpu_init(&be, 3, &err) != DATO_OK) {
        printf("cpu init: %s\n", err.msg);
        return 1;
    }
    CHECK(strcmp(be.name, "cpu") == 0 && be.device == DATO_DEV_CPU, "cpu backend header");

    test_conv(&be, 2, 5, 7, 7, 6, 3, 1, 1, 1);    // SD conv, odd size
    test_conv(&be, 2, 5, 7, 7, 6, 3, 2, 1, 1);    // downsample, odd size
    test_conv(&be, 1, 4, 8, 8, 3, 3, 2, 1, 0);    // downsample, even size
    test_conv(&be, 2, 8, 5, 3, 4, 1, 1, 0, 1);    // 1x1: the direct GEMM path
    test_conv(&be, 1, 6, 9, 6, 5, 3, 1, 0, 1);    // valid conv
    test_conv(&be, 1, 3, 7, 9, 2, 1, 2, 0, 0);    // 1x1 stride 2: im2col path
    test_conv(&be, 1, 64, 95, 97, 8, 3, 1, 1, 1); // batch 1: the team over one band
    test_conv(&be, 1, 64, 260, 260, 4, 3, 1, 1, 1);  // padded input over the scratch: several bands of rows
    test_conv(&be, 1, 32, 400, 401, 3, 3, 2, 1, 0);  // several bands at stride 2
    test_conv(&be, 1, 1, 1, 1, 1, 3, 1, 1, 1);    // a single pixel
    // Inception's rectangular kernels and per-dimension padding
    test_conv_rect(&be, 2, 6, 9, 11, 5, 1, 7, 1, 1, 0, 3, 1);  // 1x7 pad (0, 3)
    test_conv_rect(&be, 2, 6, 11, 9, 5, 7, 1, 1, 1, 3, 0, 0);  // 7x1 pad (3, 0)
    test_conv_rect(&be, 1, 5, 8, 8, 4, 1, 3, 1, 1, 0, 1, 1);   // 1x3 pad (0, 1)
    test_conv_rect(&be, 1, 5, 8, 8, 4, 3, 1, 1, 1, 1, 0, 1);   // 3x1 pad (1, 0)
    test_conv_rect(&be, 2, 3, 15, 13, 4, 3, 3, 2, 2, 0, 0, 0); // 3x3 stride 2 valid (Conv2d_1a)
    test_conv_rect(&be, 1, 7, 9, 10, 6, 5, 5, 1, 1, 2, 2, 1);  // 5x5 pad 2 (branch5x5_2)
    test_conv_rect(&be, 1, 4, 9, 12, 3, 3, 5, 2, 1, 1, 2, 1);  // unequal strides and pads
    test_conv_rect(&be, 1, 40, 35, 35, 6, 1, 7, 1, 1, 0, 3, 1); // several im2col tiles with a 1x7 kernel

    test_pool(&be, 0, 2, 3, 9, 11, 3, 2, 0, 0); // Inception maxpool 3 s2
    test_pool(&be, 0, 1, 4, 8, 8, 3, 1, 1, 0);  // FIDInceptionE_2 max pool: padding is -inf
    test_pool(&be, 1, 2, 3, 7, 6, 3, 1, 1, 0);  // FIDInception avg pool excluding padding
    test_pool(&be, 1, 1, 3, 7, 6, 3, 1, 1, 1);  // torchvision avg pool including padding
    test_pool(&be, 1, 1, 2, 10, 9, 4, 3, 2, 0); // uneven windows, stride 3
    test_pool(&be, 0, 1, 1, 1, 1, 1, 1, 0, 0);  // a single pixel
    test_pool(&be, 0, 1, 200, 35, 35, 3, 1, 1, 0); // the threaded path
    test_mean_hw(&be, 2, 5, 8, 8);
    test_mean_hw(&be, 3, 700, 8, 8); // the threaded path
    test_mean_hw(&be, 1, 1, 1, 1);

    test_linear(&be, 6, 33, 17, 1, 0);
    test_linear(&be, 77, 64, 40, 0, 0);
    test_linear(&be, 5, 24, 3, 1, 1);
    test_linear(&be, 1, 1, 1, 0, 0);

    test_group_norm(&be, 2, 12, 5, 7, 3, 0, 0, 0.0f);
    test_group_norm(&be, 2, 12, 5, 7, 3, 1, 1, 0.0f);   // fused SiLU, in place
    test_group_norm(&be, 1, 12, 3, 3, 1, 0, 0, 0.0f);   // one group
    test_group_norm(&be, 2, 12, 4, 4, 12, 1, 0, 0.0f);  // a group per channel
    test_group_norm(&be, 1, 32, 40, 40, 4, 0, 0, 100.0f); // large mean: E[x^2] - E[x]^2 in f32 would fail
    test_layer_norm(&be, 37, 40, 0);
    test_layer_norm(&be, 5, 320, 1);

    test_unary(&be, "silu", be.ops->silu, silu_d, 1000, 0);
    test_unary(&be, "silu", be.ops->silu, silu_d, 40000, 1);
    test_unary(&be, "gelu", be.ops->gelu, gelu_d, 40000, 0);
    test_unary(&be, "quick_gelu", be.ops->quick_gelu, quick_gelu_d, 1000, 1);
    test_unary(&be, "relu", be.ops->relu, relu_d, 1000, 0);
    test_unary(&be, "relu", be.ops->relu, relu_d, 40000, 1);
    test_geglu(&be, 7, 37);
    test_softmax(&be, 5, 77, 0);
    test_softmax(&be, 3, 1000, 1);
    test_softmax(&be, 2, 1, 0);

    // attention on each kernel set this CPU can run: AVX-512 (if present), then the 8-float one
    cpu_backend* cpu = be.impl;
    cpu_isa best = cpu->isa;
    for (int avx512 = best >= CPU_ISA_AVX512; avx512 >= 0; avx512--) {
        cpu->isa = avx512 ? CPU_ISA_AVX512 : (best < CPU_ISA_AVX2 ? best : CPU_ISA_AVX2);
        printf("attention kernels: %s\n", avx512 ? "AVX-512" : "8-float (AVX2 or portable)");
        test_attention(&be, 2, 300, 600, 3, 40, 1.0f, 0);   // self-attention size class, several key blocks
        test_attention(&be, 2, 130, 77, 2, 20, 1.0f, 0);    // cross-attention, Nq != Nk, head dim not a multiple of 8
        test_attention(&be, 1, 1, 1, 2, 8, 1.0f, 0);        // a single token: out = v
        test_attention(&be, 1, 1, 5, 1, 3, 1.0f, 0);        // one query, tiny head
        test_attention(&be, 1, 40, 300, 1, 160, 1.0f, 0);   // SD mid-block head dim
        test_attention(&be, 2, 50, 290, 2, 16, 4.0f, 0);    // peaked softmax: the running max moves between blocks
        test_attention(&be, 1, 400, 40, 1, 2048, 0.1f, 0);  // head dim that shortens the chunks to fit the scratch
        test_attention(&be, 2, 77, 77, 4, 16, 1.0f, 1);     // CLIP text encoder: causal, one key block
        test_attention(&be, 2, 600, 600, 3, 40, 4.0f, 1);   // causal over several key blocks and chunks, peaked
        test_attention(&be, 1, 1, 1, 2, 8, 1.0f, 1);        // causal single token: out = v
        test_attention(&be, 1, 45, 45, 2, 12, 1.0f, 1);     // diagonal inside partial tiles
        test_attention(&be, 1, 300, 300, 1, 1024, 1.0f, 1); // causal with chunks shortened by the scratch
    }

    test_layout(&be);
    test_timestep_embedding(&be);
    test_errors(&be);
    test_null_and_memory(&be);

    dato_backend_destroy(&be);
    dato_backend_destroy(&be); // a second destroy is a no-op
    return test_summary();
}
