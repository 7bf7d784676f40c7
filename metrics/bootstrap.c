// Percentile-bootstrap intervals of a per-image mean and of FID (bootstrap.h).
//
// The draws: one dato_rng seeded with cfg->seed; replicate b = 0, 1, ..., B-1 takes n indices
// dato_rng_below(rng, n) in order. Both functions draw alike, so for the same seed and n
// replicate b resamples the same images in dato_bootstrap_mean and dato_bootstrap_fid, and in
// every call of either (paired intervals across schedules). The one exception: a FID resample
// with fewer than 2 distinct indices (probability n^(1-n): 1/2 for n = 2, 1/9 for n = 3, below
// 1e-9 for n >= 11) is redrawn from a second generator, dato_rng_seed_stream(seed, 1), so the
// main stream stays aligned and only the redrawn replicates differ from dato_bootstrap_mean's.
// Whether a resample is redrawn depends on its indices alone, so two dato_bootstrap_fid calls
// with the same seed and n still resample identically, redraws included.
#include "bootstrap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

// Redraws of one degenerate FID resample before giving up: (1/2)^64 for n = 2.
#define DATO_BOOTSTRAP_MAX_REDRAWS 64

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

// Draws n indices from rng and gathers their rows of features (n, dim) into rows (n, dim);
// returns 1 when at least 2 distinct indices were drawn.
static int draw_resample(dato_rng* rng, const float* features, int n, int dim, float* rows) {
    size_t d = (size_t)dim;
    uint64_t first = 0;
    int distinct = 0;
    for (int k = 0; k < n; k++) {
        uint64_t i = dato_rng_below(rng, (uint64_t)n);
        if (k == 0) first = i;
        else if (i != first) distinct = 1;
        memcpy(rows + (size_t)k * d, features + i * d, d * sizeof *rows);
    }
    return distinct;
}

dato_status dato_bootstrap_fid(const float* features, int n, int dim, const dato_fid_stats* ref,
                               const dato_bootstrap_config* cfg, dato_interval* out, dato_error* err) {
    DATO_TRY(check_config(cfg, out, "bootstrap FID", err));
    if (!features || !ref) return dato_fail(err, DATO_ERR_INVALID, "bootstrap FID: NULL features or reference");
    if (n < 2) return dato_fail(err, DATO_ERR_INVALID, "bootstrap FID: n %d < 2 feature vectors", n);
    if (dim < 1 || ref->dim != dim)
        return dato_fail(err, DATO_ERR_INVALID, "bootstrap FID: features of dim %d and reference of dim %d", dim,
                         ref->dim);
    size_t count = (size_t)n * (size_t)dim;
    for (size_t i = 0; i < count; i++) // once here, rather than per replicate
        if (!isfinite(features[i]))
            return dato_fail(err, DATO_ERR_INVALID, "bootstrap FID: non-finite feature %g at row %zu, column %zu",
                             (double)features[i], i / (size_t)dim, i % (size_t)dim);
    int B = cfg->replicates;
    float* rows = malloc(count * sizeof *rows);      // (n, dim) one resample
    double* reps = malloc((size_t)B * sizeof *reps); // (B) replicate FIDs
    dato_status st = DATO_OK;
    if (!rows || !reps) {
        st = dato_fail(err, DATO_ERR_NOMEM, "bootstrap FID: cannot allocate a (%d, %d) resample and %d replicates",
                       n, dim, B);
        goto done;
    }
    dato_rng rng, redraw;
    dato_rng_seed(&rng, cfg->seed);
    dato_rng_seed_stream(&redraw, cfg->seed, 1);
    for (int b = 0; b < B; b++) {
        int ok = draw_resample(&rng, features, n, dim, rows);
        for (int t = 0; !ok && t < DATO_BOOTSTRAP_MAX_REDRAWS; t++) ok = draw_resample(&redraw, features, n, dim, rows);
        if (!ok) {
            st = dato_fail(err, DATO_ERR_INVALID,
                           "bootstrap FID: replicate %d: %d resamples of %d images in a row held one distinct image", b,
                           DATO_BOOTSTRAP_MAX_REDRAWS + 1, n);
            goto done;
        }
        dato_fid_result r;
        st = dato_fid_from_features(rows, n, dim, ref, &r, err);
        if (st != DATO_OK) {
            if (err) {
                char why[sizeof err->msg];
                memcpy(why, err->msg, sizeof why);
                why[sizeof why - 1] = 0;
                dato_fail(err, st, "bootstrap FID: replicate %d: %.900s", b, why);
            }
            goto done;
        }
        if (!isfinite(r.fid)) {
            st = dato_fail(err, DATO_ERR_INVALID, "bootstrap FID: replicate %d: FID %g is not finite", b, r.fid);
            goto done;
        }
        reps[b] = r.fid;
    }
    // Resampling with replacement repeats images, which biases FID upward (fewer distinct images, a
    // poorer covariance): the replicates sit above the point, most at small n. The interval is moved
    // by that bias, the replicates' median minus the point, and floored at 0 (FID >= 0).
    dato_fid_result point;
    st = dato_fid_from_features(features, n, dim, ref, &point, err);
    if (st != DATO_OK) goto done;
    percentile_interval(reps, B, cfg->level, out);
    double bias = quantile_sorted(reps, B, 0.5) - point.fid;
    out->lo = fmax(out->lo - bias, 0);
    out->hi = fmax(out->hi - bias, 0);
done:
    free(rows);
    free(reps);
    return st;
}
