// Image sets: see image_set.h.
#include "image_set.h"

#include <dirent.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5_util.h"
#include "image.h"

#define MAX_SIDE 16384 // an HDF5 set's images are at most this high and wide

static int has_suffix(const char* s, const char* suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int cmp_str(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

// Dataset "images" of the open HDF5 file f: its shape checked, the byte count in 64 bits before
// anything is allocated.
static dato_status read_h5_images(dato_image_set* s, hid_t f, dato_error* err) {
    const char* path = s->path;
    dato_status st = DATO_OK;
    hid_t d = H5Lexists(f, "images", H5P_DEFAULT) > 0 ? H5Dopen2(f, "images", H5P_DEFAULT) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hid_t ty = d >= 0 ? H5Dget_type(d) : -1;
    hsize_t dims[4] = {0}; // (N, H, W, C)
    if (d < 0 || sp < 0 || ty < 0) st = dato_fail(err, DATO_ERR_NOT_FOUND, "%s: no dataset 'images'", path);
    else if (H5Sget_simple_extent_ndims(sp) != 4 || H5Sget_simple_extent_dims(sp, dims, NULL) != 4 ||
             (dims[3] != 1 && dims[3] != 3) || !dims[0] || !dims[1] || !dims[2] || dims[1] > MAX_SIDE ||
             dims[2] > MAX_SIDE)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: dataset 'images' must be (N >= 1, H, W <= %d, 1 or 3)", path,
                       MAX_SIDE);
    else if (H5Tget_class(ty) != H5T_INTEGER || H5Tget_size(ty) != 1 || H5Tget_sign(ty) != H5T_SGN_NONE)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: dataset 'images' must be uint8", path);
    uint64_t per_image = (uint64_t)dims[1] * dims[2] * dims[3]; // <= 16384² x 3: no overflow
    if (!st && dims[0] > (uint64_t)INT64_MAX / per_image)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: dataset 'images' of %llu images of %llu bytes: more bytes than 64 "
                       "bits count", path, (unsigned long long)dims[0], (unsigned long long)per_image);
    uint64_t bytes = st ? 0 : dims[0] * per_image;
    if (!st && (bytes > SIZE_MAX || !(s->pixels = malloc((size_t)bytes))))
        st = dato_fail(err, DATO_ERR_NOMEM, "%s: cannot hold %llu images of %llux%llux%llu (%llu bytes)", path,
                       (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                       (unsigned long long)dims[3], (unsigned long long)bytes);
    if (!st && H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->pixels) < 0)
        st = dato_fail(err, DATO_ERR_IO, "%s: cannot read dataset 'images'", path);
    if (!st) {
        s->n = (int64_t)dims[0];
        s->h = (int)dims[1], s->w = (int)dims[2], s->c = (int)dims[3];
    }
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    return st;
}

static dato_status open_h5(dato_image_set* s, dato_error* err) {
    dato_h5_quiet quiet = dato_h5_silence();
    hid_t f = H5Fopen(s->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    dato_status st = f < 0 ? dato_fail(err, DATO_ERR_IO, "%s: cannot open as HDF5", s->path) : read_h5_images(s, f, err);
    if (f >= 0) H5Fclose(f);
    dato_h5_restore(quiet);
    return st;
}

// The .png files of folder d, sorted by name.
static dato_status list_pngs(dato_image_set* s, DIR* d, dato_error* err) {
    int64_t cap = 0;
    struct dirent* e;
    while ((e = readdir(d))) {
        if (!has_suffix(e->d_name, ".png")) continue;
        if (s->n == cap) {
            cap = cap ? 2 * cap : 256;
            char** grown = realloc(s->files, (size_t)cap * sizeof *grown);
            if (!grown) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot list %lld images", s->path, (long long)cap);
            s->files = grown;
        }
        size_t len = strlen(s->path) + strlen(e->d_name) + 2;
        if (!(s->files[s->n] = malloc(len))) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", s->path);
        snprintf(s->files[s->n++], len, "%s/%s", s->path, e->d_name);
    }
    if (s->n == 0) return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: no .png images", s->path);
    qsort(s->files, (size_t)s->n, sizeof *s->files, cmp_str);
    return DATO_OK;
}

dato_status dato_image_set_open(dato_image_set* s, const char* path, int64_t limit, dato_error* err) {
    memset(s, 0, sizeof *s);
    if (snprintf(s->path, sizeof s->path, "%s", path) >= (int)sizeof s->path)
        return dato_fail(err, DATO_ERR_INVALID, "%s: path too long", path);
    dato_status st;
    DIR* d;
    if (has_suffix(path, ".h5") || has_suffix(path, ".hdf5")) {
        st = open_h5(s, err);
    } else if ((d = opendir(path))) {
        st = list_pngs(s, d, err);
        closedir(d);
    } else {
        st = dato_idx_read(&s->idx, path, err);
        if (!st && s->idx.ndim != 3)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: an IDX image file has 3 dimensions (n, rows, cols), not %d", path,
                           s->idx.ndim);
        if (!st) s->n = s->idx.shape[0], s->h = (int)s->idx.shape[1], s->w = (int)s->idx.shape[2], s->c = 1;
    }
    if (st) {
        dato_image_set_close(s);
        return st;
    }
    if (limit > 0 && s->n > limit) {
        for (int64_t i = limit; s->files && i < s->n; i++) free(s->files[i]);
        s->n = limit;
    }
    return DATO_OK;
}

dato_status dato_image_set_load(const dato_image_set* s, int64_t i, dato_feature_extractor* fx, float* out,
                                dato_error* err) {
    if (i < 0 || i >= s->n)
        return dato_fail(err, DATO_ERR_INVALID, "%s: image %lld of %lld", s->path, (long long)i, (long long)s->n);
    if (!s->files) { // IDX or HDF5: one block of (n, h, w, c) bytes
        const uint8_t* px = s->pixels ? s->pixels : s->idx.data;
        dato_status st = fx->preprocess(fx, px + (size_t)i * s->h * s->w * s->c, s->h, s->w, s->c, out, err);
        return st ? dato_error_prefix(err, st, "%s: image %lld: ", s->path, (long long)i) : DATO_OK;
    }
    uint8_t* px = NULL;
    int h, w, c;
    DATO_TRY(dato_png_read(s->files[i], &px, &h, &w, &c, err));
    dato_status st = fx->preprocess(fx, px, h, w, c, out, err);
    free(px);
    return st ? dato_error_prefix(err, st, "%s: ", s->files[i]) : DATO_OK;
}

void dato_image_set_close(dato_image_set* s) {
    for (int64_t i = 0; s->files && i < s->n; i++) free(s->files[i]);
    free(s->files);
    free(s->pixels);
    dato_idx_free(&s->idx);
    memset(s, 0, sizeof *s);
}
