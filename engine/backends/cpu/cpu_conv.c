// conv2d on the CPU. A 1x1 stride-1 unpadded conv is one GEMM per image: out (Co, H*W) =
// w (Co, Ci) @ x (Ci, H*W). Any other conv unrolls output positions into the im2col scratch,
// col (Ci*kh*kw, n), and multiplies w (Co, Ci*kh*kw) @ col straight into out (the GEMM adds the
// bias). Two ways to share the work, chosen by shape, with the same bits (cpu_gemm.c):
// - one image per thread, when the batch divides among the threads and an image's columns fit a
//   thread's share of the scratch: no barrier between images (the default model's 14x14 convs);
// - otherwise the team fills a tile of output positions, then multiplies it, tile after tile
//   (SD's 64x64 convs, whose columns are tens of MB).
// The scratch is fixed, so no op allocates.
#include <omp.h>

#include "cpu_ops.h"

// Fills row r of col (K = Ci*kh*kw, n) for the output positions [p0, p0 + n) of one image
// x (Ci, H, W). Row r = (ci*kh + ky)*kw + kx matches the memory order of w (Co, Ci, kh, kw).
// The copies are inline loops, not memcpy: at 14x14 a segment is 14 floats, and a call per
// segment cost as much as the multiply-adds the column feeds.
static void im2col_row(float* restrict col, const float* restrict x, int64_t r, int64_t h, int64_t w, int kh, int kw,
                       int stride_h, int stride_w, int pad_h, int pad_w, int64_t wo, int64_t p0, int64_t n) {
    int64_t ci = r / (kh * kw);
    int ky = (int)(r / kw % kh), kx = (int)(r % kw);
    const float* xc = x + ci * h * w; // (H, W)
    float* dst = col + r * n;         // (n)
    // the output columns whose input column ox*stride_w - pad_w + kx lies in [0, w): [lo_all, hi_all)
    int64_t lo_all = pad_w - kx > 0 ? (pad_w - kx + stride_w - 1) / stride_w : 0;
    int64_t hi_all = (w - 1 + pad_w - kx) >= 0 ? (w - 1 + pad_w - kx) / stride_w + 1 : 0;
    // walk the tile one output row segment [ox0, ox1) at a time
    for (int64_t p = p0, oy = p0 / wo, ox0 = p0 % wo; p < p0 + n; oy++, ox0 = 0) {
        int64_t ox1 = wo < ox0 + (p0 + n - p) ? wo : ox0 + (p0 + n - p);
        float* d = dst + (p - p0); // d[ox - ox0] for ox in [ox0, ox1)
        int64_t iy = oy * stride_h - pad_h + ky;
        if (iy < 0 || iy >= h) {
            for (int64_t ox = ox0; ox < ox1; ox++) d[ox - ox0] = 0.0f;
        } else {
            const float* xr = xc + iy * w; // (W)
            int64_t shift = ox0 + kx - pad_w; // stride 1: d[e] reads input column e + shift
            int64_t lo = lo_all < ox0 ? ox0 : (lo_all > ox1 ? ox1 : lo_all);
            int64_t hi = hi_all > ox1 ? ox1 : (hi_all < lo ? lo : hi_all);
            for (int64_t e = 0; e < lo - ox0; e++) d[e] = 0.0f;
            if (stride_w == 1)
                for (int64_t e = lo - ox0; e < hi - ox0; e++) d[e] = xr[e + shift];
            else
                for (int64_t e = lo - ox0; e < hi - ox0; e++) d[e] = xr[(e + ox0) * stride_w + kx - pad_w];
            for (int64_t e = hi - ox0; e < ox1 - ox0; e++) d[e] = 0.0f;
        }
        p += ox1 - ox0;
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
    int threads = cpu->threads;
    size_t share = cpu->col_floats / (size_t)threads; // one thread's part of the scratch
    int per_image = (direct || (size_t)(kdim * npos) <= share) && (batch % threads == 0 || batch >= 4 * threads);
    int64_t tile = (int64_t)(cpu->col_floats / (size_t)kdim); // output positions per team im2col tile
    if (!direct && tile < 1) {
        char sw[96];
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: weight %s needs %lld floats per im2col column, over the scratch",
                         dato_shape_str(w, sw, sizeof sw), (long long)kdim);
    }
    if (tile > npos) tile = npos;
    int64_t n_tiles = (npos + tile - 1) / tile;
    tile = (npos + n_tiles - 1) / n_tiles; // equal tiles: no thin last GEMM
    cpu_gemm_args g = {.m = (int)co, .k = (int)kdim, .a = wt, .lda = (int)kdim, .ldc = (int)npos, .row_bias = bd};
    #pragma omp parallel num_threads(threads) firstprivate(g)
    {
        if (per_image) {
            float* col = cpu->col + (size_t)omp_get_thread_num() * share; // (K, Ho*Wo)
            #pragma omp for schedule(static)
            for (int64_t n = 0; n < batch; n++) {
                const float* xn = xd + n * ci * h * wd; // (Ci, H, W)
                if (!direct)
                    for (int64_t r = 0; r < kdim; r++)
                        im2col_row(col, xn, r, h, wd, (int)kh, (int)kw, stride_h, stride_w, pad_h, pad_w, wo, 0, npos);
                g.n = (int)npos, g.b = direct ? xn : col, g.ldb = (int)npos, g.c = od + n * co * npos;
                cpu_gemm_one(cpu, &g);
            }
        } else {
            for (int64_t n = 0; n < batch; n++) {
                const float* xn = xd + n * ci * h * wd; // (Ci, H, W)
                for (int64_t p0 = 0; p0 < npos; p0 += direct ? npos : tile) {
                    int64_t cols = direct ? npos : (npos - p0 < tile ? npos - p0 : tile);
                    if (!direct) {
                        #pragma omp for schedule(static)
                        for (int64_t r = 0; r < kdim; r++)
                            im2col_row(cpu->col, xn, r, h, wd, (int)kh, (int)kw, stride_h, stride_w, pad_h, pad_w, wo,
                                       p0, cols);
                    }
                    g.n = (int)cols, g.b = direct ? xn : cpu->col, g.ldb = (int)cols;
                    g.c = od + n * co * npos + p0;
                    cpu_gemm_team(cpu, &g);
                }
            }
        }
    }
    return DATO_OK;
}
