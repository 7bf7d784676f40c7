// Running a DaTo loop fixture (tests/fixtures/dato/*.safetensors: depth and ratio per step, the
// context, the initial latent) through the pipeline on a given backend, for the tests that compare
// backends on it.
#ifndef DATO_TEST_DATO_LOOP_FIXTURE_H
#define DATO_TEST_DATO_LOOP_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fixture.h"
#include "pipeline.h"
#include "schedule.h"
#include "test_util.h"

// Runs the fixture's schedule on the sd15 test UNet on be: raw (n_calls, 2, 4, 16, 16), every
// call's raw prediction, and final (1, 4, 16, 16), the last latent, both on the host.
static inline dato_status fixture_loop_run(dato_backend* be, const dato_safetensors* st, float* raw, float* final,
                                           dato_error* err) {
    const dato_st_tensor* dt = dato_safetensors_find(st, "depth");
    const dato_st_tensor* ct = dato_safetensors_find(st, "context");
    const char* sampler = dato_safetensors_metadata(st, "sampler");
    float* ratio = fixture_f32(st, "ratio", NULL);
    float* ctx = fixture_f32(st, "context", NULL);
    float* init = fixture_f32(st, "init_latent", NULL);
    dato_schedule* s = calloc(1, sizeof *s);
    dato_pipeline p = {0};
    dato_conditioning cond = {0};
    dato_status rc = dt && ct && sampler && ratio && ctx && init && s && dt->numel <= DATO_SCHEDULE_MAX_STEPS
                         ? DATO_OK : dato_fail(err, DATO_ERR_FORMAT, "%s: fixture incomplete", st->path);
    if (!rc) rc = dato_pipeline_open(&p, "tests/fixtures/unet/sd15", be, NULL, err);
    int opened = rc == DATO_OK;
    dato_sampler_kind kind = DATO_SAMPLER_DDIM;
    if (!rc) rc = dato_sampler_kind_parse(sampler, &kind, err);
    if (!rc) rc = dato_conditioning_repeat(&cond, 1, (int)ct->shape[1], (int)ct->shape[2], ctx, 0, NULL, NULL, err);
    if (!rc) {
        s->steps = (int)dt->numel;
        s->n_branches = p.unet.n_branches;
        for (int k = 0; k < s->steps; k++)
            s->genes[k] = (dato_gene){.depth = ((const int32_t*)dt->data)[k], .ratio = ratio[k]};
        dato_generate_params gp = {.steps = s->steps, .sampler = kind, .guidance = 7.5f, .height = 16, .width = 16,
                                   .cond = &cond, .init_latent = init, .schedule = s, .raw_out = raw};
        rc = dato_pipeline_generate(&p, &gp, final, err);
    }
    dato_conditioning_free(&cond);
    if (opened) dato_pipeline_close(&p);
    free(s);
    free(ratio);
    free(ctx);
    free(init);
    return rc;
}

// Runs loop fixture tests/fixtures/dato/<name>.safetensors on both backends (the gpu outputs
// poisoned with NaN first) and checks every raw prediction and the final latent against the
// fixture and against each other to tol, printing the max errors.
static inline void check_fixture_loop(dato_backend* cpu, dato_backend* gpu, const char* name, double tol) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/dato/%s.safetensors", name);
    dato_error err = {{0}};
    dato_safetensors st;
    if (dato_safetensors_open(&st, path, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    size_t n_raw = 0, n_final = 0;
    float* raw_ref = fixture_f32(&st, "raw", &n_raw);
    float* final_ref = fixture_f32(&st, "final", &n_final);
    if (raw_ref && final_ref) {
        float *raw_c = malloc(n_raw * 4), *raw_g = malloc(n_raw * 4);
        float *fin_c = malloc(n_final * 4), *fin_g = malloc(n_final * 4);
        for (size_t i = 0; i < n_raw; i++) raw_g[i] = NAN;
        for (size_t i = 0; i < n_final; i++) fin_g[i] = NAN;
        dato_status sc = fixture_loop_run(cpu, &st, raw_c, fin_c, &err);
        CHECK(sc == DATO_OK, "%s on the CPU: %s", name, err.msg);
        dato_status sg = fixture_loop_run(gpu, &st, raw_g, fin_g, &err);
        CHECK(sg == DATO_OK, "%s on CUDA: %s", name, err.msg);
        if (!sc && !sg) {
            size_t per_call = (size_t)2 * 4 * 16 * 16, n_calls = n_raw / per_call;
            double worst = 0, worst_cpu = 0;
            for (size_t c = 0; c < n_calls; c++) {
                double e = test_rel_err(raw_g + c * per_call, raw_ref + c * per_call, per_call);
                double ec = test_rel_err(raw_g + c * per_call, raw_c + c * per_call, per_call);
                worst = e > worst || e != e ? e : worst;
                worst_cpu = ec > worst_cpu || ec != ec ? ec : worst_cpu;
            }
            double ef = test_rel_err(fin_g, final_ref, n_final), efc = test_rel_err(fin_g, fin_c, n_final);
            printf("%-15s cuda, %2zu calls: raw vs reference %.3e, vs cpu %.3e; final vs reference %.3e, vs cpu "
                   "%.3e (tol %.0e)\n", name, n_calls, worst, worst_cpu, ef, efc, tol);
            CHECK(worst <= tol && ef <= tol, "%s: CUDA off the reference by %.3e (raw) / %.3e (final)", name, worst,
                  ef);
            CHECK(worst_cpu <= tol && efc <= tol, "%s: CUDA off the CPU backend by %.3e (raw) / %.3e (final)", name,
                  worst_cpu, efc);
        }
        free(raw_c);
        free(raw_g);
        free(fin_c);
        free(fin_g);
    } else {
        CHECK(0, "%s: fixture incomplete", name);
    }
    free(raw_ref);
    free(final_ref);
    dato_safetensors_close(&st);
}

#endif
