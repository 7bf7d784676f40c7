// conv2d on the CPU, as GEMMs: out (Co, Ho*Wo) = w (Co, Ci*kh*kw) @ im2col(x) per image, the bias
// added by the GEMM. A 1x1 stride-1 unpadded conv multiplies x (Ci, H*W) itself. Any other conv
// never writes its im2col matrix: it copies a band of input rows, zero-padded, into the scratch,
// and the GEMM gathers its panels of im2col(x) straight from that copy through two offset
// tables (B[r][q] = band[row_offset[r] + col_offset[q]], cpu_gemm.c). The copy is the input's
// size, not kh*kw times it, and needs no bounds checks.
//
// Two ways to share the work, chosen by shape, with the same bits (cpu_gemm.c):
// - one image per thread, when the batch divides among the threads and an image's padded copy
//   fits a thread's share of the scratch: no barrier between images;
// - otherwise the team copies a band of output rows' inputs, then multiplies it, band after band.
// The scratch is fixed, so no op allocates.
#include <omp.h>

#include "cpu_ops.h"

// One conv's geometry and the band size that fits the scratch.
typedef struct {
    int64_t ci, h, w, kh, kw, sh, sw, ph, pw, ho, wo;
    int64_t wp;        // padded band width: W + 2 pw
    int64_t band_rows; // output rows per band
    int64_t hb;        // input rows per band: (band_rows - 1) * sh + kh
} conv_geom;

// Copies input rows [iy0, iy0 + hb) of channels [c0, c1) of x (Ci, H, W) into band (Ci, hb, Wp),
// zero outside the image (rows < 0 or >= H, and pw columns on each side).
static void pad_band(float* band, const float* x, const conv_geom* q, int64_t c0, int64_t c1, int64_t iy0) {
    for (int64_t c = c0; c < c1; c++)
        for (int64_t r = 0; r < q->hb; r++) {
            float* dst = band + (c * q->hb + r) * q->wp; // (Wp)
            int64_t iy = iy0 + r;
            if (iy < 0 || iy >= q->h) {
                for (int64_t i = 0; i < q->wp; i++) dst[i] = 0.0f;
                continue;
            }
            const float* src = x + (c * q->h + iy) * q->w; // (W)
            for (int64_t i = 0; i < q->pw; i++) dst[i] = 0.0f;
            for (int64_t i = 0; i < q->w; i++) dst[q->pw + i] = src[i];
            for (int64_t i = q->pw + q->w; i < q->wp; i++) dst[i] = 0.0f;
        }
}

// The offset tables of a band: row r = (ci*kh + ky)*kw + kx of im2col starts at
// ci*hb*Wp + ky*Wp + kx; output position q = oy*Wo + ox of the band at (oy*sh)*Wp + ox*sw.
// Positions past the band's end (up to a whole panel) get offset 0, a valid address.
static void fill_offsets(int32_t* row_offset, int32_t* col_offset, int64_t n_cols, const conv_geom* q) {
    for (int64_t c = 0; c < q->ci; c++)
        for (int64_t ky = 0; ky < q->kh; ky++)
            for (int64_t kx = 0; kx < q->kw; kx++)
                row_offset[(c * q->kh + ky) * q->kw + kx] = (int32_t)(c * q->hb * q->wp + ky * q->wp + kx);
    for (int64_t i = 0; i < n_cols; i++)
        col_offset[i] = i < q->band_rows * q->wo ? (int32_t)(i / q->wo * q->sh * q->wp + i % q->wo * q->sw) : 0;
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
    int threads = cpu->threads;
    int divides = batch % threads == 0 || batch >= 4 * threads; // one image per thread keeps every thread busy
    cpu_gemm_args g = {.m = (int)co, .k = (int)kdim, .a = wt, .lda = (int)kdim, .ldc = (int)npos, .row_bias = bd};

    if (kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0) {
        g.n = (int)npos, g.ldb = (int)npos;
        #pragma omp parallel num_threads(threads) firstprivate(g)
        for (int64_t n = 0; n < batch; n++) {
            g.b = xd + n * ci * h * wd, g.c = od + n * co * npos; // (Ci, H*W), (Co, H*W)
            if (divides) {
                #pragma omp single nowait // one image per thread, each whole
                cpu_gemm_one(cpu, &g);
            } else {
                cpu_gemm_team(cpu, &g);
            }
        }
        return DATO_OK;
    }

    // The scratch: the offset tables, then one band per thread (one image each) or one for the team.
    conv_geom q = {ci, h, wd, kh, kw, stride_h, stride_w, pad_h, pad_w, ho, wo, wd + 2 * pad_w, ho, 0};
    size_t table_floats = ((size_t)kdim + (size_t)npos + CPU_GEMM_NR + 15) / 16 * 16; // int32s, in floats
    size_t band_floats_max = cpu->scratch_floats > table_floats ? cpu->scratch_floats - table_floats : 0;
    size_t per_row = (size_t)(ci * stride_h * q.wp); // floats per more output row of a band
    size_t first_row = (size_t)(ci * kh * q.wp);     // floats of a one-row band
    int per_image = divides && first_row + (size_t)(ho - 1) * per_row <= band_floats_max / (size_t)threads;
    size_t share = per_image ? band_floats_max / (size_t)threads : band_floats_max;
    if (first_row > share) {
        char sw[96];
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: weight %s on a %lldx%lld input needs %zu floats per "
                         "output row, over the scratch", dato_shape_str(w, sw, sizeof sw), (long long)h, (long long)wd, first_row);
    }
    q.band_rows = per_image ? ho : 1 + (int64_t)((share - first_row) / per_row);
    if (q.band_rows > ho) q.band_rows = ho;
    int64_t n_bands = (ho + q.band_rows - 1) / q.band_rows;
    q.band_rows = (ho + n_bands - 1) / n_bands; // equal bands: no thin last GEMM
    q.hb = (q.band_rows - 1) * stride_h + kh;
    int32_t* row_offset = (int32_t*)cpu->scratch;    // (K)
    int32_t* col_offset = row_offset + kdim;     // (band positions rounded up to a panel)
    float* bands = cpu->scratch + table_floats;      // (threads or 1, share)
    fill_offsets(row_offset, col_offset, (q.band_rows * wo + CPU_GEMM_NR - 1) / CPU_GEMM_NR * CPU_GEMM_NR, &q);
    g.row_offset = row_offset, g.col_offset = col_offset;

    #pragma omp parallel num_threads(threads) firstprivate(g)
    {
        if (per_image) {
            float* band = bands + (size_t)omp_get_thread_num() * share; // (Ci, hb, Wp) this thread's
            g.im2col_x = band, g.n = (int)npos;
            #pragma omp for schedule(static)
            for (int64_t n = 0; n < batch; n++) {
                pad_band(band, xd + n * ci * h * wd, &q, 0, ci, -pad_h);
                g.c = od + n * co * npos;
                cpu_gemm_one(cpu, &g);
            }
        } else {
            g.im2col_x = bands; // (Ci, hb, Wp), shared
            for (int64_t n = 0; n < batch; n++)
                for (int64_t oy0 = 0; oy0 < ho; oy0 += q.band_rows) {
                    int64_t rows = ho - oy0 < q.band_rows ? ho - oy0 : q.band_rows;
                    #pragma omp for schedule(static)
                    for (int64_t c = 0; c < ci; c++)
                        pad_band(bands, xd + n * ci * h * wd, &q, c, c + 1, oy0 * stride_h - pad_h);
                    g.n = (int)(rows * wo), g.c = od + n * co * npos + oy0 * wo;
                    cpu_gemm_team(cpu, &g); // its omp for ends with a barrier: the band is free after
                }
        }
    }
    return DATO_OK;
}
