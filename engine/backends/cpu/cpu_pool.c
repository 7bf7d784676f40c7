// Pooling on the CPU: k x k max and average pools over NCHW planes, and the global spatial
// mean (Inception's pool_3). Each (image, channel) plane is independent: one loop over planes.
#include <math.h>

#include "cpu_ops.h"

// The window of output index o along a dim of size n, clipped to the input: [lo, hi).
static inline void pool_window(int64_t o, int stride, int pad, int k, int64_t n, int64_t* lo, int64_t* hi) {
    int64_t start = o * stride - pad;
    *lo = start < 0 ? 0 : start;
    *hi = start + k > n ? n : start + k;
}

// out (B*C, Ho, Wo) = max (is_max) or mean over each k x k window of x (B*C, H, W), the window
// clipped to the input, after op's argument check. The mean divides by k*k when count_include_pad,
// else by the inputs inside: PyTorch counts padded positions up to the padded edge, and windows
// never pass it here because pad < k and Ho is floored, so k*k is the padded count.
static dato_status pool2d(dato_backend* be, const char* op, dato_tensor* out, const dato_tensor* x, int k, int stride,
                          int pad, int is_max, int count_include_pad, dato_error* err) {
    DATO_TRY(dato_op_check_pool2d(op, out, x, k, stride, pad, DATO_DEV_CPU, err));
    int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3], ho = out->shape[2], wo = out->shape[3];
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
                float acc = is_max ? -INFINITY : 0.0f; // pad < k: every window holds at least one input
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) {
                        float v = xp[iy * w + ix];
                        acc = is_max ? (v > acc ? v : acc) : acc + v;
                    }
                if (!is_max) acc /= count_include_pad ? (float)(k * k) : (float)((y1 - y0) * (x1 - x0));
                op[oy * wo + ox] = acc;
            }
        }
    }
    return DATO_OK;
}

dato_status cpu_max_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                           dato_error* err) {
    return pool2d(be, "max_pool2d", out, x, k, stride, pad, 1, 0, err);
}

dato_status cpu_avg_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                           int count_include_pad, dato_error* err) {
    return pool2d(be, "avg_pool2d", out, x, k, stride, pad, 0, count_include_pad, err);
}

dato_status cpu_mean_hw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_mean_hw(out, x, DATO_DEV_CPU, err));
    int64_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
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
