// The AutoencoderKL decoder of SD1.x / SD2.x / SDXL (diffusers autoencoders/vae.py Decoder):
// latents (B, latent_channels, h, w) -> image (B, 3, 8h, 8w) in about [-1, 1].
//
//   z = latents / scaling_factor + shift_factor; post_quant_conv 1x1; conv_in 3x3;
//   mid: ResBlock, single-head self-attention over the h*w tokens, ResBlock;
//   up blocks from the deepest level (diffusers up_blocks.0 = LDM up.{n-1}): layers_per_block + 1
//   ResBlocks, then nearest x2 + conv 3x3 except in the last; GroupNorm + SiLU + conv_out.
// Every GroupNorm has eps 1e-6; ResBlocks have no time embedding. The encoder is not built.
//
// Weights live in one block; every parameter has its diffusers and its LDM name (engine/models/vae_params.c).
// Activations rotate through three planned buffers (engine/models/vae.c), so memory at 512x512 is a
// few full-resolution activations, not one per layer.
#ifndef DATO_VAE_H
#define DATO_VAE_H

#include "arena.h"
#include "backend.h"
#include "param_table.h"
#include "status.h"
#include "tensor.h"
#include "tensor_source.h"
#include "unet.h" // dato_affine, dato_layout

#define DATO_VAE_MAX_LEVELS 6
#define DATO_VAE_MAX_RES 8 // ResBlocks per up block: layers_per_block + 1

typedef struct {
    int latent_channels, out_channels;
    int n_levels;
    int block_channels[DATO_VAE_MAX_LEVELS]; // block_out_channels, level 0 = full resolution
    int layers_per_block;                    // the decoder's up blocks have one more ResBlock
    int norm_groups;
    float norm_eps;                          // 1e-6 in every diffusers / LDM VAE
    float scaling_factor, shift_factor;      // shift 0 when the config has none
    int mid_attention;                       // mid_block_add_attention
    int post_quant_conv;                     // use_post_quant_conv
} dato_vae_config;

// Reads a diffusers vae/config.json (AutoencoderKL). Unsupported options are errors naming the field.
dato_status dato_vae_config_from_json(dato_vae_config* cfg, const char* path, dato_error* err);
dato_status dato_vae_config_from_json_text(dato_vae_config* cfg, const char* text, const char* label,
                                           dato_error* err);
dato_status dato_vae_config_validate(const dato_vae_config* cfg, dato_error* err);
// Infers an LDM decoder's config from the tensors under prefix ("first_stage_model."): levels,
// channels, layers per block, latent channels, attention; scaling_factor is the caller's
// (0.18215 SD1/2, 0.13025 SDXL), and so is norm_groups, which shapes cannot tell (0: 32, as in
// every released LDM VAE).
dato_status dato_vae_config_infer_ldm(dato_vae_config* cfg, const dato_tensor_source* src, const char* prefix,
                                      float scaling_factor, int norm_groups, dato_error* err);

typedef struct {
    int cin, cout;
    dato_affine norm1, conv1, norm2, conv2, conv_shortcut; // conv_shortcut only if cin != cout
} dato_vae_resblock;

typedef struct {
    dato_affine norm, q, k, v, out; // q/k/v/out as (C, C) or (C, C, 1, 1): the linear op takes both
} dato_vae_attention;

typedef struct {
    int n_res;
    dato_vae_resblock res[DATO_VAE_MAX_RES];
    int has_upsample;
    dato_affine upsample; // conv 3x3 after the nearest x2
} dato_vae_up_block;

// One parameter (engine/io/param_table.h): name[DATO_LAYOUT_DIFFUSERS] and name[DATO_LAYOUT_LDM]
// without the prefix, the attention matrices' older diffusers name (legacy) and 1x1-conv form
// (matrix), shape, slot.
typedef dato_param dato_vae_param;

typedef struct {
    dato_vae_config cfg;
    dato_backend* be;
    dato_affine post_quant_conv, conv_in;
    dato_vae_resblock mid_res[2];
    dato_vae_attention mid_attn;
    dato_vae_up_block up[DATO_VAE_MAX_LEVELS]; // diffusers order: up[0] is the deepest level
    dato_affine norm_out, conv_out;
    dato_vae_param* params; // (n_params)
    int n_params;
    size_t n_weights;       // total elements
    dato_dtype weight_dtype; // of the GEMM weights (param.gemm); everything else is f32
    void* weights;          // one block on be
} dato_vae;

// Builds the parameter table for cfg (no weights yet).
dato_status dato_vae_build(dato_vae* v, const dato_vae_config* cfg, dato_backend* be, dato_error* err);
// Allocates the weight block and fills it with seeded normals * scale (norm gammas 1 + noise).
dato_status dato_vae_init_random(dato_vae* v, unsigned long long seed, float scale, dato_error* err);
// After build, before the weights are allocated: stores every Linear/Conv2d weight as dt (F32,
// or F16/BF16 on a backend that multiplies them: engine/io/weight_dtype.h), refusing one that cannot.
dato_status dato_vae_set_weight_dtype(dato_vae* v, dato_dtype dt, dato_error* err);
// Checks that every decoder parameter exists under prefix in the layout with the expected shape
// (matrices as (C, C) or (C, C, 1, 1)), and that no other tensor exists under prefix + "decoder."
// (an extra one means a config mismatch); the encoder and quant_conv are ignored. Then loads them.
dato_status dato_vae_load_weights(dato_vae* v, const dato_tensor_source* src, dato_layout layout, const char* prefix,
                                  dato_error* err);
// A diffusers vae/ folder (config.json + diffusion_pytorch_model[.fp16].safetensors), or a model
// folder holding vae/.
dato_status dato_vae_open_folder(dato_vae* v, const char* dir, dato_backend* be, dato_error* err);
// dato_vae_open_folder with every Linear/Conv2d weight stored as dtype.
dato_status dato_vae_open_folder_as(dato_vae* v, const char* dir, dato_backend* be, dato_dtype dtype, dato_error* err);
// An LDM single-file source: tensors under prefix (usually "first_stage_model."), config inferred
// with norm_groups GroupNorm groups (0: 32, as in every released LDM VAE).
dato_status dato_vae_open_source(dato_vae* v, const dato_tensor_source* src, const char* prefix, float scaling_factor,
                                 int norm_groups, dato_backend* be, dato_error* err);
dato_status dato_vae_open_source_as(dato_vae* v, const dato_tensor_source* src, const char* prefix,
                                    float scaling_factor, int norm_groups, dato_backend* be, dato_dtype dtype,
                                    dato_error* err);
void dato_vae_free(dato_vae* v);
const dato_vae_param* dato_vae_find_param(const dato_vae* v, dato_layout layout, const char* name);

// Workspace for one (batch, h, w) latent size: planned once by a measuring pass on the null
// backend, then one allocation; decode allocates nothing.
typedef struct {
    int batch, h, w;
    dato_arena arena;
    void* block;
    size_t bytes;
    dato_tensor shift; // (B, latent_channels) filled with shift_factor; data NULL when it is 0
} dato_vae_ws;

// Bytes of the workspace for (batch, h, w) latents, from the measuring pass alone.
dato_status dato_vae_ws_bytes(const dato_vae* v, int batch, int h, int w, size_t* bytes, dato_error* err);
dato_status dato_vae_ws_create(dato_vae_ws* ws, const dato_vae* v, int batch, int h, int w, dato_error* err);
void dato_vae_ws_free(dato_vae_ws* ws, const dato_vae* v);

// image (B, out_channels, 8h, 8w) f32 = decoder(latents (B, latent_channels, h, w)), both on the
// backend's device; the factor is 2^(n_levels - 1). Convert with dato_image_from_float.
dato_status dato_vae_decode(const dato_vae* v, dato_vae_ws* ws, const dato_tensor* latents, dato_tensor* image,
                            dato_error* err);

#endif
