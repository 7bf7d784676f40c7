// The feature-extractor interface FID and KID share: images in (uint8, any size, grey or RGB),
// feature vectors out. Inception-v3 (pytorch-fid's FID network) is one implementation; the
// embedded default model's feature network (its own issue) is the other. Statistics record the
// extractor's name, its weights' hash and its preprocessing, so scores from different
// extractors are never compared.
#ifndef DATO_EXTRACTOR_H
#define DATO_EXTRACTOR_H

#include <stdint.h>

#include "backend.h"
#include "preprocess.h"

typedef struct dato_feature_extractor dato_feature_extractor;

struct dato_feature_extractor {
    char name[128];          // e.g. "pytorch-fid-inception-v3-pool3"
    char weights_hash[128];  // of the weights file, e.g. "fnv1a64:..."
    char preprocessing[64];  // e.g. "pytorch-fid"
    int dim;                 // feature size
    int in_c, in_h, in_w;    // the network's input, per image
    // One uint8 image (h, w, c), c 1 or 3, to the network's input (in_c, in_h, in_w).
    dato_status (*preprocess)(dato_feature_extractor* fx, const uint8_t* img, int h, int w, int c, float* out,
                              dato_error* err);
    // features (B, dim) of inputs (B, in_c, in_h, in_w), host memory.
    dato_status (*forward)(dato_feature_extractor* fx, const dato_tensor* x, dato_tensor* features, dato_error* err);
    void (*destroy)(dato_feature_extractor* fx);
    void* impl;
};

// pytorch-fid's Inception-v3 pool3 (2048-d) with weights from path (the standard .pth, or a
// .safetensors state dict) and the given preprocessing.
dato_status dato_extractor_inception_open(dato_feature_extractor* fx, const char* weights_path, dato_fid_prep prep,
                                          dato_backend* be, dato_error* err);
// FNV-1a 64 of a file, as "fnv1a64:<16 hex digits>".
dato_status dato_file_hash(const char* path, char* out, size_t n, dato_error* err);

#endif
