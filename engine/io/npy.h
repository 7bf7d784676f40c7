// A strict reader of numpy .npy arrays held in memory: float16, float32 or float64, little-endian,
// C order, any number of dims up to DATO_NPY_MAX_DIMS. FID statistics (.npz entries, metrics/stats_io.c)
// and initial latents (engine/io/latents_file.c) both parse through it.
#ifndef DATO_NPY_H
#define DATO_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define DATO_NPY_MAX_DIMS 8

typedef struct {
    int itemsize;        // 2 ('<f2'), 4 ('<f4') or 8 ('<f8')
    int ndim;            // 0..DATO_NPY_MAX_DIMS
    int64_t shape[DATO_NPY_MAX_DIMS];
    int64_t numel;
    const unsigned char* data; // numel * itemsize bytes inside the parsed buffer, maybe unaligned
} dato_npy_array;

// Parses an .npy file held in bytes (n bytes; v1, v2 or v3 header). label names it in messages.
// Refuses a bad magic or version, a header that overruns the buffer or is not a dict with exactly
// 'descr', 'fortran_order' and 'shape', a dtype other than '<f2'/'<f4'/'<f8', fortran_order True,
// more than DATO_NPY_MAX_DIMS dims, negative or overflowing dims, and a data size that does not
// match the shape.
dato_status dato_npy_parse(const unsigned char* bytes, size_t n, const char* label, dato_npy_array* out,
                           dato_error* err);
// Element i (0 <= i < numel) as a double: exact for every dtype read.
double dato_npy_at(const dato_npy_array* a, int64_t i);

#endif
