// FNV-1a 64 (hash.h).
#include "hash.h"

uint64_t dato_fnv1a64(uint64_t h, const void* bytes, size_t n) {
    const uint8_t* p = bytes;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
