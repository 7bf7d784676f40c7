// dato-search: NSGA-II over DaTo schedules (cache depth, prune ratio per step) of one model,
// against latency and FID, with a crash-safe checkpoint after every generation.
//
//   dato-search --pop 32 --gens 50                 # the embedded default model
//   dato-search --model sd-v1-5/ --fid-weights pt_inception-2015-12-05-6726825d.pth --prompts-file coco.txt
//       --ref fid_stats_coco.npz --clip clip-vit-large-patch14/ --size 512 --backend cuda
//   dato-search --resume results/<run>/checkpoint.h5 --gens 80
//   mpirun -np 8 dato-search --pop 32 --gens 50     # evaluations spread over 8 ranks
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_open.h"
#include "cli_args.h"
#include "evaluator.h"
#include "model_defaults.h"
#include "sampler.h"
#include "search_run.h"

// What the command line sets: the run's options and the values that need a check or a default
// after parsing.
typedef struct {
    dato_search_options o;
    const char *model, *out, *prompts, *sampler, *ref, *fid_weights, *preprocess, *clip, *scheduler_config,
        *prediction_type, *ref_cache;
    uint64_t seed;
    int size, batch, extractor, objective, latency, backend, help, quiet, log_json;
    int have_gens, have_final, have_confirm, have_pairs, have_timing, have_bootstrap, have_extractor;
} cli;

static const char* const EXTRACTORS[] = {"featnet", "inception", NULL};   // dato_extractor_kind's order
static const char* const OBJECTIVES[] = {"teacher", "fid", "clip", NULL}; // dato_quality_objective's order
static const char* const LATENCIES[] = {"table", "measured", NULL};      // dato_latency_mode's order
static const char* const PREPROCESS[] = {"pytorch-fid", "tf", "clean", NULL};

#define N_OPTIONS 42
// The options, as data (cli_args.h); the defaults are set in parse_args.
static int options_table(cli* c, dato_eval_pool* pool, dato_arg* t) {
    dato_search_config* g = &c->o.cfg;
    dato_arg rows[N_OPTIONS] = {
        {"model", NULL, DATO_ARG_TEXT, &c->model, 0, 0, NULL, NULL, "DIR|FILE",
         "the model: a diffusers folder or an LDM single file (SD1.x, SD2.x, SDXL; default: "
         "the embedded fashion-sd model, or $DATO_DEFAULT_MODEL)"},
        {"height", NULL, DATO_ARG_INT, &g->height, 1, 16384, NULL, NULL, "H",
         "image height in pixels: a multiple of 64 for SD (the VAE factor times the UNet's "
         "downsampling; default: the model's dato.json, else its sample size)"},
        {"width", NULL, DATO_ARG_INT, &g->width, 1, 16384, NULL, NULL, "W", "image width in pixels (default: as --height)"},
        {"size", NULL, DATO_ARG_INT, &c->size, 1, 16384, NULL, NULL, "PX", "sets --height and --width"},
        {"pop", NULL, DATO_ARG_INT, &g->pop, 4, 4096, NULL, NULL, "N", "population size (default 32)"},
        {"gens", NULL, DATO_ARG_INT, &g->gens, 0, 100000, NULL, &c->have_gens, "N", "generations (default 50)"},
        {"images", NULL, DATO_ARG_INT, &g->images, 2, DATO_EVAL_MAX_IMAGES, NULL, NULL, "N",
         "images per evaluation, spread over the prompts in order: each gets N / P, the "
         "first N % P one more (default 10)"},
        {"screen-images", NULL, DATO_ARG_INT, &g->screen_images, 0, DATO_EVAL_MAX_IMAGES, NULL, NULL, "K",
         "multi-fidelity: each new candidate is scored first on K of the images (the first "
         "of each prompt), and only the best --promote fraction of them (by non-dominated "
         "rank, then crowding) on all --images; 0: all on all (default: --images / 5 from "
         "10 images up, else 0)"},
        {"promote", NULL, DATO_ARG_FLOAT, &g->promote, 0.001, 1, NULL, NULL, "F",
         "the fraction promoted from the screening (default 0.25)"},
        {"final-images", NULL, DATO_ARG_INT, &g->final_images, 2, DATO_EVAL_MAX_IMAGES, NULL, &c->have_final, "M",
         "images per schedule when the archive's front and the presets are re-scored, with "
         "95% intervals over images (default 200)"},
        {"confirm-images", NULL, DATO_ARG_INT, &g->confirm_images, 0, DATO_EVAL_MAX_IMAGES, NULL, &c->have_confirm, "C",
         "fresh images on which the picks are confirmed beside the baseline and every preset: "
         "the knee, and fastest ok, the fastest member within the baseline's upper 95% FID bound "
         "(up to 3 members tried; default 1000; 0: none)"},
        {"pairs", NULL, DATO_ARG_INT, &g->pairs, 1, 1000, NULL, &c->have_pairs, "N",
         "interleaved baseline/schedule timing pairs behind every final speedup, the median "
         "reported with its spread (default 5)"},
        {"timing-images", NULL, DATO_ARG_INT, &g->timing_images, 1, 4096, NULL, &c->have_timing, "N",
         "images per timed call in those pairs (default 2)"},
        {"bootstrap", NULL, DATO_ARG_INT, &g->bootstrap, 10, 100000, NULL, &c->have_bootstrap, "B",
         "replicates behind each 95% interval: bootstrap resamples for the teacher distance "
         "and CLIP score, random halves for FID (default 200)"},
        {"prompts-file", NULL, DATO_ARG_TEXT, &c->prompts, 0, 0, NULL, NULL, "FILE",
         "one prompt per line, UTF-8, any count, e.g. COCO captions (default: the model's "
         "dato.json eval_prompts)"},
        {"extractor", NULL, DATO_ARG_CHOICE, &c->extractor, 0, 0, EXTRACTORS, &c->have_extractor, "featnet|inception",
         "the features quality is scored on: the feature network the model ships for its "
         "domain (default where there is one), or pytorch-fid's Inception-v3 pool3 (2048-d; "
         "the FID of papers; images resized as pytorch-fid)"},
        {"fid-weights", NULL, DATO_ARG_TEXT, &c->fid_weights, 0, 0, NULL, NULL, "FILE",
         "Inception's weights: pt_inception-2015-12-05-6726825d.pth, or its state dict as "
         ".safetensors (implies --extractor inception)"},
        {"preprocess", NULL, DATO_ARG_TEXT, &c->preprocess, 0, 0, NULL, NULL, "MODE",
         "Inception's input: pytorch-fid (default), tf or clean (clean-fid), as dato-fid"},
        {"objective", NULL, DATO_ARG_CHOICE, &c->objective, 0, 0, OBJECTIVES, NULL, "teacher|fid|clip",
         "quality objective of the search: the mean squared feature distance of each image "
         "to the baseline's image from the same prompt and noise (default: low variance at "
         "small --images, see docs/SEARCH.md), FID against --ref, or 100 - the CLIP score "
         "(needs --clip). The final front is re-scored with FID (and CLIP score) either way."},
        {"clip", NULL, DATO_ARG_TEXT, &c->clip, 0, 0, NULL, NULL, "DIR",
         "a CLIP model folder in transformers' layout (DaTo uses ViT-L/14): the CLIP score of "
         "torchmetrics' CLIPScore for every evaluation and front member"},
        {"ref", NULL, DATO_ARG_TEXT, &c->ref, 0, 0, NULL, NULL, "FILE|baseline",
         "FID reference: real-data statistics (dato-fid stats HDF5, or a pytorch-fid / "
         "clean-fid .npz, taken as made with the same extractor), or the baseline schedule's "
         "own images on the same prompts and seeds (default: the model's reference statistics "
         "if it ships them, else baseline)"},
        {"latency", NULL, DATO_ARG_CHOICE, &c->latency, 0, 0, LATENCIES, NULL, "table|measured",
         "latency objective: predicted from a per-call cost table calibrated at the start "
         "(default; deterministic), or measured per evaluation. The final front is always "
         "re-measured."},
        {"latency-table", NULL, DATO_ARG_TEXT, &c->o.latency_table, 0, 0, NULL, NULL, "FILE",
         "reuse this calibrated table (e.g. another run's latency_table.json) instead of "
         "calibrating: runs that share a table and a seed give the same front bit for bit"},
        {"steps", "num-inference-steps", DATO_ARG_INT, &g->steps, 2, 1000, NULL, NULL, "N",
         "sampler steps (default: the model's dato.json, else 50)"},
        {"guidance", "guidance-scale", DATO_ARG_FLOAT, &g->guidance, 0, 100, NULL, NULL, "G",
         "guidance scale (default: the model's dato.json, else 7.5)"},
        {"sampler", NULL, DATO_ARG_TEXT, &c->sampler, 0, 0, NULL, NULL, "NAME",
         "ddim | pndm | dpmpp-2m | euler | euler-a (default: the model's)"},
        {"scheduler-config", NULL, DATO_ARG_TEXT, &c->scheduler_config, 0, 0, NULL, NULL, "FILE|DIR",
         "the scheduler_config.json to use (a file, a scheduler/ folder or a diffusers folder) over the "
         "model's own; a single file otherwise gets the one diffusers' from_single_file gives its model "
         "type (docs/SINGLE_FILE.md)"},
        {"prediction-type", NULL, DATO_ARG_TEXT, &c->prediction_type, 0, 0, NULL, NULL, "epsilon|v_prediction",
         "what the UNet predicts, over the scheduler config's"},
        {"batch", NULL, DATO_ARG_INT, &c->batch, 1, 4096, NULL, NULL, "B",
         "images per generate call (default: the most, up to --images and 64, whose UNet "
         "workspace fits the device's free memory; said at the start)"},
        {"seed", NULL, DATO_ARG_U64, &c->seed, 0, 18446744073709551615.0, NULL, NULL, "S",
         "seed of every random choice (default 0)"},
        {"out", NULL, DATO_ARG_TEXT, &c->out, 0, 0, NULL, NULL, "DIR",
         "run folder (default results/<model>-pop<P>-gens<G>-seed<S>; folders are created)"},
        {"resume", NULL, DATO_ARG_TEXT, &c->o.resume, 0, 0, NULL, NULL, "FILE",
         "continue a run from its checkpoint (the run folder is FILE's folder); a finished run runs its "
         "final stages again (e.g. with more --pairs on a quieter machine), the search kept"},
        {"backend", NULL, DATO_ARG_CHOICE, &c->backend, 0, 0, dato_backend_names, NULL, "cpu|cuda",
         "where the networks run (default cpu). Under MPI each rank takes the GPU of its "
         "local rank: one rank per GPU on each host"},
        {"device", NULL, DATO_ARG_INT, &c->o.device, 0, 1023, NULL, NULL, "N",
         "the CUDA device of every rank instead (taken modulo the devices)"},
        {"threads", NULL, DATO_ARG_INT, &g->threads, 1, 1024, NULL, NULL, "N",
         "CPU threads per rank (default: all the cores, split among the ranks on a host); any "
         "count gives the same images bit for bit, so --resume may take another"},
        {"workers", NULL, DATO_ARG_INT, &c->o.workers, 1, 1024, NULL, NULL, "N",
         "without MPI: evaluate N candidates at once, each on its own copy of the model with the "
         "threads shared out (default: one a thread for a model whose UNet call is too little work "
         "to share, like the default model's; else 1). Changes no bit of the answer"},
        {"reference-cache", NULL, DATO_ARG_TEXT, &c->ref_cache, 0, 0, NULL, NULL, "DIR|none",
         "where the baseline's and the presets' results on the final and confirmation images are kept "
         "between runs of the same model, prompts, images and settings (whatever --pop, --gens or "
         "--objective), each checked against one batch made again before use (default: "
         "$XDG_CACHE_HOME/dato, else ~/.cache/dato; none: neither read nor written)"},
        {"rank-timeout", NULL, DATO_ARG_DOUBLE, &pool->timeout_s, 1, 1e9, NULL, NULL, "S",
         "under MPI: a rank silent this long on one task stops the run (default 600)"},
        {"quiet", NULL, DATO_ARG_FLAG, &c->quiet, 0, 0, NULL, NULL, NULL, "no progress output"},
        {"log-json", NULL, DATO_ARG_FLAG, &c->log_json, 0, 0, NULL, NULL, NULL, "one JSON object per generation on stdout"},
        {"help", NULL, DATO_ARG_FLAG, &c->help, 0, 0, NULL, NULL, NULL, "this text"},
    };
    int n = 0;
    while (n < N_OPTIONS && rows[n].name) n++;
    memcpy(t, rows, sizeof rows);
    return n;
}

static void usage(FILE* f) {
    cli c;
    dato_eval_pool pool;
    dato_arg t[N_OPTIONS];
    int n = options_table(&c, &pool, t);
    dato_text h;
    dato_error err;
    if (dato_text_init(&h, 16384, "--help", &err)) return;
    dato_text_append(&h,
        "usage: dato-search [options]\n"
        "       dato-search --resume RUN/checkpoint.h5 [--gens N] [--final-images M] [--confirm-images C]\n"
        "                       [--pairs N] [--timing-images N] [--bootstrap B] [--threads N] [--device N]\n"
        "\n"
        "Searches per-step DaTo schedules (cache depth, token prune ratio) of a model with NSGA-II,\n"
        "minimizing latency and a quality objective; re-scores the front with FID and 95%% intervals,\n"
        "re-measures its latency as paired ratios against the baseline, drops what that shows dominated,\n"
        "confirms the picks beside the presets on fresh images, and writes the front, its schedules\n"
        "and a report.\n"
        "\n"
        "  dato-search --pop 32 --gens 50                       the embedded default model\n"
        "  dato-search --model sd-v1-5/ --fid-weights pt_inception-2015-12-05-6726825d.pth \\\n"
        "      --prompts-file coco_captions.txt --ref fid_stats_coco.npz \\\n"
        "      --clip clip-vit-large-patch14/ --size 512 --backend cuda\n"
        "                                                       a Stable Diffusion model (docs/EVALUATION.md)\n"
        "\n"
        "A value follows its option as the next argument or after '=' (--pop=8).\n\n");
    dato_args_help(t, n, &h);
    dato_text_append(&h,
        "\n"
        "Outputs in the run folder: checkpoint.h5 (after every generation), latency_table.json,\n"
        "front.csv, confirm.csv, front.json, front.svg, report.html, schedules/front_<i>.json, grids/*.png,\n"
        "evaluations.csv and generations.csv (where and how long each evaluation ran).\n"
        "Export a schedule with dato-export RUN/checkpoint.h5 --pick knee.\n"
        "\n"
        "Under MPI (mpirun -np K dato-search ...) rank 0 runs the search and every rank evaluates;\n"
        "with table latency the front is the one-process front, bit for bit, whatever the threads\n"
        "per rank.\n"
        "Every rank must see the model, prompts and reference at the same paths; see\n"
        "docs/DISTRIBUTED.md.%s\n",
        dato_eval_pool_have_mpi() ? "" : "\nThis build has no MPI (rebuild with libopenmpi-dev installed).");
    fputs(h.data, f);
    dato_text_free(&h);
}

// Messages come from rank 0 alone: every rank parses the same command line.
static FILE* msg_out;

// ---- what the run shows (the library's observer, search_run.h) ---------------------------------------

// Messages on stderr; each stage's progress as a bar redrawn in place on a terminal, elsewhere (a log
// file, CI) a line at each quarter so that logs stay readable; a line per generation (or with
// --log-json an object) and the final tables (or an object) on stdout.
typedef struct {
    int quiet, log_json, tty;
    char stage[96]; // the stage the quarters are counted for
    int quarter;
} view;

static void show_message(void* ctx, dato_search_level level, const char* text) {
    view* v = ctx;
    if (level == DATO_SEARCH_WARNING) fprintf(stderr, "dato-search: warning: %s\n", text);
    else if (!v->quiet) fprintf(stderr, "dato-search: %s\n", text);
}

static void show_progress(void* ctx, const char* stage, int done, int total, double elapsed_s, double eta_s) {
    view* v = ctx;
    if (v->tty) {
        int w = 30, fill = total ? done * w / total : w;
        fprintf(stderr, "\rdato-search: %s [%.*s%*s] %d/%d  %.0f s, ETA %.0f s   ", stage, fill,
                "##############################", w - fill, "", done, total, elapsed_s, eta_s);
        if (done == total) fprintf(stderr, "\r%*s\r", 110, "");
        return;
    }
    if (strncmp(v->stage, stage, sizeof v->stage - 1)) { // a new stage
        snprintf(v->stage, sizeof v->stage, "%s", stage);
        v->quarter = 0;
    }
    int q = total ? 4 * done / total : 4;
    if (q > v->quarter) {
        v->quarter = q;
        fprintf(stderr, "dato-search: %s %d/%d  %.0f s, ETA %.0f s\n", stage, done, total, elapsed_s, eta_s);
    }
}

static void show_generation(void* ctx, const dato_search_generation* g) {
    view* v = ctx;
    const char* objective = dato_quality_objective_name(g->objective);
    if (v->log_json)
        printf("{\"generation\": %d, \"front\": %d, \"hypervolume\": %.6f, \"objective\": \"%s\", "
               "\"best_quality\": %.6f, \"fastest_ms\": %.6f, \"evaluations\": %d, \"screened_only\": %d, "
               "\"promoted\": %d, \"cache_hits\": %d, \"archive\": %zu, \"seconds\": %.3f, \"elapsed_s\": %.3f, "
               "\"eta_s\": %.1f, \"eta_final_s\": %.1f}\n",
               g->generation, g->front, g->hypervolume, objective, g->best_quality, 1e3 * g->fastest_s, g->evaluations,
               g->screened_only, g->promoted, g->cache_hits, g->archive, g->seconds, g->elapsed_s, g->eta_s,
               g->eta_final_s);
    else if (!v->quiet)
        printf("gen %3d/%d  front %2d  HV %.4f  best %s %8.3f  fastest %7.3f ms/img  new %2d  promoted %2d  "
               "cache hits %2d  %5.1f s  ETA %.0f s (final stages ~%.0f s)\n", g->generation, g->gens, g->front,
               g->hypervolume, g->objective == DATO_OBJECTIVE_FID ? "FID" : objective, g->best_quality,
               1e3 * g->fastest_s, g->evaluations, g->promoted, g->cache_hits, g->seconds, g->eta_s, g->eta_final_s);
    fflush(stdout);
}

// The final front and presets, then the confirmation: one table each.
static void show_summary(void* ctx, const dato_report* r) {
    view* v = ctx;
    const dato_report_point* base = &r->refs[0];
    if (v->log_json) {
        printf("{\"final_front\": %d, \"dropped\": %d, \"final_images\": %d, \"confirm_images\": %d, \"knee\": %d, "
               "\"fastest_ok\": %d, \"baseline_ms\": %.6f, \"baseline_fid\": %.6f}\n", r->n_front,
               r->n_dropped, r->cfg->final_images, r->confirm_images, r->knee_index, r->fastest_ok_index,
               1e3 * base->measured_latency_s, base->fid);
        return;
    }
    if (v->quiet) return;
    const dato_report_point* tables[2] = {r->refs, r->confirm};
    int sizes[2] = {r->n_refs, r->n_confirm};
    for (int t = 0; t < 2; t++) {
        if (!sizes[t]) continue;
        printf("%s (%d images per schedule; speedup: median of %d interleaved pairs against the baseline):\n",
               t ? "confirmation on fresh images" : "final front and presets", t ? r->confirm_images : r->cfg->final_images,
               r->cfg->pairs);
        printf("  %-34s %8s %16s %26s\n", "schedule", "ms/img", "speedup (pairs)", "FID [95% interval]");
        for (int i = 0; i < sizes[t] + (t ? 0 : r->n_front); i++) {
            const dato_report_point* p = i < sizes[t] ? &tables[t][i] : &r->front[i - sizes[t]];
            int fi = i - sizes[t];
            printf("  %-34s %8.3f %6.2fx (%.2f-%.2f) %8.2f [%7.2f, %7.2f]%s%s\n", p->label, 1e3 * p->measured_latency_s,
                   p->speedup, 1 / p->ratio_range.hi, 1 / p->ratio_range.lo, p->fid, p->fid_ci.lo, p->fid_ci.hi,
                   !t && fi >= 0 && fi == r->knee_index ? "  knee" : "",
                   !t && fi >= 0 && fi == r->fastest_ok_index ? "  fastest ok" : "");
        }
    }
    if (r->n_dropped) printf("%d candidate%s left out of the front (report.html lists them with the reason)\n",
                             r->n_dropped, r->n_dropped == 1 ? "" : "s");
    for (int w = 0; w < r->n_warnings; w++) printf("warning: %s\n", r->warnings[w]);
    printf("%s\nresults in %s (report.html, front.csv, confirm.csv, front.json, front.svg, schedules/)\n", r->verdict,
           r->run_dir);
}

// Where a run stopped by a signal (Ctrl-C; mpirun ending the job when a rank died) goes on from.
// Checkpoints are replaced atomically, so the last one is whole.
static char stop_note[4500];
static size_t stop_note_len;

static void on_stop_signal(int sig) {
    ssize_t n = write(STDERR_FILENO, stop_note, stop_note_len);
    (void)n;
    signal(sig, SIG_DFL);
    raise(sig);
}

// Fills o from the command line: -1 when the run should go on, else the exit code.
static int parse_args(int argc, char** argv, dato_search_options* o_, view* v, dato_eval_pool* pool, char* cmd,
                      size_t cmd_size, char* run_dir, char* model_dir, char* ref_cache_dir) {
    cli c = {.o = {.cfg = {.pop = 32, .gens = 50, .images = 10, .screen_images = -1, .promote = 0.25f,
                           .final_images = 200, .confirm_images = 1000, .pairs = 5, .timing_images = 2,
                           .bootstrap = 200, .guidance = -1.0f},
                   .device = -1, .confirm_images_override = -1}};
    dato_search_options* o = &c.o;
    for (int i = 0, n = 0; i < argc && n < (int)cmd_size - 1; i++)
        n += snprintf(cmd + n, cmd_size - n, i ? " %s" : "%s", argv[i]);
    o->command = cmd;
    dato_arg t[N_OPTIONS];
    int n = options_table(&c, pool, t), n_pos = 0;
    const char* pos[1];
    dato_error err;
    if (dato_args_parse(argc, argv, t, n, pos, 0, &n_pos, &err)) {
        fprintf(msg_out, "dato-search: %s\n", err.msg);
        return 2;
    }
    if (c.help) {
        if (pool->rank == 0) usage(stdout);
        return 0;
    }
    dato_search_config* g = &o->cfg;
    if (c.size && (g->height || g->width)) {
        fprintf(msg_out, "dato-search: give --size or --height/--width, not both\n");
        return 2;
    }
    if (c.size) g->height = g->width = c.size;
    if (c.prompts) snprintf(g->prompts_file, sizeof g->prompts_file, "%s", c.prompts);
    if (c.sampler) snprintf(g->sampler, sizeof g->sampler, "%s", c.sampler);
    if (c.clip) snprintf(g->clip, sizeof g->clip, "%s", c.clip);
    if (c.scheduler_config) snprintf(g->scheduler_config, sizeof g->scheduler_config, "%s", c.scheduler_config);
    dato_prediction_type pt;
    if (c.prediction_type && dato_prediction_type_parse(c.prediction_type, &pt, &err)) {
        fprintf(msg_out, "dato-search: --prediction-type: %s\n", err.msg);
        return 2;
    }
    if (c.prediction_type) snprintf(g->prediction_type, sizeof g->prediction_type, "%s", c.prediction_type);
    if (c.ref && !strcmp(c.ref, "baseline")) g->ref_mode = DATO_REF_BASELINE;
    else if (c.ref) snprintf(g->ref, sizeof g->ref, "%s", c.ref);
    if (c.fid_weights) snprintf(g->feature_net, sizeof g->feature_net, "%s", c.fid_weights);
    g->extractor = c.have_extractor ? (dato_extractor_kind)c.extractor
                                    : c.fid_weights ? DATO_EXTRACTOR_INCEPTION : DATO_EXTRACTOR_FEATNET;
    g->objective = (dato_quality_objective)c.objective;
    g->latency_mode = (dato_latency_mode)c.latency;
    g->backend = (dato_search_backend)c.backend; // dato_backend_names is in dato_search_backend's order
    if (c.preprocess) {
        int known = 0;
        for (int k = 0; PREPROCESS[k]; k++) known |= !strcmp(c.preprocess, PREPROCESS[k]);
        if (!known) {
            fprintf(msg_out, "dato-search: --preprocess: '%s': expected pytorch-fid, tf or clean\n", c.preprocess);
            return 2;
        }
        snprintf(g->preprocess, sizeof g->preprocess, "%s", c.preprocess);
    }
    if (g->objective == DATO_OBJECTIVE_CLIP && !g->clip[0] && !o->resume) {
        fprintf(msg_out, "dato-search: --objective clip needs --clip DIR (a CLIP model folder, e.g. "
                         "openai/clip-vit-large-patch14 as transformers saves it)\n");
        return 2;
    }
    if (c.have_extractor && g->extractor == DATO_EXTRACTOR_FEATNET && c.fid_weights) {
        fprintf(msg_out, "dato-search: --fid-weights is Inception's: it goes with --extractor inception\n");
        return 2;
    }
    if (g->sampler[0]) {
        dato_sampler_kind k;
        if (dato_sampler_kind_parse(g->sampler, &k, &err)) {
            fprintf(msg_out, "dato-search: --sampler: %s\n", err.msg);
            return 2;
        }
    }
    if (o->resume) { // the run folder is the checkpoint's; only gens, the final stages' counts and threads
                     // may change
        const char* slash = strrchr(o->resume, '/');
        snprintf(run_dir, 4096, "%.*s", slash ? (int)(slash - o->resume) : 1, slash ? o->resume : ".");
        o->run_dir = run_dir;
        o->gens_override = c.have_gens ? g->gens : 0;
        o->final_images_override = c.have_final ? g->final_images : 0;
        o->confirm_images_override = c.have_confirm ? g->confirm_images : -1;
        o->pairs_override = c.have_pairs ? g->pairs : 0;
        o->timing_images_override = c.have_timing ? g->timing_images : 0;
        o->bootstrap_override = c.have_bootstrap ? g->bootstrap : 0;
        o->threads_override = g->threads;
        if (c.have_gens && g->gens < 1) {
            fprintf(msg_out, "dato-search: --gens must be >= 1 on resume\n");
            return 2;
        }
    } else {
        const char* model = c.model;
        if (!model) {
            if (dato_default_model_dir(model_dir, 4096, &err)) {
                fprintf(msg_out, "dato-search: %s\n", err.msg);
                return 1;
            }
            model = model_dir;
        }
        snprintf(g->model, sizeof g->model, "%s", model);
        g->seed = c.seed;
        g->batch = c.batch; // 0: chosen to fit the device's memory once the model is open
        if (c.out) {
            snprintf(run_dir, 4096, "%.4000s", c.out);
        } else {
            const char* base = strrchr(model, '/');
            base = base && base[1] ? base + 1 : model;
            snprintf(run_dir, 4096, "results/%.200s-pop%d-gens%d-seed%llu", base, g->pop, g->gens,
                     (unsigned long long)c.seed);
        }
        o->run_dir = run_dir;
    }
    // The reference cache's folder: the flag's, else the XDG cache folder's dato/; none or no home: off.
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (c.ref_cache && !strcmp(c.ref_cache, "none")) ref_cache_dir[0] = '\0';
    else if (c.ref_cache) snprintf(ref_cache_dir, 4096, "%.4000s", c.ref_cache);
    else if (xdg && xdg[0] == '/') snprintf(ref_cache_dir, 4096, "%.4000s/dato", xdg);
    else if (home && home[0]) snprintf(ref_cache_dir, 4096, "%.4000s/.cache/dato", home);
    o->reference_cache = ref_cache_dir[0] ? ref_cache_dir : NULL;
    *o_ = *o;
    v->quiet = c.quiet;
    v->log_json = c.log_json;
    return -1;
}

int main(int argc, char** argv) {
    static char cmd[8192], run_dir[4096], model_dir[4096], ref_cache_dir[4096];
    dato_eval_pool pool;
    dato_error err = {{0}};
    msg_out = stderr;
    if (dato_eval_pool_init(&pool, &argc, &argv, &err)) {
        fprintf(stderr, "dato-search: %s\n", err.msg);
        return 1;
    }
    if (pool.rank != 0) msg_out = fopen("/dev/null", "w");
    if (!msg_out) msg_out = stderr;
    dato_search_options o;
    view v = {.tty = isatty(STDERR_FILENO)};
    int rc = parse_args(argc, argv, &o, &v, &pool, cmd, sizeof cmd, run_dir, model_dir, ref_cache_dir);
    if (rc < 0) {
        o.command = cmd;
        o.pool = &pool;
        if (pool.rank == 0) // quiet: no progress at all (the evaluations skip its bookkeeping)
            o.observer = (dato_search_observer){.ctx = &v, .message = show_message,
                                                .progress = v.quiet ? NULL : show_progress,
                                                .generation = show_generation, .summary = show_summary};
        o.open_backend = dato_backend_open; // this program's copy: CUDA where it was built with it
        if (pool.rank == 0) {
            snprintf(stop_note, sizeof stop_note, "\ndato-search: stopped by a signal; continue from the last finished "
                     "generation with: dato-search --resume %s/checkpoint.h5\n", run_dir);
            stop_note_len = strlen(stop_note);
            struct sigaction sa = {.sa_handler = on_stop_signal};
            sigaction(SIGTERM, &sa, NULL);
            sigaction(SIGINT, &sa, NULL);
        }
        rc = (pool.rank == 0 ? dato_search_run : dato_search_serve)(&o, &err) ? 1 : 0;
        if (rc) fprintf(stderr, "dato-search: %s\n", err.msg);
    }
    if (dato_eval_pool_close(&pool, &err)) {
        fprintf(stderr, "dato-search: %s\n", err.msg);
        if (pool.hung) {
            fprintf(stderr, "dato-search: ending every rank; continue from the last finished generation with: "
                    "dato-search --resume %s/checkpoint.h5\n", run_dir);
            dato_eval_pool_abort(&pool, 1);
        }
        rc = 1;
    }
    if (msg_out != stderr) fclose(msg_out);
    return rc;
}
