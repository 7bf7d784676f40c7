// Bootstrap intervals (metrics/bootstrap.c): the mean's interval against the normal-theory width,
// determinism, refusals, FID intervals on seeded Gaussian features, and paired resampling.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "rng.h"
#include "test_util.h"

// n standard normals from seed.
static double* normals(uint64_t seed, int n) {
    double* v = malloc((size_t)n * sizeof *v); // (n)
    dato_rng r;
    dato_rng_seed(&r, seed);
    for (int i = 0; v && i < n; i++) v[i] = dato_rng_normal(&r);
    return v;
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

// 1: mean of N(0, 1), n = 400, B = 2000, level .95: width vs 2 * 1.96 sd / sqrt(n).
static void test_mean_width(void) {
    int n = 400;
    double* v = normals(11, n);
    double mean = 0, ss = 0;
    for (int i = 0; i < n; i++) mean += v[i];
    mean /= n;
    for (int i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
    double sd = sqrt(ss / (n - 1)), expect = 2 * 1.96 * sd / sqrt((double)n);
    dato_bootstrap_config cfg = {.replicates = 2000, .level = 0.95, .seed = 5};
    dato_interval iv;
    dato_error err;
    CHECK(dato_bootstrap_mean(v, n, &cfg, &iv, &err) == DATO_OK, "%s", err.msg);
    double width = iv.hi - iv.lo, rel = fabs(width - expect) / expect;
    printf("mean of N(0,1), n 400, B 2000: [%.6f, %.6f] around %.6f, width %.6f vs normal %.6f: rel err %.3g (tol "
           "0.15)\n",
           iv.lo, iv.hi, mean, width, expect, rel);
    CHECK(rel < 0.15, "width %.6f vs %.6f", width, expect);
    CHECK(iv.lo < mean && mean < iv.hi, "mean %.6f outside [%.6f, %.6f]", mean, iv.lo, iv.hi);
    free(v);
}

// 2: the same seed gives the same bits; another seed other bits.
static void test_determinism(void) {
    int n = 100;
    double* v = normals(12, n);
    dato_bootstrap_config cfg = {.replicates = 200, .level = 0.9, .seed = 42};
    dato_interval a, b, c;
    dato_error err;
    CHECK(dato_bootstrap_mean(v, n, &cfg, &a, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_bootstrap_mean(v, n, &cfg, &b, &err) == DATO_OK, "%s", err.msg);
    cfg.seed = 43;
    CHECK(dato_bootstrap_mean(v, n, &cfg, &c, &err) == DATO_OK, "%s", err.msg);
    printf("determinism: seed 42 [%.17g, %.17g] twice; seed 43 [%.17g, %.17g]\n", a.lo, a.hi, c.lo, c.hi);
    CHECK(same_bits(a.lo, b.lo) && same_bits(a.hi, b.hi), "seed 42 not repeated bit for bit");
    CHECK(!same_bits(a.lo, c.lo) || !same_bits(a.hi, c.hi), "seeds 42 and 43 gave the same interval");
    free(v);
}

// 3: constant values, and n = 1.
static void test_constant(void) {
    double v[50];
    for (int i = 0; i < 50; i++) v[i] = 0.1;
    dato_bootstrap_config cfg = {.replicates = 100, .level = 0.95, .seed = 1};
    dato_interval iv;
    dato_error err;
    CHECK(dato_bootstrap_mean(v, 50, &cfg, &iv, &err) == DATO_OK, "%s", err.msg);
    printf("constant 0.1: [%.17g, %.17g]\n", iv.lo, iv.hi);
    CHECK(iv.lo == 0.1 && iv.hi == 0.1, "[%.17g, %.17g]", iv.lo, iv.hi);
    double one = -2.5;
    CHECK(dato_bootstrap_mean(&one, 1, &cfg, &iv, &err) == DATO_OK && iv.lo == one && iv.hi == one,
          "n = 1: [%g, %g]", iv.lo, iv.hi);
}

// 4: refusals name the problem; the interval is NaN.
static void test_bad_args(void) {
    double v[20] = {0};
    dato_bootstrap_config cfg = {.replicates = 100, .level = 0.95, .seed = 1};
    dato_interval iv;
    dato_error err;
    CHECK(dato_bootstrap_mean(v, 0, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "n 0"), "%s", err.msg);
    CHECK(isnan(iv.lo) && isnan(iv.hi), "refused call left [%g, %g]", iv.lo, iv.hi);
    cfg.replicates = 5;
    CHECK(dato_bootstrap_mean(v, 20, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "replicates"), "%s",
          err.msg);
    printf("refused: %s\n", err.msg);
    cfg.replicates = 100, cfg.level = 1.5;
    CHECK(dato_bootstrap_mean(v, 20, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "level"), "%s", err.msg);
    printf("refused: %s\n", err.msg);
    cfg.level = NAN;
    CHECK(dato_bootstrap_mean(v, 20, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "level"), "%s", err.msg);
    cfg.level = 0.95;
    v[7] = NAN;
    CHECK(dato_bootstrap_mean(v, 20, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "index 7"), "%s",
          err.msg);
    printf("refused: %s\n", err.msg);
    CHECK(dato_bootstrap_mean(NULL, 20, &cfg, &iv, &err) == DATO_ERR_INVALID, "NULL values accepted");
    CHECK(dato_bootstrap_mean(v, 20, NULL, &iv, &err) == DATO_ERR_INVALID, "NULL config accepted");

    float f[16] = {0};
    dato_fid_stats ref = {0};
    CHECK(dato_fid_stats_alloc(&ref, 4, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_bootstrap_fid(f, 1, 4, &ref, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "FID interval"),
          "%s", err.msg);
    CHECK(dato_bootstrap_fid(f, 4, 3, &ref, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "dim"), "%s",
          err.msg);
    f[9] = INFINITY;
    CHECK(dato_bootstrap_fid(f, 4, 4, &ref, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "row 2, column 1"),
          "%s", err.msg);
    printf("refused: %s\n", err.msg);
    f[9] = 0;
    ref.sigma[5] = NAN; // fid's own refusal, passed on under "FID interval"
    CHECK(dato_bootstrap_fid(f, 8 / 2, 4, &ref, &cfg, &iv, &err) == DATO_ERR_INVALID && strstr(err.msg, "FID interval") &&
              isnan(iv.lo),
          "%s", err.msg);
    printf("refused: %s\n", err.msg);
    dato_fid_stats_free(&ref);
}

// Statistics of features (n, dim).
static int stats_of(const float* f, int n, int dim, dato_fid_stats* out) {
    dato_feature_stats acc;
    dato_error err;
    int ok = dato_feature_stats_init(&acc, dim, &err) == DATO_OK;
    ok = ok && dato_feature_stats_add(&acc, f, n, &err) == DATO_OK;
    ok = ok && dato_feature_stats_finalize(&acc, out, NULL, &err) == DATO_OK;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    dato_feature_stats_free(&acc);
    return ok;
}

// 5: FID of N(0, I) features against N(0, I) statistics, shifted by +1, and with n <= dim.
static void test_fid(void) {
    int n = 300, dim = 8, nref = 3000;
    dato_rng r;
    dato_rng_seed(&r, 2024);
    float* f = malloc((size_t)n * dim * sizeof *f);         // (n, dim)
    float* shifted = malloc((size_t)n * dim * sizeof *f);   // (n, dim) f + 1
    float* g = malloc((size_t)nref * dim * sizeof *g);      // (nref, dim) reference draws
    dato_rng_fill_normal(&r, f, (size_t)n * dim);
    dato_rng_fill_normal(&r, g, (size_t)nref * dim);
    for (size_t i = 0; i < (size_t)n * dim; i++) shifted[i] = f[i] + 1.0f;
    dato_fid_stats ref = {0};
    CHECK(stats_of(g, nref, dim, &ref), "reference statistics");
    dato_error err;
    dato_fid_result point, point_shifted;
    CHECK(dato_fid_from_features(f, n, dim, &ref, &point, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_fid_from_features(shifted, n, dim, &ref, &point_shifted, &err) == DATO_OK, "%s", err.msg);
    dato_bootstrap_config cfg = {.replicates = 200, .level = 0.95, .seed = 9};
    dato_interval iv, ivs, again;
    CHECK(dato_bootstrap_fid(f, n, dim, &ref, &cfg, &iv, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_bootstrap_fid(shifted, n, dim, &ref, &cfg, &ivs, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_bootstrap_fid(f, n, dim, &ref, &cfg, &again, &err) == DATO_OK, "%s", err.msg);
    printf("FID N(0,I) n 300 d 8 B 200: point %.6f, interval [%.6f, %.6f]\n", point.fid, iv.lo, iv.hi);
    printf("FID shifted +1 (true 8): point %.6f, interval [%.6f, %.6f]\n", point_shifted.fid, ivs.lo, ivs.hi);
    // Resampling repeats images, which biases a replicate's FID upward (near FID 0 the raw
    // percentile interval lay above the point in 39 of 40 data sets); the interval is moved by the
    // replicates' median minus the point, so it brackets the point near 0 as far from it.
    CHECK(iv.lo <= point.fid && point.fid <= iv.hi, "point %.6f outside [%.6f, %.6f]", point.fid, iv.lo, iv.hi);
    CHECK(iv.lo >= 0 && iv.hi - iv.lo > 0, "interval [%.6f, %.6f]", iv.lo, iv.hi);
    CHECK(ivs.lo > iv.hi, "shifted interval [%.6f, %.6f] not above [%.6f, %.6f]", ivs.lo, ivs.hi, iv.lo, iv.hi);
    CHECK(ivs.lo <= point_shifted.fid && point_shifted.fid <= ivs.hi, "shifted point %.6f outside [%.6f, %.6f]",
          point_shifted.fid, ivs.lo, ivs.hi);
    CHECK(same_bits(iv.lo, again.lo) && same_bits(iv.hi, again.hi), "bootstrap FID not repeated bit for bit");

    // n = 9 (halves of 4 <= dim = 8): the n x n route; n = 3: no half has a covariance, no interval.
    dato_interval small;
    CHECK(dato_bootstrap_fid(f, 9, dim, &ref, &cfg, &small, &err) == DATO_OK, "%s", err.msg);
    printf("FID n 9, halves of 4 <= d 8, B 200: [%.6f, %.6f]\n", small.lo, small.hi);
    CHECK(isfinite(small.lo) && isfinite(small.hi) && small.lo <= small.hi, "[%g, %g]", small.lo, small.hi);
    CHECK(dato_bootstrap_fid(f, 3, dim, &ref, &cfg, &small, &err) == DATO_OK && isnan(small.lo) && isnan(small.hi),
          "n = 3: [%g, %g]", small.lo, small.hi);

    // Calibration: the interval's width against FID's real spread between independent image sets.
    // 40 sets of 300 N(0.3, I) images against the same reference: FID's standard deviation across
    // them, and the mean half-width of their 95% intervals over 1.96: within a factor 1.5.
    int sets = 40;
    double sum = 0, sum2 = 0, half = 0;
    float* h = malloc((size_t)n * dim * sizeof *h);
    for (int k = 0; k < sets; k++) {
        dato_rng_fill_normal(&r, h, (size_t)n * dim);
        for (size_t i = 0; i < (size_t)n * dim; i++) h[i] += 0.3f;
        dato_fid_result fr;
        dato_interval hi;
        CHECK(dato_fid_from_features(h, n, dim, &ref, &fr, &err) == DATO_OK, "%s", err.msg);
        CHECK(dato_bootstrap_fid(h, n, dim, &ref, &cfg, &hi, &err) == DATO_OK, "%s", err.msg);
        sum += fr.fid, sum2 += fr.fid * fr.fid, half += 0.5 * (hi.hi - hi.lo) / 1.96;
    }
    double sd = sqrt((sum2 - sum * sum / sets) / (sets - 1)), est = half / sets;
    printf("calibration, %d sets of %d: FID sd between sets %.4f, interval half-width / 1.96 %.4f (ratio %.2f, "
           "tol 1/1.5..1.5)\n", sets, n, sd, est, est / sd);
    CHECK(est / sd > 1 / 1.5 && est / sd < 1.5, "interval width %.4f vs real spread %.4f", est, sd);
    free(h);

    dato_fid_stats_free(&ref);
    free(f), free(shifted), free(g);
}

// 6: the same seed resamples the same images: values + 3 shifts the interval by exactly 3, and
// FID's draws match the mean's (a per-image value equal to row 0's first feature).
static void test_paired(void) {
    int n = 200;
    double* v = normals(13, n);
    double* w = malloc((size_t)n * sizeof *w);
    for (int i = 0; i < n; i++) w[i] = v[i] + 3;
    dato_bootstrap_config cfg = {.replicates = 1000, .level = 0.8, .seed = 77};
    dato_interval a, b;
    dato_error err;
    CHECK(dato_bootstrap_mean(v, n, &cfg, &a, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_bootstrap_mean(w, n, &cfg, &b, &err) == DATO_OK, "%s", err.msg);
    double e = fmax(fabs(b.lo - a.lo - 3), fabs(b.hi - a.hi - 3));
    printf("paired: [%.6f, %.6f] and +3 [%.6f, %.6f]: shift error %.3g (tol 1e-12)\n", a.lo, a.hi, b.lo, b.hi, e);
    CHECK(e < 1e-12, "shift error %.3g", e);

    // FID's draws: with dim 1 and the reference N(0, 0), a half's FID is its mean² + its variance
    // (1/(m-1)); recomputed here from the documented partial Fisher-Yates draws and numpy's
    // linear quantiles, then moved by the point minus the halves' median.
    int m = 30, half = m / 2;
    float* x = malloc((size_t)m * sizeof *x);
    for (int i = 0; i < m; i++) x[i] = (float)(10 + v[i]);
    dato_fid_stats ref = {0};
    CHECK(dato_fid_stats_alloc(&ref, 1, &err) == DATO_OK, "%s", err.msg);
    cfg.replicates = 50;
    dato_interval fi;
    CHECK(dato_bootstrap_fid(x, m, 1, &ref, &cfg, &fi, &err) == DATO_OK, "%s", err.msg);
    double reps[50];
    dato_rng r;
    dato_rng_seed(&r, cfg.seed);
    for (int k = 0; k < 50; k++) {
        int idx[30];
        double s = 0, s2 = 0, row[15];
        for (int i = 0; i < m; i++) idx[i] = i;
        for (int j = 0; j < half; j++) {
            int t = j + (int)dato_rng_below(&r, (uint64_t)(m - j)), u = idx[j];
            idx[j] = idx[t], idx[t] = u;
            row[j] = x[idx[j]], s += row[j];
        }
        double mu = s / half;
        for (int j = 0; j < half; j++) s2 += (row[j] - mu) * (row[j] - mu);
        reps[k] = mu * mu + s2 / (half - 1);
    }
    for (int i = 1; i < 50; i++) // insertion sort
        for (int j = i; j > 0 && reps[j - 1] > reps[j]; j--) {
            double t = reps[j];
            reps[j] = reps[j - 1], reps[j - 1] = t;
        }
    double pos_lo = 0.1 * 49, pos_hi = 0.9 * 49;
    int il = (int)pos_lo, ih = (int)pos_hi;
    double lo = reps[il] + (pos_lo - il) * (reps[il + 1] - reps[il]);
    double hi = reps[ih] + (pos_hi - ih) * (reps[ih + 1] - reps[ih]);
    double s = 0, s2 = 0, med = 0.5 * (reps[24] + reps[25]);
    for (int j = 0; j < m; j++) s += x[j];
    for (int j = 0; j < m; j++) s2 += (x[j] - s / m) * (x[j] - s / m);
    double point = (s / m) * (s / m) + s2 / (m - 1);
    lo = fmax(point + lo - med, 0), hi = fmax(point + hi - med, 0);
    double fe = fmax(fabs(fi.lo - lo), fabs(fi.hi - hi)) / hi;
    printf("FID halves by hand: [%.9f, %.9f] vs [%.9f, %.9f]: rel err %.3g (tol 1e-9)\n", fi.lo, fi.hi, lo, hi, fe);
    CHECK(fe < 1e-9, "rel err %.3g", fe);
    dato_fid_stats_free(&ref);
    free(x), free(v), free(w);
}

int main(void) {
    test_mean_width();
    test_determinism();
    test_constant();
    test_bad_args();
    test_fid();
    test_paired();
    return test_summary();
}
