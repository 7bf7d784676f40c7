// The DaTo token-pruning runtime (METHOD.md §3-4): dynamics scores from the two latest raw
// noise predictions, one base token per s x s patch (CFG-aligned), similarity of every other
// token to the base tokens, the most redundant tokens pruned from self-attention and given
// back the output of their most similar base token.
//
// Per network call the denoiser asks dato_runtime_prepare for the call's plan (it installs the
// self-attention hook when the step prunes), runs the network, and hands the raw prediction to
// dato_runtime_record. Everything is allocated at create; a step allocates nothing.
//
// Any backend: the scores and the base choice run on the host (from the recorded host
// predictions); the per-token steps (similarity, selection, gather, attention, scatter) run
// through the backend's DaTo ops (backend.h) on buffers allocated at create. The pieces below
// are the reference those ops follow.
#ifndef DATO_DATO_H
#define DATO_DATO_H

#include <stdint.h>

#include "backend.h"
#include "net_call.h"
#include "rng.h"

typedef struct {
    int max_level;  // blocks at resolution levels <= max_level prune (-1: the first level with transformers)
    int patch;      // s: one base token per s x s patch (default 2)
    float alpha;    // weight of seeded N(0,1) noise added to the scores (default 0: none)
    uint64_t seed;  // the random base choice while fewer than two predictions exist, and the noise
} dato_prune_config;

// Defaults: max_level -1 (resolved per model), patch 2, alpha 0, seed 0.
dato_prune_config dato_prune_config_default(void);
// The first resolution level that has attention sites (the UNet's: 0 for SD1/2, 1 for SDXL).
int dato_default_max_level(const dato_site_layout* sites);

typedef struct dato_runtime dato_runtime;

// A runtime for network calls of `batch` rows on (h, w) latents on be, its buffers sized for the
// sites of the layout at levels <= max_level. cfg_half = B when the rows are [uncond x B; cond x B]
// (the uncond rows take their cond twin's base positions), else 0.
dato_status dato_runtime_create(dato_runtime** out, const dato_site_layout* sites, dato_backend* be, int batch,
                                int cfg_half, int h, int w, const dato_prune_config* cfg, dato_error* err);
void dato_runtime_destroy(dato_runtime* rt);
// A new trajectory (each image starts fresh, METHOD.md §3) of batch rows, at most the created
// batch, with cfg_half as in create, drawing from seed: forgets the predictions, the scores and the
// clamps; keeps the buffers and the pruned blocks it has recorded (same model and latent size).
dato_status dato_runtime_reset(dato_runtime* rt, int batch, int cfg_half, uint64_t seed, dato_error* err);
// Sets plan's self-attention hook for a call of sampler step `step` pruning `ratio` (0: none).
// Computes the step's dynamics scores from the recorded predictions.
dato_status dato_runtime_prepare(dato_runtime* rt, int step, float ratio, dato_net_plan* plan, dato_error* err);
// Records a raw prediction (batch, C, h, w), host memory, of the call just made.
void dato_runtime_record(dato_runtime* rt, const float* raw);
// The base tokens (P flat indices) of UNet row `row` in the last block that pruned; *P gets P.
const int32_t* dato_runtime_base(const dato_runtime* rt, int row, int* P);
// Pruned blocks whose ratio asked for more than their N - P non-base tokens, clamped to N - P so
// far; the runtime prints nothing: its caller says it.
int dato_runtime_clamped(const dato_runtime* rt);
// The first such clamp as text naming the ratio, the cap and the layer ("" when none).
const char* dato_runtime_warning(const dato_runtime* rt);

// ---- the reference pieces, exposed for tests (and as the spec of the CUDA kernels) -----------------

// d (B, HW) = mean over C of |a - b| for a, b (B, C, HW).
void dato_diffscore(const float* a, const float* b, int B, int C, int HW, float* d);
// out (B, H/k, W/k) = k x k average pooling of d (B, H, W); H, W multiples of k.
void dato_pool_scores(const float* d, int B, int H, int W, int k, float* out);
// base (P) = for each s x s patch of the (H, W) grid (row-major patches; border patches may be
// smaller), the flat index of its highest score, ties to the lowest index. P = ceil(H/s) ceil(W/s).
void dato_choose_base(const float* score, int H, int W, int s, int32_t* base);
typedef struct {
    float sim;
    int32_t index;
} dato_scored;
// pruned (n) = the n non-base tokens with the highest sim, ties to the lowest index; is_base (N);
// scratch (N). Returns n clamped to N - P.
int dato_select_pruned(const float* sim, const uint8_t* is_base, int N, int P, int n, int32_t* pruned,
                       dato_scored* scratch);

#endif
