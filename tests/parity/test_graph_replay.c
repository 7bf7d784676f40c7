// Graph capture and replay, checked without a GPU. A recording backend wraps the CPU backend and
// implements backend.h's graph ops as CUDA does: between capture_begin and capture_end an op is
// recorded, not run (its tensors and scalars copied, its data read later); graph_launch runs the
// recorded ops on whatever the buffers hold at launch; upload_async records a copy that reads its
// pinned source at launch. Anything that waits for the device (upload, download, synchronize) or
// allocates during a capture is counted as a violation: on CUDA it breaks the capture.
//
// The device loop (tests/loop_compare.h's cases: every sampler, guidance on and off, a schedule
// that reuses, caches and prunes; tiny SD1.5 and SDXL) on this backend must give the CPU device
// loop's bits exactly, with graphs captured and launched (pruned steps too) and no violation. A
// forward that did host work a replay skips (a timestep taken at issue time, a base choice in the
// pruning hook) would show here as a difference.
#include "loop_compare.h"

typedef enum {
    R_CONV, R_LINEAR, R_GROUP_NORM, R_LAYER_NORM, R_UNARY, R_BINARY, R_ATTENTION, R_MAX_POOL, R_AVG_POOL,
    R_CHANNEL_BIAS, R_AXPBY, R_TSEMB, R_SIMILARITY, R_SELECT_KEEP, R_GATHER, R_SCATTER, R_COPY_BYTES
} rec_kind;

typedef dato_status (*unary_fn)(dato_backend*, dato_tensor*, const dato_tensor*, dato_error*);
typedef dato_status (*binary_fn)(dato_backend*, dato_tensor*, const dato_tensor*, const dato_tensor*, dato_error*);

// One recorded op: its tensors (t[k], absent when !has[k]), ints and floats, as the call passed them.
typedef struct {
    rec_kind kind;
    unary_fn unary;
    binary_fn binary;
    dato_tensor t[7];
    int has[7];
    int i[6];
    float f[3];
    void* dst; // R_COPY_BYTES: dst <- src over bytes, read at launch
    const void* src;
    size_t bytes;
} rec;

typedef struct {
    dato_backend* cpu;
    int capturing, begin; // recording since list[begin]
    rec* list;
    int n, cap;
    int captures, pruned_captures, launches, violations;
} recorder;

typedef struct {
    int begin, count;
} graph;

static recorder* rec_of(dato_backend* be) { return be->impl; }
static const dato_backend_ops* cpu_ops(dato_backend* be) { return rec_of(be)->cpu->ops; }

// A new record of kind at the end of the list (grown by doubling; NULL when out of memory).
static rec* push(recorder* r, rec_kind kind) {
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 4096;
        rec* grown = realloc(r->list, (size_t)cap * sizeof *grown);
        if (!grown) return NULL;
        r->list = grown, r->cap = cap;
    }
    rec* e = &r->list[r->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    return e;
}

static void keep(rec* e, int k, const dato_tensor* t) {
    e->has[k] = t != NULL;
    if (t) e->t[k] = *t;
}

static dato_tensor* arg(rec* e, int k) { return e->has[k] ? &e->t[k] : NULL; }

// Runs record e on the CPU backend.
static dato_status run(dato_backend* cpu, rec* e, dato_error* err) {
    const dato_backend_ops* o = cpu->ops;
    switch (e->kind) {
    case R_CONV: return o->conv2d(cpu, arg(e, 0), arg(e, 1), arg(e, 2), arg(e, 3), e->i[0], e->i[1], e->i[2], e->i[3], err);
    case R_LINEAR: return o->linear(cpu, arg(e, 0), arg(e, 1), arg(e, 2), arg(e, 3), err);
    case R_GROUP_NORM:
        return o->group_norm(cpu, arg(e, 0), arg(e, 1), arg(e, 2), arg(e, 3), e->i[0], e->f[0], e->i[1], err);
    case R_LAYER_NORM: return o->layer_norm(cpu, arg(e, 0), arg(e, 1), arg(e, 2), arg(e, 3), e->f[0], err);
    case R_UNARY: return e->unary(cpu, arg(e, 0), arg(e, 1), err);
    case R_BINARY: return e->binary(cpu, arg(e, 0), arg(e, 1), arg(e, 2), err);
    case R_ATTENTION: return o->attention(cpu, arg(e, 0), arg(e, 1), arg(e, 2), arg(e, 3), e->i[0], e->f[0], e->i[1], err);
    case R_MAX_POOL: return o->max_pool2d(cpu, arg(e, 0), arg(e, 1), e->i[0], e->i[1], e->i[2], err);
    case R_AVG_POOL: return o->avg_pool2d(cpu, arg(e, 0), arg(e, 1), e->i[0], e->i[1], e->i[2], e->i[3], err);
    case R_CHANNEL_BIAS: return o->add_channel_bias(cpu, arg(e, 0), arg(e, 1), err);
    case R_AXPBY: return o->axpby(cpu, arg(e, 0), e->f[0], arg(e, 1), e->f[1], arg(e, 2), err);
    case R_TSEMB: return o->timestep_embedding(cpu, arg(e, 0), arg(e, 1), e->i[0], e->f[0], e->f[1], err);
    case R_SIMILARITY: return o->dato_similarity(cpu, arg(e, 0), arg(e, 1), arg(e, 2), arg(e, 3), arg(e, 4), arg(e, 5), err);
    case R_SELECT_KEEP: return o->dato_select_keep(cpu, arg(e, 0), arg(e, 1), arg(e, 2), e->i[0], e->i[1], err);
    case R_GATHER: return o->dato_gather_kept(cpu, arg(e, 0), arg(e, 1), arg(e, 2), arg(e, 3), err);
    case R_SCATTER: return o->dato_scatter_recover(cpu, arg(e, 0), arg(e, 1), arg(e, 2), arg(e, 3), err);
    case R_COPY_BYTES: memcpy(e->dst, e->src, e->bytes); return DATO_OK;
    }
    return dato_fail(err, DATO_ERR_INVALID, "replay: unknown record %d", (int)e->kind);
}

// Runs e now, or keeps it for the graph being captured.
static dato_status issue(dato_backend* be, rec* e, dato_error* err) {
    recorder* r = rec_of(be);
    if (!e) return dato_fail(err, DATO_ERR_NOMEM, "replay: out of memory for a record");
    if (r->capturing) return DATO_OK;
    dato_status st = run(r->cpu, e, err);
    r->n--; // not captured: the record was only the call's arguments
    return st;
}

// ---- the wrapped ops -------------------------------------------------------------------------------

static void* w_alloc(dato_backend* be, size_t bytes) {
    rec_of(be)->violations += rec_of(be)->capturing;
    return cpu_ops(be)->alloc(rec_of(be)->cpu, bytes);
}
static void w_free(dato_backend* be, void* p) { cpu_ops(be)->free(rec_of(be)->cpu, p); }
static void w_copy_now(dato_backend* be, void* dst, const void* src, size_t bytes) {
    rec_of(be)->violations += rec_of(be)->capturing; // upload and download wait for the device
    memcpy(dst, src, bytes);
}
static void w_synchronize(dato_backend* be) { rec_of(be)->violations += rec_of(be)->capturing; }
static void w_upload_async(dato_backend* be, void* dst, const void* src, size_t bytes) {
    rec* e = push(rec_of(be), R_COPY_BYTES);
    if (e) e->dst = dst, e->src = src, e->bytes = bytes;
    dato_error err;
    if (issue(be, e, &err)) rec_of(be)->violations++; // out of memory: make the test fail
}

static dato_status w_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                            const dato_tensor* b, int sh, int sw, int ph, int pw, dato_error* err) {
    rec* e = push(rec_of(be), R_CONV);
    if (e) keep(e, 0, out), keep(e, 1, x), keep(e, 2, w), keep(e, 3, b), e->i[0] = sh, e->i[1] = sw, e->i[2] = ph,
        e->i[3] = pw;
    return issue(be, e, err);
}
static dato_status w_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                            const dato_tensor* b, dato_error* err) {
    rec* e = push(rec_of(be), R_LINEAR);
    if (e) keep(e, 0, out), keep(e, 1, x), keep(e, 2, w), keep(e, 3, b);
    return issue(be, e, err);
}
static dato_status w_group_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* g,
                                const dato_tensor* b, int groups, float eps, int silu, dato_error* err) {
    rec* e = push(rec_of(be), R_GROUP_NORM);
    if (e) keep(e, 0, out), keep(e, 1, x), keep(e, 2, g), keep(e, 3, b), e->i[0] = groups, e->f[0] = eps, e->i[1] = silu;
    return issue(be, e, err);
}
static dato_status w_layer_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* g,
                                const dato_tensor* b, float eps, dato_error* err) {
    rec* e = push(rec_of(be), R_LAYER_NORM);
    if (e) keep(e, 0, out), keep(e, 1, x), keep(e, 2, g), keep(e, 3, b), e->f[0] = eps;
    return issue(be, e, err);
}
static dato_status unary(dato_backend* be, unary_fn fn, dato_tensor* out, const dato_tensor* x, dato_error* err) {
    rec* e = push(rec_of(be), R_UNARY);
    if (e) e->unary = fn, keep(e, 0, out), keep(e, 1, x);
    return issue(be, e, err);
}
static dato_status binary(dato_backend* be, binary_fn fn, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                          dato_error* err) {
    rec* e = push(rec_of(be), R_BINARY);
    if (e) e->binary = fn, keep(e, 0, out), keep(e, 1, a), keep(e, 2, b);
    return issue(be, e, err);
}
#define WRAP_UNARY(op) \
    static dato_status w_##op(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err) { \
        return unary(be, cpu_ops(be)->op, out, x, err); \
    }
#define WRAP_BINARY(op) \
    static dato_status w_##op(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b, \
                              dato_error* err) { \
        return binary(be, cpu_ops(be)->op, out, a, b, err); \
    }
WRAP_UNARY(silu)
WRAP_UNARY(gelu)
WRAP_UNARY(quick_gelu)
WRAP_UNARY(geglu)
WRAP_UNARY(softmax)
WRAP_UNARY(relu)
WRAP_UNARY(upsample_nearest2x)
WRAP_UNARY(mean_hw)
WRAP_UNARY(nchw_to_tokens)
WRAP_UNARY(tokens_to_nchw)
WRAP_UNARY(copy)
WRAP_BINARY(concat_channels)
WRAP_BINARY(add)

static dato_status w_attention(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                               const dato_tensor* v, int heads, float scale, int causal, dato_error* err) {
    rec* e = push(rec_of(be), R_ATTENTION);
    if (e) keep(e, 0, out), keep(e, 1, q), keep(e, 2, k), keep(e, 3, v), e->i[0] = heads, e->f[0] = scale,
        e->i[1] = causal;
    return issue(be, e, err);
}
static dato_status w_max_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                                dato_error* err) {
    rec* e = push(rec_of(be), R_MAX_POOL);
    if (e) keep(e, 0, out), keep(e, 1, x), e->i[0] = k, e->i[1] = stride, e->i[2] = pad;
    return issue(be, e, err);
}
static dato_status w_avg_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                                int include_pad, dato_error* err) {
    rec* e = push(rec_of(be), R_AVG_POOL);
    if (e) keep(e, 0, out), keep(e, 1, x), e->i[0] = k, e->i[1] = stride, e->i[2] = pad, e->i[3] = include_pad;
    return issue(be, e, err);
}
static dato_status w_add_channel_bias(dato_backend* be, dato_tensor* x, const dato_tensor* v, dato_error* err) {
    rec* e = push(rec_of(be), R_CHANNEL_BIAS);
    if (e) keep(e, 0, x), keep(e, 1, v);
    return issue(be, e, err);
}
static dato_status w_axpby(dato_backend* be, dato_tensor* out, float alpha, const dato_tensor* a, float beta,
                           const dato_tensor* b, dato_error* err) {
    rec* e = push(rec_of(be), R_AXPBY);
    if (e) keep(e, 0, out), keep(e, 1, a), keep(e, 2, b), e->f[0] = alpha, e->f[1] = beta;
    return issue(be, e, err);
}
static dato_status w_timestep_embedding(dato_backend* be, dato_tensor* out, const dato_tensor* t, int flip,
                                        float shift, float max_period, dato_error* err) {
    rec* e = push(rec_of(be), R_TSEMB);
    if (e) keep(e, 0, out), keep(e, 1, t), e->i[0] = flip, e->f[0] = shift, e->f[1] = max_period;
    return issue(be, e, err);
}
static dato_status w_dato_similarity(dato_backend* be, dato_tensor* sim, dato_tensor* assign, dato_tensor* is_base,
                                     const dato_tensor* x, const dato_tensor* base, dato_tensor* work, dato_error* err) {
    rec* e = push(rec_of(be), R_SIMILARITY);
    if (e) keep(e, 0, sim), keep(e, 1, assign), keep(e, 2, is_base), keep(e, 3, x), keep(e, 4, base), keep(e, 5, work);
    return issue(be, e, err);
}
static dato_status w_dato_select_keep(dato_backend* be, dato_tensor* keep_mask, const dato_tensor* sim,
                                      const dato_tensor* is_base, int P, int n, dato_error* err) {
    rec* e = push(rec_of(be), R_SELECT_KEEP);
    if (e) keep(e, 0, keep_mask), keep(e, 1, sim), keep(e, 2, is_base), e->i[0] = P, e->i[1] = n;
    return issue(be, e, err);
}
static dato_status w_dato_gather_kept(dato_backend* be, dato_tensor* pos, dato_tensor* x_kept, const dato_tensor* x,
                                      const dato_tensor* keep_mask, dato_error* err) {
    rec* e = push(rec_of(be), R_GATHER);
    if (e) keep(e, 0, pos), keep(e, 1, x_kept), keep(e, 2, x), keep(e, 3, keep_mask);
    return issue(be, e, err);
}
static dato_status w_dato_scatter_recover(dato_backend* be, dato_tensor* out, const dato_tensor* o_kept,
                                          const dato_tensor* pos, const dato_tensor* assign, dato_error* err) {
    rec* e = push(rec_of(be), R_SCATTER);
    if (e) keep(e, 0, out), keep(e, 1, o_kept), keep(e, 2, pos), keep(e, 3, assign);
    return issue(be, e, err);
}

// ---- the graph ops ------------------------------------------------------------------------------------

static dato_status w_capture_begin(dato_backend* be, dato_error* err) {
    recorder* r = rec_of(be);
    if (r->capturing) return dato_fail(err, DATO_ERR_INVALID, "replay: capture_begin inside a capture");
    r->capturing = 1;
    r->begin = r->n;
    return DATO_OK;
}
static dato_status w_capture_end(dato_backend* be, void** out, dato_error* err) {
    recorder* r = rec_of(be);
    *out = NULL;
    if (!r->capturing) return dato_fail(err, DATO_ERR_INVALID, "replay: capture_end without capture_begin");
    r->capturing = 0;
    graph* g = malloc(sizeof *g);
    if (!g) return dato_fail(err, DATO_ERR_NOMEM, "replay: out of memory for a graph");
    *g = (graph){.begin = r->begin, .count = r->n - r->begin};
    r->captures++;
    for (int k = g->begin; k < r->n; k++)
        if (r->list[k].kind == R_SIMILARITY) {
            r->pruned_captures++;
            break;
        }
    *out = g;
    return DATO_OK;
}
static dato_status w_graph_launch(dato_backend* be, void* vg, dato_error* err) {
    recorder* r = rec_of(be);
    const graph* g = vg;
    r->launches++;
    for (int k = 0; k < g->count; k++) DATO_TRY(run(r->cpu, &r->list[g->begin + k], err));
    return DATO_OK;
}
static void w_graph_free(dato_backend* be, void* g) {
    (void)be;
    free(g); // its records stay in the list until the recorder goes
}

static const dato_backend_ops recording_ops = {
    .alloc = w_alloc, .free = w_free, .upload = w_copy_now, .download = w_copy_now, .synchronize = w_synchronize,
    .alloc_host = w_alloc, .free_host = w_free, .upload_async = w_upload_async,
    .conv2d = w_conv2d, .linear = w_linear, .group_norm = w_group_norm, .layer_norm = w_layer_norm,
    .silu = w_silu, .gelu = w_gelu, .quick_gelu = w_quick_gelu, .geglu = w_geglu, .softmax = w_softmax,
    .relu = w_relu, .attention = w_attention, .upsample_nearest2x = w_upsample_nearest2x,
    .max_pool2d = w_max_pool2d, .avg_pool2d = w_avg_pool2d, .mean_hw = w_mean_hw,
    .concat_channels = w_concat_channels, .nchw_to_tokens = w_nchw_to_tokens, .tokens_to_nchw = w_tokens_to_nchw,
    .add = w_add, .add_channel_bias = w_add_channel_bias, .axpby = w_axpby, .copy = w_copy,
    .timestep_embedding = w_timestep_embedding, .dato_similarity = w_dato_similarity,
    .dato_select_keep = w_dato_select_keep, .dato_gather_kept = w_dato_gather_kept,
    .dato_scatter_recover = w_dato_scatter_recover,
    .capture_begin = w_capture_begin, .capture_end = w_capture_end, .graph_launch = w_graph_launch,
    .graph_free = w_graph_free,
};

int main(void) {
    dato_backend cpu;
    dato_error err;
    if (dato_backend_cpu_init(&cpu, 1, &err)) { // one thread: many short loops
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    recorder r = {.cpu = &cpu};
    dato_backend recording = {.name = "recording", .device = DATO_DEV_CPU, .ops = &recording_ops, .impl = &r};
    loop_side direct = {&cpu, DATO_LOOP_DEVICE, "cpu device"}, replayed = {&recording, DATO_LOOP_DEVICE, "graphs"};
    loop_compare_model(&direct, &replayed, "sd15", 0.0);
    loop_compare_model(&direct, &replayed, "sdxl", 0.0);
    printf("graphs: %d captured (%d of pruned steps), %d launches; %d waits or allocations inside a capture\n",
           r.captures, r.pruned_captures, r.launches, r.violations);
    // 2 models x 20 runs: each captures its full step, a mixed-schedule run its third full step at ratio 0.5 too
    CHECK(r.captures >= 60 && r.launches > r.captures, "graphs: %d captured, %d launched", r.captures, r.launches);
    CHECK(r.pruned_captures >= 20, "graphs: only %d pruned steps captured", r.pruned_captures);
    CHECK(r.violations == 0, "%d waits or allocations inside a capture", r.violations);
    free(r.list);
    dato_backend_destroy(&cpu);
    return test_summary();
}
