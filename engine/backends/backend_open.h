// Starting a backend by name: the one start-up of every program (dato-generate, dato-search,
// the bench programs). "cpu": OpenMP threads; "cuda": a device and the CUDA options.
//
// Header-only on purpose: the CUDA backend (engine/backends/cuda/) is linked into the executables alone, which
// are compiled with DATO_HAVE_CUDA (CMakeLists.txt, dato_use_cuda); the libraries are built
// without it. So each program compiles its own copy here, and a library that must start a backend
// (search_run.c) is handed the program's copy as a dato_backend_open_fn; its own copy, built
// without CUDA, starts the CPU and says why it cannot start CUDA.
#ifndef DATO_BACKEND_OPEN_H
#define DATO_BACKEND_OPEN_H

#include <stdio.h>
#include <string.h>

#include "backend.h"
#ifdef DATO_HAVE_CUDA
#include "backend_cuda.h"
#include "cuda_device.h"
#endif

// What the programs' --backend and --conv choose from, NULL-terminated; the conv names are in
// dato_cuda_conv's order.
static const char* const dato_backend_names[] = {"cpu", "cuda", NULL};
static const char* const dato_backend_conv_names[] = {"auto", "im2col", "cudnn", NULL};

typedef struct {
    const char* name;     // "cpu" or "cuda"
    int threads;          // cpu: OpenMP threads (<= 0: OpenMP's default)
    int device;           // cuda: the device
    int device_modulo;    // cuda: 1 takes device modulo the devices present (one process per local rank)
    dato_dtype attention; // cuda: F32, or F16/BF16 attention products on the tensor cores (dato_cuda_options)
    const char* conv;     // cuda: one of dato_backend_conv_names; NULL: auto. On the cpu it must be NULL.
} dato_backend_spec;

// Starts spec's backend into be. desc (cap bytes, may be NULL) gets one line on the device for the
// program to print, e.g. "CUDA device 0: NVIDIA H100 80GB HBM3, sm_90, ..." ("" on the CPU).
// Errors name the option at fault: DATO_ERR_INVALID for an unknown name or conv,
// DATO_ERR_UNSUPPORTED for cuda where this build or this host has none.
static inline dato_status dato_backend_open(dato_backend* be, const dato_backend_spec* spec, char* desc, size_t cap,
                                            dato_error* err) {
    if (desc && cap) desc[0] = 0;
    int conv = 0; // an index into dato_backend_conv_names = a dato_cuda_conv
    while (spec->conv && dato_backend_conv_names[conv] && strcmp(spec->conv, dato_backend_conv_names[conv])) conv++;
    if (spec->conv && !dato_backend_conv_names[conv])
        return dato_fail(err, DATO_ERR_INVALID, "--conv '%s': expected auto, im2col or cudnn", spec->conv);
    if (!strcmp(spec->name, "cpu")) {
        if (spec->conv) return dato_fail(err, DATO_ERR_INVALID, "--conv %s needs --backend cuda", spec->conv);
        return dato_backend_cpu_init(be, spec->threads, err);
    }
    if (strcmp(spec->name, "cuda"))
        return dato_fail(err, DATO_ERR_INVALID, "--backend '%s': expected cpu or cuda", spec->name);
#ifdef DATO_HAVE_CUDA
    int device = spec->device;
    if (spec->device_modulo) {
        int n = dato_cuda_device_count();
        if (n < 1) return dato_fail(err, DATO_ERR_UNSUPPORTED, "--backend cuda: no CUDA device (or driver) on this host");
        device %= n;
    }
    dato_cuda_options opt = {.attention = spec->attention, .conv = (dato_cuda_conv)conv};
    dato_error why;
    dato_status st = dato_backend_cuda_init(be, device, &why);
    if (!st && (st = dato_backend_cuda_configure(be, &opt, &why))) dato_backend_destroy(be);
    if (st) return dato_fail(err, st, "--backend cuda --device %d: %s", device, why.msg);
    char line[256];
    if (desc && cap && !dato_cuda_describe(device, line, sizeof line, &why))
        snprintf(desc, cap, "CUDA device %d: %s", device, line);
    return DATO_OK;
#else
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "--backend cuda: this build has no CUDA backend (rebuild with "
                     "-DDATO_CUDA=ON on a machine with nvcc)");
#endif
}

// dato_backend_open's type: what a program hands a library that starts backends.
typedef dato_status (*dato_backend_open_fn)(dato_backend* be, const dato_backend_spec* spec, char* desc, size_t cap,
                                            dato_error* err);

#endif
