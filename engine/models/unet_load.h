// Loading a UNet: from a diffusers folder (unet/config.json + safetensors, sharded or not) or
// an LDM single file (model.diffusion_model.* names, config inferred from tensor shapes).
#ifndef DATO_UNET_LOAD_H
#define DATO_UNET_LOAD_H

#include "unet.h"
#include "tensor_source.h"

// What tensor shapes cannot tell about an LDM UNet; zero fields take the SD-family rule
// (heads: 8 for a 768-wide context, else head dim 64; GroupNorm 32; SDXL time ids 256).
typedef struct {
    int heads[DATO_UNET_MAX_LEVELS];
    int norm_groups;
    int addition_time_embed_dim;
} dato_unet_ldm_hints;

// Opens path: a diffusers model folder (or its unet/ folder), or a single LDM .safetensors.
// Builds u on be and loads every weight, converted to f32. hints may be NULL.
dato_status dato_unet_open(dato_unet* u, const char* path, dato_backend* be, const dato_unet_ldm_hints* hints,
                           dato_error* err);
// dato_unet_open with every Linear/Conv2d weight stored as dtype: F32 (as dato_unet_open), or
// F16/BF16 converted on the host, for a backend that multiplies them (engine/io/weight_dtype.h).
dato_status dato_unet_open_as(dato_unet* u, const char* path, dato_backend* be, const dato_unet_ldm_hints* hints,
                              dato_dtype dtype, dato_error* err);
// Builds and loads an LDM UNet (model.diffusion_model.*) from a tensor source.
dato_status dato_unet_open_source(dato_unet* u, const dato_tensor_source* src, dato_backend* be,
                                  const dato_unet_ldm_hints* hints, dato_error* err);
dato_status dato_unet_open_source_as(dato_unet* u, const dato_tensor_source* src, dato_backend* be,
                                     const dato_unet_ldm_hints* hints, dato_dtype dtype, dato_error* err);
// Infers an LDM UNet's config from the tensors under prefix ("model.diffusion_model.").
dato_status dato_unet_config_infer_ldm(dato_unet_config* cfg, const dato_tensor_source* src, const char* prefix,
                                       const dato_unet_ldm_hints* hints, dato_error* err);
// Checks that every parameter of u exists under prefix in the given layout with the expected
// shape; strict also rejects tensors under prefix that u does not use. Names the tensor at fault.
dato_status dato_unet_check_names(const dato_unet* u, const dato_tensor_source* src, dato_layout layout,
                                  const char* prefix, int strict, dato_error* err);
// Loads every parameter (after dato_unet_check_names) into u's weight block, GEMM weights
// converted to u->weight_dtype.
dato_status dato_unet_load_weights(dato_unet* u, const dato_tensor_source* src, dato_layout layout, const char* prefix,
                                   dato_error* err);

#endif
