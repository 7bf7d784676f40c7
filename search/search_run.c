// One dato-search run (search/search_run.h).
#include "search_run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "clip.h"
#include "checkpoint.h"
#include "eval_pool.h"
#include "evaluator.h"
#include "featnet.h"
#include "fid.h"
#include "file_util.h"
#include "genome.h"
#include "hypervolume.h"
#include "image.h"
#include "latency.h"
#include "model_defaults.h"
#include "nsga2.h"
#include "pipeline.h"
#include "report.h"
#include "stats_io.h"

#define MAX_PROMPTS_BYTES (256 << 20) // a prompts file's size limit: COCO's 30k captions are about 2 MB
#define GRID_PROMPTS 8                // prompts shown in each grid of the report
#define N_REFS 5
static const char* const REF_SPECS[N_REFS] = {"baseline", "deepcache:3", "deepcache:5", "tome:0.5", "dato-paper"};

// What a rank sends back for one schedule (evaluate_task): its quality, and its measured time per
// image in its own time (rank 0 rescales it by rank_speed). The latency objective is rank 0's work.
// A TASK_FINAL result is followed by the first image of the first prompts (n_grid, H, W, ch): the grids.
typedef struct {
    double fid, kid, teacher, measured, clip;
} rank_result;

// The tasks: a genome of the search (gbytes), or a final-front schedule (a dato_schedule).
enum { TASK_GENOME = 1, TASK_FINAL };

// rank 0's setup requests: the config (the worker opens the model and times the baseline), the
// search's baseline features, the final image set with its baseline features.
enum { REQUEST_SETUP = 1, REQUEST_BASELINE, REQUEST_FINAL };

typedef struct {
    int32_t kind, arg; // arg: the final images (REQUEST_FINAL)
} request_header;

typedef struct {
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
    dato_evaluator ev;          // the search's image set
    dato_genome_space space;
    size_t gbytes;
    dato_nsga2* ga;
    dato_archive archive;
    dato_latency_table table;
    int have_table;
    dato_fid_stats ref;         // what FID is taken against during the search
    dato_stats_meta ref_meta, fx_meta;
    float* base_features;       // (n_images, dim) the baseline schedule's features: KID's reference
    float* features;            // (n_images, dim) scratch
    dato_schedule sched;        // scratch
    int n_final;                // the re-scored final front, once finish ran (checkpoint /final)
    uint8_t* final_genomes;     // (pop, gbytes) by measured latency
    double* final_scores;       // (pop, DATO_SEARCH_N_FINAL)
    double final_baseline[DATO_SEARCH_N_FINAL];
    char ckpt_path[4096], table_path[4096];
    double t_start, elapsed_before;
    int hits, evals;            // this generation: archive hits, new evaluations
    // evaluation across ranks (search/eval_pool.h)
    dato_eval_pool* pool;
    double* rank_speed;         // (pool size) rank 0's baseline time / the rank's: measured latencies in rank 0's time
    int* task_of;               // (pop) each candidate's task this generation, -1 when already scored
    uint8_t* tasks;             // (pop, gbytes) the new genomes
    rank_result* results;       // (pop) their scores
    dato_eval_trace* trace;     // (pop) where and how long each ran
    double eval_wall_s;         // this generation's time inside dato_eval_pool_map
    double t_gen;               // when this generation's evaluation began
    int gen;                    // the generation being evaluated
    // the final front's image set (finish; on workers from REQUEST_FINAL)
    dato_evaluator fin;
    float* fin_base;            // (final images, dim) the baseline's features: the reference
    float* fin_features;        // (final images, dim) scratch
    dato_fid_stats fin_ref;     // FID's reference with --ref baseline: fin_base's statistics
} search_ctx;

// ---- identities ------------------------------------------------------------------------------------------

static uint64_t fnv1a(uint64_t h, const void* bytes, size_t n) {
    const uint8_t* p = bytes;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

// The files that identify a model folder: a diffusers pipeline's, and a CLIP model's (transformers').
static const char* const PIPELINE_PARTS[] = {"unet/diffusion_pytorch_model.safetensors",
                                             "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                                             "unet/config.json", "scheduler/scheduler_config.json", NULL};
static const char* const CLIP_PARTS[] = {"config.json", "model.safetensors", "model.safetensors.index.json", NULL};

// A model's identity: the hash of its weight files (a single file, or the folder's parts).
static dato_status model_hash(const char* path, const char* const* parts, char* out, size_t n, dato_error* err) {
    if (dato_is_file(path)) return dato_file_hash(path, out, n, err);
    uint64_t h = 0xcbf29ce484222325ull;
    int found = 0;
    for (size_t i = 0; parts[i]; i++) {
        char p[4096], fh[64];
        DATO_TRY(dato_path_join(p, sizeof p, path, parts[i], err));
        if (!dato_is_file(p)) continue;
        DATO_TRY(dato_file_hash(p, fh, sizeof fh, err));
        h = fnv1a(h, fh, strlen(fh));
        found++;
    }
    if (!found) return dato_fail(err, DATO_ERR_INVALID, "%s: no model weights found to identify the model", path);
    snprintf(out, n, "fnv1a64:%016llx", (unsigned long long)h);
    return DATO_OK;
}

static double now_s(void) { return dato_clock_s(); }

// ---- setup -------------------------------------------------------------------------------------------------

// One prompt per non-empty line, any count (COCO-30k's captions file too).
static dato_status read_prompts(search_ctx* s, dato_error* err) {
    DATO_TRY(dato_read_text_file(s->cfg.prompts_file, &s->prompt_text, MAX_PROMPTS_BYTES, err));
    DATO_TRY(dato_file_hash(s->cfg.prompts_file, s->cfg.prompts_hash, sizeof s->cfg.prompts_hash, err));
    size_t lines = 1;
    for (const char* q = s->prompt_text; *q; q++) lines += *q == '\n';
    s->prompts = malloc(lines * sizeof *s->prompts);
    if (!s->prompts) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for %zu prompts", s->cfg.prompts_file, lines);
    int n = 0;
    for (char* line = strtok(s->prompt_text, "\r\n"); line; line = strtok(NULL, "\r\n"))
        if (line[0]) s->prompts[n++] = line;
    if (!n) return dato_fail(err, DATO_ERR_INVALID, "%s: no prompts (one per line expected)", s->cfg.prompts_file);
    s->cfg.n_prompts = n;
    return DATO_OK;
}

// Fills what a new run left unset from the model's dato.json and checks the rest.
static dato_status resolve_config(search_ctx* s, dato_error* err) {
    dato_search_config* c = &s->cfg;
    dato_model_defaults md;
    if (!dato_is_dir(c->model) && !dato_is_file(c->model))
        return dato_fail(err, DATO_ERR_NOT_FOUND, "--model %s: no such model folder or file", c->model);
    DATO_TRY(dato_model_defaults_load(&md, c->model, err));
    if (!c->steps) c->steps = md.steps ? md.steps : 25;
    if (c->guidance < 0) c->guidance = md.guidance ? md.guidance : 7.5f;
    if (!c->prompts_file[0]) {
        if (!md.eval_prompts[0])
            return dato_fail(err, DATO_ERR_INVALID, "%s has no dato.json eval_prompts: give --prompts FILE", c->model);
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
    if (c->steps < 2 || c->steps > DATO_SCHEDULE_MAX_STEPS)
        return dato_fail(err, DATO_ERR_INVALID, "steps %d: expected 2..%d", c->steps, DATO_SCHEDULE_MAX_STEPS);
    return DATO_OK;
}

// CPU threads of this rank: --threads, else all the host's cores split among the ranks on it.
static int rank_threads(const search_ctx* s) {
    if (s->cfg.threads > 0) return s->cfg.threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN), local = s->pool->local_size;
    if (local <= 1) return 0; // all
    return cores / local > 1 ? (int)(cores / local) : 1;
}

// This rank's backend: the CPU, or the CUDA device of its local rank (or --device).
static dato_status open_backend(search_ctx* s, dato_error* err) {
    if (s->cfg.backend == DATO_SEARCH_BACKEND_CPU) return dato_backend_cpu_init(&s->be, rank_threads(s), err);
    if (!s->o->open_cuda)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "backend cuda: this program has no CUDA backend (rebuild with "
                         "-DDATO_CUDA=ON on a machine with nvcc)");
    int device = s->o->device >= 0 ? s->o->device : s->pool->local_rank;
    dato_status st = s->o->open_cuda(device, &s->be, err);
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
        if (!s->o->quiet && s->pool->rank == 0)
            fprintf(stderr, "dato-search: %s records no provenance: taken as %s features with %s preprocessing\n",
                    path, s->fx.name, s->fx.preprocessing);
        return DATO_OK;
    }
    DATO_TRY(dato_stats_read_h5(path, &s->ref, &s->ref_meta, err));
    return dato_stats_check_compatible(&s->fx_meta, "the search's feature extractor", &s->ref_meta, path, err);
}

static dato_status open_model(search_ctx* s, dato_error* err) {
    dato_search_config* c = &s->cfg;
    DATO_TRY(open_backend(s, err));
    s->have_be = 1;
    DATO_TRY(dato_pipeline_open(&s->pipe, c->model, &s->be, NULL, err));
    s->have_pipe = 1;
    if (s->pipe.n_text == 0) return dato_fail(err, DATO_ERR_INVALID, "%s: the search needs a text-conditioned model", c->model);
    DATO_TRY(model_hash(c->model, PIPELINE_PARTS, c->model_hash, sizeof c->model_hash, err));
    c->n_branches = s->pipe.unet.n_branches;
    if (!c->sampler[0]) snprintf(c->sampler, sizeof c->sampler, "%s", dato_sampler_kind_name(s->pipe.sched.kind));
    int f = dato_pipeline_vae_factor(&s->pipe);
    if (!c->height) c->height = s->pipe.unet.cfg.sample_size * f;
    if (!c->width) c->width = s->pipe.unet.cfg.sample_size * f;
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
    if (!s->o->quiet)
        fprintf(stderr, "dato-search: %d image%s per UNet call: its workspace and cache take %.0f MiB of the %.0f MiB "
                "free on %s%s\n", B, B == 1 ? "" : "s", need / 1048576.0, avail / 1048576.0,
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
                                .height = s->ev.h, .width = s->ev.w,
                                .seq = dato_tokenizer_max_len(s->pipe.tokenizer[0]), .sampler = sampler_kind(s),
                                .warmup = 1, .runs = 5};
    dato_latency_key key;
    dato_latency_key_make(&key, &s->pipe.unet, &s->be, &setup);
    if (!resuming && s->o->latency_table) { // reuse a table: check its key, keep a copy with the run
        char* text = NULL;
        DATO_TRY(dato_latency_load(&s->table, s->o->latency_table, &key, err));
        DATO_TRY(dato_read_text_file(s->o->latency_table, &text, 1 << 24, err));
        FILE* f = fopen(s->table_path, "w");
        int ok = f && fputs(text, f) >= 0;
        ok = f && !fclose(f) && ok;
        free(text);
        if (!ok) return dato_fail(err, DATO_ERR_IO, "%s: cannot write: %s", s->table_path, strerror(errno));
    } else if (resuming || dato_is_file(s->table_path)) {
        DATO_TRY(dato_latency_load(&s->table, s->table_path, &key, err));
    } else {
        if (!s->o->quiet) fprintf(stderr, "dato-search: calibrating the latency table (%d depths x 6 ratios)\n",
                                  c->n_branches + 2);
        DATO_TRY(dato_latency_calibrate(&s->table, &s->pipe.unet, &s->pipe.sched, &setup, err));
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

static dato_status make_evaluator(search_ctx* s, dato_evaluator* ev, int images, dato_error* err) {
    dato_search_config* c = &s->cfg;
    dato_eval_config ec = {.steps = c->steps, .guidance = c->guidance, .sampler = sampler_kind(s), .seed = c->seed,
                           .images = images, .height = c->height, .width = c->width, .batch = c->batch,
                           .clip = s->have_clip ? &s->clip : NULL};
    return dato_evaluator_create(ev, &s->pipe, &s->fx, s->prompts, c->n_prompts, &ec, err);
}

// ---- scoring ---------------------------------------------------------------------------------------------

typedef struct {
    double latency, fid, kid, teacher, measured, predicted, clip;
} score;

// The teacher distance: the mean over images of |f - f_base|^2, f and f_base (n, dim) the features
// of the same prompt and noise under a schedule and under the baseline.
static double teacher_distance(const float* features, const float* base, int n, int dim) {
    double sum = 0;
    for (size_t i = 0; i < (size_t)n * dim; i++) {
        double d = (double)features[i] - base[i];
        sum += d * d;
    }
    return sum / n;
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

// The quality of features (ev->n_images, dim) generated on ev in measured_s seconds per image: FID
// against ref; KID and the teacher distance against the baseline's features base (the same
// images' starting points). Latency is left to score_latency.
static dato_status score_quality(search_ctx* s, const dato_evaluator* ev, const float* features, double measured_s,
                                 const dato_fid_stats* ref, const float* base, score* out, dato_error* err) {
    int n = ev->n_images, dim = s->fx.dim;
    dato_fid_result r;
    DATO_TRY(dato_fid_from_features(features, n, dim, ref, &r, err));
    out->fid = r.fid;
    dato_kid_config kc = {.n_subsets = 10, .subset_size = n < 1000 ? n : 1000, .seed = s->cfg.seed};
    dato_kid_result k;
    DATO_TRY(dato_kid(features, n, base, n, dim, &kc, &k, err));
    out->kid = k.mean;
    out->teacher = teacher_distance(features, base, n, dim);
    out->clip = dato_evaluator_clip_score(ev);
    out->measured = measured_s;
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

// Prompts in each grid: the first ones that have images, at most GRID_PROMPTS.
static int grid_prompts(const dato_evaluator* ev) { return ev->n_used < GRID_PROMPTS ? ev->n_used : GRID_PROMPTS; }

// The first image of each grid prompt of ev's last run into cells (grid_prompts, H, W, ch).
static void first_images(const dato_evaluator* ev, uint8_t* cells) {
    size_t img = (size_t)ev->H * ev->W * ev->ch;
    for (int j = 0; j < grid_prompts(ev); j++) memcpy(cells + (size_t)j * img, ev->pixels + (size_t)ev->first[j] * img, img);
}

// FID's reference on the final image set.
static const dato_fid_stats* final_ref(const search_ctx* s) {
    return s->cfg.ref_mode == DATO_REF_BASELINE ? &s->fin_ref : &s->ref;
}

// A rank's result as rank 0's score: the measured time rescaled to rank 0's speed, then the latency.
static dato_status score_of_result(search_ctx* s, const rank_result* r, int rank, const dato_schedule* sched,
                                   score* out, dato_error* err) {
    *out = (score){.fid = r->fid, .kid = r->kid, .teacher = r->teacher, .clip = r->clip,
                   .measured = r->measured * s->rank_speed[rank]};
    return score_latency(s, sched, out, err);
}

// One task on this rank (the pool's evaluate, on any rank): a genome on the search's image set, or
// a schedule on the final one.
static dato_status evaluate_task(void* ctx, int kind, const uint8_t* task, void* out, dato_error* err) {
    search_ctx* s = ctx;
    int final = kind == TASK_FINAL;
    if (final && !s->fin_base) return dato_fail(err, DATO_ERR_INVALID, "a final-front task before the final setup");
    if (final) memcpy(&s->sched, task, sizeof s->sched);
    else if (kind == TASK_GENOME) DATO_TRY(dato_genome_to_schedule(&s->space, task, &s->sched, err));
    else return dato_fail(err, DATO_ERR_INVALID, "task kind %d: expected a genome or a final-front schedule", kind);
    DATO_TRY(dato_schedule_validate(&s->sched, s->cfg.steps, s->cfg.n_branches, err));
    dato_evaluator* ev = final ? &s->fin : &s->ev;
    float* features = final ? s->fin_features : s->features;
    dato_eval_timing t;
    score sc;
    DATO_TRY(dato_evaluator_run(ev, &s->sched, features, NULL, &t, err));
    DATO_TRY(score_quality(s, ev, features, t.best_s_per_image, final ? final_ref(s) : &s->ref,
                           final ? s->fin_base : s->base_features, &sc, err));
    rank_result r = {sc.fid, sc.kid, sc.teacher, sc.measured, sc.clip};
    memcpy(out, &r, sizeof r);
    if (final) first_images(ev, (uint8_t*)out + sizeof r);
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

static void print_progress(void* ctx, int done, int total) {
    search_ctx* s = ctx;
    double el = now_s() - s->t_gen, eta = el / done * (total - done);
    int w = 30, fill = done * w / total;
    fprintf(stderr, "\rdato-search: gen %d/%d [%.*s%*s] %d/%d  %.0f s, ETA %.0f s   ", s->gen, s->cfg.gens, fill,
            "##############################", w - fill, "", done, total, el, eta);
}

// Scores n genomes (n, gbytes) into objectives (n, 2): the ones the archive holds from there, the new
// ones (each once) on every rank, their results applied in genome order whatever rank ran them, so
// the archive grows in the same order with any number of ranks.
static dato_status evaluate_all(search_ctx* s, const uint8_t* genomes, int n, int generation, double* objectives,
                                dato_error* err) {
    s->hits = s->evals = 0;
    s->t_gen = now_s();
    s->gen = generation;
    int n_tasks = 0;
    for (int i = 0; i < n; i++) {
        const uint8_t* g = genomes + (size_t)i * s->gbytes;
        size_t row;
        int seen = dato_archive_find(&s->archive, g, &row);
        for (int j = 0; j < n_tasks && !seen; j++) seen = !memcmp(s->tasks + (size_t)j * s->gbytes, g, s->gbytes);
        s->task_of[i] = seen ? -1 : n_tasks;
        if (!seen) memcpy(s->tasks + (size_t)n_tasks++ * s->gbytes, g, s->gbytes);
    }
    dato_eval_handlers local = {.evaluate = evaluate_task, .ctx = s};
    double t0 = now_s();
    DATO_TRY(dato_eval_pool_map(s->pool, &local, TASK_GENOME, s->tasks, n_tasks, s->gbytes, s->results,
                                sizeof *s->results, s->trace, s->o->quiet ? NULL : print_progress, s, err));
    s->eval_wall_s = now_s() - t0;
    if (!s->o->quiet) fprintf(stderr, "\r%*s\r", 100, "");
    for (int i = 0; i < n; i++) {
        const uint8_t* g = genomes + (size_t)i * s->gbytes;
        double* obj = objectives + (size_t)i * DATO_SEARCH_N_OBJ;
        int t = s->task_of[i];
        if (t < 0) { // scored before, maybe earlier in this generation
            size_t row;
            if (!dato_archive_find(&s->archive, g, &row))
                return dato_fail(err, DATO_ERR_INVALID, "generation %d: candidate %d is neither new nor archived", generation, i);
            memcpy(obj, dato_archive_get(&s->archive, row).objectives, DATO_SEARCH_N_OBJ * sizeof *obj);
            s->hits++;
            continue;
        }
        score sc;
        dato_schedule sched;
        DATO_TRY(dato_genome_to_schedule(&s->space, g, &sched, err));
        DATO_TRY(score_of_result(s, &s->results[t], s->trace[t].rank, &sched, &sc, err));
        obj[0] = sc.latency;
        obj[1] = quality_objective(s, &sc);
        double extra[DATO_SEARCH_N_EXTRA] = {sc.kid, sc.measured, sc.predicted, sc.fid, sc.teacher};
        DATO_TRY(dato_archive_insert(&s->archive, g, obj, extra, generation, NULL, NULL, err));
        s->evals++;
    }
    return DATO_OK;
}

// ---- checkpoints ------------------------------------------------------------------------------------------

static dato_status save_checkpoint(search_ctx* s, dato_error* err) {
    dato_checkpoint c = {.cfg = s->cfg, .pop = s->cfg.pop, .genome_bytes = (int)s->gbytes, .n_obj = DATO_SEARCH_N_OBJ,
                         .n_extra = DATO_SEARCH_N_EXTRA, .steps = s->cfg.steps,
                         .n_evaluations = (int64_t)dato_archive_count(&s->archive),
                         .elapsed_s = s->elapsed_before + now_s() - s->t_start, .n_final = s->n_final,
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

static void print_generation(search_ctx* s, int gen, double gen_seconds) {
    int* front = malloc((size_t)s->cfg.pop * sizeof *front);
    if (!front) return;
    int n_front = dato_nsga2_first_front(s->ga, front);
    double best, fastest, hv = front_hypervolume(s, front, n_front, &best, &fastest);
    const char* objective = dato_quality_objective_name(s->cfg.objective);
    double el = s->elapsed_before + now_s() - s->t_start;
    int left = s->cfg.gens - gen;
    if (s->o->log_json)
        printf("{\"generation\": %d, \"front\": %d, \"hypervolume\": %.6f, \"objective\": \"%s\", "
               "\"best_quality\": %.6f, \"fastest_ms\": %.6f, "
               "\"evaluations\": %d, \"cache_hits\": %d, \"archive\": %zu, \"seconds\": %.3f, \"elapsed_s\": %.3f}\n",
               gen, n_front, hv, objective, best, 1e3 * fastest, s->evals, s->hits, dato_archive_count(&s->archive),
               gen_seconds, el);
    else if (!s->o->quiet)
        printf("gen %3d/%d  front %2d  HV %.4f  best %s %8.3f  fastest %7.3f ms/img  new %2d  cache hits %2d  "
               "%5.1f s  ETA %.0f s\n", gen, s->cfg.gens, n_front, hv, s->cfg.objective == DATO_OBJECTIVE_FID ? "FID" : objective, best, 1e3 * fastest, s->evals, s->hits,
               gen_seconds, gen_seconds * left);
    fflush(stdout);
    free(front);
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

static void fill_point(dato_report_point* p, const char* label, const dato_schedule* sched, const score* sc,
                       double base_latency) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->schedule = *sched;
    p->latency_s = sc->measured;
    p->fid = sc->fid;
    p->kid = sc->kid;
    p->teacher = sc->teacher;
    p->clip = sc->clip;
    p->measured_latency_s = sc->measured;
    p->speedup = base_latency / sc->measured;
    dato_schedule_counts k = dato_schedule_count(sched);
    p->full = k.full;
    p->partial = k.partial;
    p->reuse = k.reuse;
    p->mean_ratio = k.mean_ratio;
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

// The final front's candidates: the non-dominated rows of the whole archive (every genome the run
// evaluated; denser than the population's front, which holds at most pop members), by latency.
// A front longer than cap is thinned to cap rows evenly spaced along it, both ends kept.
// Returns the count written to rows (cap), or -1 when out of memory.
static int archive_front(const dato_archive* a, size_t* rows, int cap) {
    size_t n = dato_archive_count(a);
    archive_point* pts = malloc((n ? n : 1) * sizeof *pts);
    if (!pts) return -1;
    for (size_t i = 0; i < n; i++) {
        dato_archive_record r = dato_archive_get(a, i);
        pts[i] = (archive_point){r.objectives[0], r.objectives[1], i};
    }
    qsort(pts, n, sizeof *pts, cmp_archive_points);
    size_t m = 0; // the front, compacted to the start of pts: each strictly better in quality than the last
    for (size_t i = 0; i < n; i++)
        if (m == 0 || pts[i].quality < pts[m - 1].quality) pts[m++] = pts[i];
    int k = m < (size_t)cap ? (int)m : cap;
    for (int i = 0; i < k; i++) rows[i] = pts[k == 1 ? 0 : (size_t)((double)i * (double)(m - 1) / (k - 1) + 0.5)].row;
    free(pts);
    return k;
}

static void print_final_progress(void* ctx, int done, int total) {
    (void)ctx;
    fprintf(stderr, "\rdato-search: final front and references %d/%d   ", done, total);
}

// Rank 0: every worker makes the final image set's evaluator and takes the baseline's features on
// it (s->fin_base) as its reference.
static dato_status setup_final_workers(search_ctx* s, dato_error* err) {
    if (s->pool->size == 1) return DATO_OK;
    size_t nf = (size_t)s->fin.n_images * s->fx.dim, bytes = sizeof(request_header) + nf * sizeof(float);
    uint8_t* msg = malloc(bytes);
    if (!msg) return dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    request_header h = {REQUEST_FINAL, s->cfg.final_images};
    memcpy(msg, &h, sizeof h);
    memcpy(msg + sizeof h, s->fin_base, nf * sizeof(float));
    dato_status st = dato_eval_pool_request(s->pool, msg, bytes, NULL, 0, err);
    free(msg);
    return st;
}

// Re-scores the final front's candidates (archive_front) and the reference schedules on
// final_images images, on every rank, re-measuring latency end to end, then writes the grids and
// the report. The baseline goes first, on rank 0: its features are every rank's reference.
static dato_status finish(search_ctx* s, dato_error* err) {
    dato_search_config* c = &s->cfg;
    int P = 2 * c->pop < DATO_CHECKPOINT_MAX_FINAL ? 2 * c->pop : DATO_CHECKPOINT_MAX_FINAL, n_front = 0;
    int* idx = malloc((size_t)P * sizeof *idx);
    dato_report_point* front = calloc((size_t)P, sizeof *front);    // (n_front) by latency
    dato_report_point* unsorted = calloc((size_t)P, sizeof *unsorted); // in evaluation order
    dato_report_point refs[N_REFS];
    uint8_t* cells = NULL; // (P + N_REFS, grid prompts, H, W, ch) the grids' images: front members, then refs
    size_t* members = malloc((size_t)P * sizeof *members); // (n_idx) archive rows
    dato_schedule* tasks = malloc((size_t)(P + N_REFS) * sizeof *tasks); // references but the baseline, then members
    dato_eval_trace* trace = malloc((size_t)(P + N_REFS) * sizeof *trace);
    uint8_t* results = NULL; // (n_tasks, result_bytes): rank_result, then the first image of each prompt
    const uint8_t** genome_of = malloc((size_t)P * sizeof *genome_of); // (n_front) of the unsorted rows
    dato_status st = idx && front && unsorted && members && tasks && trace && genome_of
                         ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    if (!st) st = make_evaluator(s, &s->fin, c->final_images, err);
    size_t row = st ? 0 : (size_t)grid_prompts(&s->fin) * s->fin.H * s->fin.W * s->fin.ch, result_bytes = sizeof(rank_result) + row;
    size_t nf = (size_t)s->fin.n_images * s->fx.dim;
    if (!st && (!(cells = malloc((size_t)(P + N_REFS) * row)) || !(results = malloc((size_t)(P + N_REFS) * result_bytes)) ||
                !(s->fin_features = malloc(nf * sizeof(float))) || !(s->fin_base = malloc(nf * sizeof(float)))))
        st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    score base = {0};
    dato_schedule sched;
    if (!st && !s->o->quiet) fprintf(stderr, "dato-search: re-scoring the final front on %d images\n", s->fin.n_images);
    dato_eval_timing base_timing = {0};
    if (!st) st = dato_evaluator_run(&s->fin, NULL, s->fin_base, NULL, &base_timing, err);
    if (!st) first_images(&s->fin, cells + (size_t)P * row);
    if (!st && c->ref_mode == DATO_REF_BASELINE) st = stats_of(s->fin_base, s->fin.n_images, s->fx.dim, &s->fin_ref, err);
    if (!st) st = score_quality(s, &s->fin, s->fin_base, base_timing.best_s_per_image, final_ref(s), s->fin_base, &base, err);
    if (!st) st = score_latency(s, NULL, &base, err);
    if (!st) st = setup_final_workers(s, err);
    // The tasks: the references but the baseline, then the members of the archive's front.
    int n_idx = st ? 0 : archive_front(&s->archive, members, P);
    if (n_idx < 0) st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    for (int r = 1; !st && r < N_REFS; r++) st = dato_schedule_preset(&tasks[r - 1], REF_SPECS[r], c->steps, c->n_branches, err);
    for (int i = 0; !st && i < n_idx; i++)
        st = dato_genome_to_schedule(&s->space, dato_archive_get(&s->archive, members[i]).genome, &tasks[N_REFS - 1 + i], err);
    int n_tasks = N_REFS - 1 + n_idx;
    dato_eval_handlers local = {.evaluate = evaluate_task, .ctx = s};
    if (!st) st = dato_eval_pool_map(s->pool, &local, TASK_FINAL, (const uint8_t*)tasks, n_tasks, sizeof *tasks, results,
                                     result_bytes, trace, s->o->quiet ? NULL : print_final_progress, s, err);
    if (!s->o->quiet) fprintf(stderr, "\n");
    for (int t = -1; !st && t < n_tasks; t++) { // t = -1: the baseline, scored above
        int r = t + 1 < N_REFS ? t + 1 : -1;    // the reference, or -1 for a front member
        score sc = base;
        const dato_schedule* sch = t < 0 ? &sched : &tasks[t];
        if (t < 0) st = dato_schedule_preset(&sched, "baseline", c->steps, c->n_branches, err);
        if (!st && t >= 0) {
            rank_result q;
            memcpy(&q, results + (size_t)t * result_bytes, sizeof q);
            st = score_of_result(s, &q, trace[t].rank, sch, &sc, err);
        }
        if (st) break;
        uint8_t* cell = cells + (size_t)(r >= 0 ? P + r : n_front) * row;
        if (t >= 0) memcpy(cell, results + (size_t)t * result_bytes + sizeof(rank_result), row);
        if (r < 0) {
            fill_point(&unsorted[n_front], "", sch, &sc, base.measured);
            genome_of[n_front++] = dato_archive_get(&s->archive, members[t - (N_REFS - 1)]).genome;
            continue;
        }
        fill_point(&refs[r], REF_SPECS[r], sch, &sc, base.measured);
        snprintf(refs[r].grid_png, sizeof refs[r].grid_png, "grids/%s.png", REF_SPECS[r]);
        for (char* q = refs[r].grid_png; *q; q++)
            if (*q == ':') *q = '_';
        st = write_grid(s, &s->fin, cell, refs[r].grid_png, err);
    }
    // The front by latency (insertion sort of indices: stable, and the grid cells follow).
    for (int i = 0; i < n_front; i++) idx[i] = i;
    for (int i = 1; i < n_front; i++)
        for (int j = i; j > 0 && unsorted[idx[j]].latency_s < unsorted[idx[j - 1]].latency_s; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    // The checkpoint keeps the re-scored front: dato-export picks by its FID.
    s->n_final = st ? 0 : n_front;
    if (!st && n_front && !(s->final_genomes = malloc((size_t)n_front * s->gbytes)))
        st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    if (!st && n_front && !(s->final_scores = malloc((size_t)n_front * DATO_SEARCH_N_FINAL * sizeof(double))))
        st = dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
    for (int i = 0; !st && i < n_front; i++) {
        const dato_report_point* u = &unsorted[idx[i]];
        memcpy(s->final_genomes + (size_t)i * s->gbytes, genome_of[idx[i]], s->gbytes);
        double row_scores[DATO_SEARCH_N_FINAL] = {u->measured_latency_s, u->fid, u->kid, u->teacher};
        memcpy(s->final_scores + (size_t)i * DATO_SEARCH_N_FINAL, row_scores, sizeof row_scores);
    }
    double base_scores[DATO_SEARCH_N_FINAL] = {base.measured, base.fid, base.kid, base.teacher};
    memcpy(s->final_baseline, base_scores, sizeof base_scores);
    if (st) s->n_final = 0;
    for (int i = 0; !st && i < n_front; i++) {
        int cells_row = idx[i];
        front[i] = unsorted[cells_row];
        snprintf(front[i].label, sizeof front[i].label, "front %d", i);
        snprintf(front[i].grid_png, sizeof front[i].grid_png, "grids/front_%d.png", i);
        st = write_grid(s, &s->fin, cells + (size_t)cells_row * row, front[i].grid_png, err);
    }
    int knee = -1, fastest_ok = -1;
    double *lat = malloc((size_t)(n_front ? n_front : 1) * sizeof *lat),
           *fid = malloc((size_t)(n_front ? n_front : 1) * sizeof *fid);
    if (!st && lat && fid) {
        for (int i = 0; i < n_front; i++) {
            lat[i] = front[i].latency_s;
            fid[i] = front[i].fid;
        }
        fastest_ok = dato_report_fastest_within(lat, fid, n_front, 1.1 * base.fid);
        st = dato_report_knee(lat, fid, n_front, &knee, err);
    }
    if (!st) {
        double pts[2 * 256], hv = 0, ref_pt[2] = {1.1, 1.1};
        int m = n_front < 256 ? n_front : 256;
        for (int i = 0; i < m; i++) {
            pts[2 * i] = lat[i] / base.measured;
            pts[2 * i + 1] = base.fid > 0 ? fid[i] / (2 * base.fid) : fid[i];
        }
        dato_error e;
        if (dato_hypervolume(pts, m, 2, ref_pt, &hv, &e)) hv = NAN;
        char export_cmd[4300];
        snprintf(export_cmd, sizeof export_cmd, "dato-export %s --pick knee --out knee.json", s->ckpt_path);
        dato_report rep = {.cfg = c, .run_dir = s->o->run_dir, .command = s->o->command,
                           .generation = (int)s->ga->generation, .n_evaluations = (int)dato_archive_count(&s->archive),
                           .elapsed_s = s->elapsed_before + now_s() - s->t_start, .front = front, .n_front = n_front,
                           .refs = refs, .n_refs = N_REFS, .knee_index = knee, .fastest_ok_index = fastest_ok,
                           .hypervolume = hv, .export_example = export_cmd};
        st = dato_report_write(&rep, err);
    }
    if (!st && s->o->log_json)
        printf("{\"final_front\": %d, \"final_images\": %d, \"knee\": %d, \"fastest_within_10pct_fid\": %d, "
               "\"baseline_ms\": %.6f, \"baseline_fid\": %.6f}\n", n_front, s->fin.n_images, knee,
               fastest_ok, 1e3 * base.measured, base.fid);
    else if (!st && !s->o->quiet) {
        printf("final front (%d images per schedule, latency re-measured):\n", s->fin.n_images);
        printf("  %-12s %10s %9s %8s\n", "schedule", "ms/img", "FID", "speedup");
        for (int r = 0; r < N_REFS; r++)
            printf("  %-12s %10.3f %9.3f %7.2fx\n", refs[r].label, 1e3 * refs[r].latency_s, refs[r].fid, refs[r].speedup);
        for (int i = 0; i < n_front; i++)
            printf("  %-12s %10.3f %9.3f %7.2fx%s%s\n", front[i].label, 1e3 * front[i].latency_s, front[i].fid,
                   front[i].speedup, i == knee ? "  knee" : "", i == fastest_ok ? "  fastest within +10% FID" : "");
        printf("results in %s (report.html, front.csv, front.json, front.svg, schedules/)\n", s->o->run_dir);
    }
    free(genome_of);
    free(lat);
    free(fid);
    free(idx);
    free(front);
    free(unsorted);
    free(cells);
    free(members);
    free(tasks);
    free(trace);
    free(results);
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

static uint64_t features_hash(const float* f, size_t n) { return fnv1a(0xcbf29ce484222325ull, f, n * sizeof *f); }

// What every evaluating rank holds besides the model: the genome space and the feature buffers.
static dato_status alloc_evaluation(search_ctx* s, dato_error* err) {
    DATO_TRY(dato_genome_space_init(&s->space, s->cfg.steps, s->cfg.n_branches, err));
    s->gbytes = dato_genome_bytes(&s->space);
    size_t nfeat = (size_t)s->ev.n_images * s->fx.dim;
    s->features = malloc(nfeat * sizeof(float));
    s->base_features = malloc(nfeat * sizeof(float));
    if (!s->features || !s->base_features) return dato_fail(err, DATO_ERR_NOMEM, "out of memory for %zu features", nfeat);
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
    size_t nfeat = (size_t)s->ev.n_images * s->fx.dim;
    if (h.kind == REQUEST_SETUP && bytes == sizeof(setup_request) && reply_bytes == sizeof(setup_reply) &&
        !s->have_pipe) {
        setup_request rq;
        memcpy(&rq, msg, sizeof rq);
        s->cfg = rq.cfg;
        DATO_TRY(open_model(s, err));
        DATO_TRY(same_files(&rq.cfg, &s->cfg, err));
        DATO_TRY(make_evaluator(s, &s->ev, s->cfg.images, err));
        DATO_TRY(alloc_evaluation(s, err));
        dato_eval_timing t;
        size_t n = (size_t)s->ev.n_images * s->fx.dim; // the evaluator exists only now
        DATO_TRY(dato_evaluator_run(&s->ev, NULL, s->base_features, NULL, &t, err));
        setup_reply r = {t.best_s_per_image, features_hash(s->base_features, n), rank_threads(s), (int32_t)n, ""};
        snprintf(r.backend, sizeof r.backend, "%s", s->be.name ? s->be.name : "?");
        memcpy(reply, &r, sizeof r);
        return DATO_OK;
    }
    if (h.kind == REQUEST_FINAL && s->have_pipe && !s->fin_base && h.arg > 0) {
        DATO_TRY(make_evaluator(s, &s->fin, h.arg, err));
        size_t nf = (size_t)s->fin.n_images * s->fx.dim;
        if (bytes != sizeof h + nf * sizeof(float))
            return dato_fail(err, DATO_ERR_PEER, "final setup: %zu bytes for %zu features", bytes, nf);
        s->fin_features = malloc(nf * sizeof(float));
        s->fin_base = malloc(nf * sizeof(float));
        if (!s->fin_features || !s->fin_base) return dato_fail(err, DATO_ERR_NOMEM, "final front: out of memory");
        memcpy(s->fin_base, (const uint8_t*)msg + sizeof h, nf * sizeof(float));
        if (s->cfg.ref_mode == DATO_REF_BASELINE) DATO_TRY(stats_of(s->fin_base, s->fin.n_images, s->fx.dim, &s->fin_ref, err));
        return DATO_OK;
    }
    if (h.kind == REQUEST_BASELINE && s->base_features && bytes == sizeof h + nfeat * sizeof(float)) {
        memcpy(s->base_features, (const uint8_t*)msg + sizeof h, nfeat * sizeof(float));
        if (s->cfg.ref_mode == DATO_REF_BASELINE) {
            dato_fid_stats_free(&s->ref);
            DATO_TRY(stats_of(s->base_features, s->ev.n_images, s->fx.dim, &s->ref, err));
        }
        return DATO_OK;
    }
    return dato_fail(err, DATO_ERR_PEER, "a setup request out of place (kind %d, %zu bytes): do all ranks run the "
                     "same dato-search?", h.kind, bytes);
}

// Rank 0: every worker opens the model on this run's config and times the baseline (its speed
// relative to rank 0's, base_s per image, scales its measured latencies), then takes rank 0's
// baseline features as its reference (KID, the teacher distance, and FID with --ref baseline).
static dato_status setup_workers(search_ctx* s, double base_s, dato_error* err) {
    dato_eval_pool* p = s->pool;
    s->rank_speed = malloc((size_t)p->size * sizeof *s->rank_speed);
    if (!s->rank_speed) return dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    for (int r = 0; r < p->size; r++) s->rank_speed[r] = 1;
    if (p->size == 1) return DATO_OK;
    size_t nfeat = (size_t)s->ev.n_images * s->fx.dim;
    setup_request rq = {.h = {REQUEST_SETUP, 0}, .cfg = s->cfg};
    setup_reply* replies = malloc((size_t)(p->size - 1) * sizeof *replies);
    uint8_t* msg = malloc(sizeof(request_header) + nfeat * sizeof(float));
    dato_status st = replies && msg ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    if (!st && !s->o->quiet) fprintf(stderr, "dato-search: setting up %d worker ranks\n", p->size - 1);
    if (!st) st = dato_eval_pool_request(p, &rq, sizeof rq, replies, sizeof *replies, err);
    uint64_t ours = features_hash(s->base_features, nfeat);
    if (!st && !s->o->quiet)
        fprintf(stderr, "dato-search: %d ranks evaluate; %s: %s, threads %d, baseline %.2f ms/img\n", p->size,
                p->where[0], s->be.name ? s->be.name : "?", rank_threads(s), 1e3 * base_s);
    for (int r = 1; !st && r < p->size; r++) {
        const setup_reply* y = &replies[r - 1];
        if ((size_t)y->n_features != nfeat)
            st = dato_fail(err, DATO_ERR_PEER, "%s made %d baseline features, rank 0 %zu", p->where[r], y->n_features, nfeat);
        else if (y->baseline_s > 0)
            s->rank_speed[r] = base_s / y->baseline_s;
        if (!st && !s->o->quiet)
            fprintf(stderr, "dato-search: %s: %.63s, threads %d, baseline %.2f ms/img (%.2fx rank 0's time)\n",
                    p->where[r], y->backend, y->threads, 1e3 * y->baseline_s, 1 / s->rank_speed[r]);
        if (!st && y->features_hash != ours)
            fprintf(stderr, "dato-search: warning: %s made other baseline images than rank 0 (another CPU or library "
                    "build?): it scores against rank 0's baseline, but the front can differ from a one-process run\n",
                    p->where[r]);
    }
    if (!st) {
        request_header h = {REQUEST_BASELINE, 0};
        memcpy(msg, &h, sizeof h);
        memcpy(msg + sizeof h, s->base_features, nfeat * sizeof(float));
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
    static const char* const headers[2] = {"generation,candidate,rank,eval_s,round_trip_s\n",
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
            for (int i = 0; ok && i < s->cfg.pop; i++) {
                int t = s->task_of[i];
                if (t >= 0)
                    ok = fprintf(f, "%d,%d,%d,%.6f,%.6f\n", gen, i, s->trace[t].rank, s->trace[t].eval_s,
                                 s->trace[t].round_trip_s) > 0;
            }
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

static dato_status make_dirs(const char* run_dir, dato_error* err) {
    char p[4096];
    const char* subs[] = {"", "grids", "schedules"};
    for (int i = 0; i < 3; i++) {
        DATO_TRY(i ? dato_path_join(p, sizeof p, run_dir, subs[i], err)
                   : (snprintf(p, sizeof p, "%s", run_dir) < (int)sizeof p ? DATO_OK
                                                                            : dato_fail(err, DATO_ERR_INVALID, "run folder name too long")));
        for (char* q = p + 1; *q; q++) { // mkdir -p
            if (*q != '/') continue;
            *q = 0;
            if (mkdir(p, 0777) && errno != EEXIST)
                return dato_fail(err, DATO_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
            *q = '/';
        }
        if (mkdir(p, 0777) && errno != EEXIST) return dato_fail(err, DATO_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
    }
    return DATO_OK;
}

static void ctx_free(search_ctx* s) {
    dato_evaluator_free(&s->ev);
    dato_evaluator_free(&s->fin);
    free(s->fin_base);
    free(s->fin_features);
    dato_fid_stats_free(&s->fin_ref);
    dato_nsga2_free(s->ga);
    dato_archive_free(&s->archive);
    dato_fid_stats_free(&s->ref);
    free(s->base_features);
    free(s->features);
    free(s->final_genomes);
    free(s->final_scores);
    free(s->rank_speed);
    free(s->task_of);
    free(s->tasks);
    free(s->results);
    free(s->trace);
    free(s->prompt_text);
    free(s->prompts);
    if (s->fx.destroy) s->fx.destroy(&s->fx);
    if (s->have_clip) dato_clip_free(&s->clip);
    if (s->have_pipe) dato_pipeline_close(&s->pipe);
    if (s->have_be) dato_backend_destroy(&s->be);
}

static dato_status run(search_ctx* s, dato_error* err) {
    const dato_search_options* o = s->o;
    dato_checkpoint ck = {0};
    int resuming = o->resume != NULL;
    if (resuming) {
        DATO_TRY(dato_checkpoint_read(o->resume, &ck, err));
        s->cfg = ck.cfg;
        if (o->gens_override > 0) s->cfg.gens = o->gens_override;
        if (o->final_images_override > 0) s->cfg.final_images = o->final_images_override;
        if (o->threads_override > 0) s->cfg.threads = o->threads_override;
        s->elapsed_before = ck.elapsed_s;
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
    DATO_TRY(open_model(s, err));
    if (!saved.height) saved.height = s->cfg.height, saved.width = s->cfg.width; // a checkpoint from before sizes
    if (!resuming && !s->cfg.batch) DATO_TRY(choose_batch(s, err));
    DATO_TRY(make_evaluator(s, &s->ev, s->cfg.images, err));
    DATO_TRY(make_dirs(o->run_dir, err)); // only now: a run that cannot start leaves no folder behind
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
    // The baseline's images: KID's reference, and FID's with --ref baseline; its time, the ranks' yardstick.
    dato_eval_timing base_t;
    DATO_TRY(dato_evaluator_run(&s->ev, NULL, s->base_features, NULL, &base_t, err));
    if (s->cfg.ref_mode == DATO_REF_BASELINE) DATO_TRY(stats_of(s->base_features, s->ev.n_images, s->fx.dim, &s->ref, err));
    DATO_TRY(setup_workers(s, base_t.best_s_per_image, err));
    char spread[160];
    if (!o->quiet)
        fprintf(stderr, "dato-search: %s on %s, %dx%d images (h x w), %s, %s %d steps, guidance %g, pop %d, %d "
                        "generations, objective %s on %s features, FID vs %s, latency %s\n", s->cfg.model,
                s->be.name ? s->be.name : "?", s->ev.H, s->ev.W, spread_text(&s->ev, spread, sizeof spread),
                s->cfg.sampler, s->cfg.steps, (double)s->cfg.guidance, s->cfg.pop, s->cfg.gens,
                dato_quality_objective_name(s->cfg.objective), s->fx.name,
                s->cfg.ref_mode == DATO_REF_BASELINE ? "the baseline's images" : s->cfg.ref,
                s->cfg.latency_mode == DATO_LATENCY_TABLE ? "from the calibrated table" : "measured");

    uint8_t* children = malloc(P * s->gbytes);
    double* objectives = malloc(P * DATO_SEARCH_N_OBJ * sizeof *objectives);
    dato_status st = children && objectives ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    s->t_start = now_s();
    if (!st && resuming) {
        st = dato_archive_import(&s->archive, (size_t)ck.n_evaluations, ck.arch_genomes, ck.arch_objectives,
                                 ck.arch_extras, ck.arch_generations, err);
        if (!st) st = dato_nsga2_set_state(s->ga, ck.pop_genomes, ck.pop_objectives, ck.pop_violations, ck.rng_state,
                                           ck.generation, err);
        if (!st && !o->quiet)
            fprintf(stderr, "dato-search: resumed %s at generation %lld (%lld evaluations)\n", o->resume,
                    (long long)ck.generation, (long long)ck.n_evaluations);
    } else if (!st) {
        dato_rng rng;
        dato_rng_seed_stream(&rng, s->cfg.seed, 1); // the initial population's own stream
        double t0 = now_s();
        st = dato_genome_initial_population(&s->space, s->cfg.pop, &rng, children, err);
        if (!st) st = evaluate_all(s, children, s->cfg.pop, 0, objectives, err);
        if (!st) st = dato_nsga2_set_population(s->ga, children, objectives, NULL, err);
        if (!st) st = save_checkpoint(s, err);
        if (!st) st = write_trace(s, 0, now_s() - t0, err);
        if (!st) print_generation(s, 0, now_s() - t0);
    }
    dato_checkpoint_free(&ck);
    while (!st && s->ga->generation < s->cfg.gens) {
        double t0 = now_s();
        int gen = (int)s->ga->generation + 1;
        st = dato_nsga2_make_offspring(s->ga, children, err);
        if (!st) st = evaluate_all(s, children, s->cfg.pop, gen, objectives, err);
        if (!st) st = dato_nsga2_select(s->ga, children, objectives, NULL, err);
        if (!st) st = save_checkpoint(s, err);
        if (!st) st = write_trace(s, gen, now_s() - t0, err);
        if (!st) print_generation(s, gen, now_s() - t0);
    }
    free(children);
    free(objectives);
    if (!st) st = finish(s, err);
    if (!st) st = save_checkpoint(s, err); // the elapsed time including the final re-scoring
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
