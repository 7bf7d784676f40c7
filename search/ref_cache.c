// The reference cache (search/ref_cache.h).
#include "ref_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_seal.h"
#include "file_util.h"

#define MAX_FILE_BYTES ((size_t)1 << 34) // 16 GiB: more than any image set's references

dato_status dato_ref_cache_path(const char* dir, uint64_t key, char* out, size_t n, dato_error* err) {
    char name[40];
    snprintf(name, sizeof name, "refs-%016llx.bin", (unsigned long long)key);
    return dato_path_join(out, n, dir, name, err);
}

int dato_ref_cache_has(const char* dir, uint64_t key) {
    char path[4096];
    dato_error err;
    return dato_ref_cache_path(dir, key, path, sizeof path, &err) == DATO_OK && dato_is_file(path);
}

dato_status dato_ref_cache_get(const char* dir, uint64_t key, uint8_t** data, size_t* n, dato_error* err) {
    *data = NULL;
    *n = 0;
    char path[4096];
    if (dato_ref_cache_path(dir, key, path, sizeof path, err) != DATO_OK) return DATO_OK; // no such file
    FILE* f = fopen(path, "rb");
    if (!f) return DATO_OK;
    uint8_t* image = NULL;
    size_t size = 0;
    dato_status st = DATO_OK;
    long end = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (end >= (long)(DATO_SEAL_BYTES + sizeof key) && (size_t)end <= MAX_FILE_BYTES) {
        size = (size_t)end;
        if (!(image = malloc(size))) st = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for %zu bytes", path, size);
        else if (fseek(f, 0, SEEK_SET) != 0 || fread(image, 1, size, f) != size) size = 0;
    }
    fclose(f);
    dato_seal_state state = DATO_SEAL_NONE;
    dato_error ignored;
    uint64_t stored = 0;
    if (image && size) memcpy(&stored, image + DATO_SEAL_BYTES, sizeof stored);
    if (st || !size || dato_seal_check_image(image, size, path, DATO_REF_CACHE_MAGIC, &state, &ignored) != DATO_OK ||
        state != DATO_SEAL_INTACT || stored != key) {
        free(image);
        return st;
    }
    // The payload, moved to the start of the buffer the caller frees.
    *n = size - DATO_SEAL_BYTES - sizeof key;
    memmove(image, image + DATO_SEAL_BYTES + sizeof key, *n);
    *data = image;
    return DATO_OK;
}

dato_status dato_ref_cache_put(const char* dir, uint64_t key, const uint8_t* data, size_t n, dato_error* err) {
    char path[4096], tmp[4200];
    DATO_TRY(dato_ref_cache_path(dir, key, path, sizeof path, err));
    DATO_TRY(dato_mkdir_parents(path, err));
    // A temporary of this process's own: runs sharing the folder never write into one file.
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    size_t size = DATO_SEAL_BYTES + sizeof key + n;
    uint8_t* image = calloc(1, size);
    if (!image) return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for %zu bytes", path, size);
    memcpy(image + DATO_SEAL_BYTES, &key, sizeof key);
    if (n) memcpy(image + DATO_SEAL_BYTES + sizeof key, data, n);
    dato_seal_image(image, size, DATO_REF_CACHE_MAGIC);
    dato_status st = DATO_OK;
    FILE* f = fopen(tmp, "wb");
    if (!f) st = dato_fail(err, DATO_ERR_IO, "%s: cannot create (%s)", tmp, strerror(errno));
    else {
        int bad = fwrite(image, 1, size, f) != size;
        bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        if (bad) st = dato_fail(err, DATO_ERR_IO, "%s: write failed (%s)", tmp, strerror(errno));
    }
    if (!st && rename(tmp, path) != 0)
        st = dato_fail(err, DATO_ERR_IO, "%s: cannot rename %s over it (%s)", path, tmp, strerror(errno));
    if (st) remove(tmp);
    free(image);
    return st;
}
