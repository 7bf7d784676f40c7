// The FID Inception-v3 network (pytorch-fid's InceptionV3 up to pool_3; docs/FID.md §3-4) on
// any backend: 94 conv + BatchNorm + ReLU units, BN folded into the conv weights at load, and
// the 2048-d pool_3 feature of a batch of (B, 3, H, W) images already in [-1, 1] (no resize,
// no normalisation here; H = W = 299 for standard FID).
#ifndef DATO_INCEPTION_H
#define DATO_INCEPTION_H

#include <stddef.h>

#include "arena.h"
#include "backend.h"
#include "tensor_source.h"

#define DATO_INCEPTION_UNITS 94
#define DATO_INCEPTION_FEATURES 2048

// One BasicConv2d with its BatchNorm folded: w' = w*g/sqrt(var+1e-3), b' = beta - mean*g/sqrt(var+1e-3).
typedef struct {
    char name[40]; // state-dict prefix, "Mixed_5b.branch5x5_2"
    int cin, cout, kh, kw, stride, pad_h, pad_w;
    dato_tensor w; // (cout, cin, kh, kw), in the weight block
    dato_tensor b; // (cout)
} dato_inception_unit;

typedef struct {
    dato_backend* be;
    dato_inception_unit units[DATO_INCEPTION_UNITS]; // in state-dict order, which is also execution order
    void* weights;       // one backend block holding every unit's w and b; NULL until loaded
    void* workspace;     // activations of a forward, planned for workspace_batch images
    size_t workspace_bytes;
    int64_t workspace_batch, workspace_h, workspace_w;
} dato_inception;

// Builds the parameter table on be; no weights yet.
void dato_inception_init(dato_inception* net, dato_backend* be);
// Reads every unit's five tensors (<unit>.conv.weight, .bn.weight, .bn.bias, .bn.running_mean,
// .bn.running_var; F32/F16/BF16) from src, checks their shapes, folds BN and uploads.
// num_batches_tracked and fc.* are ignored. Errors name the tensor.
dato_status dato_inception_load(dato_inception* net, const dato_tensor_source* src, dato_error* err);
// features (B, 2048) = pool_3 of images (B, 3, H, W), both on the backend's device. The
// workspace is planned (a measuring pass on the null backend) when B, H or W change.
dato_status dato_inception_forward(dato_inception* net, const dato_tensor* images, dato_tensor* features,
                                   dato_error* err);
void dato_inception_free(dato_inception* net);
// Writes a safetensors state dict in the exact shapes, filled by a seeded integer hash (He-scaled
// convs, BatchNorm near identity) that tools/make_inception_fixtures.py reproduces: the parity
// fixtures' weights, and weights for benchmarks and tests where the real file is absent.
// The generator behind it: v in [-1, 1) for element k of tensor i (an integer hash).
double dato_inception_hash_uniform(uint32_t seed, uint32_t i, uint32_t k);
dato_status dato_inception_write_seeded(const dato_inception* net, const char* path, uint32_t seed, dato_error* err);

#endif
