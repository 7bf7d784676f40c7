// The one random-number generator of dato: xoshiro256** seeded through splitmix64, with
// Box-Muller normals. Its state is four words, copied and serialized as such, so a run
// resumes bit-exactly. Same seed, same bits, on every platform.
#ifndef DATO_RNG_H
#define DATO_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} dato_rng;

// Seeds the generator (any seed, 0 included).
void dato_rng_seed(dato_rng* r, uint64_t seed);
// A generator for an independent stream: (seed, stream) -> seed of its own.
void dato_rng_seed_stream(dato_rng* r, uint64_t seed, uint64_t stream);
uint64_t dato_rng_u64(dato_rng* r);
// Uniform in [0, 1) with 53 random bits.
double dato_rng_uniform(dato_rng* r);
// Uniform integer in [0, n), unbiased. n > 0.
uint64_t dato_rng_below(dato_rng* r, uint64_t n);
// Standard normal.
double dato_rng_normal(dato_rng* r);
// Fills x[0..n) with standard normals (as float).
void dato_rng_fill_normal(dato_rng* r, float* x, size_t n);

// The initial noise of n images, per_image values each: image i from stream i of seed (how the
// pipeline draws it when given none).
void dato_rng_image_noise(uint64_t seed, int n, size_t per_image, float* out /* (n, per_image) */);

#endif
