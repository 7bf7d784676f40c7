// Layout changes, elementwise arithmetic and the timestep embedding on the CPU.
#include <math.h>

#include "cpu_ops.h"

// Side of the square tiles of the NCHW <-> tokens transposes (two 32x32 float tiles fit in L1).
#define TRANSPOSE_TILE 32

dato_status cpu_upsample_nearest2x(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_upsample_nearest2x(out, x, DATO_DEV_CPU, err));
    int64_t h = x->shape[2], w = x->shape[3];
    int64_t rows = x->shape[0] * x->shape[1] * h; // input rows over (B, C, H)
    const float* xd = x->data; // (rows, W)
    float* od = out->data;     // (rows, 2, 2W)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (rows * w >= CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float* xr = xd + r * w; // (W)
        float* o0 = od + r * 4 * w;   // (2W) output row 2y
        float* o1 = o0 + 2 * w;       // (2W) output row 2y + 1
        for (int64_t i = 0; i < w; i++) o0[2 * i] = o0[2 * i + 1] = xr[i];
        memcpy(o1, o0, (size_t)(2 * w) * sizeof(float));
    }
    return DATO_OK;
}

dato_status cpu_concat_channels(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                dato_error* err) {
    DATO_TRY(dato_op_check_concat_channels(out, a, b, DATO_DEV_CPU, err));
    int64_t batch = a->shape[0], ca = a->shape[1], cb = b->shape[1], hw = a->shape[2] * a->shape[3];
    const float* ad = a->data; // (B, Ca, H*W)
    const float* bd = b->data; // (B, Cb, H*W)
    float* od = out->data;     // (B, Ca + Cb, H*W)
    // one task per (image, source) pair; memcpy is memory-bound, two threads saturate it
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (batch * (ca + cb) * hw >= CPU_PARALLEL_MIN)
    for (int64_t t = 0; t < 2 * batch; t++) {
        int64_t n = t / 2;
        float* o = od + n * (ca + cb) * hw;
        if (t % 2 == 0)
            memcpy(o, ad + n * ca * hw, (size_t)(ca * hw) * sizeof(float));
        else
            memcpy(o + ca * hw, bd + n * cb * hw, (size_t)(cb * hw) * sizeof(float));
    }
    return DATO_OK;
}

// dst (B, cols, rows) = src (B, rows, cols) transposed per image, in square tiles.
static void transpose_batched(float* dst, const float* src, int64_t batch, int64_t rows, int64_t cols, int threads) {
    int64_t row_tiles = (rows + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
    #pragma omp parallel for num_threads(threads) schedule(static) if (batch * rows * cols >= CPU_PARALLEL_MIN)
    for (int64_t t = 0; t < batch * row_tiles; t++) {
        int64_t n = t / row_tiles, r0 = t % row_tiles * TRANSPOSE_TILE;
        int64_t r1 = rows - r0 < TRANSPOSE_TILE ? rows : r0 + TRANSPOSE_TILE;
        const float* s = src + n * rows * cols; // (rows, cols)
        float* d = dst + n * rows * cols;       // (cols, rows)
        for (int64_t c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
            int64_t c1 = cols - c0 < TRANSPOSE_TILE ? cols : c0 + TRANSPOSE_TILE;
            for (int64_t c = c0; c < c1; c++)
                for (int64_t r = r0; r < r1; r++) d[c * rows + r] = s[r * cols + c];
        }
    }
}

dato_status cpu_nchw_to_tokens(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_nchw_to_tokens(out, x, DATO_DEV_CPU, err));
    int64_t batch = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    transpose_batched(out->data, x->data, batch, c, hw, cpu_threads(be));
    return DATO_OK;
}

dato_status cpu_tokens_to_nchw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    DATO_TRY(dato_op_check_tokens_to_nchw(out, x, DATO_DEV_CPU, err));
    int64_t batch = out->shape[0], c = out->shape[1], hw = out->shape[2] * out->shape[3];
    transpose_batched(out->data, x->data, batch, hw, c, cpu_threads(be));
    return DATO_OK;
}

// out = alpha * a + beta * b for add and axpby; op names the caller in errors. Elementwise,
// so out may alias a or b.
static dato_status lincomb(dato_backend* be, const char* op, dato_tensor* out, float alpha, const dato_tensor* a,
                           float beta, const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_lincomb(op, out, a, b, DATO_DEV_CPU, err));
    const float* ad = a->data; // (n)
    const float* bd = b->data; // (n)
    float* od = out->data;     // (n)
    int64_t n = dato_tensor_numel(a);
    // with alpha = beta = 1 this is exactly a + b: multiplying by 1 is exact
    #pragma omp parallel for simd num_threads(cpu_threads(be)) schedule(static) if (n >= CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) od[i] = alpha * ad[i] + beta * bd[i];
    return DATO_OK;
}

dato_status cpu_add(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b, dato_error* err) {
    return lincomb(be, "add", out, 1.0f, a, 1.0f, b, err);
}

dato_status cpu_axpby(dato_backend* be, dato_tensor* out, float alpha, const dato_tensor* a, float beta,
                      const dato_tensor* b, dato_error* err) {
    return lincomb(be, "axpby", out, alpha, a, beta, b, err);
}

dato_status cpu_add_channel_bias(dato_backend* be, dato_tensor* x, const dato_tensor* v, dato_error* err) {
    DATO_TRY(dato_op_check_add_channel_bias(x, v, DATO_DEV_CPU, err));
    int64_t batch = x->shape[0], c = x->shape[1], hw = x->shape[2] * x->shape[3];
    float* xd = x->data;       // (B*C, H*W)
    const float* vd = v->data; // (B*C)
    #pragma omp parallel for num_threads(cpu_threads(be)) schedule(static) if (batch * c * hw >= CPU_PARALLEL_MIN)
    for (int64_t r = 0; r < batch * c; r++) {
        float* xr = xd + r * hw; // (H*W)
        float bias = vd[r];
        #pragma omp simd
        for (int64_t i = 0; i < hw; i++) xr[i] += bias;
    }
    return DATO_OK;
}

dato_status cpu_copy(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    (void)be;
    DATO_TRY(dato_op_check_unary("copy", out, x, DATO_DEV_CPU, err));
    if (out->data != x->data) memmove(out->data, x->data, dato_tensor_nbytes(x));
    return DATO_OK;
}

dato_status cpu_timestep_embedding(dato_backend* be, dato_tensor* out, const dato_tensor* t, int flip_sin_to_cos,
                                   float freq_shift, float max_period, dato_error* err) {
    (void)be;
    DATO_TRY(dato_op_check_timestep_embedding(out, t, freq_shift, max_period, DATO_DEV_CPU, err));
    int64_t batch = out->shape[0], dim = out->shape[1], half = dim / 2;
    const float* td = t->data; // (B)
    // As torch computes it in diffusers' get_timestep_embedding: the Python-double scalars
    // -ln(max_period) and (half - freq_shift) become f32, then every step is f32.
    float neg_log_period = (float)-log((double)max_period);
    float denom = (float)((double)half - (double)freq_shift);
    float* od = out->data; // (B, dim)
    for (int64_t n = 0; n < batch; n++) {
        float* sin_half = od + n * dim + (flip_sin_to_cos ? half : 0); // (half)
        float* cos_half = od + n * dim + (flip_sin_to_cos ? 0 : half); // (half)
        for (int64_t i = 0; i < half; i++) {
            float exponent = neg_log_period * (float)i / denom;
            float arg = td[n] * expf(exponent);
            sin_half[i] = sinf(arg);
            cos_half[i] = cosf(arg);
        }
    }
    return DATO_OK;
}
