// Seeded random inputs and device tensors for the GPU tests that compare a CUDA op with the CPU
// backend: uniform host buffers, their rounding through a half dtype (what the GPU multiplies),
// uploads in any weight dtype, NaN-poisoned outputs and downloads.
#ifndef DATO_TEST_GPU_TENSORS_H
#define DATO_TEST_GPU_TENSORS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "gpu_test.h"
#include "tensor.h"

static uint64_t gpu_test_rng = 0x9E3779B97F4A7C15ull;

// Uniform in [-1, 1) (xorshift64*).
static inline float frand(void) {
    uint64_t* r = &gpu_test_rng;
    *r ^= *r >> 12, *r ^= *r << 25, *r ^= *r >> 27;
    return (float)((*r * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1 << 23) - 1.0f;
}

// n random floats in [-scale, scale), malloc'd.
static inline float* rand_buf(size_t n, float scale) {
    float* p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
    return p;
}

static inline size_t numel(int ndim, const int64_t* shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

// x (n) rounded through dtype dt (a copy, malloc'd): what the GPU computes with.
static inline float* rounded(const float* x, size_t n, dato_dtype dt) {
    float* r = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        r[i] = dt == DATO_F16 ? dato_f16_to_f32(dato_f32_to_f16(x[i]))
             : dt == DATO_BF16 ? dato_bf16_to_f32(dato_f32_to_bf16(x[i])) : x[i];
    return r;
}

// A device tensor holding host (shape) converted to dtype dt on the host.
static inline dato_tensor dev_tensor(dato_backend* gpu, const float* host, dato_dtype dt, int ndim, const int64_t* shape) {
    size_t n = numel(ndim, shape), bytes = n * dato_dtype_size(dt);
    void* d = gpu->ops->alloc(gpu, bytes);
    if (dt == DATO_F32) {
        gpu->ops->upload(gpu, d, host, bytes);
    } else {
        uint16_t* h = malloc(bytes);
        for (size_t i = 0; i < n; i++) h[i] = dt == DATO_F16 ? dato_f32_to_f16(host[i]) : dato_f32_to_bf16(host[i]);
        gpu->ops->upload(gpu, d, h, bytes);
        free(h);
    }
    return dato_tensor_make(d, dt, DATO_DEV_CUDA, ndim, shape);
}

// An F32 device tensor filled with NaN, so an element an op misses shows.
static inline dato_tensor dev_poisoned(dato_backend* gpu, int ndim, const int64_t* shape) {
    size_t n = numel(ndim, shape);
    float* nan = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) nan[i] = NAN;
    dato_tensor t = dev_tensor(gpu, nan, DATO_F32, ndim, shape);
    free(nan);
    return t;
}

// The device tensor t (F32) on the host, malloc'd.
static inline float* to_host(dato_backend* gpu, const dato_tensor* t) {
    size_t bytes = dato_tensor_nbytes(t);
    float* h = malloc(bytes);
    gpu->ops->download(gpu, h, t->data, bytes);
    return h;
}

// The reference of a GPU conv2d: the CPU backend's on x (B, Ci, H, W) and w (Co, Ci, kh, kw)
// rounded through dt (what the GPU multiplies), + b (Co) unless NULL. ref (B, Co, Ho, Wo), malloc'd;
// NULL, said on stderr, when the CPU op fails.
static inline float* cpu_conv2d_ref(dato_backend* cpu, const float* x, const float* w, const float* b, dato_dtype dt,
                                    const int64_t* x_shape, const int64_t* w_shape, const int64_t* o_shape, int sh,
                                    int sw, int ph, int pw) {
    size_t nx = numel(4, x_shape), nw = numel(4, w_shape);
    float *xr = rounded(x, nx, dt), *wr = rounded(w, nw, dt), *ref = malloc(numel(4, o_shape) * sizeof(float));
    dato_tensor cx = dato_tensor_make(xr, DATO_F32, DATO_DEV_CPU, 4, x_shape);
    dato_tensor cw = dato_tensor_make(wr, DATO_F32, DATO_DEV_CPU, 4, w_shape);
    dato_tensor cb = dato_tensor_f32_1d((float*)b, w_shape[0]);
    dato_tensor cout = dato_tensor_make(ref, DATO_F32, DATO_DEV_CPU, 4, o_shape);
    dato_error err = {{0}};
    if (cpu->ops->conv2d(cpu, &cout, &cx, &cw, b ? &cb : NULL, sh, sw, ph, pw, &err)) {
        fprintf(stderr, "cpu conv2d: %s\n", err.msg);
        free(ref);
        ref = NULL;
    }
    free(xr), free(wr);
    return ref;
}

// The reference of a GPU attention: the CPU backend's on q (B, Nq, H*D), k, v (B, Nk, H*D) rounded
// through dt. ref (B, Nq, H*D), malloc'd; NULL, said on stderr, when the CPU op fails.
static inline float* cpu_attention_ref(dato_backend* cpu, const float* q, const float* k, const float* v, dato_dtype dt,
                                       const int64_t* q_shape, const int64_t* k_shape, int heads, float scale,
                                       int causal) {
    size_t n_q = numel(3, q_shape), n_k = numel(3, k_shape);
    float *qr = rounded(q, n_q, dt), *kr = rounded(k, n_k, dt), *vr = rounded(v, n_k, dt);
    float* ref = malloc(n_q * sizeof(float));
    dato_tensor cq = dato_tensor_make(qr, DATO_F32, DATO_DEV_CPU, 3, q_shape);
    dato_tensor ck = dato_tensor_make(kr, DATO_F32, DATO_DEV_CPU, 3, k_shape);
    dato_tensor cv = dato_tensor_make(vr, DATO_F32, DATO_DEV_CPU, 3, k_shape);
    dato_tensor cout = dato_tensor_make(ref, DATO_F32, DATO_DEV_CPU, 3, q_shape);
    dato_error err = {{0}};
    if (cpu->ops->attention(cpu, &cout, &cq, &ck, &cv, heads, scale, causal, &err)) {
        fprintf(stderr, "cpu attention: %s\n", err.msg);
        free(ref);
        ref = NULL;
    }
    free(qr), free(kr), free(vr);
    return ref;
}

#endif
