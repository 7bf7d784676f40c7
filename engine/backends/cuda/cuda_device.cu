// CUDA device discovery: see cuda_device.h.
#include "cuda_device.h"

#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int dato_cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError(); // clear the error so later runtime calls do not see it
        return 0;
    }
    return count;
}

extern "C" dato_status dato_cuda_describe(int dev, char* buf, size_t n, dato_error* err) {
    if (!buf || n == 0) return dato_fail(err, DATO_ERR_INVALID, "cuda describe: NULL or empty buffer");
    buf[0] = '\0';
    int count = dato_cuda_device_count();
    if (dev < 0 || dev >= count)
        return dato_fail(err, DATO_ERR_INVALID, "cuda describe: device %d out of range (%d devices)", dev, count);
    cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, dev);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "cuda describe: device %d: %s", dev, cudaGetErrorString(e));
    }
    snprintf(buf, n, "%s, sm_%d%d, %d SMs, %.1f GiB", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return DATO_OK;
}
