#include "idx.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAX_BYTES ((int64_t)1 << 32) // 4 GiB: far above any dataset we read, refuses absurd headers

// gzread reads plain files too (transparently), so one path serves .gz and raw files.
static int read_exact(gzFile f, void* buf, int64_t n) {
    uint8_t* p = buf;
    while (n > 0) {
        unsigned chunk = n > (1 << 30) ? 1u << 30 : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) return 0;
        p += got;
        n -= got;
    }
    return 1;
}

dato_status dato_idx_read(dato_idx* out, const char* path, dato_error* err) {
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(path, "rb");
    if (!f) return dato_fail(err, DATO_ERR_IO, "%s: cannot open", path);
    uint8_t magic[4];
    dato_status st = DATO_OK;
    if (!read_exact(f, magic, 4)) st = dato_fail(err, DATO_ERR_FORMAT, "%s: shorter than an IDX header", path);
    else if (magic[0] || magic[1])
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: not an IDX file (magic %02x %02x)", path, magic[0], magic[1]);
    else if (magic[2] != 0x08)
        st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: IDX data type 0x%02x; only unsigned bytes (0x08)", path, magic[2]);
    else if (magic[3] < 1 || magic[3] > DATO_IDX_MAX_DIMS)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: %d dimensions (expected 1..%d)", path, magic[3], DATO_IDX_MAX_DIMS);
    int64_t total = 1;
    for (int d = 0; !st && d < magic[3]; d++) {
        uint8_t b[4];
        if (!read_exact(f, b, 4)) {
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: truncated in the sizes", path);
            break;
        }
        out->shape[d] = (int64_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
        total *= out->shape[d] ? out->shape[d] : 1;
        if (out->shape[d] == 0 || total > IDX_MAX_BYTES)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: size %lld of dimension %d is zero or too large", path,
                           (long long)out->shape[d], d);
    }
    if (!st) {
        out->ndim = magic[3];
        out->data = malloc((size_t)total);
        if (!out->data) st = dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate %lld bytes", path, (long long)total);
        else if (!read_exact(f, out->data, total))
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: truncated: the sizes promise %lld bytes of data", path,
                           (long long)total);
    }
    gzclose(f);
    if (st) dato_idx_free(out);
    return st;
}

void dato_idx_free(dato_idx* x) {
    free(x->data);
    memset(x, 0, sizeof *x);
}
