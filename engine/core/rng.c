#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t* x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void dato_rng_seed(dato_rng* r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

void dato_rng_seed_stream(dato_rng* r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ull);
    dato_rng_seed(r, splitmix64(&x));
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dato_rng_u64(dato_rng* r) {
    uint64_t* s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dato_rng_uniform(dato_rng* r) { return (double)(dato_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t dato_rng_below(dato_rng* r, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; // reject the top partial block: no modulo bias
    uint64_t x;
    do x = dato_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double dato_rng_normal(dato_rng* r) {
    double u1 = 1.0 - dato_rng_uniform(r); // (0, 1]: log is finite
    double u2 = dato_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void dato_rng_fill_normal(dato_rng* r, float* x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)dato_rng_normal(r);
}

void dato_rng_image_noise(uint64_t seed, int n, size_t per_image, float* out) {
    for (int i = 0; i < n; i++) {
        dato_rng r;
        dato_rng_seed_stream(&r, seed, (uint64_t)i);
        dato_rng_fill_normal(&r, out + (size_t)i * per_image, per_image);
    }
}
