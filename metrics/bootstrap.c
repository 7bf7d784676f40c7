// Intervals over images (bootstrap.h): the percentile bootstrap of a per-image mean, and the
// half-sampling interval of FID.
//
// The mean's draws: one dato_rng seeded with cfg->seed; replicate b = 0, 1, ..., B-1 takes n
// indices dato_rng_below(rng, n) in order, so for the same seed and n every call resamples the
// same images (paired intervals across schedules).
// FID's draws: one dato_rng seeded with cfg->seed; replicate b takes m = n / 2 distinct indices by
// a partial Fisher-Yates shuffle of 0..n-1 (restarted from the identity each replicate): for k =
// 0..m-1, swap k with k + dato_rng_below(rng, n - k). The same seed and n give the same halves.
#include "bootstrap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// The q-quantile of sorted x (n >= 1), numpy's default method 'linear': position q (n - 1),
// interpolated as numpy's _lerp does it (from the upper neighbour when the fraction is >= 1/2), so
// that results match np.quantile bit for bit.
static double quantile_sorted(const double* x, int n, double q) {
    double pos = q * (double)(n - 1);
    double below = floor(pos);
    int i = (int)below;
    if (i < 0) i = 0;
    if (i > n - 1) i = n - 1;
    int j = i + 1 < n ? i + 1 : n - 1;
    double t = pos - below, a = x[i], b = x[j];
    if (a == b) return a;
    double diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

static dato_status check_config(const dato_bootstrap_config* cfg, dato_interval* out, const char* what,
                                dato_error* err) {
    if (!out) return dato_fail(err, DATO_ERR_INVALID, "%s: NULL output interval", what);
    out->lo = out->hi = NAN;
    if (!cfg) return dato_fail(err, DATO_ERR_INVALID, "%s: NULL config", what);
    if (cfg->replicates < 10)
        return dato_fail(err, DATO_ERR_INVALID, "%s: replicates %d < 10", what, cfg->replicates);
    if (!(cfg->level > 0 && cfg->level < 1)) // NaN fails too
        return dato_fail(err, DATO_ERR_INVALID, "%s: level %g outside (0, 1)", what, cfg->level);
    return DATO_OK;
}

// Sorts the B replicate values and writes the (1 - level)/2 and (1 + level)/2 quantiles.
static void percentile_interval(double* reps, int B, double level, dato_interval* out) {
    qsort(reps, (size_t)B, sizeof *reps, cmp_double);
    out->lo = quantile_sorted(reps, B, 0.5 * (1.0 - level));
    out->hi = quantile_sorted(reps, B, 0.5 * (1.0 + level));
}

dato_status dato_bootstrap_mean(const double* values, int n, const dato_bootstrap_config* cfg, dato_interval* out,
                                dato_error* err) {
    DATO_TRY(check_config(cfg, out, "bootstrap mean", err));
    if (!values) return dato_fail(err, DATO_ERR_INVALID, "bootstrap mean: NULL values");
    if (n < 1) return dato_fail(err, DATO_ERR_INVALID, "bootstrap mean: n %d < 1 values", n);
    for (int i = 0; i < n; i++)
        if (!isfinite(values[i]))
            return dato_fail(err, DATO_ERR_INVALID, "bootstrap mean: non-finite value %g at index %d", values[i], i);
    if (n == 1) { // every resample is the one value
        out->lo = out->hi = values[0];
        return DATO_OK;
    }
    int B = cfg->replicates;
    double* reps = malloc((size_t)B * sizeof *reps); // (B) replicate means
    if (!reps) return dato_fail(err, DATO_ERR_NOMEM, "bootstrap mean: cannot allocate %d replicates", B);
    // Each mean is taken about values[0]: exact for constant values, and no cancellation when the
    // values sit far from zero.
    double shift = values[0];
    dato_rng rng;
    dato_rng_seed(&rng, cfg->seed);
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (int k = 0; k < n; k++) sum += values[dato_rng_below(&rng, (uint64_t)n)] - shift;
        reps[b] = shift + sum / n;
    }
    percentile_interval(reps, B, cfg->level, out);
    free(reps);
    return DATO_OK;
}

// Gathers a random half (m = n / 2 distinct images) of features (n, dim) into rows (m, dim); idx (n)
// is scratch.
static void draw_half(dato_rng* rng, const float* features, int n, int dim, int* idx, float* rows) {
    size_t d = (size_t)dim;
    int m = n / 2;
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int k = 0; k < m; k++) {
        int j = k + (int)dato_rng_below(rng, (uint64_t)(n - k)), t = idx[k];
        idx[k] = idx[j];
        idx[j] = t;
        memcpy(rows + (size_t)k * d, features + (size_t)idx[k] * d, d * sizeof *rows);
    }
}

dato_status dato_bootstrap_fid(const float* features, int n, int dim, const dato_fid_stats* ref,
                               const dato_bootstrap_config* cfg, dato_interval* out, dato_error* err) {
    DATO_TRY(check_config(cfg, out, "FID interval", err));
    if (!features || !ref) return dato_fail(err, DATO_ERR_INVALID, "FID interval: NULL features or reference");
    if (n < 2) return dato_fail(err, DATO_ERR_INVALID, "FID interval: n %d < 2 feature vectors", n);
    if (dim < 1 || ref->dim != dim)
        return dato_fail(err, DATO_ERR_INVALID, "FID interval: features of dim %d and reference of dim %d", dim,
                         ref->dim);
    size_t count = (size_t)n * (size_t)dim;
    for (size_t i = 0; i < count; i++) // once here, rather than per replicate
        if (!isfinite(features[i]))
            return dato_fail(err, DATO_ERR_INVALID, "FID interval: non-finite feature %g at row %zu, column %zu",
                             (double)features[i], i / (size_t)dim, i % (size_t)dim);
    if (n < 4) return DATO_OK; // a half of fewer than 2 images has no covariance: the interval stays unknown
    int B = cfg->replicates, m = n / 2;
    float* rows = malloc((size_t)m * dim * sizeof *rows); // (m, dim) one half
    double* reps = malloc((size_t)B * sizeof *reps);      // (B) the halves' FIDs
    int* idx = malloc((size_t)n * sizeof *idx);           // (n) the shuffle
    dato_status st = DATO_OK;
    if (!rows || !reps || !idx) {
        st = dato_fail(err, DATO_ERR_NOMEM, "FID interval: cannot allocate a (%d, %d) half and %d replicates", m, dim, B);
        goto done;
    }
    dato_rng rng;
    dato_rng_seed(&rng, cfg->seed);
    for (int b = 0; b < B; b++) {
        draw_half(&rng, features, n, dim, idx, rows);
        dato_fid_result r;
        st = dato_fid_from_features(rows, m, dim, ref, &r, err);
        if (st != DATO_OK) {
            dato_error_prefix(err, st, "FID interval: replicate %d: ", b);
            goto done;
        }
        if (!isfinite(r.fid)) {
            st = dato_fail(err, DATO_ERR_INVALID, "FID interval: replicate %d: FID %g is not finite", b, r.fid);
            goto done;
        }
        reps[b] = r.fid;
    }
    // A half's FID is centred elsewhere (FID's small-sample bias grows as images fall) but spreads
    // as the whole's does: drawing half of n without replacement, Var(half) (1 - 1/2) / (1/2) =
    // Var(half) estimates Var(whole) (the half-sample rule). So the interval is the point plus the
    // halves' deviations from their median, floored at 0 (FID >= 0).
    dato_fid_result point;
    st = dato_fid_from_features(features, n, dim, ref, &point, err);
    if (st != DATO_OK) goto done;
    percentile_interval(reps, B, cfg->level, out);
    double median = quantile_sorted(reps, B, 0.5);
    out->lo = fmax(point.fid + out->lo - median, 0);
    out->hi = fmax(point.fid + out->hi - median, 0);
done:
    free(rows);
    free(reps);
    free(idx);
    return st;
}
