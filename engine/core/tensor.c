#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t dato_dtype_size(dato_dtype dt) {
    switch (dt) {
    case DATO_F32:
    case DATO_I32: return 4;
    case DATO_F16:
    case DATO_BF16: return 2;
    case DATO_U8: return 1;
    }
    return 0;
}

const char* dato_dtype_name(dato_dtype dt) {
    switch (dt) {
    case DATO_F32: return "F32";
    case DATO_F16: return "F16";
    case DATO_BF16: return "BF16";
    case DATO_I32: return "I32";
    case DATO_U8: return "U8";
    }
    return "?";
}

dato_tensor dato_tensor_make(void* data, dato_dtype dt, dato_device dev, int ndim, const int64_t* shape) {
    dato_tensor t = {.data = data, .dtype = dt, .device = dev, .ndim = ndim};
    for (int i = 0; i < ndim && i < DATO_MAX_DIMS; i++) t.shape[i] = shape[i];
    return t;
}

dato_tensor dato_tensor_f32_1d(float* data, int64_t d0) {
    return dato_tensor_make(data, DATO_F32, DATO_DEV_CPU, 1, (int64_t[]){d0});
}
dato_tensor dato_tensor_f32_2d(float* data, int64_t d0, int64_t d1) {
    return dato_tensor_make(data, DATO_F32, DATO_DEV_CPU, 2, (int64_t[]){d0, d1});
}
dato_tensor dato_tensor_f32_3d(float* data, int64_t d0, int64_t d1, int64_t d2) {
    return dato_tensor_make(data, DATO_F32, DATO_DEV_CPU, 3, (int64_t[]){d0, d1, d2});
}
dato_tensor dato_tensor_f32_4d(float* data, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    return dato_tensor_make(data, DATO_F32, DATO_DEV_CPU, 4, (int64_t[]){d0, d1, d2, d3});
}

int64_t dato_tensor_numel(const dato_tensor* t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t dato_tensor_nbytes(const dato_tensor* t) {
    return (size_t)dato_tensor_numel(t) * dato_dtype_size(t->dtype);
}

int dato_tensor_same_shape(const dato_tensor* a, const dato_tensor* b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char* dato_shape_str(const dato_tensor* t, char* buf, size_t n) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "(");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, ")");
    return buf;
}

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float dato_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); // Inf / NaN
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        // subnormal: value = man * 2^-24
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t dato_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t absu = u & 0x7fffffffu;
    if (absu >= 0x7f800000u) return sign | 0x7c00 | (absu > 0x7f800000u ? 0x200 : 0); // Inf / NaN
    if (absu >= 0x477ff000u) return sign | 0x7c00;                                    // overflow -> Inf
    if (absu < 0x38800000u) {                                                         // subnormal or zero
        // round(|f| * 2^24) to nearest even, via float arithmetic that is exact here
        float a = bits_f32(absu) * 16777216.0f;
        uint32_t m = (uint32_t)a;
        float frac = a - (float)m;
        if (frac > 0.5f || (frac == 0.5f && (m & 1))) m++;
        return sign | (uint16_t)m;
    }
    uint32_t exp = (absu >> 23) - 112, man = absu & 0x7fffffu;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++; // carries into the exponent correctly
    return sign | (uint16_t)h;
}

float dato_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t dato_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void dato_convert_to_f32(float* dst, const void* src, dato_dtype src_dt, size_t n) {
    const unsigned char* s = src;
    switch (src_dt) {
    case DATO_F32: memcpy(dst, src, n * 4); break;
    case DATO_F16:
        for (size_t i = 0; i < n; i++) dst[i] = dato_f16_to_f32((uint16_t)(s[2 * i] | (s[2 * i + 1] << 8)));
        break;
    case DATO_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = dato_bf16_to_f32((uint16_t)(s[2 * i] | (s[2 * i + 1] << 8)));
        break;
    case DATO_I32:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int32_t)((uint32_t)s[4 * i] | (uint32_t)s[4 * i + 1] << 8 | (uint32_t)s[4 * i + 2] << 16 |
                                      (uint32_t)s[4 * i + 3] << 24);
        break;
    case DATO_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
        break;
    }
}

size_t dato_first_nonfinite(const float* x, size_t n) {
    size_t i = 0;
    while (i < n && isfinite(x[i])) i++;
    return i;
}
