// 3x3 stride-1 conv2d by Winograd's F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2015): each 4x4 tile of the output from the 6x6 tile of the input under it,
// with 36 multiplies per (input, output) channel pair instead of 144. Per block of tiles and of
// output channels:
//   V (36, Ci, Tb) = B^T d B   every input tile, its 36 transformed values 36 GEMM rows apart;
//   U (36, cb, Ci) = G g G^T   every 3x3 weight of the block's output channels;
//   M (36, cb, Tb)             M[e] = U[e] @ V[e], 36 GEMMs (cpu_gemm.c), one per element e of a tile;
//   y = A^T M A + bias         every output tile, written where it lies (partial tiles clipped).
// The GEMMs do a quarter of the direct conv's multiply-adds; the transforms are a few percent of
// the work where both channel counts are 128 or more (the input's is paid per output channel, the
// output's per input channel) and there are enough tiles to pay for U (cpu_winograd_plan_conv).
//
// Bits: not the direct conv's (other arithmetic; the error, about 1e-6 of the output's scale, is
// test_cpu_winograd's), but, like its, independent of the thread count, the blocks and the
// kernel level: every M element is one FMA chain over Ci (cpu_gemm.c) and every transform the same
// plain C whatever the ISA. GroupNorm (and SiLU) is applied as the input rows are copied, with
// group_norm's own arithmetic (cpu_scale_shift), so group_norm_conv2d keeps group_norm + conv2d's bits.
//
// Vectors: a tile row's input rows are split by column phase (column u at [u % 4][u / 4]), so the
// 6 columns of tile tx sit at index tx or tx + 1 of a phase, and both transforms run over a tile
// row's tiles as contiguous vectors.
#include <omp.h>

#include "cpu_ops.h"

#define E 36 // elements of a transformed tile (6 x 6)

// ---- transforms ------------------------------------------------------------------------------------

// B^T of six values e0..e5 (a column or a row of a tile) into o0..o5, used down the columns then
// along the rows; A^T of six into four, likewise.
#define B_T(o0, o1, o2, o3, o4, o5, e0, e1, e2, e3, e4, e5)                                          \
    ((o0) = 4.0f * (e0) - 5.0f * (e2) + (e4), (o1) = -4.0f * (e1) - 4.0f * (e2) + (e3) + (e4),          \
     (o2) = 4.0f * (e1) - 4.0f * (e2) - (e3) + (e4), (o3) = -2.0f * (e1) - (e2) + 2.0f * (e3) + (e4),   \
     (o4) = 2.0f * (e1) - (e2) - 2.0f * (e3) + (e4), (o5) = 4.0f * (e1) - 5.0f * (e3) + (e5))
#define A_T(o0, o1, o2, o3, e0, e1, e2, e3, e4, e5)                                                    \
    ((o0) = (e0) + (e1) + (e2) + (e3) + (e4), (o1) = (e1) - (e2) + 2.0f * (e3) - 2.0f * (e4),             \
     (o2) = (e1) + (e2) + 4.0f * (e3) + 4.0f * (e4), (o3) = (e1) - (e2) + 8.0f * (e3) - 8.0f * (e4) + (e5))

// One channel's tile row (image rows 4 ty - ph .. + 5) into V's columns [0, tw) at v, element e
// at v + e ve: B^T d B of each tile. xc: the channel's (H, W); norm: GroupNorm's scale and shift
// (and SiLU) applied to the image's values, or not (norm == 0). buf: (48 p) the thread's rows.
static void input_tile_row(float* v, int64_t ve, const float* xc, const cpu_winograd_plan* pl, int64_t ty, int norm,
                           float scale, float shift, int silu, float* buf) {
    int64_t p = pl->p, n4 = 4 * p;
    float* d = buf;           // (6, 4, p) the 6 input rows, zero-padded, columns by phase
    float* t = buf + 6 * n4;  // (6, 4, p) B^T d; t's first row is the padded row's staging first
    for (int r = 0; r < 6; r++) {
        int64_t y = 4 * ty - pl->ph + r;
        float* dr = d + r * n4;
        if (y < 0 || y >= pl->h) {
            memset(dr, 0, (size_t)n4 * sizeof(float));
            continue;
        }
        float* row = t; // (4 p) padded column u = image column u - pw
        int64_t cols = pl->w < n4 - pl->pw ? pl->w : n4 - pl->pw;
        memset(row, 0, (size_t)n4 * sizeof(float));
        memcpy(row + pl->pw, xc + y * pl->w, (size_t)cols * sizeof(float));
        if (norm) cpu_scale_shift(row + pl->pw, row + pl->pw, cols, scale, shift, silu);
        for (int64_t m = 0; m < 4; m++)
            for (int64_t k = 0; k < p; k++) dr[m * p + k] = row[4 * k + m];
    }
    // B^T d down the columns, every column of the tile row at once
    const float *d0 = d, *d1 = d + n4, *d2 = d + 2 * n4, *d3 = d + 3 * n4, *d4 = d + 4 * n4, *d5 = d + 5 * n4;
    #pragma omp simd
    for (int64_t u = 0; u < n4; u++)
        B_T(t[u], t[n4 + u], t[2 * n4 + u], t[3 * n4 + u], t[4 * n4 + u], t[5 * n4 + u], d0[u], d1[u], d2[u], d3[u],
            d4[u], d5[u]);
    // then B along each row: tile tx's columns 4 tx + c are phase c % 4 at tx + c / 4
    for (int i = 0; i < 6; i++) {
        const float* ti = t + i * n4;
        float* vi = v + (int64_t)(6 * i) * ve;
        #pragma omp simd
        for (int64_t tx = 0; tx < pl->tw; tx++) {
            B_T(vi[tx], vi[ve + tx], vi[2 * ve + tx], vi[3 * ve + tx], vi[4 * ve + tx], vi[5 * ve + tx], ti[tx],
                ti[p + tx], ti[2 * p + tx], ti[3 * p + tx], ti[tx + 1], ti[p + tx + 1]);
        }
    }
}

// G g G^T of output channel co's weights (Ci, 3, 3) at wc, for every input channel: U's row of
// the block's channel co_l, element e at u[(e cb + co_l) Ci + c]. Vectors over the input channels,
// the 9 taps first copied apart (gt: (9, Ci) of the thread's buffer): a channel at a time, the 36
// stores scattered, took 3x as long, and GCC will not vectorize loads 9 floats apart.
static void weight_transform(float* u, const float* wc, int64_t co_l, const cpu_winograd_plan* pl, float* gt) {
    const float s6 = 1.0f / 6.0f, s12 = 1.0f / 12.0f, s24 = 1.0f / 24.0f;
    int64_t ci = pl->ci, ue = pl->cb * ci; // floats between elements
    float* uc = u + co_l * ci;
    for (int64_t c = 0; c < ci; c++)
        for (int k = 0; k < 9; k++) gt[k * ci + c] = wc[c * 9 + k];
    // one row of 3 through G: six values
#define G_ROW(r, a, b, c)                                                                              \
    float r##0 = 0.25f * (a), r##1 = -s6 * ((a) + (b) + (c)), r##2 = -s6 * ((a) - (b) + (c)),          \
          r##3 = s24 * (a) + s12 * (b) + s6 * (c), r##4 = s24 * (a) - s12 * (b) + s6 * (c), r##5 = (c)
    #pragma omp simd
    for (int64_t c = 0; c < ci; c++) {
        float g0 = gt[c], g1 = gt[ci + c], g2 = gt[2 * ci + c], g3 = gt[3 * ci + c], g4 = gt[4 * ci + c],
              g5 = gt[5 * ci + c], g6 = gt[6 * ci + c], g7 = gt[7 * ci + c], g8 = gt[8 * ci + c]; // (3, 3)
        G_ROW(a, g0, g3, g6); // G g: column 0, 1, 2 of the six rows
        G_ROW(b, g1, g4, g7);
        G_ROW(d, g2, g5, g8);
        // then G^T along each row i of G g: (a_i, b_i, d_i)
#define G_STORE(i)                                                                                      \
    do {                                                                                               \
        G_ROW(q, a##i, b##i, d##i);                                                                    \
        float* ui = uc + (int64_t)(6 * i) * ue + c;                                                    \
        ui[0] = q0, ui[ue] = q1, ui[2 * ue] = q2, ui[3 * ue] = q3, ui[4 * ue] = q4, ui[5 * ue] = q5;   \
    } while (0)
        G_STORE(0);
        G_STORE(1);
        G_STORE(2);
        G_STORE(3);
        G_STORE(4);
        G_STORE(5);
#undef G_STORE
    }
#undef G_ROW
}

// A^T M A + bias of one output channel's tile row ty: M's element e of tile tx at m[e me + tx];
// out_c: the channel's (Ho, Wo). buf: (48 p) the thread's rows.
static void output_tile_row(float* out_c, const float* m, int64_t me, const cpu_winograd_plan* pl, int64_t ty,
                            float bias, float* buf) {
    int64_t tw = pl->tw;
    float* s = buf;               // (4, 6, tw) A^T M down the columns
    float* y = buf + 24 * tw;     // (4, tw) one output row of the tiles, by column within a tile
    for (int j = 0; j < 6; j++) {
        const float *m0 = m + j * me, *m1 = m + (6 + j) * me, *m2 = m + (12 + j) * me, *m3 = m + (18 + j) * me,
                    *m4 = m + (24 + j) * me, *m5 = m + (30 + j) * me;
        float *s0 = s + j * tw, *s1 = s + (6 + j) * tw, *s2 = s + (12 + j) * tw, *s3 = s + (18 + j) * tw;
        #pragma omp simd
        for (int64_t tx = 0; tx < tw; tx++) {
            A_T(s0[tx], s1[tx], s2[tx], s3[tx], m0[tx], m1[tx], m2[tx], m3[tx], m4[tx], m5[tx]);
        }
    }
    for (int i = 0; i < 4 && 4 * ty + i < pl->ho; i++) { // then A along each row, and out
        const float *a0 = s + 6 * i * tw, *a1 = a0 + tw, *a2 = a0 + 2 * tw, *a3 = a0 + 3 * tw, *a4 = a0 + 4 * tw,
                    *a5 = a0 + 5 * tw;
        #pragma omp simd
        for (int64_t tx = 0; tx < tw; tx++) {
            float o0, o1, o2, o3;
            A_T(o0, o1, o2, o3, a0[tx], a1[tx], a2[tx], a3[tx], a4[tx], a5[tx]);
            y[tx] = o0 + bias, y[tw + tx] = o1 + bias, y[2 * tw + tx] = o2 + bias, y[3 * tw + tx] = o3 + bias;
        }
        float* orow = out_c + (4 * ty + i) * pl->wo; // (Wo)
        for (int64_t tx = 0; tx < tw; tx++)
            for (int64_t j = 0; j < 4 && 4 * tx + j < pl->wo; j++) orow[4 * tx + j] = y[j * tw + tx];
    }
}

// ---- plan and run ---------------------------------------------------------------------------------

int cpu_winograd_plan_conv(const cpu_backend* cpu, int64_t batch, int64_t ci, int64_t co, int64_t h, int64_t w,
                           int64_t kh, int64_t kw, int stride_h, int stride_w, int64_t pad_h, int64_t pad_w, int norm,
                           cpu_winograd_plan* pl) {
    if (cpu->conv_mode == CPU_CONV_DIRECT || kh != 3 || kw != 3 || stride_h != 1 || stride_w != 1) return 0;
    int64_t ho = h + 2 * pad_h - 2, wo = w + 2 * pad_w - 2, th = (ho + 3) / 4, tw = (wo + 3) / 4;
    if (cpu->conv_mode == CPU_CONV_AUTO && (ci < 128 || co < 128 || batch * th * tw < 32)) return 0;
    *pl = (cpu_winograd_plan){.batch = batch, .ci = ci, .co = co, .h = h, .w = w, .ph = pad_h, .pw = pad_w,
                              .ho = ho, .wo = wo, .th = th, .tw = tw, .p = tw + 1};
    pl->norm = norm ? (2 * (size_t)(batch * ci) + 15) / 16 * 16 : 0;
    if (48 * (size_t)pl->p > CPU_WINO_THREAD_FLOATS || 9 * (size_t)ci > CPU_WINO_THREAD_FLOATS) return 0; // a thread's rows
    if (pl->norm >= cpu->wino_floats / 2) return 0;
    size_t room = cpu->wino_floats - pl->norm;
    // V takes up to half the room, in whole tile rows, blocks of equal size; U and M the rest.
    size_t row_floats = (size_t)E * (size_t)ci * (size_t)tw, rows = (size_t)(batch * th);
    size_t max_rows = room / 2 / row_floats;
    if (max_rows == 0) return 0;
    size_t n_blocks = (rows + max_rows - 1) / max_rows;
    pl->block_rows = (int64_t)((rows + n_blocks - 1) / n_blocks), pl->tb = pl->block_rows * tw;
    size_t left = room - (size_t)pl->block_rows * row_floats;
    int64_t cb = (int64_t)(left / ((size_t)E * (size_t)(ci + pl->tb)));
    if (cb < co) cb = cb / CPU_GEMM_MR * CPU_GEMM_MR; // whole register tiles, but the last block
    if (cb <= 0) return 0;
    int64_t n_cb = (co + cb - 1) / cb;
    pl->cb = (co + n_cb - 1) / n_cb;
    if (pl->tb > INT32_MAX || ci > INT32_MAX) return 0; // the GEMM's int sizes
    return 1;
}

void cpu_winograd_conv2d(const cpu_backend* cpu, const cpu_winograd_plan* pl, float* out, const float* x,
                         const float* w, const float* b, const float* gamma, const float* beta, int groups, float eps,
                         int silu) {
    int64_t ci = pl->ci, co = pl->co, tw = pl->tw, tb = pl->tb, cb = pl->cb;
    float* scale = cpu->wino;                          // (B, Ci) GroupNorm's, when groups > 0
    float* shift = scale + pl->batch * ci;             // (B, Ci)
    float* v = cpu->wino + pl->norm;                   // (36, Ci, Tb)
    float* u = v + (size_t)E * ci * tb;                // (36, cb, Ci)
    float* m = u + (size_t)E * cb * ci;                // (36, cb, Tb)
    if (groups)
        cpu_group_norm_scale_shift(cpu, x, pl->batch, ci, pl->h * pl->w, groups, eps, gamma, beta, scale, shift);
    int64_t rows = pl->batch * pl->th, n_cb = (co + cb - 1) / cb;
    // The GEMMs' work items: each of the 36 products, cut along M where 36 would leave threads idle.
    int parts = (4 * cpu->threads + E - 1) / E;

    #pragma omp parallel num_threads(cpu->threads)
    {
        float* buf = cpu->wino_rows + (size_t)omp_get_thread_num() * CPU_WINO_THREAD_FLOATS; // max(48 p, 9 Ci)
        if (n_cb == 1) { // U once for every tile block
            #pragma omp for schedule(static)
            for (int64_t o = 0; o < co; o++) weight_transform(u, w + o * ci * 9, o, pl, buf);
        }
        for (int64_t r0 = 0; r0 < rows; r0 += pl->block_rows) {
            int64_t block_rows = rows - r0 < pl->block_rows ? rows - r0 : pl->block_rows;
            #pragma omp for schedule(static) collapse(2)
            for (int64_t r = 0; r < block_rows; r++)
                for (int64_t c = 0; c < ci; c++) {
                    int64_t n = (r0 + r) / pl->th, ty = (r0 + r) % pl->th;
                    input_tile_row(v + c * tb + r * tw, ci * tb, x + (n * ci + c) * pl->h * pl->w, pl, ty, groups > 0,
                                   groups ? scale[n * ci + c] : 0.0f, groups ? shift[n * ci + c] : 0.0f, silu, buf);
                }
            for (int64_t o0 = 0; o0 < co; o0 += cb) {
                int64_t cbn = co - o0 < cb ? co - o0 : cb;
                if (n_cb > 1) {
                    #pragma omp for schedule(static)
                    for (int64_t o = 0; o < cbn; o++) weight_transform(u, w + (o0 + o) * ci * 9, o, pl, buf);
                }
                int64_t step = ((cbn + parts - 1) / parts + CPU_GEMM_MR - 1) / CPU_GEMM_MR * CPU_GEMM_MR;
                #pragma omp for schedule(dynamic, 1)
                for (int item = 0; item < E * parts; item++) {
                    int64_t e = item / parts, i0 = item % parts * step;
                    if (i0 >= cbn) continue;
                    cpu_gemm_args g = {.m = (int)(cbn - i0 < step ? cbn - i0 : step), .n = (int)(block_rows * tw),
                                       .k = (int)ci, .a = u + (e * cb + i0) * ci, .lda = (int)ci,
                                       .b = v + e * ci * tb, .ldb = (int)tb, .c = m + (e * cb + i0) * tb,
                                       .ldc = (int)tb};
                    cpu_gemm_one(cpu, &g);
                }
                #pragma omp for schedule(static) collapse(2)
                for (int64_t o = 0; o < cbn; o++)
                    for (int64_t r = 0; r < block_rows; r++) {
                        int64_t n = (r0 + r) / pl->th, ty = (r0 + r) % pl->th;
                        output_tile_row(out + (n * co + o0 + o) * pl->ho * pl->wo, m + o * tb + r * tw, cb * tb, pl, ty,
                                        b ? b[o0 + o] : 0.0f, buf);
                    }
            }
        }
    }
}
