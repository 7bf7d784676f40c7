// The pipeline keeps one denoiser (engine/runtime/denoiser.h) across generate calls, on the default model:
//  1. a tiny search's evaluator (5 images in calls of 2, 2 and 1; the baseline and a schedule with
//     partial and pruned steps, twice each: 12 generate calls, each batch its own seed) plans the
//     workspace once and makes one pruning runtime, and the second pass gives the first pass's
//     images and features bit for bit (the kept denoiser forgets its feature cache and pruning
//     scores between calls);
//  2. a call of 1 image run inside the workspace and runtime made for 2 (after calls of other
//     seeds) equals, bit for bit, the same call on a fresh pipeline, whose workspace and runtime
//     are made for 1 image and its seed. Step 1 prunes before two predictions exist: its base
//     tokens are the seed's random draws.
#include <stdlib.h>
#include <string.h>

#include "evaluator.h"
#include "featnet.h"
#include "model_defaults.h"
#include "pipeline.h"
#include "test_util.h"

#define MODEL "models/fashion-sd"
#define STEPS 6

static const char* const prompts[] = {"a photo of a t-shirt", "a photo of a trouser", "a photo of a sneaker"};

// Full, partial (depth 2) pruning 0.3, full pruning 0.5, reuse (depth 0), partial pruning 0.3, full.
static dato_schedule test_schedule(const dato_pipeline* p) {
    int full = p->unet.n_branches + 1;
    dato_schedule s = {.steps = STEPS, .n_branches = p->unet.n_branches};
    const dato_gene genes[STEPS] = {{full, 0.0f}, {2, 0.3f}, {full, 0.5f}, {0, 0.0f}, {3, 0.3f}, {full, 0.0f}};
    memcpy(s.genes, genes, sizeof genes);
    return s;
}

// A generate call of the first B prompts (seed 7, the schedule) on p into out (B, C, h, w).
static dato_status generate(dato_pipeline* p, int B, const dato_schedule* s, float* out, dato_error* err) {
    dato_conditioning cond;
    DATO_TRY(dato_pipeline_encode(p, prompts, NULL, B, 28, 28, &cond, err));
    int f = dato_pipeline_vae_factor(p);
    dato_generate_params gp = {.steps = STEPS, .sampler = p->sched.kind, .guidance = 4.0f, .seed = 7,
                               .height = 28 / f, .width = 28 / f, .cond = &cond, .schedule = s};
    dato_status st = dato_pipeline_generate(p, &gp, out, err);
    dato_conditioning_free(&cond);
    return st;
}

int main(void) {
    dato_error err = {{0}};
    dato_backend be;
    CHECK(dato_backend_cpu_init(&be, 0, &err) == DATO_OK, "%s", err.msg);
    dato_pipeline p, fresh;
    dato_model_defaults md;
    dato_feature_extractor fx = {0};
    if (dato_pipeline_open(&p, MODEL, &be, NULL, &err) || dato_pipeline_open(&fresh, MODEL, &be, NULL, &err) ||
        dato_model_defaults_load(&md, MODEL, &err) || dato_extractor_featnet_open(&fx, md.feature_net, &be, &err)) {
        CHECK(0, "%s", err.msg);
        return test_summary();
    }
    dato_schedule sched = test_schedule(&p);
    CHECK(dato_schedule_validate(&sched, STEPS, p.unet.n_branches, &err) == DATO_OK, "%s", err.msg);

    // 1. The evaluator: baseline, schedule, baseline, schedule.
    dato_eval_config ec = {.steps = STEPS, .guidance = 4.0f, .sampler = p.sched.kind, .seed = 3, .images = 5,
                           .batch = 2};
    dato_evaluator ev;
    CHECK(dato_evaluator_create(&ev, &p, &fx, prompts, 3, &ec, &err) == DATO_OK, "%s", err.msg);
    size_t n_px = (size_t)ev.n_images * ev.H * ev.W * ev.ch, n_f = (size_t)ev.n_images * fx.dim;
    uint8_t* px = malloc(4 * n_px);
    float* feat = malloc(4 * n_f * sizeof *feat);
    for (int r = 0; r < 4 && px && feat; r++) {
        CHECK(dato_evaluator_run(&ev, r % 2 ? &sched : NULL, feat + r * n_f, NULL, NULL, &err) == DATO_OK,
              "run %d: %s", r, err.msg);
        memcpy(px + r * n_px, ev.pixels, n_px);
    }
    const dato_denoiser_stats* st = &p.den.stats;
    printf("evaluator: 4 runs x %d generate calls: %d workspace plan(s), %d runtime(s), %ld UNet calls\n",
           ev.n_batches, st->plans, st->runtimes, st->calls);
    CHECK(st->plans == 1, "the workspace was planned %d times for one shape; expected once", st->plans);
    CHECK(st->runtimes == 1, "%d pruning runtimes for calls of one shape and another seed each; expected one",
          st->runtimes);
    for (int r = 2; r < 4 && px && feat; r++) {
        double fd = test_max_abs_diff(feat + r * n_f, feat + (r - 2) * n_f, n_f);
        printf("run %d vs run %d (%s): pixels %s, features max |diff| %g\n", r, r - 2, r % 2 ? "schedule" : "baseline",
               memcmp(px + r * n_px, px + (r - 2) * n_px, n_px) ? "differ" : "identical", fd);
        CHECK(memcmp(px + r * n_px, px + (r - 2) * n_px, n_px) == 0, "run %d's images differ from run %d's", r, r - 2);
        CHECK(fd == 0.0, "run %d's features differ from run %d's by %g", r, r - 2, fd);
    }
    CHECK(px && memcmp(px, px + n_px, n_px) != 0, "the schedule changed no image: the test schedule is too weak");
    size_t latent = (size_t)ev.C * ev.h * ev.w;
    free(px);
    free(feat);
    dato_evaluator_free(&ev);

    // 2. One image inside the workspace of two, against a pipeline planned for one.
    float* out = malloc(3 * latent * sizeof *out); // (2, C, h, w) then (1, C, h, w)
    float* ref = malloc(latent * sizeof *ref);      // (1, C, h, w)
    int plans = p.den.stats.plans;
    CHECK(out && ref && generate(&p, 2, &sched, out, &err) == DATO_OK && generate(&p, 1, &sched, out + 2 * latent,
                                                                                  &err) == DATO_OK,
          "%s", err.msg);
    CHECK(ref && generate(&fresh, 1, &sched, ref, &err) == DATO_OK, "%s", err.msg);
    double d = out && ref ? test_max_abs_diff(out + 2 * latent, ref, latent) : 1.0;
    printf("1 image in a workspace of 2 rows x 2 vs its own: max |diff| %g; plans %d -> %d, fresh %d\n", d, plans,
           p.den.stats.plans, fresh.den.stats.plans);
    CHECK(d == 0.0, "one image in the larger workspace differs by %g", d);
    CHECK(p.den.stats.plans == plans && fresh.den.stats.plans == 1, "plans: %d after, %d before; fresh %d",
          p.den.stats.plans, plans, fresh.den.stats.plans);
    CHECK(p.den.stats.runtimes == 1, "the kept runtime was made again (%d runtimes) for fewer rows or another seed",
          p.den.stats.runtimes);
    free(out);
    free(ref);

    fx.destroy(&fx);
    dato_pipeline_close(&fresh);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    return test_summary();
}
