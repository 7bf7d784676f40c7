// Image sets (metrics/image_set.c), as dato-fid reads them: a PNG that the extractor refuses is
// named in the message, an HDF5 set whose byte count does not fit 64 bits and an IDX header whose
// sizes overflow are refused before anything is allocated, counts and limits are 64-bit.
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "image_set.h"
#include "test_util.h"

// An extractor that takes 28x28 images only, refusing others as featnet does (no file name).
static dato_status fake_preprocess(dato_feature_extractor* fx, const uint8_t* img, int h, int w, int c, float* out,
                                   dato_error* err) {
    (void)fx;
    if (h != 28 || w != 28)
        return dato_fail(err, DATO_ERR_INVALID, "featnet: image is %dx%d (h x w), the network takes 28x28", h, w);
    for (int i = 0; i < h * w; i++) out[i] = img[i * c];
    return DATO_OK;
}

static void test_png_named(const char* dir) {
    dato_error err;
    uint8_t px[40 * 40] = {0};
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a.png", dir);
    snprintf(b, sizeof b, "%s/b.png", dir);
    CHECK(dato_png_write(a, px, 28, 28, 1, NULL, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_png_write(b, px, 40, 40, 1, NULL, &err) == DATO_OK, "%s", err.msg);
    dato_feature_extractor fx = {.preprocess = fake_preprocess, .in_c = 1, .in_h = 28, .in_w = 28};
    dato_image_set s;
    float out[28 * 28];
    CHECK(dato_image_set_open(&s, dir, 0, &err) == DATO_OK && s.n == 2, "%s", err.msg);
    CHECK(dato_image_set_load(&s, 0, &fx, out, &err) == DATO_OK, "%s", err.msg);
    dato_status st = dato_image_set_load(&s, 1, &fx, out, &err);
    printf("40x40 PNG: %s\n", err.msg);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, b) && strstr(err.msg, "image is 40x40"), "%s", err.msg);
    dato_image_set_close(&s);
    CHECK(dato_image_set_open(&s, dir, 1, &err) == DATO_OK && s.n == 1, "limit 1: %s", err.msg);
    dato_image_set_close(&s);
    remove(a), remove(b);
}

// An HDF5 set of (n, h, w, c) uint8 images, chunked: nothing of it is stored, so any count is cheap.
static void write_h5_images(const char* path, hsize_t n, hsize_t h, hsize_t w, hsize_t c) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {n, h, w, c}, chunk[4] = {1, 1, 1, 1};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 4, chunk);
    hid_t d = H5Dcreate2(f, "images", H5T_NATIVE_UINT8, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Dclose(d), H5Pclose(pl), H5Sclose(sp), H5Fclose(f);
}

static void test_h5_counts(const char* dir) {
    dato_error err;
    dato_image_set s;
    char path[512];
    snprintf(path, sizeof path, "%s/images.h5", dir);
    // 2^62 images of 16384x16384x3 bytes: the byte count wraps 64 bits; today's product wrapped too.
    write_h5_images(path, (hsize_t)1 << 62, 16384, 16384, 3);
    dato_status st = dato_image_set_open(&s, path, 0, &err);
    printf("2^62 images: %s\n", err.msg);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "4611686018427387904 images") && strstr(err.msg, "64 bits"),
          "%s", err.msg);
    // 3 grey 2x2 images, fill value 0: opened, and a limit keeps 2
    write_h5_images(path, 3, 2, 2, 1);
    CHECK(dato_image_set_open(&s, path, 2, &err) == DATO_OK && s.n == 2 && s.h == 2 && s.c == 1, "%s", err.msg);
    dato_feature_extractor fx = {.preprocess = fake_preprocess};
    float out[4];
    st = dato_image_set_load(&s, 1, &fx, out, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, path) && strstr(err.msg, "image 1"), "%s", err.msg);
    dato_image_set_close(&s);
    remove(path);
}

static void write_idx(const char* path, int ndim, const uint32_t* dims, size_t data_bytes) {
    FILE* f = fopen(path, "wb");
    uint8_t magic[4] = {0, 0, 0x08, (uint8_t)ndim};
    fwrite(magic, 1, 4, f);
    for (int d = 0; d < ndim; d++) {
        uint8_t b[4] = {(uint8_t)(dims[d] >> 24), (uint8_t)(dims[d] >> 16), (uint8_t)(dims[d] >> 8), (uint8_t)dims[d]};
        fwrite(b, 1, 4, f);
    }
    for (size_t i = 0; i < data_bytes; i++) fputc((int)(i & 0xff), f);
    fclose(f);
}

static void test_idx(const char* dir) {
    dato_error err;
    dato_image_set s;
    char path[512];
    snprintf(path, sizeof path, "%s/images.idx", dir);
    // 0xffffffff x 0xffffffff: the product overflowed int64 before its range check
    write_idx(path, 2, (uint32_t[]){0xffffffffu, 0xffffffffu}, 0);
    dato_idx x;
    dato_status st = dato_idx_read(&x, path, &err);
    printf("IDX 0xffffffff x 0xffffffff: %s\n", err.msg);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "dimension 1 of size 4294967295") && x.data == NULL, "%s",
          err.msg);
    write_idx(path, 3, (uint32_t[]){0, 28, 28}, 0);
    CHECK(dato_idx_read(&x, path, &err) == DATO_ERR_FORMAT && strstr(err.msg, "dimension 0 has size 0"), "%s",
          err.msg);
    // 5 images of 3x2: read whole, a limit of 4 kept
    write_idx(path, 3, (uint32_t[]){5, 3, 2}, 30);
    CHECK(dato_image_set_open(&s, path, 4, &err) == DATO_OK && s.n == 4 && s.h == 3 && s.w == 2 && s.c == 1 &&
              s.idx.data[29] == 29,
          "%s", err.msg);
    dato_image_set_close(&s);
    write_idx(path, 2, (uint32_t[]){5, 6}, 30);
    CHECK(dato_image_set_open(&s, path, 0, &err) == DATO_ERR_FORMAT && strstr(err.msg, "not 2"), "%s", err.msg);
    remove(path);
}

int main(void) {
    char dir[] = "/tmp/dato_test_image_set_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    test_png_named(dir);
    test_h5_counts(dir);
    test_idx(dir);
    rmdir(dir);
    return test_summary();
}
