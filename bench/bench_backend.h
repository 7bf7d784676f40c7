// The backend a bench program runs on (--backend cpu|cuda, --device N) and the host <-> device
// copies of its inputs and outputs. On the CPU backend the copies are plain memcpys, so one code
// path times both; a CUDA timing ends with be->ops->synchronize (ops are asynchronous there).
#ifndef DATO_BENCH_BACKEND_H
#define DATO_BENCH_BACKEND_H

#include <stdio.h>
#include <string.h>

#include "backend.h"
#ifdef DATO_HAVE_CUDA
#include "backend_cuda.h"
#include "cuda_device.h"
#endif

// Starts backend `name` ("cpu": threads OpenMP threads; "cuda": device `device`) into be.
// 0 with a message naming prog when it cannot run here (an unknown name, a build without CUDA).
static inline int bench_backend_init(dato_backend* be, const char* name, int device, int threads, const char* prog) {
    dato_error err;
    if (!strcmp(name, "cpu")) {
        if (!dato_backend_cpu_init(be, threads, &err)) return 1;
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 0;
    }
    if (strcmp(name, "cuda")) {
        fprintf(stderr, "%s: --backend '%s': expected cpu or cuda\n", prog, name);
        return 0;
    }
#ifdef DATO_HAVE_CUDA
    if (dato_backend_cuda_init(be, device, &err)) {
        fprintf(stderr, "%s: --backend cuda --device %d: %s\n", prog, device, err.msg);
        return 0;
    }
    char desc[256];
    if (!dato_cuda_describe(device, desc, sizeof desc, &err)) fprintf(stderr, "%s: CUDA device %d: %s\n", prog, device, desc);
    return 1;
#else
    (void)device;
    fprintf(stderr, "%s: --backend cuda: this build has no CUDA backend (rebuild with -DDATO_CUDA=ON)\n", prog);
    return 0;
#endif
}

// The CUDA options of backend be (started as backend `name`), as dato-generate sets them: attention
// in the weights' dtype (F16/BF16 weights: tensor-core attention), conv2d by --conv auto|im2col|cudnn
// (NULL: auto). 1 on the CPU unless --conv was given; 0 with a message naming prog on a bad value.
static inline int bench_backend_configure(dato_backend* be, const char* name, dato_dtype weights, const char* conv,
                                          const char* prog) {
    if (strcmp(name, "cuda")) {
        if (!conv) return 1;
        fprintf(stderr, "%s: --conv %s needs --backend cuda\n", prog, conv);
        return 0;
    }
    if (!conv) conv = "auto";
#ifdef DATO_HAVE_CUDA
    dato_cuda_options opt = {.attention = weights, .conv = DATO_CUDA_CONV_AUTO};
    if (!strcmp(conv, "im2col")) opt.conv = DATO_CUDA_CONV_IM2COL;
    else if (!strcmp(conv, "cudnn")) opt.conv = DATO_CUDA_CONV_CUDNN;
    else if (strcmp(conv, "auto")) {
        fprintf(stderr, "%s: --conv '%s': expected auto, im2col or cudnn\n", prog, conv);
        return 0;
    }
    dato_error err;
    if (dato_backend_cuda_configure(be, &opt, &err)) {
        fprintf(stderr, "%s: --conv %s: %s\n", prog, conv, err.msg);
        return 0;
    }
    return 1;
#else
    (void)be, (void)weights;
    return 0; // not reached: bench_backend_init refuses cuda in a build without it
#endif
}

// A tensor shaped like the host tensor t in memory allocated on be, holding a copy of t's data.
// data == NULL when the allocation fails.
static inline dato_tensor bench_to_device(dato_backend* be, const dato_tensor* t) {
    size_t bytes = dato_tensor_nbytes(t);
    dato_tensor d = dato_tensor_make(be->ops->alloc(be, bytes), t->dtype, be->device, t->ndim, t->shape);
    if (d.data) be->ops->upload(be, d.data, t->data, bytes);
    return d;
}

#endif
