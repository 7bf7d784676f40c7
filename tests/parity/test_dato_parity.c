// The DaTo runtime against an independent PyTorch implementation of METHOD.md
// (tools/dato_reference.py on the tiny SD1.5-shaped UNet): mixed schedules of cache depths and
// prune ratios with CFG, under DDIM and PLMS. Every UNet call's raw output (both CFG rows,
// before guidance) within 1e-4 relative; and one pruned attn1 call alone (base tokens, the
// pruned set and the recovered output) in a down block and an up block.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"
#include "unet_denoiser.h"

#define MODEL "tests/fixtures/unet/sd15"
#define TOL 1e-4

static void check_loop(dato_backend* be, const char* name) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/dato/%s.safetensors", name);
    dato_error err = {{0}};
    dato_safetensors st;
    dato_pipeline p;
    if (dato_safetensors_open(&st, path, &err) || dato_pipeline_open(&p, MODEL, be, NULL, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    const dato_st_tensor* dt = dato_safetensors_find(&st, "depth");
    const dato_st_tensor* ct = dato_safetensors_find(&st, "context");
    size_t n_raw = 0, n_final = 0;
    float* ratio = fixture_f32(&st, "ratio", NULL);
    float* ctx = fixture_f32(&st, "context", NULL);
    float* init = fixture_f32(&st, "init_latent", NULL);
    float* raw_ref = fixture_f32(&st, "raw", &n_raw);
    float* final_ref = fixture_f32(&st, "final", &n_final);
    const char* sampler = dato_safetensors_metadata(&st, "sampler");
    if (!dt || !ct || !ratio || !ctx || !init || !raw_ref || !final_ref || !sampler) {
        CHECK(0, "%s: fixture incomplete", name);
        return;
    }
    dato_schedule* s = calloc(1, sizeof *s);
    s->steps = (int)dt->numel;
    s->n_branches = p.unet.n_branches;
    int32_t depth[DATO_SCHEDULE_MAX_STEPS];
    memcpy(depth, dt->data, dt->nbytes);
    for (int k = 0; k < s->steps; k++) s->genes[k] = (dato_gene){.depth = depth[k], .ratio = ratio[k]};
    dato_sampler_kind kind;
    dato_sampler_kind_parse(sampler, &kind, &err);
    dato_conditioning cond;
    CHECK(dato_conditioning_repeat(&cond, 1, (int)ct->shape[1], (int)ct->shape[2], ctx, 0, NULL, NULL, &err) == DATO_OK,
          "%s", err.msg);
    float* raw = malloc(n_raw * sizeof *raw);
    float* out = malloc(n_final * sizeof *out);
    dato_generate_params gp = {.steps = s->steps, .sampler = kind, .guidance = 7.5f, .height = 16, .width = 16,
                               .cond = &cond, .init_latent = init, .schedule = s, .raw_out = raw};
    dato_status rc = dato_pipeline_generate(&p, &gp, out, &err);
    CHECK(rc == DATO_OK, "%s: %s", name, err.msg);
    if (!rc) {
        size_t per_call = (size_t)2 * 4 * 16 * 16, n_calls = n_raw / per_call;
        double worst = 0;
        int worst_call = 0;
        for (size_t c = 0; c < n_calls; c++) {
            double e = test_rel_err(raw + c * per_call, raw_ref + c * per_call, per_call);
            if (e > worst) worst = e, worst_call = (int)c;
        }
        double ef = test_rel_err(out, final_ref, n_final);
        printf("%-15s %2zu calls: raw outputs max rel err %.2e (call %d), final %.2e (tol %.0e)\n", name, n_calls, worst,
               worst_call, ef, TOL);
        CHECK(worst <= TOL, "%s: call %d off by %.2e", name, worst_call, worst);
        CHECK(ef <= TOL, "%s: final latents off by %.2e", name, ef);
    }
    free(raw);
    free(out);
    free(s);
    free(ratio);
    free(ctx);
    free(init);
    free(raw_ref);
    free(final_ref);
    dato_conditioning_free(&cond);
    dato_pipeline_close(&p);
    dato_safetensors_close(&st);
}

// One attn1 call alone: scores in, base tokens, pruned set and recovered output out.
static void check_unit(dato_backend* be, const char* name, int up) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/dato/%s.safetensors", name);
    dato_error err = {{0}};
    dato_safetensors st;
    dato_unet u;
    if (dato_safetensors_open(&st, path, &err) || dato_unet_open(&u, MODEL, be, NULL, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    size_t nx = 0;
    float* x = fixture_f32(&st, "x", &nx);
    float* score = fixture_f32(&st, "score", NULL);
    float* want = fixture_f32(&st, "attn_out", NULL);
    float* ratio = fixture_f32(&st, "ratio", NULL);
    const dato_st_tensor* bt = dato_safetensors_find(&st, "base");
    // The block: LDM input_blocks.1 (down_blocks.0.attentions.0) or output_blocks.11 (up_blocks.3.attentions.2).
    const dato_unet_layer* L = up ? &u.up[u.n_branches - 1] : &u.down[1];
    const dato_transformer* tf = &L->mods[1].tf;
    dato_attn_site site = {.layer = L->name, .block = 0, .level = 0, .h = 16, .w = 16, .heads = tf->heads,
                           .attn = &tf->blocks[0].attn1, .attend = dato_unet_self_attention};
    // Two recorded predictions whose mean |difference| over channels is the fixture's score.
    size_t lat = (size_t)2 * 4 * 256;
    float *p0 = calloc(lat, sizeof *p0), *p1 = calloc(lat, sizeof *p1);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 4; c++) memcpy(p1 + ((size_t)r * 4 + c) * 256, score + (size_t)r * 256, 256 * sizeof(float));
    dato_runtime* rt = NULL;
    CHECK(dato_unet_runtime_create(&rt, &u, 2, 1, 16, 16, NULL, &err) == DATO_OK, "%s", err.msg);
    if (rt) {
        dato_runtime_record(rt, p0);
        dato_runtime_record(rt, p1);
        dato_net_plan plan = {0};
        dato_runtime_prepare(rt, 2, ratio[0], &plan, &err);
        float* got = malloc(nx * sizeof *got);
        dato_tensor tx = dato_tensor_f32_3d(x, 2, 256, (int64_t)(nx / 512)), to = dato_tensor_f32_3d(got, 2, 256, (int64_t)(nx / 512));
        size_t wsz = 8 << 20;
        void* mem = malloc(wsz);
        dato_arena arena = dato_arena_over(mem, wsz);
        CHECK(plan.self_attn && plan.self_attn(plan.hook_ctx, &site, &to, &tx, &arena, &err) == DATO_OK, "%s", err.msg);
        int P = 0, bases_ok = 1;
        int32_t ref_base[128];
        memcpy(ref_base, bt->data, bt->nbytes);
        for (int r = 0; r < 2; r++) {
            const int32_t* b = dato_runtime_base(rt, r, &P);
            bases_ok &= P == 64 && memcmp(b, ref_base + r * 64, 64 * sizeof *b) == 0;
        }
        double e = test_rel_err(got, want, nx);
        printf("%-15s %s: bases %s, recovered attn1 output max rel err %.2e (tol %.0e)\n", name, L->name,
               bases_ok ? "equal" : "DIFFER", e, TOL);
        CHECK(bases_ok, "%s: base tokens differ from the reference", name);
        CHECK(e <= TOL, "%s: attn1 output off by %.2e", name, e);
        free(got);
        free(mem);
        dato_runtime_destroy(rt);
    }
    free(p0);
    free(p1);
    free(x);
    free(score);
    free(want);
    free(ratio);
    dato_unet_free(&u);
    dato_safetensors_close(&st);
}

int main(void) {
    dato_backend be;
    dato_error err;
    if (dato_backend_cpu_init(&be, 0, &err)) return 1;
    check_unit(&be, "prune_unit", 0);
    check_unit(&be, "prune_unit_up", 1);
    static const char* loops[] = {"baseline_ddim", "baseline_plms", "deepcache_ddim", "deepcache_plms",
                                  "prune_ddim",    "prune_plms",    "mixed_ddim",     "mixed_plms"};
    for (int i = 0; i < 8; i++) check_loop(&be, loops[i]);
    dato_backend_destroy(&be);
    return test_summary();
}
