// The model call of the denoising loop, in one place: the host loop (sampler.c), the device loop
// (pipeline.c) and the latency meter (metrics/latency.c) all run a step's gene through
// dato_denoiser_call.
//
// A denoiser is the noise-prediction network as the loop sees it (net_call.h: the plan and inputs
// of one call):
//   - depth units: a call at depth d (1..units) runs the outer d units and reads what lies inside
//     from the feature cache the last full call wrote (DeepCache); depth units + 1 is a full call;
//   - attention sites: self-attention blocks a hook may replace (DaTo token pruning, dato.h);
//   - a workspace planned once (a measuring forward on the null backend), then no allocation;
//   - graphs: each (depth, variant) captured once and replayed, where the backend has them.
// The UNet is its first implementation (unet_denoiser.h: skip branches as depth units, its
// transformer blocks as sites). Another network (a DiT: blocks as depth units, every block a site)
// fills the same table of functions over the same plan and inputs, and hands the hook its sites.
//
// Made once and kept across generate calls (the pipeline keeps one for its life). Its buffers are
// sized for (rows, h, w, seq); dato_denoiser_begin readies a generate call and applies the rule:
//   - same latent size and context length, rows <= the planned rows: kept (the call runs in the
//     first rows of every buffer);
//   - more rows: planned again for those rows (the largest seen so far);
//   - another latent size or context length: planned again for that shape.
// Every plan is counted (stats.plans). The feature cache is allocated the first time a call needs
// it and kept; the DaTo runtime is kept while the latent size and the prune settings but the seed
// stay the same and the rows fit (reset with the call's rows and seed), else made anew
// (stats.runtimes); the graphs are dropped when the rows, the cache use or the runtime change
// (stats.graph_resets).
#ifndef DATO_DENOISER_H
#define DATO_DENOISER_H

#include "backend.h"
#include "dato.h"
#include "schedule.h"
#include "net_call.h"

// The sizes of a network's inputs and output.
typedef struct {
    int in_channels, out_channels; // latent channels in and out
    int context_dim;               // conditioning width
    int pooled_dim;                // SDXL-style pooled text embedding width; 0: none (and no time ids)
} dato_denoiser_dims;

// One implementation of a denoiser: plain functions over its network `net` and its workspace `ws`.
typedef struct {
    const char* name;
    int (*depth_units)(const void* net);
    void (*dims)(const void* net, dato_denoiser_dims* out);
    // Plans and allocates a workspace (with its graph slots) for up to rows rows: the counted plan.
    dato_status (*ws_create)(void** ws, const void* net, int rows, int h, int w, int seq, dato_error* err);
    void (*ws_free)(void* ws, const void* net);
    // A new trajectory: forget the cached features; allocate the cache when with_cache and absent.
    dato_status (*ws_begin)(void* ws, const void* net, int with_cache, dato_error* err);
    // out = net(in) over plan; graphed: replay captured graphs where the backend can.
    dato_status (*forward)(const void* net, void* ws, const dato_net_plan* plan, const dato_net_inputs* in,
                           dato_tensor* out, int graphed, dato_error* err);
    void (*graphs_free)(void* ws, const void* net);
    // The token-pruning runtime over this network's attention sites.
    dato_status (*runtime_create)(dato_runtime** rt, const void* net, int rows, int cfg_half, int h, int w,
                                  const dato_prune_config* pc, dato_error* err);
} dato_denoiser_model;

typedef struct {
    int plans;        // workspaces planned (one measuring forward each)
    int runtimes;     // DaTo runtimes made
    int graph_resets; // times the captured graphs were dropped
    long calls;       // network calls run
} dato_denoiser_stats;

typedef struct {
    const dato_denoiser_model* model; // NULL: not initialized
    const void* net;                  // not owned
    dato_backend* be;
    dato_denoiser_dims dims;
    int units;                        // depth units: units + 1 is a full call
    // What the buffers are planned for: up to cap_rows rows of (h, w) latents, seq context tokens.
    int cap_rows, h, w, seq;
    void* ws;                         // the implementation's workspace; NULL until the first begin
    void* dev;                        // device block for x, y, ctx, te, t, ids at cap_rows
    // The generate call in progress (dato_denoiser_begin).
    int rows, cache_on;
    dato_tensor x;                    // (rows, in_channels, h, w) network input
    dato_tensor y;                    // (rows, out_channels, h, w) raw output
    dato_tensor ctx;                  // (rows, seq, context_dim)
    dato_tensor te, ids;              // (rows, pooled_dim), (rows, 6); data NULL without pooled_dim
    dato_tensor t;                    // (rows) timesteps
    dato_runtime* rt;                 // pruning runtime; NULL when the call does not prune
    dato_runtime* rt_kept;            // the runtime kept for a later call (rt is it or NULL)
    dato_prune_config rt_cfg;         // rt_kept's settings (the seed: its last reset's)
    int rt_rows, rt_h, rt_w;          // rt_kept's buffers: up to rt_rows rows of (rt_h, rt_w) latents
    int graph_rows, graph_cache;      // what the graphs were captured under
    const dato_runtime* graph_rt;
    dato_denoiser_stats stats;
} dato_denoiser;

// Binds model and net on be; allocates nothing (the first dato_denoiser_begin plans).
void dato_denoiser_init(dato_denoiser* d, const dato_denoiser_model* model, const void* net, dato_backend* be);
void dato_denoiser_free(dato_denoiser* d);
// Readies a generate call of rows network rows (cfg_half = rows / 2 when they are [uncond; cond],
// else 0) on (h, w) latents with seq context tokens, applying the rule above. with_cache: some call
// is partial; prune: the runtime's settings when some call prunes, else NULL.
dato_status dato_denoiser_begin(dato_denoiser* d, int rows, int cfg_half, int h, int w, int seq, int with_cache,
                                const dato_prune_config* prune, dato_error* err);
// Uploads the conditioning of this call's rows: context (rows, seq, context_dim), and with pooled_dim
// text_embeds (rows, pooled_dim) and time_ids (rows, 6); host memory.
void dato_denoiser_condition(dato_denoiser* d, const float* context, const float* text_embeds,
                             const float* time_ids);
// The depth a gene asks for (NULL: a full call); 0 reuses the last prediction without a call.
int dato_denoiser_depth(const dato_denoiser* d, const dato_gene* gene);
// One network call for sampler step `step` under gene (NULL: full; depth >= 1) on d->x and d->t:
// the plan (a full call writes the cache when this generate has partial calls; the pruning hook
// when the gene's ratio > 0), the forward (graphed: replayed where it can be), then the raw output
// d->y downloaded into raw (rows, out_channels, h, w) and recorded for the dynamics score. raw may
// be NULL only when the call has no runtime.
dato_status dato_denoiser_call(dato_denoiser* d, int step, const dato_gene* gene, int graphed, float* raw,
                               dato_error* err);

#endif
