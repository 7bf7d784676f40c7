// PyTorch checkpoints: libzip for the zip archive, or a memory map for the legacy format;
// engine/io/pickle.c for the pickles, then one copy per storage into owned memory, tensors as
// views. See ckpt.h.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "ckpt.h"
#include "pickle.h"

#define MAX_ENTRY_NAME 512

// Reads exactly n bytes of entry idx into dst; the entry must hold exactly n bytes.
static dato_status read_entry(zip_t* z, zip_uint64_t idx, const char* path, const char* entry, void* dst, uint64_t n,
                              dato_error* err) {
    zip_file_t* f = zip_fopen_index(z, idx, 0);
    if (!f) return dato_fail(err, DATO_ERR_IO, "%s: cannot open zip entry '%s': %s", path, entry, zip_strerror(z));
    uint64_t got = 0;
    while (got < n) {
        zip_int64_t k = zip_fread(f, (char*)dst + got, n - got);
        if (k <= 0) {
            dato_status st = dato_fail(
                err, k < 0 ? DATO_ERR_IO : DATO_ERR_FORMAT, "%s: zip entry '%s': %s after %llu of %llu bytes", path,
                entry, k < 0 ? zip_file_strerror(f) : "ends", (unsigned long long)got, (unsigned long long)n);
            zip_fclose(f);
            return st;
        }
        got += (uint64_t)k;
    }
    zip_fclose(f);
    return DATO_OK;
}

// Finds the one "<archive>/data.pkl" entry; *archive gets a malloc'd copy of <archive>.
static dato_status find_data_pkl(zip_t* z, const char* path, zip_uint64_t* idx, char** archive, dato_error* err) {
    zip_int64_t n = zip_get_num_entries(z, 0);
    int found = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        const char* name = zip_get_name(z, (zip_uint64_t)i, 0);
        const char* slash = name ? strchr(name, '/') : NULL;
        if (!slash || strcmp(slash, "/data.pkl") != 0 || slash == name) continue;
        if (found) {
            free(*archive);
            *archive = NULL;
            return dato_fail(err, DATO_ERR_FORMAT, "%s: two data.pkl entries ('%s' and another)", path, name);
        }
        found = 1;
        *idx = (zip_uint64_t)i;
        size_t len = (size_t)(slash - name);
        if (len > MAX_ENTRY_NAME / 2)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: archive folder name longer than %d bytes", path,
                             MAX_ENTRY_NAME / 2);
        *archive = malloc(len + 1);
        if (!*archive) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
        memcpy(*archive, name, len);
        (*archive)[len] = '\0';
    }
    if (!found)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: no <archive>/data.pkl entry: not a PyTorch zip checkpoint", path);
    return DATO_OK;
}

// Reads and unpickles data.pkl.
static dato_status load_pickle(zip_t* z, dato_ckpt* c, dato_pickle_tensors* pt, dato_error* err) {
    zip_uint64_t idx = 0;
    dato_status st = find_data_pkl(z, c->path, &idx, &c->archive, err);
    if (st) return st;
    zip_stat_t zs;
    char entry[MAX_ENTRY_NAME];
    snprintf(entry, sizeof entry, "%s/data.pkl", c->archive);
    if (zip_stat_index(z, idx, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: cannot stat '%s': %s", c->path, entry, zip_strerror(z));
    if (zs.size > ((uint64_t)1 << 30))
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: '%s' is %llu bytes (at most 1 GiB)", c->path, entry,
                         (unsigned long long)zs.size);
    void* bytes = malloc(zs.size ? (size_t)zs.size : 1);
    if (!bytes) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for '%s'", c->path, entry);
    st = read_entry(z, idx, c->path, entry, bytes, zs.size, err);
    char label[MAX_ENTRY_NAME + 1024];
    snprintf(label, sizeof label, "%s: %s", c->path, entry);
    if (!st) st = dato_pickle_load_tensors(pt, bytes, (size_t)zs.size, label, err);
    free(bytes);
    return st;
}

// Reads every storage the tensors use, checking each entry's size against its declared numel.
static dato_status load_storages(zip_t* z, dato_ckpt* c, const dato_pickle_tensors* pt, dato_error* err) {
    c->storage_data = calloc((size_t)pt->n_storages + 1, sizeof *c->storage_data);
    if (!c->storage_data) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", c->path);
    for (int s = 0; s < pt->n_storages; s++) {
        const dato_pickle_storage* ps = &pt->storages[s];
        const char* user = "?"; // a tensor using it, for messages
        for (int t = 0; t < pt->n_tensors; t++)
            if (pt->tensors[t].storage == s) {
                user = pt->tensors[t].name;
                break;
            }
        char entry[MAX_ENTRY_NAME];
        snprintf(entry, sizeof entry, "%s/data/%s", c->archive, ps->key);
        zip_int64_t idx = zip_name_locate(z, entry, 0);
        if (idx < 0)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s': storage entry '%s' is missing", c->path, user,
                             entry);
        zip_stat_t zs;
        if (zip_stat_index(z, (zip_uint64_t)idx, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: cannot stat '%s': %s", c->path, entry, zip_strerror(z));
        uint64_t nbytes = (uint64_t)ps->numel * dato_st_dtype_size(ps->dtype); // numel <= 2^59: no overflow
        if (zs.size != nbytes)
            return dato_fail(err, DATO_ERR_FORMAT,
                             "%s: tensor '%s': storage '%s' holds %llu bytes, but %lld %s elements need %llu", c->path,
                             user, entry, (unsigned long long)zs.size, (long long)ps->numel,
                             dato_st_dtype_name(ps->dtype), (unsigned long long)nbytes);
        c->storage_data[s] = malloc(nbytes ? (size_t)nbytes : 1);
        c->n_storages = s + 1;
        if (!c->storage_data[s])
            return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for storage '%s' (%llu bytes)", c->path, entry,
                             (unsigned long long)nbytes);
        dato_status st = read_entry(z, (zip_uint64_t)idx, c->path, entry, c->storage_data[s], nbytes, err);
        if (st) return st;
    }
    return DATO_OK;
}

// Builds the tensor table: views into the storages, names moved out of pt.
static dato_status make_tensors(dato_ckpt* c, dato_pickle_tensors* pt, dato_error* err) {
    c->tensors = calloc((size_t)pt->n_tensors + 1, sizeof *c->tensors);
    if (!c->tensors) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", c->path);
    for (int i = 0; i < pt->n_tensors; i++) {
        dato_pickle_tensor* p = &pt->tensors[i];
        dato_st_tensor* t = &c->tensors[i];
        t->dtype = pt->storages[p->storage].dtype;
        size_t es = dato_st_dtype_size(t->dtype);
        t->name = p->name;
        p->name = NULL;
        t->path = c->path;
        t->ndim = p->ndim;
        memcpy(t->shape, p->shape, sizeof t->shape);
        t->numel = p->numel;
        t->data = (const char*)c->storage_data[p->storage] + (size_t)p->offset * es;
        t->nbytes = (size_t)p->numel * es;
        c->n_tensors = i + 1;
    }
    return DATO_OK;
}

// ---- the legacy format (torch.save before 1.6, or _use_new_zipfile_serialization=False) --------
// Five pickles back to back (magic number, protocol version, sys_info, the object, the sorted
// storage keys), then per key: an 8-byte little-endian element count and count * element-size
// raw bytes, in key order. docs/CKPT.md has the details.

#define LEGACY_MAX_PICKLE ((size_t)1 << 30) // the window each pickle is read from

// The 10-byte little-endian LONG1 of torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c.
static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

// Matches a pickle of a single constant: PROTO (<= 5), an optional FRAME, body, STOP at *pos.
static int match_constant_pickle(const uint8_t* p, size_t size, size_t* pos, const uint8_t* body, size_t body_len) {
    size_t k = *pos;
    if (size - k < 2 || p[k] != 0x80 || p[k + 1] > 5) return 0;
    k += 2;
    if (size - k >= 9 && p[k] == 0x95) k += 9; // FRAME and its 8-byte length (protocol 4+)
    if (size - k < body_len + 1 || memcmp(p + k, body, body_len) != 0 || p[k + body_len] != '.') return 0;
    *pos = k + body_len + 1;
    return 1;
}

// Bytes a pickle starting at pos may span: the rest of the file, at most LEGACY_MAX_PICKLE.
static size_t window(size_t size, size_t pos) {
    return size - pos < LEGACY_MAX_PICKLE ? size - pos : LEGACY_MAX_PICKLE;
}

// The storage records after the key list: checks each count against the pickle's declaration,
// copies the storages the tensors use and skips the others.
static dato_status legacy_storages(dato_ckpt* c, const uint8_t* p, size_t size, size_t pos,
                                   const dato_pickle_tensors* pt, const dato_pickle_strings* keys, dato_error* err) {
    c->storage_data = calloc((size_t)pt->n_storages + 1, sizeof *c->storage_data);
    if (!c->storage_data) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", c->path);
    c->n_storages = pt->n_storages; // unread ones stay NULL, which close frees harmlessly
    for (int k = 0; k < keys->n; k++) {
        const char* key = keys->strings[k];
        const dato_pickle_storage* d = NULL;
        for (int lo = 0, hi = pt->n_declared - 1; lo <= hi && !d;) { // declared is sorted by key
            int mid = lo + (hi - lo) / 2, cmp = strcmp(key, pt->declared[mid].key);
            if (cmp == 0) d = &pt->declared[mid];
            else if (cmp < 0) hi = mid - 1;
            else lo = mid + 1;
        }
        if (!d)
            return dato_fail(err, DATO_ERR_FORMAT,
                             "%s: the storage key list names '%.128s', which the pickle never declares", c->path, key);
        if (size - pos < 8)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: storage '%s': truncated at its size prefix (byte %zu)", c->path,
                             key, pos);
        uint64_t count = 0;
        for (int i = 0; i < 8; i++) count |= (uint64_t)p[pos + i] << (8 * i);
        pos += 8;
        if (count != (uint64_t)d->numel)
            return dato_fail(err, DATO_ERR_FORMAT,
                             "%s: storage '%s': size prefix says %llu elements, the pickle declares %lld", c->path, key,
                             (unsigned long long)count, (long long)d->numel);
        uint64_t nbytes = count * dato_st_dtype_size(d->dtype); // numel <= 2^59: no overflow
        if (size - pos < nbytes)
            return dato_fail(err, DATO_ERR_FORMAT,
                             "%s: storage '%s': %llu bytes of %lld %s elements at byte %zu, but the file ends at %zu",
                             c->path, key, (unsigned long long)nbytes, (long long)d->numel,
                             dato_st_dtype_name(d->dtype), pos, size);
        for (int s = 0; s < pt->n_storages; s++) {
            if (strcmp(pt->storages[s].key, key) != 0) continue;
            if (c->storage_data[s])
                return dato_fail(err, DATO_ERR_FORMAT, "%s: storage '%s' listed twice", c->path, key);
            if (pt->storages[s].dtype != d->dtype)
                return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: storage '%s' read as %s and as %s", c->path, key,
                                 dato_st_dtype_name(d->dtype), dato_st_dtype_name(pt->storages[s].dtype));
            if (!(c->storage_data[s] = malloc(nbytes ? (size_t)nbytes : 1)))
                return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for storage '%s' (%llu bytes)", c->path, key,
                                 (unsigned long long)nbytes);
            memcpy(c->storage_data[s], p + pos, (size_t)nbytes);
        }
        pos += (size_t)nbytes;
    }
    for (int s = 0; s < pt->n_storages; s++) {
        if (c->storage_data[s]) continue;
        const char* user = "?"; // a tensor using it, for the message
        for (int t = 0; t < pt->n_tensors; t++)
            if (pt->tensors[t].storage == s) {
                user = pt->tensors[t].name;
                break;
            }
        return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s': storage '%s' is not in the storage key list", c->path,
                         user, pt->storages[s].key);
    }
    return DATO_OK;
}

// Parses the five pickles of the mapped file p (size bytes) and reads the storages.
static dato_status legacy_parse(dato_ckpt* c, const uint8_t* p, size_t size, dato_pickle_tensors* pt,
                                dato_error* err) {
    size_t pos = 0;
    uint8_t magic[12] = {0x8a, 10};
    memcpy(magic + 2, legacy_magic, sizeof legacy_magic);
    static const uint8_t protocol_1001[] = {'M', 0xe9, 0x03}; // BININT2 1001
    if (!match_constant_pickle(p, size, &pos, magic, sizeof magic))
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: neither a zip archive nor a legacy PyTorch file (no pickled magic number "
                         "0x1950a86a20f9469cfc6c at byte 0)",
                         c->path);
    if (!match_constant_pickle(p, size, &pos, protocol_1001, sizeof protocol_1001))
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: legacy PyTorch file without protocol version 1001 at byte %zu",
                         c->path, pos);
    char label[1024];
    snprintf(label, sizeof label, "%s: legacy sys_info pickle at byte %zu", c->path, pos);
    dato_status st = dato_pickle_load_tensors(pt, p + pos, window(size, pos), label, err); // a dict, no tensors
    if (st) return st;
    pos += pt->pickle_size;
    dato_pickle_tensors_free(pt);
    snprintf(label, sizeof label, "%s: legacy object pickle at byte %zu", c->path, pos);
    if ((st = dato_pickle_load_tensors(pt, p + pos, window(size, pos), label, err))) return st;
    pos += pt->pickle_size;
    dato_pickle_strings keys;
    snprintf(label, sizeof label, "%s: legacy storage key list at byte %zu", c->path, pos);
    if ((st = dato_pickle_load_strings(&keys, p + pos, window(size, pos), label, err))) return st;
    pos += keys.pickle_size;
    st = legacy_storages(c, p, size, pos, pt, &keys, err);
    dato_pickle_strings_free(&keys);
    return st;
}

// Maps path and reads it as a legacy file.
static dato_status legacy_open(dato_ckpt* c, dato_pickle_tensors* pt, dato_error* err) {
    int fd = open(c->path, O_RDONLY);
    if (fd < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot open: %s", c->path, strerror(errno));
    struct stat sb;
    dato_status st = DATO_OK;
    if (fstat(fd, &sb) != 0)
        st = dato_fail(err, DATO_ERR_IO, "%s: cannot stat: %s", c->path, strerror(errno));
    else if (sb.st_size <= 0 || (uint64_t)sb.st_size > SIZE_MAX)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: empty or unmappable file of %lld bytes", c->path,
                       (long long)sb.st_size);
    void* map = MAP_FAILED;
    if (!st && (map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
        st = dato_fail(err, DATO_ERR_IO, "%s: cannot mmap %lld bytes: %s", c->path, (long long)sb.st_size,
                       strerror(errno));
    close(fd);
    if (st) return st;
    st = legacy_parse(c, map, (size_t)sb.st_size, pt, err);
    munmap(map, (size_t)sb.st_size);
    return st;
}

// The first byte: a legacy file starts with a pickle PROTO opcode, a zip with "PK".
static int starts_with_proto(const char* path) {
    FILE* f = fopen(path, "rb");
    if (!f) return 0;
    int b = fgetc(f);
    fclose(f);
    return b == 0x80;
}

dato_status dato_ckpt_open(dato_ckpt** out, const char* path, dato_error* err) {
    *out = NULL;
    dato_ckpt* c = calloc(1, sizeof *c);
    if (!c || !(c->path = malloc(strlen(path) + 1))) {
        free(c);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory", path);
    }
    strcpy(c->path, path);
    if (starts_with_proto(path)) {
        dato_pickle_tensors pt;
        memset(&pt, 0, sizeof pt);
        dato_status st = legacy_open(c, &pt, err);
        if (!st) st = make_tensors(c, &pt, err);
        c->has_state_dict = pt.has_state_dict;
        c->legacy = 1;
        dato_pickle_tensors_free(&pt);
        if (st) {
            dato_ckpt_close(c);
            return st;
        }
        *out = c;
        return DATO_OK;
    }
    int zerr = 0;
    zip_t* z = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        dato_status st = dato_fail(
            err, zerr == ZIP_ER_OPEN || zerr == ZIP_ER_NOENT || zerr == ZIP_ER_READ ? DATO_ERR_IO : DATO_ERR_FORMAT,
            "%s: not a readable zip archive (%s), nor a legacy PyTorch file (those start with byte 0x80)", path,
            zip_error_strerror(&ze));
        zip_error_fini(&ze);
        dato_ckpt_close(c);
        return st;
    }
    dato_pickle_tensors pt;
    memset(&pt, 0, sizeof pt);
    dato_status st = load_pickle(z, c, &pt, err);
    if (!st) st = load_storages(z, c, &pt, err);
    if (!st) st = make_tensors(c, &pt, err);
    c->has_state_dict = pt.has_state_dict;
    dato_pickle_tensors_free(&pt);
    zip_discard(z); // read-only: nothing to write back
    if (st) {
        dato_ckpt_close(c);
        return st;
    }
    *out = c;
    return DATO_OK;
}

void dato_ckpt_close(dato_ckpt* c) {
    if (!c) return;
    for (int i = 0; i < c->n_tensors; i++) free(c->tensors[i].name);
    for (int i = 0; i < c->n_storages; i++) free(c->storage_data[i]);
    free(c->tensors);
    free(c->storage_data);
    free(c->archive);
    free(c->path);
    free(c);
}

static int cmp_name(const void* key, const void* t) { return strcmp(key, ((const dato_st_tensor*)t)->name); }

const dato_st_tensor* dato_ckpt_find(const dato_ckpt* c, const char* name) {
    return bsearch(name, c->tensors, (size_t)c->n_tensors, sizeof *c->tensors, cmp_name);
}

int dato_ckpt_count(const dato_ckpt* c) { return c->n_tensors; }

const dato_st_tensor* dato_ckpt_tensor(const dato_ckpt* c, int i) {
    return i >= 0 && i < c->n_tensors ? &c->tensors[i] : NULL;
}

static const dato_st_tensor* source_find(const void* ctx, const char* name) { return dato_ckpt_find(ctx, name); }
static int source_count(const void* ctx) { return dato_ckpt_count(ctx); }
static const dato_st_tensor* source_at(const void* ctx, int i) { return dato_ckpt_tensor(ctx, i); }

dato_tensor_source dato_ckpt_source(const dato_ckpt* c) {
    return (dato_tensor_source){
        .ctx = c, .label = c->path, .find = source_find, .count = source_count, .at = source_at};
}
