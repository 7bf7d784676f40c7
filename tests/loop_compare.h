// The denoising loop run two ways on the same prompt-free fixtures, compared: the host loop against
// the device loop on one backend, or one backend's loop against another's. Every sampler, with and
// without guidance, plain and under a DaTo schedule that reuses, caches and prunes, on the tiny
// SD1.5 and SDXL fixtures (SDXL: time ids on the device). Used by tests/parity/test_device_loop.c
// (the CPU) and tests/gpu/test_cuda_device_loop.c.
#ifndef DATO_TEST_LOOP_COMPARE_H
#define DATO_TEST_LOOP_COMPARE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"

// One side of a comparison: a backend and the loop it runs.
typedef struct {
    dato_backend* be;
    dato_loop_kind loop;
    const char* name; // for the report, e.g. "cpu host"
} loop_side;

// A 10-step schedule of every kind of step: full, partial (depth 1, 2), reuse (depth 0), pruned (at
// two ratios of the full depth, the third step of one of them replayable from a graph).
static dato_schedule loop_mixed_schedule(int n_branches) {
    dato_schedule s = {.steps = 10, .n_branches = n_branches};
    int full = n_branches + 1;
    const dato_gene genes[10] = {{full, 0}, {full, 0}, {1, 0.7f}, {0, 0}, {full, 0.5f},
                                 {2, 0}, {full, 0.5f}, {0, 0}, {full, 0.3f}, {full, 0.5f}};
    memcpy(s.genes, genes, sizeof genes);
    return s;
}

// Generates every case on a and on b from the fixture of `model` (tests/fixtures/unet/<model>) and
// checks max|b - a| / max|a| <= tol for the final latents and for the raw UNet outputs of every call.
static void loop_compare_model(const loop_side* a, const loop_side* b, const char* model, double tol) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "tests/fixtures/unet/%s", model);
    snprintf(path, sizeof path, "%s/loop_ddim.safetensors", dir);
    dato_error err = {{0}};
    dato_safetensors st;
    dato_pipeline pa, pb;
    if (dato_safetensors_open(&st, path, &err)) {
        CHECK(0, "%s: %s", model, err.msg);
        return;
    }
    if (dato_pipeline_open(&pa, dir, a->be, NULL, &err)) {
        CHECK(0, "%s on %s: %s", model, a->name, err.msg);
        dato_safetensors_close(&st);
        return;
    }
    if (dato_pipeline_open(&pb, dir, b->be, NULL, &err)) {
        CHECK(0, "%s on %s: %s", model, b->name, err.msg);
        dato_pipeline_close(&pa);
        dato_safetensors_close(&st);
        return;
    }
    float* init = fixture_f32(&st, "init_latent", NULL);
    float* ctx = fixture_f32(&st, "context", NULL);
    float* te = pa.unet.cfg.add_embed_in ? fixture_f32(&st, "text_embeds", NULL) : NULL;
    float* ids = pa.unet.cfg.add_embed_in ? fixture_f32(&st, "time_ids", NULL) : NULL;
    const dato_st_tensor* ct = dato_safetensors_find(&st, "context");
    const dato_st_tensor* it = dato_safetensors_find(&st, "init_latent");
    const dato_unet_config* uc = &pa.unet.cfg;
    int P = uc->add_embed_in ? uc->add_embed_in - 6 * uc->addition_time_embed_dim : 0;
    dato_conditioning cond;
    dato_status s = init && ctx && ct && it ? dato_conditioning_repeat(&cond, 1, (int)ct->shape[1], (int)ct->shape[2],
                                                                       ctx, P, te, ids, &err)
                                            : dato_fail(&err, DATO_ERR_INVALID, "fixture incomplete");
    CHECK(s == DATO_OK, "%s: %s", model, err.msg);
    if (!s) {
        size_t n = (size_t)it->numel, n_raw = (size_t)11 * 2 * n; // PLMS: 11 calls of 2 rows at most
        float *out_a = malloc(n * sizeof *out_a), *out_b = malloc(n * sizeof *out_b);
        float *raw_a = calloc(n_raw, sizeof *raw_a), *raw_b = calloc(n_raw, sizeof *raw_b);
        dato_schedule mixed = loop_mixed_schedule(pa.unet.n_branches);
        const dato_sampler_kind kinds[] = {DATO_SAMPLER_DDIM, DATO_SAMPLER_PNDM, DATO_SAMPLER_DPMPP_2M,
                                           DATO_SAMPLER_EULER, DATO_SAMPLER_EULER_A};
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
            for (int guided = 0; guided < 2; guided++)
                for (int sched = 0; sched < 2; sched++) {
                    dato_generate_params gp = {.steps = 10, .sampler = kinds[k], .guidance = guided ? 7.5f : 1.0f,
                                               .seed = 42, .height = (int)it->shape[2], .width = (int)it->shape[3],
                                               .cond = &cond, .init_latent = init,
                                               .schedule = sched ? &mixed : NULL};
                    gp.loop = a->loop;
                    gp.raw_out = raw_a;
                    s = dato_pipeline_generate(&pa, &gp, out_a, &err);
                    CHECK(s == DATO_OK, "%s on %s: %s", model, a->name, err.msg);
                    gp.loop = b->loop;
                    gp.raw_out = raw_b;
                    if (!s) s = dato_pipeline_generate(&pb, &gp, out_b, &err);
                    CHECK(s == DATO_OK, "%s on %s: %s", model, b->name, err.msg);
                    if (s) continue;
                    double e = test_rel_err(out_b, out_a, n), e_raw = test_rel_err(raw_b, raw_a, n_raw);
                    printf("%-5s %-9s cfg %-3s %-6s %s vs %s: final %.2e, raw outputs %.2e (tol %.0e)\n", model,
                           dato_sampler_kind_name(kinds[k]), guided ? "7.5" : "off", sched ? "mixed" : "full", b->name,
                           a->name, e, e_raw, tol);
                    CHECK(e <= tol && e_raw <= tol, "%s %s: %s off %s by %.3e (raw %.3e)", model,
                          dato_sampler_kind_name(kinds[k]), b->name, a->name, e, e_raw);
                }
        free(out_a);
        free(out_b);
        free(raw_a);
        free(raw_b);
        dato_conditioning_free(&cond);
    }
    free(init);
    free(ctx);
    free(te);
    free(ids);
    dato_pipeline_close(&pa);
    dato_pipeline_close(&pb);
    dato_safetensors_close(&st);
}

#endif
