// FID and KID math: see fid.h and docs/FID.md §6-9.
#include "fid.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

// Feature dimensions above this are refused: sigma alone would be 32 GiB.
#define DATO_FID_MAX_DIM 65536

static dato_status check_dim(int dim, const char* what, dato_error* err) {
    if (dim < 1 || dim > DATO_FID_MAX_DIM)
        return dato_fail(err, DATO_ERR_INVALID, "%s: feature dim %d out of range [1, %d]", what, dim,
                         DATO_FID_MAX_DIM);
    return DATO_OK;
}

// ---- Gaussian statistics -----------------------------------------------------------------------

dato_status dato_fid_stats_alloc(dato_fid_stats* s, int dim, dato_error* err) {
    memset(s, 0, sizeof *s);
    DATO_TRY(check_dim(dim, "fid stats", err));
    s->dim = dim;
    s->mu = calloc((size_t)dim, sizeof *s->mu);
    s->sigma = calloc((size_t)dim * (size_t)dim, sizeof *s->sigma);
    if (!s->mu || !s->sigma) {
        dato_fid_stats_free(s);
        return dato_fail(err, DATO_ERR_NOMEM, "fid stats: cannot allocate mu and sigma for dim %d", dim);
    }
    return DATO_OK;
}

void dato_fid_stats_free(dato_fid_stats* s) {
    free(s->mu);
    free(s->sigma);
    memset(s, 0, sizeof *s);
}

// ---- streaming accumulation ----------------------------------------------------------------------

dato_status dato_feature_stats_init(dato_feature_stats* s, int dim, dato_error* err) {
    memset(s, 0, sizeof *s);
    DATO_TRY(check_dim(dim, "feature stats", err));
    s->dim = dim;
    s->shift = calloc((size_t)dim, sizeof *s->shift);
    s->sum = calloc((size_t)dim, sizeof *s->sum);
    s->sum_outer = calloc((size_t)dim * (size_t)dim, sizeof *s->sum_outer);
    if (!s->shift || !s->sum || !s->sum_outer) {
        dato_feature_stats_free(s);
        return dato_fail(err, DATO_ERR_NOMEM, "feature stats: cannot allocate accumulators for dim %d", dim);
    }
    return DATO_OK;
}

dato_status dato_feature_stats_add(dato_feature_stats* s, const float* features, int batch, dato_error* err) {
    int d = s->dim;
    if (batch < 0) return dato_fail(err, DATO_ERR_INVALID, "feature stats: negative batch %d", batch);
    if (batch == 0) return DATO_OK;
    if (!features) return dato_fail(err, DATO_ERR_INVALID, "feature stats: NULL features for batch %d", batch);
    size_t count = (size_t)batch * (size_t)d;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(features[i]))
            return dato_fail(err, DATO_ERR_INVALID, "feature stats: non-finite feature %g at row %zu, column %zu",
                             (double)features[i], i / (size_t)d, i % (size_t)d);
    if (batch > s->capacity) {
        double* grown = realloc(s->centred, count * sizeof *grown);
        if (!grown) return dato_fail(err, DATO_ERR_NOMEM, "feature stats: cannot allocate a (%d, %d) batch", batch, d);
        s->centred = grown;
        s->capacity = batch;
    }
    if (s->n == 0) { // the first batch's mean becomes the shift
        for (int j = 0; j < d; j++) s->shift[j] = 0;
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < d; j++) s->shift[j] += features[(size_t)b * d + j];
        for (int j = 0; j < d; j++) s->shift[j] /= batch;
    }
    double* x = s->centred; // (batch, d)
    for (int b = 0; b < batch; b++) {
        const float* row = features + (size_t)b * d;
        double* xrow = x + (size_t)b * d;
        for (int j = 0; j < d; j++) {
            xrow[j] = (double)row[j] - s->shift[j];
            s->sum[j] += xrow[j];
        }
    }
    // sum_outer += xᵀ x (upper triangle), the O(B d²) part: one BLAS call.
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, batch, 1.0, x, d, 1.0, s->sum_outer, d);
    s->n += batch;
    return DATO_OK;
}

dato_status dato_feature_stats_finalize(const dato_feature_stats* s, dato_fid_stats* out, int* singular,
                                        dato_error* err) {
    memset(out, 0, sizeof *out);
    if (s->n < 2)
        return dato_fail(err, DATO_ERR_INVALID,
                         "feature stats: %ld feature vector(s) seen; a covariance needs at least 2", s->n);
    int d = s->dim;
    DATO_TRY(dato_fid_stats_alloc(out, d, err));
    out->count = s->n;
    double n = (double)s->n;
    for (int j = 0; j < d; j++) out->mu[j] = s->shift[j] + s->sum[j] / n;
    // Σ = (Σ x xᵀ - (Σ x)(Σ x)ᵀ / N) / (N - 1) on shifted x; mirror the upper triangle.
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) {
            double c = (s->sum_outer[(size_t)i * d + j] - s->sum[i] * s->sum[j] / n) / (n - 1);
            out->sigma[(size_t)i * d + j] = c;
            out->sigma[(size_t)j * d + i] = c;
        }
    if (singular) *singular = s->n <= d;
    return DATO_OK;
}

void dato_feature_stats_free(dato_feature_stats* s) {
    free(s->shift);
    free(s->sum);
    free(s->sum_outer);
    free(s->centred);
    memset(s, 0, sizeof *s);
}

// ---- Fréchet distance ------------------------------------------------------------------------

// Eigenvalues (ascending) of the symmetric d x d matrix a; with vectors, a is overwritten by
// them: eigenvector k is the contiguous row a[k*d .. k*d + d) (column-major columns).
static dato_status symmetric_eigen(double* a, double* w, int d, int vectors, const char* what, dato_error* err) {
    // A row-major upper triangle is the column-major lower one.
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, vectors ? 'V' : 'N', 'L', d, a, d, w);
    if (info < 0) return dato_fail(err, DATO_ERR_INVALID, "fid: dsyevd on %s: bad argument %d", what, (int)-info);
    if (info > 0) return dato_fail(err, DATO_ERR_INVALID, "fid: dsyevd on %s did not converge (info %d)", what, (int)info);
    return DATO_OK;
}

static dato_status check_finite(const double* x, size_t n, const char* what, dato_error* err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return dato_fail(err, DATO_ERR_INVALID, "fid: %s[%zu] is not finite (%g)", what, i, x[i]);
    return DATO_OK;
}

dato_status dato_fid_stats_check(const dato_fid_stats* s, const char* label, dato_status status, dato_error* err) {
    if (s->dim < 1 || s->dim > DATO_FID_MAX_DIM || !s->mu || !s->sigma)
        return dato_fail(err, status, "%s: statistics of dim %d without mu/sigma or out of [1, %d]", label, s->dim,
                         DATO_FID_MAX_DIM);
    size_t d = (size_t)s->dim;
    const double* arrays[2] = {s->mu, s->sigma};
    const char* names[2] = {"mu", "sigma"};
    const size_t counts[2] = {d, d * d};
    for (int a = 0; a < 2; a++)
        for (size_t i = 0; i < counts[a]; i++) {
            double v = arrays[a][i];
            if (!isfinite(v)) return dato_fail(err, status, "%s: '%s'[%zu] = %g is not finite", label, names[a], i, v);
            if (fabs(v) > DATO_FID_MAX_ABS)
                return dato_fail(err, status, "%s: '%s'[%zu] = %g is beyond %g in magnitude: the FID would overflow",
                                 label, names[a], i, v, DATO_FID_MAX_ABS);
        }
    const double* sg = s->sigma; // (d, d)
    double scale = 0;            // the largest variance: bounds every |sigma_ij| of a PSD matrix
    for (size_t i = 0; i < d; i++) scale = fmax(scale, fabs(sg[i * d + i]));
    for (size_t i = 0; i < d; i++)
        for (size_t j = i + 1; j < d; j++)
            if (fabs(sg[i * d + j] - sg[j * d + i]) > DATO_FID_SYM_TOL * scale)
                return dato_fail(err, status,
                                 "%s: 'sigma' is not symmetric: [%zu][%zu] = %.17g, [%zu][%zu] = %.17g (allowed "
                                 "difference %g x the largest variance %g)",
                                 label, i, j, sg[i * d + j], j, i, sg[j * d + i], DATO_FID_SYM_TOL, scale);
    double* work = malloc(d * d * sizeof *work); // (d, d) sigma, destroyed by dsyevd
    double* eig = malloc(d * sizeof *eig);       // (d) ascending
    dato_status st = work && eig ? DATO_OK
                                 : dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate a %d x %d eigen workspace",
                                             label, s->dim, s->dim);
    if (!st) {
        memcpy(work, sg, d * d * sizeof *work);
        st = symmetric_eigen(work, eig, s->dim, 0, "sigma", err);
    }
    if (!st && eig[0] < -DATO_FID_PSD_TOL * fmax(eig[d - 1], 0))
        st = dato_fail(err, status,
                       "%s: 'sigma' is not positive semi-definite: smallest eigenvalue %.6g, largest %.6g (allowed "
                       "down to -%g x the largest)",
                       label, eig[0], eig[d - 1], DATO_FID_PSD_TOL);
    free(work);
    free(eig);
    return st;
}

// fid = mean_term + trace1 + trace2 - 2 trace_sqrt. Below 0 by at most DATO_FID_ROUND_TOL of the
// terms it is rounding and becomes 0; further below, the covariances were not PSD.
static dato_status finish_fid(dato_fid_result* out, dato_error* err) {
    double fid = out->mean_term + out->trace1 + out->trace2 - 2 * out->trace_sqrt;
    double allowed = DATO_FID_ROUND_TOL * (out->mean_term + fabs(out->trace1) + fabs(out->trace2));
    if (fid < -allowed)
        return dato_fail(err, DATO_ERR_INVALID,
                         "fid: %.6g is negative beyond rounding (allowed -%.3g): a covariance is not positive "
                         "semi-definite (tr sigma1 %.6g, tr sigma2 %.6g, tr sqrt %.6g)",
                         fid, allowed, out->trace1, out->trace2, out->trace_sqrt);
    out->fid = fid > 0 ? fid : 0;
    return DATO_OK;
}

dato_status dato_frechet_distance(int dim, const double* mu1, const double* sigma1, const double* mu2,
                                  const double* sigma2, dato_fid_result* out, dato_error* err) {
    memset(out, 0, sizeof *out);
    DATO_TRY(check_dim(dim, "fid", err));
    size_t d = (size_t)dim, dd = d * d;
    DATO_TRY(check_finite(mu1, d, "mu1", err));
    DATO_TRY(check_finite(mu2, d, "mu2", err));
    DATO_TRY(check_finite(sigma1, dd, "sigma1", err));
    DATO_TRY(check_finite(sigma2, dd, "sigma2", err));
    for (size_t i = 0; i < d; i++) {
        double diff = mu1[i] - mu2[i];
        out->mean_term += diff * diff;
        out->trace1 += sigma1[i * d + i];
        out->trace2 += sigma2[i * d + i];
    }

    double* factor = malloc(dd * sizeof *factor);  // (d, d) eigenvectors of Σ1, then Aᵀ
    double* product = malloc(dd * sizeof *product); // (d, d) Aᵀ Σ2
    double* m = malloc(dd * sizeof *m);             // (d, d) Aᵀ Σ2 A
    double* eig = malloc(d * sizeof *eig);          // (d)
    dato_status st = DATO_OK;
    if (!factor || !product || !m || !eig) {
        st = dato_fail(err, DATO_ERR_NOMEM, "fid: cannot allocate the %d x %d work matrices", dim, dim);
        goto done;
    }
    memcpy(factor, sigma1, dd * sizeof *factor);
    st = symmetric_eigen(factor, eig, dim, 1, "sigma1", err);
    if (st != DATO_OK) goto done;
    // Row k of factor is eigenvector k; scaled by sqrt(λ_k) the rows form Aᵀ, with A Aᵀ = Σ1.
    for (size_t k = 0; k < d; k++) {
        if (eig[k] < 0) out->clipped_sigma1++;
        double scale = sqrt(eig[k] > 0 ? eig[k] : 0);
        for (size_t i = 0; i < d; i++) factor[k * d + i] *= scale;
    }
    // M = Aᵀ Σ2 A: product = Aᵀ Σ2 (Σ2 symmetric, upper read), m = product A.
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, dim, dim, 1.0, sigma2, dim, factor, dim, 0.0, product, dim);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, dim, dim, dim, 1.0, product, dim, factor, dim, 0.0, m, dim);
    for (size_t i = 0; i < d; i++) // symmetrise: rounding leaves M slightly asymmetric
        for (size_t j = i + 1; j < d; j++) {
            double avg = 0.5 * (m[i * d + j] + m[j * d + i]);
            m[i * d + j] = avg;
            m[j * d + i] = avg;
        }
    st = symmetric_eigen(m, eig, dim, 0, "sigma1^1/2 sigma2 sigma1^1/2", err);
    if (st != DATO_OK) goto done;
    for (size_t k = 0; k < d; k++) {
        if (eig[k] < 0) out->clipped_product++;
        else out->trace_sqrt += sqrt(eig[k]);
    }
    st = finish_fid(out, err);
done:
    free(factor);
    free(product);
    free(m);
    free(eig);
    return st;
}

dato_status dato_fid_from_stats(const dato_fid_stats* a, const dato_fid_stats* b, dato_fid_result* out,
                                dato_error* err) {
    if (a->dim != b->dim)
        return dato_fail(err, DATO_ERR_INVALID, "fid: statistics of dim %d and %d cannot be compared", a->dim, b->dim);
    return dato_frechet_distance(a->dim, a->mu, a->sigma, b->mu, b->sigma, out, err);
}

dato_status dato_fid_from_features(const float* features, int n, int dim, const dato_fid_stats* ref,
                                   dato_fid_result* out, dato_error* err) {
    memset(out, 0, sizeof *out);
    if (n < 2) return dato_fail(err, DATO_ERR_INVALID, "fid: %d feature vectors; a covariance needs at least 2", n);
    if (ref->dim != dim)
        return dato_fail(err, DATO_ERR_INVALID, "fid: features of dim %d and statistics of dim %d", dim, ref->dim);
    if (n > dim) { // full rank: the statistics path
        dato_feature_stats acc;
        dato_fid_stats st = {0};
        DATO_TRY(dato_feature_stats_init(&acc, dim, err));
        dato_status status = dato_feature_stats_add(&acc, features, n, err);
        if (!status) status = dato_feature_stats_finalize(&acc, &st, NULL, err);
        if (!status) status = dato_frechet_distance(dim, st.mu, st.sigma, ref->mu, ref->sigma, out, err);
        dato_feature_stats_free(&acc);
        dato_fid_stats_free(&st);
        return status;
    }
    size_t d = (size_t)dim;
    DATO_TRY(check_finite(ref->mu, d, "mu2", err));
    DATO_TRY(check_finite(ref->sigma, d * d, "sigma2", err));
    double* a = malloc(d * n * sizeof *a);         // (dim, n) centred features / sqrt(n - 1)
    double* p = malloc(d * n * sizeof *p);         // (dim, n) Σ2 A
    double* m = malloc((size_t)n * n * sizeof *m); // (n, n) Aᵀ Σ2 A
    double* eig = malloc((size_t)n * sizeof *eig); // (n)
    dato_status st = a && p && m && eig ? DATO_OK
                                        : dato_fail(err, DATO_ERR_NOMEM, "fid: cannot allocate the %d x %d work matrices",
                                                    dim, n);
    double scale = 1.0 / sqrt((double)(n - 1));
    for (size_t i = 0; !st && i < d; i++) {
        double mean = 0;
        for (int k = 0; k < n; k++) mean += features[(size_t)k * d + i];
        mean /= n;
        if (!isfinite(mean)) st = dato_fail(err, DATO_ERR_INVALID, "fid: feature %zu is not finite", i);
        double diff = mean - ref->mu[i];
        out->mean_term += diff * diff;
        out->trace2 += ref->sigma[i * d + i];
        for (int k = 0; k < n; k++) {
            double v = (features[(size_t)k * d + i] - mean) * scale;
            a[i * n + k] = v;
            out->trace1 += v * v;
        }
    }
    if (!st) {
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, dim, n, 1.0, ref->sigma, dim, a, n, 0.0, p, n);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, dim, 1.0, a, n, p, n, 0.0, m, n);
        for (int i = 0; i < n; i++) // symmetrise: rounding leaves M slightly asymmetric
            for (int j = i + 1; j < n; j++) {
                double avg = 0.5 * (m[(size_t)i * n + j] + m[(size_t)j * n + i]);
                m[(size_t)i * n + j] = m[(size_t)j * n + i] = avg;
            }
        st = symmetric_eigen(m, eig, n, 0, "A^T sigma2 A", err);
    }
    for (int k = 0; !st && k < n; k++) {
        if (eig[k] < 0) out->clipped_product++;
        else out->trace_sqrt += sqrt(eig[k]);
    }
    if (!st) st = finish_fid(out, err);
    free(a);
    free(p);
    free(m);
    free(eig);
    return st;
}

// ---- KID ---------------------------------------------------------------------------------------

static double poly_kernel(double dot, double inv_dim) {
    double k = dot * inv_dim + 1.0;
    return k * k * k;
}

dato_status dato_kid_mmd2(const double* x, const double* y, int m, int dim, double* out, dato_error* err) {
    *out = 0;
    DATO_TRY(check_dim(dim, "kid", err));
    if (m < 2) return dato_fail(err, DATO_ERR_INVALID, "kid: subset size %d; the unbiased MMD needs at least 2", m);
    size_t mm = (size_t)m * (size_t)m;
    double* gram = malloc(mm * sizeof *gram); // (m, m) inner products, reused for xx, yy, xy
    if (!gram) return dato_fail(err, DATO_ERR_NOMEM, "kid: cannot allocate a %d x %d Gram matrix", m, m);
    double inv_dim = 1.0 / dim;
    double within = 0; // Σ_{i≠j} k(x_i, x_j) + Σ_{i≠j} k(y_i, y_j), from the strict upper triangles
    const double* sets[2] = {x, y};
    for (int s = 0; s < 2; s++) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, m, dim, 1.0, sets[s], dim, 0.0, gram, m);
        for (int i = 0; i < m; i++)
            for (int j = i + 1; j < m; j++) within += 2 * poly_kernel(gram[(size_t)i * m + j], inv_dim);
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, dim, 1.0, x, dim, y, dim, 0.0, gram, m);
    double across = 0; // Σ_{i,j} k(x_i, y_j)
    for (size_t i = 0; i < mm; i++) across += poly_kernel(gram[i], inv_dim);
    free(gram);
    *out = within / ((double)m * (m - 1)) - 2 * across / ((double)m * m);
    return DATO_OK;
}

// Copies subset_size rows of features (n, dim), drawn without replacement by a partial
// Fisher-Yates shuffle of order (n), into dst (subset_size, dim) as float64.
static void draw_subset(dato_rng* rng, const float* features, long n, int dim, long* order, int subset_size,
                        double* dst) {
    for (long i = 0; i < n; i++) order[i] = i;
    for (int k = 0; k < subset_size; k++) {
        long j = k + (long)dato_rng_below(rng, (uint64_t)(n - k));
        long t = order[k];
        order[k] = order[j];
        order[j] = t;
        const float* src = features + (size_t)order[k] * dim;
        for (int c = 0; c < dim; c++) dst[(size_t)k * dim + c] = src[c];
    }
}

dato_status dato_kid(const float* features1, long n1, const float* features2, long n2, int dim,
                     const dato_kid_config* cfg, dato_kid_result* out, dato_error* err) {
    memset(out, 0, sizeof *out);
    DATO_TRY(check_dim(dim, "kid", err));
    int m = cfg->subset_size;
    if (cfg->n_subsets < 1) return dato_fail(err, DATO_ERR_INVALID, "kid: n_subsets %d < 1", cfg->n_subsets);
    if (m < 2) return dato_fail(err, DATO_ERR_INVALID, "kid: subset_size %d < 2", m);
    if (n1 < m || n2 < m)
        return dato_fail(err, DATO_ERR_INVALID, "kid: subset_size %d exceeds the feature sets (%ld and %ld rows)", m,
                         n1, n2);
    for (int s = 0; s < 2; s++) {
        const float* f = s ? features2 : features1;
        size_t count = (size_t)(s ? n2 : n1) * (size_t)dim;
        for (size_t i = 0; i < count; i++)
            if (!isfinite(f[i]))
                return dato_fail(err, DATO_ERR_INVALID, "kid: feature set %d: non-finite value at row %zu, column %zu",
                                 s + 1, i / (size_t)dim, i % (size_t)dim);
    }
    long* order = malloc((size_t)(n1 > n2 ? n1 : n2) * sizeof *order); // (max(n1, n2)) row permutation
    double* x = malloc((size_t)m * dim * sizeof *x);                     // (m, dim) subset of set 1
    double* y = malloc((size_t)m * dim * sizeof *y);                     // (m, dim) subset of set 2
    double* mmd = malloc((size_t)cfg->n_subsets * sizeof *mmd);          // (n_subsets)
    dato_status st = DATO_OK;
    if (!order || !x || !y || !mmd) {
        st = dato_fail(err, DATO_ERR_NOMEM, "kid: cannot allocate subsets of %d x %d", m, dim);
        goto done;
    }
    dato_rng rng;
    dato_rng_seed(&rng, cfg->seed);
    for (int s = 0; s < cfg->n_subsets; s++) {
        draw_subset(&rng, features1, n1, dim, order, m, x);
        draw_subset(&rng, features2, n2, dim, order, m, y);
        st = dato_kid_mmd2(x, y, m, dim, &mmd[s], err);
        if (st != DATO_OK) goto done;
    }
    double mean = 0, var = 0;
    for (int s = 0; s < cfg->n_subsets; s++) mean += mmd[s];
    mean /= cfg->n_subsets;
    for (int s = 0; s < cfg->n_subsets; s++) var += (mmd[s] - mean) * (mmd[s] - mean);
    out->mean = mean;
    out->std = sqrt(var / cfg->n_subsets);
done:
    free(order);
    free(x);
    free(y);
    free(mmd);
    return st;
}
