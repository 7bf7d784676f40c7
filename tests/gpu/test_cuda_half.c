// Half weights on the CUDA backend (--dtype f16|bf16): the SD1.5-shaped fixture UNet
// (tests/fixtures/unet/sd15) loaded with its Linear/Conv2d weights converted to F16, then BF16,
// runs a full step and every DeepCache partial step; the full output is compared with the
// committed diffusers reference (f32, io.safetensors) and with the same UNet on CUDA in f32.
//
// Tolerances, max|diff| / max|ref|: each GEMM rounds its weights and its activations to the
// half type (unit roundoff u = 2^-11 ~ 4.9e-4 for f16, 2^-8 ~ 3.9e-3 for bf16) and accumulates in
// f32, so one op is off by about u relative to its output's scale; through the UNet's residual
// stack these errors add up to a few u, not more (the norms re-scale, the residuals carry the
// exact path). Tolerance 4u: 2e-3 for f16 (the issue's ~1e-3 per op, doubled for the depth) and
// 1.6e-2 for bf16. A partial step reuses the cache its own full step wrote with the same half
// weights, so it matches that full step at f32 level (1e-5), as in test_cuda_pipeline.
// The half output must also differ from the f32 one: equal outputs would mean the weights were
// not converted. Each half dtype runs twice: attention in f32, then as dato-generate --dtype runs
// it, attention on the tensor cores in the same dtype (q, k, v and p rounded: about u more per
// attention, inside the same 4u). Exits 77 (skipped) without CUDA or a GPU.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_cuda.h"
#include "cuda_device.h"
#include "fixture.h"
#include "test_util.h"
#include "unet_load.h"

#define DIR "tests/fixtures/unet/sd15"
#define TOL_F32 1e-4      // f32 weights vs diffusers, as test_unet_parity
#define TOL_F16 2e-3      // 4 x 2^-11
#define TOL_BF16 1.6e-2   // 4 x 2^-8
#define TOL_PARTIAL 1e-5  // a partial step vs its own full step

typedef struct {
    float *sample, *t, *ctx, *ref; // host, from io.safetensors
    size_t n_out;
    int64_t xs[4], cs[3];
} unet_io;

static int unet_io_load(unet_io* io) {
    dato_safetensors st;
    dato_error err;
    memset(io, 0, sizeof *io);
    if (dato_safetensors_open(&st, DIR "/io.safetensors", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    const dato_st_tensor* x = dato_safetensors_find(&st, "sample");
    const dato_st_tensor* c = dato_safetensors_find(&st, "encoder_hidden_states");
    io->sample = fixture_f32(&st, "sample", NULL);
    io->t = fixture_f32(&st, "timestep", NULL);
    io->ctx = fixture_f32(&st, "encoder_hidden_states", NULL);
    io->ref = fixture_f32(&st, "out", &io->n_out);
    int ok = x && c && x->ndim == 4 && c->ndim == 3 && io->sample && io->t && io->ctx && io->ref;
    if (ok) {
        memcpy(io->xs, x->shape, sizeof io->xs);
        memcpy(io->cs, c->shape, sizeof io->cs);
    }
    dato_safetensors_close(&st);
    return ok;
}

// A copy of the host tensor t in memory on be (data NULL on failure).
static dato_tensor to_device(dato_backend* be, const dato_tensor* t) {
    size_t bytes = dato_tensor_nbytes(t);
    dato_tensor d = dato_tensor_make(be->ops->alloc(be, bytes), t->dtype, be->device, t->ndim, t->shape);
    if (d.data) be->ops->upload(be, d.data, t->data, bytes);
    return d;
}

// Loads the fixture with GEMM weights in dt, runs the full step into got (host, n_out), then
// every partial depth; *partial gets the worst max|diff| / max|full| of those, *half_slots the
// number of slots stored in dt (0 for f32).
static dato_status unet_run(dato_backend* be, dato_dtype dt, const unet_io* io, float* got, double* partial,
                            int* half_slots, dato_error* err) {
    dato_unet u;
    DATO_TRY(dato_unet_open_as(&u, DIR, be, NULL, dt, err));
    *half_slots = 0;
    for (int i = 0; i < u.n_params; i++) *half_slots += dt != DATO_F32 && u.params[i].slot->dtype == dt;
    const int64_t* xs = io->xs;
    dato_unet_ws ws = {0};
    dato_tensor hx = dato_tensor_f32_4d(io->sample, xs[0], xs[1], xs[2], xs[3]);
    dato_tensor hc = dato_tensor_f32_3d(io->ctx, io->cs[0], io->cs[1], io->cs[2]);
    float* nan = malloc(io->n_out * sizeof *nan); // the output poisoned, so a skipped write shows
    float* part = malloc(io->n_out * sizeof *part);
    for (size_t i = 0; nan && i < io->n_out; i++) nan[i] = NAN;
    dato_tensor hy = dato_tensor_f32_4d(nan, xs[0], u.cfg.out_channels, xs[2], xs[3]);
    dato_tensor x = to_device(be, &hx); // (B, Ci, H, W)
    dato_tensor c = to_device(be, &hc); // (B, S, X)
    dato_tensor ht = dato_tensor_f32_1d(io->t, xs[0]);
    dato_tensor t = to_device(be, &ht); // (B)
    dato_tensor y = nan ? to_device(be, &hy) : hy; // (B, Co, H, W)
    dato_status st = x.data && c.data && t.data && y.data && nan && part
                         ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "unet %s: cannot allocate the inputs", DIR);
    if (!st) st = dato_unet_ws_create(&ws, &u, (int)xs[0], (int)xs[2], (int)xs[3], (int)io->cs[1], 1, err);
    dato_net_inputs in = {.sample = &x, .timesteps = &t, .context = &c};
    dato_net_plan plan = dato_unet_plan_full(&u);
    plan.write_cache = 1;
    if (!st) st = dato_unet_forward(&u, &ws, &plan, &in, &y, err);
    if (!st) be->ops->download(be, got, y.data, io->n_out * sizeof *got);
    *partial = 0;
    for (int d = 1; d <= u.n_branches && !st; d++) {
        dato_net_plan pd = {.depth = d};
        st = dato_unet_forward(&u, &ws, &pd, &in, &y, err);
        if (!st) be->ops->download(be, part, y.data, io->n_out * sizeof *part);
        double e = test_rel_err(part, got, io->n_out);
        *partial = e > *partial || e != e ? e : *partial;
    }
    if (ws.block) dato_unet_ws_free(&ws, &u);
    void* bufs[] = {x.data, c.data, t.data, nan ? y.data : NULL};
    for (int i = 0; i < 4; i++)
        if (bufs[i]) be->ops->free(be, bufs[i]);
    free(nan);
    free(part);
    dato_unet_free(&u);
    return st;
}

int main(void) {
    int count = dato_cuda_device_count();
    if (count == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    dato_error err = {{0}};
    dato_backend gpu;
    unet_io io;
    if (dato_backend_cuda_init(&gpu, 0, &err)) {
        fprintf(stderr, "backend init: %s\n", err.msg);
        return 1;
    }
    if (!unet_io_load(&io)) {
        fprintf(stderr, "%s/io.safetensors unreadable\n", DIR);
        return 1;
    }
    float* f32 = malloc(io.n_out * sizeof *f32);  // (B, Co, H, W) with f32 weights
    float* half = malloc(io.n_out * sizeof *half); // (B, Co, H, W) with half weights
    double partial;
    int n_half;
    dato_status st = unet_run(&gpu, DATO_F32, &io, f32, &partial, &n_half, &err);
    CHECK(st == DATO_OK, "f32 weights: %s", err.msg);
    if (!st) {
        double e = test_rel_err(f32, io.ref, io.n_out);
        printf("sd15 F32  weights: vs diffusers %.3e (tol %.0e), partial vs full %.3e\n", e, TOL_F32, partial);
        CHECK(e <= TOL_F32, "f32 weights: off diffusers' by %.3e", e);
    }
    const dato_dtype dts[2] = {DATO_F16, DATO_BF16};
    const double tols[2] = {TOL_F16, TOL_BF16};
    for (int run = 0; run < 4 && !st; run++) {
        int k = run / 2, attn_half = run % 2;
        dato_cuda_options opt = {.attention = attn_half ? dts[k] : DATO_F32};
        if (dato_backend_cuda_configure(&gpu, &opt, &err)) {
            CHECK(0, "configure: %s", err.msg);
            break;
        }
        dato_status sh = unet_run(&gpu, dts[k], &io, half, &partial, &n_half, &err);
        CHECK(sh == DATO_OK, "%s weights: %s", dato_dtype_name(dts[k]), err.msg);
        if (sh) continue;
        double e_ref = test_rel_err(half, io.ref, io.n_out), e_f32 = test_rel_err(half, f32, io.n_out);
        printf("sd15 %-4s weights (%d slots), attention %-4s: vs diffusers %.3e, vs f32 weights %.3e (tol %.1e); "
               "partial vs full %.3e (tol %.0e)\n", dato_dtype_name(dts[k]), n_half,
               dato_dtype_name(opt.attention), e_ref, e_f32, tols[k], partial, TOL_PARTIAL);
        CHECK(n_half > 0, "%s: no slot was converted", dato_dtype_name(dts[k]));
        CHECK(e_ref <= tols[k], "%s weights: off diffusers' by %.3e", dato_dtype_name(dts[k]), e_ref);
        CHECK(e_f32 <= tols[k], "%s weights: off the f32 weights' output by %.3e", dato_dtype_name(dts[k]), e_f32);
        CHECK(e_f32 > 0, "%s weights: output identical to f32's: the weights were not converted",
              dato_dtype_name(dts[k]));
        CHECK(partial <= TOL_PARTIAL, "%s weights: a partial step differs from its full step by %.3e",
              dato_dtype_name(dts[k]), partial);
    }
    free(f32);
    free(half);
    free(io.sample);
    free(io.t);
    free(io.ctx);
    free(io.ref);
    dato_backend_destroy(&gpu);
    return test_summary();
}
