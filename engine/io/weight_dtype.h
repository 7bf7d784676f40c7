// The storage dtype of GEMM weights (the Linear and Conv2d weights of a parameter table):
// F32 by default, or F16/BF16 converted on the host at load (round to nearest even) for a
// backend whose linear and conv2d multiply half weights with f32 accumulation (CUDA). Norms,
// biases, embeddings and positional tables always stay F32.
#ifndef DATO_WEIGHT_DTYPE_H
#define DATO_WEIGHT_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// "f32", "f16", "bf16": the spelling of --dtype.
const char* dato_weight_dtype_flag(dato_dtype dt);
// Parses "f32", "f16" or "bf16" (case-insensitive) into dt; DATO_ERR_INVALID otherwise.
dato_status dato_weight_dtype_parse(const char* s, dato_dtype* dt, dato_error* err);
// Checks that be can multiply GEMM weights of dtype dt: F32 anywhere, F16/BF16 on the CUDA
// backend only (the CPU backend computes in F32, the null backend plans nothing to load).
// what names the model in the message ("unet", "vae", "text encoder").
dato_status dato_weight_dtype_check(const dato_backend* be, dato_dtype dt, const char* what, dato_error* err);
// Uploads n f32 host values into dst, a slot of dtype dt on be: as they are for F32, else
// converted into half (n uint16 of host staging) first.
void dato_weight_upload(dato_backend* be, void* dst, const float* host, size_t n, dato_dtype dt, uint16_t* half);

#ifdef __cplusplus
}
#endif

#endif
