// conv2d on the CPU. A 1x1 stride-1 unpadded conv is one GEMM per image: out (Co, H*W) =
// w (Co, Ci) @ x (Ci, H*W). Any other conv unrolls a tile of output positions into the im2col
// scratch, col (Ci*kh*kw, n), and multiplies w (Co, Ci*kh*kw) @ col straight into out: the tile's
// output columns are the n positions [p0, p0 + n) of every out channel, so ldc = Ho*Wo.
// The tile size is set by the fixed scratch, so no op allocates. The whole op is one OpenMP
// region: the team fills the tile, then multiplies it (cpu_gemm_team), tile after tile.
#include "cpu_ops.h"

// Fills col (K = Ci*kh*kw, n) for the output positions [p0, p0 + n) of one image x (Ci, H, W).
// Row r = (ci*kh + ky)*kw + kx matches the memory order of w (Co, Ci, kh, kw). Called by every
// thread of a parallel region (an orphaned `omp for`, with its barrier).
static void im2col_tile(float* col, const float* x, int64_t ci_count, int64_t h, int64_t w, int kh, int kw,
                        int stride_h, int stride_w, int pad_h, int pad_w, int64_t wo, int64_t p0, int64_t n) {
    int64_t rows = ci_count * kh * kw;
    #pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t ci = r / (kh * kw);
        int ky = (int)(r / kw % kh), kx = (int)(r % kw);
        const float* xc = x + ci * h * w; // (H, W)
        float* dst = col + r * n;         // (n)
        // walk the tile one output row segment at a time
        for (int64_t p = p0; p < p0 + n;) {
            int64_t oy = p / wo, ox0 = p % wo;
            int64_t ox1 = wo < ox0 + (p0 + n - p) ? wo : ox0 + (p0 + n - p); // segment [ox0, ox1)
            float* d = dst + (p - p0);
            int64_t iy = oy * stride_h - pad_h + ky;
            if (iy < 0 || iy >= h) {
                memset(d, 0, (size_t)(ox1 - ox0) * sizeof(float));
            } else {
                const float* xr = xc + iy * w; // (W)
                // valid ox: 0 <= ox*stride_w - pad_w + kx < w
                int64_t lo = pad_w - kx > 0 ? (pad_w - kx + stride_w - 1) / stride_w : 0;
                int64_t hi = (w - 1 + pad_w - kx) >= 0 ? (w - 1 + pad_w - kx) / stride_w + 1 : 0;
                lo = lo < ox0 ? ox0 : (lo > ox1 ? ox1 : lo);
                hi = hi > ox1 ? ox1 : (hi < lo ? lo : hi);
                for (int64_t ox = ox0; ox < lo; ox++) d[ox - ox0] = 0.0f;
                if (stride_w == 1) {
                    if (hi > lo) memcpy(d + (lo - ox0), xr + (lo - pad_w + kx), (size_t)(hi - lo) * sizeof(float));
                } else {
                    for (int64_t ox = lo; ox < hi; ox++) d[ox - ox0] = xr[ox * stride_w - pad_w + kx];
                }
                for (int64_t ox = hi; ox < ox1; ox++) d[ox - ox0] = 0.0f;
            }
            p += ox1 - ox0;
        }
    }
}

dato_status cpu_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                       const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w, dato_error* err) {
    DATO_TRY(dato_op_check_conv2d(out, x, w, b, stride_h, stride_w, pad_h, pad_w, DATO_DEV_CPU, 0, err));
    int64_t batch = x->shape[0], ci = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t co = w->shape[0], kh = w->shape[2], kw = w->shape[3], ho = out->shape[2], wo = out->shape[3];
    if (batch == 0) return DATO_OK;

    const cpu_backend* cpu = be->impl;
    const float* xd = x->data;            // (B, Ci, H, W)
    const float* wt = w->data;            // (Co, Ci*kh*kw)
    const float* bd = b ? b->data : NULL; // (Co)
    float* od = out->data;                // (B, Co, Ho*Wo)
    int64_t kdim = ci * kh * kw, npos = ho * wo;
    int direct = kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
    int64_t tile = (int64_t)(cpu->col_floats / (size_t)kdim); // output positions per im2col tile
    if (!direct && tile < 1) {
        char sw[96];
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: weight %s needs %lld floats per im2col column, over the scratch",
                         dato_shape_str(w, sw, sizeof sw), (long long)kdim);
    }
    if (tile > npos) tile = npos;
    int64_t n_tiles = (npos + tile - 1) / tile;
    tile = (npos + n_tiles - 1) / n_tiles; // equal tiles: no thin last GEMM
    #pragma omp parallel num_threads(cpu->threads)
    {
        for (int64_t n = 0; n < batch; n++) {
            const float* xn = xd + n * ci * h * wd; // (Ci, H, W)
            float* on = od + n * co * npos;         // (Co, Ho*Wo)
            if (direct) {
                cpu_gemm_team((int)co, (int)npos, (int)ci, wt, (int)ci, xn, (int)npos, 0, on, (int)npos);
                continue;
            }
            for (int64_t p0 = 0; p0 < npos; p0 += tile) {
                int64_t cols = npos - p0 < tile ? npos - p0 : tile;
                im2col_tile(cpu->col, xn, ci, h, wd, (int)kh, (int)kw, stride_h, stride_w, pad_h, pad_w, wo, p0, cols);
                cpu_gemm_team((int)co, (int)cols, (int)kdim, wt, (int)kdim, cpu->col, (int)cols, 0, on + p0, (int)npos);
            }
        }
        if (bd) {
            #pragma omp for schedule(static)
            for (int64_t r = 0; r < batch * co; r++) {
                float* o = od + r * npos; // (Ho*Wo)
                float bias = bd[r % co];
                #pragma omp simd
                for (int64_t i = 0; i < npos; i++) o[i] += bias;
            }
        }
    }
    return DATO_OK;
}
