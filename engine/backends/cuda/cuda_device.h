// CUDA device discovery for the CUDA backend. Callable from C; safe on machines without a GPU
// or driver (the count is then 0 and nothing aborts).
#ifndef DATO_CUDA_DEVICE_H
#define DATO_CUDA_DEVICE_H

#include <stddef.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

// Number of usable CUDA devices; 0 when there is no driver, no GPU, or the driver is too old
// for this build's runtime.
int dato_cuda_device_count(void);

// Writes a one-line description of device dev into buf (n bytes), e.g.
// "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB". DATO_ERR_INVALID for a bad dev or buffer,
// DATO_ERR_UNSUPPORTED when the runtime cannot query the device.
dato_status dato_cuda_describe(int dev, char* buf, size_t n, dato_error* err);

#ifdef __cplusplus
}
#endif

#endif
