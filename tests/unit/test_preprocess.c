// FID preprocessing against the reference implementations (tools/make_preprocess_fixtures.py):
// pytorch-fid (torch F.interpolate), tf (torch-fidelity's TF1 bilinear) and clean (clean-fid's
// PIL bicubic), on LCG images that this test regenerates. Each fixture holds 4096 sampled output
// values per mode plus the full output's mean and max |x|.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "preprocess.h"
#include "safetensors.h"
#include "test_util.h"

#define OUT_NUMEL ((size_t)3 * DATO_FID_SIZE * DATO_FID_SIZE)

// Tolerances on [-1, 1] outputs: float32 ulp-level for the bilinear modes (torch-fidelity states
// 1e-5 for TF interpolation), and room for double-sum ordering in clean.
static const double mode_tol[3] = {1e-6, 1e-5, 1e-4};

// The fixture generator's bytes: s = s * 1664525 + 1013904223 (mod 2^32), byte = s >> 24.
static void lcg_bytes(uint8_t* out, size_t n, uint32_t seed) {
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        out[i] = (uint8_t)(s >> 24);
    }
}

static int meta_int(const dato_safetensors* st, const char* key) {
    const char* v = dato_safetensors_metadata(st, key);
    return v ? atoi(v) : -1;
}

static double meta_double(const dato_safetensors* st, const char* key) {
    const char* v = dato_safetensors_metadata(st, key);
    return v ? strtod(v, NULL) : NAN;
}

static void check_case(const char* name, double worst[3]) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/preprocess/%s.safetensors", name);
    dato_safetensors st;
    dato_error err;
    if (dato_safetensors_open(&st, path, &err) != DATO_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    int h = meta_int(&st, "h"), w = meta_int(&st, "w"), seed = meta_int(&st, "seed"), grey = meta_int(&st, "grey");
    CHECK(h > 0 && w > 0 && seed >= 0 && grey >= 0, "%s: metadata h/w/seed/grey missing", path);
    size_t n_index = 0;
    float* index = fixture_f32(&st, "index", &n_index); // (4096,) flat positions in (3, 299, 299)
    uint8_t* rgb = malloc((size_t)(h > 0 ? h : 1) * (w > 0 ? w : 1) * 3); // (h, w, 3)
    float* out = malloc(OUT_NUMEL * sizeof *out);                          // (3, 299, 299)
    if (!index || !rgb || !out || h <= 0 || w <= 0) {
        CHECK(0, "%s: could not set up the case", path);
        goto done;
    }
    if (grey) {
        uint8_t* g = malloc((size_t)h * w); // (h, w)
        lcg_bytes(g, (size_t)h * w, (uint32_t)seed);
        dato_fid_grey_to_rgb(g, (int64_t)h * w, rgb);
        free(g);
    } else {
        lcg_bytes(rgb, (size_t)h * w * 3, (uint32_t)seed);
    }
    for (int m = 0; m < 3; m++) {
        const char* mode_name = dato_fid_prep_name((dato_fid_prep)m);
        size_t n_ref = 0;
        float* ref = fixture_f32(&st, mode_name, &n_ref); // (4096,) values at index
        CHECK(ref && n_ref == n_index, "%s: tensor '%s' missing or sized %zu", path, mode_name, n_ref);
        dato_status s = dato_fid_preprocess((dato_fid_prep)m, rgb, h, w, out, &err);
        CHECK(s == DATO_OK, "%s %s: %s", name, mode_name, err.msg);
        if (!ref || n_ref != n_index || s != DATO_OK) {
            free(ref);
            continue;
        }
        double max_err = 0;
        size_t exact = 0;
        for (size_t i = 0; i < n_index; i++) {
            float got = out[(size_t)index[i]];
            double d = fabs((double)got - (double)ref[i]);
            if (d > max_err || d != d) max_err = d;
            exact += got == ref[i];
        }
        double sum = 0, max_abs = 0;
        for (size_t i = 0; i < OUT_NUMEL; i++) {
            sum += out[i];
            max_abs = fabs((double)out[i]) > max_abs ? fabs((double)out[i]) : max_abs;
        }
        char key[64];
        snprintf(key, sizeof key, "%s.mean", mode_name);
        double mean_err = fabs(sum / (double)OUT_NUMEL - meta_double(&st, key));
        snprintf(key, sizeof key, "%s.max_abs", mode_name);
        double max_abs_err = fabs(max_abs - meta_double(&st, key));
        printf("%-11s %-12s max abs err %.3g (%zu/%zu bit-exact), mean err %.3g, max|x| err %.3g\n", name,
               mode_name, max_err, exact, n_index, mean_err, max_abs_err);
        CHECK(max_err <= mode_tol[m], "%s %s: max abs err %g > %g", name, mode_name, max_err, mode_tol[m]);
        CHECK(mean_err <= mode_tol[m], "%s %s: mean err %g", name, mode_name, mean_err);
        CHECK(max_abs_err <= mode_tol[m], "%s %s: max|x| err %g", name, mode_name, max_abs_err);
        if (max_err > worst[m]) worst[m] = max_err;
        free(ref);
    }
done:
    free(index);
    free(rgb);
    free(out);
    dato_safetensors_close(&st);
}

static void test_names_and_errors(void) {
    dato_error err;
    for (int m = 0; m < 3; m++) {
        dato_fid_prep parsed = (dato_fid_prep)-1;
        const char* name = dato_fid_prep_name((dato_fid_prep)m);
        CHECK(dato_fid_prep_parse(name, &parsed, &err) == DATO_OK && parsed == (dato_fid_prep)m,
              "parse(name(%d)) round trip", m);
    }
    CHECK(DATO_FID_PREP_PYTORCH_FID == 0 && strcmp(dato_fid_prep_name(0), "pytorch-fid") == 0,
          "pytorch-fid is the default (0)");
    dato_fid_prep parsed;
    CHECK(dato_fid_prep_parse("bicubic", &parsed, &err) == DATO_ERR_INVALID && strstr(err.msg, "bicubic"),
          "unknown name rejected: %s", err.msg);
    CHECK(dato_fid_prep_parse(NULL, &parsed, &err) == DATO_ERR_INVALID, "NULL name rejected");
    CHECK(strcmp(dato_fid_prep_name((dato_fid_prep)7), "unknown") == 0, "out-of-range name");

    uint8_t px[3] = {0, 128, 255};
    float* out = malloc(OUT_NUMEL * sizeof *out); // (3, 299, 299)
    CHECK(dato_fid_preprocess(DATO_FID_PREP_TF, px, 0, 1, out, &err) == DATO_ERR_INVALID, "h = 0 rejected");
    CHECK(dato_fid_preprocess(DATO_FID_PREP_TF, px, 1, -3, out, &err) == DATO_ERR_INVALID, "w < 0 rejected");
    CHECK(dato_fid_preprocess(DATO_FID_PREP_CLEAN, px, DATO_FID_MAX_SIDE + 1, 1, out, &err) == DATO_ERR_INVALID,
          "oversized side rejected");
    CHECK(dato_fid_preprocess(DATO_FID_PREP_TF, NULL, 1, 1, out, &err) == DATO_ERR_INVALID, "NULL image rejected");
    CHECK(dato_fid_preprocess((dato_fid_prep)9, px, 1, 1, out, &err) == DATO_ERR_INVALID, "unknown mode rejected");

    // A 1x1 image upsamples to a constant in every mode: exactly the mode's normalisation of the byte.
    for (int m = 0; m < 3 && out; m++) {
        CHECK(dato_fid_preprocess((dato_fid_prep)m, px, 1, 1, out, &err) == DATO_OK, "1x1 %d: %s", m, err.msg);
        double max_err = 0;
        for (int c = 0; c < 3; c++) {
            float want = m == 0 ? 2.0f * ((float)px[c] / 255.0f) - 1.0f : ((float)px[c] - 128.0f) / 128.0f;
            for (size_t i = 0; i < (size_t)DATO_FID_SIZE * DATO_FID_SIZE; i++) {
                double d = fabs((double)out[(size_t)c * DATO_FID_SIZE * DATO_FID_SIZE + i] - want);
                max_err = d > max_err ? d : max_err;
            }
        }
        printf("1x1 constant %-12s max abs err %.3g\n", dato_fid_prep_name((dato_fid_prep)m), max_err);
        CHECK(max_err <= 1e-6, "1x1 %d constant: err %g", m, max_err);
    }
    free(out);
}

int main(void) {
    test_names_and_errors();
    double worst[3] = {0, 0, 0};
    const char* cases[] = {"grey28", "rgb32x40", "rgb299", "rgb600x450"};
    for (int i = 0; i < 4; i++) check_case(cases[i], worst);
    for (int m = 0; m < 3; m++) {
        printf("%-12s worst max abs err %.3g (tolerance %g)\n", dato_fid_prep_name((dato_fid_prep)m), worst[m],
               mode_tol[m]);
    }
    return test_summary();
}
