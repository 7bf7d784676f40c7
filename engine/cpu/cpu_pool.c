// Pooling on the CPU: k x k max and average pools over NCHW planes, and the global spatial
// mean (Inception's pool_3). Each (image, channel) plane is independent: one loop over planes.
#include <math.h>

#include "cpu_ops.h"

// Checks a pool's tensors and parameters; writes the output size into ho, wo.
static dato_status check_pool(const char* op, const dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                              int64_t* ho, int64_t* wo, dato_error* err) {
    dato_status st;
    if ((st = cpu_check(op, "out", out, 4, err)) || (st = cpu_check(op, "x", x, 4, err))) return st;
    if (k < 1 || stride < 1 || pad < 0 || pad >= k)
        return dato_fail(err, DATO_ERR_INVALID, "%s: kernel %d, stride %d, pad %d (need k, stride >= 1, 0 <= pad < k)",
                         op, k, stride, pad);
    int64_t h = x->shape[2], w = x->shape[3];
    char sx[96], so[96];
    if (h + 2 * pad < k || w + 2 * pad < k)
        return dato_fail(err, DATO_ERR_INVALID, "%s: input %s is smaller than the %dx%d window", op,
                         dato_shape_str(x, sx, sizeof sx), k, k);
    *ho = (h + 2 * pad - k) / stride + 1;
    *wo = (w + 2 * pad - k) / stride + 1;
    if (out->shape[0] != x->shape[0] || out->shape[1] != x->shape[1] || out->shape[2] != *ho || out->shape[3] != *wo)
        return dato_fail(err, DATO_ERR_INVALID, "%s: out %s, expected (%lld, %lld, %lld, %lld) for input %s", op,
                         dato_shape_str(out, so, sizeof so), (long long)x->shape[0], (long long)x->shape[1],
                         (long long)*ho, (long long)*wo, dato_shape_str(x, sx, sizeof sx));
    return DATO_OK;
}

// The window of output index o along a dim of size n, clipped to the input: [lo, hi).
static inline void pool_window(int64_t o, int stride, int pad, int k, int64_t n, int64_t* lo, int64_t* hi) {
    int64_t start = o * stride - pad;
    *lo = start < 0 ? 0 : start;
    *hi = start + k > n ? n : start + k;
}

dato_status cpu_max_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                           dato_error* err) {
    int64_t ho, wo;
    DATO_TRY(check_pool("max_pool2d", out, x, k, stride, pad, &ho, &wo, err));
    int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
    const float* xd = x->data; // (B*C, H, W)
    float* od = out->data;     // (B*C, Ho, Wo)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (planes * ho * wo >= CPU_PARALLEL_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float* xp = xd + p * h * w; // (H, W)
        float* op = od + p * ho * wo;     // (Ho, Wo)
        for (int64_t oy = 0; oy < ho; oy++) {
            int64_t y0, y1;
            pool_window(oy, stride, pad, k, h, &y0, &y1);
            for (int64_t ox = 0; ox < wo; ox++) {
                int64_t x0, x1;
                pool_window(ox, stride, pad, k, w, &x0, &x1);
                float m = -INFINITY; // pad < k: every window holds at least one input
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) m = xp[iy * w + ix] > m ? xp[iy * w + ix] : m;
                op[oy * wo + ox] = m;
            }
        }
    }
    return DATO_OK;
}

dato_status cpu_avg_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                           int count_include_pad, dato_error* err) {
    int64_t ho, wo;
    DATO_TRY(check_pool("avg_pool2d", out, x, k, stride, pad, &ho, &wo, err));
    int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
    const float* xd = x->data; // (B*C, H, W)
    float* od = out->data;     // (B*C, Ho, Wo)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (planes * ho * wo >= CPU_PARALLEL_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float* xp = xd + p * h * w; // (H, W)
        float* op = od + p * ho * wo;     // (Ho, Wo)
        for (int64_t oy = 0; oy < ho; oy++) {
            int64_t y0, y1;
            pool_window(oy, stride, pad, k, h, &y0, &y1);
            for (int64_t ox = 0; ox < wo; ox++) {
                int64_t x0, x1;
                pool_window(ox, stride, pad, k, w, &x0, &x1);
                float sum = 0.0f;
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) sum += xp[iy * w + ix];
                // PyTorch counts padded positions up to the padded edge; windows never pass it here
                // because pad < k and Ho is floored, so k*k is the padded count.
                float count = count_include_pad ? (float)(k * k) : (float)((y1 - y0) * (x1 - x0));
                op[oy * wo + ox] = sum / count;
            }
        }
    }
    return DATO_OK;
}

dato_status cpu_mean_hw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    dato_status st;
    if ((st = cpu_check("mean_hw", "out", out, 2, err)) || (st = cpu_check("mean_hw", "x", x, 4, err))) return st;
    char sx[96], so[96];
    if (out->shape[0] != x->shape[0] || out->shape[1] != x->shape[1])
        return dato_fail(err, DATO_ERR_INVALID, "mean_hw: out %s is not (B, C) of x %s", dato_shape_str(out, so, sizeof so),
                         dato_shape_str(x, sx, sizeof sx));
    int64_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
    if (hw == 0) return dato_fail(err, DATO_ERR_INVALID, "mean_hw: x %s has no pixels", dato_shape_str(x, sx, sizeof sx));
    const float* xd = x->data; // (B*C, H*W)
    float* od = out->data;     // (B*C)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (planes * hw >= CPU_PARALLEL_MIN)
    for (int64_t p = 0; p < planes; p++) {
        double sum = 0.0; // pool_3 averages 64 values; double keeps it exact to f32 rounding
        for (int64_t i = 0; i < hw; i++) sum += xd[p * hw + i];
        od[p] = (float)(sum / (double)hw);
    }
    return DATO_OK;
}
