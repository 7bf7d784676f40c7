// The search evaluator's throughput on the default model (models/fashion-sd): one pipeline and one
// evaluator, as a dato-search rank has them, scoring a list of schedules in turn (generate, decode,
// features), round after round. Prints every evaluation's wall time and denoising time, then the
// medians of each schedule and the whole run's images per second.
//
//   bench_evaluator [--images 20] [--batch 8] [--rounds 3] [--steps 25] [--schedules baseline,dato-paper]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "clock.h"
#include "evaluator.h"
#include "featnet.h"
#include "model_defaults.h"

#define MAX_SCHEDULES 8

static void usage(void) {
    printf("usage: bench_evaluator [options]\n"
           "  --images N      images per evaluation, over the model's evaluation prompts (default 20)\n"
           "  --batch B       images per generate call (default 8)\n"
           "  --rounds R      rounds over the schedules (default 3)\n"
           "  --steps N       sampler steps (default: dato.json)\n"
           "  --schedules L   comma-separated schedule presets or files (default baseline,dato-paper)\n"
           "  --threads N     CPU threads (default: all)\n");
}

int main(int argc, char** argv) {
    int images = 20, batch = 8, rounds = 3, steps = 0, threads = 0;
    const char* list = "baseline,dato-paper";
    bench_opt opts[] = {{"--images", &images, NULL, NULL}, {"--batch", &batch, NULL, NULL},
                        {"--rounds", &rounds, NULL, NULL}, {"--steps", &steps, NULL, NULL},
                        {"--schedules", NULL, &list, NULL}, {"--threads", &threads, NULL, NULL}};
    int rc = bench_parse(argc, argv, "bench_evaluator", opts, sizeof opts / sizeof *opts, usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (images < 1 || batch < 1 || rounds < 1 || steps < 0) {
        fprintf(stderr, "bench_evaluator: --images, --batch and --rounds must be >= 1\n");
        return 2;
    }
    dato_error err = {{0}};
    char model[4096];
    dato_model_defaults md;
    if (dato_default_model_dir(model, sizeof model, &err) || dato_model_defaults_load(&md, model, &err)) {
        fprintf(stderr, "bench_evaluator: %s\n", err.msg);
        return 1;
    }
    if (!steps) steps = md.steps;
    int n_prompts = 0;
    char** prompts = bench_read_lines(md.eval_prompts, 64, &n_prompts);
    if (!prompts || n_prompts < 1) {
        fprintf(stderr, "bench_evaluator: %s: no prompts\n", md.eval_prompts);
        return 1;
    }

    dato_backend be;
    dato_pipeline p;
    dato_feature_extractor fx = {0};
    dato_evaluator ev = {0};
    dato_schedule sched[MAX_SCHEDULES];
    const char* names[MAX_SCHEDULES];
    char names_buf[1024];
    int n_sched = 0;
    snprintf(names_buf, sizeof names_buf, "%s", list);
    for (char* tok = strtok(names_buf, ","); tok && n_sched < MAX_SCHEDULES; tok = strtok(NULL, ","))
        names[n_sched++] = tok;
    if (dato_backend_cpu_init(&be, threads, &err)) {
        fprintf(stderr, "bench_evaluator: %s\n", err.msg);
        return 1;
    }
    if (dato_pipeline_open(&p, model, &be, NULL, &err)) {
        fprintf(stderr, "bench_evaluator: %s\n", err.msg);
        return 1;
    }
    for (int s = 0; s < n_sched; s++)
        if (dato_schedule_resolve(&sched[s], names[s], steps, p.unet.n_branches, &err)) {
            fprintf(stderr, "bench_evaluator: %s: %s\n", names[s], err.msg);
            return 1;
        }
    dato_eval_config ec = {.steps = steps, .guidance = md.guidance, .sampler = p.sched.kind, .images = images,
                           .batch = batch};
    if (dato_extractor_featnet_open(&fx, md.feature_net, &be, &err) ||
        dato_evaluator_create(&ev, &p, &fx, (const char* const*)prompts, n_prompts, &ec, &err)) {
        fprintf(stderr, "bench_evaluator: %s\n", err.msg);
        return 1;
    }
    float* features = malloc((size_t)images * fx.dim * sizeof *features);
    double* wall = malloc((size_t)rounds * n_sched * sizeof *wall); // (n_sched, rounds)
    double* denoise = malloc((size_t)rounds * n_sched * sizeof *denoise);
    if (!features || !wall || !denoise) return 1;
    printf("bench_evaluator: %d images in calls of %d, %d steps, %d rounds over %s\n", images, ev.cfg.batch, steps,
           rounds, list);
    double t_all = dato_clock_s();
    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < n_sched; s++) {
            dato_eval_timing tm;
            double t0 = dato_clock_s();
            if (dato_evaluator_run(&ev, &sched[s], features, NULL, &tm, &err)) {
                fprintf(stderr, "bench_evaluator: %s\n", err.msg);
                return 1;
            }
            wall[s * rounds + r] = dato_clock_s() - t0;
            denoise[s * rounds + r] = tm.total_s;
            printf("round %d %-12s %.4f s (denoising %.4f s)\n", r, names[s], wall[s * rounds + r], tm.total_s);
        }
    t_all = dato_clock_s() - t_all;
    for (int s = 0; s < n_sched; s++) {
        qsort(wall + s * rounds, (size_t)rounds, sizeof *wall, cmp_double);
        qsort(denoise + s * rounds, (size_t)rounds, sizeof *denoise, cmp_double);
        printf("median %-12s %.4f s per evaluation (denoising %.4f s)\n", names[s], wall[s * rounds + rounds / 2],
               denoise[s * rounds + rounds / 2]);
    }
    printf("throughput: %.3f images/s over %d evaluations\n", (double)rounds * n_sched * images / t_all,
           rounds * n_sched);
    free(features);
    free(wall);
    free(denoise);
    dato_evaluator_free(&ev);
    fx.destroy(&fx);
    dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    bench_free_lines(prompts, n_prompts);
    return 0;
}
