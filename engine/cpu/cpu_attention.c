// Multi-head attention on the CPU, blocked with an online softmax (FlashAttention's loop on
// the CPU). One task is (image, head, chunk of up to bq queries); it walks the keys in blocks
// of bk, keeping per query a running max m, a running sum l and an output accumulator o, so
// the (Nq, Nk) score matrix never exists. Tasks run in parallel over OpenMP threads, each in
// its slice of the backend's attention scratch.
//
// Per key block: pack k transposed (D, bk) and v (bk, Dp) out of the interleaved heads (once
// for the whole chunk, which is why chunks are long), then for each sub-block of `sub` queries
//   s = (q * scale * log2 e) @ k^T             scores in base 2, so exp2 replaces exp
//   m' = max(m, rowmax s); p = 2^(s - m'); a = 2^(m - m')
//   l = l * a + rowsum p; o = o * a + p @ v
// (the (sub, bk) tile of s stays in L1/L2), and at the end out = o / l. Both products are
// register-blocked micro-kernels over ATTN_ROWS query rows by 16 columns on 8-float vectors:
// AVX2 + FMA intrinsics when the build targets them (x86-64-v3, the Release flags), else a
// portable struct of 8 floats.
#include <math.h>
#include <omp.h>

#include "cpu_ops.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 vec8;
static inline vec8 vec8_zero(void) { return _mm256_setzero_ps(); }
static inline vec8 vec8_set1(float x) { return _mm256_set1_ps(x); }
static inline vec8 vec8_load(const float* p) { return _mm256_loadu_ps(p); }
static inline void vec8_store(float* p, vec8 v) { _mm256_storeu_ps(p, v); }
static inline vec8 vec8_add(vec8 a, vec8 b) { return _mm256_add_ps(a, b); }
static inline vec8 vec8_mul(vec8 a, vec8 b) { return _mm256_mul_ps(a, b); }
static inline vec8 vec8_max(vec8 a, vec8 b) { return _mm256_max_ps(a, b); }
static inline vec8 vec8_fma(vec8 a, vec8 b, vec8 c) { return _mm256_fmadd_ps(a, b, c); } // a * b + c
static inline float vec8_hsum(vec8 a) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}
static inline float vec8_hmax(vec8 a) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}
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
static inline float vec8_hsum(vec8 a) {
    float s = 0.0f;
    for (int i = 0; i < 8; i++) s += a.f[i];
    return s;
}
static inline float vec8_hmax(vec8 a) {
    float m = a.f[0];
    for (int i = 1; i < 8; i++) m = a.f[i] > m ? a.f[i] : m;
    return m;
}
static inline vec8 vec8_exp2(vec8 x) {
    for (int i = 0; i < 8; i++) x.f[i] = cpu_exp2f(x.f[i]);
    return x;
}
#endif

#define ATTN_ROWS 6   // query rows per micro-kernel tile (bq is a multiple): 12 accumulators + 3 fit 16 registers
#define ATTN_COLS 16  // columns per micro-kernel tile, two vectors (bk is a multiple; the p @ v tail may be 8)
#define ATTN_BQ 252   // queries per task, at most (a multiple of ATTN_ROWS)
#define ATTN_SUB 48   // queries per scores / softmax / p @ v step (a multiple of ATTN_ROWS)
#define ATTN_BK 256   // keys per block, at most

static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Floats of one thread's blocks, each part rounded up to 16 floats (64 bytes).
static int64_t attn_floats(int64_t bq, int64_t sub, int64_t bk, int64_t d, int64_t dp) {
    return round_up(bq * d, 16)     // q chunk
           + round_up(d * bk, 16)   // k block, transposed
           + round_up(bk * dp, 16)  // v block
           + round_up(sub * bk, 16) // scores, then probabilities, of one sub-block
           + round_up(bq * dp, 16)  // output accumulator
           + 3 * round_up(bq, 16);  // running max, running sum, rescale factor
}

// s (bq, ld) = q (bq, d) @ kt (d, ld) over the first kn columns; bq % ATTN_ROWS == 0, kn % ATTN_COLS == 0.
static void attn_scores(float* s, const float* q, const float* kt, int64_t bq, int64_t kn, int64_t ld, int64_t d) {
    for (int64_t i = 0; i < bq; i += ATTN_ROWS)
        for (int64_t j = 0; j < kn; j += ATTN_COLS) {
            vec8 acc[ATTN_ROWS][2];
            for (int r = 0; r < ATTN_ROWS; r++) acc[r][0] = acc[r][1] = vec8_zero();
            for (int64_t c = 0; c < d; c++) {
                vec8 k0 = vec8_load(kt + c * ld + j), k1 = vec8_load(kt + c * ld + j + 8);
                for (int r = 0; r < ATTN_ROWS; r++) {
                    vec8 qv = vec8_set1(q[(i + r) * d + c]);
                    acc[r][0] = vec8_fma(qv, k0, acc[r][0]);
                    acc[r][1] = vec8_fma(qv, k1, acc[r][1]);
                }
            }
            for (int r = 0; r < ATTN_ROWS; r++) {
                vec8_store(s + (i + r) * ld + j, acc[r][0]);
                vec8_store(s + (i + r) * ld + j + 8, acc[r][1]);
            }
        }
}

// One online-softmax step over a key block: s (bq, ld) holds base-2 scores in its first kn
// columns; they become p = 2^(s - m') (padding columns up to kn_padded become 0), and m, l
// and alpha = 2^(m - m') are updated per row.
static void attn_softmax_step(float* s, float* m, float* l, float* alpha, int64_t bq, int64_t kn, int64_t kn_padded,
                              int64_t ld) {
    for (int64_t i = 0; i < bq; i++) {
        float* sr = s + i * ld; // (kn_padded): scores in, probabilities out
        for (int64_t j = kn; j < kn_padded; j++) sr[j] = -INFINITY;
        vec8 vmax = vec8_set1(m[i]);
        for (int64_t j = 0; j < kn_padded; j += 8) vmax = vec8_max(vmax, vec8_load(sr + j));
        float mx = vec8_hmax(vmax);
        vec8 vmx = vec8_set1(-mx), vsum = vec8_zero();
        for (int64_t j = 0; j < kn_padded; j += 8) {
            vec8 p = vec8_exp2(vec8_add(vec8_load(sr + j), vmx));
            vec8_store(sr + j, p);
            vsum = vec8_add(vsum, p);
        }
        alpha[i] = cpu_exp2f(m[i] - mx); // 0 on the first block (m = -inf)
        l[i] = l[i] * alpha[i] + vec8_hsum(vsum);
        m[i] = mx;
    }
}

// o[i0 .. i0+ATTN_ROWS, c0 .. c0 + 8*nvec) = o * alpha + p (rows, :kn) @ v (kn, dp), nvec 2 or 1
// (a constant after inlining, so each width gets its own unrolled loop).
static inline __attribute__((always_inline)) void attn_pv_tile(float* o, const float* p, const float* v,
                                                                const float* alpha, int64_t i0, int64_t c0, int nvec,
                                                                int64_t kn, int64_t ldp, int64_t dp) {
    vec8 acc[ATTN_ROWS][2];
    for (int r = 0; r < ATTN_ROWS; r++)
        for (int u = 0; u < nvec; u++)
            acc[r][u] = vec8_mul(vec8_load(o + (i0 + r) * dp + c0 + 8 * u), vec8_set1(alpha[i0 + r]));
    for (int64_t j = 0; j < kn; j++) {
        vec8 v0 = vec8_load(v + j * dp + c0), v1 = nvec == 2 ? vec8_load(v + j * dp + c0 + 8) : v0;
        for (int r = 0; r < ATTN_ROWS; r++) {
            vec8 pv = vec8_set1(p[(i0 + r) * ldp + j]);
            acc[r][0] = vec8_fma(pv, v0, acc[r][0]);
            if (nvec == 2) acc[r][1] = vec8_fma(pv, v1, acc[r][1]);
        }
    }
    for (int r = 0; r < ATTN_ROWS; r++)
        for (int u = 0; u < nvec; u++) vec8_store(o + (i0 + r) * dp + c0 + 8 * u, acc[r][u]);
}

// o (bq, dp) = o * alpha + p (bq, ldp)[:, :kn] @ v (kn, dp); bq % ATTN_ROWS == 0, dp % 8 == 0.
static void attn_accumulate(float* o, const float* p, const float* v, const float* alpha, int64_t bq, int64_t kn,
                            int64_t ldp, int64_t dp) {
    for (int64_t i = 0; i < bq; i += ATTN_ROWS) {
        int64_t c = 0;
        for (; c + 16 <= dp; c += 16) attn_pv_tile(o, p, v, alpha, i, c, 2, kn, ldp, dp);
        if (c < dp) attn_pv_tile(o, p, v, alpha, i, c, 1, kn, ldp, dp);
    }
}

dato_status cpu_attention(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                          const dato_tensor* v, int heads, float scale, dato_error* err) {
    dato_status st;
    if ((st = cpu_check("attention", "out", out, 3, err)) || (st = cpu_check("attention", "q", q, 3, err)) ||
        (st = cpu_check("attention", "k", k, 3, err)) || (st = cpu_check("attention", "v", v, 3, err)) ||
        (st = cpu_check_same_shape("attention", "v", v, "k", k, err)) ||
        (st = cpu_check_same_shape("attention", "out", out, "q", q, err)))
        return st;
    char sq[96], sk[96];
    int64_t batch = q->shape[0], nq = q->shape[1], nk = k->shape[1], channels = q->shape[2];
    if (k->shape[0] != batch || k->shape[2] != channels)
        return dato_fail(err, DATO_ERR_INVALID, "attention: k %s does not match q %s in batch or channels",
                         dato_shape_str(k, sk, sizeof sk), dato_shape_str(q, sq, sizeof sq));
    if (heads < 1 || channels % heads != 0 || channels == 0)
        return dato_fail(err, DATO_ERR_INVALID, "attention: %d heads do not divide the %lld channels of q %s", heads,
                         (long long)channels, dato_shape_str(q, sq, sizeof sq));
    if (nk == 0)
        return dato_fail(err, DATO_ERR_INVALID, "attention: k %s has no tokens", dato_shape_str(k, sk, sizeof sk));
    if (batch == 0 || nq == 0) return DATO_OK;
    // Blocks: as large as the defaults allow, no larger than the problem, shrunk to fit the
    // scratch. Chunks are shortened when that is needed for 4 tasks per thread.
    const cpu_backend* cpu = be->impl;
    int64_t d = channels / heads, dp = round_up(d, 8);
    int64_t chunks_wanted = (4 * cpu->threads + batch * heads - 1) / (batch * heads);
    int64_t bq = round_up((nq + chunks_wanted - 1) / chunks_wanted, ATTN_ROWS);
    bq = bq < ATTN_BQ ? bq : ATTN_BQ;
    int64_t sub = bq < ATTN_SUB ? bq : ATTN_SUB;
    int64_t bk = round_up(nk < ATTN_BK ? nk : ATTN_BK, ATTN_COLS);
    while (attn_floats(bq, sub, bk, d, dp) > (int64_t)CPU_ATTN_FLOATS_PER_THREAD) {
        if (bk > 4 * ATTN_COLS) bk = round_up(bk / 2, ATTN_COLS);
        else if (bq > sub) bq = bq / 2 > sub ? round_up(bq / 2, ATTN_ROWS) : sub;
        else if (bk > ATTN_COLS) bk = round_up(bk / 2, ATTN_COLS);
        else if (sub > ATTN_ROWS) bq = sub = round_up(sub / 2, ATTN_ROWS);
        else
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "attention: head dim %lld of q %s is too large for the scratch",
                             (long long)d, dato_shape_str(q, sq, sizeof sq));
    }

    const float* qd = q->data; // (B, Nq, H*D)
    const float* kd = k->data; // (B, Nk, H*D)
    const float* vd = v->data; // (B, Nk, H*D)
    float* od = out->data;     // (B, Nq, H*D)
    const float qscale = scale * 1.44269504088896341f; // scores in base 2
    int64_t q_chunks = (nq + bq - 1) / bq, tasks = batch * heads * q_chunks;
    // consecutive tasks share a head's k and v (hot in the shared cache)
    #pragma omp parallel for num_threads(cpu->threads) schedule(dynamic)
    for (int64_t task = 0; task < tasks; task++) {
        int64_t n = task / (heads * q_chunks), h = task / q_chunks % heads, q0 = task % q_chunks * bq;
        int64_t rows = nq - q0 < bq ? nq - q0 : bq, rows_padded = round_up(rows, ATTN_ROWS);
        float* qb = cpu->attn + (size_t)omp_get_thread_num() * CPU_ATTN_FLOATS_PER_THREAD; // (bq, D)
        float* kt = qb + round_up(bq * d, 16);     // (D, bk)
        float* vb = kt + round_up(d * bk, 16);     // (bk, Dp)
        float* s = vb + round_up(bk * dp, 16);     // (sub, bk)
        float* o = s + round_up(sub * bk, 16);     // (bq, Dp)
        float* m = o + round_up(bq * dp, 16);      // (bq)
        float* l = m + round_up(bq, 16);           // (bq)
        float* alpha = l + round_up(bq, 16);       // (bq)

        // q rows past the end (up to a multiple of ATTN_ROWS) are zeros: their outputs are dropped
        for (int64_t i = 0; i < rows_padded; i++) {
            if (i < rows) {
                const float* qr = qd + ((n * nq + q0 + i) * heads + h) * d; // (D)
                for (int64_t c = 0; c < d; c++) qb[i * d + c] = qr[c] * qscale;
            } else {
                memset(qb + i * d, 0, (size_t)d * sizeof(float));
            }
            m[i] = -INFINITY;
            l[i] = 0.0f;
        }
        memset(o, 0, (size_t)(rows_padded * dp) * sizeof(float));

        for (int64_t k0 = 0; k0 < nk; k0 += bk) {
            int64_t kn = nk - k0 < bk ? nk - k0 : bk, kn_padded = round_up(kn, ATTN_COLS);
            for (int64_t j = 0; j < kn; j++) {
                const float* kr = kd + ((n * nk + k0 + j) * heads + h) * d; // (D)
                const float* vr = vd + ((n * nk + k0 + j) * heads + h) * d; // (D)
                for (int64_t c = 0; c < d; c++) kt[c * bk + j] = kr[c];
                for (int64_t c = 0; c < dp; c++) vb[j * dp + c] = c < d ? vr[c] : 0.0f;
            }
            for (int64_t c = 0; c < d; c++) // padded key columns are never used: their p is 0
                for (int64_t j = kn; j < kn_padded; j++) kt[c * bk + j] = 0.0f;
            for (int64_t i0 = 0; i0 < rows_padded; i0 += sub) {
                int64_t sub_rows = rows_padded - i0 < sub ? rows_padded - i0 : sub;
                attn_scores(s, qb + i0 * d, kt, sub_rows, kn_padded, bk, d);
                attn_softmax_step(s, m + i0, l + i0, alpha + i0, sub_rows, kn, kn_padded, bk);
                attn_accumulate(o + i0 * dp, s, vb, alpha + i0, sub_rows, kn, bk, dp);
            }
        }

        for (int64_t i = 0; i < rows; i++) {
            float* orow = od + ((n * nq + q0 + i) * heads + h) * d; // (D)
            float inv = 1.0f / l[i];
            for (int64_t c = 0; c < d; c++) orow[c] = o[i * dp + c] * inv;
        }
    }
    return DATO_OK;
}
