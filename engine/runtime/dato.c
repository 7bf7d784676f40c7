#include "dato.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

struct dato_runtime {
    dato_backend* be;
    dato_prune_config cfg;
    int batch, cfg_half, h, w, c; // UNet rows, CFG twins, latent size and channels
    int cap_batch;                // the rows every buffer is sized for (batch <= cap_batch)
    int step;
    float ratio;
    int last_p;                   // patches of the last block that pruned
    int clamped;                  // blocks whose ratio asked more than their non-base tokens
    char warning[200];            // the first of them, said for the caller to print ("" if none)
    dato_rng rng;                 // random base choice and noise, reseeded per step
    // Dynamics: the two latest raw predictions and the scores of the current step.
    float* pred[2];               // (batch, c, h, w): [0] the newest
    int n_recorded;
    float* score;                 // (batch, h * w)
    int have_score;
    // Sized for the largest prunable block (N tokens, C channels, P patches).
    int max_n, max_c, max_p;
    float* pooled;                // (N) host: one row's scores at the block's resolution
    // Base indices of every pruned block of a step, each in its own slot so that the stream-ordered
    // upload of one block still finds its source while the host fills the next (no wait in a step).
    int max_sites, site;          // slots; the next free one (reset by prepare)
    int32_t* base_host;           // (max_sites, batch, max_p) alloc_host memory
    // The pruned blocks of a step at each depth, in forward order, recorded by the first pruning
    // step of that depth. Later steps choose every block's base tokens in prepare, before the
    // forward, the same draws in the same order: the forward then does no host work a replayed
    // graph would skip (plan.replayable).
    int depth;                    // this step's plan depth
    int precomputed;              // prepare filled this step's slots
    int8_t* site_state;           // (DATO_NET_MAX_DEPTH_UNITS + 2) by depth: 0 unseen, 1 recording, 2 known
    int* n_sites;                 // (DATO_NET_MAX_DEPTH_UNITS + 2) pruned blocks recorded per depth
    int* site_hw;                 // (DATO_NET_MAX_DEPTH_UNITS + 2, max_sites, 2) their H, W
    int32_t* base;                // (batch, P) the last pruned block's slot: what dato_runtime_base returns
    // Backend memory (be->ops->alloc), one block carved by carve_device.
    void* dev;
    int32_t* base_dev;            // (batch, P) the base indices, uploaded per pruned block
    uint8_t* is_base;             // (batch, N)
    float* sim;                   // (batch, N) similarity to the closest base token
    int32_t* assign;              // (batch, N) that base token
    uint8_t* keep;                // (batch, N) 0: pruned
    int32_t* pos;                 // (batch, N) row of a token among the kept ones, -1 if pruned
    float* work;                  // (work_floats) dato_similarity's scratch
    size_t work_floats;           // batch N C + P (N + C)
    float* x_kept;                // (batch, N', C)
    float* o_kept;                // (batch, N', C)
};

dato_prune_config dato_prune_config_default(void) {
    return (dato_prune_config){.max_level = -1, .patch = 2, .alpha = 0.0f, .seed = 0};
}

int dato_default_max_level(const dato_site_layout* sites) {
    for (int l = 0; l < sites->n_levels; l++)
        if (sites->sites[l]) return l;
    return sites->n_levels - 1;
}

// ---- reference pieces ------------------------------------------------------------------------------

void dato_diffscore(const float* a, const float* b, int B, int C, int HW, float* d) {
    for (int n = 0; n < B; n++)
        for (int p = 0; p < HW; p++) {
            double acc = 0;
            for (int c = 0; c < C; c++) {
                size_t i = ((size_t)n * C + c) * HW + p;
                acc += fabs((double)a[i] - (double)b[i]);
            }
            d[(size_t)n * HW + p] = (float)(acc / C);
        }
}

void dato_pool_scores(const float* d, int B, int H, int W, int k, float* out) {
    int Ho = H / k, Wo = W / k;
    for (int n = 0; n < B; n++)
        for (int y = 0; y < Ho; y++)
            for (int x = 0; x < Wo; x++) {
                double acc = 0;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++) acc += d[((size_t)n * H + y * k + dy) * W + x * k + dx];
                out[((size_t)n * Ho + y) * Wo + x] = (float)(acc / (k * k));
            }
}

void dato_choose_base(const float* score, int H, int W, int s, int32_t* base) {
    int p = 0;
    for (int py = 0; py < H; py += s)
        for (int px = 0; px < W; px += s) {
            int best = py * W + px; // scanning rows top down, columns left to right: ascending index
            for (int y = py; y < py + s && y < H; y++)
                for (int x = px; x < px + s && x < W; x++)
                    if (score[y * W + x] > score[best]) best = y * W + x;
            base[p++] = best;
        }
}

static int by_sim_desc(const void* a, const void* b) {
    const dato_scored *x = a, *y = b;
    if (x->sim != y->sim) return x->sim > y->sim ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

int dato_select_pruned(const float* sim, const uint8_t* is_base, int N, int P, int n, int32_t* pruned,
                       dato_scored* scratch) {
    if (n > N - P) n = N - P;
    if (n <= 0) return 0;
    int m = 0;
    for (int i = 0; i < N; i++)
        if (!is_base[i]) scratch[m++] = (dato_scored){.sim = sim[i], .index = i};
    qsort(scratch, (size_t)m, sizeof *scratch, by_sim_desc);
    for (int k = 0; k < n; k++) pruned[k] = scratch[k].index;
    return n;
}

// ---- the runtime -----------------------------------------------------------------------------------

// Carves the backend buffers from a, sized for the largest prunable block (a measuring arena only counts them).
static void carve_device(dato_runtime* rt, dato_arena* a) {
    size_t N = (size_t)rt->max_n, C = (size_t)rt->max_c, P = (size_t)rt->max_p, B = (size_t)rt->batch;
    rt->base_dev = dato_arena_alloc(a, dato_arena_bytes(DATO_I32, B * P));
    rt->is_base = dato_arena_alloc(a, dato_arena_bytes(DATO_U8, B * N));
    rt->sim = dato_arena_alloc(a, dato_arena_bytes(DATO_F32, B * N));
    rt->assign = dato_arena_alloc(a, dato_arena_bytes(DATO_I32, B * N));
    rt->keep = dato_arena_alloc(a, dato_arena_bytes(DATO_U8, B * N));
    rt->pos = dato_arena_alloc(a, dato_arena_bytes(DATO_I32, B * N));
    rt->work = dato_arena_alloc(a, dato_arena_bytes(DATO_F32, rt->work_floats));
    rt->x_kept = dato_arena_alloc(a, dato_arena_bytes(DATO_F32, B * N * C));
    rt->o_kept = dato_arena_alloc(a, dato_arena_bytes(DATO_F32, B * N * C));
}

dato_status dato_runtime_create(dato_runtime** out, const dato_site_layout* sites, dato_backend* be, int batch,
                                int cfg_half, int h, int w, const dato_prune_config* cfg, dato_error* err) {
    *out = NULL;
    const dato_backend_ops* op = be->ops;
    if (!op->dato_similarity || !op->dato_select_keep || !op->dato_gather_kept || !op->dato_scatter_recover)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "dato runtime: the %s backend has no DaTo pruning ops", be->name);
    dato_prune_config c = cfg ? *cfg : dato_prune_config_default();
    if (c.max_level < 0) c.max_level = dato_default_max_level(sites);
    if (c.patch < 1 || batch < 1 || h < 1 || w < 1 || (cfg_half && 2 * cfg_half != batch) || sites->n_levels < 1 ||
        sites->n_levels > DATO_NET_MAX_LEVELS)
        return dato_fail(err, DATO_ERR_INVALID, "dato runtime: bad patch %d, batch %d, cfg half %d, size %dx%d or "
                         "%d site levels (1..%d)", c.patch, batch, cfg_half, h, w, sites->n_levels, DATO_NET_MAX_LEVELS);
    dato_runtime* rt = calloc(1, sizeof *rt);
    if (!rt) return dato_fail(err, DATO_ERR_NOMEM, "dato runtime: out of memory");
    *rt = (dato_runtime){.be = be, .cfg = c, .batch = batch, .cap_batch = batch, .cfg_half = cfg_half, .h = h,
                         .w = w, .c = sites->out_channels};
    // The largest prunable block (tokens, channels, patches) and every site a step can prune, at the
    // levels <= max_level.
    for (int l = 0; l <= c.max_level && l < sites->n_levels; l++) {
        if (!sites->sites[l]) continue;
        int H = h >> l, W = w >> l, N = H * W, P = ((H + c.patch - 1) / c.patch) * ((W + c.patch - 1) / c.patch);
        rt->max_n = N > rt->max_n ? N : rt->max_n;
        rt->max_p = P > rt->max_p ? P : rt->max_p;
        rt->max_c = sites->channels[l] > rt->max_c ? sites->channels[l] : rt->max_c;
        rt->max_sites += sites->sites[l];
    }
    rt->max_sites = rt->max_sites > 0 ? rt->max_sites : 1;
    size_t N = (size_t)rt->max_n, C = (size_t)rt->max_c, P = (size_t)rt->max_p, B = (size_t)batch;
    size_t lat = B * rt->c * h * w;
    rt->pred[0] = malloc(lat * sizeof(float));
    rt->pred[1] = malloc(lat * sizeof(float));
    rt->score = malloc(B * h * w * sizeof(float));
    rt->pooled = malloc((N + 1) * sizeof(float));
    rt->base_host = rt->be->ops->alloc_host(rt->be, (size_t)rt->max_sites * B * P * sizeof(int32_t) + 64);
    rt->base = rt->base_host;
    rt->site_state = calloc(DATO_NET_MAX_DEPTH_UNITS + 2, 1);
    rt->n_sites = calloc(DATO_NET_MAX_DEPTH_UNITS + 2, sizeof(int));
    rt->site_hw = calloc((size_t)(DATO_NET_MAX_DEPTH_UNITS + 2) * rt->max_sites * 2, sizeof(int));
    rt->work_floats = B * N * C + P * (N + C);
    dato_arena measure = dato_arena_measure();
    carve_device(rt, &measure);
    rt->dev = rt->be->ops->alloc(rt->be, measure.peak);
    if (rt->dev) {
        dato_arena a = dato_arena_over(rt->dev, measure.peak);
        carve_device(rt, &a);
    }
    if (!rt->pred[0] || !rt->pred[1] || !rt->score || !rt->pooled || !rt->base_host || !rt->dev ||
        !rt->site_state || !rt->n_sites || !rt->site_hw) {
        dato_runtime_destroy(rt);
        return dato_fail(err, DATO_ERR_NOMEM, "dato runtime: cannot allocate its buffers (%zu bytes on the %s backend)",
                         measure.peak, be->name);
    }
    *out = rt;
    return DATO_OK;
}

void dato_runtime_destroy(dato_runtime* rt) {
    if (!rt) return;
    void* bufs[] = {rt->pred[0], rt->pred[1], rt->score, rt->pooled, rt->site_state, rt->n_sites, rt->site_hw};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    if (rt->base_host) rt->be->ops->free_host(rt->be, rt->base_host);
    if (rt->dev) rt->be->ops->free(rt->be, rt->dev);
    free(rt);
}

dato_status dato_runtime_reset(dato_runtime* rt, int batch, int cfg_half, uint64_t seed, dato_error* err) {
    if (batch < 1 || batch > rt->cap_batch || (cfg_half && 2 * cfg_half != batch))
        return dato_fail(err, DATO_ERR_INVALID, "dato runtime: reset to %d rows (cfg half %d); made for 1..%d rows",
                         batch, cfg_half, rt->cap_batch);
    // Rows are independent and every buffer is laid out row-major for the current batch, so a call
    // of fewer rows runs in the first rows, as a runtime made for them would.
    rt->batch = batch, rt->cfg_half = cfg_half, rt->cfg.seed = seed;
    rt->n_recorded = 0;
    rt->have_score = 0;
    rt->clamped = 0;
    rt->warning[0] = '\0';
    return DATO_OK;
}

int dato_runtime_clamped(const dato_runtime* rt) { return rt->clamped; }

const char* dato_runtime_warning(const dato_runtime* rt) { return rt->warning; }

const int32_t* dato_runtime_base(const dato_runtime* rt, int row, int* P) {
    *P = rt->last_p;
    return rt->base + (size_t)row * rt->last_p;
}

void dato_runtime_record(dato_runtime* rt, const float* raw) {
    float* t = rt->pred[1]; // the older slot becomes the newest
    rt->pred[1] = rt->pred[0];
    rt->pred[0] = t;
    memcpy(rt->pred[0], raw, (size_t)rt->batch * rt->c * rt->h * rt->w * sizeof(float));
    rt->n_recorded++;
}

// base (B, P) = the base tokens of every row for a pruned block of H x W tokens, one per s x s
// patch: the argmax of the pooled dynamics, or seeded random before there are two predictions;
// the uncond rows take their cond twin's. Draws from rt->rng (alpha noise, random choice).
static void choose_bases(dato_runtime* rt, int H, int W, int32_t* base_all) {
    int B = rt->batch, N = H * W, s = rt->cfg.patch, stride = rt->h / H;
    int P = ((H + s - 1) / s) * ((W + s - 1) / s);
    for (int b = 0; b < B; b++) {
        int32_t* base = base_all + (size_t)b * P;
        if (rt->cfg_half && b < rt->cfg_half) continue; // aligned below
        if (rt->have_score) {
            dato_pool_scores(rt->score + (size_t)b * rt->h * rt->w, 1, rt->h, rt->w, stride, rt->pooled);
            if (rt->cfg.alpha != 0.0f)
                for (int i = 0; i < N; i++) rt->pooled[i] += rt->cfg.alpha * (float)dato_rng_normal(&rt->rng);
            dato_choose_base(rt->pooled, H, W, s, base);
        } else {
            int p = 0;
            for (int py = 0; py < H; py += s)
                for (int px = 0; px < W; px += s) {
                    int ph = py + s <= H ? s : H - py, pw = px + s <= W ? s : W - px;
                    int k = (int)dato_rng_below(&rt->rng, (uint64_t)(ph * pw));
                    base[p++] = (py + k / pw) * W + px + k % pw;
                }
        }
    }
    for (int b = 0; rt->cfg_half && b < rt->cfg_half; b++)
        memcpy(base_all + (size_t)b * P, base_all + (size_t)(b + rt->cfg_half) * P, (size_t)P * sizeof(int32_t));
}

// out (B, N, C) = self-attention of x (B, N, C) over its kept tokens, pruned ones recovered.
static dato_status prune_self_attention(void* ctx, const dato_attn_site* site, dato_tensor* out,
                                        const dato_tensor* x, dato_arena* arena, dato_error* err) {
    dato_runtime* rt = ctx;
    if (site->level > rt->cfg.max_level || rt->ratio <= 0.0f)
        return site->attend(site, rt->be, out, x, arena, err);
    int B = (int)x->shape[0], N = (int)x->shape[1], C = (int)x->shape[2], H = site->h, W = site->w, s = rt->cfg.patch;
    int P = ((H + s - 1) / s) * ((W + s - 1) / s);
    if (B != rt->batch || N > rt->max_n || C > rt->max_c || P > rt->max_p)
        return dato_fail(err, DATO_ERR_INVALID, "dato runtime: %s block %d (%d x %d x %d) outside the planned sizes",
                         site->layer, site->block, B, N, C);
    int n = (int)floorf(rt->ratio * (float)N + 1e-4f);
    if (n > N - P) {
        if (!rt->clamped++)
            snprintf(rt->warning, sizeof rt->warning, "ratio %.2f prunes more than the %d non-base tokens of %s; "
                     "clamped", (double)rt->ratio, N - P, site->layer);
        n = N - P;
    }
    int Nk = N - n;
    if (rt->site >= rt->max_sites)
        return dato_fail(err, DATO_ERR_INVALID, "dato runtime: %s block %d is pruned block %d of this step; %d planned",
                         site->layer, site->block, rt->site + 1, rt->max_sites);
    rt->last_p = P;

    // 1. Base tokens per row (chosen by prepare when this depth's blocks are known).
    int32_t* slot = rt->base_host + (size_t)rt->site * rt->batch * rt->max_p; // (B, P)
    int* hw = rt->site_hw + ((size_t)rt->depth * rt->max_sites + rt->site) * 2;
    if (rt->precomputed) {
        if (rt->site >= rt->n_sites[rt->depth] || hw[0] != H || hw[1] != W)
            return dato_fail(err, DATO_ERR_INVALID, "dato runtime: %s block %d (%d x %d) is not the pruned block %d "
                             "recorded at depth %d", site->layer, site->block, H, W, rt->site + 1, rt->depth);
    } else {
        choose_bases(rt, H, W, slot);
        hw[0] = H, hw[1] = W;
        rt->n_sites[rt->depth] = rt->site + 1;
    }
    rt->base = slot;
    rt->site++;

    // 2. On the backend: similarity of every token to its row's base tokens (cosine on the
    //    normalized block input), the most redundant non-base tokens pruned, the kept ones
    //    gathered; 3. attention over the kept tokens; 4. every pruned token takes its base token's output.
    dato_backend* be = rt->be;
    const dato_backend_ops* op = be->ops;
    dato_device dev = be->device;
    int64_t rows[2] = {B, N};
    op->upload_async(be, rt->base_dev, rt->base, (size_t)B * P * sizeof(int32_t));
    dato_tensor base = dato_tensor_make(rt->base_dev, DATO_I32, dev, 2, (int64_t[]){B, P}); // (B, P)
    dato_tensor is_base = dato_tensor_make(rt->is_base, DATO_U8, dev, 2, rows);            // (B, N)
    dato_tensor sim = dato_tensor_make(rt->sim, DATO_F32, dev, 2, rows);                   // (B, N)
    dato_tensor assign = dato_tensor_make(rt->assign, DATO_I32, dev, 2, rows);             // (B, N)
    dato_tensor keep = dato_tensor_make(rt->keep, DATO_U8, dev, 2, rows);                  // (B, N)
    dato_tensor pos = dato_tensor_make(rt->pos, DATO_I32, dev, 2, rows);                   // (B, N)
    dato_tensor work = dato_tensor_make(rt->work, DATO_F32, dev, 1, (int64_t[]){(int64_t)rt->work_floats});
    int64_t sk[3] = {B, Nk, C};
    dato_tensor xk = dato_tensor_make(rt->x_kept, DATO_F32, dev, 3, sk); // (B, Nk, C)
    dato_tensor ok = dato_tensor_make(rt->o_kept, DATO_F32, dev, 3, sk); // (B, Nk, C)
    DATO_TRY(op->dato_similarity(be, &sim, &assign, &is_base, x, &base, &work, err));
    DATO_TRY(op->dato_select_keep(be, &keep, &sim, &is_base, P, n, err));
    DATO_TRY(op->dato_gather_kept(be, &pos, &xk, x, &keep, err));
    DATO_TRY(site->attend(site, be, &ok, &xk, arena, err));
    return op->dato_scatter_recover(be, out, &ok, &pos, &assign, err);
}

dato_status dato_runtime_prepare(dato_runtime* rt, int step, float ratio, dato_net_plan* plan, dato_error* err) {
    rt->step = step;
    rt->ratio = ratio;
    rt->site = 0; // the previous step's uploads are done: the caller waited for its prediction
    dato_rng_seed_stream(&rt->rng, rt->cfg.seed, (uint64_t)step);
    rt->have_score = 0;
    if (ratio > 0.0f && rt->n_recorded >= 2) {
        dato_diffscore(rt->pred[0], rt->pred[1], rt->batch, rt->c, rt->h * rt->w, rt->score);
        rt->have_score = 1;
    }
    plan->self_attn = ratio > 0.0f ? prune_self_attention : NULL;
    plan->hook_ctx = ratio > 0.0f ? rt : NULL;
    rt->precomputed = 0;
    if (ratio <= 0.0f) return DATO_OK;
    int d = plan->depth;
    if (d < 0 || d > DATO_NET_MAX_DEPTH_UNITS + 1)
        return dato_fail(err, DATO_ERR_INVALID, "dato runtime: plan depth %d outside [0, %d]", d,
                         DATO_NET_MAX_DEPTH_UNITS + 1);
    rt->depth = d;
    // A depth's first pruning step records its blocks; from its second on they are known.
    if (rt->site_state[d] < 2) {
        rt->site_state[d]++;
        if (rt->site_state[d] == 1) return DATO_OK;
    }
    for (int k = 0; k < rt->n_sites[d]; k++) {
        const int* hw = rt->site_hw + ((size_t)d * rt->max_sites + k) * 2;
        choose_bases(rt, hw[0], hw[1], rt->base_host + (size_t)k * rt->batch * rt->max_p);
    }
    rt->precomputed = 1;
    // One graph per (depth, ratio index); a ratio outside the table (a direct caller's) is not replayed.
    int ri = dato_schedule_ratio_index(ratio);
    plan->replayable = ri >= 0;
    plan->variant = ri >= 0 ? ri : 0;
    return DATO_OK;
}
