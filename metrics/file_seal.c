// File seals: see file_seal.h.
#include "file_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

// FNV-1a 64 of bytes [DATO_SEAL_BYTES, end) of the open file fd; *size gets the file's size.
static dato_status hash_after_seal(int fd, const char* path, uint64_t* hash, uint64_t* size, dato_error* err) {
    uint8_t buf[1 << 14];
    uint64_t h = DATO_FNV_OFFSET, total = DATO_SEAL_BYTES;
    if (lseek(fd, DATO_SEAL_BYTES, SEEK_SET) != DATO_SEAL_BYTES)
        return dato_fail(err, DATO_ERR_IO, "%s: cannot seek past the seal (%s)", path, strerror(errno));
    for (;;) {
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return dato_fail(err, DATO_ERR_IO, "%s: read failed (%s)", path, strerror(errno));
        if (got == 0) break;
        h = dato_fnv1a64(h, buf, (size_t)got);
        total += (uint64_t)got;
    }
    *hash = h;
    *size = total;
    return DATO_OK;
}

// The seal block for a file of size bytes whose bytes after the block hash to hash.
static void make_seal(char seal[DATO_SEAL_BYTES], const char* magic, uint64_t size, uint64_t hash) {
    memset(seal, 0, DATO_SEAL_BYTES);
    snprintf(seal, DATO_SEAL_BYTES, "%sfile_bytes %llu\nfnv1a64 %016llx\n", magic, (unsigned long long)size,
             (unsigned long long)hash);
}

void dato_seal_image(uint8_t* image, size_t size, const char* magic) {
    make_seal((char*)image, magic, size, dato_fnv1a64(DATO_FNV_OFFSET, image + DATO_SEAL_BYTES, size - DATO_SEAL_BYTES));
}

dato_status dato_seal_file(const char* path, const char* magic, dato_error* err) {
    int fd = open(path, O_RDWR);
    if (fd < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot open to seal (%s)", path, strerror(errno));
    uint64_t hash = 0, size = 0;
    dato_status st = hash_after_seal(fd, path, &hash, &size, err);
    char seal[DATO_SEAL_BYTES];
    make_seal(seal, magic, size, hash);
    errno = 0;
    if (st == DATO_OK && pwrite(fd, seal, sizeof seal, 0) != (ssize_t)sizeof seal)
        st = dato_fail(err, DATO_ERR_IO, "%s: writing the seal failed (%s)", path, errno ? strerror(errno) : "short write");
    if (st == DATO_OK && fsync(fd) != 0) st = dato_fail(err, DATO_ERR_IO, "%s: fsync failed (%s)", path, strerror(errno));
    if (close(fd) != 0 && st == DATO_OK) st = dato_fail(err, DATO_ERR_IO, "%s: close failed (%s)", path, strerror(errno));
    return st;
}

dato_status dato_seal_check(const char* path, const char* magic, dato_seal_state* state, dato_error* err) {
    *state = DATO_SEAL_NONE;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    char seal[DATO_SEAL_BYTES + 1];
    ssize_t got = read(fd, seal, DATO_SEAL_BYTES);
    seal[got > 0 ? got : 0] = 0;
    size_t magic_len = strlen(magic);
    unsigned long long want_size = 0, want_hash = 0;
    dato_status st = DATO_OK;
    if (got != DATO_SEAL_BYTES || strncmp(seal, magic, magic_len) != 0) { // the caller decides what this means
        if (got >= 8 && memcmp(seal, "\x89HDF\r\n\x1a\n", 8) == 0) *state = DATO_SEAL_NONE_HDF5;
    } else if (sscanf(seal + magic_len, "file_bytes %llu\nfnv1a64 %16llx", &want_size, &want_hash) != 2) {
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: damaged seal block", path);
    } else {
        uint64_t hash = 0, size = 0;
        st = hash_after_seal(fd, path, &hash, &size, err);
        if (st == DATO_OK && size < want_size)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: truncated: %llu of %llu bytes", path, (unsigned long long)size,
                           want_size);
        else if (st == DATO_OK && size > want_size)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: %llu bytes, the seal says %llu", path, (unsigned long long)size,
                           want_size);
        else if (st == DATO_OK && hash != want_hash)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: file checksum mismatch (sealed %016llx, now %016llx): damaged",
                           path, want_hash, (unsigned long long)hash);
        if (st == DATO_OK) *state = DATO_SEAL_INTACT;
    }
    close(fd);
    return st;
}

dato_status dato_seal_check_image(const uint8_t* image, size_t size, const char* label, const char* magic,
                                  dato_seal_state* state, dato_error* err) {
    *state = DATO_SEAL_NONE;
    char seal[DATO_SEAL_BYTES + 1];
    size_t got = size < DATO_SEAL_BYTES ? size : DATO_SEAL_BYTES;
    memcpy(seal, image, got);
    seal[got] = 0;
    size_t magic_len = strlen(magic);
    unsigned long long want_size = 0, want_hash = 0;
    if (got != DATO_SEAL_BYTES || strncmp(seal, magic, magic_len) != 0) { // the caller decides what this means
        if (got >= 8 && memcmp(seal, "\x89HDF\r\n\x1a\n", 8) == 0) *state = DATO_SEAL_NONE_HDF5;
        return DATO_OK;
    }
    if (sscanf(seal + magic_len, "file_bytes %llu\nfnv1a64 %16llx", &want_size, &want_hash) != 2)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: damaged seal block", label);
    if (size != want_size)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %s: %zu of %llu bytes", label,
                         size < want_size ? "truncated" : "longer than its seal says", size, want_size);
    uint64_t hash = dato_fnv1a64(DATO_FNV_OFFSET, image + DATO_SEAL_BYTES, size - DATO_SEAL_BYTES);
    if (hash != want_hash)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: file checksum mismatch (sealed %016llx, now %016llx): damaged",
                         label, want_hash, (unsigned long long)hash);
    *state = DATO_SEAL_INTACT;
    return DATO_OK;
}
