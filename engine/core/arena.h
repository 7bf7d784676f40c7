// A bump allocator over one block of backend memory: the workspace of a forward pass is
// planned once (a measuring pass on the null backend records the peak) and then carved into
// tensors with no allocation inside the denoising loop.
#ifndef DATO_ARENA_H
#define DATO_ARENA_H

#include <stddef.h>

#include "backend.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" { // the CUDA backend includes these headers from .cu files
#endif

typedef struct {
    char* base;      // NULL while measuring
    size_t cap;      // bytes available (0 while measuring)
    size_t top;      // bytes in use
    size_t peak;     // high-water mark of top
    int measuring;   // 1: only count bytes, hand out tensors with data == NULL
    int overflowed;  // set when an allocation did not fit; the caller reports it
} dato_arena;

#define DATO_ARENA_ALIGN 64

// A measuring arena: allocations only move top and peak.
dato_arena dato_arena_measure(void);
// An arena over [base, base + cap).
dato_arena dato_arena_over(void* base, size_t cap);
// Bytes for n elements of dtype dt, rounded up to the alignment.
size_t dato_arena_bytes(dato_dtype dt, size_t n);
// Carves a tensor of the given shape from the arena. On overflow returns a tensor with data
// == NULL and sets a->overflowed.
dato_tensor dato_arena_tensor(dato_arena* a, dato_dtype dt, dato_device dev, int ndim, const int64_t* shape);
// Carves raw bytes; NULL on overflow (and while measuring).
void* dato_arena_alloc(dato_arena* a, size_t bytes);
// Scoped reuse: save top, allocate temporaries, restore top.
static inline size_t dato_arena_mark(const dato_arena* a) { return a->top; }
static inline void dato_arena_release(dato_arena* a, size_t mark) { a->top = mark; }

#ifdef __cplusplus
}
#endif

#endif
