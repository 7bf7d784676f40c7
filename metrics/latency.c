// The latency meter and the per-call cost table (latency.h, docs/LATENCY.md).
#include "latency.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dato.h"
#include "file_util.h"
#include "hash.h"
#include "rng.h"
#include "unet_denoiser.h"

// ---- the meter ---------------------------------------------------------------------------------------

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

double dato_median(double* x, int n) {
    if (n < 1) return 0.0;
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

dato_status dato_time_fn(dato_timing* out, dato_timed_fn fn, void* ctx, int warmup, int runs, dato_backend* be,
                         dato_error* err) {
    if (!out || !fn || warmup < 0 || runs < 1)
        return dato_fail(err, DATO_ERR_INVALID, "latency meter: need a function, warmup >= 0 and runs >= 1 "
                         "(got warmup %d, runs %d)", warmup, runs);
    for (int i = 0; i < warmup; i++) DATO_TRY(fn(ctx, err));
    double* t = malloc((size_t)runs * sizeof *t);
    if (!t) return dato_fail(err, DATO_ERR_NOMEM, "latency meter: cannot allocate %d timings", runs);
    dato_status st = DATO_OK;
    for (int i = 0; i < runs && !st; i++) {
        if (be) be->ops->synchronize(be);
        double t0 = dato_clock_s();
        st = fn(ctx, err);
        if (be) be->ops->synchronize(be);
        t[i] = dato_clock_s() - t0;
    }
    if (!st) {
        out->runs = runs;
        out->min_s = out->max_s = t[0];
        for (int i = 1; i < runs; i++) {
            out->min_s = t[i] < out->min_s ? t[i] : out->min_s;
            out->max_s = t[i] > out->max_s ? t[i] : out->max_s;
        }
        out->median_s = dato_median(t, runs);
    }
    free(t);
    return st;
}

// ---- keys ------------------------------------------------------------------------------------------------

// FNV-1a 64 over every parameter's LDM name and shape: two models with the same hash run the
// same layers on the same shapes, so they cost the same whatever their weights.
static void architecture_hash(const dato_unet* u, char out[17]) {
    uint64_t h = DATO_FNV_RECORDED_OFFSET; // latency tables record this hash
    for (int i = 0; i < u->n_params; i++) {
        const dato_unet_param* p = &u->params[i];
        h = dato_fnv1a64(h, p->name[DATO_LAYOUT_LDM], strlen(p->name[DATO_LAYOUT_LDM]));
        for (int d = 0; d < p->ndim; d++) {
            uint8_t le[8]; // the dimension's 8 bytes, least significant first
            for (int b = 0; b < 8; b++) le[b] = (uint8_t)(p->shape[d] >> (8 * b));
            h = dato_fnv1a64(h, le, sizeof le);
        }
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

void dato_latency_key_make(dato_latency_key* key, const dato_unet* u, const dato_backend* be,
                           const dato_latency_setup* setup) {
    memset(key, 0, sizeof *key);
    snprintf(key->model, sizeof key->model, "%s", setup->model ? setup->model : "");
    architecture_hash(u, key->model_hash);
    snprintf(key->device, sizeof key->device, "%s", be->name ? be->name : "");
    key->threads = setup->threads;
    key->batch = setup->batch;
    key->guided = setup->guided != 0;
    key->height = setup->height;
    key->width = setup->width;
    key->seq = setup->seq;
    snprintf(key->sampler, sizeof key->sampler, "%s", dato_sampler_kind_name(setup->sampler));
}

dato_status dato_latency_key_check(const dato_latency_key* t, const dato_latency_key* run, const char* label,
                                   dato_error* err) {
    const char* l = label ? label : "latency table";
#define LAT_STR(f)                                                                                                 \
    if (strcmp(t->f, run->f) != 0)                                                                                 \
        return dato_fail(err, DATO_ERR_INVALID, "%s: key field '" #f "' is \"%s\", the run has \"%s\"", l, t->f, \
                         run->f);
#define LAT_INT(f)                                                                                            \
    if (t->f != run->f)                                                                                       \
        return dato_fail(err, DATO_ERR_INVALID, "%s: key field '" #f "' is %d, the run has %d", l, t->f, run->f);
    LAT_STR(model)
    LAT_STR(model_hash)
    LAT_STR(device)
    LAT_INT(threads)
    LAT_INT(batch)
    LAT_INT(guided)
    LAT_INT(height)
    LAT_INT(width)
    LAT_INT(seq)
    LAT_STR(sampler)
#undef LAT_STR
#undef LAT_INT
    return DATO_OK;
}

// ---- calibration ----------------------------------------------------------------------------------------

// One guided UNet call as the pipeline makes it: the input uploaded, then the pipeline's own
// dato_denoiser_call (plan, pruning hook, forward replayed from graphs, download, record).
typedef struct {
    dato_denoiser d;
    dato_gene gene;           // the entry's (depth, ratio)
    size_t bytes;             // of x_host and y_host
    float* x_host;            // (rows, C, h, w)
    float* y_host;            // (rows, C, h, w)
} unet_call;

static dato_status time_unet_call(void* vctx, dato_error* err) {
    unet_call* c = vctx;
    c->d.be->ops->upload(c->d.be, c->d.x.data, c->x_host, c->bytes);
    // Step 0 only seeds the runtime's random base choice, unused: it has predictions to score.
    return dato_denoiser_call(&c->d, 0, &c->gene, 1, c->y_host, err);
}

// The host work of one model call outside the UNet: input copies, guidance, sampler update.
typedef struct {
    dato_sampler* s;
    dato_rng rng;
    int call, guided;
    size_t n;                 // batch * latent
    float *x, *model_in, *model_out, *y, *noise; // (n), (n), (n), (2n), (n)
} overhead_call;

static dato_status time_overhead(void* vctx, dato_error* err) {
    overhead_call* o = vctx;
    if (o->call == dato_sampler_num_calls(o->s)) { // the multistep history restarts as for a new image
        dato_sampler_reset(o->s);
        o->call = 0;
    }
    dato_sampler_call info = dato_sampler_call_info(o->s, o->call);
    for (size_t i = 0; i < o->n; i++) o->model_in[i] = o->x[i] * info.input_scale;
    for (int half = 0; half < 1 + o->guided; half++) memcpy(o->y + half * o->n, o->model_in, o->n * sizeof(float));
    const float *u = o->y, *c = o->y + (o->guided ? o->n : 0);
    for (size_t i = 0; i < o->n; i++) o->model_out[i] = u[i] + 7.5f * (c[i] - u[i]);
    const float* noise = NULL;
    if (dato_sampler_needs_noise(o->s, o->call)) {
        dato_rng_fill_normal(&o->rng, o->noise, o->n);
        noise = o->noise;
    }
    DATO_TRY(dato_sampler_step(o->s, o->call, o->model_out, o->x, noise, err));
    // Keep x bounded: the fake model output is not a denoiser.
    for (size_t i = 0; i < o->n; i++) o->x[i] = o->x[i] > 4.0f ? 4.0f : (o->x[i] < -4.0f ? -4.0f : o->x[i]);
    o->call++;
    return DATO_OK;
}

// The setup of one generate call on a kept denoiser (denoiser.h): its sampler and host buffers, and
// dato_denoiser_begin on the planned workspace (no plan: the search plans once per shape). prune
// adds the runtime's reset, with_cache the cache's; the graphs are dropped when either changes, as
// between a search's schedules.
typedef struct {
    dato_denoiser* d;
    const dato_scheduler_config* sched;
    const dato_latency_setup* setup;
    int rows, with_cache;
    const dato_prune_config* prune; // NULL: the call does not prune
} setup_call;

static dato_status time_begin(void* vctx, dato_error* err) {
    setup_call* c = vctx;
    const dato_latency_setup* s = c->setup;
    size_t n = (size_t)s->batch * c->d->dims.in_channels * s->height * s->width;
    dato_sampler* smp = NULL;
    DATO_TRY(dato_sampler_create(&smp, c->sched, s->sampler, 50, n, err));
    float* host = calloc(2 * (size_t)c->rows * c->d->dims.in_channels * s->height * s->width + c->rows, sizeof *host);
    dato_status st = host ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "latency calibrate: out of memory");
    if (!st) st = dato_denoiser_begin(c->d, c->rows, s->guided ? s->batch : 0, s->height, s->width, s->seq,
                                      c->with_cache, c->prune, err);
    free(host);
    dato_sampler_destroy(smp);
    return st;
}

// Median time of time_begin under (with_cache, prune), alternating with a plain call so that every
// timed call finds the state a schedule of the other kind left.
static dato_status time_setup(double* out, setup_call* c, int with_cache, const dato_prune_config* prune,
                              int runs, dato_backend* be, dato_error* err) {
    double* x = malloc((size_t)runs * sizeof *x);
    if (!x) return dato_fail(err, DATO_ERR_NOMEM, "latency calibrate: out of memory");
    dato_status st = DATO_OK;
    dato_timing tm = {0};
    for (int j = 0; j < runs && !st; j++) {
        *c = (setup_call){.d = c->d, .sched = c->sched, .setup = c->setup, .rows = c->rows};
        if ((st = time_begin(c, err))) break;
        c->with_cache = with_cache, c->prune = prune;
        if (!(st = dato_time_fn(&tm, time_begin, c, 0, 1, be, err))) x[j] = tm.median_s;
    }
    if (!st) *out = dato_median(x, runs);
    free(x);
    return st;
}

dato_status dato_latency_calibrate(dato_latency_table* t, const dato_unet* u, const dato_scheduler_config* sched,
                                   const dato_latency_setup* setup, dato_error* err) {
    const dato_latency_setup* s = setup;
    if (!t || !u || !s || s->batch < 1 || s->height < 1 || s->width < 1 || s->seq < 1 || s->warmup < 0 ||
        s->runs < 1)
        return dato_fail(err, DATO_ERR_INVALID, "latency calibrate: batch, height, width, seq and runs must be >= 1, "
                         "warmup >= 0");
    dato_scheduler_config sd15;
    dato_scheduler_config_default(&sd15);
    if (!sched) sched = &sd15;
    dato_backend* be = u->be;
    const dato_unet_config* cfg = &u->cfg;
    memset(t, 0, sizeof *t);
    dato_latency_key_make(&t->key, u, be, s);
    t->n_branches = u->n_branches;

    int rows = s->guided ? 2 * s->batch : s->batch;
    int P = cfg->add_embed_in ? cfg->add_embed_in - 6 * cfg->addition_time_embed_dim : 0; // SDXL pooled width
    size_t latent = (size_t)cfg->in_channels * s->height * s->width;
    size_t ctx_n = (size_t)rows * s->seq * cfg->cross_attention_dim;
    size_t n = (size_t)s->batch * latent;
    unet_call uc = {.bytes = (size_t)rows * latent * sizeof(float)};
    overhead_call oc = {.guided = s->guided != 0, .n = n};
    dato_prune_config pc = dato_prune_config_default();
    double* samples = NULL;
    // Host: x, y (rows latents each), t, time ids, context staging; the overhead buffers.
    size_t host_n = 2 * (size_t)rows * latent + (size_t)rows * 7 + ctx_n + (size_t)rows * P + 6 * n;
    float* host = malloc(host_n * sizeof *host);
    dato_status st = host ? DATO_OK : dato_fail(err, DATO_ERR_NOMEM, "latency calibrate: out of memory");
    dato_denoiser_init(&uc.d, &dato_denoiser_unet, u, be);
    if (!st) st = dato_denoiser_begin(&uc.d, rows, s->guided ? s->batch : 0, s->height, s->width, s->seq, 1, &pc, err);
    if (!st) st = dato_sampler_create(&oc.s, sched, s->sampler, 50, n, err);
    if (st) goto done;

    dato_rng rng;
    dato_rng_seed(&rng, 12345);
    dato_rng_fill_normal(&rng, host, host_n);
    uc.x_host = host;
    uc.y_host = uc.x_host + (size_t)rows * latent;
    float* t_host = uc.y_host + (size_t)rows * latent;
    float* ids = t_host + rows;
    float* ctx_host = ids + (size_t)rows * 6;
    float* te_host = ctx_host + ctx_n;
    oc.x = te_host + (size_t)rows * P;
    oc.model_in = oc.x + n;
    oc.model_out = oc.model_in + n;
    oc.y = oc.model_out + n;
    oc.noise = oc.y + 2 * n;
    for (int i = 0; i < rows; i++) {
        t_host[i] = 500.0f;
        float id6[6] = {(float)(8 * s->height), (float)(8 * s->width), 0, 0, (float)(8 * s->height),
                        (float)(8 * s->width)};
        memcpy(ids + (size_t)i * 6, id6, sizeof id6);
    }
    dato_denoiser_condition(&uc.d, ctx_host, te_host, ids);
    be->ops->upload(be, uc.d.t.data, t_host, (size_t)rows * sizeof(float));
    // The runtime scores tokens from the two latest predictions: give it two fake ones, and the
    // workspace a valid feature cache (one full step writing it) before timing partial steps.
    dato_runtime_record(uc.d.rt, uc.x_host);
    dato_runtime_record(uc.d.rt, uc.y_host);
    uc.gene = (dato_gene){.depth = u->n_branches + 1};
    if ((st = time_unet_call(&uc, err))) goto done;

    // Round j times every entry once: an entry's samples are spread over the whole calibration,
    // so a burst of load from another process spoils one sample of many entries, not all of one.
    dato_timing tm = {0};
    int n_entries = (u->n_branches + 1) * DATO_LAT_N_RATIOS;
    samples = malloc((size_t)n_entries * s->runs * sizeof *samples); // (n_entries, runs)
    if (!samples) {
        st = dato_fail(err, DATO_ERR_NOMEM, "latency calibrate: cannot allocate the samples");
        goto done;
    }
    for (int j = 0; j < s->runs && !st; j++)
        for (int e = 0; e < n_entries && !st; e++) {
            uc.gene = (dato_gene){.depth = 1 + e / DATO_LAT_N_RATIOS, .ratio = dato_schedule_ratios[e % DATO_LAT_N_RATIOS]};
            st = dato_time_fn(&tm, time_unet_call, &uc, j == 0 ? s->warmup : 0, 1, be, err);
            samples[(size_t)e * s->runs + j] = tm.median_s;
        }
    if (st) goto done;
    for (int e = 0; e < n_entries; e++)
        t->call_s[1 + e / DATO_LAT_N_RATIOS][e % DATO_LAT_N_RATIOS] = dato_median(samples + (size_t)e * s->runs, s->runs);
    // Host-only work: many repetitions, it is short.
    dato_rng_seed(&oc.rng, 7);
    dato_rng_fill_normal(&oc.rng, oc.x, n);
    if ((st = dato_time_fn(&tm, time_overhead, &oc, 5, 20 * s->runs + 1, NULL, err))) goto done;
    t->call_overhead_s = tm.median_s;

    setup_call sc = {.d = &uc.d, .sched = sched, .setup = s, .rows = rows};
    double plain, cache, prune;
    int setup_runs = 2 * s->runs + 1;
    if ((st = time_setup(&plain, &sc, 0, NULL, setup_runs, be, err)) ||
        (st = time_setup(&cache, &sc, 1, NULL, setup_runs, be, err)) ||
        (st = time_setup(&prune, &sc, 0, &pc, setup_runs, be, err)))
        goto done;
    t->setup_s = plain;
    t->setup_cache_s = cache > plain ? cache - plain : 0.0;
    t->setup_prune_s = prune > plain ? prune - plain : 0.0;

done:
    free(samples);
    dato_sampler_destroy(oc.s);
    dato_denoiser_free(&uc.d);
    free(host);
    return st;
}

// ---- prediction --------------------------------------------------------------------------------------------

dato_status dato_latency_predict(const dato_latency_table* t, const dato_schedule* s, int steps,
                                 dato_sampler_kind kind, dato_latency_prediction* out, dato_error* err) {
    if (!t || !out || steps < 1 || (kind == DATO_SAMPLER_PNDM && steps < 2))
        return dato_fail(err, DATO_ERR_INVALID, "latency predict: steps %d (PLMS needs >= 2)", steps);
    if (s) DATO_TRY(dato_schedule_validate(s, steps, t->n_branches, err));
    memset(out, 0, sizeof *out);
    // Calls as dato_sampler_call_info numbers them: PLMS calls the model twice at step 0.
    out->n_calls = kind == DATO_SAMPLER_PNDM ? steps + 1 : steps;
    int full = t->n_branches + 1, cached = 0, prunes = 0;
    for (int call = 0; call < out->n_calls; call++) {
        int step = kind == DATO_SAMPLER_PNDM ? (call < 2 ? 0 : call - 1) : call;
        int depth = s ? s->genes[step].depth : full;
        int r = s ? dato_schedule_ratio_index(s->genes[step].ratio) : 0;
        if (r < 0)
            return dato_fail(err, DATO_ERR_INVALID, "latency predict: step %d: ratio %g has no table entry", step,
                             (double)s->genes[step].ratio);
        cached |= depth >= 1 && depth < full;
        prunes |= r > 0;
        out->unet_s += t->call_s[depth][r];
    }
    out->overhead_s = out->n_calls * t->call_overhead_s;
    out->setup_s = t->setup_s + (cached ? t->setup_cache_s : 0.0) + (prunes ? t->setup_prune_s : 0.0);
    out->total_s = out->unet_s + out->overhead_s + out->setup_s;
    return DATO_OK;
}

// ---- JSON ---------------------------------------------------------------------------------------------------

dato_status dato_latency_save(const dato_latency_table* t, const char* path, dato_error* err) {
    const dato_latency_key* k = &t->key;
    cJSON* root = cJSON_CreateObject();
    cJSON* key = cJSON_AddObjectToObject(root, "key");
    cJSON_AddStringToObject(root, "format", "dato-latency");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(key, "model", k->model);
    cJSON_AddStringToObject(key, "model_hash", k->model_hash);
    cJSON_AddStringToObject(key, "device", k->device);
    cJSON_AddNumberToObject(key, "threads", k->threads);
    cJSON_AddNumberToObject(key, "batch", k->batch);
    cJSON_AddNumberToObject(key, "guided", k->guided);
    cJSON_AddNumberToObject(key, "height", k->height);
    cJSON_AddNumberToObject(key, "width", k->width);
    cJSON_AddNumberToObject(key, "seq", k->seq);
    cJSON_AddStringToObject(key, "sampler", k->sampler);
    cJSON_AddNumberToObject(root, "n_branches", t->n_branches);
    cJSON_AddItemToObject(root, "ratios", cJSON_CreateFloatArray(dato_schedule_ratios, DATO_LAT_N_RATIOS));
    cJSON* calls = cJSON_AddArrayToObject(root, "call_s"); // [depth][ratio], depth 0..B+1
    for (int dpt = 0; dpt <= t->n_branches + 1; dpt++)
        cJSON_AddItemToArray(calls, cJSON_CreateDoubleArray(t->call_s[dpt], DATO_LAT_N_RATIOS));
    cJSON_AddNumberToObject(root, "call_overhead_s", t->call_overhead_s);
    cJSON_AddNumberToObject(root, "setup_s", t->setup_s);
    cJSON_AddNumberToObject(root, "setup_cache_s", t->setup_cache_s);
    cJSON_AddNumberToObject(root, "setup_prune_s", t->setup_prune_s);
    char* text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot format the latency table", path);
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(text);
        return dato_fail(err, DATO_ERR_INVALID, "%s: path too long", path);
    }
    FILE* f = fopen(tmp, "wb");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    ok = (f && fclose(f) == 0) && ok;
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return dato_fail(err, DATO_ERR_IO, "%s: cannot write the latency table (through %s): %s", path, tmp,
                         strerror(e ? e : EIO));
    }
    return DATO_OK;
}

static dato_status json_number(const cJSON* obj, const char* name, double* out, const char* path, dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: '%s' missing or not a number", path, name);
    *out = v->valuedouble;
    return DATO_OK;
}

// Every time in a table, in seconds: 1e6 (11 days a call) is far above any real entry, and a
// prediction summing 1000 steps of it stays finite (1e999 reads as infinity and was accepted).
#define LAT_MAX_TIME_S 1e6

static dato_status json_time(const cJSON* obj, const char* name, double* out, const char* path, dato_error* err) {
    DATO_TRY(json_number(obj, name, out, path, err));
    if (!(*out >= 0 && *out <= LAT_MAX_TIME_S))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: '%s' = %g is not a time in 0..%g s", path, name, *out,
                         LAT_MAX_TIME_S);
    return DATO_OK;
}

static dato_status json_int(const cJSON* obj, const char* name, int* out, const char* path, dato_error* err) {
    double v = 0;
    DATO_TRY(json_number(obj, name, &v, path, err));
    if (v != floor(v) || fabs(v) > 1e9) return dato_fail(err, DATO_ERR_FORMAT, "%s: '%s' is not an integer", path, name);
    *out = (int)v;
    return DATO_OK;
}

static dato_status json_string(const cJSON* obj, const char* name, char* out, size_t n, const char* path,
                               dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: '%s' missing, not a string or longer than %zu", path, name, n - 1);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return DATO_OK;
}

static dato_status parse_table(dato_latency_table* t, const cJSON* root, const char* path, dato_error* err) {
    const cJSON* fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "dato-latency") != 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: 'format' is not \"dato-latency\"", path);
    int version;
    DATO_TRY(json_int(root, "version", &version, path, err));
    if (version != 1) return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: 'version' %d (this build reads 1)", path, version);
    const cJSON* key = cJSON_GetObjectItemCaseSensitive(root, "key");
    if (!cJSON_IsObject(key)) return dato_fail(err, DATO_ERR_FORMAT, "%s: 'key' missing or not an object", path);
    dato_latency_key* k = &t->key;
    DATO_TRY(json_string(key, "model", k->model, sizeof k->model, path, err));
    DATO_TRY(json_string(key, "model_hash", k->model_hash, sizeof k->model_hash, path, err));
    DATO_TRY(json_string(key, "device", k->device, sizeof k->device, path, err));
    DATO_TRY(json_int(key, "threads", &k->threads, path, err));
    DATO_TRY(json_int(key, "batch", &k->batch, path, err));
    DATO_TRY(json_int(key, "guided", &k->guided, path, err));
    DATO_TRY(json_int(key, "height", &k->height, path, err));
    DATO_TRY(json_int(key, "width", &k->width, path, err));
    DATO_TRY(json_int(key, "seq", &k->seq, path, err));
    DATO_TRY(json_string(key, "sampler", k->sampler, sizeof k->sampler, path, err));
    DATO_TRY(json_int(root, "n_branches", &t->n_branches, path, err));
    if (t->n_branches < 1 || t->n_branches > DATO_UNET_MAX_LAYERS)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: 'n_branches' %d outside 1..%d", path, t->n_branches,
                         DATO_UNET_MAX_LAYERS);
    const cJSON* ratios = cJSON_GetObjectItemCaseSensitive(root, "ratios");
    if (!cJSON_IsArray(ratios) || cJSON_GetArraySize(ratios) != DATO_LAT_N_RATIOS)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: 'ratios' must list %d ratios", path, DATO_LAT_N_RATIOS);
    for (int r = 0; r < DATO_LAT_N_RATIOS; r++) {
        const cJSON* v = cJSON_GetArrayItem(ratios, r);
        if (!cJSON_IsNumber(v) || fabs(v->valuedouble - dato_schedule_ratios[r]) > 1e-4)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: 'ratios'[%d] is not %g", path, r, (double)dato_schedule_ratios[r]);
    }
    const cJSON* calls = cJSON_GetObjectItemCaseSensitive(root, "call_s");
    if (!cJSON_IsArray(calls) || cJSON_GetArraySize(calls) != t->n_branches + 2)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: 'call_s' must have n_branches + 2 = %d rows", path,
                         t->n_branches + 2);
    for (int dpt = 0; dpt <= t->n_branches + 1; dpt++) {
        const cJSON* row = cJSON_GetArrayItem(calls, dpt);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != DATO_LAT_N_RATIOS)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: 'call_s'[%d] must have %d entries", path, dpt,
                             DATO_LAT_N_RATIOS);
        for (int r = 0; r < DATO_LAT_N_RATIOS; r++) {
            const cJSON* v = cJSON_GetArrayItem(row, r);
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= LAT_MAX_TIME_S))
                return dato_fail(err, DATO_ERR_FORMAT, "%s: 'call_s'[%d][%d] is not a time in 0..%g s", path, dpt, r,
                                 LAT_MAX_TIME_S);
            t->call_s[dpt][r] = v->valuedouble;
        }
    }
    DATO_TRY(json_time(root, "call_overhead_s", &t->call_overhead_s, path, err));
    DATO_TRY(json_time(root, "setup_s", &t->setup_s, path, err));
    DATO_TRY(json_time(root, "setup_cache_s", &t->setup_cache_s, path, err));
    DATO_TRY(json_time(root, "setup_prune_s", &t->setup_prune_s, path, err));
    return DATO_OK;
}

dato_status dato_latency_load(dato_latency_table* t, const char* path, const dato_latency_key* run,
                              dato_error* err) {
    char* text = NULL;
    DATO_TRY(dato_read_text_file(path, &text, 1 << 20, err));
    cJSON* root = cJSON_Parse(text);
    free(text);
    if (!root) return dato_fail(err, DATO_ERR_FORMAT, "%s: not valid JSON", path);
    memset(t, 0, sizeof *t);
    dato_status st = parse_table(t, root, path, err);
    cJSON_Delete(root);
    if (!st && run) st = dato_latency_key_check(&t->key, run, path, err);
    return st;
}
