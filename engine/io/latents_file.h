// Initial latents from a file, for dato_generate_params.init_latent (docs/NOISE.md): standard-normal
// noise (B, C, h, w) as diffusers' `pipe(..., latents=x)` takes it, before the pipeline multiplies it
// by the sampler's init_noise_sigma.
#ifndef DATO_LATENTS_FILE_H
#define DATO_LATENTS_FILE_H

#include "status.h"

// Reads path into out (B, C, h, w). path ending in .npy: a float16, float32 or float64 array
// (little-endian, C order); .safetensors: the file's only tensor, or the one named "latents"
// (F32, F16 or BF16). The shape must be exactly (B, C, h, w) and every value finite; errors name the
// file, the tensor and the expected shape.
dato_status dato_latents_load(const char* path, int B, int C, int h, int w, float* out, dato_error* err);

#endif
