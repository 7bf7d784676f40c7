// The UNet2DConditionModel of the Stable Diffusion family (SD1.x, SD2.x, SDXL) as an ordered
// list of named layers: down layers (LDM `input_blocks.*`, each pushing one skip), the mid
// layer, and up layers (`output_blocks.*`, each popping one), then the output head.
//
// Skip branch b pairs down layer b with up layer (n_branches - 1 - b). A forward over a plan
// at depth d (1..n_branches) runs down layers 0..d-1 and up layers n_branches-d .. end,
// reading the main-path input of up layer n_branches-d from the feature cache filled by the
// last full step (DeepCache semantics, METHOD.md §2). depth = n_branches + 1 is a full step.
// Self-attention of any transformer block can be intercepted by a hook (DaTo token pruning).
//
// Weights live in one block, carved into tensors (llm.c style); every parameter has its
// diffusers and its LDM name (engine/models/unet_params.c), so a tensor's name says where it lives.
#ifndef DATO_UNET_H
#define DATO_UNET_H

#include "arena.h"
#include "backend.h"
#include "net_call.h" // the plan and inputs of a call; attention sites
#include "param_table.h"
#include "status.h"
#include "tensor.h"

#define DATO_UNET_MAX_LEVELS 4
#define DATO_UNET_MAX_LAYERS 16 // per path: 1 + levels * (layers_per_block + 1) <= 16
#define DATO_UNET_MAX_MODULES 3 // Res + Transformer + Up/Downsample
_Static_assert(DATO_UNET_MAX_LAYERS <= DATO_NET_MAX_DEPTH_UNITS && DATO_UNET_MAX_LEVELS <= DATO_NET_MAX_LEVELS,
               "a UNet's depth units and levels fit net_call.h's bounds");

// ---- configuration ---------------------------------------------------------------------------

typedef struct {
    int in_channels, out_channels;
    int n_levels;
    int block_channels[DATO_UNET_MAX_LEVELS];    // block_out_channels per resolution level
    int level_has_attn[DATO_UNET_MAX_LEVELS];    // CrossAttn{Down,Up}Block2D at this level
    int transformer_depth[DATO_UNET_MAX_LEVELS]; // transformer_layers_per_block per level
    int heads[DATO_UNET_MAX_LEVELS];             // attention heads per level (head dim = C / heads)
    int mid_transformer_depth;
    int layers_per_block;                        // down; up layers have one more
    int cross_attention_dim;
    int use_linear_projection;                   // proj_in/proj_out Linear (SD2, SDXL) or 1x1 conv (SD1)
    int upcast_attention;                        // SD2.1: attention in f32 (always so on the CPU)
    int flip_sin_to_cos;
    float freq_shift;
    int norm_groups;
    float norm_eps;                              // ResBlocks and the output norm; transformers use 1e-6
    int time_embed_dim;                          // 4 * block_channels[0]
    // SDXL text_time conditioning (addition_embed_type "text_time"); 0 when absent.
    int addition_time_embed_dim;                 // 256 for SDXL
    int add_embed_in;                            // projection_class_embeddings_input_dim: 2816 for SDXL
    int sample_size;                             // default latent size (informative)
} dato_unet_config;

// Reads a diffusers unet/config.json. Unsupported block types or options are errors naming the field.
dato_status dato_unet_config_from_json(dato_unet_config* cfg, const char* path, dato_error* err);
// Same, from the JSON text (label names the source in errors).
dato_status dato_unet_config_from_json_text(dato_unet_config* cfg, const char* text, const char* label,
                                            dato_error* err);
// Checks every int's range first (no arithmetic on a hostile value), then divisibility (channels by
// groups and heads), depths, the time embedding's width (4 x block_out_channels[0]), finite norm_eps.
dato_status dato_unet_config_validate(const dato_unet_config* cfg, dato_error* err);
// Number of skip branches (= down layers = up layers): 1 + levels * (layers_per_block + 1) - 1.
int dato_unet_n_branches(const dato_unet_config* cfg);

// ---- parameters and layers ---------------------------------------------------------------------

typedef enum { DATO_LAYOUT_DIFFUSERS = 0, DATO_LAYOUT_LDM = 1 } dato_layout;

typedef struct {
    dato_tensor w, b; // b.data == NULL when the layer has no bias
} dato_affine;        // a Linear, a Conv2d or a norm's (gamma, beta)

typedef struct {
    dato_affine norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut; // conv_shortcut only if cin != cout
} dato_resblock;

typedef struct {
    dato_affine to_q, to_k, to_v, to_out; // to_q/k/v without bias
} dato_attention;

typedef struct {
    dato_affine norm1, norm2, norm3;
    dato_attention attn1, attn2;          // self, cross
    dato_affine ff_proj, ff_out;          // GEGLU C -> 8C, then 4C -> C
} dato_transformer_block;

typedef struct {
    dato_affine norm, proj_in, proj_out;  // proj as (C, C) matrices whatever the file's layout
    dato_transformer_block* blocks;       // (depth)
    int depth, heads;
} dato_transformer;

typedef enum { DATO_MOD_CONV_IN, DATO_MOD_RES, DATO_MOD_TRANSFORMER, DATO_MOD_DOWNSAMPLE, DATO_MOD_UPSAMPLE } dato_module_kind;

typedef struct {
    dato_module_kind kind;
    int cin, cout;
    dato_resblock res;        // DATO_MOD_RES
    dato_transformer tf;      // DATO_MOD_TRANSFORMER
    dato_affine conv;         // conv_in, down/upsample convs
} dato_unet_module;

typedef struct {
    char name[32];            // LDM name: "input_blocks.4", "middle_block", "output_blocks.7"
    int level;                // resolution level of the layer's input (0 = full latent resolution)
    int cin, cout;            // main-path channels in and out (up layers: before the skip concat)
    int skip_channels;        // up layers: channels of the popped skip
    int n_mods;
    dato_unet_module mods[DATO_UNET_MAX_MODULES];
} dato_unet_layer;

// One parameter (engine/io/param_table.h): name[DATO_LAYOUT_DIFFUSERS] and name[DATO_LAYOUT_LDM]
// without the model prefix, expected shape, gemm, slot.
typedef dato_param dato_unet_param;

typedef struct {
    dato_unet_config cfg;
    dato_backend* be;
    int n_branches;
    dato_unet_layer down[DATO_UNET_MAX_LAYERS];
    dato_unet_layer mid;
    dato_unet_layer up[DATO_UNET_MAX_LAYERS];
    dato_affine time_1, time_2;            // time embedding MLP
    dato_affine add_1, add_2;              // SDXL add_embedding MLP
    dato_affine norm_out, conv_out;
    dato_unet_param* params;               // (n_params)
    int n_params;
    size_t n_weights;                      // total elements
    dato_dtype weight_dtype;               // of the GEMM weights (param.gemm); everything else is f32
    void* weights;                         // one block on be
    dato_transformer_block* tblocks;       // storage for every transformer's blocks
} dato_unet;

// Builds the layer list and the parameter table for cfg (no weights yet).
dato_status dato_unet_build(dato_unet* u, const dato_unet_config* cfg, dato_backend* be, dato_error* err);
// Allocates the weight block and fills it with seeded normals * scale (norm gammas 1 + noise):
// benchmarks and tests on exact real shapes without a file.
dato_status dato_unet_init_random(dato_unet* u, unsigned long long seed, float scale, dato_error* err);
// After build, before the weights are allocated (load or init_random): stores every Linear and
// Conv2d weight as dt (F32, or F16/BF16 converted at load on a backend that multiplies them:
// engine/io/weight_dtype.h). Refuses a backend that cannot, naming it.
dato_status dato_unet_set_weight_dtype(dato_unet* u, dato_dtype dt, dato_error* err);
void dato_unet_free(dato_unet* u);
// Finds a parameter by name in the given layout; NULL if absent.
const dato_unet_param* dato_unet_find_param(const dato_unet* u, dato_layout layout, const char* name);

// ---- forward -------------------------------------------------------------------------------------

// A full step that does not touch the cache.
dato_net_plan dato_unet_plan_full(const dato_unet* u);

// Workspace for one (model, H, W, context length) and up to `batch` rows: planned once by a
// measuring pass on the null backend, then one allocation. A forward of fewer rows runs in it
// (its tensors land where a workspace of its own would put them). Optionally holds the
// deep-feature cache.
typedef struct {
    int batch, h, w, seq;                    // batch: the most rows a forward may have
    dato_arena arena;
    void* block;
    dato_tensor cache[DATO_UNET_MAX_LAYERS]; // (batch, C_j, h_j, w_j) main-path input of each up layer; data NULL
                                             // until the cache is allocated
    size_t cache_bytes;                      // what the cache takes
    int cache_valid;                         // rows of the last full step with write_cache; 0: none (clear it to
                                             // forget the cache)
    void* cache_block;
} dato_unet_ws;

dato_status dato_unet_ws_create(dato_unet_ws* ws, const dato_unet* u, int batch, int h, int w, int seq,
                                int with_cache, dato_error* err);
// Allocates the feature cache of a workspace made without it (no new plan); nothing if it has one.
dato_status dato_unet_ws_add_cache(dato_unet_ws* ws, const dato_unet* u, dato_error* err);
// The bytes dato_unet_ws_create would allocate for these sizes (the workspace, and the cache), planned
// without allocating.
dato_status dato_unet_ws_bytes(const dato_unet* u, int batch, int h, int w, int seq, size_t* ws_bytes,
                               size_t* cache_bytes, dato_error* err);
void dato_unet_ws_free(dato_unet_ws* ws, const dato_unet* u);

// out (B, out_channels, H, W) = UNet(inputs) over plan. No allocation: everything comes from ws.
dato_status dato_unet_forward(const dato_unet* u, dato_unet_ws* ws, const dato_net_plan* plan,
                              const dato_net_inputs* in, dato_tensor* out, dato_error* err);

// UNet calls captured as backend graphs (backend.h), one per depth, replayed by
// dato_unet_forward_graphed. Zero-initialize; free with dato_unet_graphs_free.
typedef struct {
    void* graph[DATO_UNET_MAX_LAYERS + 2][DATO_NET_PLAN_VARIANTS];          // by depth and variant
    const void* bound[DATO_UNET_MAX_LAYERS + 2][DATO_NET_PLAN_VARIANTS][6]; // the buffers each reads and writes
    int runs[DATO_UNET_MAX_LAYERS + 2][DATO_NET_PLAN_VARIANTS];             // direct calls so far
} dato_unet_graphs;

// dato_unet_forward, replayed from a graph where it can be: on a backend with graphs, a plan
// without a self-attention hook, or with a replayable one, is captured at the second call of its
// (depth, variant), after one direct call has let every op make its one-time choices (algorithms),
// and replayed from then on. A graph reads its inputs' contents at launch but is bound
// to their buffers: a call with other buffers (or workspace) captures anew. The backend's other ops
// may run between calls; nothing may wait for the device during the capture. Elsewhere: a plain call.
dato_status dato_unet_forward_graphed(const dato_unet* u, dato_unet_ws* ws, const dato_net_plan* plan,
                                      const dato_net_inputs* in, dato_tensor* out, dato_unet_graphs* g,
                                      dato_error* err);
void dato_unet_graphs_free(dato_unet_graphs* g, dato_backend* be);

// A site's attend (net_call.h): dato_unet_attention of x over itself with the site's weights.
dato_status dato_unet_self_attention(const dato_attn_site* site, dato_backend* be, dato_tensor* out,
                                     const dato_tensor* x, dato_arena* arena, dato_error* err);
// Plain multi-head attention of one block: out (B, Nq, C) = to_out(attn(to_q x, to_k kv, to_v kv)),
// kv = x for self-attention.
dato_status dato_unet_attention(dato_backend* be, const dato_attention* a, int heads, dato_tensor* out,
                                const dato_tensor* x, const dato_tensor* kv, dato_arena* arena, dato_error* err);

#endif
