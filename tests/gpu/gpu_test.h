// The start every GPU test shares: skipped without a GPU, else the CPU and CUDA backends.
#ifndef DATO_TEST_GPU_TEST_H
#define DATO_TEST_GPU_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "backend_cuda.h"
#include "cuda_device.h"

// A GPU test's start: 77 (skipped: no CUDA device, said on stdout), 1 (a backend would not start,
// said on stderr), or 0 with cpu (cpu may be NULL) and gpu (device 0) started. The CPU reference
// runs its convolutions directly: Winograd's (cpu_winograd.c, taken at SD's channel counts by
// default) carry up to 1.6e-5 of rounding error, over the f32 comparisons' 1e-5.
static inline int gpu_test_start(dato_backend* cpu, dato_backend* gpu) {
    if (dato_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    setenv("DATO_CPU_CONV", "direct", 1);
    dato_error err = {{0}};
    if ((cpu && dato_backend_cpu_init(cpu, 0, &err)) || dato_backend_cuda_init(gpu, 0, &err)) {
        fprintf(stderr, "backend init: %s\n", err.msg);
        return 1;
    }
    return 0;
}

#endif
