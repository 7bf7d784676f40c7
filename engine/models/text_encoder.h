// The CLIP text encoders of the Stable Diffusion family (transformers' CLIPTextModel and
// CLIPTextModelWithProjection): SD1's CLIP ViT-L/14, SD2's OpenCLIP ViT-H/14, SDXL's pair
// (CLIP ViT-L/14, OpenCLIP ViT-bigG/14 with its text projection).
//
//   x = token_embedding[ids] + position_embedding[:L]                      (B, L, W)
//   per layer: x += out_proj(causal MHA(LN1 x)); x += fc2(act(fc1(LN2 x)))  (pre-LN)
//   last_hidden_state = final_layer_norm(x)
//   pooled = last_hidden_state at the eos position [@ text_projection]
//
// What each model feeds the UNet (ENGINE.md §6):
//   SD1:  hidden of the last layer with the final LayerNorm (skip 0, final_norm 1).
//   SD2:  the penultimate layer with the final LayerNorm: skip 0 on diffusers' folder (its
//         config keeps 23 of the 24 layers), skip 1 on the OpenCLIP single file (24 layers).
//   SDXL: both encoders' penultimate layer without the final LayerNorm (skip 1, final_norm 0),
//         concatenated on channels to 768 + 1280 = 2048, and text_encoder_2's pooled (projected)
//         output as the UNet's text_embeds.
//
// Weights live in one block carved into a parameter table that names every tensor in both
// layouts (engine/models/text_encoder_params.c): transformers' ("text_model.encoder.layers.N.
// self_attn.q_proj.weight", ...) and OpenCLIP's ("transformer.resblocks.N.attn.in_proj_weight",
// its fused q/k/v split into row blocks at load; "text_projection" stored (W, P), transposed).
#ifndef DATO_TEXT_ENCODER_H
#define DATO_TEXT_ENCODER_H

#include <stdint.h>

#include "arena.h"
#include "backend.h"
#include "param_table.h"
#include "status.h"
#include "tensor.h"
#include "tensor_source.h"

typedef enum { DATO_TE_ACT_DEFAULT = 0, DATO_TE_ACT_QUICK_GELU, DATO_TE_ACT_GELU } dato_te_act;
typedef enum { DATO_TE_LAYOUT_HF = 0, DATO_TE_LAYOUT_OPENCLIP = 1 } dato_te_layout;

// The legacy eos_token_id of CLIP configs: pooling then takes the position of the largest id
// (CLIP's eos is its largest token), as transformers does for it. Any other id pools at the
// first position holding that id (position 0 when absent, as transformers' argmax gives).
#define DATO_TE_LEGACY_EOS 2

typedef struct {
    int vocab_size;
    int width;          // hidden_size W
    int intermediate;   // intermediate_size I
    int n_layers;       // num_hidden_layers
    int heads;          // num_attention_heads
    int max_positions;  // max_position_embeddings
    dato_te_act act;    // hidden_act: quick_gelu (OpenAI CLIP) or gelu (OpenCLIP)
    float eps;          // layer_norm_eps
    int projection_dim; // text_projection output P; 0 when the model has none
    int eos_token_id;
} dato_te_config;

// Reads a transformers text_encoder/config.json (CLIPTextConfig). Its projection_dim is kept
// whatever the class; dato_text_encoder_open_folder zeroes it when the weights hold no
// text_projection (CLIPTextModel configs carry one too).
dato_status dato_te_config_from_json(dato_te_config* cfg, const char* path, dato_error* err);
dato_status dato_te_config_from_json_text(dato_te_config* cfg, const char* text, const char* label, dato_error* err);
dato_status dato_te_config_validate(const dato_te_config* cfg, dato_error* err);

// What tensor shapes cannot tell about a single-file encoder; zero fields take the SD-family
// rule: heads of 64 dims, quick_gelu for the HF layout and gelu for OpenCLIP, eps 1e-5, the
// legacy eos rule.
typedef struct {
    int heads;
    dato_te_act act;
    float eps;
    int eos_token_id;
} dato_te_hints;

typedef struct {
    dato_tensor w, b; // b.data == NULL for a Linear without bias
} dato_te_affine;

typedef struct {
    dato_te_affine ln1, q, k, v, out, ln2, fc1, fc2;
} dato_te_layer;

// The activations of a layer stack over M = B*L token rows of width W, MLP width I.
typedef struct {
    dato_tensor x;       // (M, W) the residual stream
    dato_tensor h;       // (M, W) normed input, then sublayer outputs
    dato_tensor q, k, v; // (M, W)
    dato_tensor o;       // (M, W) attention output
    dato_tensor f;       // (M, I)
} dato_te_acts;

// Carves the activations from arena a on device dev (check a->overflowed after).
dato_te_acts dato_te_acts_carve(dato_arena* a, dato_device dev, int64_t M, int64_t W, int64_t I);

// One pre-LN transformer layer as CLIP's text and vision towers have it (CLIPEncoderLayer), on
// B sequences of L tokens: x += out_proj(MHA(LN1 x)) (causal for text, full for vision);
// x += fc2(act(fc1(LN2 x))).
dato_status dato_te_layer_forward(dato_backend* be, const dato_te_layer* ly, int B, int L, int heads, float eps,
                                  dato_te_act act, int causal, dato_te_acts* s, dato_error* err);

// One parameter (engine/io/param_table.h): name[DATO_TE_LAYOUT_HF] and name[DATO_TE_LAYOUT_OPENCLIP]
// without the checkpoint prefix, its shape in the engine, and where OpenCLIP stores it
// differently: a row block of the fused in_proj (oc_slice 0, 1, 2 = q, k, v; -1 otherwise) or
// transposed (oc_transposed: text_projection).
typedef dato_param dato_te_param;

typedef struct {
    dato_te_config cfg;
    dato_backend* be;
    dato_tensor token_embedding;    // (vocab, W)
    dato_tensor position_embedding; // (max_positions, W)
    dato_te_layer* layers;          // (n_layers)
    dato_te_affine final_ln;        // (W) each
    dato_tensor projection;         // (P, W) as a Linear weight; data NULL without projection
    dato_te_param* params;          // (n_params)
    int n_params;
    dato_dtype weight_dtype;        // of the Linear weights (param.gemm); everything else is f32
    void* weights;                  // one block on be
    // workspace, planned for (ws_batch, ws_len) by a measuring pass on the null backend
    int ws_batch, ws_len;
    void* ws_block;
    dato_arena ws;
    int32_t* eos_pos;               // (ws_batch) pooling positions, host
} dato_text_encoder;

// Builds the parameter table for cfg (no weights yet).
dato_status dato_text_encoder_build(dato_text_encoder* te, const dato_te_config* cfg, dato_backend* be,
                                    dato_error* err);
// Finds a parameter by its name in a layout; NULL if absent.
const dato_te_param* dato_text_encoder_find_param(const dato_text_encoder* te, dato_te_layout layout,
                                                  const char* name);
// Infers the config from the tensors under prefix (widths, layer count, projection) and hints
// (may be NULL).
dato_status dato_te_config_infer(dato_te_config* cfg, const dato_tensor_source* src, const char* prefix,
                                 dato_te_layout layout, const dato_te_hints* hints, dato_error* err);
// After build, before load: stores every Linear weight (q, k, v, out, fc1, fc2, projection) as dt
// (F32, or F16/BF16 on a backend that multiplies them: engine/io/weight_dtype.h), refusing one
// that cannot. Embeddings and norms stay f32.
dato_status dato_text_encoder_set_weight_dtype(dato_text_encoder* te, dato_dtype dt, dato_error* err);
// Loads every parameter from src under prefix, converted to f32 (Linear weights then to
// weight_dtype), checking names and shapes (tensors the model does not use, as position_ids or
// logit_scale, are ignored). With the HF
// layout, names may go with or without their "text_model." (transformers 5 saves
// CLIPTextModel without it; the hub's folders have it).
dato_status dato_text_encoder_load(dato_text_encoder* te, const dato_tensor_source* src, const char* prefix,
                                   dato_te_layout layout, dato_error* err);

// A diffusers text_encoder/ (or text_encoder_2/) folder: config.json + model.safetensors.
dato_status dato_text_encoder_open_folder(dato_text_encoder* te, const char* dir, dato_backend* be, dato_error* err);
// dato_text_encoder_open_folder with every Linear weight stored as dtype.
dato_status dato_text_encoder_open_folder_as(dato_text_encoder* te, const char* dir, dato_backend* be, dato_dtype dtype,
                                             dato_error* err);
// A single-file checkpoint's encoder under prefix: SD1 "cond_stage_model.transformer." and
// SDXL "conditioner.embedders.0.transformer." (HF layout); SD2 "cond_stage_model.model." and
// SDXL "conditioner.embedders.1.model." (OpenCLIP layout). Config inferred (hints may be NULL).
dato_status dato_text_encoder_open_source(dato_text_encoder* te, const dato_tensor_source* src, const char* prefix,
                                          dato_te_layout layout, const dato_te_hints* hints, dato_backend* be,
                                          dato_error* err);
dato_status dato_text_encoder_open_source_as(dato_text_encoder* te, const dato_tensor_source* src, const char* prefix,
                                             dato_te_layout layout, const dato_te_hints* hints, dato_backend* be,
                                             dato_dtype dtype, dato_error* err);
void dato_text_encoder_free(dato_text_encoder* te);

// Plans the workspace for batch B and length L (forward does it on a change; calling it up
// front keeps every forward free of allocation).
dato_status dato_text_encoder_reserve(dato_text_encoder* te, int B, int L, dato_error* err);

// One forward over ids (B, L) on the host (0 <= id < vocab_size, 1 <= L <= max_positions):
//   hidden (B, L, W): the output of layer n_layers - 1 - skip (skip 0: the last layer; up to
//     skip n_layers: the embeddings), with the final LayerNorm when final_norm. May be NULL.
//   pooled (B, P) or (B, W) without projection: the final-LayerNorm'd last layer at the eos
//     position, then text_projection. May be NULL (then layers past the hidden one are skipped).
dato_status dato_text_encoder_forward(dato_text_encoder* te, const int32_t* ids, int B, int L, int skip,
                                      int final_norm, dato_tensor* hidden, dato_tensor* pooled, dato_error* err);

// The pooling positions transformers uses for ids (B, L): see DATO_TE_LEGACY_EOS.
void dato_te_eos_positions(const int32_t* ids, int B, int L, int eos_token_id, int32_t* pos);

#endif
