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
    int64_t total = 1; // bytes of data: at most IDX_MAX_BYTES, checked before each product
    for (int d = 0; !st && d < magic[3]; d++) {
        uint8_t b[4];
        if (!read_exact(f, b, 4)) {
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: truncated in the sizes", path);
            break;
        }
        out->shape[d] = (int64_t)b[0] << 24 | (int64_t)b[1] << 16 | (int64_t)b[2] << 8 | b[3];
        if (out->shape[d] == 0)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: dimension %d has size 0", path, d);
        else if (out->shape[d] > IDX_MAX_BYTES / total)
            st = dato_fail(err, DATO_ERR_FORMAT,
                           "%s: dimension %d of size %lld makes more than %lld bytes of data (%lld before it)", path, d,
                           (long long)out->shape[d], (long long)IDX_MAX_BYTES, (long long)total);
        else
            total *= out->shape[d];
    }
    // The buffer grows as the data arrives (1 MiB, then doubling): a short file whose header
    // promises gigabytes costs what it holds, not what it promises.
    for (int64_t got = 0, cap = 0; !st && got < total; got = cap) {
        cap = cap ? (cap > total / 2 ? total : 2 * cap) : (total < (1 << 20) ? total : 1 << 20);
        uint8_t* grown = realloc(out->data, (size_t)cap);
        if (!grown) {
            st = dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate %lld bytes", path, (long long)cap);
            break;
        }
        out->data = grown;
        if (!read_exact(f, grown + got, cap - got))
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: truncated: the sizes promise %lld bytes of data", path,
                           (long long)total);
    }
    if (!st) out->ndim = magic[3];
    gzclose(f);
    if (st) dato_idx_free(out);
    return st;
}

void dato_idx_free(dato_idx* x) {
    free(x->data);
    memset(x, 0, sizeof *x);
}
