// Where named tensors come from: a lookup by name and an iteration over all of them. Loaders
// (UNet, text encoders, VAE) read through this, so the same code runs on safetensors files,
// sharded folders, .ckpt archives and, in tests, on name/shape tables.
#ifndef DATO_TENSOR_SOURCE_H
#define DATO_TENSOR_SOURCE_H

#include "safetensors.h"
#include "weight_files.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const void* ctx;
    const char* label; // a file name for messages
    const dato_st_tensor* (*find)(const void* ctx, const char* name);
    int (*count)(const void* ctx);
    const dato_st_tensor* (*at)(const void* ctx, int i);
    // Optional (NULL: nothing to do): t has been read for now; a mapped file may drop its pages
    // (they are read back from the file if t is needed again).
    void (*release)(const void* ctx, const dato_st_tensor* t);
} dato_tensor_source;

// A source over open weight files (valid while wf is open).
dato_tensor_source dato_tensor_source_files(const dato_weight_files* wf);

#ifdef __cplusplus
}
#endif

#endif
