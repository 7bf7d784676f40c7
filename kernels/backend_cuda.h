// The CUDA backend: fills backend.h's op table with CUDA kernels and cuBLAS GEMMs on one
// device and one stream. Tensors live in device memory (alloc is cudaMalloc); upload and
// download copy to and from the host and are the only ops that wait for the device.
#ifndef DATO_BACKEND_CUDA_H
#define DATO_BACKEND_CUDA_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// A backend on CUDA device `device`: its stream, cuBLAS handle and scratch. DATO_ERR_UNSUPPORTED
// when there is no such device or no driver; DATO_ERR_NOMEM when the scratch does not fit.
dato_status dato_backend_cuda_init(dato_backend* be, int device, dato_error* err);

#ifdef __cplusplus
}
#endif

#endif
