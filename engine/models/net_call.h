// One call of a denoising network, as every network takes it and every driver makes it: the plan
// (how deep, whether to write the feature cache, a hook over self-attention) and the inputs. The
// UNet (unet.h) is the first network to take it; the denoiser (denoiser.h) and the DaTo runtime
// (dato.h) make calls through it and name no network.
//
// Depth units: a call at depth d (1..units) runs the outer d units of the network and reads what
// lies inside from the feature cache the last full call wrote (DeepCache); units + 1 is a full call.
// Attention sites: the self-attention blocks a hook may replace (DaTo token pruning). A site hands
// the hook its own plain attention (attend), so a hook runs it on the tokens it keeps.
#ifndef DATO_NET_CALL_H
#define DATO_NET_CALL_H

#include "arena.h"
#include "backend.h"
#include "schedule.h" // DATO_SCHEDULE_N_RATIOS: the plan variants of the DaTo runtime
#include "status.h"
#include "tensor.h"

#define DATO_NET_MAX_LEVELS 8       // token-grid resolutions a network's sites may sit at
#define DATO_NET_MAX_DEPTH_UNITS 16 // depth units of the deepest network (calls of depth 1..units + 1)

// Where a network's attention sites are, as a pruning runtime sizes its buffers: at level l the
// tokens form the latent grid downsampled by 2^l, with channels[l] channels; sites[l] is how many
// sites a full call passes there (0: none).
typedef struct {
    int n_levels;
    int channels[DATO_NET_MAX_LEVELS];
    int sites[DATO_NET_MAX_LEVELS];
    int out_channels;                  // channels of the raw prediction (what dynamics are scored on)
} dato_site_layout;

typedef struct dato_attn_site dato_attn_site;

// out (B, N, C) = the site's self-attention of x (B, N, C), x being the normalized block input, on
// whatever tokens x holds. Temporaries come from arena (released by the caller).
typedef dato_status (*dato_attend_fn)(const dato_attn_site* site, dato_backend* be, dato_tensor* out,
                                      const dato_tensor* x, dato_arena* arena, dato_error* err);

struct dato_attn_site {
    const char* layer;        // the network's name of the layer holding the block
    int block;                // block index within it
    int level, h, w;          // resolution level and token grid (N = h w)
    int heads;
    const void* attn;         // the block's attention weights, for attend
    dato_attend_fn attend;    // the block's plain self-attention
};

// Replaces the self-attention of one site: out (B, N, C) = attn1(x (B, N, C)), x being the
// normalized block input. Temporaries come from arena (released by the caller).
typedef dato_status (*dato_self_attn_hook)(void* ctx, const dato_attn_site* site, dato_tensor* out,
                                           const dato_tensor* x, dato_arena* arena, dato_error* err);

#define DATO_NET_PLAN_VARIANTS DATO_SCHEDULE_N_RATIOS // plan.variant: 0..5

typedef struct {
    int depth;                     // 1..units: partial call; units + 1: full call
    int write_cache;               // full call: store what a partial call reads
    dato_self_attn_hook self_attn; // NULL: plain self-attention everywhere
    void* hook_ctx;
    // For graphed forwards: a hook whose host work is done before the forward (the hook's device
    // inputs are read at launch) can be replayed; plans of one depth and variant (the DaTo runtime:
    // the prune ratio's index in dato_schedule_ratios) replay one graph.
    int replayable;
    int variant;
} dato_net_plan;

typedef struct {
    const dato_tensor* sample;          // (B, in_channels, H, W)
    const dato_tensor* timesteps;       // (B)
    const dato_tensor* context;         // (B, S, context_dim)
    const dato_tensor* text_embeds;     // SDXL-style: (B, pooled_dim) pooled text embedding; else NULL
    const dato_tensor* time_ids;        // SDXL-style: (B, 6) original size, crop, target size; else NULL
} dato_net_inputs;

#endif
