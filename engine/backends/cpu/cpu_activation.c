// Elementwise activations and the last-dim softmax on the CPU. out may alias x in all of them
// except geglu (whose out is half the size of x).
#include <math.h>

#include "cpu_ops.h"

dato_status cpu_silu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_unary("silu", out, x, DATO_DEV_CPU, err));
    const float* xd = x->data; // (n)
    float* od = out->data;     // (n)
    int64_t n = dato_tensor_numel(x);
    #pragma omp parallel for simd num_threads(cpu_threads(be)) schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) od[i] = xd[i] / (1.0f + cpu_expf(-xd[i]));
    return DATO_OK;
}

dato_status cpu_relu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_unary("relu", out, x, DATO_DEV_CPU, err));
    const float* xd = x->data; // (n)
    float* od = out->data;     // (n)
    int64_t n = dato_tensor_numel(x);
    #pragma omp parallel for simd num_threads(cpu_threads(be)) schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) od[i] = xd[i] > 0.0f ? xd[i] : 0.0f;
    return DATO_OK;
}

dato_status cpu_gelu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_unary("gelu", out, x, DATO_DEV_CPU, err));
    const float* xd = x->data; // (n)
    float* od = out->data;     // (n)
    int64_t n = dato_tensor_numel(x);
    // libm's erff (scalar): GELU runs in the text encoders, off the denoising loop, where the
    // tail accuracy of 1 + erf matters more than speed (GEGLU below takes cpu_erff).
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) od[i] = 0.5f * xd[i] * (1.0f + erff(xd[i] * (float)M_SQRT1_2));
    return DATO_OK;
}

dato_status cpu_quick_gelu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_unary("quick_gelu", out, x, DATO_DEV_CPU, err));
    const float* xd = x->data; // (n)
    float* od = out->data;     // (n)
    int64_t n = dato_tensor_numel(x);
    #pragma omp parallel for simd num_threads(cpu_threads(be)) schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) od[i] = xd[i] / (1.0f + cpu_expf(-1.702f * xd[i]));
    return DATO_OK;
}

dato_status cpu_geglu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_geglu(out, x, DATO_DEV_CPU, err));
    int64_t two_f = x->shape[x->ndim - 1], f = two_f / 2;
    if (f == 0) return DATO_OK;
    int64_t rows = dato_tensor_numel(out) / f;
    const float* xd = x->data; // (rows, 2F): [hidden, gate]
    float* od = out->data;     // (rows, F)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (rows * f >= CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float* hidden = xd + r * two_f; // (F)
        cpu_geglu_row(od + r * f, hidden, hidden + f, f);
    }
    return DATO_OK;
}

dato_status cpu_softmax(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_unary("softmax", out, x, DATO_DEV_CPU, err));
    int64_t n = x->shape[x->ndim - 1];
    if (n == 0) return DATO_OK;
    int64_t rows = dato_tensor_numel(x) / n;
    const float* xd = x->data; // (rows, N)
    float* od = out->data;     // (rows, N)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (rows * n >= CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float* xr = xd + r * n; // (N)
        float* orow = od + r * n;     // (N)
        float mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) mx = xr[i] > mx ? xr[i] : mx;
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < n; i++) {
            orow[i] = cpu_expf(xr[i] - mx);
            sum += orow[i];
        }
        float inv = 1.0f / sum;
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) orow[i] *= inv;
    }
    return DATO_OK;
}
