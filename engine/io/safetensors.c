#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char* name;
    size_t size;
} st_dtypes[] = {
    [DATO_ST_F64] = {"F64", 8},         [DATO_ST_F32] = {"F32", 4},         [DATO_ST_F16] = {"F16", 2},
    [DATO_ST_BF16] = {"BF16", 2},       [DATO_ST_I64] = {"I64", 8},         [DATO_ST_I32] = {"I32", 4},
    [DATO_ST_I16] = {"I16", 2},         [DATO_ST_I8] = {"I8", 1},           [DATO_ST_U64] = {"U64", 8},
    [DATO_ST_U32] = {"U32", 4},         [DATO_ST_U16] = {"U16", 2},         [DATO_ST_U8] = {"U8", 1},
    [DATO_ST_BOOL] = {"BOOL", 1},       [DATO_ST_F8_E4M3] = {"F8_E4M3", 1}, [DATO_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_ST_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

const char* dato_st_dtype_name(dato_st_dtype dt) {
    return (unsigned)dt < (unsigned)N_ST_DTYPES ? st_dtypes[dt].name : "?";
}

size_t dato_st_dtype_size(dato_st_dtype dt) {
    return (unsigned)dt < (unsigned)N_ST_DTYPES ? st_dtypes[dt].size : 0;
}

int dato_st_dtype_to_dato(dato_st_dtype dt, dato_dtype* out) {
    switch (dt) {
    case DATO_ST_F32: *out = DATO_F32; return 1;
    case DATO_ST_F16: *out = DATO_F16; return 1;
    case DATO_ST_BF16: *out = DATO_BF16; return 1;
    default: return 0;
    }
}

// ---- validation helpers ------------------------------------------------------------------------

// Doubles hold every integer below 2^53 exactly; JSON numbers arrive as doubles.
#define JSON_INT_LIMIT 9007199254740992.0

// 1 and *out set if item is a number that is an exact integer in [0, 2^53).
static int json_to_u64(const cJSON* item, uint64_t* out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!(d >= 0.0 && d < JSON_INT_LIMIT)) return 0; // also rejects NaN and Inf
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

// Offset of the first byte of s[0..n) that is not part of valid UTF-8 (no overlongs, no
// surrogates, nothing above U+10FFFF), or n if all is valid. With allow_controls == 0, control
// characters other than JSON whitespace also count as bad: JSON allows them nowhere raw.
static size_t utf8_bad_offset(const unsigned char* s, size_t n, int allow_controls) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (!allow_controls && c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') return i;
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

static const char* shape_str(const int64_t* shape, int ndim, char* buf, size_t n) {
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

static int cmp_tensor_by_data(const void* a, const void* b) {
    const dato_st_tensor* x = a;
    const dato_st_tensor* y = b;
    const char* px = x->data;
    const char* py = y->data;
    if (px != py) return px < py ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_tensor_ptr_by_name(const void* a, const void* b) {
    const dato_st_tensor* x = *(const dato_st_tensor* const*)a;
    const dato_st_tensor* y = *(const dato_st_tensor* const*)b;
    return strcmp(x->name, y->name);
}

static int cmp_metadata_by_key(const void* a, const void* b) {
    return strcmp(((const dato_st_metadata*)a)->key, ((const dato_st_metadata*)b)->key);
}

// ---- parsing -------------------------------------------------------------------------------------

// Names are clipped in messages so that the reason after them always fits.
#define NAME_FMT "'%.200s'"

// Fills t from one header entry, checked against the data section [data, data + data_size).
// Allocates (the name) only on success.
static dato_status parse_tensor(const char* path, const cJSON* item, const unsigned char* data, size_t data_size,
                                dato_st_tensor* t, dato_error* err) {
    const char* name = item->string;
    if (!cJSON_IsObject(item))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": entry is not an object", path, name);
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON* field = item->child; field; field = field->next) {
        const cJSON** slot = !strcmp(field->string, "dtype")          ? &dtype
                             : !strcmp(field->string, "shape")        ? &shape
                             : !strcmp(field->string, "data_offsets") ? &offsets
                                                                      : NULL;
        if (!slot) continue; // unknown fields are ignored, as the reference reader does
        if (*slot)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": field '%s' appears twice", path, name,
                             field->string);
        *slot = field;
    }

    if (!cJSON_IsString(dtype))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": dtype is missing or not a string", path, name);
    int dt = 0;
    while (dt < N_ST_DTYPES && strcmp(st_dtypes[dt].name, dtype->valuestring)) dt++;
    if (dt == N_ST_DTYPES)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: tensor " NAME_FMT ": unknown dtype '%.32s'", path, name,
                         dtype->valuestring);

    if (!cJSON_IsArray(shape))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": shape is missing or not an array", path, name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > DATO_ST_MAX_DIMS)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": shape has %d dimensions, more than %d", path,
                         name, ndim, DATO_ST_MAX_DIMS);
    uint64_t numel = 1;
    int d = 0;
    for (const cJSON* dim = shape->child; dim; dim = dim->next, d++) {
        uint64_t v;
        if (!json_to_u64(dim, &v))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": shape[%d] is not an integer in [0, 2^53)",
                             path, name, d);
        if (__builtin_mul_overflow(numel, v, &numel) || numel > (uint64_t)INT64_MAX)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": element count of the shape overflows",
                             path, name);
        t->shape[d] = (int64_t)v;
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)st_dtypes[dt].size, &nbytes))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": byte size of the shape overflows", path,
                         name);

    uint64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || !json_to_u64(offsets->child, &begin) ||
        !json_to_u64(offsets->child->next, &end))
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: tensor " NAME_FMT ": data_offsets is missing or not two integers in [0, 2^53)", path,
                         name);
    if (begin > end)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT ": data_offsets [%llu, %llu] has begin > end",
                         path, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_size)
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: tensor " NAME_FMT ": data_offsets end %llu is past the end of the data (%zu bytes)", path,
                         name, (unsigned long long)end, data_size);
    if (end - begin != nbytes) {
        char buf[256];
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: tensor " NAME_FMT ": data_offsets span %llu bytes but %s %s needs %llu", path, name,
                         (unsigned long long)(end - begin), st_dtypes[dt].name,
                         shape_str(t->shape, ndim, buf, sizeof buf), (unsigned long long)nbytes);
    }

    t->name = strdup(name);
    if (!t->name) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    t->path = path;
    t->dtype = (dato_st_dtype)dt;
    t->ndim = ndim;
    t->numel = (int64_t)numel;
    t->data = data + begin;
    t->nbytes = (size_t)nbytes;
    return DATO_OK;
}

static dato_status parse_metadata(dato_safetensors* st, const cJSON* meta, dato_error* err) {
    if (!cJSON_IsObject(meta)) return dato_fail(err, DATO_ERR_FORMAT, "%s: __metadata__ is not an object", st->path);
    int count = cJSON_GetArraySize(meta);
    st->metadata = calloc(count ? (size_t)count : 1, sizeof *st->metadata);
    if (!st->metadata) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", st->path);
    for (const cJSON* kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: __metadata__ value of " NAME_FMT " is not a string", st->path,
                             kv->string);
        dato_st_metadata* m = &st->metadata[st->n_metadata];
        m->key = strdup(kv->string);
        m->value = strdup(kv->valuestring);
        st->n_metadata++; // counted now so that close frees a half-made pair
        if (!m->key || !m->value) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", st->path);
    }
    qsort(st->metadata, (size_t)st->n_metadata, sizeof *st->metadata, cmp_metadata_by_key);
    for (int i = 1; i < st->n_metadata; i++)
        if (!strcmp(st->metadata[i - 1].key, st->metadata[i].key))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: __metadata__ repeats key " NAME_FMT, st->path,
                             st->metadata[i].key);
    return DATO_OK;
}

// Parses the header and fills st (whose path is set). On failure the caller closes st.
static dato_status parse_into(dato_safetensors* st, const unsigned char* bytes, size_t size, dato_error* err) {
    const char* path = st->path;
    if (size < 8)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: file is %zu bytes, shorter than the 8-byte header length", path,
                         size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)bytes[i] << (8 * i);
    if (n > DATO_ST_MAX_HEADER)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes", path,
                         (unsigned long long)n, (unsigned long long)DATO_ST_MAX_HEADER);
    if (n > size - 8)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                         (unsigned long long)n, size);
    const unsigned char* header = bytes + 8;
    size_t bad = utf8_bad_offset(header, (size_t)n, 0);
    if (bad < n)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: header byte %zu (0x%02x) is not valid UTF-8 JSON text", path, bad,
                         header[bad]);
    const unsigned char* data = header + n;
    size_t data_size = size - 8 - (size_t)n;

    // cJSON reads a NUL-terminated copy, so that even a lenient scanner stays inside our memory.
    char* text = malloc((size_t)n + 1);
    if (!text) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for a %llu-byte header", path,
                                (unsigned long long)n);
    memcpy(text, header, (size_t)n);
    text[n] = '\0';
    const char* parse_end = NULL;
    cJSON* root = cJSON_ParseWithLengthOpts(text, (size_t)n + 1, &parse_end, 0);
    dato_status s = DATO_OK;
    if (!root) {
        size_t at = parse_end ? (size_t)(parse_end - text) : 0;
        s = dato_fail(err, DATO_ERR_FORMAT, "%s: header is not valid JSON (near byte %zu)", path, at);
        goto done;
    }
    for (const char* p = parse_end; p < text + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = dato_fail(err, DATO_ERR_FORMAT, "%s: header has trailing bytes after the JSON value (at byte %zu)",
                          path, (size_t)(p - text));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        s = dato_fail(err, DATO_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto done;
    }
    st->header_size = (size_t)n;

    int count = cJSON_GetArraySize(root);
    st->tensors = calloc(count ? (size_t)count : 1, sizeof *st->tensors);
    if (!st->tensors) {
        s = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for %d tensors", path, count);
        goto done;
    }
    int seen_metadata = 0;
    for (const cJSON* item = root->child; item; item = item->next) {
        if (!strcmp(item->string, "__metadata__")) {
            if (seen_metadata) {
                s = dato_fail(err, DATO_ERR_FORMAT, "%s: __metadata__ appears twice", path);
                goto done;
            }
            seen_metadata = 1;
            if ((s = parse_metadata(st, item, err))) goto done;
            continue;
        }
        if ((s = parse_tensor(path, item, data, data_size, &st->tensors[st->n_tensors], err))) goto done;
        st->n_tensors++;
    }

    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_tensor_by_data);
    st->by_name = malloc((st->n_tensors ? (size_t)st->n_tensors : 1) * sizeof *st->by_name);
    if (!st->by_name) {
        s = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < st->n_tensors; i++) st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, (size_t)st->n_tensors, sizeof *st->by_name, cmp_tensor_ptr_by_name);
    for (int i = 1; i < st->n_tensors; i++) {
        if (!strcmp(st->by_name[i - 1]->name, st->by_name[i]->name)) {
            s = dato_fail(err, DATO_ERR_FORMAT, "%s: tensor " NAME_FMT " appears twice", path, st->by_name[i]->name);
            goto done;
        }
    }
    // In data order, a tensor overlaps an earlier one iff it starts before the furthest end so far.
    // Empty tensors hold no bytes and overlap nothing.
    const unsigned char* claimed_end = data;
    const dato_st_tensor* claimer = NULL;
    for (int i = 0; i < st->n_tensors; i++) {
        const dato_st_tensor* t = &st->tensors[i];
        if (t->nbytes == 0) continue;
        const unsigned char* begin = t->data;
        if (begin < claimed_end) {
            s = dato_fail(err, DATO_ERR_FORMAT, "%s: tensors " NAME_FMT " and " NAME_FMT " overlap in the data", path,
                          claimer->name, t->name);
            goto done;
        }
        claimed_end = begin + t->nbytes;
        claimer = t;
    }

done:
    cJSON_Delete(root);
    free(text);
    return s;
}

dato_status dato_safetensors_parse(dato_safetensors* st, const void* bytes, size_t size, const char* label,
                                   dato_error* err) {
    memset(st, 0, sizeof *st);
    st->path = strdup(label ? label : "<memory>");
    if (!st->path) return dato_fail(err, DATO_ERR_NOMEM, "out of memory");
    dato_status s = parse_into(st, bytes, size, err);
    if (s != DATO_OK) dato_safetensors_close(st);
    return s;
}

dato_status dato_safetensors_open(dato_safetensors* st, const char* path, dato_error* err) {
    memset(st, 0, sizeof *st);
    if (!path) return dato_fail(err, DATO_ERR_INVALID, "safetensors: no path given");
    st->path = strdup(path);
    if (!st->path) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dato_safetensors_close(st);
        return dato_fail(err, DATO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat sb;
    dato_status s = DATO_OK;
    if (fstat(fd, &sb) != 0) {
        s = dato_fail(err, DATO_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        s = dato_fail(err, DATO_ERR_IO, "%s: not a regular file", path);
    } else if (sb.st_size >= 8) { // smaller files are reported by the parser, and mmap refuses size 0
        void* map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            s = dato_fail(err, DATO_ERR_IO, "%s: cannot mmap %lld bytes: %s", path, (long long)sb.st_size,
                          strerror(errno));
        } else {
            st->map = map;
            st->map_size = (size_t)sb.st_size;
        }
    }
    close(fd);
    if (s == DATO_OK) s = parse_into(st, st->map, (size_t)sb.st_size, err);
    if (s != DATO_OK) dato_safetensors_close(st);
    return s;
}

const dato_st_tensor* dato_safetensors_find(const dato_safetensors* st, const char* name) {
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->by_name[mid]->name, name);
        if (c == 0) return st->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const char* dato_safetensors_metadata(const dato_safetensors* st, const char* key) {
    int lo = 0, hi = st->n_metadata - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(st->metadata[mid].key, key);
        if (c == 0) return st->metadata[mid].value;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

void dato_safetensors_close(dato_safetensors* st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    free(st->by_name);
    for (int i = 0; i < st->n_metadata; i++) {
        free(st->metadata[i].key);
        free(st->metadata[i].value);
    }
    free(st->metadata);
    if (st->map) munmap(st->map, st->map_size);
    free(st->path);
    memset(st, 0, sizeof *st);
}

void dato_safetensors_release(const dato_safetensors* st, const dato_st_tensor* t) {
    const char* map = st->map;
    const char* data = t->data;
    if (!map || data < map || t->nbytes > st->map_size || (size_t)(data - map) > st->map_size - t->nbytes) return;
    long page_size = sysconf(_SC_PAGESIZE);
    if (page_size <= 0) return;
    size_t page = (size_t)page_size, off = (size_t)(data - map);
    size_t begin = (off + page - 1) / page * page, end = (off + t->nbytes) / page * page; // whole pages only:
    if (end > begin) madvise((char*)map + begin, end - begin, MADV_DONTNEED); // neighbours' pages stay
}

dato_status dato_st_tensor_to_f32(const dato_st_tensor* t, float* dst, size_t dst_elems, dato_error* err) {
    const char* path = t->path ? t->path : "<memory>";
    dato_dtype dt;
    if (!dato_st_dtype_to_dato(t->dtype, &dt))
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "%s: tensor " NAME_FMT ": dtype %s cannot be converted to F32 (only F32, F16 and BF16 can)",
                         path, t->name, dato_st_dtype_name(t->dtype));
    if (dst_elems != (size_t)t->numel)
        return dato_fail(err, DATO_ERR_INVALID, "%s: tensor " NAME_FMT ": has %lld elements, the destination %zu", path,
                         t->name, (long long)t->numel, dst_elems);
    if (t->numel > 0) dato_convert_to_f32(dst, t->data, dt, (size_t)t->numel);
    return DATO_OK;
}

// ---- writer --------------------------------------------------------------------------------------

static void json_write_string(FILE* f, const char* s) {
    fputc('"', f);
    for (const unsigned char* p = (const unsigned char*)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static int is_utf8(const char* s) {
    size_t n = strlen(s);
    return utf8_bad_offset((const unsigned char*)s, n, 1) == n;
}

static int cmp_cstr_ptr(const void* a, const void* b) {
    return strcmp(*(const char* const*)a, *(const char* const*)b);
}

// Checks the entries and metadata; fills nbytes[i].
static dato_status check_write_args(const char* path, const dato_st_write_entry* entries, int n,
                                    const char* const* metadata_kv, size_t* nbytes, dato_error* err) {
    for (int i = 0; i < n; i++) {
        const dato_st_write_entry* e = &entries[i];
        if (!e->name || !is_utf8(e->name) || !strcmp(e->name, "__metadata__"))
            return dato_fail(err, DATO_ERR_INVALID, "%s: entry %d: name is NULL, not UTF-8 or '__metadata__'", path, i);
        if ((unsigned)e->dtype > (unsigned)DATO_BF16)
            return dato_fail(err, DATO_ERR_INVALID, "%s: tensor " NAME_FMT ": unknown dtype %d", path, e->name,
                             (int)e->dtype);
        if (e->ndim < 0 || e->ndim > DATO_ST_MAX_DIMS || (e->ndim > 0 && !e->shape))
            return dato_fail(err, DATO_ERR_INVALID, "%s: tensor " NAME_FMT ": ndim %d not in 0..%d (or no shape)", path,
                             e->name, e->ndim, DATO_ST_MAX_DIMS);
        uint64_t bytes = dato_dtype_size(e->dtype);
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] < 0 || __builtin_mul_overflow(bytes, (uint64_t)e->shape[d], &bytes) ||
                bytes >= (uint64_t)JSON_INT_LIMIT)
                return dato_fail(err, DATO_ERR_INVALID,
                                 "%s: tensor " NAME_FMT ": shape[%d] = %lld is negative or too large", path, e->name,
                                 d, (long long)e->shape[d]);
        }
        if (bytes > 0 && !e->data)
            return dato_fail(err, DATO_ERR_INVALID, "%s: tensor " NAME_FMT ": data is NULL", path, e->name);
        nbytes[i] = (size_t)bytes;
    }
    const char** names = malloc((n ? (size_t)n : 1) * sizeof *names);
    if (!names) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) names[i] = entries[i].name;
    qsort(names, (size_t)n, sizeof *names, cmp_cstr_ptr);
    dato_status s = DATO_OK;
    for (int i = 1; i < n && s == DATO_OK; i++)
        if (!strcmp(names[i - 1], names[i]))
            s = dato_fail(err, DATO_ERR_INVALID, "%s: tensor " NAME_FMT " given twice", path, names[i]);
    free(names);
    if (s != DATO_OK) return s;
    for (const char* const* kv = metadata_kv; kv && kv[0]; kv += 2)
        if (!kv[1] || !is_utf8(kv[0]) || !is_utf8(kv[1]))
            return dato_fail(err, DATO_ERR_INVALID, "%s: metadata key " NAME_FMT " has no value or is not UTF-8", path,
                             kv[0]);
    return DATO_OK;
}

dato_status dato_safetensors_write(const char* path, const dato_st_write_entry* entries, int n,
                                   const char* const* metadata_kv, dato_error* err) {
    if (!path || n < 0 || (n > 0 && !entries))
        return dato_fail(err, DATO_ERR_INVALID, "%s: bad arguments to dato_safetensors_write", path ? path : "?");
    size_t* nbytes = malloc((n ? (size_t)n : 1) * sizeof *nbytes);
    if (!nbytes) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    dato_status s = check_write_args(path, entries, n, metadata_kv, nbytes, err);
    if (s != DATO_OK) {
        free(nbytes);
        return s;
    }

    // The header, built in memory so that its length is known before anything is written.
    char* header = NULL;
    size_t header_len = 0;
    FILE* hf = open_memstream(&header, &header_len);
    if (!hf) {
        free(nbytes);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for the header", path);
    }
    fputc('{', hf);
    if (metadata_kv && metadata_kv[0]) {
        fputs("\"__metadata__\":{", hf);
        for (const char* const* kv = metadata_kv; kv[0]; kv += 2) {
            if (kv != metadata_kv) fputc(',', hf);
            json_write_string(hf, kv[0]);
            fputc(':', hf);
            json_write_string(hf, kv[1]);
        }
        fputc('}', hf);
        if (n > 0) fputc(',', hf);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const dato_st_write_entry* e = &entries[i];
        if (i > 0) fputc(',', hf);
        json_write_string(hf, e->name);
        fprintf(hf, ":{\"dtype\":\"%s\",\"shape\":[", dato_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) fprintf(hf, d ? ",%lld" : "%lld", (long long)e->shape[d]);
        fprintf(hf, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                (unsigned long long)(offset + nbytes[i]));
        offset += nbytes[i];
    }
    fputc('}', hf);
    int header_ok = fclose(hf) == 0 && header;
    if (!header_ok) {
        free(header);
        free(nbytes);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for the header", path);
    }

    // Spaces after the JSON put the first data byte at a multiple of 8.
    size_t pad = (8 - (8 + header_len) % 8) % 8;
    uint64_t n_header = header_len + pad;
    unsigned char len_bytes[8];
    for (int i = 0; i < 8; i++) len_bytes[i] = (unsigned char)(n_header >> (8 * i));

    size_t path_len = strlen(path);
    char* tmp = malloc(path_len + 5);
    if (!tmp) {
        free(header);
        free(nbytes);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, path_len + 5, "%s.tmp", path);
    FILE* f = fopen(tmp, "wb");
    if (!f) {
        s = dato_fail(err, DATO_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        int ok = fwrite(len_bytes, 1, 8, f) == 8 && fwrite(header, 1, header_len, f) == header_len;
        for (size_t i = 0; i < pad && ok; i++) ok = fputc(' ', f) != EOF;
        for (int i = 0; i < n && ok; i++) // no fwrite for empty tensors, whose data may be NULL
            ok = nbytes[i] == 0 || fwrite(entries[i].data, 1, nbytes[i], f) == nbytes[i];
        if (fclose(f) != 0) ok = 0;
        if (!ok) s = dato_fail(err, DATO_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        else if (rename(tmp, path) != 0)
            s = dato_fail(err, DATO_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        if (s != DATO_OK) remove(tmp);
    }
    free(tmp);
    free(header);
    free(nbytes);
    return s;
}
