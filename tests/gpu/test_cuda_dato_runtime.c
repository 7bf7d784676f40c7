// Token pruning on the CUDA backend, through the op table, against the CPU backend:
// 1. the four DaTo ops (backend.h) on seeded random inputs (an SD-like 32 x 32 grid with C 320
//    and an odd 7 x 9 grid with C 77): is_base, keep, pos, x_kept and out exactly; sim to 1e-5
//    absolute (cosines are bounded by 1, so a scaled abs tolerance; relative error means nothing
//    near 0); assign exactly except where the two candidate bases' cosines (in double) are within
//    1e-5, a tie the f32 rounding may break either way. select, gather and scatter get the CPU's
//    own inputs, so their outputs must match bit for bit. Argument errors name the op.
// 2. one pruned attn1 call of the tiny SD1.5 UNet (tests/fixtures/dato/prune_unit*, the hook of
//    dato_runtime_prepare) on device tensors: the base tokens equal, the output within 1e-4 of
//    the PyTorch reference and of the CPU backend (max|diff| / max|ref|).
// 3. the pruning loops of tests/fixtures/dato (prune_*, mixed_*: DDIM and PLMS, CFG 7.5) through
//    dato_pipeline_generate: every UNet call's raw output and the final latent within 1e-4 of the
//    reference and of the CPU backend.
// Outputs are poisoned first (NaN floats, 0x7f index bytes). Exits 77 without CUDA or a GPU.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "cuda_device.h"
#include "gpu_test.h"
#include "dato.h"
#include "dato_loop_fixture.h"
#include "fixture.h"
#include "pipeline.h"
#include "rng.h"
#include "test_util.h"
#include "unet_denoiser.h"

#define TOL 1e-4     // the UNet-level outputs, as test_dato_parity and test_cuda_pipeline
#define SIM_TOL 1e-5 // sim: absolute, cosines lie in [-1, 1]

// ---- device helpers ------------------------------------------------------------------------------

// A tensor on be of dtype dt and shape (d0, d1[, d2]) (d2 0: 2-D), every byte set to `byte`.
static dato_tensor dev_tensor(dato_backend* be, dato_dtype dt, int byte, int64_t d0, int64_t d1, int64_t d2) {
    int64_t shape[3] = {d0, d1, d2};
    dato_tensor t = dato_tensor_make(NULL, dt, be->device, d2 ? 3 : 2, shape);
    size_t bytes = dato_tensor_nbytes(&t);
    t.data = be->ops->alloc(be, bytes);
    CHECK(t.data != NULL, "%s: alloc of %zu bytes failed", be->name, bytes);
    if (t.data) {
        unsigned char* fill = malloc(bytes);
        memset(fill, byte, bytes);
        be->ops->upload(be, t.data, fill, bytes);
        free(fill);
    }
    return t;
}

static void put(dato_backend* be, dato_tensor* t, const void* host) {
    if (t->data) be->ops->upload(be, t->data, host, dato_tensor_nbytes(t));
}

// A malloc'd host copy of t.
static void* get(dato_backend* be, const dato_tensor* t) {
    size_t bytes = dato_tensor_nbytes(t);
    void* h = malloc(bytes ? bytes : 1);
    if (t->data) be->ops->download(be, h, t->data, bytes);
    return h;
}

static void drop(dato_backend* be, dato_tensor* t) {
    if (t->data) be->ops->free(be, t->data);
    t->data = NULL;
}

// cos(x_i, x_j) in double, x (N, C).
static double cosine(const float* x, int C, int i, int j) {
    double ij = 0, ii = 0, jj = 0;
    for (int c = 0; c < C; c++) {
        ij += (double)x[(size_t)i * C + c] * x[(size_t)j * C + c];
        ii += (double)x[(size_t)i * C + c] * x[(size_t)i * C + c];
        jj += (double)x[(size_t)j * C + c] * x[(size_t)j * C + c];
    }
    return ii > 0 && jj > 0 ? ij / sqrt(ii * jj) : 0;
}

// ---- 1. the ops ----------------------------------------------------------------------------------

// The four ops on B rows of an H x W grid with C channels, patch 2, pruning n per row.
static void check_ops(dato_backend* cpu, dato_backend* gpu, int B, int H, int W, int C, uint64_t seed) {
    int N = H * W, s = 2, P = ((H + s - 1) / s) * ((W + s - 1) / s), n = (N - P) / 2, Nk = N - n;
    printf("ops: B %d, grid %d x %d, C %d: N %d, P %d, n %d\n", B, H, W, C, N, P, n);
    dato_error err = {{0}};
    dato_rng rng;
    dato_rng_seed(&rng, seed);
    size_t nt = (size_t)B * N, nx = nt * C, nk = (size_t)B * Nk * C;
    float *x = malloc(nx * 4), *ok = malloc(nk * 4);
    int32_t* base = malloc((size_t)B * P * 4);
    dato_rng_fill_normal(&rng, x, nx);
    dato_rng_fill_normal(&rng, ok, nk);
    for (int b = 0; b < B; b++) // one random token per patch
        for (int py = 0, p = 0; py < H; py += s)
            for (int px = 0; px < W; px += s, p++) {
                int ph = py + s <= H ? s : H - py, pw = px + s <= W ? s : W - px;
                int k = (int)dato_rng_below(&rng, (uint64_t)(ph * pw));
                base[(size_t)b * P + p] = (py + k / pw) * W + px + k % pw;
            }
    // Tokens 0 and 1 of row 0 duplicate tokens 2 and 3 scaled: exact ties in sim.
    for (int c = 0; c < C; c++) {
        x[c] = 2.0f * x[2 * C + c];
        x[C + c] = 0.5f * x[3 * C + c];
    }

    dato_backend* be[2] = {cpu, gpu};
    dato_tensor tx[2], tb[2], sim[2], assign[2], isb[2], work[2], keep[2], pos[2], xk[2], tok[2], out[2];
    size_t work_n = nx + (size_t)P * (N + C);
    for (int k = 0; k < 2; k++) {
        tx[k] = dev_tensor(be[k], DATO_F32, 0, B, N, C);
        tb[k] = dev_tensor(be[k], DATO_I32, 0, B, P, 0);
        sim[k] = dev_tensor(be[k], DATO_F32, 0xff, B, N, 0);
        assign[k] = dev_tensor(be[k], DATO_I32, 0x7f, B, N, 0);
        isb[k] = dev_tensor(be[k], DATO_U8, 0x7f, B, N, 0);
        work[k] = dev_tensor(be[k], DATO_F32, 0xff, 1, (int64_t)work_n, 0);
        keep[k] = dev_tensor(be[k], DATO_U8, 0x7f, B, N, 0);
        pos[k] = dev_tensor(be[k], DATO_I32, 0x7f, B, N, 0);
        xk[k] = dev_tensor(be[k], DATO_F32, 0xff, B, Nk, C);
        tok[k] = dev_tensor(be[k], DATO_F32, 0, B, Nk, C);
        out[k] = dev_tensor(be[k], DATO_F32, 0xff, B, N, C);
        put(be[k], &tx[k], x);
        put(be[k], &tb[k], base);
        put(be[k], &tok[k], ok);
    }
    if (!out[1].data) goto done;

    // similarity on both
    for (int k = 0; k < 2; k++) {
        dato_status st = be[k]->ops->dato_similarity(be[k], &sim[k], &assign[k], &isb[k], &tx[k], &tb[k], &work[k], &err);
        CHECK(st == DATO_OK, "dato_similarity on %s: %s", be[k]->name, err.msg);
    }
    float *sim_c = get(cpu, &sim[0]), *sim_g = get(gpu, &sim[1]);
    int32_t *as_c = get(cpu, &assign[0]), *as_g = get(gpu, &assign[1]);
    uint8_t *ib_c = get(cpu, &isb[0]), *ib_g = get(gpu, &isb[1]);
    size_t ib_bad = 0, as_bad = 0, as_tied = 0;
    double sim_err = 0, worst_tie = 0;
    for (size_t t = 0; t < nt; t++) {
        ib_bad += ib_c[t] != ib_g[t];
        double e = fabs((double)sim_g[t] - sim_c[t]);
        sim_err = e > sim_err || e != e ? e : sim_err;
        if (as_c[t] == as_g[t]) continue;
        int b = (int)(t / N), i = (int)(t % N), a = as_g[t];
        const float* xb = x + (size_t)b * N * C;
        double gap = a >= 0 && a < N ? fabs(cosine(xb, C, i, as_c[t]) - cosine(xb, C, i, a)) : INFINITY;
        worst_tie = gap > worst_tie ? gap : worst_tie;
        if (gap <= SIM_TOL) as_tied++;
        else as_bad++;
    }
    printf("  similarity: is_base %zu differ; sim max abs err %.3g (tol %.0e); assign %zu differ, %zu of them "
           "near-ties (cosine gap %.3g)\n", ib_bad, sim_err, SIM_TOL, as_bad + as_tied, as_tied, worst_tie);
    CHECK(ib_bad == 0, "is_base: %zu mismatches", ib_bad);
    CHECK(sim_err <= SIM_TOL, "sim max abs err %.3g", sim_err);
    CHECK(as_bad == 0, "assign: %zu mismatches that are no ties", as_bad);

    // select, gather and scatter: the CPU's sim, assign and keep on both, so every output is exact.
    put(gpu, &sim[1], sim_c);
    put(gpu, &assign[1], as_c);
    for (int k = 0; k < 2; k++) {
        dato_status st = be[k]->ops->dato_select_keep(be[k], &keep[k], &sim[k], &isb[k], P, n, &err);
        CHECK(st == DATO_OK, "dato_select_keep on %s: %s", be[k]->name, err.msg);
        st = be[k]->ops->dato_gather_kept(be[k], &pos[k], &xk[k], &tx[k], &keep[k], &err);
        CHECK(st == DATO_OK, "dato_gather_kept on %s: %s", be[k]->name, err.msg);
        st = be[k]->ops->dato_scatter_recover(be[k], &out[k], &tok[k], &pos[k], &assign[k], &err);
        CHECK(st == DATO_OK, "dato_scatter_recover on %s: %s", be[k]->name, err.msg);
    }
    uint8_t *kp_c = get(cpu, &keep[0]), *kp_g = get(gpu, &keep[1]);
    int32_t *ps_c = get(cpu, &pos[0]), *ps_g = get(gpu, &pos[1]);
    float *xk_c = get(cpu, &xk[0]), *xk_g = get(gpu, &xk[1]), *o_c = get(cpu, &out[0]), *o_g = get(gpu, &out[1]);
    size_t kp_bad = 0, ps_bad = 0;
    for (size_t t = 0; t < nt; t++) {
        kp_bad += kp_c[t] != kp_g[t];
        ps_bad += ps_c[t] != ps_g[t];
    }
    double exk = test_max_abs_diff(xk_g, xk_c, nk), eo = test_max_abs_diff(o_g, o_c, nx);
    printf("  select_keep: %zu differ; gather_kept: pos %zu differ, x_kept max abs err %.3g; scatter_recover: "
           "max abs err %.3g (all exact)\n", kp_bad, ps_bad, exk, eo);
    CHECK(kp_bad == 0 && ps_bad == 0, "keep %zu, pos %zu mismatches", kp_bad, ps_bad);
    CHECK(exk == 0 && eo == 0, "copies not exact: x_kept %.3g, out %.3g", exk, eo);
    void* host[] = {sim_c, sim_g, as_c, as_g, ib_c, ib_g, kp_c, kp_g, ps_c, ps_g, xk_c, xk_g, o_c, o_g};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);

    // Argument errors: n above N - P, an F32 base, a host tensor.
    dato_status st = gpu->ops->dato_select_keep(gpu, &keep[1], &sim[1], &isb[1], P, N - P + 1, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "dato_select_keep"), "n > N - P: %s", err.msg);
    st = gpu->ops->dato_similarity(gpu, &sim[1], &assign[1], &isb[1], &tx[1], &sim[1], &work[1], &err);
    CHECK(st != DATO_OK && strstr(err.msg, "dato_similarity"), "F32 base: %s", err.msg);
    st = gpu->ops->dato_gather_kept(gpu, &pos[1], &xk[1], &tx[0], &keep[1], &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "dato_gather_kept"), "host x: %s", err.msg);

done:
    for (int k = 0; k < 2; k++) {
        dato_tensor* all[] = {&tx[k], &tb[k], &sim[k], &assign[k], &isb[k], &work[k], &keep[k], &pos[k], &xk[k],
                              &tok[k], &out[k]};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) drop(be[k], all[i]);
    }
    free(x);
    free(ok);
    free(base);
}

// ---- 2. one pruned attn1 call ----------------------------------------------------------------------

// The hook of a runtime on be over the fixture's x with the fixture's scores: out (2, 256, C) and
// the base tokens (2, 64) on the host.
static dato_status unit_run(dato_backend* be, const char* path, int up, float* out, int32_t* bases, dato_error* err) {
    dato_safetensors st;
    DATO_TRY(dato_safetensors_open(&st, path, err));
    dato_unet u;
    dato_status rc = dato_unet_open(&u, "tests/fixtures/unet/sd15", be, NULL, err);
    if (rc) {
        dato_safetensors_close(&st);
        return rc;
    }
    size_t nx = 0;
    float* x = fixture_f32(&st, "x", &nx);
    float* score = fixture_f32(&st, "score", NULL);
    float* ratio = fixture_f32(&st, "ratio", NULL);
    size_t lat = (size_t)2 * 4 * 256, wsz = 8 << 20;
    float *p0 = calloc(lat, sizeof(float)), *p1 = calloc(lat, sizeof(float));
    int64_t C = (int64_t)(nx / 512);
    dato_tensor tx = dato_tensor_make(be->ops->alloc(be, nx * 4), DATO_F32, be->device, 3, (int64_t[]){2, 256, C});
    dato_tensor to = dato_tensor_make(be->ops->alloc(be, nx * 4), DATO_F32, be->device, 3, (int64_t[]){2, 256, C});
    void* mem = be->ops->alloc(be, wsz);
    dato_runtime* rt = NULL;
    rc = x && score && ratio && tx.data && to.data && mem ? DATO_OK
                                                          : dato_fail(err, DATO_ERR_NOMEM, "%s: fixture or memory", path);
    if (!rc) {
        // Two recorded predictions whose mean |difference| over channels is the fixture's score.
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < 4; c++) memcpy(p1 + ((size_t)r * 4 + c) * 256, score + (size_t)r * 256, 1024);
        be->ops->upload(be, tx.data, x, nx * 4);
        rc = dato_unet_runtime_create(&rt, &u, 2, 1, 16, 16, NULL, err);
    }
    if (!rc) {
        dato_runtime_record(rt, p0);
        dato_runtime_record(rt, p1);
        dato_net_plan plan = {0};
        rc = dato_runtime_prepare(rt, 2, ratio[0], &plan, err);
        const dato_unet_layer* L = up ? &u.up[u.n_branches - 1] : &u.down[1];
        const dato_transformer* tf = &L->mods[1].tf;
        dato_attn_site site = {.layer = L->name, .block = 0, .level = 0, .h = 16, .w = 16, .heads = tf->heads,
                               .attn = &tf->blocks[0].attn1, .attend = dato_unet_self_attention};
        dato_arena arena = dato_arena_over(mem, wsz);
        if (!rc) rc = plan.self_attn(plan.hook_ctx, &site, &to, &tx, &arena, err);
        be->ops->download(be, out, to.data, nx * 4);
        int P = 0;
        for (int r = 0; r < 2; r++) memcpy(bases + r * 64, dato_runtime_base(rt, r, &P), 64 * sizeof(int32_t));
        if (!rc && P != 64) rc = dato_fail(err, DATO_ERR_INVALID, "%s: %d base tokens, want 64", path, P);
    }
    dato_runtime_destroy(rt);
    if (mem) be->ops->free(be, mem);
    if (tx.data) be->ops->free(be, tx.data);
    if (to.data) be->ops->free(be, to.data);
    free(p0);
    free(p1);
    free(x);
    free(score);
    free(ratio);
    dato_unet_free(&u);
    dato_safetensors_close(&st);
    return rc;
}

static void check_unit(dato_backend* cpu, dato_backend* gpu, const char* name, int up) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/dato/%s.safetensors", name);
    dato_error err = {{0}};
    dato_safetensors st;
    if (dato_safetensors_open(&st, path, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    size_t nx = 0;
    float* want = fixture_f32(&st, "attn_out", &nx);
    const dato_st_tensor* bt = dato_safetensors_find(&st, "base");
    float *got_c = malloc(nx * 4), *got_g = malloc(nx * 4);
    for (size_t i = 0; i < nx; i++) got_g[i] = NAN;
    int32_t base_c[128], base_g[128], base_ref[128];
    if (want && bt && bt->nbytes == sizeof base_ref) {
        memcpy(base_ref, bt->data, sizeof base_ref);
        dato_status sc = unit_run(cpu, path, up, got_c, base_c, &err);
        CHECK(sc == DATO_OK, "%s on the CPU: %s", name, err.msg);
        dato_status sg = unit_run(gpu, path, up, got_g, base_g, &err);
        CHECK(sg == DATO_OK, "%s on CUDA: %s", name, err.msg);
        if (!sc && !sg) {
            int bases_ok = !memcmp(base_g, base_ref, sizeof base_ref) && !memcmp(base_g, base_c, sizeof base_c);
            double e = test_rel_err(got_g, want, nx), ec = test_rel_err(got_g, got_c, nx);
            printf("%-15s cuda: bases %s; attn1 output vs reference %.3e, vs cpu %.3e (tol %.0e)\n", name,
                   bases_ok ? "equal" : "DIFFER", e, ec, TOL);
            CHECK(bases_ok, "%s: base tokens differ", name);
            CHECK(e <= TOL && ec <= TOL, "%s: attn1 output off by %.3e (reference) / %.3e (cpu)", name, e, ec);
        }
    } else {
        CHECK(0, "%s: fixture incomplete", name);
    }
    free(got_c);
    free(got_g);
    free(want);
    dato_safetensors_close(&st);
}

// ---- main: 3. the pruning loops (dato_loop_fixture.h) -------------------------------------------------

int main(void) {
    dato_backend cpu, gpu;
    int start = gpu_test_start(&cpu, &gpu);
    if (start) return start;
    check_ops(&cpu, &gpu, 2, 32, 32, 320, 1);
    check_ops(&cpu, &gpu, 3, 7, 9, 77, 2);
    check_unit(&cpu, &gpu, "prune_unit", 0);
    check_unit(&cpu, &gpu, "prune_unit_up", 1);
    static const char* loops[] = {"prune_ddim", "prune_plms", "mixed_ddim", "mixed_plms"};
    for (int i = 0; i < 4; i++) check_fixture_loop(&cpu, &gpu, loops[i], TOL);
    dato_backend_destroy(&gpu);
    dato_backend_destroy(&cpu);
    return test_summary();
}
