// The backend a bench program runs on (--backend cpu|cuda, --device N, --conv) and the host <->
// device copies of its inputs and outputs. On the CPU backend the copies are plain memcpys, so one
// code path times both; a CUDA timing ends with be->ops->synchronize (ops are asynchronous there).
#ifndef DATO_BENCH_BACKEND_H
#define DATO_BENCH_BACKEND_H

#include <stdio.h>

#include "backend.h"
#include "backend_open.h"

// Starts spec's backend into be (dato_backend_open) and says which CUDA device runs; 0 with a
// message naming prog when it cannot run here (an unknown name or --conv, a build without CUDA).
static inline int bench_backend_init(dato_backend* be, const dato_backend_spec* spec, const char* prog) {
    char desc[320];
    dato_error err;
    if (dato_backend_open(be, spec, desc, sizeof desc, &err)) {
        fprintf(stderr, "%s: %s\n", prog, err.msg);
        return 0;
    }
    if (desc[0]) fprintf(stderr, "%s: %s\n", prog, desc);
    return 1;
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
