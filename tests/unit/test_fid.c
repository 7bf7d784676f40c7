// FID and KID math (metrics/fid.c) against closed forms, numpy and pytorch-fid's own
// calculate_frechet_distance (tests/fixtures/fid, written by tools/make_fid_fixtures.py).
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "fid.h"
#include "fixture.h"
#include "test_util.h"

#define FIXTURE "tests/fixtures/fid/features64.safetensors"

// A float64 fixture tensor copied out (its bytes may be unaligned); NULL if absent or not F64.
static double* fixture_f64(const dato_safetensors* st, const char* name, size_t numel) {
    const dato_st_tensor* t = dato_safetensors_find(st, name);
    if (!t || t->dtype != DATO_ST_F64 || (size_t)t->numel != numel) {
        fprintf(stderr, "%s: fixture tensor '%s' missing or not F64 of %zu values\n", st->path, name, numel);
        return NULL;
    }
    double* x = malloc(numel * sizeof *x);
    memcpy(x, t->data, numel * sizeof *x);
    return x;
}

// Statistics of features (n, dim) fed in uneven batches, as a feature extractor would.
static dato_status stats_of(const float* features, long n, int dim, dato_fid_stats* out, int* singular) {
    dato_feature_stats acc;
    dato_error err;
    dato_status st = dato_feature_stats_init(&acc, dim, &err);
    const int batches[] = {7, 1, 100, 256};
    long done = 0;
    for (int b = 0; st == DATO_OK && done < n; b = (b + 1) % 4) {
        int size = (int)(n - done < batches[b] ? n - done : batches[b]);
        st = dato_feature_stats_add(&acc, features + (size_t)done * dim, size, &err);
        done += size;
    }
    if (st == DATO_OK) st = dato_feature_stats_finalize(&acc, out, singular, &err);
    if (st != DATO_OK) fprintf(stderr, "%s\n", err.msg);
    dato_feature_stats_free(&acc);
    return st;
}

static void test_anchors(void) {
    dato_error err;
    dato_fid_result r;
    // pytorch-fid's test: mu1 = 0, mu2 = 1, Σ1 = Σ2 = I, d = 2048 -> FID = 2048.
    int d = 2048;
    double* mu1 = calloc(d, sizeof *mu1);
    double* mu2 = malloc(d * sizeof *mu2);
    double* eye = calloc((size_t)d * d, sizeof *eye);
    for (int i = 0; i < d; i++) mu2[i] = 1, eye[(size_t)i * d + i] = 1;
    CHECK(dato_frechet_distance(d, mu1, eye, mu2, eye, &r, &err) == DATO_OK, "%s", err.msg);
    printf("identity anchor: FID %.12f (expect 2048), error %.3g\n", r.fid, fabs(r.fid - 2048));
    CHECK(fabs(r.fid - 2048) < 1e-9, "FID %.12f", r.fid);
    CHECK(r.clipped_sigma1 == 0 && r.clipped_product == 0, "clipped %d %d", r.clipped_sigma1, r.clipped_product);
    free(mu1), free(mu2), free(eye);

    // Commuting diagonal covariances: Σ (sqrt a_i - sqrt b_i)² + |Δμ|².
    double ma[2] = {1, -2}, mb[2] = {0.5, 1}, sa[4] = {4, 0, 0, 0.25}, sb[4] = {1, 0, 0, 9};
    double expect = 0.25 + 9 + (2 - 1) * (2 - 1) + (0.5 - 3) * (0.5 - 3);
    CHECK(dato_frechet_distance(2, ma, sa, mb, sb, &r, &err) == DATO_OK, "%s", err.msg);
    printf("diagonal 2-D: FID %.15f expect %.15f, error %.3g\n", r.fid, expect, fabs(r.fid - expect));
    CHECK(fabs(r.fid - expect) < 1e-12, "FID %.15f expect %.15f", r.fid, expect);

    // Non-commuting 2-D: tr sqrt(Σ1Σ2) = sqrt(tr(Σ1Σ2) + 2 sqrt(det Σ1 det Σ2)).
    double s1[4] = {2, 0.7, 0.7, 1}, s2[4] = {0.5, -0.3, -0.3, 3};
    double tr12 = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3];
    double det1 = s1[0] * s1[3] - s1[1] * s1[2], det2 = s2[0] * s2[3] - s2[1] * s2[2];
    expect = 9.25 + 3 + 3.5 - 2 * sqrt(tr12 + 2 * sqrt(det1 * det2));
    CHECK(dato_frechet_distance(2, ma, s1, mb, s2, &r, &err) == DATO_OK, "%s", err.msg);
    printf("non-commuting 2-D: FID %.15f expect %.15f, error %.3g\n", r.fid, expect, fabs(r.fid - expect));
    CHECK(fabs(r.fid - expect) < 1e-12, "FID %.15f expect %.15f", r.fid, expect);

    // A rank-1 Σ: its zero eigenvalues come out at rounding level (negative ones are clipped, counted).
    double sr[9] = {1, 1, 0, 1, 1, 0, 0, 0, 0}, mz[3] = {0, 0, 0};
    CHECK(dato_frechet_distance(3, mz, sr, mz, sr, &r, &err) == DATO_OK, "%s", err.msg);
    printf("rank-1 identical: FID %.3g, clipped %d / %d\n", r.fid, r.clipped_sigma1, r.clipped_product);
    CHECK(fabs(r.fid) < 1e-9, "FID %.3g", r.fid);

    // Refusals.
    double bad[4] = {1, 0, 0, NAN};
    CHECK(dato_frechet_distance(2, ma, bad, mb, sb, &r, &err) == DATO_ERR_INVALID && strstr(err.msg, "sigma1[3]"),
          "%s", err.msg);
    CHECK(dato_frechet_distance(0, ma, sa, mb, sb, &r, &err) == DATO_ERR_INVALID, "dim 0 accepted");
}

static void test_stats_and_pytorch_fid(const dato_safetensors* st) {
    size_t n;
    float* a = fixture_f32(st, "a", &n); // (300, 64)
    float* b = fixture_f32(st, "b", &n); // (300, 64)
    double* mu_a = fixture_f64(st, "mu_a", 64);
    double* sigma_a = fixture_f64(st, "sigma_a", 64 * 64);
    double* mu_b = fixture_f64(st, "mu_b", 64);
    double* sigma_b = fixture_f64(st, "sigma_b", 64 * 64);
    double* fid_ref = fixture_f64(st, "fid", 1);
    double* kid_ref = fixture_f64(st, "kid_all", 1);
    if (!a || !b || !mu_a || !sigma_a || !mu_b || !sigma_b || !fid_ref || !kid_ref) {
        CHECK(0, "fixture %s incomplete", FIXTURE);
        return;
    }
    dato_fid_stats sa, sb;
    int singular = -1;
    CHECK(stats_of(a, 300, 64, &sa, &singular) == DATO_OK, "stats of a");
    CHECK(stats_of(b, 300, 64, &sb, NULL) == DATO_OK, "stats of b");
    double e_mu = test_rel_err_f64(sa.mu, mu_a, 64), e_sigma = test_rel_err_f64(sa.sigma, sigma_a, 64 * 64);
    double e_sigma_b = test_rel_err_f64(sb.sigma, sigma_b, 64 * 64);
    printf("stats vs np.mean/np.cov: mu %.3g, sigma %.3g / %.3g (relative)\n", e_mu, e_sigma, e_sigma_b);
    CHECK(e_mu < 1e-12 && e_sigma < 1e-12 && e_sigma_b < 1e-12, "stats differ from numpy");
    CHECK(sa.count == 300 && singular == 0, "count %ld singular %d", sa.count, singular);

    dato_fid_result r;
    dato_error err;
    CHECK(dato_fid_from_stats(&sa, &sb, &r, &err) == DATO_OK, "%s", err.msg);
    double rel = fabs(r.fid - fid_ref[0]) / fid_ref[0];
    printf("64-d FID %.12f vs pytorch-fid %.12f: relative %.3g\n", r.fid, fid_ref[0], rel);
    CHECK(rel < 1e-6, "FID %.12f vs %.12f", r.fid, fid_ref[0]);
    CHECK(dato_fid_from_stats(&sa, &sa, &r, &err) == DATO_OK && fabs(r.fid) < 1e-9, "identical stats: FID %.3g",
          r.fid);
    printf("identical 64-d stats: FID %.3g (clipped %d)\n", r.fid, r.clipped_product);

    // KID with one subset of every row is the plain unbiased MMD² of the two sets.
    dato_kid_config cfg = {.n_subsets = 1, .subset_size = 300, .seed = 2020};
    dato_kid_result kid;
    CHECK(dato_kid(a, 300, b, 300, 64, &cfg, &kid, &err) == DATO_OK, "%s", err.msg);
    rel = fabs(kid.mean - kid_ref[0]) / fabs(kid_ref[0]);
    printf("KID all pairs %.15g vs numpy %.15g: relative %.3g, std %g\n", kid.mean, kid_ref[0], rel, kid.std);
    CHECK(rel < 1e-10 && kid.std == 0, "KID %.15g vs %.15g std %g", kid.mean, kid_ref[0], kid.std);

    // Subsets: the same seed repeats bit-exactly, another seed differs, the spread is non-zero.
    dato_kid_config sub = {.n_subsets = 20, .subset_size = 100, .seed = 2020};
    dato_kid_result k1, k2, k3;
    CHECK(dato_kid(a, 300, b, 300, 64, &sub, &k1, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_kid(a, 300, b, 300, 64, &sub, &k2, &err) == DATO_OK, "%s", err.msg);
    sub.seed = 7;
    CHECK(dato_kid(a, 300, b, 300, 64, &sub, &k3, &err) == DATO_OK, "%s", err.msg);
    printf("KID 20 x 100: %.6g +- %.3g (seed 2020), %.6g +- %.3g (seed 7)\n", k1.mean, k1.std, k3.mean, k3.std);
    CHECK(k1.mean == k2.mean && k1.std == k2.std, "KID not deterministic");
    CHECK(k1.mean != k3.mean && k1.std > 0, "seed has no effect or std 0");
    CHECK(fabs(k1.mean - kid_ref[0]) < 5 * k1.std, "subset KID %.6g far from %.6g", k1.mean, kid_ref[0]);
    sub.subset_size = 301;
    CHECK(dato_kid(a, 300, b, 300, 64, &sub, &k1, &err) == DATO_ERR_INVALID && strstr(err.msg, "301"), "%s", err.msg);

    // Small N: flagged singular; N < 2 refused.
    dato_fid_stats small;
    CHECK(stats_of(a, 50, 64, &small, &singular) == DATO_OK && singular == 1, "N = 50 <= 64 not flagged");
    dato_fid_stats_free(&small);
    dato_feature_stats acc;
    CHECK(dato_feature_stats_init(&acc, 64, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_feature_stats_add(&acc, a, 1, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_feature_stats_finalize(&acc, &small, NULL, &err) == DATO_ERR_INVALID && strstr(err.msg, "at least 2"),
          "%s", err.msg);
    float nan_row[64] = {0};
    nan_row[5] = NAN;
    CHECK(dato_feature_stats_add(&acc, nan_row, 1, &err) == DATO_ERR_INVALID && strstr(err.msg, "column 5") &&
              acc.n == 1,
          "%s", err.msg);
    dato_feature_stats_free(&acc);
    dato_fid_stats c;
    dato_fid_stats_alloc(&c, 32, &err);
    CHECK(dato_fid_from_stats(&sa, &c, &r, &err) == DATO_ERR_INVALID && strstr(err.msg, "64 and 32"), "%s", err.msg);
    dato_fid_stats_free(&c);

    dato_fid_stats_free(&sa), dato_fid_stats_free(&sb);
    free(a), free(b), free(mu_a), free(sigma_a), free(mu_b), free(sigma_b), free(fid_ref), free(kid_ref);
}

// hash_uniform of tools/make_fid_fixtures.py: splitmix64's finaliser of seed * golden + index.
static void hash_uniform(uint64_t seed, double* u, size_t count) {
    for (size_t i = 0; i < count; i++) {
        uint64_t z = seed * 0x9E3779B97F4A7C15ull + i;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        u[i] = (double)(z >> 11) * 0x1.0p-53;
    }
}

// hash_features of the script: relu((z - 1/2) diag(s) (W - 1/2) + shift), float64, then float32.
static float* hash_features(uint64_t seed, int n, int d, double shift) {
    double* z = malloc((size_t)n * d * sizeof *z); // (n, d)
    double* w = malloc((size_t)d * d * sizeof *w); // (d, d)
    double* x = malloc((size_t)n * d * sizeof *x); // (n, d)
    float* out = malloc((size_t)n * d * sizeof *out);
    hash_uniform(seed, z, (size_t)n * d);
    hash_uniform(1000, w, (size_t)d * d);
    for (size_t i = 0; i < (size_t)d * d; i++) w[i] -= 0.5;
    for (int r = 0; r < n; r++)
        for (int k = 0; k < d; k++) z[(size_t)r * d + k] = (z[(size_t)r * d + k] - 0.5) * pow(k + 1.0, -0.75);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, d, 1.0, z, d, w, d, 0.0, x, d);
    for (size_t i = 0; i < (size_t)n * d; i++) out[i] = (float)(x[i] + shift > 0 ? x[i] + shift : 0);
    free(z), free(w), free(x);
    return out;
}

static void test_fid2048(const dato_safetensors* st) {
    double* fid_ref = fixture_f64(st, "fid2048", 1);
    if (!fid_ref) {
        CHECK(0, "fixture fid2048 missing");
        return;
    }
    int n = 2100, d = 2048;
    float* x = hash_features(1, n, d, 0.05); // (n, d)
    float* y = hash_features(2, n, d, 0.07); // (n, d)
    printf("2048-d features x[0, 0..3]: %.8f %.8f %.8f %.8f\n", x[0], x[1], x[2], x[3]);
    dato_fid_stats sx, sy;
    CHECK(stats_of(x, n, d, &sx, NULL) == DATO_OK && stats_of(y, n, d, &sy, NULL) == DATO_OK, "stats");
    dato_fid_result r;
    dato_error err;
    CHECK(dato_fid_from_stats(&sx, &sy, &r, &err) == DATO_OK, "%s", err.msg);
    double rel = fabs(r.fid - fid_ref[0]) / fid_ref[0];
    printf("2048-d FID (N = 2100) %.12f vs pytorch-fid %.12f: relative %.3g, clipped %d / %d\n", r.fid, fid_ref[0],
           rel, r.clipped_sigma1, r.clipped_product);
    CHECK(rel < 1e-6, "FID %.12f vs %.12f", r.fid, fid_ref[0]);
    dato_fid_stats_free(&sx), dato_fid_stats_free(&sy);
    free(x), free(y), free(fid_ref);
}

static void test_mmd_by_hand(void) {
    // m = 2, dim 1: k(x, y) = (xy + 1)³. x = {1, 2}, y = {0, 1}:
    // within = 2 k(1,2) + 2 k(0,1) = 54 + 2 -> 56 / 2 = 28; across = 1 + 8 + 1 + 27 = 37 -> 2 * 37 / 4.
    double x[2] = {1, 2}, y[2] = {0, 1}, mmd;
    dato_error err;
    CHECK(dato_kid_mmd2(x, y, 2, 1, &mmd, &err) == DATO_OK, "%s", err.msg);
    printf("MMD² by hand: %.15g (expect 9.5)\n", mmd);
    CHECK(fabs(mmd - 9.5) < 1e-12, "MMD² %.15g", mmd);
    CHECK(dato_kid_mmd2(x, y, 1, 1, &mmd, &err) == DATO_ERR_INVALID, "m = 1 accepted");
}

// dato_fid_from_features against the statistics path (dato_feature_stats + dato_frechet_distance)
// on seeded features: n <= dim takes the n x n route, n > dim the statistics. They agree to 1e-7
// relative: with n <= dim the statistics path's Σ1 is rank-deficient, and the square roots of its
// rounding-level eigenvalues (about 1e-16 of the largest; their roots about 1e-8) add up to
// the 1e-8 differences measured; the n x n route never forms them.
static void test_fid_from_features(void) {
    const int dims[] = {64, 256}, counts[] = {2, 5, 10, 64, 200};
    double worst = 0;
    for (int di = 0; di < 2; di++)
        for (int ci = 0; ci < 5; ci++) {
            int d = dims[di], n = counts[ci], nr = 3 * d / 2;
            float* f = malloc((size_t)(n + nr) * d * sizeof *f); // (n + nr, d): candidates, then reference
            uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(d + 7 * n);
            for (size_t i = 0; f && i < (size_t)(n + nr) * d; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                f[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5) * (1.0f + (float)(i % d) / d);
            }
            dato_error err;
            dato_fid_stats ref = {0}, mine = {0};
            dato_feature_stats acc;
            dato_fid_result fast, slow;
            int ok = f && !dato_feature_stats_init(&acc, d, &err);
            ok = ok && !dato_feature_stats_add(&acc, f + (size_t)n * d, nr, &err) &&
                 !dato_feature_stats_finalize(&acc, &ref, NULL, &err);
            dato_feature_stats_free(&acc);
            ok = ok && !dato_feature_stats_init(&acc, d, &err);
            ok = ok && !dato_feature_stats_add(&acc, f, n, &err) && !dato_feature_stats_finalize(&acc, &mine, NULL, &err);
            dato_feature_stats_free(&acc);
            ok = ok && !dato_fid_from_features(f, n, d, &ref, &fast, &err) && !dato_fid_from_stats(&mine, &ref, &slow, &err);
            CHECK(ok, "d %d, n %d: %s", d, n, err.msg);
            double rel = ok ? fabs(fast.fid - slow.fid) / fabs(slow.fid) : INFINITY;
            worst = fmax(worst, rel);
            CHECK(rel <= 1e-7, "d %d, n %d: FID %.15g from features vs %.15g from statistics (rel %.2e)", d, n, fast.fid,
                  slow.fid, rel);
            dato_fid_stats_free(&ref);
            dato_fid_stats_free(&mine);
            free(f);
        }
    printf("FID from features vs statistics, d 64 and 256, n 2..200: max rel err %.2e (tol 1e-7)\n", worst);
    dato_error err;
    dato_fid_stats ref = {0};
    dato_fid_result r;
    float one[4] = {0};
    CHECK(dato_fid_from_features(one, 1, 4, &ref, &r, &err) == DATO_ERR_INVALID && strstr(err.msg, "at least 2"),
          "one feature vector accepted");
}

// FID is never negative beyond rounding: identical rank-deficient statistics (n features <= d,
// whose rounding-level eigenvalues' roots push tr sqrt above the traces) come out 0 within
// DATO_FID_ROUND_TOL; statistics no Gaussian has are refused, by the check and by the distance.
static void test_never_negative(void) {
    dato_error err;
    int raw_negative = 0;
    double worst = 0;
    for (int seed = 1; seed <= 20; seed++) {
        int d = 64, n = 3 + seed % 7;
        float* f = malloc((size_t)n * d * sizeof *f); // (n, d)
        uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)seed;
        for (int i = 0; i < n * d; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            f[i] = (float)((double)(x >> 11) / 9007199254740992.0) * (float)(1 + i % 5);
        }
        dato_fid_stats s = {0};
        dato_fid_result r;
        int singular = 0;
        CHECK(stats_of(f, n, d, &s, &singular) == DATO_OK && singular, "seed %d", seed);
        CHECK(dato_fid_stats_check(&s, "rank-deficient", DATO_ERR_FORMAT, &err) == DATO_OK, "%s", err.msg);
        CHECK(dato_frechet_distance(d, s.mu, s.sigma, s.mu, s.sigma, &r, &err) == DATO_OK, "%s", err.msg);
        double raw = r.mean_term + r.trace1 + r.trace2 - 2 * r.trace_sqrt;
        raw_negative += raw < 0;
        worst = fmax(worst, -raw / (r.trace1 + r.trace2));
        CHECK(r.fid >= 0 && r.fid <= 1e-6 * (r.trace1 + r.trace2), "seed %d: FID %.3g (raw %.3g)", seed, r.fid, raw);
        dato_fid_stats_free(&s);
        free(f);
    }
    printf("identical rank-deficient stats, 20 seeds: %d raw sums negative, worst -%.2e of the traces (tol %g): "
           "FID 0\n", raw_negative, worst, DATO_FID_ROUND_TOL);
    CHECK(raw_negative > 0, "no raw sum came out negative: the case no longer tests the clamp");

    // Negative definite: the distance itself refuses rather than report -1.9e10-like values.
    double mu[2] = {0, 0}, neg[4] = {-1e10, 0, 0, -1e10}, pos[4] = {1, 0, 0, 1};
    dato_fid_result r;
    dato_status st = dato_frechet_distance(2, mu, pos, mu, neg, &r, &err);
    printf("negative-definite sigma2: %s\n", err.msg);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "negative beyond rounding") && r.fid == 0, "status %d FID %g: %s",
          (int)st, r.fid, err.msg);
    dato_fid_stats bad = {.dim = 2, .mu = mu, .sigma = neg};
    CHECK(dato_fid_stats_check(&bad, "neg.h5", DATO_ERR_FORMAT, &err) == DATO_ERR_FORMAT &&
              strstr(err.msg, "neg.h5: 'sigma' is not positive semi-definite: smallest eigenvalue -1e+10"),
          "%s", err.msg);
    double tilt[4] = {1, 1e-3, 0, 1}, nan_mu[2] = {0, NAN};
    bad.sigma = tilt;
    CHECK(dato_fid_stats_check(&bad, "tilt.npz", DATO_ERR_FORMAT, &err) == DATO_ERR_FORMAT &&
              strstr(err.msg, "tilt.npz: 'sigma' is not symmetric: [0][1] = 0.001"),
          "%s", err.msg);
    bad.sigma = pos, bad.mu = nan_mu;
    CHECK(dato_fid_stats_check(&bad, "nan.npz", DATO_ERR_FORMAT, &err) == DATO_ERR_FORMAT &&
              strstr(err.msg, "nan.npz: 'mu'[1] = nan is not finite"),
          "%s", err.msg);
}

int main(void) {
    test_anchors();
    test_never_negative();
    test_fid_from_features();
    test_mmd_by_hand();
    dato_safetensors st;
    dato_error err;
    if (dato_safetensors_open(&st, FIXTURE, &err) != DATO_OK) {
        CHECK(0, "%s", err.msg);
        return test_summary();
    }
    test_stats_and_pytorch_fid(&st);
    test_fid2048(&st);
    dato_safetensors_close(&st);
    return test_summary();
}
