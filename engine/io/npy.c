// The .npy reader. See npy.h.
#include "npy.h"

#include <string.h>

#include "tensor.h"

typedef struct {
    const char* p;
    const char* end;
} cursor;

static void skip_space(cursor* c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int accept(cursor* c, char ch) {
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

// A quoted Python string literal without escapes, into out (cap bytes); 0 on failure.
static int parse_quoted(cursor* c, char* out, size_t cap) {
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char quote = *c->p++;
    size_t len = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || len + 1 >= cap) return 0;
        out[len++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[len] = 0;
    return 1;
}

// A shape tuple "(a, b,)": at most DATO_NPY_MAX_DIMS non-negative dims below 2^40; *ndim set.
static int parse_shape(cursor* c, int64_t* shape, int* ndim) {
    if (!accept(c, '(')) return 0;
    *ndim = 0;
    for (;;) {
        if (accept(c, ')')) return 1;
        skip_space(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9' || *ndim == DATO_NPY_MAX_DIMS) return 0;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            v = v * 10 + (*c->p++ - '0');
            if (v >= ((int64_t)1 << 40)) return 0;
        }
        shape[(*ndim)++] = v;
        if (accept(c, ')')) return 1;
        if (!accept(c, ',')) return 0;
    }
}

dato_status dato_npy_parse(const unsigned char* bytes, size_t n, const char* label, dato_npy_array* out,
                           dato_error* err) {
    memset(out, 0, sizeof *out);
    if (n < 10 || memcmp(bytes, "\x93NUMPY", 6) != 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: not an .npy array (bad magic or %zu bytes)", label, n);
    int major = bytes[6], minor = bytes[7];
    if (major < 1 || major > 3 || minor != 0)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: .npy version %d.%d (1.0, 2.0 and 3.0 are read)", label, major,
                         minor);
    size_t header_len, start;
    if (major == 1) {
        header_len = (size_t)bytes[8] | (size_t)bytes[9] << 8;
        start = 10;
    } else {
        if (n < 12) return dato_fail(err, DATO_ERR_FORMAT, "%s: truncated .npy header", label);
        header_len = (size_t)bytes[8] | (size_t)bytes[9] << 8 | (size_t)bytes[10] << 16 | (size_t)bytes[11] << 24;
        start = 12;
    }
    if (header_len > n - start)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header of %zu bytes overruns the %zu-byte array", label,
                         header_len, n);
    for (size_t i = start; i < start + header_len; i++)
        if ((bytes[i] < 0x20 || bytes[i] > 0x7e) && bytes[i] != '\n')
            return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header has a non-ASCII byte 0x%02x at %zu", label,
                             bytes[i], i);

    cursor c = {(const char*)bytes + start, (const char*)bytes + start + header_len};
    char descr[16] = "";
    int fortran = -1, ndim = -1, seen_descr = 0;
    if (!accept(&c, '{')) return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header is not a dict", label);
    while (!accept(&c, '}')) {
        char key[32];
        if (!parse_quoted(&c, key, sizeof key) || !accept(&c, ':'))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header: expected a quoted key and ':'", label);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            if (!parse_quoted(&c, descr, sizeof descr))
                return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header: 'descr' is not a short string", label);
            seen_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && fortran < 0) {
            skip_space(&c);
            if ((size_t)(c.end - c.p) >= 4 && memcmp(c.p, "True", 4) == 0) fortran = 1, c.p += 4;
            else if ((size_t)(c.end - c.p) >= 5 && memcmp(c.p, "False", 5) == 0) fortran = 0, c.p += 5;
            else return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header: 'fortran_order' is not True/False", label);
        } else if (strcmp(key, "shape") == 0 && ndim < 0) {
            if (!parse_shape(&c, out->shape, &ndim))
                return dato_fail(err, DATO_ERR_FORMAT,
                                 "%s: .npy header: 'shape' is not a tuple of at most %d dims below 2^40", label,
                                 DATO_NPY_MAX_DIMS);
        } else {
            return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header: unexpected or repeated key '%s'", label, key);
        }
        if (!accept(&c, ',') && (skip_space(&c), c.p >= c.end || *c.p != '}'))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header: expected ',' or '}' after '%s'", label, key);
    }
    skip_space(&c);
    if (c.p != c.end) return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header: text after the dict", label);
    if (!seen_descr || fortran < 0 || ndim < 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: .npy header lacks %s", label,
                         !seen_descr ? "'descr'" : fortran < 0 ? "'fortran_order'" : "'shape'");
    if (strcmp(descr, "<f8") == 0) out->itemsize = 8;
    else if (strcmp(descr, "<f4") == 0) out->itemsize = 4;
    else if (strcmp(descr, "<f2") == 0) out->itemsize = 2;
    else return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: dtype '%s' (only '<f2', '<f4' and '<f8' are read)", label,
                          descr);
    if (fortran)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: fortran_order True (only C-order arrays are read)", label);
    out->ndim = ndim;
    out->numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (out->shape[i] && out->numel > INT64_MAX / out->shape[i])
            return dato_fail(err, DATO_ERR_FORMAT, "%s: a shape of %d dims whose size overflows", label, ndim);
        out->numel *= out->shape[i];
    }
    uint64_t data_bytes = (uint64_t)(n - start - header_len);
    if ((uint64_t)out->numel > data_bytes / (uint64_t)out->itemsize ||
        (uint64_t)out->numel * (uint64_t)out->itemsize != data_bytes)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: shape needs %lld values of %d bytes but %llu data bytes follow",
                         label, (long long)out->numel, out->itemsize, (unsigned long long)data_bytes);
    out->data = bytes + start + header_len;
    return DATO_OK;
}

double dato_npy_at(const dato_npy_array* a, int64_t i) {
    const unsigned char* p = a->data + i * a->itemsize;
    if (a->itemsize == 8) {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    if (a->itemsize == 4) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    return dato_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}
