// Intervals over images: how far a quality number measured on n images could move on another n
// images from the same distribution. A mean (teacher distance, CLIP score) by Efron's percentile
// bootstrap: each replicate resamples the n images with replacement; FID by half-sampling (below).
// The interval is the (1 - level)/2 and (1 + level)/2 quantiles of the replicates (linear
// interpolation between order statistics, numpy's default). The draws come from dato_rng seeded
// with seed alone, so two schedules scored on the same images under the same seed are resampled
// alike: their intervals are paired, as their common random numbers are.
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

// The interval of FID of features (n >= 2, dim) against ref, by half-sampling: B random halves
// (n / 2 distinct images, drawn without replacement: see bootstrap.c for the draws) each give a
// FID; their deviations from their median, added to the point FID, bound the interval (floored at
// 0). Not the bootstrap: a resample with replacement repeats about a third of its images, and FID,
// a covariance statistic, then spreads far wider than it does between independent image sets (the
// default model's baseline, FID 96.4 on 200 images: [43.9, 196.8], where two seeds give 87.9 and
// 96.4); a half without replacement spreads as the whole set does (tests/unit/test_bootstrap.c
// checks the width against 40 independent sets) (Var(half) (1 - m/n) / (m/n) with m = n/2). n < 4: no half has a covariance, the interval is
// [NaN, NaN] (DATO_OK). Costs B + 1 FIDs: with m > dim, B covariances (m dim² each) and B dim³
// eigenproblems; with m <= dim, B m³ ones.
dato_status dato_bootstrap_fid(const float* features, int n, int dim, const dato_fid_stats* ref,
                               const dato_bootstrap_config* cfg, dato_interval* out, dato_error* err);

#endif
