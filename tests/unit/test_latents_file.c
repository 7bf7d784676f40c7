// The .npy parser (engine/io/npy.c) and initial latents from .npy and safetensors files
// (engine/io/latents_file.c): numpy's own files of tests/fixtures/noise (tools/make_noise_fixtures.py)
// equal the torch generator's draw exactly; hostile headers and files are refused with messages
// that name the file, the tensor and the expected shape.
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "latents_file.h"
#include "npy.h"
#include "tensor.h"
#include "test_util.h"
#include "torch_rng.h"

#define FIX "tests/fixtures/noise/"

// An .npy buffer: magic, version, header (padded to 16 like numpy, then '\n'), then data_bytes bytes.
static size_t make_npy(unsigned char* buf, int major, const char* header, size_t data_bytes) {
    size_t pre = major == 1 ? 10 : 12, len = strlen(header);
    size_t padded = (pre + len + 1 + 15) / 16 * 16 - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major, buf[7] = 0;
    for (size_t i = 0; i < (major == 1 ? 2u : 4u); i++) buf[8 + i] = (unsigned char)(padded >> (8 * i));
    memcpy(buf + pre, header, len);
    memset(buf + pre + len, ' ', padded - len - 1);
    buf[pre + padded - 1] = '\n';
    for (size_t i = 0; i < data_bytes; i++) buf[pre + padded + i] = (unsigned char)i;
    return pre + padded + data_bytes;
}

// Headers: v1 and v2, 0 to 8 dims, f2/f4/f8; hostile ones refused, each with its message.
static void test_npy_headers(void) {
    unsigned char buf[512];
    dato_npy_array a;
    dato_error err;
    size_t n = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48);
    CHECK(dato_npy_parse(buf, n, "v1", &a, &err) == DATO_OK && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3 &&
              a.itemsize == 8 && a.data == buf + n - 48,
          "%s", err.msg);
    n = make_npy(buf, 2, "{\"shape\": (5,), \"fortran_order\": False, \"descr\": \"<f4\"}", 20);
    CHECK(dato_npy_parse(buf, n, "v2", &a, &err) == DATO_OK && a.ndim == 1 && a.numel == 5 && a.itemsize == 4, "%s",
          err.msg);
    n = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 8);
    CHECK(dato_npy_parse(buf, n, "scalar", &a, &err) == DATO_OK && a.ndim == 0 && a.numel == 1, "%s", err.msg);
    n = make_npy(buf, 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2, 1, 3, 1, 1, 1, 2), }", 24);
    CHECK(dato_npy_parse(buf, n, "8 dims", &a, &err) == DATO_OK && a.ndim == 8 && a.shape[3] == 3 && a.numel == 12 &&
              a.itemsize == 2,
          "%s", err.msg);

    struct {
        const char* header;
        size_t data_bytes;
        const char* expect;
    } bad[] = {
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 16, "dtype '<i8'"},
        {"{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", 32, "fortran_order True"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", 8,
         "'shape' is not a tuple of at most 8 dims"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-1,), }", 8, "'shape' is not a tuple"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8, "'shape' is not a tuple"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627775, 1099511627775), }", 8, "overflows"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627775, 8388608), }", 8, "data bytes"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 16, "needs 3 values"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 16, "needs 1 values"},
        {"{'descr': '<f8', 'shape': (2,), }", 16, "lacks 'fortran_order'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'extra': 1}", 16, "unexpected or repeated key 'extra'"},
        {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", 16, "repeated key 'descr'"},
        {"{'descr': '<f8, 'fortran_order': False, 'shape': (2,)}", 16, "expected ',' or '}'"},
        {"{'descr': '<f8' 'fortran_order': False, 'shape': (2,)}", 16, "expected ',' or '}'"},
        {"{'descr': '<f8', 'fortran_order': Nope, 'shape': (2,)}", 16, "not True/False"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} junk", 16, "text after the dict"},
        {"['descr', '<f8']", 16, "not a dict"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,)", 16, "expected ',' or '}' after 'shape'"},
        {"{'descr': '<f\\x38', 'fortran_order': False, 'shape': (2,)}", 16, "not a short string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = make_npy(buf, 1, bad[i].header, bad[i].data_bytes);
        dato_status st = dato_npy_parse(buf, n, "hostile", &a, &err);
        CHECK(st != DATO_OK && strstr(err.msg, bad[i].expect), "case %zu: expected '%s', got '%s'", i, bad[i].expect,
              st == DATO_OK ? "accepted" : err.msg);
    }
    // Framing: bad magic, unknown version, a header length past the end, a control byte, too short.
    n = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
    buf[1] = 'X';
    CHECK(dato_npy_parse(buf, n, "magic", &a, &err) == DATO_ERR_FORMAT && strstr(err.msg, "bad magic"), "%s", err.msg);
    buf[1] = 'N', buf[6] = 4;
    CHECK(dato_npy_parse(buf, n, "version", &a, &err) == DATO_ERR_UNSUPPORTED && strstr(err.msg, "4.0"), "%s",
          err.msg);
    buf[6] = 1, buf[8] = 0xff, buf[9] = 0xff;
    CHECK(dato_npy_parse(buf, n, "overrun", &a, &err) == DATO_ERR_FORMAT && strstr(err.msg, "overruns"), "%s",
          err.msg);
    n = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
    buf[12] = 0x01;
    CHECK(dato_npy_parse(buf, n, "control", &a, &err) == DATO_ERR_FORMAT && strstr(err.msg, "non-ASCII"), "%s",
          err.msg);
    CHECK(dato_npy_parse(buf, 9, "short", &a, &err) == DATO_ERR_FORMAT, "9 bytes accepted");
    n = make_npy(buf, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
    CHECK(dato_npy_parse(buf, 11, "short v2", &a, &err) == DATO_ERR_FORMAT, "11-byte v2 accepted");
    printf("hostile .npy headers: %zu refused with their messages\n", sizeof bad / sizeof bad[0] + 6);
}

// dato_npy_at: every dtype, exact, from unaligned data.
static void test_npy_values(void) {
    static const uint16_t f16[4] = {0x3c00, 0xc100, 0x7bff, 0x0001}; // 1, -2.5, 65504, 2^-24
    static const double want[4] = {1.0, -2.5, 65504.0, 0x1.0p-24};
    const char* headers[3] = {"{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
                              "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                              "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }"};
    double worst = 0;
    for (int k = 0; k < 3; k++) {
        unsigned char buf[256];
        int size = 2 << k;
        size_t n = 1 + make_npy(buf + 1, 1, headers[k], (size_t)(4 * size)); // data at an odd address
        unsigned char* data = buf + n - 4 * size;
        for (int i = 0; i < 4; i++) {
            float f = (float)want[i];
            if (size == 2) memcpy(data + 2 * i, &f16[i], 2);
            if (size == 4) memcpy(data + 4 * i, &f, 4);
            if (size == 8) memcpy(data + 8 * i, &want[i], 8);
        }
        dato_npy_array a;
        dato_error err;
        CHECK(dato_npy_parse(buf + 1, n - 1, "values", &a, &err) == DATO_OK, "%s", err.msg);
        for (int i = 0; i < 4; i++) worst = fmax(worst, fabs(dato_npy_at(&a, i) - want[i]));
    }
    printf(".npy values (f2, f4, f8, unaligned): max error %g\n", worst);
    CHECK(worst == 0, "dato_npy_at off by %g", worst);
}

// numpy's files of randn_tensor((1, 4, 8, 8), generator=manual_seed(3)) equal dato_torch_randn_latents.
static void test_fixture_files(void) {
    enum { N = 1 * 4 * 8 * 8 };
    float ref[N], ref16[N], got[N];
    dato_torch_randn_latents(3, DATO_TORCH_AVX2, ref, N);
    for (int i = 0; i < N; i++) ref16[i] = dato_f16_to_f32(dato_f32_to_f16(ref[i]));
    struct {
        const char* file;
        const float* want; // exactly
    } cases[] = {
        {FIX "seed3_f32.npy", ref},
        {FIX "seed3_f64.npy", ref},
        {FIX "seed3_f16.npy", ref16},
        {FIX "seed3.safetensors", ref}, // two tensors: "latents" is taken
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dato_error err;
        dato_status st = dato_latents_load(cases[c].file, 1, 4, 8, 8, got, &err);
        CHECK(st == DATO_OK, "%s", err.msg);
        if (st) continue;
        double e = test_max_abs_diff(got, cases[c].want, N), e_rng = test_max_abs_diff(got, ref, N);
        printf("%-40s max error %g (vs the generator's float32: %.2e)\n", cases[c].file, e, e_rng);
        CHECK(e == 0, "%s: off by %g", cases[c].file, e);
        CHECK(e_rng <= 2e-3, "%s: off by %g from the generator", cases[c].file, e_rng); // f16: 2^-11 relative, |x| < 4
    }
}

static void remove_tree(const char* dir) {
    DIR* d = opendir(dir);
    struct dirent* e;
    while (d && (e = readdir(d))) {
        char p[512];
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            remove(p);
        }
    }
    if (d) closedir(d);
    remove(dir);
}

// An .npy file of n float32 values (v, v + 1, ...) under header; the data may be cut short by `cut` bytes.
static int write_npy(const char* path, const char* header, size_t n, float v, size_t cut) {
    unsigned char* buf = malloc(256 + 4 * n);
    size_t len = make_npy(buf, 1, header, 4 * n);
    for (size_t i = 0; i < n; i++) {
        float x = v + (float)i;
        memcpy(buf + len - 4 * n + 4 * i, &x, 4);
    }
    int ok = write_bytes(path, buf, len - cut);
    free(buf);
    return ok;
}

// A safetensors file: 8-byte header length, the JSON header, data_bytes zero bytes.
static int write_st(const char* path, const char* header, size_t data_bytes) {
    size_t hn = strlen(header);
    unsigned char* buf = calloc(8 + hn + data_bytes, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, header, hn);
    int ok = write_bytes(path, buf, 8 + hn + data_bytes);
    free(buf);
    return ok;
}

// Wrong files: each refused with its status and a message naming the file and what was expected.
static void test_refusals(void) {
    char dir[] = "/tmp/dato_test_latents_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    char p[16][256];
    for (int i = 0; i < 16; i++) snprintf(p[i], sizeof p[i], "%s/case%d%s", dir, i, i < 8 ? ".npy" : ".safetensors");
    int ok = write_npy(p[0], "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, 8, 9), }", 288, 0, 0) &&
             write_npy(p[1], "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 8, 8), }", 256, 0, 0) &&
             write_npy(p[2], "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 4, 8, 8), }", 256, 0, 0) &&
             write_npy(p[3], "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, 8, 8), }", 256, INFINITY, 0) &&
             write_npy(p[4], "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 4, 8, 8), }", 256, 0, 4) &&
             write_npy(p[5], "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1), }", 300000, 0, 0) &&
             // f8 values near 1e301 (each double's high half is the float 1e38's bits): beyond float
             write_npy(p[6], "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 4, 8, 8), }", 512, 1e38f, 0) &&
             write_st(p[8], "{\"latents\":{\"dtype\":\"F32\",\"shape\":[1,4,8,9],\"data_offsets\":[0,1152]}}", 1152) &&
             write_st(p[9], "{\"noise\":{\"dtype\":\"I32\",\"shape\":[1,4,8,8],\"data_offsets\":[0,1024]}}", 1024) &&
             write_st(p[10],
                      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,4,8,8],\"data_offsets\":[0,1024]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1024,1032]}}",
                      1032) &&
             write_st(p[11], "{\"noise\":{\"dtype\":\"BF16\",\"shape\":[1,4,8,8],\"data_offsets\":[0,512]}}", 512) &&
             write_bytes(p[12], "not a safetensors file", 22);
    CHECK(ok, "cannot write the test files in %s", dir);
    char missing[300], other_ext[300];
    snprintf(missing, sizeof missing, "%s/absent.npy", dir);
    snprintf(other_ext, sizeof other_ext, "%s/case0.pt", dir);
    struct {
        const char* path;
        int B, C, h, w;
        dato_status want;
        const char* expect; // in the message, after the path
    } cases[] = {
        {p[0], 1, 4, 8, 8, DATO_ERR_INVALID, "the array has shape (1, 4, 8, 9), expected (B, C, h, w) = (1, 4, 8, 8)"},
        {p[1], 1, 4, 8, 8, DATO_ERR_INVALID, "the array has 3 dims, expected (B, C, h, w) = (1, 4, 8, 8)"},
        {p[0], 2, 4, 8, 9, DATO_ERR_INVALID, "expected (B, C, h, w) = (2, 4, 8, 9)"},
        {p[2], 1, 4, 8, 8, DATO_ERR_UNSUPPORTED, "dtype '<i4'"},
        {p[3], 1, 4, 8, 8, DATO_ERR_FORMAT, "latent value 0 of (1, 4, 8, 8) is not finite"},
        {p[4], 1, 4, 8, 8, DATO_ERR_FORMAT, "shape needs 256 values of 4 bytes but 1020 data bytes follow"},
        {p[5], 1, 1, 1, 1, DATO_ERR_FORMAT, "more than the 1048584 that the expected latents can take"},
        {p[6], 1, 4, 8, 8, DATO_ERR_FORMAT, "latent value 0 is not a finite float (6.0174e+301)"},
        {p[8], 1, 4, 8, 8, DATO_ERR_INVALID,
         "tensor 'latents' has shape (1, 4, 8, 9), expected (B, C, h, w) = (1, 4, 8, 8)"},
        {p[9], 1, 4, 8, 8, DATO_ERR_UNSUPPORTED, "dtype I32"},
        {p[10], 1, 4, 8, 8, DATO_ERR_NOT_FOUND, "2 tensors and none named 'latents'"},
        {p[12], 1, 4, 8, 8, DATO_ERR_FORMAT, ""},
        {missing, 1, 4, 8, 8, DATO_ERR_IO, "cannot open"},
        {other_ext, 1, 4, 8, 8, DATO_ERR_UNSUPPORTED, "must be a .npy or .safetensors file"},
        {p[11], 0, 4, 8, 8, DATO_ERR_INVALID, "bad arguments"},
    };
    float* out = malloc(2 * 4 * 8 * 9 * sizeof *out);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dato_error err = {{0}};
        dato_status st = dato_latents_load(cases[c].path, cases[c].B, cases[c].C, cases[c].h, cases[c].w, out, &err);
        const char* base = strrchr(cases[c].path, '/') + 1;
        CHECK(st == cases[c].want && strstr(err.msg, base) && strstr(err.msg, cases[c].expect),
              "case %zu: status %d (want %d), '%s' (want '%s')", c, (int)st, (int)cases[c].want, err.msg,
              cases[c].expect);
        printf("refused: %s\n", err.msg);
    }
    // One tensor of any name and a half dtype is taken (BF16 zeros).
    dato_error err;
    out[0] = 1;
    CHECK(dato_latents_load(p[11], 1, 4, 8, 8, out, &err) == DATO_OK && test_max_abs(out, 256) == 0, "%s", err.msg);
    free(out);
    remove_tree(dir);
}

int main(void) {
    test_npy_headers();
    test_npy_values();
    test_fixture_files();
    test_refusals();
    return test_summary();
}
