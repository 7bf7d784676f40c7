// PyTorch's CPU generator and torch.randn. See torch_rng.h.
//
// Every float operation below is one IEEE operation, as written: the AVX2 kernel reproduces the
// fused multiply-adds that torch's build (GCC, -ffp-contract=fast) makes of avx_mathfun's separate
// multiplies and adds with explicit fmaf, and a product that must stay rounded never feeds an add
// that a compiler could fuse with it (GCC and clang, -O0 to -O3, -ffp-contract off, on and fast give
// the same bits).
#include "torch_rng.h"

#include <math.h>
#include <string.h>

// ---- mt19937 as at::mt19937 ---------------------------------------------------------------------

#define MT_M 397

void dato_torch_manual_seed(dato_torch_generator* g, uint64_t seed) {
    g->mt[0] = (uint32_t)seed;
    for (uint32_t j = 1; j < DATO_TORCH_MT_N; j++) g->mt[j] = 1812433253u * (g->mt[j - 1] ^ (g->mt[j - 1] >> 30)) + j;
    g->next = DATO_TORCH_MT_N;
    g->has_cached = 0;
    g->cached = 0.0;
}

static void mt_regenerate(uint32_t* mt) {
    for (int j = 0; j < DATO_TORCH_MT_N; j++) {
        uint32_t y = (mt[j] & 0x80000000u) | (mt[(j + 1) % DATO_TORCH_MT_N] & 0x7fffffffu);
        mt[j] = mt[(j + MT_M) % DATO_TORCH_MT_N] ^ (y >> 1) ^ (y & 1u ? 0x9908b0dfu : 0u);
    }
}

// One 32-bit draw (torch's generator->random()).
static uint32_t random_u32(dato_torch_generator* g) {
    if (g->next >= DATO_TORCH_MT_N) {
        mt_regenerate(g->mt);
        g->next = 0;
    }
    uint32_t y = g->mt[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

// uniform_real_distribution<float>(0, 1): 24 random bits.
static float uniform_f32(dato_torch_generator* g) { return (float)(random_u32(g) & 0xffffffu) * 0x1.0p-24f; }

// uniform_real_distribution<double>(0, 1): 53 bits of random64() = (first draw << 32) | second draw.
static double uniform_f64(dato_torch_generator* g) {
    uint64_t hi = random_u32(g);
    uint64_t lo = random_u32(g);
    return (double)(((hi << 32) | lo) & ((1ull << 53) - 1)) * 0x1.0p-53;
}

// ---- n < 16: at::normal_distribution<double>, the second sample cached ---------------------------

static double normal_f64(dato_torch_generator* g) {
    if (g->has_cached) {
        g->has_cached = 0;
        return g->cached;
    }
    double u1 = uniform_f64(g);
    double u2 = uniform_f64(g);
    double r = sqrt(-2.0 * log1p(-u2));
    double theta = 2.0 * M_PI * u1;
    g->cached = r * sin(theta);
    g->has_cached = 1;
    return r * cos(theta);
}

// ---- n >= 16: Box-Muller over 16 uniforms, d[0..8) = u1, d[8..16) = u2 ---------------------------

// avx_mathfun's log256_ps for one lane, x in (0, 1] (no zero, no denormal: the max with the smallest
// normal and the NaN mask of the original are no-ops there).
static float avx2_log(float x) {
    static const float p[9] = {7.0376836292E-2f,  -1.1514610310E-1f, 1.1676998740E-1f,
                               -1.2420140846E-1f, 1.4249322787E-1f,  -1.6668057665E-1f,
                               2.0000714765E-1f,  -2.4999993993E-1f, 3.3333331174E-1f};
    uint32_t bits;
    memcpy(&bits, &x, 4);
    float e = (float)((int32_t)(bits >> 23) - 0x7f);
    e = e + 1.0f;
    bits = (bits & ~0x7f800000u) | 0x3f000000u; // the mantissa with the exponent of 0.5: [0.5, 1)
    float m;
    memcpy(&m, &bits, 4);
    int below = m < 0.707106781186547524f; // then e -= 1 and m = 2m - 1, else m = m - 1
    float tmp = below ? m : 0.0f;
    m = m - 1.0f;
    e = e - (below ? 1.0f : 0.0f);
    m = m + tmp;
    float z = m * m;
    float y = p[0];
    for (int k = 1; k < 9; k++) y = fmaf(y, m, p[k]);
    y = y * m;
    float eq1 = e * -2.12194440e-4f;
    y = fmaf(y, z, eq1);
    y = fmaf(-z, 0.5f, y);
    m = m + y;
    return fmaf(e, 0.693359375f, m);
}

// avx_mathfun's sincos256_ps for one lane, x >= 0.
static void avx2_sincos(float x, float* s, float* c) {
    float y = x * 1.27323954473516f; // 4 / pi
    int32_t j = ((int32_t)y + 1) & ~1;
    y = (float)j;
    int sin_negative = (j & 4) != 0;
    int sin_poly = (j & 2) == 0; // the sine polynomial gives the sine (else the cosine one does)
    int cos_negative = (~(j - 2) & 4) != 0;
    x = fmaf(y, -0.78515625f, x); // extended-precision reduction by pi/4
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    float z = x * x;
    float yc = fmaf(2.443315711809948E-005f, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    float half_z = z * 0.5f;
    yc = fmaf(yc, z, -half_z);
    yc = yc + 1.0f;
    float ys = fmaf(-1.9515295891E-4f, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    // The original selects with masks and adds the unselected zero: kept for the sign of zero.
    float sin1 = sin_poly ? 0.0f : yc, sin2 = sin_poly ? ys : 0.0f;
    float sn = sin1 + sin2;
    float cs = (yc - sin1) + (ys - sin2);
    *s = sin_negative ? -sn : sn;
    *c = cos_negative ? -cs : cs;
}

// normal_fill_16_AVX2 with mean 0, std 1 (its final fmadd(n, 1, 0) only turns -0 into +0).
static void box_muller16_avx2(float* d) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float radius = sqrtf(-2.0f * avx2_log(u1));
        float theta = (float)(2.0 * M_PI) * d[j + 8];
        float s, c;
        avx2_sincos(theta, &s, &c);
        float n1 = radius * c;
        float n2 = radius * s;
        d[j] = n1 + 0.0f;
        d[j + 8] = n2 + 0.0f;
    }
}

// normal_fill_16 with mean 0, std 1: float log, cos and sin of the C library; theta rounded from double.
static void box_muller16_scalar(float* d) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = (float)(2.0 * M_PI * (double)d[j + 8]);
        float n1 = radius * cosf(theta);
        float n2 = radius * sinf(theta);
        d[j] = n1 + 0.0f;
        d[j + 8] = n2 + 0.0f;
    }
}

void dato_torch_randn(dato_torch_generator* g, dato_torch_kernel kernel, float* x, size_t n) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++) x[i] = (float)normal_f64(g);
        return;
    }
    void (*box_muller16)(float*) = kernel == DATO_TORCH_SCALAR ? box_muller16_scalar : box_muller16_avx2;
    for (size_t i = 0; i < n; i++) x[i] = uniform_f32(g);
    for (size_t i = 0; i + 16 <= n; i += 16) box_muller16(x + i);
    if (n % 16) { // the last 16 values again, from 16 fresh uniforms
        float* tail = x + n - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(g);
        box_muller16(tail);
    }
}

void dato_torch_randn_latents(uint64_t seed, dato_torch_kernel kernel, float* x, size_t n) {
    dato_torch_generator g;
    dato_torch_manual_seed(&g, seed);
    dato_torch_randn(&g, kernel, x, n);
}

dato_torch_kernel dato_torch_kernel_native(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !__builtin_cpu_supports("avx512f"))
        return DATO_TORCH_AVX2;
#endif
    return DATO_TORCH_SCALAR;
}
