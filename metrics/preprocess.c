// FID preprocessing modes. Each one reproduces its reference's floating-point operations in the
// same precision and order, so outputs match bit for bit: pytorch-fid and tf are float32 like
// the PyTorch CPU kernels they mirror, clean keeps PIL's double weights and sums. This file is
// compiled as ISO C11, where GCC does not contract a*b + c into an FMA, so each float operation
// below rounds once, as the references' separate tensor operations do; the one fused multiply-add
// the reference does (ATen's bilinear kernel) is written out as fmaf.
#include "preprocess.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

// PIL's bicubic taps per output pixel: 2 * ceil(support) + 1 with support = 2 * max(1, in/299).
#define MAX_BICUBIC_TAPS (2 * ((2 * DATO_FID_MAX_SIDE + DATO_FID_SIZE - 1) / DATO_FID_SIZE) + 1)

static const char* const prep_names[] = {"pytorch-fid", "tf", "clean"};

dato_status dato_fid_prep_parse(const char* name, dato_fid_prep* mode, dato_error* err) {
    for (int m = 0; name && m < (int)(sizeof prep_names / sizeof prep_names[0]); m++) {
        if (strcmp(name, prep_names[m]) == 0) {
            *mode = (dato_fid_prep)m;
            return DATO_OK;
        }
    }
    return dato_fail(err, DATO_ERR_INVALID, "FID preprocessing: unknown mode '%s' (expected pytorch-fid, tf or clean)",
                     name ? name : "(null)");
}

const char* dato_fid_prep_name(dato_fid_prep mode) {
    if ((int)mode < 0 || (int)mode >= (int)(sizeof prep_names / sizeof prep_names[0])) return "unknown";
    return prep_names[mode];
}

void dato_fid_grey_to_rgb(const uint8_t* grey, int64_t n, uint8_t* rgb) {
    for (int64_t i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = grey[i];
}

// ---- pytorch-fid: ATen's CPU upsample_bilinear2d, align_corners=False ----------------------------

// One output coordinate's two taps, as ATen's compute_source_index_and_lambda in float:
// src = max(scale * (i + 0.5) - 0.5, 0), lo = min(floor(src), in - 1), hi = lo + (lo < in - 1).
typedef struct {
    int lo, hi;
    float w_lo, w_hi;
} linear_taps;

static linear_taps half_pixel_taps(int in_size, int i) {
    float scale = (float)in_size / (float)DATO_FID_SIZE;
    float src = scale * ((float)i + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    linear_taps t;
    t.lo = (int)floorf(src);
    if (t.lo > in_size - 1) t.lo = in_size - 1;
    float lambda = src - (float)t.lo;
    lambda = lambda < 0.0f ? 0.0f : (lambda > 1.0f ? 1.0f : lambda);
    t.hi = t.lo + (t.lo < in_size - 1 ? 1 : 0);
    t.w_hi = lambda;
    t.w_lo = 1.0f - lambda;
    return t;
}

static void prep_pytorch_fid(const uint8_t* rgb, int h, int w, float* out /* (3, 299, 299) */) {
    for (int oy = 0; oy < DATO_FID_SIZE; oy++) {
        linear_taps ty = half_pixel_taps(h, oy);
        for (int ox = 0; ox < DATO_FID_SIZE; ox++) {
            linear_taps tx = half_pixel_taps(w, ox);
            for (int c = 0; c < 3; c++) {
                // torchvision ToTensor: x / 255 in float32, before the resize.
                float x00 = (float)rgb[((size_t)ty.lo * w + tx.lo) * 3 + c] / 255.0f;
                float x01 = (float)rgb[((size_t)ty.lo * w + tx.hi) * 3 + c] / 255.0f;
                float x10 = (float)rgb[((size_t)ty.hi * w + tx.lo) * 3 + c] / 255.0f;
                float x11 = (float)rgb[((size_t)ty.hi * w + tx.hi) * 3 + c] / 255.0f;
                // ATen's t0 * w0 + t1 * w1, x inside y; its AVX2 build contracts that to
                // fma(t0, w0, t1 * w1), which this reproduces bit for bit.
                float row0 = fmaf(x00, tx.w_lo, x01 * tx.w_hi);
                float row1 = fmaf(x10, tx.w_lo, x11 * tx.w_hi);
                float v = fmaf(row0, ty.w_lo, row1 * ty.w_hi);
                out[((size_t)c * DATO_FID_SIZE + oy) * DATO_FID_SIZE + ox] = 2.0f * v - 1.0f;
            }
        }
    }
}

// ---- tf: TF1 resize_bilinear, as torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x ------

// x = i * s in float32 (s = in/299 rounded to float), lo = trunc(x), hi = min(lo + 1, in - 1), f = x - lo.
typedef struct {
    int lo, hi;
    float frac;
} tf_taps;

static tf_taps tf1_taps(int in_size, int i) {
    float scale = (float)((double)in_size / DATO_FID_SIZE);
    float src = (float)i * scale;
    tf_taps t;
    t.lo = (int)src;
    t.hi = t.lo + 1 < in_size - 1 ? t.lo + 1 : in_size - 1;
    t.frac = src - (float)t.lo;
    return t;
}

static void prep_tf(const uint8_t* rgb, int h, int w, float* out /* (3, 299, 299) */) {
    for (int oy = 0; oy < DATO_FID_SIZE; oy++) {
        tf_taps ty = tf1_taps(h, oy);
        for (int ox = 0; ox < DATO_FID_SIZE; ox++) {
            tf_taps tx = tf1_taps(w, ox);
            for (int c = 0; c < 3; c++) {
                float x00 = rgb[((size_t)ty.lo * w + tx.lo) * 3 + c];
                float x01 = rgb[((size_t)ty.lo * w + tx.hi) * 3 + c];
                float x10 = rgb[((size_t)ty.hi * w + tx.lo) * 3 + c];
                float x11 = rgb[((size_t)ty.hi * w + tx.hi) * 3 + c];
                float row0 = x00 + (x01 - x00) * tx.frac;
                float row1 = x10 + (x11 - x10) * tx.frac;
                float v = row0 + (row1 - row0) * ty.frac;
                out[((size_t)c * DATO_FID_SIZE + oy) * DATO_FID_SIZE + ox] = (v - 128.0f) / 128.0f;
            }
        }
    }
}

// ---- clean: clean-fid's PIL bicubic on 'F' images (Pillow's Resample.c) --------------------------

static double bicubic_kernel(double x) { // Keys cubic, a = -0.5, as Pillow's bicubic_filter
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// Pillow's precompute_coeffs for output index i: taps first..first+n-1 with normalised double
// weights. Downscaling widens the kernel by in/299 (the antialiasing); (int) truncates as in C.
static int bicubic_taps(int in_size, int i, double* k /* (MAX_BICUBIC_TAPS) */, int* first) {
    double scale = (double)in_size / DATO_FID_SIZE;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    double center = (i + 0.5) * scale;
    double inv_filterscale = 1.0 / filterscale;
    int lo = (int)(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = (int)(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    int n = hi - lo;
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        k[j] = bicubic_kernel((j + lo - center + 0.5) * inv_filterscale);
        sum += k[j];
    }
    for (int j = 0; j < n; j++) {
        if (sum != 0.0) k[j] /= sum;
    }
    *first = lo;
    return n;
}

// Pillow resamples horizontally into a float32 image, then vertically, each sum in double. We
// recompute the horizontal value of each (input row, output column) where the vertical pass needs
// it instead of storing the intermediate image: the same operations, so the same floats.
static void prep_clean(const uint8_t* rgb, int h, int w, float* out /* (3, 299, 299) */) {
    double ky[MAX_BICUBIC_TAPS], kx[MAX_BICUBIC_TAPS];
    for (int oy = 0; oy < DATO_FID_SIZE; oy++) {
        int y0;
        int ny = bicubic_taps(h, oy, ky, &y0);
        for (int ox = 0; ox < DATO_FID_SIZE; ox++) {
            int x0;
            int nx = bicubic_taps(w, ox, kx, &x0);
            for (int c = 0; c < 3; c++) {
                double acc = 0.0;
                for (int j = 0; j < ny; j++) {
                    const uint8_t* row = rgb + ((size_t)(y0 + j) * w + x0) * 3 + c; // (nx, 3) window
                    double row_sum = 0.0;
                    for (int i = 0; i < nx; i++) row_sum += (double)row[3 * i] * kx[i];
                    acc += (double)(float)row_sum * ky[j]; // the float32 intermediate image
                }
                float v = (float)acc;
                v = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v); // clean-fid clips, does not quantise
                out[((size_t)c * DATO_FID_SIZE + oy) * DATO_FID_SIZE + ox] = (v - 128.0f) / 128.0f;
            }
        }
    }
}

dato_status dato_fid_preprocess(dato_fid_prep mode, const uint8_t* rgb, int h, int w, float* out,
                                dato_error* err) {
    if (!rgb || !out) return dato_fail(err, DATO_ERR_INVALID, "FID preprocessing: NULL image or output");
    if (h <= 0 || w <= 0 || h > DATO_FID_MAX_SIDE || w > DATO_FID_MAX_SIDE) {
        return dato_fail(err, DATO_ERR_INVALID, "FID preprocessing: image size %dx%d outside 1..%d per side", h, w,
                         DATO_FID_MAX_SIDE);
    }
    switch (mode) {
    case DATO_FID_PREP_PYTORCH_FID: prep_pytorch_fid(rgb, h, w, out); return DATO_OK;
    case DATO_FID_PREP_TF: prep_tf(rgb, h, w, out); return DATO_OK;
    case DATO_FID_PREP_CLEAN: prep_clean(rgb, h, w, out); return DATO_OK;
    }
    return dato_fail(err, DATO_ERR_INVALID, "FID preprocessing: unknown mode %d", (int)mode);
}
