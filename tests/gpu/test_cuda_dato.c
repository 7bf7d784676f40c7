// The DaTo pruning kernels of the CUDA backend (engine/backends/cuda/cuda_dato.h) against the CPU reference
// pieces of engine/runtime/dato.h and, for the similarity / gather / scatter chain, plain loops that
// mirror prune_self_attention in engine/runtime/dato.c. Seeded random inputs at SD sizes (B 4, a 64 x 64
// grid, C 320, patch 2 -> P 1024), an odd grid (7 x 9, C 77) and a long one (N 5200 > 4096,
// patch 3), with deliberate ties (duplicate and power-of-two-scaled tokens, quantized scores and
// similarities, -0 next to +0). Integer outputs must match exactly; float outputs to 1e-5
// relative (the copies of gather/scatter exactly). Outputs are poisoned before each op (NaN for
// floats, 0x7f bytes for indices). Exits 77 (skipped) without CUDA or a GPU.
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_dato.h"
#include "cuda_device.h"
#include "dato.h"
#include "rng.h"
#include "test_util.h"

#define F32_TOL 1e-5
#define POISON_F32 0xff // NaN
#define POISON_INT 0x7f // 0x7f7f7f7f: no index; 0x7f: neither 0 nor 1

// ---- device helpers (the CUDA runtime's C API) -------------------------------------------------

static void* dev_alloc(size_t n) {
    void* p = NULL;
    cudaError_t e = cudaMalloc(&p, n);
    CHECK(e == cudaSuccess, "cudaMalloc %zu bytes: %s", n, cudaGetErrorString(e));
    return e == cudaSuccess ? p : NULL;
}

static void poison(void* d, int byte, size_t n) {
    cudaError_t e = cudaMemset(d, byte, n);
    CHECK(e == cudaSuccess, "cudaMemset: %s", cudaGetErrorString(e));
}

static void upload(void* d, const void* h, size_t n) {
    cudaError_t e = cudaMemcpy(d, h, n, cudaMemcpyHostToDevice);
    CHECK(e == cudaSuccess, "upload: %s", cudaGetErrorString(e));
}

// Waits for the stream, then copies n bytes back.
static void download(void* h, const void* d, size_t n, cudaStream_t st) {
    cudaError_t e = cudaStreamSynchronize(st);
    CHECK(e == cudaSuccess, "stream: %s", cudaGetErrorString(e));
    e = cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost);
    CHECK(e == cudaSuccess, "download: %s", cudaGetErrorString(e));
}

// ---- comparisons ---------------------------------------------------------------------------------

// max over i of |got - ref| / max(|ref|, floor); a NaN in got gives infinity.
static double max_rel(const float* got, const float* ref, size_t n, double floor) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]), d = fabs((double)got[i] - (double)ref[i]) / (r > floor ? r : floor);
        if (d != d) d = INFINITY;
        m = d > m ? d : m;
    }
    return m;
}

// Number of i with got[i] != ref[i]; the first is printed.
static size_t count_diff_i32(const char* what, const int32_t* got, const int32_t* ref, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i] && !bad++)
            printf("  %s: first mismatch at %zu: got %d, want %d\n", what, i, got[i], ref[i]);
    return bad;
}

static size_t count_diff_u8(const char* what, const uint8_t* got, const uint8_t* ref, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i] && !bad++)
            printf("  %s: first mismatch at %zu: got %d, want %d\n", what, i, got[i], ref[i]);
    return bad;
}

// ---- reference loops mirroring prune_self_attention ----------------------------------------------

// xn (N, C) = x (N, C) scaled to unit norm, as dato.c.
static void ref_normalize(const float* x, int N, int C, float* xn) {
    for (int i = 0; i < N; i++) {
        double nn = 0;
        for (int c = 0; c < C; c++) nn += (double)x[(size_t)i * C + c] * x[(size_t)i * C + c];
        float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
        for (int c = 0; c < C; c++) xn[(size_t)i * C + c] = x[(size_t)i * C + c] * inv;
    }
}

// s (P) = xi . xn[base[j]] (C channels), summed in double in channel order and rounded to float:
// dato.c's linear, summed exactly enough that only true near-ties could order differently.
// Four base tokens at a time, each its own in-order sum, for speed.
static void ref_sims(const float* xi, const float* xn, const int32_t* base, int P, int C, float* s) {
    int j = 0;
    for (; j + 4 <= P; j += 4) {
        const float *b0 = xn + (size_t)base[j] * C, *b1 = xn + (size_t)base[j + 1] * C;
        const float *b2 = xn + (size_t)base[j + 2] * C, *b3 = xn + (size_t)base[j + 3] * C;
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (int c = 0; c < C; c++) {
            a0 += (double)xi[c] * b0[c];
            a1 += (double)xi[c] * b1[c];
            a2 += (double)xi[c] * b2[c];
            a3 += (double)xi[c] * b3[c];
        }
        s[j] = (float)a0, s[j + 1] = (float)a1, s[j + 2] = (float)a2, s[j + 3] = (float)a3;
    }
    for (; j < P; j++) {
        const float* bj = xn + (size_t)base[j] * C;
        double a = 0;
        for (int c = 0; c < C; c++) a += (double)xi[c] * bj[c];
        s[j] = (float)a;
    }
}

// ---- one case ------------------------------------------------------------------------------------

// Every kernel on B rows of an H x W token grid with C channels and patch s. The dynamics
// scores come from (B, 4, 2H, 2W) predictions pooled by 2, as at UNet level 1.
static void run_case(int B, int H, int W, int C, int s, uint64_t seed, cudaStream_t st) {
    int N = H * W, Pw = (W + s - 1) / s, P = ((H + s - 1) / s) * Pw, L = 4, HWl = 4 * N;
    printf("case B %d, grid %d x %d, C %d, patch %d: N %d, P %d\n", B, H, W, C, s, N, P);
    dato_rng rng;
    dato_rng_seed(&rng, seed);
    dato_error err = {{0}};
    size_t nlat = (size_t)B * L * HWl, nd = (size_t)B * HWl, nt = (size_t)B * N, nb = (size_t)B * P;
    size_t nx = (size_t)B * N * C;

    // Host: inputs, results and references.
    float *a = malloc(nlat * 4), *b = malloc(nlat * 4), *d_ref = malloc(nd * 4), *d_got = malloc(nd * 4);
    float *pool_ref = malloc(nt * 4), *pool_got = malloc(nt * 4), *score = malloc(nt * 4);
    int32_t *base_ref = malloc(nb * 4), *base_got = malloc(nb * 4);
    float *x = malloc(nx * 4), *xn_ref = malloc(nx * 4), *xn_got = malloc(nx * 4), *srow = malloc((size_t)P * 4);
    float *sim_ref = malloc(nt * 4), *sim_got = malloc(nt * 4), *sim_q = malloc(nt * 4);
    int32_t *assign_ref = malloc(nt * 4), *assign_got = malloc(nt * 4), *pos_ref = malloc(nt * 4);
    int32_t *pos_got = malloc(nt * 4), *pruned = malloc((size_t)N * 4);
    uint8_t *isb_ref = malloc(nt), *isb_got = malloc(nt), *keep_ref = malloc(nt), *keep_got = malloc(nt);
    dato_scored* scratch = malloc((size_t)N * sizeof *scratch);
    float *xk_ref = malloc(nx * 4), *xk_got = malloc(nx * 4), *ok = malloc(nx * 4);
    float *out_ref = malloc(nx * 4), *out_got = malloc(nx * 4);
    void* host[] = {a,       b,       d_ref,   d_got,      pool_ref,   pool_got, score,   base_ref, base_got,
                    x,       xn_ref,  xn_got,  srow,       sim_ref,    sim_got,  sim_q,   pos_ref,  pos_got,
                    pruned,  isb_ref, isb_got, keep_ref,   keep_got,   scratch,  xk_ref,  xk_got,   ok,
                    out_ref, out_got, assign_ref, assign_got};
    // Device: the same buffers, sized as cuda_dato.h documents.
    float *da = dev_alloc(nlat * 4), *db = dev_alloc(nlat * 4), *dd = dev_alloc(nd * 4), *dpool = dev_alloc(nt * 4);
    int32_t* dbase = dev_alloc(nb * 4);
    float *dx = dev_alloc(nx * 4), *dxn = dev_alloc(nx * 4), *dsim = dev_alloc(nt * 4);
    int32_t *dassign = dev_alloc(nt * 4), *dpos = dev_alloc(nt * 4);
    uint8_t *disb = dev_alloc(nt), *dkeep = dev_alloc(nt);
    float *dxk = dev_alloc(nx * 4), *dok = dev_alloc(nx * 4), *dout = dev_alloc(nx * 4);
    void* dev[] = {da, db, dd, dpool, dbase, dx, dxn, dsim, dassign, dpos, disb, dkeep, dxk, dok, dout};
    int ready = 1;
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) ready = ready && host[i];
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) ready = ready && dev[i];
    CHECK(ready, "case buffers");
    if (!ready) goto done;

    // 1. diffscore (B, 4, 2H, 2W) -> (B, 2H, 2W): the same double sums, so bit-identical.
    dato_rng_fill_normal(&rng, a, nlat);
    dato_rng_fill_normal(&rng, b, nlat);
    upload(da, a, nlat * 4);
    upload(db, b, nlat * 4);
    poison(dd, POISON_F32, nd * 4);
    dato_status rc = dato_cuda_diffscore(da, db, B, L, HWl, dd, st, &err);
    CHECK(rc == DATO_OK, "diffscore: %s", err.msg);
    download(d_got, dd, nd * 4, st);
    dato_diffscore(a, b, B, L, HWl, d_ref);
    double e = max_rel(d_got, d_ref, nd, 1e-30);
    printf("  diffscore: max rel err %.3g\n", e);
    CHECK(e <= F32_TOL, "diffscore rel err %g", e);

    // 2. pool_scores by 2 -> (B, H, W), on the device's d for both.
    poison(dpool, POISON_F32, nt * 4);
    rc = dato_cuda_pool_scores(dd, B, 2 * H, 2 * W, 2, dpool, st, &err);
    CHECK(rc == DATO_OK, "pool_scores: %s", err.msg);
    download(pool_got, dpool, nt * 4, st);
    dato_pool_scores(d_got, B, 2 * H, 2 * W, 2, pool_ref);
    e = max_rel(pool_got, pool_ref, nt, 1e-30);
    printf("  pool_scores: max rel err %.3g\n", e);
    CHECK(e <= F32_TOL, "pool_scores rel err %g", e);

    // 3. choose_base on the pooled scores, then on scores of 3 levels (ties in most patches).
    for (int ties = 0; ties < 2; ties++) {
        const float* sc = pool_got;
        if (ties) {
            for (size_t i = 0; i < nt; i++) score[i] = (float)dato_rng_below(&rng, 3);
            upload(dpool, score, nt * 4);
            sc = score;
        }
        poison(dbase, POISON_INT, nb * 4);
        rc = dato_cuda_choose_base(dpool, B, H, W, s, dbase, st, &err);
        CHECK(rc == DATO_OK, "choose_base: %s", err.msg);
        download(base_got, dbase, nb * 4, st);
        for (int r = 0; r < B; r++) dato_choose_base(sc + (size_t)r * N, H, W, s, base_ref + (size_t)r * P);
        size_t bad = count_diff_i32("base", base_got, base_ref, nb);
        printf("  choose_base (%s): %zu of %zu differ\n", ties ? "tied scores" : "pooled scores", bad, nb);
        CHECK(bad == 0, "choose_base: %zu mismatches", bad);
    }

    // 4. similarity. Bases: dato.c's seeded random pick, uploaded as the runtime does before two
    //    predictions exist. Ties: base 3 is a copy of base 1 (its matches must name base 1), and
    //    among the non-base tokens one is zero, one in 8 copies base 1, one in 8 is twice base
    //    P-1 (the same unit vector bit for bit); the copies tie on sim for the selection.
    for (int r = 0; r < B; r++)
        for (int py = 0, p = 0; py < H; py += s)
            for (int px = 0; px < W; px += s, p++) {
                int ph = py + s <= H ? s : H - py, pw = px + s <= W ? s : W - px;
                int k = (int)dato_rng_below(&rng, (uint64_t)(ph * pw));
                base_ref[(size_t)r * P + p] = (py + k / pw) * W + px + k % pw;
            }
    dato_rng_fill_normal(&rng, x, nx);
    memset(isb_ref, 0, nt);
    for (int r = 0; r < B; r++) {
        const int32_t* br = base_ref + (size_t)r * P;
        float* xr = x + (size_t)r * N * C;
        for (int j = 0; j < P; j++) isb_ref[(size_t)r * N + br[j]] = 1;
        memcpy(xr + (size_t)br[3] * C, xr + (size_t)br[1] * C, (size_t)C * 4);
        for (int i = 0, m = 0; i < N; i++) {
            if (isb_ref[(size_t)r * N + i]) continue;
            float* xi = xr + (size_t)i * C;
            if (m == 0) memset(xi, 0, (size_t)C * 4);
            else if (m % 8 == 1) memcpy(xi, xr + (size_t)br[1] * C, (size_t)C * 4);
            else if (m % 8 == 5)
                for (int c = 0; c < C; c++) xi[c] = 2.0f * xr[(size_t)br[P - 1] * C + c];
            m++;
        }
    }
    upload(dbase, base_ref, nb * 4);
    upload(dx, x, nx * 4);
    poison(dxn, POISON_F32, nx * 4);
    poison(disb, POISON_INT, nt);
    poison(dsim, POISON_F32, nt * 4);
    poison(dassign, POISON_INT, nt * 4);
    rc = dato_cuda_similarity(dx, dbase, B, N, C, P, dxn, disb, dsim, dassign, st, &err);
    CHECK(rc == DATO_OK, "similarity: %s", err.msg);
    download(xn_got, dxn, nx * 4, st);
    download(isb_got, disb, nt, st);
    download(sim_got, dsim, nt * 4, st);
    download(assign_got, dassign, nt * 4, st);
    for (int r = 0; r < B; r++) {
        const int32_t* br = base_ref + (size_t)r * P;
        float* xnr = xn_ref + (size_t)r * N * C;
        ref_normalize(x + (size_t)r * N * C, N, C, xnr);
        for (int i = 0; i < N; i++) {
            ref_sims(xnr + (size_t)i * C, xnr, br, P, C, srow);
            int best = 0;
            for (int j = 1; j < P; j++)
                if (srow[j] > srow[best]) best = j;
            sim_ref[(size_t)r * N + i] = srow[best];
            assign_ref[(size_t)r * N + i] = isb_ref[(size_t)r * N + i] ? i : br[best];
        }
    }
    e = max_rel(xn_got, xn_ref, nx, 1e-30);
    printf("  similarity: xn max rel err %.3g\n", e);
    CHECK(e <= F32_TOL, "xn rel err %g", e);
    // sim: relative to max(|ref|, 1e-3), since a cosine near 0 is a cancellation (the zero token's is exactly 0).
    e = max_rel(sim_got, sim_ref, nt, 1e-3);
    printf("  similarity: sim max rel err %.3g (floor 1e-3)\n", e);
    CHECK(e <= F32_TOL, "sim rel err %g", e);
    size_t bad = count_diff_u8("is_base", isb_got, isb_ref, nt);
    CHECK(bad == 0, "is_base: %zu mismatches", bad);
    bad = count_diff_i32("assign", assign_got, assign_ref, nt);
    printf("  similarity: is_base, assign: %zu of %zu assignments differ\n", bad, nt);
    CHECK(bad == 0, "assign: %zu mismatches", bad);

    // 5. select_pruned: first on similarities of 5 levels with -0 beside +0 (ties everywhere),
    //    then on the device's sim for n = 0, 1, N - P (the cap) and half the tokens, the last
    //    kept for the gather.
    static const float levels[] = {-0.0f, 0.0f, 0.5f, 1.0f, -0.25f};
    for (size_t i = 0; i < nt; i++) sim_q[i] = levels[dato_rng_below(&rng, 5)];
    int n_half = (int)floorf(0.5f * (float)N + 1e-4f);
    if (n_half > N - P) n_half = N - P;
    int ns[] = {n_half, 0, 1, N - P, n_half};
    for (int t = 0; t < 5; t++) {
        const float* sv = t == 0 ? sim_q : sim_got;
        upload(dsim, sv, nt * 4);
        poison(dkeep, POISON_INT, nt);
        rc = dato_cuda_select_pruned(dsim, disb, B, N, P, ns[t], dkeep, st, &err);
        CHECK(rc == DATO_OK, "select_pruned: %s", err.msg);
        download(keep_got, dkeep, nt, st);
        memset(keep_ref, 1, nt);
        for (int r = 0; r < B; r++) {
            int np = dato_select_pruned(sv + (size_t)r * N, isb_ref + (size_t)r * N, N, P, ns[t], pruned, scratch);
            CHECK(np == ns[t], "reference pruned %d of %d", np, ns[t]);
            for (int k = 0; k < np; k++) keep_ref[(size_t)r * N + pruned[k]] = 0;
        }
        bad = count_diff_u8("keep", keep_got, keep_ref, nt);
        printf("  select_pruned (%s, n %d): %zu of %zu differ\n", t ? "sim" : "tied sim", ns[t], bad, nt);
        CHECK(bad == 0, "select_pruned n %d: %zu mismatches", ns[t], bad);
    }

    // 6. gather_kept: positions and kept tokens, as dato.c.
    int Nk = N - n_half;
    poison(dpos, POISON_INT, nt * 4);
    poison(dxk, POISON_F32, nx * 4);
    rc = dato_cuda_gather_kept(dx, dkeep, B, N, C, Nk, dpos, dxk, st, &err);
    CHECK(rc == DATO_OK, "gather_kept: %s", err.msg);
    download(pos_got, dpos, nt * 4, st);
    download(xk_got, dxk, (size_t)B * Nk * C * 4, st);
    for (int r = 0; r < B; r++)
        for (int i = 0, k = 0; i < N; i++) {
            int32_t* pr = pos_ref + (size_t)r * N;
            pr[i] = keep_ref[(size_t)r * N + i] ? k++ : -1;
            if (pr[i] >= 0)
                memcpy(xk_ref + ((size_t)r * Nk + pr[i]) * C, x + ((size_t)r * N + i) * C, (size_t)C * 4);
        }
    bad = count_diff_i32("pos", pos_got, pos_ref, nt);
    e = test_max_abs_diff(xk_got, xk_ref, (size_t)B * Nk * C);
    printf("  gather_kept (Nk %d): %zu positions differ, x_kept max abs err %.3g\n", Nk, bad, e);
    CHECK(bad == 0, "pos: %zu mismatches", bad);
    CHECK(e == 0, "x_kept max abs err %g (copies must be exact)", e);

    // 7. scatter_recover from random o_kept, with the reference pos and assign uploaded.
    dato_rng_fill_normal(&rng, ok, (size_t)B * Nk * C);
    upload(dok, ok, (size_t)B * Nk * C * 4);
    upload(dpos, pos_ref, nt * 4);
    upload(dassign, assign_ref, nt * 4);
    poison(dout, POISON_F32, nx * 4);
    rc = dato_cuda_scatter_recover(dok, dpos, dassign, B, N, C, Nk, dout, st, &err);
    CHECK(rc == DATO_OK, "scatter_recover: %s", err.msg);
    download(out_got, dout, nx * 4, st);
    for (int r = 0; r < B; r++)
        for (int i = 0; i < N; i++) {
            const int32_t* pr = pos_ref + (size_t)r * N;
            int k = pr[i] >= 0 ? pr[i] : pr[assign_ref[(size_t)r * N + i]];
            memcpy(out_ref + ((size_t)r * N + i) * C, ok + ((size_t)r * Nk + k) * C, (size_t)C * 4);
        }
    e = test_max_abs_diff(out_got, out_ref, nx);
    printf("  scatter_recover: out max abs err %.3g\n", e);
    CHECK(e == 0, "out max abs err %g (copies must be exact)", e);

done:
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) cudaFree(dev[i]);
}

// Bad arguments fail with DATO_ERR_INVALID and a message naming the op, launching nothing.
static void test_bad_arguments(void) {
    dato_error err = {{0}};
    float f = 0;
    uint8_t u = 0;
    int32_t i = 0;
    CHECK(dato_cuda_pool_scores(&f, 1, 5, 4, 2, &f, NULL, &err) == DATO_ERR_INVALID && strstr(err.msg, "pool_scores"),
          "pool_scores on 5 x 4 by 2: %s", err.msg);
    CHECK(dato_cuda_select_pruned(&f, &u, 1, 8, 4, 5, &u, NULL, &err) == DATO_ERR_INVALID &&
              strstr(err.msg, "select_pruned"),
          "select_pruned n 5 > N - P 4: %s", err.msg);
    CHECK(dato_cuda_similarity(&f, &i, 1, 4, 8, 5, &f, &u, &f, &i, NULL, &err) == DATO_ERR_INVALID &&
              strstr(err.msg, "similarity"),
          "similarity P 5 > N 4: %s", err.msg);
    CHECK(dato_cuda_gather_kept(&f, NULL, 1, 4, 8, 2, &i, &f, NULL, &err) == DATO_ERR_INVALID &&
              strstr(err.msg, "gather_kept"),
          "gather_kept NULL keep: %s", err.msg);
}

int main(void) {
    int count = dato_cuda_device_count();
    if (count == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    cudaStream_t st;
    cudaError_t e = cudaStreamCreate(&st);
    CHECK(e == cudaSuccess, "cudaStreamCreate: %s", cudaGetErrorString(e));
    if (e != cudaSuccess) return test_summary();
    test_bad_arguments();
    run_case(4, 64, 64, 320, 2, 1, st); // SD 1.5 level 0 at 512 x 512: N 4096, P 1024
    run_case(4, 7, 9, 77, 2, 2, st);    // an odd grid: border patches, N and C off the tiles
    run_case(1, 40, 130, 33, 3, 3, st); // N 5200 > 4096, patch 3
    cudaStreamDestroy(st);
    return test_summary();
}
