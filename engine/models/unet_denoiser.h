// The UNet (unet.h) as a denoiser (denoiser.h): skip branches are its depth units, its transformer
// blocks' self-attentions its attention sites, and the DaTo runtime is made over them.
#ifndef DATO_UNET_DENOISER_H
#define DATO_UNET_DENOISER_H

#include "denoiser.h"
#include "unet.h"

extern const dato_denoiser_model dato_denoiser_unet;

// The UNet's attention sites by level: every transformer block of the down and up paths at a level
// with attention, and the mid block's at the deepest level.
void dato_unet_site_layout(const dato_unet* u, dato_site_layout* out);
// A DaTo runtime over the UNet's sites on its backend (dato_runtime_create).
dato_status dato_unet_runtime_create(dato_runtime** rt, const dato_unet* u, int batch, int cfg_half, int h, int w,
                                     const dato_prune_config* pc, dato_error* err);

#endif
