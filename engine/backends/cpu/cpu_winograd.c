// 3x3 stride-1 conv2d by Winograd's F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2015): each 4x4 tile of the output from the 6x6 tile of the input under it,
// with 36 multiplies per (input, output) channel pair instead of 144:
//   V (36, Ci, Tb) = B^T d B   every input tile, its 36 transformed values 36 GEMM rows apart;
//   U (36, Co, Ci) = G g G^T   every 3x3 weight;
//   M (36, Co, Tb)             M[e] = U[e] @ V[e], 36 GEMMs (cpu_gemm.c), one per element e of a tile;
//   y = A^T M A + bias         every output tile, written where it lies (partial tiles clipped).
// The GEMMs do a quarter of the direct conv's multiply-adds. Two forms, by the number of tiles:
// - blocked (many tiles): per block of tiles, V; per block of cb output channels, U stored by the
//   team, then the 36 GEMMs shared out, then the output tiles. U is read once per tile block;
// - fused (32 tiles or fewer, SD's 16x16 level at batch 2): every tile's V, then per block of
//   CPU_WINO_OB output channels, on one thread, U a K block at a time in the thread's buffer, its
//   GEMMs against V in place (cpu_gemm_rows) and its output tiles, M still in cache. Stored, U
//   (4x the weights) would be written and read back for 32 tiles' worth of multiply-adds, at
//   memory speed: this form is 1.35-1.4x faster there, and U is never stored.
// The transforms are a few percent of the work where both channel counts are 128 or more and
// there are enough tiles to pay for U (cpu_winograd_plan_conv).
//
// Bits: not the direct conv's (other arithmetic; the error, about 1e-6 of the output's scale, is
// test_cpu_winograd's), but, like its, independent of the thread count, the form, the blocks and
// the kernel level: every M element is one FMA chain over Ci (cpu_gemm.c) and every transform the
// same plain C whatever the ISA. GroupNorm (and SiLU) is applied as the input rows are copied, with
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

// G g G^T of one output channel's weights for kc input channels, their taps copied apart in gt
// (9, kc): row o_l of each element's block of U, element e at u[(e ob + o_l) kc + c]. Vectors over
// the input channels: a channel at a time, the 36 stores scattered, took 3x as long, and GCC will
// not vectorize loads 9 floats apart, hence the copy (weight_transform's callers).
static inline __attribute__((always_inline)) void weight_transform_body(float* u, int64_t o_l, int64_t ob, int64_t kc,
                                                                        const float* gt) {
    const float s6 = 1.0f / 6.0f, s12 = 1.0f / 12.0f, s24 = 1.0f / 24.0f;
    int64_t ue = ob * kc; // floats between elements
    float* uc = u + o_l * kc;
    // one row of 3 through G: six values
#define G_ROW(r, a, b, c)                                                                              \
    float r##0 = 0.25f * (a), r##1 = -s6 * ((a) + (b) + (c)), r##2 = -s6 * ((a) - (b) + (c)),          \
          r##3 = s24 * (a) + s12 * (b) + s6 * (c), r##4 = s24 * (a) - s12 * (b) + s6 * (c), r##5 = (c)
    #pragma omp simd
    for (int64_t c = 0; c < kc; c++) {
        float g0 = gt[c], g1 = gt[kc + c], g2 = gt[2 * kc + c], g3 = gt[3 * kc + c], g4 = gt[4 * kc + c],
              g5 = gt[5 * kc + c], g6 = gt[6 * kc + c], g7 = gt[7 * kc + c], g8 = gt[8 * kc + c]; // (3, 3)
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

// gt (9, kc) from channels [c0, kc) of wc (kc, 3, 3): each tap's values side by side.
static void copy_taps_apart(float* gt, const float* wc, int64_t c0, int64_t kc) {
    for (int64_t c = c0; c < kc; c++)
        for (int k = 0; k < 9; k++) gt[k * kc + c] = wc[c * 9 + k];
}

// The taps copied apart, then G g G^T; on x86 also compiled for AVX-512, picked at run time:
// 16-float vectors and 32 registers where 16 spilled (1.35x of the fused conv at 16x16, which
// transforms every weight per conv), and the copy a 16 x 16 block at a time in registers (the
// scalar copy was 60% of the transform: 1.10x more). Plain C both ways, no contraction into FMAs
// (C11), and a copy is a copy: the same bits.
static void weight_transform_base(float* u, const float* wc, int64_t o_l, int64_t ob, int64_t kc, float* gt) {
    copy_taps_apart(gt, wc, 0, kc);
    weight_transform_body(u, o_l, ob, kc, gt);
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f")))
// r[i] (16 floats each) = column i of the 16 x 16 matrix whose row j was r[j]: the usual 4 rounds of
// in-register shuffles, 64 of them.
AVX512 static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) { // pairs of rows: elements interleaved
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) // then pairs of pairs
        for (int h = 0; h < 2; h++) {
            __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + 2 + h]);
            r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    for (int i = 0; i < 16; i += 8) // then 128-bit lanes of rows 4 apart
        for (int h = 0; h < 4; h++) {
            t[i + h] = _mm512_shuffle_f32x4(r[i + h], r[i + 4 + h], 0x88);
            t[i + 4 + h] = _mm512_shuffle_f32x4(r[i + h], r[i + 4 + h], 0xdd);
        }
    for (int h = 0; h < 8; h++) { // and of rows 8 apart
        r[h] = _mm512_shuffle_f32x4(t[h], t[8 + h], 0x88);
        r[8 + h] = _mm512_shuffle_f32x4(t[h], t[8 + h], 0xdd);
    }
}
// Each channel's 9 taps a row of a 16 x 16 block (lanes 9-15 zeros), 16 channels transposed at once.
AVX512 static void weight_transform_avx512(float* u, const float* wc, int64_t o_l, int64_t ob, int64_t kc, float* gt) {
    int64_t c = 0;
    for (; c + 16 <= kc; c += 16) {
        __m512 r[16];
        for (int j = 0; j < 16; j++) r[j] = _mm512_maskz_loadu_ps(0x1FF, wc + (c + j) * 9);
        transpose16(r);
        for (int k = 0; k < 9; k++) _mm512_storeu_ps(gt + k * kc + c, r[k]);
    }
    copy_taps_apart(gt, wc, c, kc);
    weight_transform_body(u, o_l, ob, kc, gt);
}
#else
#define weight_transform_avx512 weight_transform_base
#endif
static void weight_transform(cpu_isa isa, float* u, const float* wc, int64_t o_l, int64_t ob, int64_t kc, float* gt) {
    (isa >= CPU_ISA_AVX512 ? weight_transform_avx512 : weight_transform_base)(u, wc, o_l, ob, kc, gt);
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

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// A thread's buffer: its input or output rows (48 p) and the taps copied apart (9 kc), then, fused,
// its block of U (36, ob, kc) and of M (36, ob, tb_ld).
static size_t thread_floats(const cpu_winograd_plan* pl, int fused) {
    return (size_t)(round_up(48 * pl->p, 16) + 9 * pl->kc + (fused ? E * CPU_WINO_OB * (pl->kc + pl->tb_ld) : 0));
}

int cpu_winograd_plan_conv(const cpu_backend* cpu, int64_t batch, int64_t ci, int64_t co, int64_t h, int64_t w,
                           int64_t kh, int64_t kw, int stride_h, int stride_w, int64_t pad_h, int64_t pad_w, int norm,
                           cpu_winograd_plan* pl) {
    if (cpu->conv_mode == CPU_CONV_DIRECT || kh != 3 || kw != 3 || stride_h != 1 || stride_w != 1) return 0;
    int64_t ho = h + 2 * pad_h - 2, wo = w + 2 * pad_w - 2, th = (ho + 3) / 4, tw = (wo + 3) / 4;
    if (cpu->conv_mode == CPU_CONV_AUTO && (ci < 128 || co < 128 || batch * th * tw < 32)) return 0;
    *pl = (cpu_winograd_plan){.batch = batch, .ci = ci, .co = co, .h = h, .w = w, .ph = pad_h, .pw = pad_w,
                              .ho = ho, .wo = wo, .th = th, .tw = tw, .p = tw + 1};
    pl->norm = norm ? (size_t)round_up(2 * batch * ci, 16) : 0;
    if (pl->norm >= cpu->wino_floats / 2 || ci > INT32_MAX / E) return 0;
    size_t room = cpu->wino_floats - pl->norm;
    int64_t rows = batch * th;
    // Fused where the tiles are few (U, stored, would be read once per CPU_WINO_FUSED_TILES tiles at
    // most: memory-bound) and their V fits the cache budget: U made a block of output channels at a
    // time in the thread's buffer, K block by K block, never stored whole.
    int64_t k_blocks = (ci + CPU_WINO_KC - 1) / CPU_WINO_KC;
    pl->kc = (ci + k_blocks - 1) / k_blocks; // equal K blocks
    pl->block_rows = rows, pl->tb = rows * tw, pl->tb_ld = round_up(pl->tb, CPU_GEMM_NR), pl->fused = 1;
    if (pl->tb_ld <= CPU_WINO_FUSED_TILES) {
        size_t v_floats = (size_t)(E * ci * pl->tb_ld);
        if (v_floats <= cpu->wino_fused_floats && v_floats <= room && thread_floats(pl, 1) <= CPU_WINO_THREAD_FLOATS)
            return 1;
    }
    // Blocked: U for a block of cb output channels stored for all the tiles of a block, V up to half
    // the room, in whole tile rows, blocks of equal size; U and M the rest.
    pl->fused = 0, pl->kc = ci;
    if (thread_floats(pl, 0) > CPU_WINO_THREAD_FLOATS) return 0; // a thread's rows
    size_t row_floats = (size_t)E * (size_t)ci * (size_t)tw;
    size_t max_rows = room / 2 / row_floats;
    if (max_rows == 0) return 0;
    size_t n_blocks = ((size_t)rows + max_rows - 1) / max_rows;
    pl->block_rows = (int64_t)(((size_t)rows + n_blocks - 1) / n_blocks), pl->tb = pl->block_rows * tw;
    pl->tb_ld = pl->tb;
    size_t left = room - (size_t)pl->block_rows * row_floats;
    int64_t cb = (int64_t)(left / ((size_t)E * (size_t)(ci + pl->tb)));
    if (cb < co) cb = cb / CPU_GEMM_MR * CPU_GEMM_MR; // whole register tiles, but the last block
    if (cb <= 0) return 0;
    int64_t n_cb = (co + cb - 1) / cb;
    pl->cb = (co + n_cb - 1) / n_cb;
    return pl->tb <= INT32_MAX; // the GEMM's int sizes
}

// V (36, Ci, tb_ld) of tile rows [r0, r0 + block_rows): each (input channel, tile row) one item of
// the team's; the lanes past the block's tiles, to tb_ld, zeros (multiplied, never read). A
// thread's consecutive items are one channel's consecutive tile rows, so it fills each of the 36
// rows of V it writes front to back. Tile row by tile row, its stores (V is 24 MB at 64x64, not
// cached) landed a row of V apart and ran at the speed of their misses: 1.15x at 64x64 and 32x32.
static void input_tiles(const cpu_winograd_plan* pl, float* v, const float* x, int64_t r0, int64_t block_rows,
                        const float* scale, const float* shift, int norm, int silu, float* rows_buf) {
    int64_t ci = pl->ci, tb_ld = pl->tb_ld, tail = tb_ld - block_rows * pl->tw;
    int64_t items = tail > 0 ? block_rows + 1 : block_rows; // the last, the tail's zeros
    #pragma omp for schedule(static) collapse(2)
    for (int64_t c = 0; c < ci; c++)
        for (int64_t r = 0; r < items; r++) {
            if (r == block_rows) {
                for (int e = 0; e < E; e++)
                    memset(v + (e * ci + c) * tb_ld + block_rows * pl->tw, 0, (size_t)tail * sizeof(float));
                continue;
            }
            int64_t n = (r0 + r) / pl->th, ty = (r0 + r) % pl->th;
            input_tile_row(v + c * tb_ld + r * pl->tw, ci * tb_ld, x + (n * ci + c) * pl->h * pl->w, pl, ty, norm,
                           norm ? scale[n * ci + c] : 0.0f, norm ? shift[n * ci + c] : 0.0f, silu, rows_buf);
        }
}

// Output channels [o0, o0 + on) of tile rows [r0, r0 + block_rows) from M, element e of channel o's
// tile t at m[(e me_rows + o) tb_ld + t].
static void output_tiles(const cpu_winograd_plan* pl, float* out, const float* m, int64_t me_rows, int64_t o0,
                         int64_t on, int64_t r0, int64_t block_rows, const float* b, float* rows_buf) {
    for (int64_t o = 0; o < on; o++)
        for (int64_t r = 0; r < block_rows; r++) {
            int64_t n = (r0 + r) / pl->th, ty = (r0 + r) % pl->th;
            output_tile_row(out + (n * pl->co + o0 + o) * pl->ho * pl->wo, m + o * pl->tb_ld + r * pl->tw,
                            me_rows * pl->tb_ld, pl, ty, b ? b[o0 + o] : 0.0f, rows_buf);
        }
}

void cpu_winograd_conv2d(const cpu_backend* cpu, const cpu_winograd_plan* pl, float* out, const float* x,
                         const float* w, const float* b, const float* gamma, const float* beta, int groups, float eps,
                         int silu) {
    int64_t ci = pl->ci, co = pl->co, tb_ld = pl->tb_ld, cb = pl->cb, ob = CPU_WINO_OB, mr = CPU_GEMM_MR;
    float* scale = cpu->wino;              // (B, Ci) GroupNorm's, when groups > 0
    float* shift = scale + pl->batch * ci; // (B, Ci)
    float* v = cpu->wino + pl->norm;       // (36, Ci, tb_ld) a tile block's transformed input
    float* u = v + (size_t)E * ci * tb_ld; // blocked: (36, cb, Ci)
    float* m = u + (size_t)E * cb * ci;    // blocked: (36, cb, tb_ld)
    if (groups)
        cpu_group_norm_scale_shift(cpu, x, pl->batch, ci, pl->h * pl->w, groups, eps, gamma, beta, scale, shift);
    int64_t rows = pl->batch * pl->th, n_cb = pl->fused ? 0 : (co + cb - 1) / cb;
    // Blocked, the GEMMs' work items: each of the 36 products, cut along M where 36 would leave
    // threads idle.
    int parts = (4 * cpu->threads + E - 1) / E;

    #pragma omp parallel num_threads(cpu->threads)
    {
        float* rows_buf = cpu->wino_rows + (size_t)omp_get_thread_num() * CPU_WINO_THREAD_FLOATS; // (48 p)
        float* gt = rows_buf + round_up(48 * pl->p, 16); // (9, kc) the taps copied apart
        float* u_own = gt + 9 * pl->kc;                  // fused: (36, ob, kc) a block of U
        float* m_own = u_own + E * ob * pl->kc;          // fused: (36, ob, tb_ld) a block of M
        if (!pl->fused && n_cb == 1) { // U once for every tile block
            #pragma omp for schedule(static)
            for (int64_t o = 0; o < co; o++) weight_transform(cpu->isa, u, w + o * ci * 9, o, cb, ci, gt);
        }
        for (int64_t r0 = 0; r0 < rows; r0 += pl->block_rows) {
            int64_t block_rows = rows - r0 < pl->block_rows ? rows - r0 : pl->block_rows;
            input_tiles(pl, v, x, r0, block_rows, scale, shift, groups > 0, silu, rows_buf);
            if (pl->fused) {
                // Per block of ob output channels, on one thread: its U a K block at a time and its
                // 36 GEMMs (each element of M one FMA chain over Ci, continued from block to block),
                // then its output tiles, M still in cache.
                #pragma omp for schedule(dynamic, 1)
                for (int64_t o0 = 0; o0 < co; o0 += ob) {
                    int64_t on = co - o0 < ob ? co - o0 : ob, slices = (on + mr - 1) / mr;
                    for (int64_t c0 = 0; c0 < ci; c0 += pl->kc) {
                        int64_t kc = ci - c0 < pl->kc ? ci - c0 : pl->kc;
                        for (int64_t o = 0; o < slices * mr; o++)
                            if (o < on) weight_transform(cpu->isa, u_own, w + ((o0 + o) * ci + c0) * 9, o, ob, kc, gt);
                            else // rows past Co in the last register tile: zeros, never stored
                                for (int e = 0; e < E; e++) memset(u_own + (e * ob + o) * kc, 0, (size_t)kc * sizeof(float));
                        for (int e = 0; e < E; e++)
                            for (int64_t s = 0; s < slices; s++)
                                cpu_gemm_rows(cpu->isa, (int)kc, u_own + (e * ob + s * mr) * kc, (int)kc,
                                              v + (e * ci + c0) * tb_ld, (int)tb_ld, (int)tb_ld,
                                              m_own + (e * ob + s * mr) * tb_ld, (int)tb_ld, c0 > 0);
                    }
                    output_tiles(pl, out, m_own, ob, o0, on, r0, block_rows, b, rows_buf);
                }
                continue;
            }
            for (int64_t o0 = 0; o0 < co; o0 += cb) {
                int64_t cbn = co - o0 < cb ? co - o0 : cb;
                if (n_cb > 1) {
                    #pragma omp for schedule(static)
                    for (int64_t o = 0; o < cbn; o++) weight_transform(cpu->isa, u, w + (o0 + o) * ci * 9, o, cb, ci, gt);
                }
                int64_t step = ((cbn + parts - 1) / parts + mr - 1) / mr * mr;
                #pragma omp for schedule(dynamic, 1)
                for (int item = 0; item < E * parts; item++) {
                    int64_t e = item / parts, i0 = item % parts * step;
                    if (i0 >= cbn) continue;
                    cpu_gemm_args g = {.m = (int)(cbn - i0 < step ? cbn - i0 : step), .n = (int)(block_rows * pl->tw),
                                       .k = (int)ci, .a = u + (e * cb + i0) * ci, .lda = (int)ci,
                                       .b = v + e * ci * tb_ld, .ldb = (int)tb_ld, .c = m + (e * cb + i0) * tb_ld,
                                       .ldc = (int)tb_ld};
                    cpu_gemm_one(cpu, &g);
                }
                #pragma omp for schedule(static)
                for (int64_t o = 0; o < cbn; o++)
                    output_tiles(pl, out, m + o * tb_ld, cb, o0 + o, 1, r0, block_rows, b, rows_buf);
            }
        }
    }
}
