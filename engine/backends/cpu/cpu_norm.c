// group_norm and layer_norm on the CPU. Statistics are two-pass (mean, then the mean of squared
// deviations): float sums over chunks that vectorize, added up in double so that long groups
// (a VAE group is 16 channels x 512 x 512) lose no precision. out may alias x: each element is
// read by the statistics before the same thread overwrites it.
#include <math.h>

#include "cpu_ops.h"

// Elements summed in float before the running double sum takes them.
#define NORM_CHUNK 1024

// sum of x[0..n) and sum of (x - mean)^2 over x[0..n).
static double sum_f32(const float* x, int64_t n) {
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += NORM_CHUNK) {
        int64_t i1 = n - i0 < NORM_CHUNK ? n : i0 + NORM_CHUNK;
        float s = 0.0f;
        #pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) s += x[i];
        total += s;
    }
    return total;
}

static double sum_sq_dev_f32(const float* x, int64_t n, float mean) {
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += NORM_CHUNK) {
        int64_t i1 = n - i0 < NORM_CHUNK ? n : i0 + NORM_CHUNK;
        float s = 0.0f;
        #pragma omp simd reduction(+ : s)
        for (int64_t i = i0; i < i1; i++) s += (x[i] - mean) * (x[i] - mean);
        total += s;
    }
    return total;
}

// The statistics of one group (group_len floats): mean and 1 / sqrt(var + eps).
static void group_stats(const float* xg, int64_t group_len, float eps, float* mean, float* rstd) {
    *mean = (float)(sum_f32(xg, group_len) / (double)group_len);
    float var = (float)(sum_sq_dev_f32(xg, group_len, *mean) / (double)group_len);
    *rstd = 1.0f / sqrtf(var + eps);
}

// GroupNorm of one channel as x * scale + shift (cpu_scale_shift), from its group's statistics.
static void channel_scale_shift(float mean, float rstd, float gamma, float beta, float* scale, float* shift) {
    *scale = rstd * gamma;
    *shift = beta - mean * *scale;
}

dato_status cpu_group_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                           const dato_tensor* beta, int groups, float eps, int fuse_silu, dato_error* err) {
    DATO_TRY(dato_op_check_group_norm(out, x, gamma, beta, groups, DATO_DEV_CPU, err));
    int64_t batch = x->shape[0], c = x->shape[1];
    int64_t spatial = c > 0 && batch > 0 ? dato_tensor_numel(x) / (batch * c) : 0;
    int64_t group_channels = c / groups, group_len = group_channels * spatial;
    if (group_len == 0) return DATO_OK;

    const float* xd = x->data;  // (B, G, C/G, spatial)
    const float* gd = gamma->data; // (C)
    const float* bd = beta->data;  // (C)
    float* od = out->data;      // (B, G, C/G, spatial)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (batch * groups * group_len >= CPU_PARALLEL_MIN)
    for (int64_t bg = 0; bg < batch * groups; bg++) {
        const float* xg = xd + bg * group_len; // (C/G, spatial)
        float* og = od + bg * group_len;       // (C/G, spatial)
        int64_t c0 = bg % groups * group_channels;
        float mean, rstd, scale, shift;
        group_stats(xg, group_len, eps, &mean, &rstd);
        for (int64_t j = 0; j < group_channels; j++) {
            channel_scale_shift(mean, rstd, gd[c0 + j], bd[c0 + j], &scale, &shift);
            cpu_scale_shift(og + j * spatial, xg + j * spatial, spatial, scale, shift, fuse_silu);
        }
    }
    return DATO_OK;
}

void cpu_group_norm_scale_shift(const cpu_backend* cpu, const float* x, int64_t batch, int64_t c, int64_t spatial,
                                int groups, float eps, const float* gamma, const float* beta, float* scale,
                                float* shift) {
    int64_t group_channels = c / groups, group_len = group_channels * spatial;
    #pragma omp parallel for num_threads(cpu->threads) schedule(static) if (batch * groups * group_len >= CPU_PARALLEL_MIN)
    for (int64_t bg = 0; bg < batch * groups; bg++) {
        int64_t c0 = bg % groups * group_channels;
        float mean, rstd;
        group_stats(x + bg * group_len, group_len, eps, &mean, &rstd);
        for (int64_t j = 0; j < group_channels; j++)
            channel_scale_shift(mean, rstd, gamma[c0 + j], beta[c0 + j], scale + bg * group_channels + j,
                                shift + bg * group_channels + j);
    }
}

dato_status cpu_layer_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                           const dato_tensor* beta, float eps, dato_error* err) {
    DATO_TRY(dato_op_check_layer_norm(out, x, gamma, beta, DATO_DEV_CPU, err));
    int64_t c = x->shape[x->ndim - 1];
    if (c == 0) return DATO_OK;
    int64_t rows = dato_tensor_numel(x) / c;

    const float* xd = x->data;     // (rows, C)
    const float* gd = gamma->data; // (C)
    const float* bd = beta->data;  // (C)
    float* od = out->data;         // (rows, C)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (rows * c >= CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float* xr = xd + r * c; // (C)
        float* orow = od + r * c;     // (C)
        float mean = (float)(sum_f32(xr, c) / (double)c);
        float var = (float)(sum_sq_dev_f32(xr, c, mean) / (double)c);
        float rstd = 1.0f / sqrtf(var + eps);
        #pragma omp simd
        for (int64_t i = 0; i < c; i++) orow[i] = (xr[i] - mean) * rstd * gd[i] + bd[i];
    }
    return DATO_OK;
}
