// Exact analytic multiply-accumulate counts of one UNet call (1 MAC = 1 multiply-add = 2 FLOP),
// read off the engine's layer list, for a DaTo step (cache depth, prune ratio; METHOD.md §2, §4).
//
// Counted: every convolution (k*k*cin*cout*Ho*Wo), every Linear (time embedding MLP, SDXL
// add_embedding MLP, each ResBlock's time_emb_proj, proj_in/proj_out, q/k/v/out, GEGLU's C->8C
// and 4C->C), and the attention products QK^T and AV (Nq*Nk*C each, self and cross). proj_in and
// proj_out count as convolutions when the model defines them as 1x1 convs (SD1,
// use_linear_projection false), as Linears otherwise: ENGINE.md §11's split is made that way.
// Not counted (not MACs, or negligible elementwise work): GroupNorm, LayerNorm, SiLU, GELU and
// the GEGLU gate, softmax and the 1/sqrt(d) scale, residual adds, concatenations, upsampling,
// timestep sinusoids, the DaTo dynamics scores and the top-k/gather/scatter of pruning.
//
// A pruned self-attention (blocks at level <= max_level, ratio r > 0, patch s) with N tokens on an
// H x W grid and P = ceil(H/s) ceil(W/s) base tokens prunes n = min(floor(r N), N - P) tokens and
// keeps N' = N - n: q/k/v/out projections on N' tokens, QK^T and AV on N' x N', plus `similarity`:
// the cosine products N x P x C and the token norms N x C. Cross-attention and feed-forward run on
// all N tokens. Everything scales with the batch (B = 2 for a CFG call).
#ifndef DATO_COST_H
#define DATO_COST_H

#include "status.h"
#include "unet.h"

typedef struct {
    double conv, linear, attention, similarity, total; // MACs; total = the sum of the four
} dato_macs;

typedef struct {
    char name[32]; // "time_embed", "add_embedding", LDM layer names, "out"
    dato_macs macs;
} dato_layer_macs;

// Per-layer MACs of one call at the given sizes and pruning, independent of the cache depth.
typedef struct {
    int n_branches;
    dato_layer_macs time_embed;                  // time MLP (+ SDXL add_embedding MLP): every call
    dato_layer_macs down[DATO_UNET_MAX_LAYERS];  // (n_branches)
    dato_layer_macs mid;
    dato_layer_macs up[DATO_UNET_MAX_LAYERS];    // (n_branches)
    dato_layer_macs out;                         // conv_out (norm not counted): every call
    int n_clamped;                               // pruned blocks whose r N exceeded N - P (clamped)
} dato_unet_macs;

// Fills out for `batch` rows of (h, w) latents, a seq-token context, pruning `ratio` in [0, 1)
// of the self-attention tokens of transformer blocks at levels <= max_level (max_level < 0: the
// model's default, dato_default_max_level) with base patch `patch`. ratio 0: no pruning.
dato_status dato_unet_layer_macs_list(const dato_unet* u, int batch, int h, int w, int seq, float ratio, int max_level,
                                      int patch, dato_unet_macs* out, dato_error* err);

// MACs of one call at cache depth `depth` (METHOD.md §2): n_branches + 1 = full step (all layers,
// mid block); 1..n_branches = down layers 0..depth-1, up layers n_branches-depth..n_branches-1
// (the cached deep feature costs nothing); 0 = no UNet call, 0 MACs. The time embedding and the
// output head count on every call.
dato_status dato_unet_step_macs(const dato_unet* u, int batch, int h, int w, int seq, int depth, float ratio,
                                int max_level, int patch, dato_macs* out, dato_error* err);

// The same sum from an already computed list.
dato_status dato_unet_macs_at_depth(const dato_unet_macs* list, int depth, dato_macs* out, dato_error* err);

#endif
