// Multi-head attention on the CPU, blocked with an online softmax (FlashAttention's loop on
// the CPU). One task is (image, head, chunk of queries); it walks the keys in blocks of bk,
// keeping per query a running max m, a running sum l and an output accumulator o, so the
// (Nq, Nk) score matrix never exists. Tasks run in parallel over OpenMP threads, each in its
// slice of the backend's attention scratch.
//
// Everything is laid out transposed, queries along the vector lanes: the chunk's q is packed
// once as qt (D, chunk), pre-scaled by scale * log2 e so that exp2 replaces exp, and o is kept
// as ot (D, chunk). Then per key block and per tile of QT queries:
//   st = k @ qt                      (bk, QT) scores, k rows read in place (broadcasts)
//   m' = max(m, colmax st); p = 2^(st - m'); a = 2^(m - m')
//   l = l * a + colsum p; ot = ot * a + v^T @ p      v rows read in place (broadcasts)
// and at the end out = ot^T / l. Neither k nor v is ever copied, the softmax needs no
// horizontal reductions, and any head dim vectorizes fully. The two products are
// register-blocked micro-kernels of R rows (keys, then head dims) by 2 vectors of queries.
//
// Causal attention skips every key past a tile's last query (whole blocks, then the tail of a
// block) and masks the scores above the diagonal to -inf in the tiles that cross it. Key 0 is
// in every query's first block, so the running max is finite after it and 2^-inf gives 0.
//
// Two sets of kernels, picked per call: 16-float AVX-512 ones when the CPU has AVX-512F
// (compiled with a target attribute, whatever the build flags: twice the AVX2 speed on a
// Zen 5), else 8-float ones on AVX2 + FMA intrinsics when the build targets them (x86-64-v3,
// the Release flags) or on a portable struct of 8 floats.
#include <math.h>
#include <omp.h>

#include "cpu_ops.h"

// ---- 8-float vectors: AVX2 + FMA, or a portable struct ----------------------------------------

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vec8;
static inline vec8 vec8_zero(void) { return _mm256_setzero_ps(); }
static inline vec8 vec8_set1(float x) { return _mm256_set1_ps(x); }
static inline vec8 vec8_load(const float* p) { return _mm256_loadu_ps(p); }
static inline void vec8_store(float* p, vec8 v) { _mm256_storeu_ps(p, v); }
static inline vec8 vec8_add(vec8 a, vec8 b) { return _mm256_add_ps(a, b); }
static inline vec8 vec8_sub(vec8 a, vec8 b) { return _mm256_sub_ps(a, b); }
static inline vec8 vec8_mul(vec8 a, vec8 b) { return _mm256_mul_ps(a, b); }
static inline vec8 vec8_max(vec8 a, vec8 b) { return _mm256_max_ps(a, b); }
static inline vec8 vec8_fma(vec8 a, vec8 b, vec8 c) { return _mm256_fmadd_ps(a, b, c); } // a * b + c
// cpu_exp2f (cpu_ops.h) on 8 lanes, the same steps; max/min send NaN to the clamp bound.
static inline vec8 vec8_exp2(vec8 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    vec8 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    vec8 f = _mm256_sub_ps(x, n);
    vec8 p = _mm256_set1_ps(1.535336188319500e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440266574e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357674640e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471162809e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791363012e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028550421e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#else
typedef struct { float f[8]; } vec8;
static inline vec8 vec8_zero(void) { return (vec8){{0}}; }
static inline vec8 vec8_set1(float x) { return (vec8){{x, x, x, x, x, x, x, x}}; }
static inline vec8 vec8_load(const float* p) { vec8 v; memcpy(v.f, p, sizeof v.f); return v; }
static inline void vec8_store(float* p, vec8 v) { memcpy(p, v.f, sizeof v.f); }
static inline vec8 vec8_add(vec8 a, vec8 b) {
    for (int i = 0; i < 8; i++) a.f[i] += b.f[i];
    return a;
}
static inline vec8 vec8_sub(vec8 a, vec8 b) {
    for (int i = 0; i < 8; i++) a.f[i] -= b.f[i];
    return a;
}
static inline vec8 vec8_mul(vec8 a, vec8 b) {
    for (int i = 0; i < 8; i++) a.f[i] *= b.f[i];
    return a;
}
static inline vec8 vec8_max(vec8 a, vec8 b) {
    for (int i = 0; i < 8; i++) a.f[i] = a.f[i] > b.f[i] ? a.f[i] : b.f[i];
    return a;
}
static inline vec8 vec8_fma(vec8 a, vec8 b, vec8 c) {
    for (int i = 0; i < 8; i++) c.f[i] = fmaf(a.f[i], b.f[i], c.f[i]);
    return c;
}
static inline vec8 vec8_exp2(vec8 x) {
    for (int i = 0; i < 8; i++) x.f[i] = cpu_exp2f(x.f[i]);
    return x;
}
#endif

#define ATTN_CHUNK_TILES 16 // query tiles per task, at most
#define ATTN_BK 256          // keys per block, at most

// ---- 8-float kernels: tiles of ATTN8_R rows by 16 queries ------------------------------------

#define ATTN8_R 6   // 6 x 2 accumulators + 3 fit the 16 AVX2 registers
#define ATTN8_QT 16

// st (kn, 16) = k (kn rows of stride ldk) @ qt (d, ldq)[:, :16]. Past the last key the tile
// re-reads row kn - 1 and does not store: no read outside k.
static void attn8_scores(float* st, const float* k, int64_t ldk, const float* qt, int64_t ldq, int64_t kn,
                         int64_t d) {
    for (int64_t j0 = 0; j0 < kn; j0 += ATTN8_R) {
        const float* kr[ATTN8_R]; // (d) each
        for (int r = 0; r < ATTN8_R; r++) kr[r] = k + (j0 + r < kn ? j0 + r : kn - 1) * ldk;
        vec8 acc[ATTN8_R][2];
        for (int r = 0; r < ATTN8_R; r++) acc[r][0] = acc[r][1] = vec8_zero();
        for (int64_t c = 0; c < d; c++) {
            vec8 q0 = vec8_load(qt + c * ldq), q1 = vec8_load(qt + c * ldq + 8);
            for (int r = 0; r < ATTN8_R; r++) {
                vec8 kv = vec8_set1(kr[r][c]);
                acc[r][0] = vec8_fma(kv, q0, acc[r][0]);
                acc[r][1] = vec8_fma(kv, q1, acc[r][1]);
            }
        }
        for (int r = 0; r < ATTN8_R && j0 + r < kn; r++) {
            vec8_store(st + (j0 + r) * ATTN8_QT, acc[r][0]);
            vec8_store(st + (j0 + r) * ATTN8_QT + 8, acc[r][1]);
        }
    }
}

// One online-softmax step: st (kn, 16) base-2 scores become p = 2^(st - m'); m, l and
// alpha = 2^(m - m') (16 each) are updated per query.
static void attn8_softmax_step(float* st, float* m, float* l, float* alpha, int64_t kn) {
    for (int u = 0; u < ATTN8_QT; u += 8) {
        vec8 m_old = vec8_load(m + u), mx = m_old;
        for (int64_t j = 0; j < kn; j++) mx = vec8_max(mx, vec8_load(st + j * ATTN8_QT + u));
        vec8 neg_mx = vec8_sub(vec8_zero(), mx), sum = vec8_zero();
        for (int64_t j = 0; j < kn; j++) {
            vec8 p = vec8_exp2(vec8_add(vec8_load(st + j * ATTN8_QT + u), neg_mx));
            vec8_store(st + j * ATTN8_QT + u, p);
            sum = vec8_add(sum, p);
        }
        vec8 a = vec8_exp2(vec8_add(m_old, neg_mx)); // 0 on the first block (m = -inf)
        vec8_store(alpha + u, a);
        vec8_store(l + u, vec8_fma(vec8_load(l + u), a, sum));
        vec8_store(m + u, mx);
    }
}

// ot (d, ldo)[:, :16] = ot * alpha + v^T @ p, for p (kn, 16) and v (kn rows of stride ldv).
// Past the last head dim the tile re-reads dim d - 1 and does not store.
static void attn8_accumulate(float* ot, int64_t ldo, const float* v, int64_t ldv, const float* p, const float* alpha,
                             int64_t kn, int64_t d) {
    vec8 a0 = vec8_load(alpha), a1 = vec8_load(alpha + 8);
    for (int64_t c0 = 0; c0 < d; c0 += ATTN8_R) {
        int64_t dim[ATTN8_R];
        vec8 acc[ATTN8_R][2];
        for (int r = 0; r < ATTN8_R; r++) {
            dim[r] = c0 + r < d ? c0 + r : d - 1;
            acc[r][0] = vec8_mul(vec8_load(ot + dim[r] * ldo), a0);
            acc[r][1] = vec8_mul(vec8_load(ot + dim[r] * ldo + 8), a1);
        }
        for (int64_t j = 0; j < kn; j++) {
            const float* vj = v + j * ldv; // (d)
            vec8 p0 = vec8_load(p + j * ATTN8_QT), p1 = vec8_load(p + j * ATTN8_QT + 8);
            for (int r = 0; r < ATTN8_R; r++) {
                vec8 vv = vec8_set1(vj[dim[r]]);
                acc[r][0] = vec8_fma(vv, p0, acc[r][0]);
                acc[r][1] = vec8_fma(vv, p1, acc[r][1]);
            }
        }
        for (int r = 0; r < ATTN8_R && c0 + r < d; r++) {
            vec8_store(ot + (c0 + r) * ldo, acc[r][0]);
            vec8_store(ot + (c0 + r) * ldo + 8, acc[r][1]);
        }
    }
}

// Causal mask of st (kn, qt_width): key j is hidden from query u when j > u + diag, diag being
// the tile's first query minus the block's first key. Only tiles crossing the diagonal call it.
static void attn_mask_causal(float* st, int64_t qt_width, int64_t kn, int64_t diag) {
    for (int64_t j = diag + 1 > 0 ? diag + 1 : 0; j < kn; j++)
        for (int64_t u = j - diag - 1 < qt_width - 1 ? j - diag - 1 : qt_width - 1; u >= 0; u--)
            st[j * qt_width + u] = -INFINITY;
}

// One tile of queries against one key block: kb, vb (kn rows of stride ldkv); qt, ot (d, ld)
// at the tile's first query; st (kn, tile) scratch; m, l, alpha (tile); diag as in
// attn_mask_causal, masking when diag < kn - 1. The tile is 16 queries here, 32 for attn16_tile.
typedef void attn_tile_fn(float* ot, const float* qt, int64_t ld, const float* kb, const float* vb, int64_t ldkv,
                          float* st, float* m, float* l, float* alpha, int64_t kn, int64_t d, int64_t diag);

static void attn8_tile(float* ot, const float* qt, int64_t ld, const float* kb, const float* vb, int64_t ldkv,
                       float* st, float* m, float* l, float* alpha, int64_t kn, int64_t d, int64_t diag) {
    attn8_scores(st, kb, ldkv, qt, ld, kn, d);
    if (diag < kn - 1) attn_mask_causal(st, ATTN8_QT, kn, diag);
    attn8_softmax_step(st, m, l, alpha, kn);
    attn8_accumulate(ot, ld, vb, ldkv, st, alpha, kn, d);
}

// ---- 16-float AVX-512 kernels: tiles of ATTN16_R rows by 32 queries ---------------------------
// The same three steps as above, line for line, on 16-float vectors.

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ATTN_HAVE_AVX512 1
#define AVX512 __attribute__((target("avx512f")))
#define ATTN16_R 8 // 8 x 2 accumulators + 3 of the 32 AVX-512 registers
#define ATTN16_QT 32

// cpu_exp2f (cpu_ops.h) on 16 lanes.
AVX512 static inline __m512 vec16_exp2(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

AVX512 static void attn16_scores(float* st, const float* k, int64_t ldk, const float* qt, int64_t ldq, int64_t kn,
                                 int64_t d) {
    for (int64_t j0 = 0; j0 < kn; j0 += ATTN16_R) {
        const float* kr[ATTN16_R]; // (d) each
        for (int r = 0; r < ATTN16_R; r++) kr[r] = k + (j0 + r < kn ? j0 + r : kn - 1) * ldk;
        __m512 acc[ATTN16_R][2];
        for (int r = 0; r < ATTN16_R; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        for (int64_t c = 0; c < d; c++) {
            __m512 q0 = _mm512_loadu_ps(qt + c * ldq), q1 = _mm512_loadu_ps(qt + c * ldq + 16);
            for (int r = 0; r < ATTN16_R; r++) {
                __m512 kv = _mm512_set1_ps(kr[r][c]);
                acc[r][0] = _mm512_fmadd_ps(kv, q0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(kv, q1, acc[r][1]);
            }
        }
        for (int r = 0; r < ATTN16_R && j0 + r < kn; r++) {
            _mm512_storeu_ps(st + (j0 + r) * ATTN16_QT, acc[r][0]);
            _mm512_storeu_ps(st + (j0 + r) * ATTN16_QT + 16, acc[r][1]);
        }
    }
}

AVX512 static void attn16_softmax_step(float* st, float* m, float* l, float* alpha, int64_t kn) {
    for (int u = 0; u < ATTN16_QT; u += 16) {
        __m512 m_old = _mm512_loadu_ps(m + u), mx = m_old;
        for (int64_t j = 0; j < kn; j++) mx = _mm512_max_ps(mx, _mm512_loadu_ps(st + j * ATTN16_QT + u));
        __m512 neg_mx = _mm512_sub_ps(_mm512_setzero_ps(), mx), sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < kn; j++) {
            __m512 p = vec16_exp2(_mm512_add_ps(_mm512_loadu_ps(st + j * ATTN16_QT + u), neg_mx));
            _mm512_storeu_ps(st + j * ATTN16_QT + u, p);
            sum = _mm512_add_ps(sum, p);
        }
        __m512 a = vec16_exp2(_mm512_add_ps(m_old, neg_mx));
        _mm512_storeu_ps(alpha + u, a);
        _mm512_storeu_ps(l + u, _mm512_fmadd_ps(_mm512_loadu_ps(l + u), a, sum));
        _mm512_storeu_ps(m + u, mx);
    }
}

AVX512 static void attn16_accumulate(float* ot, int64_t ldo, const float* v, int64_t ldv, const float* p,
                                     const float* alpha, int64_t kn, int64_t d) {
    __m512 a0 = _mm512_loadu_ps(alpha), a1 = _mm512_loadu_ps(alpha + 16);
    for (int64_t c0 = 0; c0 < d; c0 += ATTN16_R) {
        int64_t dim[ATTN16_R];
        __m512 acc[ATTN16_R][2];
        for (int r = 0; r < ATTN16_R; r++) {
            dim[r] = c0 + r < d ? c0 + r : d - 1;
            acc[r][0] = _mm512_mul_ps(_mm512_loadu_ps(ot + dim[r] * ldo), a0);
            acc[r][1] = _mm512_mul_ps(_mm512_loadu_ps(ot + dim[r] * ldo + 16), a1);
        }
        for (int64_t j = 0; j < kn; j++) {
            const float* vj = v + j * ldv; // (d)
            __m512 p0 = _mm512_loadu_ps(p + j * ATTN16_QT), p1 = _mm512_loadu_ps(p + j * ATTN16_QT + 16);
            for (int r = 0; r < ATTN16_R; r++) {
                __m512 vv = _mm512_set1_ps(vj[dim[r]]);
                acc[r][0] = _mm512_fmadd_ps(vv, p0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(vv, p1, acc[r][1]);
            }
        }
        for (int r = 0; r < ATTN16_R && c0 + r < d; r++) {
            _mm512_storeu_ps(ot + (c0 + r) * ldo, acc[r][0]);
            _mm512_storeu_ps(ot + (c0 + r) * ldo + 16, acc[r][1]);
        }
    }
}

AVX512 static void attn16_tile(float* ot, const float* qt, int64_t ld, const float* kb, const float* vb, int64_t ldkv,
                               float* st, float* m, float* l, float* alpha, int64_t kn, int64_t d, int64_t diag) {
    attn16_scores(st, kb, ldkv, qt, ld, kn, d);
    if (diag < kn - 1) attn_mask_causal(st, ATTN16_QT, kn, diag);
    attn16_softmax_step(st, m, l, alpha, kn);
    attn16_accumulate(ot, ld, vb, ldkv, st, alpha, kn, d);
}
#endif

// ---- the op ----------------------------------------------------------------------------------------

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Row stride of qt and ot: one cache line more than the chunk, so that walking down a column
// (the kernels do, d rows deep) does not land every row in the same few L1 sets.
static int64_t attn_ld(int64_t chunk) { return round_up(chunk, 16) + 16; }

// Floats of one thread's blocks.
static int64_t attn_floats(int64_t chunk, int64_t qt_width, int64_t bk, int64_t d) {
    return 2 * d * attn_ld(chunk)            // qt and ot
           + round_up(bk * qt_width, 16)     // scores, then probabilities, of one tile
           + 3 * round_up(chunk, 16);        // running max, running sum, rescale factor
}

dato_status cpu_attention(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                          const dato_tensor* v, int heads, float scale, int causal, dato_error* err) {
    DATO_TRY(dato_op_check_attention(out, q, k, v, heads, causal, DATO_DEV_CPU, err));
    char sq[96];
    int64_t batch = q->shape[0], nq = q->shape[1], nk = k->shape[1], channels = q->shape[2];
    if (batch == 0 || nq == 0) return DATO_OK;

    // The kernels: 16 queries per tile, or 32 with AVX-512.
    const cpu_backend* cpu = be->impl;
    attn_tile_fn* tile_fn = attn8_tile;
    int64_t qt_width = ATTN8_QT;
#ifdef ATTN_HAVE_AVX512
    if (cpu->isa >= CPU_ISA_AVX512) tile_fn = attn16_tile, qt_width = ATTN16_QT;
#endif
    // Chunks of up to ATTN_CHUNK_TILES tiles, shortened when that is needed for 4 tasks per
    // thread or to fit the scratch (qt and ot dominate it: d * chunk each).
    int64_t d = channels / heads;
    int64_t chunks_wanted = (4 * cpu->threads + batch * heads - 1) / (batch * heads);
    int64_t chunk = round_up((nq + chunks_wanted - 1) / chunks_wanted, qt_width);
    chunk = chunk < ATTN_CHUNK_TILES * qt_width ? chunk : ATTN_CHUNK_TILES * qt_width;
    int64_t bk = nk < ATTN_BK ? nk : ATTN_BK;
    while (attn_floats(chunk, qt_width, bk, d) > (int64_t)CPU_ATTN_FLOATS_PER_THREAD) {
        if (chunk > qt_width) chunk = round_up(chunk / 2, qt_width);
        else
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "attention: head dim %lld of q %s is too large for the scratch",
                             (long long)d, dato_shape_str(q, sq, sizeof sq));
    }

    const float* qd = q->data; // (B, Nq, H*D)
    const float* kd = k->data; // (B, Nk, H*D)
    const float* vd = v->data; // (B, Nk, H*D)
    float* od = out->data;     // (B, Nq, H*D)
    const float qscale = scale * 1.44269504088896341f; // scores in base 2
    int64_t q_chunks = (nq + chunk - 1) / chunk, tasks = batch * heads * q_chunks;
    // consecutive tasks share a head's k and v (hot in the shared cache)
    #pragma omp parallel for num_threads(cpu->threads) schedule(dynamic)
    for (int64_t task = 0; task < tasks; task++) {
        int64_t n = task / (heads * q_chunks), h = task / q_chunks % heads, q0 = task % q_chunks * chunk;
        int64_t rows = nq - q0 < chunk ? nq - q0 : chunk, rows_padded = round_up(rows, qt_width);
        int64_t ld = attn_ld(chunk);
        float* qt = cpu->attn + (size_t)omp_get_thread_num() * CPU_ATTN_FLOATS_PER_THREAD; // (D, ld)
        float* ot = qt + d * ld;                      // (D, ld)
        float* s = ot + d * ld;                       // (bk, qt_width)
        float* m = s + round_up(bk * qt_width, 16);   // (chunk)
        float* l = m + round_up(chunk, 16);           // (chunk)
        float* alpha = l + round_up(chunk, 16);       // (chunk)

        // queries past the end (up to a whole tile) are zeros: their outputs are dropped
        for (int64_t i = 0; i < rows_padded; i++) {
            const float* qr = i < rows ? qd + ((n * nq + q0 + i) * heads + h) * d : NULL; // (D)
            for (int64_t c = 0; c < d; c++) qt[c * ld + i] = qr ? qr[c] * qscale : 0.0f;
            m[i] = -INFINITY;
            l[i] = 0.0f;
        }
        for (int64_t c = 0; c < d; c++) memset(ot + c * ld, 0, (size_t)rows_padded * sizeof(float));

        int64_t k_end = causal ? q0 + rows : nk; // causal: no key past the chunk's last query
        for (int64_t k0 = 0; k0 < k_end; k0 += bk) {
            int64_t kn = k_end - k0 < bk ? k_end - k0 : bk;
            const float* kb = kd + ((n * nk + k0) * heads + h) * d; // kn rows (D) of stride H*D
            const float* vb = vd + ((n * nk + k0) * heads + h) * d; // kn rows (D) of stride H*D
            for (int64_t i0 = 0; i0 < rows_padded; i0 += qt_width) {
                int64_t tile_kn = kn, diag = kn; // diag >= kn - 1: nothing masked
                if (causal) {
                    int64_t last = q0 + (i0 + qt_width < rows ? i0 + qt_width : rows) - 1; // the tile's last query
                    tile_kn = last + 1 - k0 < kn ? last + 1 - k0 : kn;
                    diag = q0 + i0 - k0;
                    if (tile_kn <= 0) continue; // every key of the block is in this tile's future
                }
                tile_fn(ot + i0, qt + i0, ld, kb, vb, channels, s, m + i0, l + i0, alpha + i0, tile_kn, d, diag);
            }
        }

        for (int64_t i = 0; i < rows; i++) {
            float* orow = od + ((n * nq + q0 + i) * heads + h) * d; // (D)
            float inv = 1.0f / l[i];
            for (int64_t c = 0; c < d; c++) orow[c] = ot[c * ld + i] * inv;
        }
    }
    return DATO_OK;
}
