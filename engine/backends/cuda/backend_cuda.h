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

// How conv2d runs (engine/backends/cuda/cuda_conv_cudnn.cu, cuda_gemm.cu).
typedef enum {
    DATO_CUDA_CONV_AUTO,   // cuDNN where the build has it and it takes the shape and dtype, else im2col
    DATO_CUDA_CONV_IM2COL, // im2col into the scratch, then a cuBLAS GEMM
    DATO_CUDA_CONV_CUDNN,  // cuDNN only: an error where the build or cuDNN cannot
} dato_cuda_conv;

// Choices of the CUDA backend beyond the op table; the zero value is the default.
typedef struct {
    dato_dtype attention; // F32: f32 on the CUDA cores; F16/BF16: q, k, v and the probabilities rounded
                          // to it, both products as tensor-core MMAs with f32 accumulation
    dato_cuda_conv conv;
} dato_cuda_options;

// Sets the options of a CUDA backend; DATO_ERR_INVALID for a bad value, DATO_ERR_UNSUPPORTED for
// conv CUDNN in a build without cuDNN. Takes effect from the next op.
dato_status dato_backend_cuda_configure(dato_backend* be, const dato_cuda_options* opt, dato_error* err);
// Whether this build has cuDNN.
int dato_backend_cuda_has_cudnn(void);

#ifdef __cplusplus
}
#endif

#endif
