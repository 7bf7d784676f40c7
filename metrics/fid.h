// FID and KID math (docs/FID.md §6, §7, §9): streaming feature statistics in float64, the
// Fréchet distance by the symmetric eigen form, and KID (unbiased polynomial-kernel MMD²).
#ifndef DATO_FID_H
#define DATO_FID_H

#include <stdint.h>

#include "status.h"

// Gaussian statistics of a feature set: mean and covariance with 1/(N-1) (np.cov).
typedef struct {
    int dim;
    long count;    // images behind the statistics; 0 when unknown (statistics imported from .npz)
    double* mu;    // (dim)
    double* sigma; // (dim, dim), symmetric
} dato_fid_stats;

// Allocates mu and sigma (zeroed) for dim features; count is set to 0.
dato_status dato_fid_stats_alloc(dato_fid_stats* s, int dim, dato_error* err);
void dato_fid_stats_free(dato_fid_stats* s);

// What statistics must be for the Fréchet distance to mean something (docs/EVALUATION.md,
// "Checks on statistics files").
#define DATO_FID_MAX_ABS 1e100  // |mu_i|, |sigma_ij| at most this: no term of the FID can overflow
#define DATO_FID_SYM_TOL 1e-5   // |sigma_ij - sigma_ji| <= tol * max_k sigma_kk (float32 rounding passes)
#define DATO_FID_PSD_TOL 1e-6   // smallest eigenvalue of sigma >= -tol * largest (rounding of a
                                // rank-deficient float32 sigma is ~5e-9 of the largest)
#define DATO_FID_ROUND_TOL 1e-6 // a FID in [-tol * (|mu1-mu2|² + tr Σ1 + tr Σ2), 0) is rounding: 0

// Refuses with st statistics that are not a Gaussian's: non-finite or larger than
// DATO_FID_MAX_ABS, sigma not symmetric within DATO_FID_SYM_TOL or not positive semi-definite
// within DATO_FID_PSD_TOL (LAPACK dsyevd). The message names label (the file), the array and the
// failing value.
dato_status dato_fid_stats_check(const dato_fid_stats* s, const char* label, dato_status st, dato_error* err);

// Streaming accumulation of Σ(x - shift) and Σ(x - shift)(x - shift)ᵀ in float64. The shift is
// the mean of the first batch, which keeps the one-pass covariance free of cancellation when
// features sit far from zero (ReLU features do).
typedef struct {
    int dim;
    long n;              // features seen
    double* shift;       // (dim), set by the first batch
    double* sum;         // (dim) Σ(x - shift)
    double* sum_outer;   // (dim, dim) Σ(x - shift)(x - shift)ᵀ, upper triangle only (dsyrk)
    double* centred;     // (capacity, dim) workspace: one batch in float64, shifted
    int capacity;        // rows of centred
} dato_feature_stats;

dato_status dato_feature_stats_init(dato_feature_stats* s, int dim, dato_error* err);
// Adds a batch of features (batch, dim). Non-finite values are refused (the stats are unchanged).
dato_status dato_feature_stats_add(dato_feature_stats* s, const float* features, int batch, dato_error* err);
// Writes mu and sigma (1/(N-1)) into out (allocated here; free with dato_fid_stats_free).
// DATO_ERR_INVALID when fewer than 2 features were added. *singular (may be NULL) is set to 1
// when N <= dim: the covariance then has rank < dim and FID is biased and ill-defined (§10.1).
dato_status dato_feature_stats_finalize(const dato_feature_stats* s, dato_fid_stats* out, int* singular,
                                        dato_error* err);
void dato_feature_stats_free(dato_feature_stats* s);

// The terms of one Fréchet distance.
typedef struct {
    double fid;           // mean_term + trace1 + trace2 - 2 trace_sqrt
    double mean_term;     // |mu1 - mu2|²
    double trace1;        // tr Σ1
    double trace2;        // tr Σ2
    double trace_sqrt;    // tr sqrt(Σ1 Σ2)
    int clipped_sigma1;   // negative eigenvalues of Σ1 clipped to 0
    int clipped_product;  // negative eigenvalues of Σ1^{1/2} Σ2 Σ1^{1/2} clipped to 0
} dato_fid_result;

// FID between two Gaussians by the symmetric form in float64 (LAPACK dsyevd):
// eigh(Σ1) -> Q, λ; A = Q diag(sqrt(max(λ, 0))); M = Aᵀ Σ2 A symmetrised; tr = Σ sqrt(max(eig M, 0)).
// Only the upper triangles of the covariances are read. Non-finite inputs are refused; a FID
// below 0 by at most DATO_FID_ROUND_TOL of its terms is rounding and comes out 0, one below
// that is refused (the covariances are not positive semi-definite).
dato_status dato_frechet_distance(int dim, const double* mu1, const double* sigma1, const double* mu2,
                                  const double* sigma2, dato_fid_result* out, dato_error* err);
// FID of features (n, dim) (n >= 2) against ref. With n <= dim the features' covariance Σ1 = A Aᵀ,
// A (dim, n) the centred features / sqrt(n - 1), has rank < n, and tr sqrt(Σ1^{1/2} Σ2 Σ1^{1/2})
// is tr sqrt(Aᵀ Σ2 A): an n x n eigenproblem instead of two dim x dim ones (the search's 10
// Inception images: 10 x 10, not 2048 x 2048). With n > dim, the statistics and
// dato_frechet_distance. The two agree to about 1e-8 relative: the statistics path adds the roots
// of a rank-deficient Σ1's rounding-level eigenvalues (tests/unit/test_fid.c).
dato_status dato_fid_from_features(const float* features, int n, int dim, const dato_fid_stats* ref,
                                   dato_fid_result* out, dato_error* err);
// The same on two dato_fid_stats (dims must agree).
dato_status dato_fid_from_stats(const dato_fid_stats* a, const dato_fid_stats* b, dato_fid_result* out,
                                dato_error* err);

// KID as torch-fidelity and clean-fid compute it: n_subsets times, draw subset_size rows of each
// set without replacement (dato_rng seeded with seed; set 1 then set 2 per subset), take the
// unbiased MMD² with k(x, y) = (xᵀy/dim + 1)³; report the mean and the population std (np.std).
typedef struct {
    int n_subsets;   // 100 in torch-fidelity / clean-fid
    int subset_size; // 1000 in torch-fidelity / clean-fid
    uint64_t seed;
} dato_kid_config;

typedef struct {
    double mean;
    double std;
} dato_kid_result;

dato_status dato_kid(const float* features1, long n1, const float* features2, long n2, int dim,
                     const dato_kid_config* cfg, dato_kid_result* out, dato_error* err);
// The unbiased MMD² of one pair of equal-size sets x (m, dim), y (m, dim), m >= 2, float64:
// [Σ_{i≠j} k(x_i,x_j) + Σ_{i≠j} k(y_i,y_j)]/(m(m-1)) - 2 Σ_{i,j} k(x_i,y_j)/m².
dato_status dato_kid_mmd2(const double* x, const double* y, int m, int dim, double* out, dato_error* err);

#endif
