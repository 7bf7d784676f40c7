// A name/shape table as a dato_tensor_source: the manifest tests check the loaders' name and
// shape handling on the real models' tables without any weights.
#ifndef DATO_TEST_TABLE_SOURCE_H
#define DATO_TEST_TABLE_SOURCE_H

#include <stdlib.h>
#include <string.h>

#include "tensor_source.h"

typedef struct {
    dato_st_tensor* t;  // (n) sorted by name (table_sort)
    int n;
    const char* hidden; // a name to pretend is absent, or NULL
    const char* label;
} table_source;

static inline int table_cmp(const void* a, const void* b) {
    return strcmp(((const dato_st_tensor*)a)->name, ((const dato_st_tensor*)b)->name);
}

static inline void table_sort(table_source* s) { qsort(s->t, (size_t)s->n, sizeof *s->t, table_cmp); }

static inline const dato_st_tensor* table_find(const void* ctx, const char* name) {
    const table_source* s = ctx;
    if (s->hidden && strcmp(name, s->hidden) == 0) return NULL;
    dato_st_tensor key = {.name = (char*)name};
    return bsearch(&key, s->t, (size_t)s->n, sizeof key, table_cmp);
}
static inline int table_count(const void* ctx) { return ((const table_source*)ctx)->n; }
static inline const dato_st_tensor* table_at(const void* ctx, int i) { return &((const table_source*)ctx)->t[i]; }

static inline dato_tensor_source table_as_source(const table_source* s) {
    return (dato_tensor_source){.ctx = s, .label = s->label, .find = table_find, .count = table_count, .at = table_at};
}

// Frees the names and the array.
static inline void table_free(table_source* s) {
    for (int i = 0; i < s->n; i++) free(s->t[i].name);
    free(s->t);
    s->t = NULL;
    s->n = 0;
}

#endif
