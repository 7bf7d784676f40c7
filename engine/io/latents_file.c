// Initial latents from .npy or safetensors files. See latents_file.h.
#include "latents_file.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "npy.h"
#include "safetensors.h"
#include "tensor.h"

// Room for an .npy header beyond the data (numpy writes at most a few hundred bytes).
#define NPY_HEADER_SLACK ((size_t)1 << 20)

static int ends_with(const char* s, const char* suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// The whole file into a malloc'd buffer; a file of more than max_bytes is refused before reading.
static dato_status read_file(const char* path, size_t max_bytes, unsigned char** out, size_t* n, dato_error* err) {
    *out = NULL;
    FILE* f = fopen(path, "rb");
    if (!f) return dato_fail(err, DATO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return dato_fail(err, DATO_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)max_bytes) {
        fclose(f);
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %lld bytes, more than the %zu that the expected latents can take",
                         path, (long long)sb.st_size, max_bytes);
    }
    *n = (size_t)sb.st_size;
    unsigned char* buf = malloc(*n ? *n : 1);
    size_t got = buf ? fread(buf, 1, *n, f) : 0;
    fclose(f);
    if (!buf) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, *n);
    if (got != *n) {
        free(buf);
        return dato_fail(err, DATO_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, *n);
    }
    *out = buf;
    return DATO_OK;
}

// what (e.g. "tensor 'latents'") must have shape want (B, C, h, w).
static dato_status check_shape(const char* path, const char* what, int ndim, const int64_t* shape,
                               const int64_t* want, dato_error* err) {
    int same = ndim == 4;
    for (int i = 0; same && i < 4; i++) same = shape[i] == want[i];
    if (same) return DATO_OK;
    if (ndim != 4)
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s has %d dims, expected (B, C, h, w) = (%lld, %lld, %lld, %lld)",
                         path, what, ndim, (long long)want[0], (long long)want[1], (long long)want[2],
                         (long long)want[3]);
    char got[96];
    dato_tensor t = dato_tensor_make(NULL, DATO_F32, DATO_DEV_CPU, 4, shape);
    return dato_fail(err, DATO_ERR_INVALID, "%s: %s has shape %s, expected (B, C, h, w) = (%lld, %lld, %lld, %lld)",
                     path, what, dato_shape_str(&t, got, sizeof got), (long long)want[0], (long long)want[1],
                     (long long)want[2], (long long)want[3]);
}

static dato_status load_npy(const char* path, const int64_t* want, size_t numel, float* out, dato_error* err) {
    unsigned char* bytes;
    size_t n = 0;
    DATO_TRY(read_file(path, numel * 8 + NPY_HEADER_SLACK, &bytes, &n, err));
    dato_npy_array a;
    dato_status st = dato_npy_parse(bytes, n, path, &a, err);
    if (st == DATO_OK) st = check_shape(path, "the array", a.ndim, a.shape, want, err);
    for (size_t i = 0; st == DATO_OK && i < numel; i++) {
        double v = dato_npy_at(&a, (int64_t)i); // a finite f8 value beyond float's range has no float (undefined)
        if (isfinite(v) && fabs(v) > FLT_MAX)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: latent value %zu is not a finite float (%g)", path, i, v);
        else out[i] = (float)v;
    }
    free(bytes);
    return st;
}

static dato_status load_safetensors(const char* path, const int64_t* want, size_t numel, float* out,
                                    dato_error* err) {
    dato_safetensors sf;
    DATO_TRY(dato_safetensors_open(&sf, path, err));
    const dato_st_tensor* t = sf.n_tensors == 1 ? &sf.tensors[0] : dato_safetensors_find(&sf, "latents");
    dato_status st = DATO_OK;
    if (!t)
        st = dato_fail(err, DATO_ERR_NOT_FOUND, "%s: %d tensors and none named 'latents' (expected one tensor, or one "
                       "named 'latents', of shape (B, C, h, w) = (%lld, %lld, %lld, %lld))",
                       path, sf.n_tensors, (long long)want[0], (long long)want[1], (long long)want[2],
                       (long long)want[3]);
    char what[300];
    if (t) snprintf(what, sizeof what, "tensor '%.256s'", t->name);
    if (st == DATO_OK) st = check_shape(path, what, t->ndim, t->shape, want, err);
    if (st == DATO_OK) st = dato_st_tensor_to_f32(t, out, numel, err);
    dato_safetensors_close(&sf);
    return st;
}

dato_status dato_latents_load(const char* path, int B, int C, int h, int w, float* out, dato_error* err) {
    if (!path || !out || B < 1 || C < 1 || h < 1 || w < 1)
        return dato_fail(err, DATO_ERR_INVALID, "latents: bad arguments (path %s, B %d, C %d, h %d, w %d)",
                         path ? path : "NULL", B, C, h, w);
    const int64_t want[4] = {B, C, h, w};
    size_t numel = (size_t)B * (size_t)C * (size_t)h * (size_t)w;
    dato_status st;
    if (ends_with(path, ".npy")) st = load_npy(path, want, numel, out, err);
    else if (ends_with(path, ".safetensors")) st = load_safetensors(path, want, numel, out, err);
    else return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: latents must be a .npy or .safetensors file", path);
    if (st != DATO_OK) return st;
    for (size_t i = 0; i < numel; i++)
        if (!isfinite(out[i]))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: latent value %zu of (%d, %d, %d, %d) is not finite (%g)", path,
                             i, B, C, h, w, (double)out[i]);
    return DATO_OK;
}
