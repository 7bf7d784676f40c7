// The UNet as a denoiser (unet_denoiser.h): skip branches as depth units, transformer blocks as
// attention sites, its workspace and graphs behind the denoiser's table of functions.
#include "unet_denoiser.h"

#include <stdlib.h>

typedef struct {
    dato_unet_ws ws;
    dato_unet_graphs graphs;
} unet_ws;

static int unet_depth_units(const void* net) { return ((const dato_unet*)net)->n_branches; }

static void unet_dims(const void* net, dato_denoiser_dims* out) {
    const dato_unet_config* c = &((const dato_unet*)net)->cfg;
    *out = (dato_denoiser_dims){.in_channels = c->in_channels, .out_channels = c->out_channels,
                                .context_dim = c->cross_attention_dim,
                                .pooled_dim = c->add_embed_in ? c->add_embed_in - 6 * c->addition_time_embed_dim : 0};
}

static dato_status unet_ws_create(void** out, const void* net, int rows, int h, int w, int seq, dato_error* err) {
    unet_ws* u = calloc(1, sizeof *u);
    if (!u) return dato_fail(err, DATO_ERR_NOMEM, "denoiser: out of memory");
    dato_status st = dato_unet_ws_create(&u->ws, net, rows, h, w, seq, 0, err);
    if (st) free(u);
    *out = st ? NULL : u;
    return st;
}

static void unet_graphs_free(void* ws, const void* net) {
    dato_unet_graphs_free(&((unet_ws*)ws)->graphs, ((const dato_unet*)net)->be);
}

static void unet_ws_free(void* ws, const void* net) {
    unet_graphs_free(ws, net);
    dato_unet_ws_free(&((unet_ws*)ws)->ws, net);
    free(ws);
}

static dato_status unet_ws_begin(void* ws, const void* net, int with_cache, dato_error* err) {
    unet_ws* u = ws;
    u->ws.cache_valid = 0;
    return with_cache ? dato_unet_ws_add_cache(&u->ws, net, err) : DATO_OK;
}

static dato_status unet_forward(const void* net, void* ws, const dato_net_plan* plan, const dato_net_inputs* in,
                                dato_tensor* out, int graphed, dato_error* err) {
    unet_ws* u = ws;
    if (!graphed) return dato_unet_forward(net, &u->ws, plan, in, out, err);
    return dato_unet_forward_graphed(net, &u->ws, plan, in, out, &u->graphs, err);
}

void dato_unet_site_layout(const dato_unet* u, dato_site_layout* out) {
    const dato_unet_config* c = &u->cfg;
    *out = (dato_site_layout){.n_levels = c->n_levels, .out_channels = c->out_channels};
    for (int l = 0; l < c->n_levels; l++) {
        out->channels[l] = c->block_channels[l];
        // layers_per_block down blocks and layers_per_block + 1 up blocks at each level
        if (c->level_has_attn[l]) out->sites[l] = c->transformer_depth[l] * (2 * c->layers_per_block + 1);
    }
    out->sites[c->n_levels - 1] += c->mid_transformer_depth;
}

dato_status dato_unet_runtime_create(dato_runtime** rt, const dato_unet* u, int batch, int cfg_half, int h, int w,
                                     const dato_prune_config* pc, dato_error* err) {
    dato_site_layout sites;
    dato_unet_site_layout(u, &sites);
    return dato_runtime_create(rt, &sites, u->be, batch, cfg_half, h, w, pc, err);
}

static dato_status unet_runtime_create(dato_runtime** rt, const void* net, int rows, int cfg_half, int h, int w,
                                       const dato_prune_config* pc, dato_error* err) {
    return dato_unet_runtime_create(rt, net, rows, cfg_half, h, w, pc, err);
}

const dato_denoiser_model dato_denoiser_unet = {
    .name = "unet",
    .depth_units = unet_depth_units,
    .dims = unet_dims,
    .ws_create = unet_ws_create,
    .ws_free = unet_ws_free,
    .ws_begin = unet_ws_begin,
    .forward = unet_forward,
    .graphs_free = unet_graphs_free,
    .runtime_create = unet_runtime_create,
};
