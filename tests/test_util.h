// A minimal test harness: CHECK records a failure and goes on; tests print their max errors
// and end with test_summary(), which prints "N passed, N failed" and returns the exit code.
#ifndef DATO_TEST_UTIL_H
#define DATO_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_passed_, test_failed_;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) {                                                          \
            test_passed_++;                                                  \
        } else {                                                             \
            test_failed_++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
        }                                                                    \
    } while (0)

// max |a - b| over n elements.
static inline double test_max_abs_diff(const float* a, const float* b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

// max |x| over n elements.
static inline double test_max_abs(const float* x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs((double)x[i]) > m ? fabs((double)x[i]) : m;
    return m;
}

// max|a - b| / max|b|: the relative error used by parity tests.
static inline double test_rel_err(const float* got, const float* ref, size_t n) {
    double r = test_max_abs(ref, n);
    return test_max_abs_diff(got, ref, n) / (r > 0 ? r : 1.0);
}

// max|a - b| / max|b| in double (a NaN in a counts as the largest difference).
static inline double test_rel_err_f64(const double* got, const double* ref, size_t n) {
    double m = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - ref[i]);
        m = d > m || d != d ? d : m;
        r = fabs(ref[i]) > r ? fabs(ref[i]) : r;
    }
    return m / (r > 0 ? r : 1);
}

// A whole file as a malloc'd buffer (NULL if unreadable); *n gets its size.
static inline unsigned char* read_bytes(const char* path, size_t* n) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char* buf = malloc(size > 0 ? (size_t)size : 1);
    *n = buf ? fread(buf, 1, (size_t)(size > 0 ? size : 0), f) : 0;
    fclose(f);
    return buf;
}

// Writes n bytes to path; 1 on success.
static inline int write_bytes(const char* path, const void* bytes, size_t n) {
    FILE* f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(bytes, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed_, test_failed_);
    return test_failed_ ? 1 : 0;
}

#endif
