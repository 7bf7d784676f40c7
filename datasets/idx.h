// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed: a 4-byte magic
// (0, 0, type, ndims), ndims big-endian u32 sizes, then the data. Only unsigned-byte data
// (type 0x08), which is what image and label files hold.
#ifndef DATO_IDX_H
#define DATO_IDX_H

#include <stdint.h>

#include "status.h"

#define DATO_IDX_MAX_DIMS 4

typedef struct {
    int ndim;
    int64_t shape[DATO_IDX_MAX_DIMS]; // images: (n, rows, cols); labels: (n)
    uint8_t* data;                    // prod(shape) bytes, malloc'd
} dato_idx;

// Reads path (.gz or not). Errors name the file and what was wrong (magic, type, sizes, truncation).
dato_status dato_idx_read(dato_idx* out, const char* path, dato_error* err);
void dato_idx_free(dato_idx* x);

#endif
