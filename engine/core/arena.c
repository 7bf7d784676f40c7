#include "arena.h"

dato_arena dato_arena_measure(void) { return (dato_arena){.measuring = 1}; }

dato_arena dato_arena_over(void* base, size_t cap) { return (dato_arena){.base = base, .cap = cap}; }

size_t dato_arena_bytes(dato_dtype dt, size_t n) {
    size_t b = n * dato_dtype_size(dt);
    return (b + DATO_ARENA_ALIGN - 1) / DATO_ARENA_ALIGN * DATO_ARENA_ALIGN;
}

void* dato_arena_alloc(dato_arena* a, size_t bytes) {
    bytes = (bytes + DATO_ARENA_ALIGN - 1) / DATO_ARENA_ALIGN * DATO_ARENA_ALIGN;
    if (!a->measuring && a->top + bytes > a->cap) {
        a->overflowed = 1;
        return NULL;
    }
    void* p = a->measuring ? NULL : a->base + a->top;
    a->top += bytes;
    if (a->top > a->peak) a->peak = a->top;
    return p;
}

dato_tensor dato_arena_tensor(dato_arena* a, dato_dtype dt, dato_device dev, int ndim, const int64_t* shape) {
    dato_tensor t = dato_tensor_make(NULL, dt, dev, ndim, shape);
    t.data = dato_arena_alloc(a, dato_tensor_nbytes(&t));
    return t;
}
