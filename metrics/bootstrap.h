// Bootstrap intervals over images (Efron's percentile bootstrap): how far a quality number
// measured on n images could move on another n images from the same distribution. Each replicate
// resamples the n images with replacement and recomputes the number; the interval is the
// (1 - level)/2 and (1 + level)/2 quantiles of the replicates (linear interpolation between order
// statistics, numpy's default). The resampled indices come from dato_rng seeded with seed alone, so
// two schedules scored on the same images under the same seed are resampled alike: their
// intervals are paired, as their common random numbers are.
#ifndef DATO_BOOTSTRAP_H
#define DATO_BOOTSTRAP_H

#include <stdint.h>

#include "fid.h"
#include "status.h"

// A two-sided interval; lo = hi = NaN when unknown.
typedef struct {
    double lo, hi;
} dato_interval;

typedef struct {
    int replicates; // B >= 10 (200: the search's default)
    double level;   // in (0, 1), e.g. 0.95
    uint64_t seed;
} dato_bootstrap_config;

// The interval of the mean of values (n >= 1), e.g. each image's teacher distance or CLIP score.
// Non-finite values are DATO_ERR_INVALID naming the index.
dato_status dato_bootstrap_mean(const double* values, int n, const dato_bootstrap_config* cfg, dato_interval* out,
                                dato_error* err);

// The interval of FID of features (n >= 2, dim) against ref (dato_fid_from_features on each
// resample; a resample with fewer than 2 distinct images is drawn again, from a second stream
// dato_rng_seed_stream(seed, 1), so only such replicates differ from dato_bootstrap_mean's draws;
// likely only for small n: n^(1-n) per replicate, 1/2 at n = 2). Resampling with replacement
// repeats images, which biases FID upward, most at small n; so the percentile interval is moved
// down by that bias (the replicates' median minus the point FID) and floored at 0: bias-corrected
// percentile, the interval around the point estimate. Costs B + 1 FIDs: with
// n > dim, B covariances (n dim² each) and B dim³ eigenproblems; with n <= dim, B n³ ones.
dato_status dato_bootstrap_fid(const float* features, int n, int dim, const dato_fid_stats* ref,
                               const dato_bootstrap_config* cfg, dato_interval* out, dato_error* err);

#endif
