// The UNet (unet.h) as a denoiser (denoiser.h): skip branches are its depth units, its transformer
// blocks' self-attentions its attention sites, and the DaTo runtime is made over them.
#ifndef DATO_UNET_DENOISER_H
#define DATO_UNET_DENOISER_H

#include "denoiser.h"
#include "unet.h"

extern const dato_denoiser_model dato_denoiser_unet;

#endif
