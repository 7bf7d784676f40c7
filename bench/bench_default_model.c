// Quality and speed of the embedded default model (models/fashion-sd) as the C engine generates it:
// N images per class prompt (the model's evaluation prompts, image i of class c from stream i of
// seed + c), classified by the feature network (the fraction showing the prompted class), and FID
// in the feature network's space against the reference statistics (the Fashion-MNIST test set),
// printed next to the floor: FID of the training set against the same test set.
//
//   bench_default_model --per-class 100                      # 1,000 images: class accuracy
//   bench_default_model --per-class 1000 --grid docs/x.png   # 10,000 images: FID
//
// Speed: the analytic MACs of one UNet evaluation per image, and measured images per second of the
// denoising loops and of the whole run (decode and features included) at --batch.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cost.h"
#include "evaluator.h"
#include "featnet.h"
#include "fid.h"
#include "image.h"
#include "model_defaults.h"
#include "stats_io.h"

#define MAX_PROMPTS 256

static void usage(void) {
    printf("usage: bench_default_model [options]\n"
           "  --model DIR         model folder (default: the embedded models/fashion-sd)\n"
           "  --per-class N       images per class prompt (default 100)\n"
           "  --batch B           images per generate call (default 50)\n"
           "  --steps N           sampler steps (default: dato.json)\n"
           "  --guidance G        guidance scale (default: dato.json)\n"
           "  --seed S            seed (default 0)\n"
           "  --schedule SPEC     a DaTo schedule file or preset (default: baseline)\n"
           "  --ref FILE          reference statistics (default: dato.json's reference_stats)\n"
           "  --floor FILE        statistics of real data for the floor FID against --ref\n"
           "                      (default: stats_train.h5 beside --ref)\n"
           "  --grid PATH         a PNG grid: the first --grid-cols images of every class, a row each\n"
           "  --grid-cols N       (default 10)\n"
           "  --threads N         CPU threads (default: all)\n");
}

// Images done of total, with the rate and an ETA, on stderr.
static void print_progress(void* ctx, int done, int total) {
    double el = dato_clock_s() - *(const double*)ctx;
    fprintf(stderr, "\rbench_default_model: %d/%d images, %.1f img/s, ETA %.0f s   ", done, total, done / el,
            el / done * (total - done));
    if (done == total) fprintf(stderr, "\n");
}

// FID of stats a against reference b, both from files; -1 on error (printed).
static double fid_of_files(const char* a, const char* b) {
    dato_fid_stats sa = {0}, sb = {0};
    dato_stats_meta ma, mb;
    dato_fid_result r;
    dato_error err;
    double fid = -1;
    if (dato_stats_read_h5(a, &sa, &ma, &err) || dato_stats_read_h5(b, &sb, &mb, &err) ||
        dato_stats_fid(&sa, &ma, &sb, &mb, &r, &err))
        fprintf(stderr, "bench_default_model: floor: %s\n", err.msg);
    else
        fid = r.fid;
    dato_fid_stats_free(&sa);
    dato_fid_stats_free(&sb);
    return fid;
}

int main(int argc, char** argv) {
    int per_class = 100, batch = 50, steps = 0, seed = 0, grid_cols = 10, threads = 0;
    const char *model = NULL, *guidance_s = NULL, *schedule_spec = NULL, *ref = NULL, *floor_path = NULL,
               *grid = NULL;
    bench_opt opts[] = {{"--model", NULL, &model, NULL},         {"--per-class", &per_class, NULL, NULL},
                        {"--batch", &batch, NULL, NULL},         {"--steps", &steps, NULL, NULL},
                        {"--guidance", NULL, &guidance_s, NULL}, {"--seed", &seed, NULL, NULL},
                        {"--schedule", NULL, &schedule_spec, NULL}, {"--ref", NULL, &ref, NULL},
                        {"--floor", NULL, &floor_path, NULL},    {"--grid", NULL, &grid, NULL},
                        {"--grid-cols", &grid_cols, NULL, NULL}, {"--threads", &threads, NULL, NULL}};
    int rc = bench_parse(argc, argv, "bench_default_model", opts, sizeof opts / sizeof *opts, usage);
    if (rc) return rc == 1 ? 0 : rc;
    if (per_class < 1 || batch < 1 || steps < 0 || seed < 0 || grid_cols < 1) {
        fprintf(stderr, "bench_default_model: --per-class, --batch, --grid-cols must be >= 1\n");
        return 2;
    }
    dato_error err = {{0}};
    char model_dir[4096], floor_buf[4096];
    if (!model) {
        if (dato_default_model_dir(model_dir, sizeof model_dir, &err)) {
            fprintf(stderr, "bench_default_model: %s\n", err.msg);
            return 1;
        }
        model = model_dir;
    }
    dato_model_defaults md;
    if (dato_model_defaults_load(&md, model, &err) || !md.present || !md.eval_prompts[0] || !md.feature_net[0]) {
        fprintf(stderr, "bench_default_model: %s: %s\n", model,
                err.msg[0] ? err.msg : "needs a dato.json with eval_prompts and feature_net");
        return 1;
    }
    float guidance = guidance_s ? strtof(guidance_s, NULL) : md.guidance;
    if (!steps) steps = md.steps ? md.steps : 50;
    if (!ref) ref = md.reference_stats;
    if (!floor_path && ref[0]) { // stats_train.h5 beside the reference
        const char* slash = strrchr(ref, '/');
        snprintf(floor_buf, sizeof floor_buf, "%.*sstats_train.h5", slash ? (int)(slash - ref + 1) : 0, ref);
        floor_path = floor_buf;
    }
    int n_prompts = 0;
    char** prompts = bench_read_lines(md.eval_prompts, MAX_PROMPTS, &n_prompts);
    if (!prompts || n_prompts < 1) {
        fprintf(stderr, "bench_default_model: %s: cannot read prompts\n", md.eval_prompts);
        return 1;
    }

    dato_backend be;
    dato_pipeline p;
    dato_feature_extractor fx = {0};
    dato_evaluator ev = {0};
    dato_schedule* sched = NULL;
    float* features = NULL;
    int* predicted = NULL;
    dato_feature_stats acc = {0};
    rc = 1;
    if (dato_backend_cpu_init(&be, threads, &err)) {
        fprintf(stderr, "bench_default_model: %s\n", err.msg);
        return 1;
    }
    int have_pipe = 0;
    if ((err.msg[0] = 0, dato_pipeline_open(&p, model, &be, NULL, &err)) || !(have_pipe = 1) ||
        dato_extractor_featnet_open(&fx, md.feature_net, &be, &err)) {
        fprintf(stderr, "bench_default_model: %s\n", err.msg);
        goto done;
    }
    const dato_featnet_config* fc = dato_featnet_config_of(&fx);
    if (fc->classes < n_prompts) {
        fprintf(stderr, "bench_default_model: %d prompts but the feature network has %d classes\n", n_prompts,
                fc->classes);
        goto done;
    }
    if (schedule_spec) {
        sched = malloc(sizeof *sched);
        if (!sched || dato_schedule_resolve(sched, schedule_spec, steps, p.unet.n_branches, &err)) {
            fprintf(stderr, "bench_default_model: --schedule: %s\n", sched ? err.msg : "out of memory");
            goto done;
        }
    }
    double t_progress = dato_clock_s();
    dato_eval_config ec = {.steps = steps, .guidance = guidance, .sampler = p.sched.kind, .seed = (uint64_t)seed,
                           .images = n_prompts * per_class, .batch = batch, .progress = print_progress,
                           .progress_ctx = &t_progress};
    if (dato_evaluator_create(&ev, &p, &fx, (const char* const*)prompts, n_prompts, &ec, &err)) {
        fprintf(stderr, "bench_default_model: %s\n", err.msg);
        goto done;
    }
    features = malloc((size_t)ev.n_images * fx.dim * sizeof *features);
    predicted = malloc((size_t)ev.n_images * sizeof *predicted);
    if (!features || !predicted) goto done;
    printf("model %s: %d prompts x %d images, %s %d steps, guidance %g, schedule %s, batch %d, threads %d (0 = all)\n", model,
           n_prompts, per_class, dato_sampler_kind_name(ec.sampler), steps, (double)guidance,
           schedule_spec ? schedule_spec : "baseline", ev.cfg.batch, threads);
    fflush(stdout);
    double t0 = t_progress = dato_clock_s();
    dato_eval_timing timing;
    if (dato_evaluator_run(&ev, sched, features, predicted, &timing, &err)) {
        fprintf(stderr, "bench_default_model: %s\n", err.msg);
        goto done;
    }
    double total = dato_clock_s() - t0, denoise = timing.total_s;

    // class accuracy
    int correct = 0;
    printf("class accuracy (feature network):\n");
    for (int c = 0; c < n_prompts; c++) {
        int k = 0;
        for (int i = 0; i < per_class; i++) k += predicted[c * per_class + i] == c;
        correct += k;
        printf("  %-40s %5.1f%%\n", prompts[c], 100.0 * k / per_class);
    }
    double accuracy = (double)correct / ev.n_images;

    // FID against the reference, and the floor
    double fid = -1, floor_fid = -1;
    if (ref[0]) {
        dato_fid_stats gen = {0}, rs = {0};
        dato_stats_meta gm = {0}, rm;
        dato_fid_result r;
        snprintf(gm.extractor, sizeof gm.extractor, "%s", fx.name);
        snprintf(gm.weights_hash, sizeof gm.weights_hash, "%s", fx.weights_hash);
        snprintf(gm.preprocessing, sizeof gm.preprocessing, "%s", fx.preprocessing);
        snprintf(gm.source, sizeof gm.source, "bench_default_model");
        if (dato_feature_stats_init(&acc, fx.dim, &err) ||
            dato_feature_stats_add(&acc, features, ev.n_images, &err) ||
            dato_feature_stats_finalize(&acc, &gen, NULL, &err) || dato_stats_read_h5(ref, &rs, &rm, &err) ||
            dato_stats_fid(&gen, &gm, &rs, &rm, &r, &err))
            fprintf(stderr, "bench_default_model: FID: %s\n", err.msg);
        else
            fid = r.fid;
        dato_fid_stats_free(&gen);
        dato_fid_stats_free(&rs);
        if (floor_path) floor_fid = fid_of_files(floor_path, ref);
    }

    dato_macs m;
    int seq = dato_tokenizer_max_len(p.tokenizer[0]);
    if (dato_unet_step_macs(&p.unet, 1, ev.h, ev.w, seq, p.unet.n_branches + 1, 0.0f, -1, 2, &m, &err)) {
        fprintf(stderr, "bench_default_model: %s\n", err.msg);
        goto done;
    }
    printf("accuracy %.2f%% of %d images\n", 100 * accuracy, ev.n_images);
    printf("FID %.3f (%d images vs %s); floor (training set vs the same reference) %.3f\n", fid, ev.n_images, ref,
           floor_fid);
    printf("UNet: %.2f MMAC per image per evaluation (%.2f MMAC per guided image-step)\n", m.total / 1e6,
           2 * m.total / 1e6);
    printf("speed: %.1f images/s denoising (%.0f guided image-steps/s), %.1f images/s end to end; %.1f s total\n",
           ev.n_images / denoise, ev.n_images * (double)steps / denoise, ev.n_images / total, total);
    printf("| %d | %s | %d | %g | %.1f%% | %.3f | %.3f | %.2f | %.1f |\n", ev.n_images,
           schedule_spec ? schedule_spec : "baseline", steps, (double)guidance, 100 * accuracy, fid, floor_fid,
           2 * m.total / 1e6, ev.n_images / denoise);

    if (grid) {
        int cols = grid_cols < per_class ? grid_cols : per_class, n = n_prompts * cols, gh, gw;
        size_t img = (size_t)ev.H * ev.W * ev.ch;
        uint8_t* cells = malloc((size_t)n * img);
        uint8_t* g = NULL;
        for (int c = 0; cells && c < n_prompts; c++)
            memcpy(cells + (size_t)c * cols * img, ev.pixels + (size_t)c * per_class * img, (size_t)cols * img);
        if (!cells || dato_image_grid_size(n, ev.H, ev.W, cols, 2, &gh, &gw, &err) ||
            !(g = malloc((size_t)gh * gw * ev.ch)) ||
            dato_image_grid(g, cells, n, ev.H, ev.W, ev.ch, cols, 2, &err) ||
            dato_png_write(grid, g, gh, gw, ev.ch, NULL, &err))
            fprintf(stderr, "bench_default_model: grid: %s\n", err.msg);
        else
            printf("wrote %s\n", grid);
        free(cells);
        free(g);
    }
    rc = 0;
done:
    dato_feature_stats_free(&acc);
    free(features);
    free(predicted);
    free(sched);
    dato_evaluator_free(&ev);
    if (fx.destroy) fx.destroy(&fx);
    if (have_pipe) dato_pipeline_close(&p);
    dato_backend_destroy(&be);
    bench_free_lines(prompts, n_prompts);
    return rc;
}
