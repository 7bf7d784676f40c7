// FID input preprocessing: uint8 RGB (H, W, 3) -> float (3, 299, 299), the input of the FID
// Inception-v3. Three modes, each exact against its reference implementation (docs/FID.md §5,
// docs/FID_PREPROCESSING.md):
//   pytorch-fid  x/255, half-pixel bilinear (F.interpolate, align_corners=False), 2x - 1
//   tf           TF1 legacy bilinear (x = i*s, no half-pixel offset) on [0,255], (x - 128)/128
//   clean        clean-fid: PIL antialiased bicubic on float32 per channel, clip [0,255], (x - 128)/128
// Every mode resizes, even a 299x299 input (an exact identity at scale 1).
#ifndef DATO_METRICS_PREPROCESS_H
#define DATO_METRICS_PREPROCESS_H

#include <stdint.h>

#include "status.h"

#define DATO_FID_SIZE 299         // Inception-v3 input side
#define DATO_FID_MAX_SIDE 16384   // largest input side accepted (bounds the on-stack bicubic taps)

typedef enum {
    DATO_FID_PREP_PYTORCH_FID = 0, // the default
    DATO_FID_PREP_TF,
    DATO_FID_PREP_CLEAN,
} dato_fid_prep;

// "pytorch-fid", "tf", "clean" -> mode; DATO_ERR_INVALID naming the accepted values otherwise.
dato_status dato_fid_prep_parse(const char* name, dato_fid_prep* mode, dato_error* err);
// The mode's name as parse accepts it ("unknown" for an out-of-range value).
const char* dato_fid_prep_name(dato_fid_prep mode);

// Preprocesses one image. rgb: (h, w, 3) row-major uint8; out: (3, 299, 299) float.
// Allocates nothing. DATO_ERR_INVALID for a NULL pointer, a non-positive side, a side above
// DATO_FID_MAX_SIDE or an unknown mode.
dato_status dato_fid_preprocess(dato_fid_prep mode, const uint8_t* rgb, int h, int w, float* out,
                                dato_error* err);

// Grey (n pixels) -> RGB (n, 3) by repeating the channel, as PIL's convert("RGB") does
// (Fashion-MNIST and other single-channel datasets).
void dato_fid_grey_to_rgb(const uint8_t* grey, int64_t n, uint8_t* rgb);

#endif
