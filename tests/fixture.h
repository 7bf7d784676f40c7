// Reading reference tensors from committed safetensors fixtures.
#ifndef DATO_TEST_FIXTURE_H
#define DATO_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "safetensors.h"

// A malloc'd f32 copy of tensor `name` (NULL and a message if absent); *numel gets its size.
static inline float* fixture_f32(const dato_safetensors* st, const char* name, size_t* numel) {
    const dato_st_tensor* t = dato_safetensors_find(st, name);
    if (!t) {
        fprintf(stderr, "%s: fixture tensor '%s' missing\n", st->path, name);
        return NULL;
    }
    size_t n = (size_t)t->numel;
    float* x = malloc((n ? n : 1) * sizeof *x);
    dato_error err;
    if (dato_st_tensor_to_f32(t, x, n, &err) != DATO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        free(x);
        return NULL;
    }
    if (numel) *numel = n;
    return x;
}

#endif
