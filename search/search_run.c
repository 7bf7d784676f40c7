// One dato-search run (search/search_run.h).
#include "search_run.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "bootstrap.h"
#include "clip.h"
#include "checkpoint.h"
#include "clock.h"
#include "cost.h"
#include "eval_pool.h"
#include "evaluator.h"
#include "featnet.h"
#include "fid.h"
#include "file_util.h"
#include "genome.h"
#include "hash.h"
#include "hypervolume.h"
#include "image.h"
#include "latency.h"
#include "model_defaults.h"
#include "nsga2.h"
#include "pipeline.h"
#include "ref_cache.h"
#include "report.h"
#include "stats_io.h"
#include "text_buffer.h"

#define MAX_PROMPTS_BYTES (256 << 20) // a prompts file's size limit: COCO's 30k captions are about 2 MB
#define GRID_PROMPTS 8                // prompts shown in each grid of the report
#define N_REFS 7                      // the references: the baseline and the hand-made presets
static const char* const REF_SPECS[N_REFS] = {"baseline",
                                              "deepcache:2:branch=1",
                                              "deepcache:3:branch=1",
                                              "deepcache:4:branch=1",
                                              "deepcache:5:branch=1",
                                              "tome:0.5",
                                              "dato-paper"};
#define MAX_TRIES 3                   // front members the confirmation tries for "fastest ok" (docs/SEARCH.md)
#define N_CONFIRMED (1 + MAX_TRIES)   // the confirmation's rows beside the references: the knee, the tries

// The image sets, each a fixed list of prompts and initial noises (common random numbers: every
// schedule starts from the same noises). The screening set is the first images of each prompt of
// the search set (the spread nests: prompt j's first k images are in both). The final and the
// confirmation sets are fresh: prompt j draws its noises from seed + offset + j. The timing set is
// rank 0's alone: the images of each timed call of the paired latency re-measure.
enum { SET_SCREEN, SET_SEARCH, SET_FINAL, SET_CONFIRM, SET_TIMING, N_SETS };
static const char* const SET_NAMES[N_SETS] = {"screening", "search", "final", "confirmation", "timing"};
static const uint64_t SET_SEED_OFFSET[N_SETS] = {0, 0, 1000000, 2000000, 0};

typedef struct {
    dato_evaluator ev;
    int made;
    float* base;               // (n_images, dim) the baseline's features: the teacher distance's and KID's reference
    float* features;           // (n_images, dim) scratch: a schedule's features
    double* per_image;         // (n_images) scratch: each image's teacher distance
    dato_fid_stats base_stats; // with --ref baseline: FID's reference, the statistics of base
    double base_s_per_image;   // rank 0: the baseline's fastest call, s per image
    uint8_t* base_cells;       // rank 0: (grid prompts, H, W, ch) the baseline's first image of each grid prompt
} image_set;

// What a rank sends back for one schedule (evaluate_task): its quality, and its measured time per
// image in its own time (rank 0 rescales it by rank_speed). The latency objective is rank 0's work.
// Intervals are computed on the final and confirmation sets only (NaN elsewhere). A final-set result
// is followed by the first image of the first prompts (n_grid, H, W, ch): the grids.
typedef struct {
    double fid, kid, teacher, measured, clip;
    dato_interval fid_ci, teacher_ci, clip_ci;
} rank_result;

// The tasks: a genome on the screening or the search set (gbytes), a schedule (a dato_schedule)
// on the final or the confirmation set, or a share of one schedule's images on a set (share_task).
enum { TASK_SCREEN = 1, TASK_SEARCH, TASK_FINAL, TASK_CONFIRM, TASK_SHARE };

// A share of a schedule's images on image set `set` (the baseline's, or sched's): its batches
// first_batch .. first_batch + n_batches - 1, of at most max_images images (every share's result has
// that room). Its result (share_layout): the fastest call's time per image (double), then
// (max_images, dim) features, (max_images) CLIP scores, and the cells (grid prompts, H, W, ch) of the
// grid prompts whose first image it holds.
typedef struct {
    int32_t set, first_batch, n_batches, max_images, baseline; // baseline: 1 the baseline, sched unused
    dato_schedule sched;
} share_task;

// rank 0's setup requests: the config (the worker opens the model and times the baseline), and an
// image set with the baseline's features on it.
enum { REQUEST_SETUP = 1, REQUEST_SET };

typedef struct {
    int32_t kind, set, images, pad;
} request_header;

typedef struct search_ctx {
    dato_search_config cfg;
    const dato_search_options* o;
    dato_backend be;
    int have_be, have_pipe;
    dato_pipeline pipe;
    dato_feature_extractor fx;
    dato_clip clip;             // with cfg.clip: CLIP scores
    int have_clip;
    char* prompt_text;          // the prompts file's bytes
    const char** prompts;       // (n_prompts) its lines, in prompt_text
    image_set sets[N_SETS];
    dato_genome_space space;
    size_t gbytes;
    dato_nsga2* ga;
    dato_archive archive;
    dato_latency_table table;
    int have_table;
    dato_fid_stats ref;         // FID's reference statistics file (--ref FILE)
    dato_stats_meta ref_meta, fx_meta;
    dato_schedule sched;        // scratch
    int n_final;                // the re-scored final front, once finish ran (checkpoint /final)
    uint8_t* final_genomes;     // (n_final, gbytes) by latency
    double* final_scores;       // (n_final, DATO_SEARCH_N_FINAL)
    double final_baseline[DATO_SEARCH_N_FINAL];
    char ckpt_path[4096], table_path[4096];
    double t_start, elapsed_before;
    int hits, evals, screened, promoted; // this generation: archive hits, new evaluations, of them screened
                                         // only, and candidates promoted to the search set
    double gen_s_sum;           // seconds of the generations run in this process, and their count: the ETA
    int gens_timed;
    // evaluation across ranks (search/eval_pool.h)
    dato_eval_pool* pool;
    int lane;                   // 1..: this context is one of rank 0's lanes (it says nothing), 0: not
    struct search_ctx** lanes;  // rank 0: (n_lanes) its lanes' contexts
    dato_eval_handlers* lane_handlers; // (n_lanes)
    int n_lanes, lane_threads;
    double* rank_speed;         // (1 + workers) rank 0's baseline time / the evaluator's: measured latencies in rank 0's time
    int* task_of;               // (pop) each candidate's task this generation, -1 when already scored
    uint8_t* tasks;             // (pop, gbytes) the new genomes
    rank_result* results;       // (pop) their scores
    dato_eval_trace* trace;     // (pop) where and how long each ran
    double eval_wall_s;         // this generation's time inside dato_eval_pool_map
    dato_text trace_rows;       // this generation's evaluations.csv rows, written after its checkpoint
    int gen;                    // the generation being evaluated
    dato_checkpoint ck;         // a resume's checkpoint, until its state is taken
    char made_top[4096];        // the uppermost folder this run created for run_dir ("" if it existed)
    int made_sub[2];            // 1: this run created grids/, schedules/
    int saved;                  // 1 once this run wrote a checkpoint
    char size_from[4200];       // where the image size came from, for a complaint about it
    char model_refs[4096];      // the model's own reference cache (dato.json reference_cache), read-only; "" none
} search_ctx;

// A message for the caller's observer (search_run.h), on rank 0 alone.
static void say(const search_ctx* s, dato_search_level level, const char* fmt, ...) {
    const dato_search_observer* ob = &s->o->observer;
    if (!ob->message || s->pool->rank != 0 || s->lane) return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ob->message(ob->ctx, level, text);
}

// ---- identities ------------------------------------------------------------------------------------------

// The files that identify a model folder: a diffusers pipeline's, and a CLIP model's (transformers').
static const char* const PIPELINE_PARTS[] = {"unet/diffusion_pytorch_model.safetensors",
                                             "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                                             "unet/config.json", "scheduler/scheduler_config.json", NULL};
static const char* const CLIP_PARTS[] = {"config.json", "model.safetensors", "model.safetensors.index.json", NULL};

// A model's identity: the hash of its weight files (a single file, or the folder's parts).
static dato_status model_hash(const char* path, const char* const* parts, char* out, size_t n, dato_error* err) {
    if (dato_is_file(path)) return dato_file_hash(path, out, n, err);
    uint64_t h = DATO_FNV_OFFSET;
    int found = 0;
    for (size_t i = 0; parts[i]; i++) {
        char p[4096], fh[64];
        DATO_TRY(dato_path_join(p, sizeof p, path, parts[i], err));
        if (!dato_is_file(p)) continue;
        DATO_TRY(dato_file_hash(p, fh, sizeof fh, err));
        h = dato_fnv1a64(h, fh, strlen(fh));
        found++;
    }
    if (!found) return dato_fail(err, DATO_ERR_INVALID, "%s: no model weights found to identify the model", path);
    snprintf(out, n, "fnv1a64:%016llx", (unsigned long long)h);
    return DATO_OK;
}

// ---- setup -------------------------------------------------------------------------------------------------

// One prompt per non-empty line, any count (COCO-30k's captions file too).
static dato_status read_prompts(search_ctx* s, dato_error* err) {
    if (!dato_is_file(s->cfg.prompts_file))
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s, not a file of prompts (one per line expected)",
                         s->cfg.prompts_file, dato_is_dir(s->cfg.prompts_file) ? "a folder" : "no such file");
    DATO_TRY(dato_read_text_file(s->cfg.prompts_file, &s->prompt_text, MAX_PROMPTS_BYTES, err));
    DATO_TRY(dato_file_hash(s->cfg.prompts_file, s->cfg.prompts_hash, sizeof s->cfg.prompts_hash, err));
    size_t lines = 1;
    for (const char* q = s->prompt_text; *q; q++) lines += *q == '\n';
    s->prompts = malloc(lines * sizeof *s->prompts);
    if (!s->prompts) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for %zu prompts", s->cfg.prompts_file, lines);
    int n = 0;
    for (char* line = s->prompt_text; *line;) { // by hand: strtok's state is shared by the lanes' threads
        size_t len = strcspn(line, "\r\n");
        char* next = line + len + (line[len] != 0);
        line[len] = 0;
        if (len) s->prompts[n++] = line;
        line = next;
    }
    if (!n) return dato_fail(err, DATO_ERR_INVALID, "%s: no prompts (one per line expected)", s->cfg.prompts_file);
    s->cfg.n_prompts = n;
    return DATO_OK;
}

// The final stages' counts: defaults where unset (0, as in a checkpoint of format 2), then checked.
static dato_status final_defaults(dato_search_config* c, dato_error* err) {
    if (!c->pairs) c->pairs = 5;
    if (!c->timing_images) c->timing_images = 2;
    if (!c->bootstrap) c->bootstrap = 200;
    if (c->pairs < 1 || c->pairs > 1000) return dato_fail(err, DATO_ERR_INVALID, "--pairs %d: expected 1..1000", c->pairs);
    if (c->timing_images < 1) return dato_fail(err, DATO_ERR_INVALID, "--timing-images %d: expected >= 1", c->timing_images);
    if (c->bootstrap < 10) return dato_fail(err, DATO_ERR_INVALID, "--bootstrap %d: expected >= 10", c->bootstrap);
    if (c->confirm_images < 0 || c->confirm_images == 1)
        return dato_fail(err, DATO_ERR_INVALID, "--confirm-images %d: expected 0 (none) or >= 2", c->confirm_images);
    return DATO_OK;
}

// The counts a run rests on, for a new run and for a resumed one (a checkpoint is a file like any other).
static dato_status check_config(const dato_search_config* c, dato_error* err) {
    if (c->steps < 2 || c->steps > DATO_SCHEDULE_MAX_STEPS)
        return dato_fail(err, DATO_ERR_INVALID, "steps %d: expected 2..%d", c->steps, DATO_SCHEDULE_MAX_STEPS);
    const struct {
        const char* name;
        int value, least;
    } counts[] = {{"--images", c->images, 2}, {"--final-images", c->final_images, 2}, {"--pop", c->pop, 4}};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
        if (counts[i].value < counts[i].least || counts[i].value > DATO_EVAL_MAX_IMAGES)
            return dato_fail(err, DATO_ERR_INVALID, "%s %d: expected %d..%d", counts[i].name, counts[i].value,
                             counts[i].least, DATO_EVAL_MAX_IMAGES);
    if (c->confirm_images > DATO_EVAL_MAX_IMAGES || c->timing_images > DATO_EVAL_MAX_IMAGES)
        return dato_fail(err, DATO_ERR_INVALID, "--confirm-images %d, --timing-images %d: expected at most %d",
                         c->confirm_images, c->timing_images, DATO_EVAL_MAX_IMAGES);
    if (c->screen_images && (c->screen_images < 2 || c->screen_images >= c->images))
        return dato_fail(err, DATO_ERR_INVALID, "--screen-images %d: expected 0 (off) or 2..%d (fewer than --images %d)",
                         c->screen_images, c->images - 1, c->images);
    if (!(c->promote > 0 && c->promote <= 1))
        return dato_fail(err, DATO_ERR_INVALID, "--promote %g: expected a fraction in (0, 1]", (double)c->promote);
    return DATO_OK;
}

// Fills what a new run left unset from the model's dato.json and checks the rest.
static dato_status resolve_config(search_ctx* s, dato_error* err) {
    dato_search_config* c = &s->cfg;
    dato_model_defaults md;
    if (!dato_is_dir(c->model) && !dato_is_file(c->model))
        return dato_fail(err, DATO_ERR_NOT_FOUND, "--model %s: no such model folder or file", c->model);
    DATO_TRY(dato_model_defaults_load(&md, c->model, err));
    if (!c->steps) c->steps = md.steps ? md.steps : 50;
    if (c->guidance < 0) c->guidance = md.guidance ? md.guidance : 7.5f;
    if (c->height || c->width) {
        snprintf(s->size_from, sizeof s->size_from, "--height/--width (or --size)");
    } else if (md.height) { // else the model's sample size, once the model is open
        c->height = md.height;
        c->width = md.width ? md.width : md.height;
        snprintf(s->size_from, sizeof s->size_from, "%s/dato.json (height %d, width %d)", c->model, c->height, c->width);
    }
    if (!c->prompts_file[0]) {
        if (!md.eval_prompts[0])
            return dato_fail(err, DATO_ERR_INVALID, "%s has no dato.json eval_prompts: give --prompts-file FILE", c->model);
        snprintf(c->prompts_file, sizeof c->prompts_file, "%s", md.eval_prompts);
    }
    // The extractor: pytorch-fid's Inception when asked for, else the feature network the model ships
    // for its own domain (the default model's).
    if (c->extractor == DATO_EXTRACTOR_INCEPTION) {
        if (!c->feature_net[0])
            return dato_fail(err, DATO_ERR_INVALID, "--extractor inception needs --fid-weights FILE: pytorch-fid's "
                             "pt_inception-2015-12-05-6726825d.pth (or the same state dict as .safetensors)");
        if (!c->preprocess[0]) snprintf(c->preprocess, sizeof c->preprocess, "pytorch-fid");
        dato_fid_prep prep;
        DATO_TRY(dato_fid_prep_parse(c->preprocess, &prep, err));
    } else if (!c->feature_net[0]) {
        if (!md.feature_net[0])
            return dato_fail(err, DATO_ERR_INVALID, "%s ships no feature network of its own (dato.json feature_net): "
                             "score with pytorch-fid's Inception-v3: --fid-weights "
                             "pt_inception-2015-12-05-6726825d.pth", c->model);
        snprintf(c->feature_net, sizeof c->feature_net, "%s", md.feature_net);
    }
    if (c->extractor == DATO_EXTRACTOR_FEATNET && c->preprocess[0])
        return dato_fail(err, DATO_ERR_INVALID, "--preprocess %s: only Inception's input is preprocessed "
                         "(--extractor inception)", c->preprocess);
    // The default reference: the model's own real-data statistics when it ships them (taken with its
    // feature network), else the baseline's outputs.
    if (c->ref_mode == DATO_REF_FILE && !c->ref[0]) {
        if (c->extractor == DATO_EXTRACTOR_FEATNET && md.reference_stats[0] && dato_is_file(md.reference_stats))
            snprintf(c->ref, sizeof c->ref, "%s", md.reference_stats);
        else
            c->ref_mode = DATO_REF_BASELINE;
    }
    // Multi-fidelity: screening on a fifth of the images, from 10 images up (fewer leave nothing to screen on).
    if (c->screen_images < 0) c->screen_images = c->images >= 10 ? c->images / 5 : 0;
    DATO_TRY(final_defaults(c, err));
    return check_config(c, err);
}

// CPU threads of this rank: --threads, else all the host's cores split among the ranks on it.
static int rank_threads(const search_ctx* s) {
    if (s->cfg.threads > 0) return s->cfg.threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN), local = s->pool->local_size;
    if (local <= 1) return 0; // all
    return cores / local > 1 ? (int)(cores / local) : 1;
}

// The CPU threads this rank runs on: rank_threads, or with 0 (all) OpenMP's default, OMP_NUM_THREADS
// or the cores. What the report says.
static int threads_used(const search_ctx* s) {
    int t = rank_threads(s);
    if (t > 0) return t;
    const char* env = getenv("OMP_NUM_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

// This rank's backend: the CPU, or the CUDA device of its local rank (or --device), modulo the devices.
static dato_status open_backend(search_ctx* s, dato_error* err) {
    dato_backend_spec spec = {.name = dato_search_backend_name(s->cfg.backend), .threads = rank_threads(s),
                              .device = s->o->device >= 0 ? s->o->device : s->pool->local_rank, .device_modulo = 1};
    dato_backend_open_fn open = s->o->open_backend ? s->o->open_backend : dato_backend_open;
    dato_status st = open(&s->be, &spec, NULL, 0, err);
    if (st && s->pool->size > 1) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return dato_fail(err, st, "%s: %s", s->pool->where[s->pool->rank], why);
    }
    return st;
}

// The reference statistics: dato-fid's HDF5, whose provenance must match the extractor, or a
// pytorch-fid / clean-fid / ADM .npz, which records none and is taken as made by this extractor.
static dato_status read_reference(search_ctx* s, dato_error* err) {
    const char* path = s->cfg.ref;
    size_t n = strlen(path);
    if (n >= 4 && !strcmp(path + n - 4, ".npz")) {
        DATO_TRY(dato_stats_read_npz(path, &s->ref, err));
        if (s->ref.dim != s->fx.dim)
            return dato_fail(err, DATO_ERR_INVALID, "--ref %s: statistics of %d features, the %s extractor gives %d",
                             path, s->ref.dim, dato_extractor_kind_name(s->cfg.extractor), s->fx.dim);
        s->ref_meta = s->fx_meta;
        snprintf(s->ref_meta.source, sizeof s->ref_meta.source, "%.480s", path);
        say(s, DATO_SEARCH_INFO, "%s records no provenance: taken as %s features with %s preprocessing", path,
            s->fx.name, s->fx.preprocessing);
        return DATO_OK;
    }
    DATO_TRY(dato_stats_read_h5(path, &s->ref, &s->ref_meta, err));
    return dato_stats_check_compatible(&s->fx_meta, "the search's feature extractor", &s->ref_meta, path, err);
}

static dato_status open_model(search_ctx* s, dato_error* err) {
    dato_search_config* c = &s->cfg;
    DATO_TRY(open_backend(s, err));
    s->have_be = 1;
    dato_pipeline_options popt = {.scheduler_config = c->scheduler_config[0] ? c->scheduler_config : NULL,
                                  .prediction_type = c->prediction_type[0] ? c->prediction_type : NULL};
    DATO_TRY(dato_pipeline_open(&s->pipe, c->model, &s->be, &popt, err));
    s->have_pipe = 1;
    if (s->pipe.n_text == 0) return dato_fail(err, DATO_ERR_INVALID, "%s: the search needs a text-conditioned model", c->model);
    DATO_TRY(model_hash(c->model, PIPELINE_PARTS, c->model_hash, sizeof c->model_hash, err));
    dato_model_defaults md;
    DATO_TRY(dato_model_defaults_load(&md, c->model, err));
    snprintf(s->model_refs, sizeof s->model_refs, "%s", md.reference_cache);
    c->n_branches = s->pipe.unet.n_branches;
    if (!c->sampler[0]) snprintf(c->sampler, sizeof c->sampler, "%s", dato_sampler_kind_name(s->pipe.sched.kind));
    int f = dato_pipeline_vae_factor(&s->pipe);
    if (!c->height && !c->width)
        snprintf(s->size_from, sizeof s->size_from, "the model's default (UNet sample_size %d x VAE factor %d)",
                 s->pipe.unet.cfg.sample_size, f);
    if (!c->height) c->height = c->width ? c->width : s->pipe.unet.cfg.sample_size * f;
    if (!c->width) c->width = c->height;
    if (dato_evaluator_check_size(&s->pipe, c->height, c->width, err)) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s", s->size_from[0] ? s->size_from : "the image size", why);
    }
    if (c->extractor == DATO_EXTRACTOR_INCEPTION) {
        dato_fid_prep prep;
        DATO_TRY(dato_fid_prep_parse(c->preprocess, &prep, err));
        DATO_TRY(dato_extractor_inception_open(&s->fx, c->feature_net, prep, &s->be, err));
    } else {
        DATO_TRY(dato_extractor_featnet_open(&s->fx, c->feature_net, &s->be, err));
    }
    if (c->clip[0]) {
        DATO_TRY(dato_clip_open(&s->clip, c->clip, &s->be, err));
        s->have_clip = 1;
        DATO_TRY(model_hash(c->clip, CLIP_PARTS, c->clip_hash, sizeof c->clip_hash, err));
    }
    snprintf(s->fx_meta.extractor, sizeof s->fx_meta.extractor, "%s", s->fx.name);
    snprintf(s->fx_meta.weights_hash, sizeof s->fx_meta.weights_hash, "%s", s->fx.weights_hash);
    snprintf(s->fx_meta.preprocessing, sizeof s->fx_meta.preprocessing, "%s", s->fx.preprocessing);
    snprintf(s->fx_meta.source, sizeof s->fx_meta.source, "dato-search %.480s", c->model);
    if (c->ref_mode == DATO_REF_FILE) {
        DATO_TRY(dato_file_hash(c->ref, c->ref_hash, sizeof c->ref_hash, err));
        DATO_TRY(read_reference(s, err));
    } else {
        c->ref[0] = c->ref_hash[0] = 0;
    }
    return read_prompts(s, err);
}

// Images per generate call when --batch is not given: the most, up to min(images, 64), whose UNet
// workspace and feature cache for the guided batch (2 rows an image) fit in 60% of the memory the
// backend has free with the model loaded (the rest: the feature extractor's and the VAE's own). Says
// what it chose and why.
static dato_status choose_batch(search_ctx* s, dato_error* err) {
    dato_search_config* c = &s->cfg;
    int f = dato_pipeline_vae_factor(&s->pipe), rows = c->guidance > 1 ? 2 : 1;
    int seq = dato_tokenizer_max_len(s->pipe.tokenizer[0]);
    size_t avail = s->be.ops->mem_available ? s->be.ops->mem_available(&s->be) : 0, budget = avail / 10 * 6, need = 0;
    DATO_TRY(dato_evaluator_check_size(&s->pipe, c->height, c->width, err));
    int B = c->images < 64 ? c->images : 64;
    for (;; B = B > 1 ? B / 2 : 1) {
        size_t ws = 0, cache = 0;
        DATO_TRY(dato_unet_ws_bytes(&s->pipe.unet, rows * B, c->height / f, c->width / f, seq, &ws, &cache, err));
        need = ws + cache;
        if (!avail || need <= budget || B == 1) break;
    }
    c->batch = B;
    say(s, DATO_SEARCH_INFO, "%d image%s per UNet call: its workspace and cache take %.0f MiB of the %.0f MiB "
                "free on %s%s", B, B == 1 ? "" : "s", need / 1048576.0, avail / 1048576.0,
                s->be.name ? s->be.name : "?", avail ? (need > budget ? " (more than 60%: expect swapping or an "
                "out-of-memory stop; lower --height/--width)" : "") : " (free memory unknown)");
    return DATO_OK;
}

static dato_sampler_kind sampler_kind(const search_ctx* s) {
    dato_sampler_kind k = s->pipe.sched.kind;
    dato_error e;
    if (s->cfg.sampler[0]) dato_sampler_kind_parse(s->cfg.sampler, &k, &e);
    return k;
}

// The per-call cost table: calibrated once per run and kept beside the checkpoint, so a resume
// predicts exactly the same latencies.
static dato_status setup_latency_table(search_ctx* s, int resuming, dato_error* err) {
    dato_search_config* c = &s->cfg;
    if (c->latency_mode != DATO_LATENCY_TABLE) return DATO_OK;
    dato_latency_setup setup = {.model = c->model, .threads = c->threads, .batch = c->batch, .guided = c->guidance > 1,
                                .height = s->sets[SET_SEARCH].ev.h, .width = s->sets[SET_SEARCH].ev.w,
                                .seq = dato_tokenizer_max_len(s->pipe.tokenizer[0]), .sampler = sampler_kind(s),
                                .warmup = 1, .runs = 5};
    dato_latency_key key;
    dato_latency_key_make(&key, &s->pipe.unet, &s->be, &setup);
    if (!resuming && s->o->latency_table) { // reuse a table: check its key, keep a copy with the run
        char* text = NULL;
        DATO_TRY(dato_latency_load(&s->table, s->o->latency_table, &key, err));
        DATO_TRY(dato_read_text_file(s->o->latency_table, &text, 1 << 24, err));
        dato_status st = dato_report_write_file(s->o->run_dir, "latency_table.json", text, strlen(text), err);
        free(text);
        DATO_TRY(st);
    } else if (resuming) {
        // The run's own table, whose hash the checkpoint holds: it keeps the thread count it was timed
        // at (a resume may change threads: the bits do not depend on it), every other key field must agree.
        DATO_TRY(dato_latency_load(&s->table, s->table_path, NULL, err));
        key.threads = s->table.key.threads;
        DATO_TRY(dato_latency_key_check(&s->table.key, &key, s->table_path, err));
    } else if (dato_is_file(s->table_path)) { // a run that stopped before its first checkpoint calibrated it
        DATO_TRY(dato_latency_load(&s->table, s->table_path, &key, err));
    } else {
        say(s, DATO_SEARCH_INFO, "calibrating the latency table (%d depths x %d ratios)", c->n_branches + 2,
            DATO_LAT_N_RATIOS);
        dato_scheduler_config sched; // the run's sampler's config, as the evaluations read it
        DATO_TRY(dato_pipeline_scheduler(&s->pipe, setup.sampler, &sched, err));
        DATO_TRY(dato_latency_calibrate(&s->table, &s->pipe.unet, &sched, &setup, err));
        DATO_TRY(dato_latency_save(&s->table, s->table_path, err));
        // Predict from the numbers as stored, as a resume and any run reusing the table will:
        // the in-memory table can differ from its JSON in the last bit.
        DATO_TRY(dato_latency_load(&s->table, s->table_path, &key, err));
    }
    s->have_table = 1;
    char h[32];
    DATO_TRY(dato_file_hash(s->table_path, h, sizeof h, err));
    if (resuming && strcmp(h, c->latency_table_hash))
        return dato_fail(err, DATO_ERR_INVALID, "%s: latency table changed since the checkpoint (%s vs %s)",
                         s->table_path, h, c->latency_table_hash);
    snprintf(c->latency_table_hash, sizeof c->latency_table_hash, "%s", h);
    return DATO_OK;
}

// Prompts in each grid: the first ones that have images, at most GRID_PROMPTS.
static int grid_prompts(const dato_evaluator* ev) { return ev->n_used < GRID_PROMPTS ? ev->n_used : GRID_PROMPTS; }
// The bytes of ev's grid cells: the first image of each grid prompt (grid_prompts, H, W, ch).
static size_t grid_bytes(const dato_evaluator* ev) { return (size_t)grid_prompts(ev) * ev->H * ev->W * ev->ch; }

// The first image of each grid prompt of ev's last run into cells (grid_prompts, H, W, ch).
static void first_images(const dato_evaluator* ev, uint8_t* cells) {
    size_t img = (size_t)ev->H * ev->W * ev->ch;
    for (int j = 0; j < grid_prompts(ev); j++) memcpy(cells + (size_t)j * img, ev->pixels + (size_t)ev->first[j] * img, img);
}

// ---- image sets ------------------------------------------------------------------------------------------

// Image set k on this rank: its evaluator of `images` images and its buffers.
static dato_status make_set(search_ctx* s, int k, int images, dato_error* err) {
    dato_search_config* c = &s->cfg;
    image_set* set = &s->sets[k];
    dato_eval_config ec = {.steps = c->steps, .guidance = c->guidance, .sampler = sampler_kind(s),
                           .seed = c->seed + SET_SEED_OFFSET[k], .images = images, .height = c->height,
                           .width = c->width, .batch = c->batch, .clip = s->have_clip ? &s->clip : NULL};
    DATO_TRY(dato_evaluator_create(&set->ev, &s->pipe, &s->fx, s->prompts, c->n_prompts, &ec, err));
    set->made = 1;
    size_t n = (size_t)set->ev.n_images, nf = n * s->fx.dim;
    set->base = malloc(nf * sizeof(float));
    set->features = malloc(nf * sizeof(float));
    set->per_image = malloc(n * sizeof(double));
    if (!set->base || !set->features || !set->per_image)
        return dato_fail(err, DATO_ERR_NOMEM, "%s images: out of memory for %zu features", SET_NAMES[k], nf);
    return DATO_OK;
}

static void free_set(image_set* set) {
    dato_evaluator_free(&set->ev);
    free(set->base);
    free(set->features);
    free(set->per_image);
    free(set->base_cells);
    dato_fid_stats_free(&set->base_stats);
    memset(set, 0, sizeof *set);
}

// Gaussian statistics of features (n, dim).
static dato_status stats_of(const float* features, int n, int dim, dato_fid_stats* out, dato_error* err) {
    dato_feature_stats acc;
    DATO_TRY(dato_feature_stats_init(&acc, dim, err));
    dato_status st = dato_feature_stats_add(&acc, features, n, err);
    if (!st) st = dato_feature_stats_finalize(&acc, out, NULL, err);
    dato_feature_stats_free(&acc);
    return st;
}

// The baseline's features on set k are its reference (set->base); with --ref baseline also FID's.
static dato_status take_baseline(search_ctx* s, int k, dato_error* err) {
    image_set* set = &s->sets[k];
    if (s->cfg.ref_mode != DATO_REF_BASELINE) return DATO_OK;
    dato_fid_stats_free(&set->base_stats);
    return stats_of(set->base, set->ev.n_images, s->fx.dim, &set->base_stats, err);
}

// FID's reference on set k.
static const dato_fid_stats* set_ref(const search_ctx* s, int k) {
    return s->cfg.ref_mode == DATO_REF_BASELINE ? &s->sets[k].base_stats : &s->ref;
}

// ---- scoring ---------------------------------------------------------------------------------------------

typedef struct {
    double latency, fid, kid, teacher, measured, predicted, clip;
    dato_interval fid_ci, teacher_ci, clip_ci;
} score;

static const dato_interval NO_INTERVAL = {NAN, NAN};

// The quality of set k's features (set->features) generated in measured_s seconds per image: FID
// against the set's reference; the teacher distance (the mean over images of |f - f_base|^2, f and
// f_base the features of the same prompt and noise under the schedule and under the baseline) and
// KID against the baseline's features. KID (x 1000, the scale papers quote) only on Inception
// features: on a model's own feature network its scale means nothing. With intervals, bootstrap
// 95% intervals over images, every schedule resampled alike (one seed). Latency is score_latency's.
static dato_status score_quality(search_ctx* s, int k, double measured_s, int intervals, score* out,
                                 dato_error* err) {
    image_set* set = &s->sets[k];
    int n = set->ev.n_images, dim = s->fx.dim;
    const dato_fid_stats* ref = set_ref(s, k);
    dato_fid_result r;
    DATO_TRY(dato_fid_from_features(set->features, n, dim, ref, &r, err));
    out->fid = r.fid;
    out->kid = NAN;
    if (s->cfg.extractor == DATO_EXTRACTOR_INCEPTION) {
        dato_kid_config kc = {.n_subsets = 10, .subset_size = n < 1000 ? n : 1000, .seed = s->cfg.seed};
        dato_kid_result kr;
        DATO_TRY(dato_kid(set->features, n, set->base, n, dim, &kc, &kr, err));
        out->kid = 1e3 * kr.mean;
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double d2 = 0;
        for (int j = 0; j < dim; j++) {
            double d = (double)set->features[(size_t)i * dim + j] - set->base[(size_t)i * dim + j];
            d2 += d * d;
        }
        set->per_image[i] = d2;
        sum += d2;
    }
    out->teacher = sum / n;
    out->clip = dato_evaluator_clip_score(&set->ev);
    out->measured = measured_s;
    out->fid_ci = out->teacher_ci = out->clip_ci = NO_INTERVAL;
    if (!intervals) return DATO_OK;
    dato_bootstrap_config bc = {.replicates = s->cfg.bootstrap, .level = 0.95, .seed = s->cfg.seed};
    DATO_TRY(dato_bootstrap_fid(set->features, n, dim, ref, &bc, &out->fid_ci, err));
    DATO_TRY(dato_bootstrap_mean(set->per_image, n, &bc, &out->teacher_ci, err));
    if (set->ev.clip_scores) { // torchmetrics floors the score at 0
        DATO_TRY(dato_bootstrap_mean(set->ev.clip_scores, n, &bc, &out->clip_ci, err));
        out->clip_ci.lo = fmax(out->clip_ci.lo, 0);
        out->clip_ci.hi = fmax(out->clip_ci.hi, 0);
    }
    return DATO_OK;
}

// The latency of sched (NULL: baseline): predicted from the cost table, when there is one, and the
// objective's choice between that and the measured time.
static dato_status score_latency(search_ctx* s, const dato_schedule* sched, score* out, dato_error* err) {
    out->predicted = NAN;
    if (s->have_table) {
        dato_latency_prediction p;
        DATO_TRY(dato_latency_predict(&s->table, sched, s->cfg.steps, sampler_kind(s), &p, err));
        out->predicted = p.total_s / s->cfg.batch;
    }
    out->latency = s->cfg.latency_mode == DATO_LATENCY_TABLE ? out->predicted : out->measured;
    return DATO_OK;
}

// How ev's images are spread over its prompts, e.g. "10 images over 4 prompts: 3 each for the first 2, 2 for the rest".
static const char* spread_text(const dato_evaluator* ev, char* buf, size_t n) {
    int I = ev->n_images, P = ev->n_prompts, q = I / P, r = I % P;
    if (I < P) snprintf(buf, n, "%d images: one for each of the first %d of %d prompts", I, I, P);
    else if (!r) snprintf(buf, n, "%d images over %d prompts: %d each", I, P, q);
    else snprintf(buf, n, "%d images over %d prompts: %d each for the first %d, %d for the rest", I, P, q + 1, r, q);
    return buf;
}

// A score as a rank sends it back.
static rank_result result_of(const score* sc) {
    return (rank_result){sc->fid, sc->kid, sc->teacher, sc->measured, sc->clip, sc->fid_ci, sc->teacher_ci, sc->clip_ci};
}

// A rank's result as rank 0's score: the measured time rescaled to rank 0's speed, then the latency.
static dato_status score_of_result(search_ctx* s, const rank_result* r, int rank, const dato_schedule* sched,
                                   score* out, dato_error* err) {
    *out = (score){.fid = r->fid, .kid = r->kid, .teacher = r->teacher, .clip = r->clip,
                   .measured = r->measured * s->rank_speed[rank], .fid_ci = r->fid_ci, .teacher_ci = r->teacher_ci,
                   .clip_ci = r->clip_ci};
    return score_latency(s, sched, out, err);
}

// The image set a task kind runs on.
static int set_of_task(int kind) {
    switch (kind) {
    case TASK_SCREEN: return SET_SCREEN;
    case TASK_SEARCH: return SET_SEARCH;
    case TASK_FINAL: return SET_FINAL;
    case TASK_CONFIRM: return SET_CONFIRM;
    default: return -1;
    }
}

// Where a share's result (share_task) keeps its parts, and its size, on set k.
typedef struct {
    size_t features, clip, cells, bytes;
} share_layout;

static share_layout layout_of(const search_ctx* s, int k, int max_images) {
    const dato_evaluator* ev = &s->sets[k].ev;
    share_layout l = {.features = sizeof(double)};
    l.clip = l.features + (size_t)max_images * s->fx.dim * sizeof(float);
    l.cells = l.clip + (size_t)max_images * sizeof(double);
    l.bytes = l.cells + grid_bytes(ev);
    return l;
}

// The images [*first, *end) of a share.
static void share_images(const dato_evaluator* ev, const share_task* t, int* first, int* end) {
    *first = t->first_batch * ev->cfg.batch;
    *end = *first + t->n_batches * ev->cfg.batch;
    if (*end > ev->n_images) *end = ev->n_images;
}

// A share of a schedule's images (TASK_SHARE) on this rank.
static dato_status evaluate_share(search_ctx* s, const uint8_t* task, uint8_t* out, dato_error* err) {
    share_task t;
    memcpy(&t, task, sizeof t);
    if (t.set < 0 || t.set >= SET_TIMING || !s->sets[t.set].made)
        return dato_fail(err, DATO_ERR_INVALID, "a share of image set %d, which is not set up", t.set);
    image_set* set = &s->sets[t.set];
    dato_evaluator* ev = &set->ev;
    int first, end, dim = s->fx.dim;
    share_images(ev, &t, &first, &end);
    if (t.first_batch < 0 || end - first > t.max_images)
        return dato_fail(err, DATO_ERR_INVALID, "a share of %d images from image %d, room for %d", end - first, first,
                         t.max_images);
    if (!t.baseline) DATO_TRY(dato_schedule_validate(&t.sched, s->cfg.steps, s->cfg.n_branches, err));
    dato_eval_timing tm;
    DATO_TRY(dato_evaluator_run_batches(ev, t.baseline ? NULL : &t.sched, t.first_batch, t.n_batches, set->features,
                                        NULL, &tm, err));
    share_layout l = layout_of(s, t.set, t.max_images);
    memcpy(out, &tm.best_s_per_image, sizeof(double));
    memcpy(out + l.features, set->features + (size_t)first * dim, (size_t)(end - first) * dim * sizeof(float));
    if (ev->clip_scores) memcpy(out + l.clip, ev->clip_scores + first, (size_t)(end - first) * sizeof(double));
    size_t img = (size_t)ev->H * ev->W * ev->ch;
    for (int j = 0; j < grid_prompts(ev); j++)
        if (ev->first[j] >= first && ev->first[j] < end)
            memcpy(out + l.cells + (size_t)j * img, ev->pixels + (size_t)ev->first[j] * img, img);
    return DATO_OK;
}

// One task on this rank (the pool's evaluate, on any rank): a genome on the screening or search
// set, a schedule on the final or confirmation set, or a share of a schedule's images.
static dato_status evaluate_task(void* ctx, int kind, const uint8_t* task, void* out, dato_error* err) {
    search_ctx* s = ctx;
    if (kind == TASK_SHARE) return evaluate_share(s, task, out, err);
    int k = set_of_task(kind), is_schedule = kind == TASK_FINAL || kind == TASK_CONFIRM;
    if (k < 0) return dato_fail(err, DATO_ERR_INVALID, "task kind %d: expected a genome or a schedule", kind);
    image_set* set = &s->sets[k];
    if (!set->made) return dato_fail(err, DATO_ERR_INVALID, "a %s task before the %s images were set up", SET_NAMES[k],
                                     SET_NAMES[k]);
    if (is_schedule) memcpy(&s->sched, task, sizeof s->sched);
    else DATO_TRY(dato_genome_to_schedule(&s->space, task, &s->sched, err));
    DATO_TRY(dato_schedule_validate(&s->sched, s->cfg.steps, s->cfg.n_branches, err));
    dato_eval_timing t;
    score sc;
    DATO_TRY(dato_evaluator_run(&set->ev, &s->sched, set->features, NULL, &t, err));
    DATO_TRY(score_quality(s, k, t.best_s_per_image, is_schedule, &sc, err));
    rank_result r = result_of(&sc);
    memcpy(out, &r, sizeof r);
    if (kind == TASK_FINAL) first_images(&set->ev, (uint8_t*)out + sizeof r);
    return DATO_OK;
}

// The search's quality objective (minimized) of a score.
static double quality_objective(const search_ctx* s, const score* sc) {
    switch (s->cfg.objective) {
    case DATO_OBJECTIVE_FID: return sc->fid;
    case DATO_OBJECTIVE_CLIP: return 100.0 - sc->clip;
    default: return sc->teacher;
    }
}

// ---- progress ----------------------------------------------------------------------------------------------

// One stage's progress for the observer, timed from the stage's start.
typedef struct {
    const dato_search_observer* ob;
    const char* what; // e.g. "gen 3/50 screening"
    double t0;
} progress;

static void progress_start(progress* p, const search_ctx* s, const char* what) {
    *p = (progress){.ob = &s->o->observer, .what = what, .t0 = dato_clock_s()};
}

static void progress_update(void* ctx, int done, int total) {
    progress* p = ctx;
    double el = dato_clock_s() - p->t0, eta = done ? el / done * (total - done) : 0;
    if (p->ob->progress) p->ob->progress(p->ob->ctx, p->what, done, total, el, eta);
}

// ---- one schedule over the pool ----------------------------------------------------------------------------

// The evaluators that take tasks at once: the worker ranks or the lanes, and rank 0 where it has no lanes.
static int evaluators(const search_ctx* s) { return dato_eval_pool_workers(s->pool) + (s->pool->lanes ? 0 : 1); }

// Rank 0: the images of sched (NULL: the baseline) on set k spread over the pool's evaluators in
// shares of whole batches (their bits are a whole run's), assembled into features (n_images, dim),
// the set's evaluator's CLIP scores and cells (grid prompts, H, W, ch; NULL: not kept);
// *s_per_image the fastest share's time per image, in rank 0's time. About 4 shares an evaluator
// (a slow one holds up the end less), fewer where their results' room for the grid cells would pass
// 256 MB (large images on many ranks), never fewer than the evaluators. `what` names it in progress.
static dato_status over_pool(search_ctx* s, int k, const dato_schedule* sched, const char* what, float* features,
                             uint8_t* cells, double* s_per_image, dato_error* err) {
    image_set* set = &s->sets[k];
    dato_evaluator* ev = &set->ev;
    size_t cell_room = grid_bytes(ev) + 1;
    int shares = 4 * evaluators(s);
    if ((size_t)shares * cell_room > ((size_t)256 << 20))
        shares = (size_t)evaluators(s) * cell_room > ((size_t)256 << 20) ? evaluators(s)
                                                                          : (int)(((size_t)256 << 20) / cell_room);
    int per = (ev->n_batches + shares - 1) / shares; // batches a share
    int n = (ev->n_batches + per - 1) / per, B = ev->cfg.batch, dim = s->fx.dim;
    share_layout l = layout_of(s, k, per * B);
    share_task* tasks = calloc((size_t)n, sizeof *tasks);
    uint8_t* results = malloc((size_t)n * l.bytes);
    dato_eval_trace* trace = malloc((size_t)n * sizeof *trace);
    dato_status st = tasks && results && trace ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "%s images: out of memory",
                                                                     SET_NAMES[k]);
    for (int i = 0; !st && i < n; i++) {
        tasks[i] = (share_task){.set = k, .first_batch = i * per, .max_images = per * B, .baseline = !sched,
                                .n_batches = ev->n_batches - i * per < per ? ev->n_batches - i * per : per};
        if (sched) tasks[i].sched = *sched;
    }
    progress pr;
    progress_start(&pr, s, what);
    dato_eval_handlers local = {.evaluate = evaluate_task, .ctx = s};
    if (!st)
        st = dato_eval_pool_map(s->pool, &local, TASK_SHARE, (const uint8_t*)tasks, n, sizeof *tasks, results, l.bytes,
                                trace, s->o->observer.progress ? progress_update : NULL, &pr, err);
    size_t img = (size_t)ev->H * ev->W * ev->ch;
    *s_per_image = INFINITY;
    for (int i = 0; !st && i < n; i++) {
        const uint8_t* r = results + (size_t)i * l.bytes;
        int first, end;
        share_images(ev, &tasks[i], &first, &end);
        double best;
        memcpy(&best, r, sizeof best);
        *s_per_image = fmin(*s_per_image, best * s->rank_speed[trace[i].rank]);
        memcpy(features + (size_t)first * dim, r + l.features, (size_t)(end - first) * dim * sizeof(float));
        if (ev->clip_scores) memcpy(ev->clip_scores + first, r + l.clip, (size_t)(end - first) * sizeof(double));
        for (int j = 0; cells && j < grid_prompts(ev); j++)
            if (ev->first[j] >= first && ev->first[j] < end)
                memcpy(cells + (size_t)j * img, r + l.cells + (size_t)j * img, img);
    }
    free(tasks);
    free(results);
    free(trace);
    return st;
}

// ---- the reference cache (search/ref_cache.h) ----------------------------------------------------------------

// Config fields that steer only the search, and paths whose files the key holds by their hash
// (model_hash, prompts_hash, ref_hash, clip_hash, the extractor's weights hash): neither changes the
// references' results, so a run with another --pop or a moved folder finds them.
static const char* const SEARCH_ONLY_FIELDS[] = {"model", "prompts_file", "ref", "feature_net", "clip", "images",
                                                 "screen_images", "promote", "objective", "latency_mode",
                                                 "latency_table_hash", "pop", NULL};

// The cache key of set k of `images` images: every config field that changes the answer but the
// search's own, the bootstrap's replicates, the extractor, the set and the presets. What the key
// cannot see (another engine build, another machine's last bits) the probe checks (probe_entry).
static uint64_t ref_key(const search_ctx* s, int k, int images) {
    const dato_search_config* c = &s->cfg;
    uint64_t h = dato_fnv1a64(DATO_FNV_OFFSET, DATO_REF_CACHE_MAGIC, strlen(DATO_REF_CACHE_MAGIC));
    for (int i = 0; i < dato_search_config_n_fields; i++) {
        const dato_config_field* f = &dato_search_config_fields[i];
        int skip = !f->answer && strcmp(f->name, "bootstrap");
        for (int j = 0; !skip && SEARCH_ONLY_FIELDS[j]; j++) skip = !strcmp(f->name, SEARCH_ONLY_FIELDS[j]);
        if (skip) continue;
        const char* at = (const char*)c + f->offset;
        size_t n = f->kind == DATO_FIELD_TEXT ? strnlen(at, f->size)
                   : f->kind == DATO_FIELD_U64 ? sizeof(uint64_t)
                   : f->kind == DATO_FIELD_FLOAT ? sizeof(float) : sizeof(int); // an enum is an int
        h = dato_fnv1a64(h, f->name, strlen(f->name) + 1);
        h = dato_fnv1a64(h, at, n);
    }
    h = dato_fnv1a64(h, s->fx.weights_hash, strlen(s->fx.weights_hash) + 1);
    h = dato_fnv1a64(h, SET_NAMES[k], strlen(SET_NAMES[k]) + 1);
    int32_t sizes[3] = {images, GRID_PROMPTS, (int32_t)sizeof(rank_result)};
    h = dato_fnv1a64(h, sizes, sizeof sizes);
    for (int r = 0; r < N_REFS; r++) h = dato_fnv1a64(h, REF_SPECS[r], strlen(REF_SPECS[r]) + 1);
    return h;
}

// A set's entry: this header, the digests of the presets' first batches (N_REFS - 1) u64
// (preset_digests), the baseline's features (n, dim) f32, its CLIP scores (n) f64 where the set has
// them, its grid cells, then the presets' results (N_REFS - 1, result_bytes) as the pool returns them
// (rank_result, then on the final set the grid cells), their times in rank 0's.
typedef struct {
    int32_t n_images, dim, has_clip, n_presets;
    uint64_t cell_bytes, result_bytes;
} ref_header;

typedef struct {
    size_t digests, base, clip, cells, results, bytes;
} ref_layout;

// The references' results on set k between runs: its key, and the payload of the entry found (in
// folder dir) or NULL.
typedef struct {
    uint64_t key;
    const char* dir;
    uint8_t* bytes;
    size_t n;
} ref_entry;

static uint64_t features_hash(const float* f, size_t n) { return dato_fnv1a64(DATO_FNV_OFFSET, f, n * sizeof *f); }

// The images an entry is probed on: the set's first batch.
static int probe_images(const dato_evaluator* ev) { return ev->cfg.batch < ev->n_images ? ev->cfg.batch : ev->n_images; }

// What the pool returns for one schedule on set k: the final set's carries its grid cells.
static size_t result_bytes_of(const search_ctx* s, int k) {
    return sizeof(rank_result) + (k == SET_FINAL ? grid_bytes(&s->sets[k].ev) : 0);
}

static ref_header ref_header_of(const search_ctx* s, int k) {
    const image_set* set = &s->sets[k];
    return (ref_header){set->ev.n_images, s->fx.dim, set->ev.clip_scores != NULL, N_REFS - 1, grid_bytes(&set->ev),
                        result_bytes_of(s, k)};
}

static ref_layout ref_layout_of(const search_ctx* s, int k) {
    ref_header h = ref_header_of(s, k);
    ref_layout l = {.digests = sizeof h};
    l.base = l.digests + (size_t)h.n_presets * sizeof(uint64_t);
    l.clip = l.base + (size_t)h.n_images * h.dim * sizeof(float);
    l.cells = l.clip + (h.has_clip ? (size_t)h.n_images * sizeof(double) : 0);
    l.results = l.cells + h.cell_bytes;
    l.bytes = l.results + (size_t)h.n_presets * h.result_bytes;
    return l;
}

// The folders an entry is looked for in: the user's (--reference-cache), then the model's own
// (dato.json reference_cache: shipped with the model, read-only). None with --reference-cache none.
static int ref_dirs(const search_ctx* s, const char* dirs[2]) {
    int n = 0;
    if (s->o->reference_cache) dirs[n++] = s->o->reference_cache;
    if (n && s->model_refs[0]) dirs[n++] = s->model_refs;
    return n;
}

// 1 when a folder holds an entry for set k of `images` images (not yet read nor checked).
static int refs_cached(const search_ctx* s, int k, int images) {
    const char* dirs[2];
    int n = ref_dirs(s, dirs), has = 0;
    for (int i = 0; i < n && images > 0 && !has; i++) has = dato_ref_cache_has(dirs[i], ref_key(s, k, images));
    return has;
}

// The digests of the presets' first batch of set k, made here (the set's features as scratch): with
// the baseline's first batch, what an entry is checked by, so that every path of the engine the
// entry's results came through (DeepCache's reuse, token pruning) is seen to give the same bits.
static dato_status preset_digests(search_ctx* s, int k, uint64_t* digests, dato_error* err) {
    dato_evaluator* ev = &s->sets[k].ev;
    for (int r = 1; r < N_REFS; r++) {
        dato_eval_timing t;
        DATO_TRY(dato_schedule_preset(&s->sched, REF_SPECS[r], s->cfg.steps, s->cfg.n_branches, err));
        DATO_TRY(dato_evaluator_run_batches(ev, &s->sched, 0, 1, s->sets[k].features, NULL, &t, err));
        digests[r - 1] = features_hash(s->sets[k].features, (size_t)probe_images(ev) * s->fx.dim);
    }
    return DATO_OK;
}

// 1 when entry e (of this set's shape) holds what this build makes: the baseline's first batch equal
// bit for bit, and the presets' by their digests. *s_per_image: that batch's time per image.
static dato_status probe_entry(search_ctx* s, int k, const ref_entry* e, int* same, double* s_per_image,
                               dato_error* err) {
    image_set* set = &s->sets[k];
    ref_layout l = ref_layout_of(s, k);
    dato_eval_timing t;
    uint64_t digests[N_REFS - 1];
    DATO_TRY(dato_evaluator_run_batches(&set->ev, NULL, 0, 1, set->features, NULL, &t, err));
    *s_per_image = t.best_s_per_image;
    *same = !memcmp(set->features, e->bytes + l.base, (size_t)probe_images(&set->ev) * s->fx.dim * sizeof(float));
    if (*same) DATO_TRY(preset_digests(s, k, digests, err));
    if (*same) *same = !memcmp(digests, e->bytes + l.digests, sizeof digests);
    return DATO_OK;
}

// Set k's entry (of `images` images) into e, from the first folder whose entry is of this set's
// shape and passes the probe (e->bytes NULL: none). Its baseline then goes into the set, its time
// per image the faster of the probe's and the search set's baseline call (the same batch, on rank
// 0). An entry whose probe differs is passed over, and the run says so.
static dato_status find_refs(search_ctx* s, int k, int images, ref_entry* e, dato_error* err) {
    image_set* set = &s->sets[k];
    ref_header want = ref_header_of(s, k), got;
    ref_layout l = ref_layout_of(s, k);
    const char* dirs[2];
    int n_dirs = ref_dirs(s, dirs), n = set->ev.n_images, dim = s->fx.dim, same = 0;
    double s_per_image = 0;
    *e = (ref_entry){.key = ref_key(s, k, images)};
    for (int i = 0; i < n_dirs && !same; i++) {
        DATO_TRY(dato_ref_cache_get(dirs[i], e->key, &e->bytes, &e->n, err));
        int fits = e->bytes && e->n == l.bytes;
        if (fits) memcpy(&got, e->bytes, sizeof got);
        if (fits && !memcmp(&got, &want, sizeof got)) DATO_TRY(probe_entry(s, k, e, &same, &s_per_image, err));
        if (same) e->dir = dirs[i];
        else if (fits)
            say(s, DATO_SEARCH_WARNING, "the reference cache %s: its entry for the %s images differs from this "
                "build's in the first batch of the baseline or a preset (another engine build or machine): not used",
                dirs[i], SET_NAMES[k]);
        if (!same) free(e->bytes), e->bytes = NULL, e->n = 0;
    }
    if (!same) return DATO_OK;
    memcpy(set->base, e->bytes + l.base, (size_t)n * dim * sizeof(float));
    if (set->ev.clip_scores) memcpy(set->ev.clip_scores, e->bytes + l.clip, (size_t)n * sizeof(double));
    memcpy(set->base_cells, e->bytes + l.cells, grid_bytes(&set->ev));
    set->base_s_per_image = fmin(s_per_image, s->sets[SET_SEARCH].base_s_per_image);
    say(s, DATO_SEARCH_INFO, "the baseline and the presets on the %d %s images: from the reference cache (%s), the "
        "first batch of each made again and equal bit for bit", n, SET_NAMES[k], e->dir);
    return DATO_OK;
}

// Writes set k's entry under key into the user's folder: the baseline as prepare_set left it, the
// presets' digests and results (N_REFS - 1, result_bytes, times in rank 0's). A failure to write is a
// warning: the cache only saves time.
static dato_status save_refs(search_ctx* s, int k, uint64_t key, const uint8_t* results, dato_error* err) {
    if (!s->o->reference_cache) return DATO_OK;
    image_set* set = &s->sets[k];
    ref_header h = ref_header_of(s, k);
    ref_layout l = ref_layout_of(s, k);
    uint64_t digests[N_REFS - 1];
    DATO_TRY(preset_digests(s, k, digests, err));
    uint8_t* b = malloc(l.bytes);
    if (!b) return dato_fail(err, DATO_ERR_NOMEM, "reference cache: out of memory for %zu bytes", l.bytes);
    memcpy(b, &h, sizeof h);
    memcpy(b + l.digests, digests, sizeof digests);
    memcpy(b + l.base, set->base, (size_t)h.n_images * h.dim * sizeof(float));
    if (h.has_clip) memcpy(b + l.clip, set->ev.clip_scores, (size_t)h.n_images * sizeof(double));
    memcpy(b + l.cells, set->base_cells, h.cell_bytes);
    memcpy(b + l.results, results, (size_t)h.n_presets * h.result_bytes);
    dato_error e = {0};
    if (dato_ref_cache_put(s->o->reference_cache, key, b, l.bytes, &e))
        say(s, DATO_SEARCH_WARNING, "the reference cache was not written (%s); the run goes on", e.msg);
    free(b);
    return DATO_OK;
}

// Rank 0: makes set k of `images` images and its baseline's images (their features the set's
// reference, their fastest call its time per image): from the reference cache where refs finds it
// there, else over the pool where it has workers; then hands the features to every worker. refs
// (NULL: no cache, the timing set) gets set k's entry, for score_schedules.
static dato_status prepare_set(search_ctx* s, int k, int images, ref_entry* refs, dato_error* err) {
    image_set* set = &s->sets[k];
    DATO_TRY(make_set(s, k, images, err));
    size_t cells = grid_bytes(&set->ev);
    if (!(set->base_cells = malloc(cells))) return dato_fail(err, DATO_ERR_NOMEM, "%s images: out of memory", SET_NAMES[k]);
    int spread = k != SET_TIMING && dato_eval_pool_workers(s->pool) > 0;
    request_header h = {REQUEST_SET, k, images, 0};
    if (spread) DATO_TRY(dato_eval_pool_request(s->pool, &h, sizeof h, NULL, 0, err)); // the workers make the set
    if (refs) DATO_TRY(find_refs(s, k, images, refs, err));
    int cached = refs && refs->bytes;
    if (!cached && spread) { // the workers take their shares
        char what[96];
        snprintf(what, sizeof what, "the baseline on the %d %s images", set->ev.n_images, SET_NAMES[k]);
        DATO_TRY(over_pool(s, k, NULL, what, set->base, set->base_cells, &set->base_s_per_image, err));
    } else if (!cached) {
        dato_eval_timing t;
        DATO_TRY(dato_evaluator_run(&set->ev, NULL, set->base, NULL, &t, err));
        set->base_s_per_image = t.best_s_per_image;
        first_images(&set->ev, set->base_cells);
    }
    DATO_TRY(take_baseline(s, k, err));
    if (!spread) return DATO_OK;
    size_t nf = (size_t)set->ev.n_images * s->fx.dim, bytes = sizeof h + nf * sizeof(float);
    uint8_t* msg = malloc(bytes);
    if (!msg) return dato_fail(err, DATO_ERR_NOMEM, "%s images: out of memory", SET_NAMES[k]);
    memcpy(msg, &h, sizeof h);
    memcpy(msg + sizeof h, set->base, nf * sizeof(float));
    dato_status st = dato_eval_pool_request(s->pool, msg, bytes, NULL, 0, err);
    free(msg);
    return st;
}

// ---- one generation -----------------------------------------------------------------------------------------

// Scores genomes (n, gbytes) on image set k (the screening or the search set), each once, on every
// rank; results land in s->results in task order. n_tasks genomes are in s->tasks.
static dato_status map_genomes(search_ctx* s, int kind, int n_tasks, const char* what, dato_error* err) {
    char label[96];
    snprintf(label, sizeof label, "gen %d/%d %s", s->gen, s->cfg.gens, what);
    progress p;
    progress_start(&p, s, label);
    dato_eval_handlers local = {.evaluate = evaluate_task, .ctx = s};
    double t0 = dato_clock_s();
    DATO_TRY(dato_eval_pool_map(s->pool, &local, kind, s->tasks, n_tasks, s->gbytes, s->results, sizeof *s->results,
                                s->trace, !s->o->observer.progress || !n_tasks ? NULL : progress_update, &p, err));
    s->eval_wall_s += dato_clock_s() - t0;
    int images = kind == TASK_SCREEN ? s->cfg.screen_images : s->cfg.images;
    for (int t = 0; t < n_tasks; t++) { // the trace: each task under its first candidate's index
        int i = 0;
        while (i < s->cfg.pop && s->task_of[i] != t) i++;
        dato_text_append(&s->trace_rows, "%d,%d,%d,%.6f,%.6f,%d\n", s->gen, i, s->trace[t].rank, s->trace[t].eval_s,
                         s->trace[t].round_trip_s, images);
    }
    return s->trace_rows.failed ? dato_fail(err, DATO_ERR_NOMEM, "evaluations.csv rows: out of memory") : DATO_OK;
}

// A scored task as an archive record: objectives (2) and extras (DATO_SEARCH_N_EXTRA) at `images`.
static dato_status record_of(search_ctx* s, const uint8_t* genome, int t, int images, double* obj, double* extra,
                             dato_error* err) {
    score sc;
    dato_schedule sched;
    DATO_TRY(dato_genome_to_schedule(&s->space, genome, &sched, err));
    DATO_TRY(score_of_result(s, &s->results[t], s->trace[t].rank, &sched, &sc, err));
    obj[0] = sc.latency;
    obj[1] = quality_objective(s, &sc);
    double e[DATO_SEARCH_N_EXTRA] = {sc.kid, sc.measured, sc.predicted, sc.fid, sc.teacher, images};
    memcpy(extra, e, sizeof e);
    return DATO_OK;
}

// The distinct genomes among n in genomes (n, gbytes) that pass keep, into s->tasks; task_of (n) gets
// each genome's task or -1. Returns the count.
static int collect_tasks(search_ctx* s, const uint8_t* genomes, int n, const int* keep) {
    int n_tasks = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t* g = genomes + (size_t)i * s->gbytes;
        s->task_of[i] = -1;
        if (!keep[i]) continue;
        int seen = -1;
        for (int j = 0; j < n_tasks && seen < 0; j++)
            if (!memcmp(s->tasks + (size_t)j * s->gbytes, g, s->gbytes)) seen = j;
        s->task_of[i] = seen >= 0 ? seen : n_tasks;
        if (seen < 0) memcpy(s->tasks + (size_t)n_tasks++ * s->gbytes, g, s->gbytes);
    }
    return n_tasks;
}

// The images an archive row's score rests on.
static int row_images(const search_ctx* s, size_t row) {
    return (int)dato_archive_get(&s->archive, row).extras[DATO_EXTRA_IMAGES];
}

// The candidates to promote from the screening: of the m distinct screened genomes (rows into the
// archive), by non-dominated rank on their screening scores, then crowding (larger first), then
// order; the first ceil(promote m). Writes promote_row[i] = 1 for those.
static dato_status choose_promoted(search_ctx* s, const size_t* rows, int m, int* promoted, dato_error* err) {
    if (!m) return DATO_OK;
    double* obj = malloc((size_t)m * DATO_SEARCH_N_OBJ * sizeof *obj);
    double* crowd = malloc((size_t)m * sizeof *crowd);
    int *rank = malloc((size_t)m * sizeof *rank), *members = malloc((size_t)m * sizeof *members),
        *order = malloc((size_t)m * sizeof *order);
    dato_status st = obj && crowd && rank && members && order ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "promotion: out of memory");
    for (int i = 0; !st && i < m; i++)
        memcpy(obj + (size_t)i * DATO_SEARCH_N_OBJ, dato_archive_get(&s->archive, rows[i]).objectives,
               DATO_SEARCH_N_OBJ * sizeof *obj);
    if (!st) st = dato_nsga2_nondominated_sort(obj, NULL, m, DATO_SEARCH_N_OBJ, rank, err);
    for (int f = 0; !st; f++) { // crowding within each front
        int n = 0;
        for (int i = 0; i < m; i++)
            if (rank[i] == f) members[n++] = i;
        if (!n) break;
        st = dato_nsga2_crowding(obj, DATO_SEARCH_N_OBJ, members, n, crowd, err);
    }
    for (int i = 0; i < m; i++) order[i] = i;
    for (int i = 1; !st && i < m; i++) // insertion sort: rank, then crowding descending, then index
        for (int j = i; j > 0; j--) {
            int a = order[j - 1], b = order[j];
            int better = rank[b] < rank[a] || (rank[b] == rank[a] && crowd[b] > crowd[a]);
            if (!better) break;
            order[j - 1] = b;
            order[j] = a;
        }
    int take = (int)ceil(s->cfg.promote * m - 1e-9);
    for (int i = 0; !st && i < m; i++) promoted[order[i]] = i < take;
    free(obj);
    free(crowd);
    free(rank);
    free(members);
    free(order);
    return st;
}

// Scores n genomes (n, gbytes) into objectives (n, 2) and violations (n). The archive answers genomes
// scored before. With screening (generations after the first), new genomes are scored on the
// screening images first; of every genome this generation whose score rests on the screening
// images, the best `promote` fraction (successive halving) is scored on the search set. A genome
// left at the screening fidelity gets violation 1: NSGA-II then ranks it behind every fully scored
// one, so the population holds only full-fidelity scores. Results are applied in genome order
// whatever rank ran them, so the archive grows in the same order with any number of ranks.
static dato_status evaluate_all(search_ctx* s, const uint8_t* genomes, int n, int generation, double* objectives,
                                double* violations, dato_error* err) {
    int screening = s->cfg.screen_images > 0 && generation > 0, full = s->cfg.images;
    s->hits = s->evals = s->screened = s->promoted = 0;
    s->gen = generation;
    s->eval_wall_s = 0;
    int* keep = calloc((size_t)n, sizeof *keep); // zeroed: gcc's sanitizer build cannot see it filled below
    int* promoted = malloc((size_t)n * sizeof *promoted);
    size_t* rows = malloc((size_t)n * sizeof *rows);      // (m) the screened genomes' archive rows
    size_t* row_of = malloc((size_t)n * sizeof *row_of);  // (n) each child's archive row, once scored
    int* first_of = malloc((size_t)n * sizeof *first_of); // (n) the first child with the same genome
    dato_status st = keep && promoted && rows && row_of && first_of ? DATO_OK
                                                                    : dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    // 1. New genomes: scored on the screening set (or the search set without screening).
    for (int i = 0; !st && i < n; i++) keep[i] = !dato_archive_find(&s->archive, genomes + (size_t)i * s->gbytes, NULL);
    int n_new = st ? 0 : collect_tasks(s, genomes, n, keep);
    s->hits = n - n_new; // children the archive held, or an earlier child of this generation
    if (!st) st = map_genomes(s, screening ? TASK_SCREEN : TASK_SEARCH, n_new, screening ? "screening" : "evaluation", err);
    for (int i = 0; !st && i < n; i++) {
        int t = s->task_of[i];
        const uint8_t* g = genomes + (size_t)i * s->gbytes;
        if (t < 0) continue;
        double obj[DATO_SEARCH_N_OBJ], extra[DATO_SEARCH_N_EXTRA];
        int inserted = 0;
        st = record_of(s, g, t, screening ? s->cfg.screen_images : full, obj, extra, err);
        if (!st) st = dato_archive_insert(&s->archive, g, obj, extra, generation, &inserted, NULL, err);
        s->evals += inserted;
    }
    // 2. Promotion: the distinct genomes of this generation still at the screening fidelity.
    int m = 0;
    for (int i = 0; !st && i < n; i++) {
        const uint8_t* g = genomes + (size_t)i * s->gbytes;
        if (!dato_archive_find(&s->archive, g, &row_of[i])) {
            st = dato_fail(err, DATO_ERR_INVALID, "generation %d: candidate %d is neither new nor archived", generation, i);
            break;
        }
        first_of[i] = i;
        for (int j = 0; j < i && first_of[i] == i; j++)
            if (!memcmp(genomes + (size_t)j * s->gbytes, g, s->gbytes)) first_of[i] = j;
        if (first_of[i] == i && row_images(s, row_of[i]) < full) rows[m++] = row_of[i];
    }
    if (!st && screening) st = choose_promoted(s, rows, m, promoted, err);
    if (!st && screening) {
        for (int i = 0, r = 0; i < n; i++) // promoted[] follows rows[]: the first children, in order
            keep[i] = first_of[i] == i && row_images(s, row_of[i]) < full ? promoted[r++] : 0;
        int n_promoted = collect_tasks(s, genomes, n, keep);
        s->promoted = n_promoted;
        st = map_genomes(s, TASK_SEARCH, n_promoted, "promoted", err);
        for (int i = 0; !st && i < n; i++) {
            int t = s->task_of[i];
            if (t < 0) continue;
            double obj[DATO_SEARCH_N_OBJ], extra[DATO_SEARCH_N_EXTRA];
            st = record_of(s, genomes + (size_t)i * s->gbytes, t, full, obj, extra, err);
            if (!st) st = dato_archive_update(&s->archive, row_of[i], obj, extra, err);
        }
    }
    // 3. Every child's objectives from the archive; a screening-only score is infeasible.
    for (int i = 0; !st && i < n; i++) {
        dato_archive_record r = dato_archive_get(&s->archive, row_of[i]);
        memcpy(objectives + (size_t)i * DATO_SEARCH_N_OBJ, r.objectives, DATO_SEARCH_N_OBJ * sizeof *objectives);
        violations[i] = row_images(s, row_of[i]) < full ? 1.0 : 0.0;
        s->screened += violations[i] > 0 && first_of[i] == i;
    }
    free(keep);
    free(promoted);
    free(rows);
    free(row_of);
    free(first_of);
    return st;
}

// ---- checkpoints ------------------------------------------------------------------------------------------

static dato_status save_checkpoint(search_ctx* s, dato_error* err) {
    s->saved = 1; // from the first try on: a failed write may have replaced nothing, but the folder is in use
    dato_checkpoint c = {.cfg = s->cfg, .pop = s->cfg.pop, .genome_bytes = (int)s->gbytes, .n_obj = DATO_SEARCH_N_OBJ,
                         .n_extra = DATO_SEARCH_N_EXTRA, .steps = s->cfg.steps,
                         .n_evaluations = (int64_t)dato_archive_count(&s->archive),
                         .elapsed_s = s->elapsed_before + dato_clock_s() - s->t_start, .n_final = s->n_final,
                         .final_genomes = s->final_genomes, .final_scores = s->final_scores};
    memcpy(c.final_baseline, s->final_baseline, sizeof c.final_baseline);
    size_t n = dato_archive_count(&s->archive), P = (size_t)s->cfg.pop;
    c.pop_genomes = malloc(P * s->gbytes);
    c.pop_objectives = malloc(P * DATO_SEARCH_N_OBJ * sizeof(double));
    c.pop_violations = malloc(P * sizeof(double));
    c.arch_genomes = malloc((n ? n : 1) * s->gbytes);
    c.arch_objectives = malloc((n ? n : 1) * DATO_SEARCH_N_OBJ * sizeof(double));
    c.arch_extras = malloc((n ? n : 1) * DATO_SEARCH_N_EXTRA * sizeof(double));
    c.arch_generations = malloc((n ? n : 1) * sizeof(int32_t));
    dato_status st = c.pop_genomes && c.pop_objectives && c.pop_violations && c.arch_genomes && c.arch_objectives &&
                             c.arch_extras && c.arch_generations
                         ? DATO_OK
                         : dato_fail(err, DATO_ERR_NOMEM, "checkpoint: out of memory");
    if (!st) st = dato_nsga2_get_state(s->ga, c.pop_genomes, c.pop_objectives, c.pop_violations, c.rng_state,
                                       &c.generation, err);
    if (!st) {
        dato_archive_export(&s->archive, c.arch_genomes, c.arch_objectives, c.arch_extras, c.arch_generations);
        st = dato_checkpoint_write(s->ckpt_path, &c, err);
    }
    free(c.pop_genomes);
    free(c.pop_objectives);
    free(c.pop_violations);
    free(c.arch_genomes);
    free(c.arch_objectives);
    free(c.arch_extras);
    free(c.arch_generations);
    return st;
}

// ---- per-generation summary ---------------------------------------------------------------------------------

// Hypervolume of the first front with both objectives divided by the largest value the initial
// population reached (generation-0 archive rows), reference point (1.1, 1.1): a number that only
// grows as the front improves, comparable across the generations of one run.
static double front_hypervolume(search_ctx* s, int* front, int n_front, double* best_quality, double* fastest) {
    double norm[2] = {0, 0};
    for (size_t i = 0; i < dato_archive_count(&s->archive); i++) {
        dato_archive_record r = dato_archive_get(&s->archive, i);
        if (r.generation != 0) continue;
        for (int k = 0; k < 2; k++) norm[k] = fmax(norm[k], r.objectives[k]);
    }
    double* pts = malloc((size_t)n_front * 2 * sizeof *pts), hv = 0, ref[2] = {1.1, 1.1};
    *best_quality = INFINITY;
    *fastest = INFINITY;
    for (int i = 0; pts && i < n_front; i++) {
        const double* o = s->ga->objectives + 2 * front[i];
        *fastest = fmin(*fastest, o[0]);
        *best_quality = fmin(*best_quality, o[1]);
        for (int k = 0; k < 2; k++) pts[2 * i + k] = norm[k] > 0 ? o[k] / norm[k] : o[k];
    }
    dato_error e;
    if (!pts || dato_hypervolume(pts, n_front, 2, ref, &hv, &e)) hv = NAN;
    free(pts);
    return hv;
}

// A rough count of what the final stages cost, in baseline images' time: the front candidates and
// presets on the final images (at about half the baseline's time each), the baseline and the presets
// and picks on the confirmation images, and the timing pairs; what goes through the pool at the
// evaluators' combined speed. A set whose references the cache holds costs one batch of its
// baseline (the probe) and no presets. For the ETA only.
static double final_stages_s(const search_ctx* s) {
    const dato_search_config* c = &s->cfg;
    double per_image = s->sets[SET_SEARCH].base_s_per_image, n_front = c->pop / 2 > 4 ? c->pop / 2 : 4;
    int fin_cached = refs_cached(s, SET_FINAL, c->final_images), conf_cached = refs_cached(s, SET_CONFIRM, c->confirm_images);
    double own = (fin_cached ? c->batch : c->final_images) + (conf_cached ? c->batch : c->confirm_images) +
                 (double)c->pairs * c->timing_images * (2 * (n_front + N_REFS) + 1); // rank 0's
    double mapped = c->final_images * 0.5 * (n_front + (fin_cached ? 0 : N_REFS - 1)) +
                    c->confirm_images * 0.6 * ((conf_cached ? 0 : N_REFS - 1) + 3); // the knee, two tries
    double speed = s->pool->lanes ? 0 : 1; // the evaluators' speeds in rank 0's, summed
    for (int w = 1; s->rank_speed && w <= dato_eval_pool_workers(s->pool); w++) speed += s->rank_speed[w];
    return per_image * (own + mapped / (speed > 0 ? speed : 1));
}

// The generation's summary for the observer.
static void report_generation(search_ctx* s, int gen, double gen_seconds) {
    const dato_search_observer* ob = &s->o->observer;
    s->gen_s_sum += gen_seconds;
    s->gens_timed++;
    int* front = ob->generation ? malloc((size_t)s->cfg.pop * sizeof *front) : NULL;
    if (!front) return;
    dato_search_generation g = {.generation = gen, .gens = s->cfg.gens, .objective = s->cfg.objective,
                                .evaluations = s->evals, .screened_only = s->screened, .promoted = s->promoted,
                                .cache_hits = s->hits, .archive = dato_archive_count(&s->archive),
                                .seconds = gen_seconds, .elapsed_s = s->elapsed_before + dato_clock_s() - s->t_start,
                                .eta_final_s = final_stages_s(s)};
    g.front = dato_nsga2_first_front(s->ga, front);
    g.hypervolume = front_hypervolume(s, front, g.front, &g.best_quality, &g.fastest_s);
    g.eta_s = s->gen_s_sum / s->gens_timed * (s->cfg.gens - gen) + g.eta_final_s;
    free(front);
    ob->generation(ob->ctx, &g);
}

// ---- the final front -----------------------------------------------------------------------------------------

// A one-row grid PNG of cells (n, H, W, ch) at run_dir/rel.
static dato_status write_grid(search_ctx* s, const dato_evaluator* ev, const uint8_t* cells, const char* rel,
                              dato_error* err) {
    char path[4096];
    DATO_TRY(dato_path_join(path, sizeof path, s->o->run_dir, rel, err));
    int n = grid_prompts(ev), gh, gw;
    DATO_TRY(dato_image_grid_size(n, ev->H, ev->W, n, 2, &gh, &gw, err));
    uint8_t* grid = malloc((size_t)gh * gw * ev->ch);
    if (!grid) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    dato_status st = dato_image_grid(grid, cells, n, ev->H, ev->W, ev->ch, n, 2, err);
    if (!st) st = dato_png_write(path, grid, gh, gw, ev->ch, NULL, err);
    free(grid);
    return st;
}

// A report point from a score on `images` images: its latency_s the score's (the latency objective's
// measure); the paired re-measure is set_ratio's.
static void fill_point(dato_report_point* p, const char* label, const dato_schedule* sched, const score* sc, int images) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->schedule = *sched;
    p->fid = sc->fid;
    p->fid_ci = sc->fid_ci;
    p->kid = sc->kid;
    p->teacher = sc->teacher;
    p->teacher_ci = sc->teacher_ci;
    p->clip = sc->clip;
    p->clip_ci = sc->clip_ci;
    p->images = images;
    p->candidate = -1;
    p->latency_s = sc->latency;
    p->measured_latency_s = p->latency_ratio = p->speedup = NAN;
    p->ratio_range = NO_INTERVAL;
    dato_schedule_counts k = dato_schedule_count(sched);
    p->full = k.full;
    p->partial = k.partial;
    p->reuse = k.reuse;
    p->mean_ratio = k.mean_ratio;
}

// The paired latency of a point: ratio (3) = median, least, greatest of its pairs; base_s the
// baseline's time per image at the run's batch.
static void set_ratio(dato_report_point* p, const double* ratio, int pairs, double base_s) {
    p->latency_ratio = ratio[0];
    p->ratio_range = (dato_interval){ratio[1], ratio[2]};
    p->pairs = pairs;
    p->measured_latency_s = base_s * ratio[0];
    p->speedup = 1 / ratio[0];
}

typedef struct {
    double latency, quality;
    size_t row;
} archive_point;

static int cmp_archive_points(const void* a, const void* b) {
    const archive_point *x = a, *y = b;
    if (x->latency != y->latency) return x->latency < y->latency ? -1 : 1;
    if (x->quality != y->quality) return x->quality < y->quality ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

// The final front's candidates: the non-dominated rows of the whole archive scored on all the search
// images (every genome the run scored fully; denser than the population's front, which holds at most
// pop members), by latency, the baseline's genome left out (it is a reference). A front longer than
// cap is thinned to cap rows evenly spaced along it, both ends kept. Returns the count written to
// rows (cap), or -1 when out of memory.
static int archive_front(const search_ctx* s, const uint8_t* baseline, size_t* rows, int cap) {
    const dato_archive* a = &s->archive;
    size_t n = dato_archive_count(a), m = 0;
    archive_point* pts = malloc((n ? n : 1) * sizeof *pts);
    if (!pts) return -1;
    for (size_t i = 0; i < n; i++) {
        dato_archive_record r = dato_archive_get(a, i);
        if (r.extras[DATO_EXTRA_IMAGES] < s->cfg.images || !memcmp(r.genome, baseline, s->gbytes)) continue;
        pts[m++] = (archive_point){r.objectives[0], r.objectives[1], i};
    }
    qsort(pts, m, sizeof *pts, cmp_archive_points);
    size_t f = 0; // the front, compacted to the start of pts: each strictly better in quality than the last
    for (size_t i = 0; i < m; i++)
        if (f == 0 || pts[i].quality < pts[f - 1].quality) pts[f++] = pts[i];
    int k = f < (size_t)cap ? (int)f : cap;
    for (int i = 0; i < k; i++) rows[i] = pts[k == 1 ? 0 : (size_t)((double)i * (double)(f - 1) / (k - 1) + 0.5)].row;
    free(pts);
    return k;
}

static int cmp_doubles(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// The paired latency re-measure, on rank 0 alone: `pairs` rounds, in each of which the baseline and
// the n schedules alternate (B S1 B S2 B ... Sn B) over the timing images; a schedule's ratio is its
// denoising time over the mean of the baseline's times just before and after it, so a machine that
// slows or speeds up between calls cancels to first order. out (n, 3): each schedule's median, least
// and greatest ratio; noise (3): 1 and the least and greatest baseline time over their median, the
// machine's own spread.
static dato_status measure_ratios(search_ctx* s, const dato_schedule* scheds, int n, double* out, double* noise,
                                  dato_error* err) {
    image_set* set = &s->sets[SET_TIMING];
    int P = s->cfg.pairs;
    double* r = malloc((size_t)n * P * sizeof *r);        // (n, P)
    double* b = malloc((size_t)(n + 1) * P * sizeof *b);  // (P (n + 1)) every baseline time
    int nb = 0;
    if (!r || !b) {
        free(r);
        free(b);
        return dato_fail(err, DATO_ERR_NOMEM, "timing pairs: out of memory");
    }
    progress pr;
    char label[96];
    snprintf(label, sizeof label, "timing %d pairs x %d schedules on %d images", P, n, set->ev.n_images);
    progress_start(&pr, s, label);
    dato_eval_timing t;
    dato_status st = DATO_OK;
    for (int round = 0; !st && round < P; round++) {
        st = dato_evaluator_run(&set->ev, NULL, set->features, NULL, &t, err);
        double before = b[nb++] = t.total_s;
        for (int i = 0; !st && i < n; i++) {
            st = dato_evaluator_run(&set->ev, &scheds[i], set->features, NULL, &t, err);
            double mine = t.total_s;
            if (!st) st = dato_evaluator_run(&set->ev, NULL, set->features, NULL, &t, err);
            if (st) break;
            r[(size_t)i * P + round] = mine / (0.5 * (before + t.total_s));
            before = b[nb++] = t.total_s;
            progress_update(&pr, round * n + i + 1, P * n);
        }
    }
    for (int i = 0; !st && i < n; i++) {
        double* x = r + (size_t)i * P;
        qsort(x, (size_t)P, sizeof *x, cmp_doubles);
        out[3 * i] = P % 2 ? x[P / 2] : 0.5 * (x[P / 2 - 1] + x[P / 2]);
        out[3 * i + 1] = x[0];
        out[3 * i + 2] = x[P - 1];
    }
    if (!st) {
        qsort(b, (size_t)nb, sizeof *b, cmp_doubles);
        double med = nb % 2 ? b[nb / 2] : 0.5 * (b[nb / 2 - 1] + b[nb / 2]);
        noise[0] = 1;
        noise[1] = b[0] / med;
        noise[2] = b[nb - 1] / med;
    }
    free(r);
    free(b);
    return st;
}

// 1 when (time xa, FID fa) dominates (xb, fb), both minimized.
static int dominates_at(double xa, double fa, double xb, double fb) {
    return xa <= xb && fa <= fb && (xa < xb || fa < fb);
}

// 1 when a dominates b in (paired latency ratio, FID): what the re-measured cut and the verdict judge by.
static int dominates(const dato_report_point* a, const dato_report_point* b) {
    return dominates_at(a->latency_ratio, a->fid, b->latency_ratio, b->fid);
}

// A point's latency for a cut: the search's own (latency_s) or the paired ratio.
static double cut_latency(const dato_report_point* p, int by_ratio) { return by_ratio ? p->latency_ratio : p->latency_s; }

// Cuts the front: of the points pts[idx[0 .. n - 1]], one whose latency (cut_latency) is not below
// bound (the baseline's), or that a point below it dominates in (that latency, FID), gets a note
// saying why and goes to dropped (*n_dropped grows); the rest stay in idx, in order. Returns how many stay.
static int cut_front(dato_report_point* pts, int* idx, int n, int by_ratio, double bound, dato_report_point* dropped,
                     int* n_dropped) {
    int kept = 0;
    for (int i = 0; i < n; i++) {
        dato_report_point* p = &pts[idx[i]];
        double x = cut_latency(p, by_ratio);
        const dato_report_point* by = NULL;
        for (int j = 0; j < n && !by; j++) {
            const dato_report_point* q = &pts[idx[j]];
            double xq = cut_latency(q, by_ratio);
            if (j != i && xq < bound && dominates_at(xq, q->fid, x, p->fid)) by = q;
        }
        if (x >= bound && by_ratio)
            snprintf(p->note, sizeof p->note, "slower than the baseline when re-measured: paired ratio %.3f (pairs "
                     "%.3f to %.3f)", x, p->ratio_range.lo, p->ratio_range.hi);
        else if (x >= bound)
            snprintf(p->note, sizeof p->note, "not faster than the baseline: latency %.3f ms vs %.3f ms", 1e3 * x,
                     1e3 * bound);
        else if (by && by_ratio)
            snprintf(p->note, sizeof p->note, "dominated when re-measured by %s: paired ratio %.3f vs %.3f, FID %.2f "
                     "vs %.2f", by->label, by->latency_ratio, x, by->fid, p->fid);
        else if (by)
            snprintf(p->note, sizeof p->note, "dominated by %s: latency %.3f vs %.3f ms, FID %.2f vs %.2f", by->label,
                     1e3 * by->latency_s, 1e3 * x, by->fid, p->fid);
        if (p->note[0]) dropped[(*n_dropped)++] = *p;
        else idx[kept++] = idx[i];
    }
    return kept;
}

// Scores schedules (n) on set k (TASK_FINAL or TASK_CONFIRM) on every rank, with intervals, into
// points labelled by labels; with cells (n, row bytes), the final set's grid images. With refs_first,
// scheds[0 .. N_REFS - 1] must be the references: the baseline is the set's own (prepare_set) and
// goes in point 0, and refs, set k's reference cache entry, may hold the presets' results, which
// then stand for scheds[1 .. N_REFS - 1] (else the results made here are written to the cache; NULL:
// neither). Fewer schedules than evaluators run one at a time, each in shares over all of them
// (over_pool): a lone confirmation keeps both lanes busy, not one.
static dato_status score_schedules(search_ctx* s, int kind, const dato_schedule* scheds, const char (*labels)[64],
                                   int n, int refs_first, dato_report_point* points, uint8_t* cells,
                                   const ref_entry* refs, dato_error* err) {
    int k = set_of_task(kind), f = refs_first ? 1 : 0; // scheds[f ..] are results
    image_set* set = &s->sets[k];
    size_t row = cells ? grid_bytes(&set->ev) : 0, result_bytes = sizeof(rank_result) + row;
    uint8_t* results = malloc((size_t)(n > f ? n - f : 1) * result_bytes);
    dato_eval_trace* trace = calloc((size_t)(n > f ? n - f : 1), sizeof *trace);
    if (!results || !trace) {
        free(results);
        free(trace);
        return dato_fail(err, DATO_ERR_NOMEM, "%s images: out of memory", SET_NAMES[k]);
    }
    // The cached presets' results, their times in rank 0's (trace rank 0); the rest are mapped.
    int cacheable = refs_first && refs && n >= N_REFS && result_bytes == result_bytes_of(s, k);
    int known = cacheable && refs->bytes ? N_REFS - 1 : 0, todo = n - f - known;
    if (known) memcpy(results, refs->bytes + ref_layout_of(s, k).results, (size_t)known * result_bytes);
    score sc = {0};
    dato_status st = DATO_OK;
    if (refs_first) { // the baseline: its features are the reference; scored on rank 0
        memcpy(set->features, set->base, (size_t)set->ev.n_images * s->fx.dim * sizeof(float));
        st = score_quality(s, k, set->base_s_per_image, 1, &sc, err);
        if (!st) st = score_latency(s, &scheds[0], &sc, err);
        if (!st) fill_point(&points[0], labels[0], &scheds[0], &sc, set->ev.n_images);
        if (!st && cells) memcpy(cells, set->base_cells, row);
    }
    char what[160];
    dato_eval_handlers local = {.evaluate = evaluate_task, .ctx = s};
    progress pr;
    if (!st && todo > 0 && todo < evaluators(s)) { // one at a time in shares, scored here (rank 0's time)
        for (int i = f + known; !st && i < n; i++) {
            uint8_t* r = results + (size_t)(i - f) * result_bytes;
            snprintf(what, sizeof what, "%s on the %d %s images", labels[i], set->ev.n_images, SET_NAMES[k]);
            double measured;
            st = over_pool(s, k, &scheds[i], what, set->features, cells ? r + sizeof(rank_result) : NULL, &measured, err);
            if (!st) st = score_quality(s, k, measured, 1, &sc, err);
            rank_result q = result_of(&sc);
            memcpy(r, &q, sizeof q);
        }
    } else if (!st && todo > 0) {
        snprintf(what, sizeof what, "%d schedules on the %d %s images", todo, set->ev.n_images, SET_NAMES[k]);
        progress_start(&pr, s, what);
        st = dato_eval_pool_map(s->pool, &local, kind, (const uint8_t*)(scheds + f + known), todo, sizeof *scheds,
                                results + (size_t)known * result_bytes, result_bytes, trace + known,
                                s->o->observer.progress ? progress_update : NULL, &pr, err);
    }
    for (int i = f; !st && i < f + known + todo; i++) {
        rank_result q;
        memcpy(&q, results + (size_t)(i - f) * result_bytes, sizeof q);
        st = score_of_result(s, &q, trace[i - f].rank, &scheds[i], &sc, err);
        if (!st) fill_point(&points[i], labels[i], &scheds[i], &sc, set->ev.n_images);
        if (!st && cells) memcpy(cells + (size_t)i * row, results + (size_t)(i - f) * result_bytes + sizeof q, row);
        if (!st && cacheable && !known && i < N_REFS) { // in rank 0's time, as the cache keeps it
            q.measured *= s->rank_speed[trace[i - f].rank];
            memcpy(results + (size_t)(i - f) * result_bytes, &q, sizeof q);
        }
    }
    if (!st && cacheable && !known) st = save_refs(s, k, refs->key, results, err);
    free(results);
    free(trace);
    return st;
}

// The grid file name of a label: "grids/<label>.png" with ':' and ' ' made '_'.
static void grid_name(char* out, size_t n, const char* label) {
    snprintf(out, n, "grids/%s.png", label);
    for (char* q = out; *q; q++)
        if (*q == ':' || *q == ' ') *q = '_';
}

// "FID 95.6 [92.1, 99.0]"-style: a value with its interval, or the value alone.
static void value_text(char* out, size_t n, const char* name, double v, dato_interval ci) {
    if (isfinite(ci.lo) && isfinite(ci.hi)) snprintf(out, n, "%s %.2f [%.2f, %.2f]", name, v, ci.lo, ci.hi);
    else snprintf(out, n, "%s %.2f", name, v);
}

// How sure a pick is, against the baseline and the presets on the same images: one sentence each.
static void judge_pick(dato_text* verdict, const dato_report_point* pick, const dato_report_point* rows, int n_rows) {
    const dato_report_point* base = &rows[0];
    char fid[96], bfid[96];
    value_text(fid, sizeof fid, "FID", pick->fid, pick->fid_ci);
    value_text(bfid, sizeof bfid, "", base->fid, base->fid_ci);
    const char* where = !isfinite(base->fid_ci.hi) ? "no interval to compare with"
                        : pick->fid <= base->fid_ci.hi ? "no worse than the baseline's upper 95% bound"
                        : isfinite(pick->fid_ci.lo) && pick->fid_ci.lo > base->fid_ci.hi
                            ? "worse than the baseline beyond both intervals"
                            : "above the baseline's upper 95% bound, the intervals overlapping";
    dato_text_append(verdict, "%s: %.2fx faster than the baseline (pairs %.2fx to %.2fx), %s on %d images against "
             "the baseline's%s: %s.", pick->label, pick->speedup, 1 / pick->ratio_range.hi, 1 / pick->ratio_range.lo,
             fid, pick->images, bfid, where);
    int dominated = 0;
    for (int i = 1; i < n_rows; i++) {
        if (&rows[i] == pick || !dominates(&rows[i], pick)) continue;
        dato_text_append(verdict, "%s %s (%.2fx, FID %.2f)", dominated ? "," : " Dominated by", rows[i].label,
                 rows[i].speedup, rows[i].fid);
        dominated = 1;
    }
    dato_text_append(verdict, "%s ", dominated ? "." : " No preset is both as fast and as good.");
}

// The final stages (docs/SEARCH.md): the archive's front and the presets re-scored on the final
// images with intervals; every latency re-measured as paired ratios against the baseline; members
// the re-measured data dominates (or not faster than the baseline) dropped; the picks and the presets
// confirmed on fresh images; the checkpoint's /final, the grids and the report.
static dato_status finish(search_ctx* s, dato_error* err) {
    dato_search_config* c = &s->cfg;
    int cap = c->pop / 2 > 4 ? c->pop / 2 : 4;
    if (cap > DATO_CHECKPOINT_MAX_FINAL) cap = DATO_CHECKPOINT_MAX_FINAL;
    int n_max = N_REFS + cap;
    dato_schedule* scheds = malloc((size_t)n_max * sizeof *scheds); // refs, then candidates
    char(*labels)[64] = calloc((size_t)n_max, sizeof *labels);
    dato_report_point* pts = calloc((size_t)n_max, sizeof *pts);            // as scheds
    dato_report_point* front = calloc((size_t)cap, sizeof *front);
    dato_report_point* dropped = calloc((size_t)cap, sizeof *dropped);
    dato_report_point* conf = calloc((size_t)(N_REFS + N_CONFIRMED), sizeof *conf);
    size_t* rows = malloc((size_t)cap * sizeof *rows);
    double* ratios = malloc((size_t)n_max * 3 * sizeof *ratios); // (n, 3) median, least, greatest
    int* order = malloc((size_t)cap * sizeof *order); // (n_front) the front's members, as indices into pts
    uint8_t *cells = NULL, *base_genome = malloc(s->gbytes);
    dato_text verdict = {0};
    char warn_text[4][4608]; // the noise warning names the checkpoint (4096)
    const char* warnings[4];
    int n_warn = 0, n_front = 0, n_dropped = 0, n_conf = 0, knee = -1, fastest_ok = -1;
    dato_status st = scheds && labels && pts && front && dropped && conf && rows && ratios && order && base_genome
                         ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    // The schedules: the references, then the archive's front.
    for (int r = 0; !st && r < N_REFS; r++) {
        st = dato_schedule_preset(&scheds[r], REF_SPECS[r], c->steps, c->n_branches, err);
        snprintf(labels[r], sizeof labels[r], "%s", REF_SPECS[r]);
    }
    if (!st) st = dato_genome_from_schedule(&s->space, &scheds[0], base_genome, err);
    int n_cand = st ? 0 : archive_front(s, base_genome, rows, cap);
    if (n_cand < 0) st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    for (int i = 0; !st && i < n_cand; i++) {
        st = dato_genome_to_schedule(&s->space, dato_archive_get(&s->archive, rows[i]).genome, &scheds[N_REFS + i], err);
        snprintf(labels[N_REFS + i], sizeof labels[N_REFS + i], "candidate %d", i);
    }
    int n = N_REFS + (n_cand > 0 ? n_cand : 0);
    // 1. Quality on the final images, with intervals.
    if (!st)
        say(s, DATO_SEARCH_INFO, "final stages: %d front candidates and %d presets on %d images, %d timing pairs, "
            "confirmation on %d fresh images", n_cand, N_REFS - 1, c->final_images, c->pairs, c->confirm_images);
    ref_entry fin_refs = {0}, conf_refs = {0};
    if (!st) st = prepare_set(s, SET_FINAL, c->final_images, &fin_refs, err);
    image_set* fin = &s->sets[SET_FINAL];
    size_t cell_row = st ? 0 : grid_bytes(&fin->ev);
    if (!st && !(cells = malloc((size_t)n * cell_row))) st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    if (!st) st = score_schedules(s, TASK_FINAL, scheds, (const char(*)[64])labels, n, 1, pts, cells, &fin_refs, err);
    // 2. The clock-free cut: the candidates faster than the baseline that no other such candidate
    // dominates in (latency_s, FID on the final images). latency_s is the search's latency objective
    // as the archive holds it (the cost table's prediction, or the time measured during the search):
    // what is cut here is cut alike in a resumed run, and is not timed below.
    for (int i = 0; !st && i < n_cand; i++) {
        pts[N_REFS + i].latency_s = dato_archive_get(&s->archive, rows[i]).objectives[0];
        pts[N_REFS + i].candidate = i;
    }
    size_t base_row;
    double base_latency = dato_archive_find(&s->archive, base_genome, &base_row)
                              ? dato_archive_get(&s->archive, base_row).objectives[0] : pts[0].latency_s;
    for (int i = 0; !st && i < n_cand; i++) order[i] = N_REFS + i;
    n_front = st ? 0 : cut_front(pts, order, n_cand, 0, base_latency, dropped, &n_dropped); // not timed below
    int n_cut = n_dropped; // by the clock-free cut; the rest by the re-measure
    // 3. Latency: paired ratios against the baseline, of the presets and the front's members (the
    // baseline's row: 1 by definition, its range the spread of its own times, the machine's noise).
    if (!st) st = make_set(s, SET_TIMING, c->timing_images < c->images ? c->timing_images : c->images, err);
    int* timed = malloc((size_t)n * sizeof *timed); // (n_timed) the points timed, the baseline first
    dato_schedule* timed_scheds = malloc((size_t)n * sizeof *timed_scheds);
    int n_timed = 0;
    if (!st && (!timed || !timed_scheds)) st = dato_fail(err, DATO_ERR_NOMEM, "timing pairs: out of memory");
    for (int i = 0; !st && i < N_REFS + n_front; i++) timed[n_timed++] = i < N_REFS ? i : order[i - N_REFS];
    for (int i = 1; !st && i < n_timed; i++) timed_scheds[i - 1] = scheds[timed[i]];
    if (!st) st = measure_ratios(s, timed_scheds, n_timed - 1, ratios + 3, ratios, err);
    for (int i = 0; !st && i < n_timed; i++) set_ratio(&pts[timed[i]], ratios + 3 * i, c->pairs, fin->base_s_per_image);
    free(timed);
    free(timed_scheds);
    // 4. The re-measured cut: what the report calls a front must hold up when the clock is read. A
    // member the pairs show no faster than the baseline, or dominated in (latency_ratio, FID) by a
    // member that is faster, leaves the front too (its ratio reported); the rest are ranked by the
    // ratio, ties by FID, then by candidate. Membership now rests on the clock: a resumed run can
    // keep other members than the uninterrupted one, never other scores for the same candidate.
    n_front = st ? 0 : cut_front(pts, order, n_front, 1, 1.0, dropped, &n_dropped);
    for (int i = 1; i < n_front; i++) { // insertion sort by (ratio, FID, candidate): a front is short
        int x = order[i], j = i;
        const dato_report_point* p = &pts[x];
        for (; j > 0; j--) {
            const dato_report_point* q = &pts[order[j - 1]];
            if (q->latency_ratio < p->latency_ratio || (q->latency_ratio == p->latency_ratio && q->fid <= p->fid)) break;
            order[j] = order[j - 1];
        }
        order[j] = x;
    }
    for (int i = 0; !st && i < n_front; i++) {
        front[i] = pts[order[i]];
        snprintf(front[i].label, sizeof front[i].label, "front %d", i);
        grid_name(front[i].grid_png, sizeof front[i].grid_png, front[i].label);
        st = write_grid(s, &fin->ev, cells + (size_t)order[i] * cell_row, front[i].grid_png, err);
    }
    for (int r = 0; !st && r < N_REFS; r++) {
        grid_name(pts[r].grid_png, sizeof pts[r].grid_png, pts[r].label);
        st = write_grid(s, &fin->ev, cells + (size_t)r * cell_row, pts[r].grid_png, err);
    }
    // 5. The knee, on the paired ratio.
    double *lat = malloc((size_t)(n_front ? n_front : 1) * sizeof *lat),
           *fid = malloc((size_t)(n_front ? n_front : 1) * sizeof *fid);
    if (!st && (!lat || !fid)) st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    for (int i = 0; !st && i < n_front; i++) {
        lat[i] = front[i].latency_ratio;
        fid[i] = front[i].fid;
    }
    if (!st) st = dato_report_knee(lat, fid, n_front, &knee, err);
    double hv = NAN;
    if (!st && n_front) { // of the front in (time ratio, FID / baseline FID), reference (1, 2)
        double* hp = malloc((size_t)n_front * 2 * sizeof *hp), ref_pt[2] = {1, 2};
        for (int i = 0; hp && i < n_front; i++) {
            hp[2 * i] = fmin(front[i].latency_ratio, 1);
            hp[2 * i + 1] = fmin(pts[0].fid > 0 ? fid[i] / pts[0].fid : fid[i], 2);
        }
        dato_error e;
        if (!hp || dato_hypervolume(hp, n_front, 2, ref_pt, &hv, &e)) hv = NAN;
        free(hp);
    }
    // 6. Confirmation on fresh images: the baseline, the presets and the knee; then the fastest
    // member within the baseline's upper 95% FID bound ("fastest ok"). Its FID limit on the final
    // images is the baseline's FID there plus the room its confirmation interval leaves above it
    // (FID's finite-sample bias, about alike for the schedules of one model, cancels in a
    // difference); the fastest member under that limit is confirmed, and while it lands over the
    // bound the next slower member (lower FID: the front is sorted) is, up to MAX_TRIES. Without a
    // confirmation the limit is the baseline's upper bound on the final images, and nothing is tried.
    double fid_limit = pts[0].fid_ci.hi, bound = NAN;
    int try_front[MAX_TRIES], try_row[MAX_TRIES], n_tried = 0, start = -1;
    if (!st && c->confirm_images > 0) {
        dato_schedule* cs = malloc((size_t)(N_REFS + N_CONFIRMED) * sizeof *cs);
        char(*cl)[64] = calloc(N_REFS + N_CONFIRMED, sizeof *cl);
        const dato_report_point* src[N_REFS + N_CONFIRMED]; // where each row's paired latency comes from
        int m = 0;
        if (!cs || !cl) st = dato_fail(err, DATO_ERR_NOMEM, "confirmation: out of memory");
        for (int r = 0; !st && r < N_REFS; r++, m++) {
            cs[m] = scheds[r];
            memcpy(cl[m], labels[r], sizeof cl[m]);
            src[m] = &pts[r];
        }
        if (!st && knee >= 0) {
            cs[m] = front[knee].schedule;
            snprintf(cl[m], sizeof cl[m], "knee (front %d)", knee);
            src[m++] = &front[knee];
        }
        if (!st) st = prepare_set(s, SET_CONFIRM, c->confirm_images, &conf_refs, err);
        if (!st) st = score_schedules(s, TASK_CONFIRM, cs, (const char(*)[64])cl, m, 1, conf, NULL, &conf_refs, err);
        if (!st) {
            bound = conf[0].fid_ci.hi;
            fid_limit = pts[0].fid + (bound - conf[0].fid);
            start = isfinite(fid_limit) ? dato_report_fastest_within(lat, fid, n_front, fid_limit) : -1;
        }
        for (int i = start; !st && i >= 0 && i < n_front && n_tried < MAX_TRIES && fastest_ok < 0; i++, n_tried++) {
            int row = i == knee ? N_REFS : m;
            if (i != knee) {
                cs[m] = front[i].schedule;
                snprintf(cl[m], sizeof cl[m], "front %d", i);
                src[m++] = &front[i];
                st = score_schedules(s, TASK_CONFIRM, cs + row, (const char(*)[64])cl + row, 1, 0, conf + row, NULL,
                                     NULL, err);
            }
            try_front[n_tried] = i;
            try_row[n_tried] = row;
            if (!st && conf[row].fid <= bound) fastest_ok = i;
            if (!st && i != knee)
                snprintf(conf[row].label, sizeof conf[row].label, "%s (front %d)",
                         fastest_ok == i ? "fastest ok" : "over the bound", i);
        }
        for (int i = 0; !st && i < m; i++) {
            conf[i].latency_ratio = src[i]->latency_ratio;
            conf[i].ratio_range = src[i]->ratio_range;
            conf[i].pairs = src[i]->pairs;
            conf[i].speedup = src[i]->speedup;
            conf[i].latency_s = src[i]->latency_s;
            conf[i].measured_latency_s = src[i]->measured_latency_s;
            conf[i].candidate = src[i]->candidate;
            snprintf(conf[i].grid_png, sizeof conf[i].grid_png, "%s", src[i]->grid_png);
        }
        n_conf = st ? 0 : m;
        free(cs);
        free(cl);
    } else if (!st) {
        start = fastest_ok = isfinite(fid_limit) ? dato_report_fastest_within(lat, fid, n_front, fid_limit) : -1;
    }
    // 7. The verdict and the warnings: each pick judged against the baseline and the presets.
    if (!st) st = dato_text_init(&verdict, 4096, "the verdict", err);
    const dato_report_point* judged = n_conf ? conf : pts; // the baseline first, then the presets
    int picks[2] = {knee, fastest_ok != knee ? fastest_ok : -1};
    for (int q = 0; !st && q < 2; q++) {
        if (picks[q] < 0) continue;
        int row = N_REFS; // the knee's confirmation row; fastest ok's is its try's
        for (int t = 0; q && t < n_tried; t++)
            if (try_front[t] == picks[q]) row = try_row[t];
        dato_report_point p = n_conf ? conf[row] : front[picks[q]];
        snprintf(p.label, sizeof p.label, "%s (front %d)", q ? "fastest ok" : "knee", picks[q]);
        judge_pick(&verdict, &p, judged, N_REFS);
    }
    if (!st && fastest_ok >= 0)
        dato_text_append(&verdict, "Fastest ok%s is the fastest member within the baseline's upper 95%% bound on "
                 "the %s images (FID %.2f%s); dato-export %s --index %d --out fastest_ok.json writes it. ",
                 fastest_ok == knee ? ", the knee too," : "", n_conf ? "confirmation" : "final",
                 n_conf ? bound : fid_limit,
                 n_conf ? "; tried from the fastest member under it on the final images, then slower ones" : "",
                 s->ckpt_path, fastest_ok);
    for (int t = 0; !st && t < n_tried; t++)
        if (try_front[t] != fastest_ok)
            dato_text_append(&verdict, "Front %d (%.2fx, FID %.2f on %d images) was tried for fastest ok and landed "
                     "over the bound. ", try_front[t], conf[try_row[t]].speedup, conf[try_row[t]].fid,
                     conf[try_row[t]].images);
    if (!st && fastest_ok < 0 && n_tried && start + n_tried < n_front)
        dato_text_append(&verdict, "No member tried stayed within the baseline's bound; front %d, the next slower, was "
                 "not tried (dato-export %s --index %d, then score it with dato-generate and dato-fid). ",
                 start + n_tried, s->ckpt_path, start + n_tried);
    if (!st && knee < 0)
        dato_text_append(&verdict, "No knee: the front has %d member%s%s; pick by a bound instead (dato-export %s --list, "
                 "then --pick fastest --max-fid X). ", n_front, n_front == 1 ? "" : "s",
                 n_front >= 3 ? " on a straight or concave line" : "", s->ckpt_path);
    if (!st && start < 0 && n_front && isfinite(fid_limit))
        dato_text_append(&verdict, "No member's FID on the final images is under %.2f, fastest ok's limit there; "
                 "re-run with more --images for a front nearer the baseline. ", fid_limit);
    int dims = s->fx.dim, counts[2] = {c->final_images, n_conf ? c->confirm_images : 0};
    for (int k = 0; k < 2; k++)
        if (counts[k] && counts[k] <= dims)
            snprintf(warn_text[n_warn], sizeof warn_text[0], "FID on the %s images rests on %d images, no more than the "
                     "%d feature dimensions: its covariance is singular and FID biased upward; compare FIDs only "
                     "within one table, and confirm on more than %d images", k ? "confirmation" : "final", counts[k],
                     dims, dims), warnings[n_warn] = warn_text[n_warn], n_warn++;
    if (!st && pts[0].ratio_range.hi / pts[0].ratio_range.lo > 1.2)
        snprintf(warn_text[n_warn], sizeof warn_text[0], "the machine was noisy: the baseline's own times ranged "
                 "%.3f to %.3f of their median; the paired ratios cancel slow drift, not sudden load, which also "
                 "cuts members from the front. On a quieter machine, dato-search --resume %s --pairs 9 runs the "
                 "final stages again, the search itself kept", pts[0].ratio_range.lo, pts[0].ratio_range.hi,
                 s->ckpt_path), warnings[n_warn] = warn_text[n_warn], n_warn++;
    if (!st && n_dropped)
        snprintf(warn_text[n_warn], sizeof warn_text[0], "%d of %d front candidates were dropped (listed below; they "
                 "stay in the archive): %d dominated on the final images or not faster by the search's latency, %d "
                 "slower than the baseline or dominated when re-measured", n_dropped, n_cand, n_cut, n_dropped - n_cut),
            warnings[n_warn] = warn_text[n_warn], n_warn++;
    if (!st && verdict.failed) st = dato_fail(err, DATO_ERR_NOMEM, "the verdict: out of memory");
    // 8. The checkpoint's /final: dato-export picks from it.
    s->n_final = 0;
    if (!st && n_front && !(s->final_genomes = malloc((size_t)n_front * s->gbytes)))
        st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    if (!st && n_front && !(s->final_scores = malloc((size_t)n_front * DATO_SEARCH_N_FINAL * sizeof(double))))
        st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    for (int i = -1; !st && i < n_front; i++) {
        const dato_report_point* p = i < 0 ? &pts[0] : &front[i];
        double v[DATO_SEARCH_N_FINAL] = {
            [DATO_FINAL_LATENCY] = p->measured_latency_s, [DATO_FINAL_FID] = p->fid, [DATO_FINAL_KID] = p->kid,
            [DATO_FINAL_TEACHER] = p->teacher, [DATO_FINAL_FID_LO] = p->fid_ci.lo, [DATO_FINAL_FID_HI] = p->fid_ci.hi,
            [DATO_FINAL_TEACHER_LO] = p->teacher_ci.lo, [DATO_FINAL_TEACHER_HI] = p->teacher_ci.hi,
            [DATO_FINAL_CLIP] = p->clip, [DATO_FINAL_CLIP_LO] = p->clip_ci.lo, [DATO_FINAL_CLIP_HI] = p->clip_ci.hi,
            [DATO_FINAL_RATIO] = p->latency_ratio, [DATO_FINAL_RATIO_LO] = p->ratio_range.lo,
            [DATO_FINAL_RATIO_HI] = p->ratio_range.hi};
        if (i < 0) {
            memcpy(s->final_baseline, v, sizeof v);
            continue;
        }
        st = dato_genome_from_schedule(&s->space, &p->schedule, s->final_genomes + (size_t)i * s->gbytes, err);
        memcpy(s->final_scores + (size_t)i * DATO_SEARCH_N_FINAL, v, sizeof v);
    }
    if (!st) s->n_final = n_front;
    // 9. The report, and the same for the caller's observer.
    if (!st) {
        char export_cmd[4300];
        snprintf(export_cmd, sizeof export_cmd, "dato-export %s --pick knee --out knee.json", s->ckpt_path);
        dato_report rep = {.cfg = c, .run_dir = s->o->run_dir, .command = s->o->command,
                           .generation = (int)s->ga->generation, .n_evaluations = (int)dato_archive_count(&s->archive),
                           .threads = threads_used(s), .elapsed_s = s->elapsed_before + dato_clock_s() - s->t_start,
                           .front = front, .n_front = n_front, .refs = pts, .n_refs = N_REFS, .dropped = dropped,
                           .n_dropped = n_dropped, .confirm = conf, .n_confirm = n_conf,
                           .confirm_images = n_conf ? c->confirm_images : 0, .verdict = verdict.data,
                           .warnings = warnings, .n_warnings = n_warn, .knee_index = knee,
                           .fastest_ok_index = fastest_ok, .fid_limit = fid_limit, .hypervolume = hv, .export_example = export_cmd};
        for (size_t i = 0; i < dato_archive_count(&s->archive); i++)
            rep.n_screened += dato_archive_get(&s->archive, i).extras[DATO_EXTRA_IMAGES] < c->images;
        st = dato_report_write(&rep, err);
        const dato_search_observer* ob = &s->o->observer;
        if (!st && ob->summary) ob->summary(ob->ctx, &rep);
    }
    free(lat);
    free(fid);
    free(scheds);
    free(labels);
    free(pts);
    free(front);
    free(dropped);
    free(conf);
    free(rows);
    free(ratios);
    free(order);
    free(cells);
    free(base_genome);
    free(fin_refs.bytes);
    free(conf_refs.bytes);
    dato_text_free(&verdict);
    return st;
}

// ---- the ranks (search/eval_pool.h) ---------------------------------------------------------------------------

// REQUEST_SETUP: rank 0's resolved config; the worker opens the model on it and times the baseline.
typedef struct {
    request_header h;
    dato_search_config cfg;
} setup_request;

typedef struct {
    double baseline_s;          // its baseline's fastest call, s per image
    uint64_t features_hash;     // of its baseline features: rank 0's, bit for bit, on like hosts
    int32_t threads, n_features;
    char backend[64];           // its backend's name (the CUDA device)
} setup_reply;


// What every evaluating rank holds besides the model and the image sets: the genome space.
static dato_status alloc_evaluation(search_ctx* s, dato_error* err) {
    DATO_TRY(dato_genome_space_init(&s->space, s->cfg.steps, s->cfg.n_branches, err));
    s->gbytes = dato_genome_bytes(&s->space);
    return DATO_OK;
}

// A worker's files must be rank 0's: a different model or prompt set would score another search.
static dato_status same_files(const dato_search_config* rank0, const dato_search_config* mine, dato_error* err) {
    const struct {
        const char *what, *path, *theirs, *ours;
    } f[] = {{"--model", mine->model, rank0->model_hash, mine->model_hash},
             {"the prompts", mine->prompts_file, rank0->prompts_hash, mine->prompts_hash},
             {"--ref", mine->ref, rank0->ref_hash, mine->ref_hash}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (strcmp(f[i].theirs, f[i].ours))
            return dato_fail(err, DATO_ERR_INVALID, "%s %s differs here from rank 0's (%s vs %s): every rank must "
                             "read the same files", f[i].what, f[i].path, f[i].ours, f[i].theirs);
    return DATO_OK;
}

// A worker's answer to rank 0's setup requests (the pool's request handler).
static dato_status worker_request(void* ctx, const void* msg, size_t bytes, void* reply, size_t reply_bytes,
                                  dato_error* err) {
    search_ctx* s = ctx;
    request_header h = {0};
    if (bytes >= sizeof h) memcpy(&h, msg, sizeof h);
    if (h.kind == REQUEST_SETUP && bytes == sizeof(setup_request) && reply_bytes == sizeof(setup_reply) &&
        !s->have_pipe) {
        setup_request rq;
        memcpy(&rq, msg, sizeof rq);
        s->cfg = rq.cfg;
        DATO_TRY(open_model(s, err));
        DATO_TRY(same_files(&rq.cfg, &s->cfg, err));
        DATO_TRY(make_set(s, SET_SEARCH, s->cfg.images, err));
        DATO_TRY(alloc_evaluation(s, err));
        image_set* set = &s->sets[SET_SEARCH];
        dato_eval_timing t;
        size_t n = (size_t)set->ev.n_images * s->fx.dim;
        DATO_TRY(dato_evaluator_run(&set->ev, NULL, set->base, NULL, &t, err));
        setup_reply r = {t.best_s_per_image, features_hash(set->base, n), threads_used(s), (int32_t)n, ""};
        snprintf(r.backend, sizeof r.backend, "%s", s->be.name ? s->be.name : "?");
        memcpy(reply, &r, sizeof r);
        return DATO_OK;
    }
    if (h.kind == REQUEST_SET && s->have_pipe && h.set >= 0 && h.set < SET_TIMING && h.images > 0) {
        image_set* set = &s->sets[h.set];
        if (!set->made) DATO_TRY(make_set(s, h.set, h.images, err));
        if (bytes == sizeof h) return DATO_OK; // made, its baseline to be shared out
        size_t nf = (size_t)set->ev.n_images * s->fx.dim;
        if (bytes != sizeof h + nf * sizeof(float))
            return dato_fail(err, DATO_ERR_PEER, "%s images: %zu bytes for %zu features", SET_NAMES[h.set], bytes, nf);
        memcpy(set->base, (const uint8_t*)msg + sizeof h, nf * sizeof(float));
        return take_baseline(s, h.set, err);
    }
    return dato_fail(err, DATO_ERR_PEER, "a setup request out of place (kind %d, %zu bytes): do all ranks run the "
                     "same dato-search?", h.kind, bytes);
}

// Lanes (search/eval_pool.h): --workers N, or by default, in one process on the CPU with the latency
// table, one a thread where a full UNet call of the search's batch is under LANE_MAX_MACS (too little
// work to share among threads: docs/DISTRIBUTED.md has the measurements) and the copies of the model
// fit in a quarter of the free memory. Lanes change no bit of the answer, only its wall time.
#define LANE_MAX_MACS 4e9
static dato_status choose_lanes(search_ctx* s, int* lanes, dato_error* err) {
    const dato_search_config* c = &s->cfg;
    int threads = threads_used(s), asked = s->o->workers;
    *lanes = 0;
    if (s->pool->size > 1 || asked == 1) return DATO_OK;
    if (asked > 1) {
        *lanes = asked;
        return DATO_OK;
    }
    if (c->backend != DATO_SEARCH_BACKEND_CPU || c->latency_mode != DATO_LATENCY_TABLE || threads < 2) return DATO_OK;
    int f = dato_pipeline_vae_factor(&s->pipe), rows = (c->guidance > 1 ? 2 : 1) * c->batch;
    int seq = dato_tokenizer_max_len(s->pipe.tokenizer[0]);
    dato_macs m;
    DATO_TRY(dato_unet_step_macs(&s->pipe.unet, rows, c->height / f, c->width / f, seq, c->n_branches + 1, 0, -1, 2, &m,
                                 err));
    size_t ws = 0, cache = 0, avail = s->be.ops->mem_available ? s->be.ops->mem_available(&s->be) : 0;
    DATO_TRY(dato_unet_ws_bytes(&s->pipe.unet, rows, c->height / f, c->width / f, seq, &ws, &cache, err));
    size_t copy = s->pipe.unet.n_weights * sizeof(float) + ws + cache;
    if (m.total < LANE_MAX_MACS && avail && (size_t)threads * copy <= avail / 4) *lanes = threads;
    return DATO_OK;
}

// Rank 0: opens the lanes choose_lanes asks for, each a context of its own set up as a worker rank is.
static dato_status open_lanes(search_ctx* s, dato_error* err) {
    int n;
    DATO_TRY(choose_lanes(s, &n, err));
    if (n < 2) return DATO_OK;
    s->lanes = calloc((size_t)n, sizeof *s->lanes);
    s->lane_handlers = calloc((size_t)n, sizeof *s->lane_handlers);
    if (!s->lanes || !s->lane_handlers) return dato_fail(err, DATO_ERR_NOMEM, "out of memory for %d lanes", n);
    for (; s->n_lanes < n; s->n_lanes++) {
        search_ctx* l = calloc(1, sizeof *l);
        if (!l) return dato_fail(err, DATO_ERR_NOMEM, "out of memory for %d lanes", n);
        *l = (search_ctx){.o = s->o, .pool = s->pool, .lane = s->n_lanes + 1};
        s->lanes[s->n_lanes] = l;
        s->lane_handlers[s->n_lanes] = (dato_eval_handlers){.request = worker_request, .evaluate = evaluate_task, .ctx = l};
    }
    int threads = threads_used(s);
    s->lane_threads = threads / n > 1 ? threads / n : 1;
    return dato_eval_pool_set_lanes(s->pool, s->lane_handlers, n, err);
}

// Rank 0: every worker opens the model on this run's config and times the baseline (its speed
// relative to rank 0's, base_s per image, scales its measured latencies), then takes rank 0's
// baseline features on the search images as its reference (KID, the teacher distance, and FID with
// --ref baseline).
static dato_status setup_workers(search_ctx* s, double base_s, dato_error* err) {
    dato_eval_pool* p = s->pool;
    int workers = dato_eval_pool_workers(p);
    s->rank_speed = malloc((size_t)(1 + workers) * sizeof *s->rank_speed);
    if (!s->rank_speed) return dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    for (int r = 0; r <= workers; r++) s->rank_speed[r] = 1;
    if (!workers) return DATO_OK;
    image_set* set = &s->sets[SET_SEARCH];
    size_t nfeat = (size_t)set->ev.n_images * s->fx.dim;
    setup_request rq = {.h = {REQUEST_SETUP, 0, 0, 0}, .cfg = s->cfg};
    if (p->lanes) rq.cfg.threads = s->lane_threads;
    setup_reply* replies = malloc((size_t)workers * sizeof *replies);
    uint8_t* msg = malloc(sizeof(request_header) + nfeat * sizeof(float));
    dato_status st = replies && msg ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    if (!st) say(s, DATO_SEARCH_INFO, "setting up %d %s", workers, p->lanes ? "lanes" : "worker ranks");
    if (!st) st = dato_eval_pool_request(p, &rq, sizeof rq, replies, sizeof *replies, err);
    uint64_t ours = features_hash(set->base, nfeat);
    if (!st && p->lanes)
        say(s, DATO_SEARCH_INFO, "%d lanes evaluate, %d thread%s each, a copy of the model each (--workers); %s: %s, "
            "threads %d, baseline %.2f ms/img", workers, s->lane_threads, s->lane_threads == 1 ? "" : "s", p->where[0],
            s->be.name ? s->be.name : "?", threads_used(s), 1e3 * base_s);
    else if (!st)
        say(s, DATO_SEARCH_INFO, "%d ranks evaluate; %s: %s, threads %d, baseline %.2f ms/img", p->size, p->where[0],
            s->be.name ? s->be.name : "?", threads_used(s), 1e3 * base_s);
    for (int r = 1; !st && r <= workers; r++) {
        const setup_reply* y = &replies[r - 1];
        if ((size_t)y->n_features != nfeat)
            st = dato_fail(err, DATO_ERR_PEER, "%s made %d baseline features, rank 0 %zu", p->where[r], y->n_features, nfeat);
        else if (y->baseline_s > 0)
            s->rank_speed[r] = base_s / y->baseline_s;
        if (!st)
            say(s, DATO_SEARCH_INFO, "%s: %.63s, threads %d, baseline %.2f ms/img (%.2fx rank 0's time)", p->where[r],
                y->backend, y->threads, 1e3 * y->baseline_s, 1 / s->rank_speed[r]);
        if (!st && y->features_hash != ours && p->lanes)
            st = dato_fail(err, DATO_ERR_PEER, "%s made other baseline images than rank 0 at %d threads: the engine's "
                           "bits depend on the thread count, which they must not (please report it); run with "
                           "--workers 1", p->where[r], threads_used(s));
        else if (!st && y->features_hash != ours)
            say(s, DATO_SEARCH_WARNING, "%s made other baseline images than rank 0 (another CPU or library build?): it "
                "scores against rank 0's baseline, but the front can differ from a one-process run", p->where[r]);
    }
    if (!st) {
        request_header h = {REQUEST_SET, SET_SEARCH, s->cfg.images, 0};
        memcpy(msg, &h, sizeof h);
        memcpy(msg + sizeof h, set->base, nfeat * sizeof(float));
        st = dato_eval_pool_request(p, msg, sizeof h + nfeat * sizeof(float), NULL, 0, err);
    }
    free(replies);
    free(msg);
    return st;
}

// Appends this generation's evaluations to run_dir/evaluations.csv and its totals to generations.csv
// (docs/DISTRIBUTED.md): what the scaling projection (bench/mpi_scaling_sim.py) replays.
static dato_status write_trace(search_ctx* s, int gen, double gen_s, dato_error* err) {
    static const char* const names[2] = {"evaluations.csv", "generations.csv"};
    static const char* const headers[2] = {"generation,candidate,rank,eval_s,round_trip_s,images\n",
                                           "generation,ranks,candidates,evaluated,cache_hits,eval_wall_s,master_s,"
                                           "generation_s\n"};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        DATO_TRY(dato_path_join(path, sizeof path, s->o->run_dir, names[k], err));
        FILE* f = fopen(path, "a");
        if (!f) return dato_fail(err, DATO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        int ok = 1;
        if (ftell(f) == 0) ok = fputs(headers[k], f) >= 0;
        if (k == 0) {
            ok = ok && fputs(s->trace_rows.data, f) >= 0;
            s->trace_rows.len = 0;
            s->trace_rows.data[0] = 0;
        } else {
            ok = fprintf(f, "%d,%d,%d,%d,%d,%.6f,%.6f,%.6f\n", gen, s->pool->size, s->cfg.pop, s->evals, s->hits,
                         s->eval_wall_s, gen_s - s->eval_wall_s, gen_s) > 0;
        }
        ok = !fclose(f) && ok;
        if (!ok) return dato_fail(err, DATO_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return DATO_OK;
}

// ---- the run --------------------------------------------------------------------------------------------------

// The run folder (with any parents missing) and its grids/ and schedules/, noting what this run made.
static dato_status make_dirs(search_ctx* s, dato_error* err) {
    char p[4096];
    snprintf(p, sizeof p, "%s", s->o->run_dir);
    while (p[0] && !dato_is_dir(p)) { // climb to the first folder that exists: below it, all is this run's
        snprintf(s->made_top, sizeof s->made_top, "%s", p);
        char* slash = strrchr(p, '/');
        if (!slash) break;
        *slash = 0;
    }
    for (int i = 0; i < 2; i++) {
        DATO_TRY(dato_path_join(p, sizeof p, s->o->run_dir, i ? "schedules/" : "grids/", err));
        s->made_sub[i] = !dato_is_dir(p);
        DATO_TRY(dato_mkdir_parents(p, err));
    }
    return DATO_OK;
}

// A run that fails before its first checkpoint removes the folders it made, where they are empty.
static void remove_made_dirs(search_ctx* s) {
    char p[4096];
    for (int i = 0; i < 2; i++)
        if (s->made_sub[i] && snprintf(p, sizeof p, "%s/%s", s->o->run_dir, i ? "schedules" : "grids") < (int)sizeof p)
            rmdir(p);
    snprintf(p, sizeof p, "%s", s->o->run_dir);
    for (size_t top = strlen(s->made_top); top && strlen(p) >= top;) { // the run folder up to made_top
        rmdir(p);
        char* slash = strrchr(p, '/');
        if (!slash) break;
        *slash = 0;
    }
}

static void ctx_free(search_ctx* s) {
    if (s->n_lanes) {
        dato_error e;
        dato_eval_pool_set_lanes(s->pool, NULL, 0, &e); // the pool outlives the lanes' handlers
        for (int l = 0; l < s->n_lanes; l++) {
            ctx_free(s->lanes[l]);
            free(s->lanes[l]);
        }
    }
    free(s->lanes);
    free(s->lane_handlers);
    for (int k = 0; k < N_SETS; k++) free_set(&s->sets[k]);
    dato_nsga2_free(s->ga);
    dato_archive_free(&s->archive);
    dato_fid_stats_free(&s->ref);
    free(s->final_genomes);
    free(s->final_scores);
    free(s->rank_speed);
    free(s->task_of);
    free(s->tasks);
    free(s->results);
    free(s->trace);
    dato_text_free(&s->trace_rows);
    dato_checkpoint_free(&s->ck);
    free(s->prompt_text);
    free(s->prompts);
    if (s->fx.destroy) s->fx.destroy(&s->fx);
    if (s->have_clip) dato_clip_free(&s->clip);
    if (s->have_pipe) dato_pipeline_close(&s->pipe);
    if (s->have_be) dato_backend_destroy(&s->be);
}

static dato_status run_search(search_ctx* s, dato_error* err) {
    const dato_search_options* o = s->o;
    int resuming = o->resume != NULL;
    if (resuming) {
        DATO_TRY(dato_checkpoint_read(o->resume, &s->ck, err));
        s->cfg = s->ck.cfg;
        if (o->gens_override > 0) s->cfg.gens = o->gens_override;
        if (o->final_images_override > 0) s->cfg.final_images = o->final_images_override;
        if (o->threads_override > 0) s->cfg.threads = o->threads_override;
        if (o->confirm_images_override >= 0) s->cfg.confirm_images = o->confirm_images_override;
        if (o->pairs_override > 0) s->cfg.pairs = o->pairs_override;
        if (o->timing_images_override > 0) s->cfg.timing_images = o->timing_images_override;
        if (o->bootstrap_override > 0) s->cfg.bootstrap = o->bootstrap_override;
        DATO_TRY(final_defaults(&s->cfg, err)); // a checkpoint of format 2 has none of them
        DATO_TRY(check_config(&s->cfg, err));
        if (s->cfg.height) snprintf(s->size_from, sizeof s->size_from, "%s's height/width", o->resume);
        s->elapsed_before = s->ck.elapsed_s;
    } else {
        s->cfg = o->cfg;
        DATO_TRY(resolve_config(s, err));
    }
    DATO_TRY(dato_path_join(s->ckpt_path, sizeof s->ckpt_path, o->run_dir, "checkpoint.h5", err));
    DATO_TRY(dato_path_join(s->table_path, sizeof s->table_path, o->run_dir, "latency_table.json", err));
    if (!resuming && dato_is_file(s->ckpt_path))
        return dato_fail(err, DATO_ERR_INVALID, "%s exists: continue it with --resume %s, or choose another --out",
                         s->ckpt_path, s->ckpt_path);
    if (dato_is_dir(o->run_dir)) DATO_TRY(dato_checkpoint_remove_stale_temps(s->ckpt_path, err));
    // The identities are recomputed from the files as they are now; a resume refuses a change.
    dato_search_config saved = s->cfg;
    if (resuming) saved.threads = s->ck.cfg.threads; // the resume check judges a thread change
    DATO_TRY(open_model(s, err));
    if (!saved.height) saved.height = s->cfg.height, saved.width = s->cfg.width; // a checkpoint from before sizes
    if (!resuming && !s->cfg.batch) DATO_TRY(choose_batch(s, err));
    DATO_TRY(make_set(s, SET_SEARCH, s->cfg.images, err));
    DATO_TRY(make_dirs(s, err)); // only now: a run that cannot open its model makes none
    DATO_TRY(setup_latency_table(s, resuming, err));
    if (resuming) DATO_TRY(dato_search_config_check_resume(&saved, &s->cfg, err));

    DATO_TRY(alloc_evaluation(s, err));
    dato_nsga2_ops ops = dato_genome_ops(&s->space);
    dato_nsga2_config gc = {.pop_size = s->cfg.pop, .n_obj = DATO_SEARCH_N_OBJ, .genome_bytes = (int)s->gbytes,
                            .seed = s->cfg.seed};
    DATO_TRY(dato_nsga2_create(&s->ga, &gc, &ops, err));
    DATO_TRY(dato_archive_init(&s->archive, s->gbytes, DATO_SEARCH_N_OBJ, DATO_SEARCH_N_EXTRA, err));
    size_t P = (size_t)s->cfg.pop;
    s->task_of = malloc(P * sizeof *s->task_of);
    s->tasks = malloc(P * s->gbytes);
    s->results = malloc(P * sizeof *s->results);
    s->trace = malloc(P * sizeof *s->trace);
    if (!s->task_of || !s->tasks || !s->results || !s->trace) return dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    DATO_TRY(dato_text_init(&s->trace_rows, 4096, "evaluations.csv rows", err));
    // The baseline's images: the teacher distance's and KID's reference, and FID's with --ref baseline;
    // its time, the ranks' yardstick and the ETA's.
    image_set* search = &s->sets[SET_SEARCH];
    dato_eval_timing base_t;
    DATO_TRY(dato_evaluator_run(&search->ev, NULL, search->base, NULL, &base_t, err));
    search->base_s_per_image = base_t.best_s_per_image;
    DATO_TRY(take_baseline(s, SET_SEARCH, err));
    DATO_TRY(open_lanes(s, err));
    DATO_TRY(setup_workers(s, base_t.best_s_per_image, err));
    if (s->cfg.screen_images > 0) DATO_TRY(prepare_set(s, SET_SCREEN, s->cfg.screen_images, NULL, err));
    char spread[160], screen[160] = "";
    if (s->cfg.screen_images > 0)
        snprintf(screen, sizeof screen, ", new candidates screened on %d of them (the best %.0f%% go on)",
                 s->cfg.screen_images, 100.0 * s->cfg.promote);
    say(s, DATO_SEARCH_INFO, "%s on %s, %dx%d images (h x w), %s%s, %s %d steps, guidance %g, pop %d, %d "
        "generations, objective %s on %s features, FID vs %s, latency %s", s->cfg.model,
                s->be.name ? s->be.name : "?", search->ev.H, search->ev.W,
                spread_text(&search->ev, spread, sizeof spread), screen,
                s->cfg.sampler, s->cfg.steps, (double)s->cfg.guidance, s->cfg.pop, s->cfg.gens,
                dato_quality_objective_name(s->cfg.objective), s->fx.name,
                s->cfg.ref_mode == DATO_REF_BASELINE ? "the baseline's images" : s->cfg.ref,
                s->cfg.latency_mode == DATO_LATENCY_TABLE ? "from the calibrated table" : "measured");

    uint8_t* children = malloc(P * s->gbytes);
    double* objectives = malloc(P * DATO_SEARCH_N_OBJ * sizeof *objectives);
    double* violations = malloc(P * sizeof *violations);
    dato_status st = children && objectives && violations ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    s->t_start = dato_clock_s();
    if (!st && resuming) {
        st = dato_archive_import(&s->archive, (size_t)s->ck.n_evaluations, s->ck.arch_genomes, s->ck.arch_objectives,
                                 s->ck.arch_extras, s->ck.arch_generations, err);
        if (!st) st = dato_nsga2_set_state(s->ga, s->ck.pop_genomes, s->ck.pop_objectives, s->ck.pop_violations, s->ck.rng_state,
                                           s->ck.generation, err);
        if (!st)
            say(s, DATO_SEARCH_INFO, "resumed %s at generation %lld (%lld evaluations)", o->resume,
                (long long)s->ck.generation, (long long)s->ck.n_evaluations);
    } else if (!st) {
        dato_rng rng;
        dato_rng_seed_stream(&rng, s->cfg.seed, 1); // the initial population's own stream
        double t0 = dato_clock_s();
        st = dato_genome_initial_population(&s->space, s->cfg.pop, &rng, children, err);
        if (!st) st = evaluate_all(s, children, s->cfg.pop, 0, objectives, violations, err);
        if (!st) st = dato_nsga2_set_population(s->ga, children, objectives, violations, err);
        if (!st) st = save_checkpoint(s, err);
        if (!st) st = write_trace(s, 0, dato_clock_s() - t0, err);
        if (!st) report_generation(s, 0, dato_clock_s() - t0);
    }
    dato_checkpoint_free(&s->ck); // taken: its arrays are the largest part of a resume
    while (!st && s->ga->generation < s->cfg.gens) {
        double t0 = dato_clock_s();
        int gen = (int)s->ga->generation + 1;
        st = dato_nsga2_make_offspring(s->ga, children, err);
        if (!st) st = evaluate_all(s, children, s->cfg.pop, gen, objectives, violations, err);
        if (!st) st = dato_nsga2_select(s->ga, children, objectives, violations, err);
        if (!st) st = save_checkpoint(s, err);
        if (!st) st = write_trace(s, gen, dato_clock_s() - t0, err);
        if (!st) report_generation(s, gen, dato_clock_s() - t0);
    }
    free(children);
    free(objectives);
    free(violations);
    if (!st) st = finish(s, err);
    if (!st) st = save_checkpoint(s, err); // the elapsed time including the final re-scoring
    return st;
}

// A run, and a failure before its first checkpoint leaves no folders of its own behind.
static dato_status run(search_ctx* s, dato_error* err) {
    dato_status st = run_search(s, err);
    if (st && !s->saved) remove_made_dirs(s);
    return st;
}

static dato_status serve(search_ctx* s, dato_error* err) {
    dato_eval_handlers h = {.request = worker_request, .evaluate = evaluate_task, .ctx = s};
    return dato_eval_pool_serve(s->pool, &h, err);
}

// Runs body (run or serve) on a fresh context for o, then frees it.
static dato_status with_ctx(const dato_search_options* o, dato_status (*body)(search_ctx*, dato_error*),
                            dato_error* err) {
    search_ctx* s = calloc(1, sizeof *s);
    if (!s) return dato_fail(err, DATO_ERR_NOMEM, "dato-search: out of memory");
    s->o = o;
    s->pool = o->pool;
    dato_status st = body(s, err);
    ctx_free(s);
    free(s);
    return st;
}

dato_status dato_search_run(const dato_search_options* o, dato_error* err) {
    if (o->pool->rank != 0)
        return dato_fail(err, DATO_ERR_INVALID, "dato_search_run: rank %d is a worker (dato_search_serve)", o->pool->rank);
    return with_ctx(o, run, err);
}

dato_status dato_search_serve(const dato_search_options* o, dato_error* err) { return with_ctx(o, serve, err); }
