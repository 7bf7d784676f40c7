// Reading committed fixtures: reference tensors (safetensors), text and JSON files.
#ifndef DATO_TEST_FIXTURE_H
#define DATO_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "file_util.h"
#include "safetensors.h"

// A whole text file, NUL-terminated and malloc'd (at most 256 MiB); NULL and a message if unreadable.
static inline char* fixture_text(const char* path) {
    char* text = NULL;
    dato_error err;
    if (dato_read_text_file(path, &text, (size_t)1 << 28, &err)) fprintf(stderr, "%s\n", err.msg);
    return text;
}

// A JSON file parsed (the caller cJSON_Deletes it); NULL and a message if unreadable or not JSON.
static inline cJSON* fixture_json(const char* path) {
    char* text = fixture_text(path);
    cJSON* root = text ? cJSON_Parse(text) : NULL;
    if (text && !root) fprintf(stderr, "%s: not valid JSON\n", path);
    free(text);
    return root;
}

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
