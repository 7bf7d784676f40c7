// dato-fid end to end with seeded Inception weights (the real file is not available here):
// statistics of a PNG folder and of an IDX file (Fashion-MNIST from Debian's package), FID of a
// set against its own statistics (0), against another set's (> 0), KID, and refusal of
// statistics made with another preprocessing, naming both. argv[1] is dato-generate's path;
// dato-fid sits beside it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <hdf5.h>

#include "image.h"
#include "inception.h"
#include "rng.h"
#include "test_util.h"

#define FASHION "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

static char dir[] = "/tmp/dato-fid-XXXXXX";
static char exe[1024];

// Runs dato-fid with args; stdout into out (may be NULL), stderr into dir/err.txt; exit code.
static int run(const char* args, char* out, size_t n) {
    char cmd[4096], path[256];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    snprintf(cmd, sizeof cmd, "%s %s > %s 2> %s/err.txt", exe, args, path, dir);
    int rc = system(cmd);
    if (out) {
        FILE* f = fopen(path, "r");
        size_t got = f ? fread(out, 1, n - 1, f) : 0;
        out[got] = 0;
        if (f) fclose(f);
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int err_has(const char* needle) {
    char path[256], buf[4096] = {0};
    snprintf(path, sizeof path, "%s/err.txt", dir);
    FILE* f = fopen(path, "r");
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[got] = 0;
    if (f) fclose(f);
    return strstr(buf, needle) != NULL;
}

static void write_pngs(const char* sub, uint64_t seed, int n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    mkdir(path, 0755);
    dato_rng r;
    dato_rng_seed(&r, seed);
    uint8_t px[40 * 32 * 3];
    dato_error err;
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof px; k++) px[k] = (uint8_t)dato_rng_below(&r, 256);
        snprintf(path, sizeof path, "%s/%s/img%02d.png", dir, sub, i);
        dato_png_write(path, px, 40, 32, 3, NULL, &err);
    }
}

static double parse_after(const char* text, const char* key) {
    const char* p = strstr(text, key);
    return p ? atof(p + strlen(key)) : -1e30;
}

int main(int argc, char** argv) {
    if (argc < 2 || !mkdtemp(dir)) return 2;
    const char* slash = strrchr(argv[1], '/');
    snprintf(exe, sizeof exe, "%.*s/dato-fid", slash ? (int)(slash - argv[1]) : 1, slash ? argv[1] : ".");
    dato_error err = {{0}};
    dato_backend be;
    dato_inception net;
    if (dato_backend_cpu_init(&be, 0, &err)) return 1;
    dato_inception_init(&net, &be);
    char weights[256], args[2048], out[4096];
    snprintf(weights, sizeof weights, "%s/inception.safetensors", dir);
    CHECK(dato_inception_write_seeded(&net, weights, 7, &err) == DATO_OK, "%s", err.msg);
    dato_inception_free(&net);
    dato_backend_destroy(&be);
    write_pngs("a", 1, 5);
    write_pngs("b", 2, 5);

    snprintf(args, sizeof args, "stats --images %s/a --weights %s --out %s/a.h5 --batch 3", dir, weights, dir);
    CHECK(run(args, out, sizeof out) == 0 && strstr(out, "wrote"), "stats a failed: %s", out);
    snprintf(args, sizeof args, "score --images %s/a --weights %s --stats %s/a.h5", dir, weights, dir);
    CHECK(run(args, out, sizeof out) == 0, "score a vs a failed");
    double self = parse_after(out, "FID ");
    snprintf(args, sizeof args, "score --images %s/b --weights %s --stats %s/a.h5 --kid-ref %s/a", dir, weights, dir,
             dir);
    CHECK(run(args, out, sizeof out) == 0, "score b vs a failed");
    double other = parse_after(out, "FID "), kid = parse_after(out, "KID ");
    printf("FID(a, a) = %.3e, FID(b, a) = %.4f, KID(b, a) = %.4f\n", self, other, kid);
    CHECK(self > -1e-6 && self < 1e-6 * (other > 1 ? other : 1), "FID of a set against itself: %g", self);
    CHECK(other > 1e-3, "FID of two different sets: %g", other);
    CHECK(kid > -1e29, "no KID printed");

    // Statistics made with another preprocessing are refused, naming both.
    snprintf(args, sizeof args, "stats --images %s/a --weights %s --out %s/t.h5 --preprocess tf", dir, weights, dir);
    CHECK(run(args, NULL, 0) == 0, "stats with tf preprocessing failed");
    snprintf(args, sizeof args, "score --images %s/a --weights %s --stats %s/t.h5", dir, weights, dir);
    CHECK(run(args, NULL, 0) == 1 && err_has("pytorch-fid") && err_has("tf"), "a preprocessing mismatch was accepted");

    // An IDX file (grey 28x28 made RGB).
    struct stat sb;
    if (stat(FASHION, &sb) == 0) {
        snprintf(args, sizeof args, "stats --images %s --limit 4 --weights %s --out %s/f.h5", FASHION, weights, dir);
        CHECK(run(args, out, sizeof out) == 0 && strstr(out, "4 images"), "stats of an IDX file failed: %s", out);
    } else {
        CHECK(0, "%s missing: scripts/install-deps installs dataset-fashion-mnist", FASHION);
    }
    // An HDF5 image set: dataset "images", uint8 (N, H, W, 1).
    char h5path[256];
    snprintf(h5path, sizeof h5path, "%s/set.h5", dir);
    static uint8_t grey[3 * 30 * 20];
    for (size_t k = 0; k < sizeof grey; k++) grey[k] = (uint8_t)(k * 7 % 256);
    hid_t f = H5Fcreate(h5path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {3, 30, 20, 1};
    hid_t sp = H5Screate_simple(4, dims, NULL);
    hid_t d = H5Dcreate2(f, "images", H5T_NATIVE_UINT8, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, grey);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    snprintf(args, sizeof args, "stats --images %s --weights %s --out %s/h.h5", h5path, weights, dir);
    CHECK(run(args, out, sizeof out) == 0 && strstr(out, "3 images"), "stats of an HDF5 image set failed: %s", out);
    snprintf(args, sizeof args, "stats --images %s --weights %s --out %s/h.h5 --extractor other", h5path, weights, dir);
    CHECK(run(args, NULL, 0) == 2 && err_has("other"), "an unknown extractor is not named");

    // Bad input: clear errors.
    snprintf(args, sizeof args, "stats --images %s/nowhere --weights %s --out %s/x.h5", dir, weights, dir);
    CHECK(run(args, NULL, 0) == 1 && err_has("nowhere"), "a missing image folder is not named");
    snprintf(args, sizeof args, "score --images %s/a --weights %s", dir, weights);
    CHECK(run(args, NULL, 0) == 2 && err_has("--stats"), "a missing --stats is not named");

    snprintf(args, sizeof args, "rm -rf %s", dir);
    if (system(args) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
