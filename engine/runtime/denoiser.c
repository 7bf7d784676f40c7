// The model call of the denoising loop (denoiser.h).
#include "denoiser.h"

#include <stdlib.h>
#include <string.h>

void dato_denoiser_init(dato_denoiser* d, const dato_denoiser_model* model, const void* net, dato_backend* be) {
    memset(d, 0, sizeof *d);
    d->model = model;
    d->net = net;
    d->be = be;
    d->units = model->depth_units(net);
    model->dims(net, &d->dims);
}

// The workspace and the device block, freed (the graphs with them).
static void release_buffers(dato_denoiser* d) {
    if (d->ws) d->model->ws_free(d->ws, d->net);
    if (d->dev) d->be->ops->free(d->be, d->dev);
    d->ws = d->dev = NULL;
    d->cap_rows = 0;
}

void dato_denoiser_free(dato_denoiser* d) {
    if (!d->model) return;
    release_buffers(d);
    dato_runtime_destroy(d->rt_kept);
    memset(d, 0, sizeof *d);
}

// Device floats per row: x, y, ctx, te, t, ids.
static size_t row_floats(const dato_denoiser* d) {
    const dato_denoiser_dims* m = &d->dims;
    size_t latent = (size_t)d->h * d->w;
    return latent * (m->in_channels + m->out_channels) + (size_t)d->seq * m->context_dim + m->pooled_dim + 1 +
           (m->pooled_dim ? 6 : 0);
}

// Plans the workspace and allocates the device block for rows rows of (h, w, seq).
static dato_status plan_buffers(dato_denoiser* d, int rows, int h, int w, int seq, dato_error* err) {
    release_buffers(d);
    d->h = h, d->w = w, d->seq = seq;
    DATO_TRY(d->model->ws_create(&d->ws, d->net, rows, h, w, seq, err));
    d->stats.plans++;
    d->dev = d->be->ops->alloc(d->be, (size_t)rows * row_floats(d) * sizeof(float));
    if (!d->dev) {
        release_buffers(d);
        return dato_fail(err, DATO_ERR_NOMEM, "denoiser: cannot allocate the buffers of %d rows of %dx%d latents",
                         rows, h, w);
    }
    d->cap_rows = rows;
    return DATO_OK;
}

// The device views of a call of d->rows rows, carved from d->dev as laid out for d->cap_rows.
static void set_views(dato_denoiser* d) {
    const dato_denoiser_dims* m = &d->dims;
    dato_device dev = d->be->device;
    int64_t R = d->rows, cap = d->cap_rows;
    size_t latent = (size_t)d->h * d->w;
    float* p = d->dev;
    d->x = dato_tensor_make(p, DATO_F32, dev, 4, (int64_t[]){R, m->in_channels, d->h, d->w});
    p += cap * m->in_channels * latent;
    d->y = dato_tensor_make(p, DATO_F32, dev, 4, (int64_t[]){R, m->out_channels, d->h, d->w});
    p += cap * m->out_channels * latent;
    d->ctx = dato_tensor_make(p, DATO_F32, dev, 3, (int64_t[]){R, d->seq, m->context_dim});
    p += cap * d->seq * m->context_dim;
    d->t = dato_tensor_make(p, DATO_F32, dev, 1, (int64_t[]){R});
    p += cap;
    d->te = dato_tensor_make(m->pooled_dim ? p : NULL, DATO_F32, dev, 2, (int64_t[]){R, m->pooled_dim});
    p += cap * m->pooled_dim;
    d->ids = dato_tensor_make(m->pooled_dim ? p : NULL, DATO_F32, dev, 2, (int64_t[]){R, 6});
}

dato_status dato_denoiser_begin(dato_denoiser* d, int rows, int cfg_half, int h, int w, int seq, int with_cache,
                                const dato_prune_config* prune, dato_error* err) {
    if (!d->model) return dato_fail(err, DATO_ERR_INVALID, "denoiser: not initialized (dato_denoiser_init)");
    if (rows < 1 || h < 1 || w < 1 || seq < 1 || (cfg_half && 2 * cfg_half != rows))
        return dato_fail(err, DATO_ERR_INVALID, "denoiser: rows %d (cfg half %d), latent %dx%d and context length %d "
                         "must be >= 1 (rows = 2 x cfg half when guided)", rows, cfg_half, h, w, seq);
    if (!d->ws || h != d->h || w != d->w || seq != d->seq || rows > d->cap_rows)
        DATO_TRY(plan_buffers(d, rows, h, w, seq, err));
    d->rows = rows;
    d->cache_on = with_cache;
    set_views(d);
    DATO_TRY(d->model->ws_begin(d->ws, d->net, with_cache, err));
    d->rt = NULL;
    if (prune) {
        // The seed is a reset's argument, not a reason for a new runtime: a search's calls each
        // have their own.
        const dato_prune_config* had = &d->rt_cfg;
        int kept = d->rt_kept && rows <= d->rt_rows && d->rt_h == h && d->rt_w == w &&
                   had->max_level == prune->max_level && had->patch == prune->patch && had->alpha == prune->alpha;
        if (!kept) {
            dato_runtime_destroy(d->rt_kept);
            d->rt_kept = NULL;
            DATO_TRY(d->model->runtime_create(&d->rt_kept, d->net, rows, cfg_half, h, w, prune, err));
            d->stats.runtimes++;
            d->rt_rows = rows, d->rt_h = h, d->rt_w = w;
            d->graph_rows = 0; // new buffers, perhaps at the old runtime's address
        }
        d->rt_cfg = *prune;
        DATO_TRY(dato_runtime_reset(d->rt_kept, rows, cfg_half, prune->seed, err));
        d->rt = d->rt_kept;
    }
    // A graph is bound to its buffers but not to the rows, the cache writes or the runtime's buffers.
    if (rows != d->graph_rows || with_cache != d->graph_cache || d->rt != d->graph_rt) {
        d->model->graphs_free(d->ws, d->net);
        d->stats.graph_resets++;
        d->graph_rows = rows, d->graph_cache = with_cache, d->graph_rt = d->rt;
    }
    return DATO_OK;
}

void dato_denoiser_condition(dato_denoiser* d, const float* context, const float* text_embeds,
                             const float* time_ids) {
    dato_backend* be = d->be;
    size_t R = (size_t)d->rows;
    be->ops->upload(be, d->ctx.data, context, R * d->seq * d->dims.context_dim * sizeof(float));
    if (!d->dims.pooled_dim) return;
    be->ops->upload(be, d->te.data, text_embeds, R * d->dims.pooled_dim * sizeof(float));
    be->ops->upload(be, d->ids.data, time_ids, R * 6 * sizeof(float));
}

int dato_denoiser_depth(const dato_denoiser* d, const dato_gene* gene) { return gene ? gene->depth : d->units + 1; }

dato_status dato_denoiser_call(dato_denoiser* d, int step, const dato_gene* gene, int graphed, float* raw,
                               dato_error* err) {
    int depth = dato_denoiser_depth(d, gene), full = d->units + 1;
    if (!d->ws || depth < 1 || depth > full || (d->rt && (!gene || !raw)))
        return dato_fail(err, DATO_ERR_INVALID, "denoiser: call of depth %d (1..%d) needs dato_denoiser_begin first, "
                         "and with pruning a gene and a host buffer for the prediction", depth, full);
    dato_net_plan plan = {.depth = depth, .write_cache = depth == full && d->cache_on};
    if (d->rt) DATO_TRY(dato_runtime_prepare(d->rt, step, gene->ratio, &plan, err));
    dato_net_inputs in = {.sample = &d->x, .timesteps = &d->t, .context = &d->ctx,
                           .text_embeds = d->te.data ? &d->te : NULL, .time_ids = d->ids.data ? &d->ids : NULL};
    DATO_TRY(d->model->forward(d->net, d->ws, &plan, &in, &d->y, graphed, err));
    d->stats.calls++;
    if (raw) d->be->ops->download(d->be, raw, d->y.data, (size_t)dato_tensor_numel(&d->y) * sizeof(float));
    if (d->rt) dato_runtime_record(d->rt, raw); // raw, every row, before guidance
    return DATO_OK;
}
