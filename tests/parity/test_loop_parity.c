// Whole 10-step denoising loops with classifier-free guidance (7.5, batch [uncond; cond])
// against diffusers: DDIM and DPM-Solver++(2M) on the three tiny SD-family models, from the
// same initial latent. Checks the timestep grid exactly and the final latent within
// max|diff| / max|ref| <= 1e-3.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pipeline.h"
#include "test_util.h"

#define TOL 1e-3

static void check_loop(dato_backend* be, const char* model, const char* loop, dato_sampler_kind kind) {
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "tests/fixtures/unet/%s", model);
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, loop);
    dato_error err = {{0}};
    dato_safetensors st;
    if (dato_safetensors_open(&st, path, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    dato_pipeline p;
    dato_status s = dato_pipeline_open(&p, dir, be, NULL, &err);
    CHECK(s == DATO_OK, "%s: %s", model, err.msg);
    if (s) {
        dato_safetensors_close(&st);
        return;
    }
    size_t n_final = 0, n_ts = 0;
    float* init = fixture_f32(&st, "init_latent", NULL);
    float* ctx = fixture_f32(&st, "context", NULL);
    float* ref = fixture_f32(&st, "final", &n_final);
    float* ts = fixture_f32(&st, "timesteps", &n_ts);
    float* te = p.unet.cfg.add_embed_in ? fixture_f32(&st, "text_embeds", NULL) : NULL;
    float* ids = p.unet.cfg.add_embed_in ? fixture_f32(&st, "time_ids", NULL) : NULL;
    const dato_st_tensor* ct = dato_safetensors_find(&st, "context");
    const dato_st_tensor* it = dato_safetensors_find(&st, "init_latent");
    float guidance = (float)atof(dato_safetensors_metadata(&st, "guidance") ? dato_safetensors_metadata(&st, "guidance") : "0");
    CHECK(init && ctx && ref && ts && ct && it && guidance > 1, "%s/%s: fixture incomplete", model, loop);

    if (init && ctx && ref && ts && ct && it) {
        // The timestep grid, exactly.
        dato_sampler* smp = NULL;
        s = dato_sampler_create(&smp, &p.sched, kind, (int)n_ts, 1, &err);
        CHECK(s == DATO_OK, "%s", err.msg);
        int grid_ok = smp && dato_sampler_num_calls(smp) == (int)n_ts;
        for (size_t i = 0; grid_ok && i < n_ts; i++) grid_ok = dato_sampler_call_info(smp, (int)i).timestep == ts[i];
        CHECK(grid_ok, "%s/%s: timestep grid differs from diffusers'", model, loop);
        dato_sampler_destroy(smp);

        const dato_unet_config* uc = &p.unet.cfg;
        int P = uc->add_embed_in ? uc->add_embed_in - 6 * uc->addition_time_embed_dim : 0;
        dato_conditioning cond;
        s = dato_conditioning_repeat(&cond, 1, (int)ct->shape[1], (int)ct->shape[2], ctx, P, te, ids, &err);
        CHECK(s == DATO_OK, "%s", err.msg);
        dato_generate_params gp = {.steps = (int)n_ts, .sampler = kind, .guidance = guidance,
                                   .height = (int)it->shape[2], .width = (int)it->shape[3], .cond = &cond,
                                   .init_latent = init};
        float* out = malloc(n_final * sizeof *out);
        s = dato_pipeline_generate(&p, &gp, out, &err);
        CHECK(s == DATO_OK, "%s/%s: %s", model, loop, err.msg);
        double e = test_rel_err(out, ref, n_final);
        printf("%-5s %-13s final latent: max|diff|/max|ref| = %.3e (tol %.0e), max|ref| = %.2f\n", model, loop, e, TOL,
               test_max_abs(ref, n_final));
        CHECK(s == DATO_OK && e <= TOL, "%s/%s: final latent off by %.3e", model, loop, e);
        free(out);
        dato_conditioning_free(&cond);
    }
    free(init);
    free(ctx);
    free(ref);
    free(ts);
    free(te);
    free(ids);
    dato_pipeline_close(&p);
    dato_safetensors_close(&st);
}

int main(void) {
    dato_backend be;
    dato_error err;
    if (dato_backend_cpu_init(&be, 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const char* models[] = {"sd15", "sd2v", "sdxl"};
    for (int m = 0; m < 3; m++) {
        check_loop(&be, models[m], "loop_ddim", DATO_SAMPLER_DDIM);
        check_loop(&be, models[m], "loop_dpmpp2m", DATO_SAMPLER_DPMPP_2M);
    }
    dato_backend_destroy(&be);
    return test_summary();
}
