// Tensors: a typed, shaped view over memory owned elsewhere (an arena, a mapped file, a
// weight block). Row-major, contiguous. Activations are NCHW for images, (B, N, C) for tokens.
#ifndef DATO_TENSOR_H
#define DATO_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { // the CUDA backend includes these headers from .cu files
#endif

// I32 and U8 hold indices and masks (the DaTo ops of backend.h); every other op takes F32 (or half weights).
typedef enum { DATO_F32 = 0, DATO_F16, DATO_BF16, DATO_I32, DATO_U8 } dato_dtype;
typedef enum { DATO_DEV_CPU = 0, DATO_DEV_CUDA } dato_device;

#define DATO_MAX_DIMS 4

typedef struct {
    void* data;
    dato_dtype dtype;
    dato_device device;
    int ndim;
    int64_t shape[DATO_MAX_DIMS];
} dato_tensor;

// Bytes per element of a dtype.
size_t dato_dtype_size(dato_dtype dt);
// "F32", "F16", "BF16", "I32", "U8".
const char* dato_dtype_name(dato_dtype dt);

// A tensor header over data (not copied). ndim in 1..DATO_MAX_DIMS.
dato_tensor dato_tensor_make(void* data, dato_dtype dt, dato_device dev, int ndim, const int64_t* shape);
// Shorthands for CPU f32 tensors.
dato_tensor dato_tensor_f32_1d(float* data, int64_t d0);
dato_tensor dato_tensor_f32_2d(float* data, int64_t d0, int64_t d1);
dato_tensor dato_tensor_f32_3d(float* data, int64_t d0, int64_t d1, int64_t d2);
dato_tensor dato_tensor_f32_4d(float* data, int64_t d0, int64_t d1, int64_t d2, int64_t d3);

int64_t dato_tensor_numel(const dato_tensor* t);
size_t dato_tensor_nbytes(const dato_tensor* t);
// 1 if both tensors have the same ndim and shape.
int dato_tensor_same_shape(const dato_tensor* a, const dato_tensor* b);
// Writes "(2, 320, 64, 64)" into buf.
const char* dato_shape_str(const dato_tensor* t, char* buf, size_t n);

// Scalar conversions (round to nearest even for f32 -> f16/bf16; NaN and Inf preserved).
float dato_f16_to_f32(uint16_t h);
uint16_t dato_f32_to_f16(float f);
float dato_bf16_to_f32(uint16_t b);
uint16_t dato_f32_to_bf16(float f);
// Converts n little-endian elements of dtype src_dt to f32.
void dato_convert_to_f32(float* dst, const void* src, dato_dtype src_dt, size_t n);
// The index of the first NaN or infinite value of x[0..n), or n when every value is finite.
size_t dato_first_nonfinite(const float* x, size_t n);

#ifdef __cplusplus
}
#endif

#endif
