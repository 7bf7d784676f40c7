// conv2d on the CPU, as GEMMs (3x3 stride-1 convs with many channels go by Winograd instead,
// cpu_winograd.c): out (Co, Ho*Wo) = w (Co, Ci*kh*kw) @ im2col(x) per image, the bias
// added by the GEMM. A 1x1 stride-1 unpadded conv multiplies x (Ci, H*W) itself. Any other conv
// never writes its im2col matrix: it copies its input, zero-padded, into the scratch, and the
// GEMM gathers im2col(x) straight from that copy through two offset tables (cpu_gemm.c). The copy
// is the input's size, not kh*kw times it, and needs no bounds checks.
//
// Two forms of the GEMM, with the same bits (every output one FMA chain over the taps in order):
// - positions as rows: A gathered from the copy, the weights B (packed once, reused by every
//   position), the output a transposed C, and the rows of several images one GEMM. Taken where
//   the packed weights hold all of K at once (cpu_gemm_one_k_block): the default model's small
//   convs, 1.3x faster than the other form (docs/BENCHMARKS.md, issue 22);
// - channels as rows: the weights A, B gathered from the copy into packed panels, one image at a
//   time. Taken otherwise: at SD's K = 2880 and more the transposed C would be loaded and stored
//   once per K block (0.8x).
// Two ways to share the work, chosen by shape:
// - a run of images per thread, when the batch divides among the threads and an image's padded
//   copy fits a thread's share of the scratch: no barrier between images;
// - otherwise the team copies a band of output rows' inputs, then multiplies it, band after band.
// group_norm_conv2d normalizes the input as it copies it (GroupNorm's scale and shift per image and
// channel, then SiLU): the normalized tensor is never stored. The scratch is fixed, so no op
// allocates.
#include <omp.h>

#include "cpu_ops.h"

// One conv's geometry and the band size that fits the scratch.
typedef struct {
    int64_t ci, h, w, kh, kw, sh, sw, ph, pw, ho, wo;
    int64_t wp;        // padded band width: W + 2 pw
    int64_t band_rows; // output rows per band
    int64_t hb;        // input rows per band: (band_rows - 1) * sh + kh
} conv_geom;

// GroupNorm (and SiLU) applied to the input as it is copied (group_norm_conv2d): per image and channel
// x * scale + shift (cpu_scale_shift), the padding zeros of the normalized input.
typedef struct {
    const float* scale; // (B, Ci)
    const float* shift; // (B, Ci)
    int silu;
} conv_norm;

// Copies input rows [iy0, iy0 + hb) of channels [c0, c1) of image n of x (its (Ci, H, W) at xn)
// into band (Ci, hb, Wp), normalized when norm is set, zero outside the image (rows < 0 or >= H,
// and pw columns on each side). The normalization runs over a channel's rows in one pass, the pad
// columns included and zeroed after: whole vectors, not a short row's tail at a time.
static void pad_band(float* band, const float* xn, const conv_geom* q, int64_t c0, int64_t c1, int64_t iy0,
                     const conv_norm* norm, int64_t n) {
    int64_t r0 = iy0 < 0 ? -iy0 : 0, r1 = q->h - iy0 < q->hb ? q->h - iy0 : q->hb; // rows inside the image
    if (r1 < r0) r1 = r0;
    for (int64_t c = c0; c < c1; c++) {
        float* ch = band + c * q->hb * q->wp; // (hb, Wp)
        memset(ch, 0, (size_t)(r0 * q->wp) * sizeof(float));
        memset(ch + r1 * q->wp, 0, (size_t)((q->hb - r1) * q->wp) * sizeof(float));
        for (int64_t r = r0; r < r1; r++)
            memcpy(ch + r * q->wp + q->pw, xn + (c * q->h + iy0 + r) * q->w, (size_t)q->w * sizeof(float));
        if (norm)
            cpu_scale_shift(ch + r0 * q->wp, ch + r0 * q->wp, (r1 - r0) * q->wp, norm->scale[n * q->ci + c],
                            norm->shift[n * q->ci + c], norm->silu);
        for (int64_t r = r0; r < r1; r++) {
            float* row = ch + r * q->wp; // (Wp)
            for (int64_t i = 0; i < q->pw; i++) row[i] = 0.0f;
            for (int64_t i = q->pw + q->w; i < q->wp; i++) row[i] = 0.0f;
        }
    }
}

// The offset tables of a band: tap p = (ci*kh + ky)*kw + kx at ci*hb*Wp + ky*Wp + kx; output
// position i = oy*Wo + ox of the band at (oy*sh)*Wp + ox*sw. Entries past the band's positions, up
// to a whole panel, are 0: a valid address for the lanes a gathered B reads and never stores.
static void fill_offsets(int32_t* tap_offset, int32_t* pos_offset, int64_t n_pos, const conv_geom* q) {
    for (int64_t c = 0; c < q->ci; c++)
        for (int64_t ky = 0; ky < q->kh; ky++)
            for (int64_t kx = 0; kx < q->kw; kx++)
                tap_offset[(c * q->kh + ky) * q->kw + kx] = (int32_t)(c * q->hb * q->wp + ky * q->wp + kx);
    for (int64_t i = 0; i < n_pos; i++)
        pos_offset[i] = i < q->band_rows * q->wo ? (int32_t)(i / q->wo * q->sh * q->wp + i % q->wo * q->sw) : 0;
}

// conv2d of x, or, with a norm (groups > 0), of group_norm(x): gamma, beta, groups, eps, silu.
static dato_status conv2d_run(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                              const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                              const dato_tensor* gamma, const dato_tensor* beta, int groups, float eps, int silu,
                              dato_error* err) {
    DATO_TRY(dato_op_check_conv2d(out, x, w, b, stride_h, stride_w, pad_h, pad_w, DATO_DEV_CPU, 0, err));
    int64_t batch = x->shape[0], ci = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t co = w->shape[0], kh = w->shape[2], kw = w->shape[3], ho = out->shape[2], wo = out->shape[3];
    if (batch == 0) return DATO_OK;

    const cpu_backend* cpu = be->impl;
    cpu_winograd_plan wino;
    if (cpu_winograd_plan_conv(cpu, batch, ci, co, h, wd, kh, kw, stride_h, stride_w, pad_h, pad_w, groups > 0, &wino)) {
        cpu_winograd_conv2d(cpu, &wino, out->data, x->data, w->data, b ? b->data : NULL, gamma ? gamma->data : NULL,
                            beta ? beta->data : NULL, groups, eps, silu);
        return DATO_OK;
    }
    const float* xd = x->data;            // (B, Ci, H, W)
    const float* wt = w->data;            // (Co, Ci*kh*kw)
    const float* bd = b ? b->data : NULL; // (Co)
    float* od = out->data;                // (B, Co, Ho*Wo)
    int64_t kdim = ci * kh * kw, npos = ho * wo;
    int threads = cpu->threads;
    int divides = batch % threads == 0 || batch >= 4 * threads; // a run of images per thread keeps every thread busy

    if (kh == 1 && kw == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0 && !groups) {
        cpu_gemm_args g = {.m = (int)co, .n = (int)npos, .k = (int)kdim, .a = wt, .lda = (int)kdim, .b = xd,
                           .ldb = (int)npos, .ldc = (int)npos, .row_bias = bd};
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

    // The scratch: the tables every thread reads, then each thread's share (its images' padded
    // copies and, positions as rows, their position tables) or the team's band.
    int by_position = cpu_gemm_one_k_block((int)kdim, (int)co);
    conv_geom q = {ci, h, wd, kh, kw, stride_h, stride_w, pad_h, pad_w, ho, wo, wd + 2 * pad_w, ho, 0};
    int64_t n_pos = (npos + CPU_GEMM_NR - 1) / CPU_GEMM_NR * CPU_GEMM_NR; // whole panels
    size_t norm_floats = groups ? 2 * (size_t)(batch * ci) : 0;                             // scale, shift
    size_t table_floats = ((size_t)kdim + 2 * (size_t)n_pos + norm_floats + 15) / 16 * 16; // int32s, in floats
    if (table_floats > cpu->scratch_floats) {
        char sx[96];
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: x %s needs %zu floats of tables, over the scratch",
                         dato_shape_str(x, sx, sizeof sx), table_floats);
    }
    size_t avail = cpu->scratch_floats > table_floats ? cpu->scratch_floats - table_floats : 0;
    size_t image_band = (size_t)(ci * ((ho - 1) * stride_h + kh) * q.wp); // floats of one image's padded copy
    size_t image_floats = image_band + (by_position ? 2 * (size_t)npos : 0);
    int per_thread = divides && image_floats <= avail / (size_t)threads;
    size_t share = per_thread ? avail / (size_t)threads : avail;
    if (!per_thread) {
        size_t per_row = (size_t)(ci * stride_h * q.wp); // floats per more output row of a band
        size_t first_row = (size_t)(ci * kh * q.wp);     // floats of a one-row band
        if (first_row > share) {
            char sw[96];
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: weight %s on a %lldx%lld input needs %zu floats "
                             "per output row, over the scratch", dato_shape_str(w, sw, sizeof sw), (long long)h,
                             (long long)wd, first_row);
        }
        q.band_rows = 1 + (int64_t)((share - first_row) / per_row);
        if (q.band_rows > ho) q.band_rows = ho;
        int64_t n_bands = (ho + q.band_rows - 1) / q.band_rows;
        q.band_rows = (ho + n_bands - 1) / n_bands; // equal bands: no thin last GEMM
    }
    q.hb = (q.band_rows - 1) * stride_h + kh;
    int32_t* tap_offset = (int32_t*)cpu->scratch; // (K) where each weight tap reads in a band
    int32_t* pos_offset = tap_offset + kdim;       // (n_pos) where each output position reads
    int32_t* out_offset = pos_offset + n_pos;      // (n_pos) where each one is written: i
    float* shares = cpu->scratch + table_floats;   // (threads or 1, share)
    fill_offsets(tap_offset, pos_offset, n_pos, &q);
    conv_norm norm_data, *norm = NULL;
    if (groups) { // GroupNorm as a scale and shift per image and channel, applied as the input is copied
        norm_data.scale = (const float*)(out_offset + n_pos), norm_data.shift = norm_data.scale + batch * ci;
        norm_data.silu = silu, norm = &norm_data;
        cpu_group_norm_scale_shift(cpu, xd, batch, ci, h * wd, groups, eps, gamma->data, beta->data,
                                   (float*)norm_data.scale, (float*)norm_data.shift);
    }
    for (int64_t i = 0; i < n_pos; i++) out_offset[i] = (int32_t)i;
    cpu_gemm_args g;
    if (by_position) // C^T: position i's Co values at out_offset[i] + o npos
        g = (cpu_gemm_args){.n = (int)co, .k = (int)kdim, .a_row_offset = pos_offset, .a_col_offset = tap_offset,
                            .b = wt, .ldb = (int)kdim, .b_transposed = 1, .ldc = (int)npos, .c_transposed = 1,
                            .c_row_offset = out_offset, .col_bias = bd};
    else
        g = (cpu_gemm_args){.m = (int)co, .k = (int)kdim, .a = wt, .lda = (int)kdim, .b_row_offset = tap_offset,
                            .b_col_offset = pos_offset, .ldc = (int)npos, .row_bias = bd};

    #pragma omp parallel num_threads(threads) firstprivate(g)
    {
        if (per_thread) { // a contiguous run of images per thread, as many at a time as its share holds
            int t = omp_get_thread_num();
            int64_t n0 = batch * t / threads, n1 = batch * (t + 1) / threads;
            int64_t chunk = (int64_t)(share / image_floats);
            if (chunk > n1 - n0) chunk = n1 - n0;
            if (chunk > INT32_MAX / (co * npos)) chunk = INT32_MAX / (co * npos); // offsets stay int32
            float* band = shares + (size_t)t * share; // (chunk, Ci, hb, Wp)
            if (by_position) { // the rows of the chunk's images: position i of image j
                int32_t* a_off = (int32_t*)(band + (size_t)chunk * image_band); // (chunk * npos) read at
                int32_t* c_off = a_off + chunk * npos;                           // (chunk * npos) written at
                for (int64_t j = 0; j < chunk; j++)
                    for (int64_t i = 0; i < npos; i++) {
                        a_off[j * npos + i] = (int32_t)(j * (int64_t)image_band) + pos_offset[i];
                        c_off[j * npos + i] = (int32_t)(j * co * npos + i);
                    }
                g.a_x = band, g.a_row_offset = a_off, g.c_row_offset = c_off;
            }
            for (int64_t n = n0; n < n1; n += chunk) {
                int64_t count = n1 - n < chunk ? n1 - n : chunk;
                for (int64_t j = 0; j < count; j++)
                    pad_band(band + j * image_band, xd + (n + j) * ci * h * wd, &q, 0, ci, -pad_h, norm, n + j);
                if (by_position) {
                    g.m = (int)(count * npos), g.c = od + n * co * npos;
                    cpu_gemm_one(cpu, &g);
                } else {
                    for (int64_t j = 0; j < count; j++) {
                        g.n = (int)npos, g.b_x = band + j * image_band, g.c = od + (n + j) * co * npos;
                        cpu_gemm_one(cpu, &g);
                    }
                }
            }
        } else {
            if (by_position) g.a_x = shares; // (Ci, hb, Wp), the team's band
            else g.b_x = shares;
            for (int64_t n = 0; n < batch; n++)
                for (int64_t oy0 = 0; oy0 < ho; oy0 += q.band_rows) {
                    int64_t rows = ho - oy0 < q.band_rows ? ho - oy0 : q.band_rows;
                    #pragma omp for schedule(static)
                    for (int64_t c = 0; c < ci; c++)
                        pad_band(shares, xd + n * ci * h * wd, &q, c, c + 1, oy0 * stride_h - pad_h, norm, n);
                    if (by_position) g.m = (int)(rows * wo);
                    else g.n = (int)(rows * wo);
                    g.c = od + n * co * npos + oy0 * wo;
                    cpu_gemm_team(cpu, &g); // its omp for ends with a barrier: the band is free after
                }
        }
    }
    return DATO_OK;
}

dato_status cpu_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                       const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w, dato_error* err) {
    return conv2d_run(be, out, x, w, b, stride_h, stride_w, pad_h, pad_w, NULL, NULL, 0, 0.0f, 0, err);
}

dato_status cpu_group_norm_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                  const dato_tensor* beta, int groups, float eps, int fuse_silu, const dato_tensor* w,
                                  const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                                  dato_error* err) {
    DATO_TRY(dato_op_check_group_norm(x, x, gamma, beta, groups, DATO_DEV_CPU, err));
    if (x->ndim != 4 || dato_tensor_numel(x) == 0) // conv2d's check names the shape at fault
        return conv2d_run(be, out, x, w, b, stride_h, stride_w, pad_h, pad_w, NULL, NULL, 0, 0.0f, 0, err);
    if (out->data == x->data) return dato_fail(err, DATO_ERR_INVALID, "group_norm_conv2d: out aliases x");
    return conv2d_run(be, out, x, w, b, stride_h, stride_w, pad_h, pad_w, gamma, beta, groups, eps, fuse_silu, err);
}
