// The reference cache (search/ref_cache.h): a payload written under a key reads back byte for byte
// (the folder made on the way); another key, a flipped byte, a truncated file or a file of another
// kind read as absent, never as an error; a write into a folder that cannot be made fails naming it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_seal.h"
#include "ref_cache.h"
#include "test_util.h"

// Overwrites byte `at` of path with its complement, or truncates the file to `at` bytes.
static void damage(const char* path, long at, int truncate_it) {
    if (truncate_it) {
        CHECK(truncate(path, at) == 0, "truncate %s", path);
        return;
    }
    FILE* f = fopen(path, "r+b");
    CHECK(f != NULL, "open %s", path);
    if (!f) return;
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(~c & 0xff, f);
    fclose(f);
}

// 1 when key reads back as absent from dir, without an error.
static int reads_absent(const char* dir, uint64_t key, const char* what) {
    uint8_t* data = (uint8_t*)1;
    size_t n = 1;
    dato_error err;
    dato_status st = dato_ref_cache_get(dir, key, &data, &n, &err);
    printf("%s: %s\n", what, st ? err.msg : data ? "read back" : "absent");
    int absent = st == DATO_OK && !data && n == 0;
    free(data == (uint8_t*)1 ? NULL : data);
    return absent;
}

int main(void) {
    char dir[] = "/tmp/dato_test_ref_cache_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char sub[256], path[4096];
    snprintf(sub, sizeof sub, "%s/nested/cache", dir); // made by the first put
    const uint64_t key = 0x0123456789abcdefULL;
    enum { N = 100003 };
    uint8_t* payload = malloc(N);
    for (int i = 0; i < N; i++) payload[i] = (uint8_t)(i * 2654435761u >> 13);
    dato_error err;

    CHECK(!dato_ref_cache_has(sub, key), "an empty folder holds nothing");
    CHECK(reads_absent(sub, key, "a folder that does not exist"), "a missing folder reads as absent");
    dato_status st = dato_ref_cache_put(sub, key, payload, N, &err);
    CHECK(st == DATO_OK, "put: %s", err.msg);
    CHECK(dato_ref_cache_has(sub, key), "the file is there after put");
    uint8_t* back = NULL;
    size_t n = 0;
    st = dato_ref_cache_get(sub, key, &back, &n, &err);
    CHECK(st == DATO_OK && back && n == N && memcmp(back, payload, N) == 0, "the payload reads back byte for byte (%zu bytes)", n);
    printf("put then get: %zu of %d bytes, %s\n", n, N, back && n == N && !memcmp(back, payload, N) ? "equal" : "DIFFERENT");
    free(back);
    CHECK(reads_absent(sub, key ^ 1, "another key"), "another key reads as absent");

    // A file of another key under this key's name (a copy, a rename): absent.
    dato_ref_cache_path(sub, key, path, sizeof path, &err);
    CHECK(dato_ref_cache_put(sub, key ^ 2, payload, N, &err) == DATO_OK, "put of a second key: %s", err.msg);
    char other[4096];
    dato_ref_cache_path(sub, key ^ 2, other, sizeof other, &err);
    CHECK(rename(other, path) == 0, "rename");
    CHECK(reads_absent(sub, key, "another key's file under this key's name"), "a file of another key is not taken");

    // Damage: a flipped payload byte, a flipped seal byte, a truncated file, a file of another kind.
    CHECK(dato_ref_cache_put(sub, key, payload, N, &err) == DATO_OK, "put again: %s", err.msg);
    damage(path, DATO_SEAL_BYTES + 8 + 5000, 0);
    CHECK(reads_absent(sub, key, "a flipped payload byte"), "a flipped byte reads as absent");
    CHECK(dato_ref_cache_put(sub, key, payload, N, &err) == DATO_OK, "put again: %s", err.msg);
    damage(path, 3, 0);
    CHECK(reads_absent(sub, key, "a flipped seal byte"), "a damaged seal reads as absent");
    CHECK(dato_ref_cache_put(sub, key, payload, N, &err) == DATO_OK, "put again: %s", err.msg);
    damage(path, DATO_SEAL_BYTES + 100, 1);
    CHECK(reads_absent(sub, key, "a truncated file"), "a truncated file reads as absent");
    damage(path, 10, 1);
    CHECK(reads_absent(sub, key, "a 10-byte file"), "a file shorter than the seal reads as absent");
    FILE* f = fopen(path, "wb");
    for (int i = 0; f && i < 2000; i++) fputc('x', f);
    if (f) fclose(f);
    CHECK(reads_absent(sub, key, "a file of another kind"), "a file without the seal reads as absent");

    // An empty payload is a payload.
    CHECK(dato_ref_cache_put(sub, key, NULL, 0, &err) == DATO_OK, "put of 0 bytes: %s", err.msg);
    back = NULL;
    n = 1;
    st = dato_ref_cache_get(sub, key, &back, &n, &err);
    CHECK(st == DATO_OK && back && n == 0, "an empty payload reads back empty");
    free(back);

    // A folder that cannot be made: the error names it.
    char blocked[4200];
    snprintf(blocked, sizeof blocked, "%s/file", path); // under a regular file
    st = dato_ref_cache_put(blocked, key, payload, N, &err);
    printf("put under a file: %s\n", err.msg);
    CHECK(st != DATO_OK && strstr(err.msg, path), "the failed put names the folder: %s", err.msg);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "rm");
    free(payload);
    return test_summary();
}
