// Schedules applied by the pipeline on the tiny SD1.5-layout pipeline fixture:
// - the all-full, ratio-0 schedule reproduces the plain loop bit for bit, for every sampler;
// - a depth-0 step makes no UNet call and reuses the previous raw prediction exactly;
// - DeepCache and pruning schedules run, change the result, and stay finite;
// - a schedule for another step count is refused, naming the field.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline.h"
#include "test_util.h"

#define MODEL "tests/fixtures/pipeline/sd15"
#define STEPS 6

static int generate(dato_pipeline* p, const dato_conditioning* cond, dato_sampler_kind kind,
                    const dato_schedule* sched, float* out, float* raw, dato_error* err) {
    dato_generate_params gp = {.steps = STEPS, .sampler = kind, .guidance = 7.5f, .seed = 3, .height = 8, .width = 8,
                               .cond = cond, .schedule = sched, .raw_out = raw};
    return dato_pipeline_generate(p, &gp, out, err) == DATO_OK;
}

int main(void) {
    dato_error err = {{0}};
    dato_backend be;
    dato_pipeline p;
    if (dato_backend_cpu_init(&be, 0, &err) || dato_pipeline_open(&p, MODEL, &be, NULL, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const char* prompts[2] = {"a photo of a cat", "red car"};
    dato_conditioning cond;
    CHECK(dato_pipeline_encode(&p, prompts, NULL, 2, 16, 16, &cond, &err) == DATO_OK, "%s", err.msg);
    size_t n = (size_t)2 * 4 * 8 * 8, per_call = 2 * n; // [uncond x 2; cond x 2]
    float *plain = malloc(n * sizeof *plain), *sched_out = malloc(n * sizeof *sched_out);
    float* raw = malloc((STEPS + 1) * per_call * sizeof *raw);
    int B = p.unet.n_branches;
    dato_schedule s;

    // 1. baseline == no schedule, bit for bit, every sampler.
    static const dato_sampler_kind kinds[] = {DATO_SAMPLER_DDIM, DATO_SAMPLER_PNDM, DATO_SAMPLER_DPMPP_2M,
                                              DATO_SAMPLER_EULER, DATO_SAMPLER_EULER_A};
    CHECK(dato_schedule_preset(&s, "baseline", STEPS, B, &err) == DATO_OK, "%s", err.msg);
    for (int k = 0; k < 5; k++) {
        int ok = generate(&p, &cond, kinds[k], NULL, plain, NULL, &err) &&
                 generate(&p, &cond, kinds[k], &s, sched_out, NULL, &err);
        CHECK(ok && memcmp(plain, sched_out, n * sizeof *plain) == 0, "%s: baseline schedule differs from the plain "
              "loop (%s)", dato_sampler_kind_name(kinds[k]), err.msg);
    }
    printf("baseline schedule == plain loop, bit for bit: ddim, pndm, dpmpp-2m, euler, euler-a\n");

    // 2. Depth 0 reuses the previous raw prediction (DDIM: one call per step).
    CHECK(dato_schedule_preset(&s, "baseline", STEPS, B, &err) == DATO_OK, "%s", err.msg);
    s.genes[2].depth = 0;
    s.genes[3].depth = 1;
    s.genes[4].depth = 0;
    CHECK(generate(&p, &cond, DATO_SAMPLER_DDIM, &s, sched_out, raw, &err), "%s", err.msg);
    CHECK(memcmp(raw + 2 * per_call, raw + 1 * per_call, per_call * sizeof *raw) == 0,
          "step 2 (depth 0) did not reuse step 1's prediction");
    CHECK(memcmp(raw + 4 * per_call, raw + 3 * per_call, per_call * sizeof *raw) == 0,
          "step 4 (depth 0) did not reuse step 3's prediction");
    CHECK(memcmp(raw + 3 * per_call, raw + 2 * per_call, per_call * sizeof *raw) != 0, "step 3 did not compute");

    // 3. DeepCache and pruning change the result and stay finite.
    CHECK(generate(&p, &cond, DATO_SAMPLER_DDIM, NULL, plain, NULL, &err), "%s", err.msg);
    static const char* presets[] = {"deepcache:3", "tome:0.5", "dato-paper"};
    for (int k = 0; k < 3; k++) {
        CHECK(dato_schedule_preset(&s, presets[k], STEPS, B, &err) == DATO_OK, "%s", err.msg);
        int ok = generate(&p, &cond, DATO_SAMPLER_DDIM, &s, sched_out, NULL, &err);
        CHECK(ok, "%s: %s", presets[k], err.msg);
        double d = test_rel_err(sched_out, plain, n);
        int finite = 1;
        for (size_t i = 0; i < n; i++) finite &= isfinite(sched_out[i]) != 0;
        printf("%-12s final latents vs baseline: max|diff|/max|ref| = %.3e\n", presets[k], d);
        CHECK(ok && finite && d > 0 && d < 1, "%s: difference %.3e from the baseline", presets[k], d);
    }

    // 4. A schedule for another run is refused.
    CHECK(dato_schedule_preset(&s, "deepcache:3", STEPS + 1, B, &err) == DATO_OK, "%s", err.msg);
    CHECK(!generate(&p, &cond, DATO_SAMPLER_DDIM, &s, sched_out, NULL, &err) && strstr(err.msg, "steps"),
          "a 7-step schedule on a 6-step run: %s", err.msg);

    free(plain);
    free(sched_out);
    free(raw);
    dato_conditioning_free(&cond);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    return test_summary();
}
