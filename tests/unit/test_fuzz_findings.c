// Regression tests for what the reader fuzz targets found (docs/FUZZING.md): each case is the
// finding's input, made small and deterministic here.
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <zlib.h>

#include "idx.h"
#include "image.h"
#include "latency.h"
#include "stats_io.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__) // gcc
#define UNDER_ASAN 1
#elif defined(__has_feature) // clang
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

#ifndef UNDER_ASAN
// The process's address space now (from /proc/self/statm), in bytes; 0 if unknown.
static size_t address_space_bytes(void) {
    unsigned long pages = 0;
    FILE* f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%lu", &pages) != 1) pages = 0;
    fclose(f);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

// Every malloc of the process (libpng's included) goes through here: the largest request since
// the last reset shows what a reader asked for, even where the allocation succeeded.
extern void* __libc_malloc(size_t n);
static size_t largest_malloc;
void* malloc(size_t n) {
    if (n > largest_malloc) largest_malloc = n;
    return __libc_malloc(n);
}
#endif

// Caps the address space 512 MiB above its current size (a promise of gigabytes that the reader
// believed fails to allocate), keeping the old limit in *old; 0 under AddressSanitizer, whose
// shadow memory needs the address space: the case is then skipped.
static int cap_address_space(struct rlimit* old) {
#ifdef UNDER_ASAN
    (void)old;
    printf("  skipped under AddressSanitizer\n");
    return 0;
#else
    struct rlimit cap;
    if (getrlimit(RLIMIT_AS, old) != 0) return 0;
    cap = *old;
    cap.rlim_cur = (rlim_t)(address_space_bytes() + ((size_t)512 << 20));
    return setrlimit(RLIMIT_AS, &cap) == 0;
#endif
}

static void write_file(const char* path, const void* data, size_t n) {
    FILE* f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

// fuzz_idx: a 16-byte IDX file whose header promises 3 x 32768 x 32768 bytes (3 GiB, under the
// 4 GiB limit) made the reader allocate all of it before reading a byte. With the address space
// capped 512 MiB above its current size, that allocation failed (DATO_ERR_NOMEM, "cannot
// allocate"); the reader now grows its buffer as the data arrives and reports the truncation.
static void test_idx_promise_is_not_allocated(const char* dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/promise.idx", dir);
    const uint8_t header[16] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0x80, 0, 0, 0, 0x80, 0};
    write_file(path, header, sizeof header);
    struct rlimit old;
    if (!cap_address_space(&old)) return;
    dato_idx x;
    dato_error err = {0};
    dato_status st = dato_idx_read(&x, path, &err);
    setrlimit(RLIMIT_AS, &old);
    printf("idx 3x32768x32768 in 16 bytes: %s\n", err.msg);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "truncated") && strstr(err.msg, "promise.idx") && x.data == NULL,
          "status %d: %s", st, err.msg);
    remove(path);
}

static void put_be32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

// The signature and IHDR chunk of a w x h PNG, 8 bits, color type color (0 gray, 2 RGB): 33 bytes.
static void png_start(uint8_t* png, uint32_t w, uint32_t h, uint8_t color) {
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    uint8_t* ihdr = png + 8; // length 13, "IHDR", width, height, depth, color, 3 zero bytes, CRC
    memset(ihdr, 0, 25);
    put_be32(ihdr, 13);
    memcpy(ihdr + 4, "IHDR", 4);
    put_be32(ihdr + 8, w);
    put_be32(ihdr + 12, h);
    ihdr[16] = 8;
    ihdr[17] = color;
    put_be32(ihdr + 21, (uint32_t)crc32(0L, ihdr + 4, 17));
}

// Reads the PNG at path, whose name is name, expecting status want with little asked of malloc:
// the reader must find the file's promise (a chunk or an image far larger than the file) a lie
// before it allocates what was promised.
static void expect_png_refused_cheaply(const char* path, const char* name, dato_status want, const char* what) {
#ifdef UNDER_ASAN
    printf("%s: skipped under AddressSanitizer (it owns malloc)\n", what);
    (void)path, (void)name, (void)want;
#else
    uint8_t* px = NULL;
    int h, w, c;
    dato_error err = {0};
    largest_malloc = 0;
    dato_status st = dato_png_read(path, &px, &h, &w, &c, &err);
    printf("%s: largest malloc %zu bytes, %s\n", what, largest_malloc, err.msg);
    CHECK(st == want && largest_malloc < ((size_t)64 << 20) && strstr(err.msg, name) && !px,
          "%s: status %d, largest malloc %zu: %s", what, st, largest_malloc, err.msg);
#endif
    remove(path);
}

// fuzz_png: a 45-byte PNG whose second chunk (tEXt) claims 0x66000000 bytes made libpng ask
// malloc for 1.7 GB before reading on (the largest request was 1711276045 bytes). Ancillary
// chunks are now skipped past 8 MB: the read fails on the truncation, asking for little.
static void test_png_chunk_promise_is_not_allocated(const char* dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/promise.png", dir);
    uint8_t png[8 + 25 + 12];
    png_start(png, 5, 6, 2);
    uint8_t* text = png + 33; // a tEXt chunk header promising 0x66000000 bytes, then 4 of them
    put_be32(text, 0x66000000u);
    memcpy(text + 4, "tEXtabcd", 8);
    write_file(path, png, sizeof png);
    expect_png_refused_cheaply(path, "promise.png", DATO_ERR_FORMAT, "png with a 1.7 GB tEXt chunk in 45 bytes");
}

// fuzz_png: a 42-byte PNG of 65285 x 524294 gray pixels (sides within libpng's limit) made the
// reader ask malloc for all 34 GB of them before finding the data missing. What a PNG may decode
// to is now capped at 256 MiB, refused before allocating.
static void test_png_size_promise_is_not_allocated(const char* dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/huge.png", dir);
    uint8_t png[33 + 9] = {0};
    png_start(png, 65285, 524294, 0);
    memcpy(png + 33 + 4, "IDAT\x78", 5); // an IDAT chunk cut after its first byte
    write_file(path, png, sizeof png);
    expect_png_refused_cheaply(path, "huge.png", DATO_ERR_UNSUPPORTED, "png of 65285 x 524294 in 42 bytes");
}

// fuzz_npz: an .npz whose central directory says mu.npy holds 3 GiB (it holds 144 bytes) made the
// reader allocate all of it first; capped, that failed (DATO_ERR_NOMEM). The buffer now grows
// as the entry is read, and the short entry is a corrupt archive.
static void test_npz_entry_promise_is_not_allocated(const char* dir) {
    size_t n = 0;
    unsigned char* zip = read_bytes("tests/fixtures/fid/stats_dim4.npz", &n);
    CHECK(zip && n > 46, "cannot read tests/fixtures/fid/stats_dim4.npz");
    if (!zip || n <= 46) return free(zip);
    int patched = 0; // the uncompressed size (offset 24) of mu.npy's central directory record
    for (size_t i = 0; i + 46 + 6 <= n; i++)
        if (!memcmp(zip + i, "PK\x01\x02", 4) && !memcmp(zip + i + 46, "mu.npy", 6)) {
            const uint8_t size[4] = {0, 0, 0, 0xc0}; // 0xc0000000, little-endian
            memcpy(zip + i + 24, size, 4);
            patched++;
        }
    CHECK(patched == 1, "mu.npy's central directory record not found");
    char path[512];
    snprintf(path, sizeof path, "%s/promise.npz", dir);
    write_file(path, zip, n);
    free(zip);
    struct rlimit old;
    if (!cap_address_space(&old)) return;
    dato_fid_stats s;
    dato_error err = {0};
    dato_status st = dato_stats_read_npz(path, &s, &err);
    setrlimit(RLIMIT_AS, &old);
    printf("npz whose mu.npy claims 3 GiB: %s\n", err.msg);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "corrupt archive") && strstr(err.msg, "promise.npz") && !s.mu,
          "status %d: %s", st, err.msg);
    remove(path);
}

// fuzz_latency: a table whose "setup_cache_s" was 2.4e507 read as infinity and was accepted: every
// schedule with a partial step was then predicted to take forever, and the table saved again
// wrote null there. Each time must be finite, in 0..1e6 s; 1e300 s per UNet call, summed over
// the steps of a run, overflowed too.
static void test_latency_times_are_bounded(const char* dir) {
    static const char* const bad[][2] = {
        {"\"setup_cache_s\": 2.4e507", "'setup_cache_s' = inf is not a time in 0..1e+06 s"},
        {"\"setup_cache_s\": 1e300", "'setup_cache_s' = 1e+300 is not a time in 0..1e+06 s"},
        {"\"call_s\": [[0, 0, 0, 0, 0, 0], [1e300, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2]]",
         "'call_s'[1][0] is not a time in 0..1e+06 s"},
    };
    char path[512];
    snprintf(path, sizeof path, "%s/latency_table.json", dir);
    for (int i = 0; i < 3; i++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{\"format\": \"dato-latency\", \"version\": 1, \"key\": {\"model\": \"m\", \"model_hash\": "
                 "\"0123456789abcdef\", \"device\": \"cpu\", \"threads\": 1, \"batch\": 1, \"guided\": 1, "
                 "\"height\": 8, \"width\": 8, \"seq\": 77, \"sampler\": \"ddim\"}, \"n_branches\": 1, "
                 "\"ratios\": [0, 0.3, 0.4, 0.5, 0.6, 0.7], %s, \"call_overhead_s\": 0.001, \"setup_s\": 0.01, "
                 "%s, \"setup_prune_s\": 0.0}",
                 i == 2 ? bad[i][0] : "\"call_s\": [[0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [2, 2, 2, 2, 2, 2]]",
                 i == 2 ? "\"setup_cache_s\": 0.0" : bad[i][0]);
        write_file(path, json, strlen(json));
        dato_latency_table t;
        dato_error err = {0};
        dato_status st = dato_latency_load(&t, path, NULL, &err);
        printf("latency table with %s: %s\n", bad[i][0], err.msg);
        CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, bad[i][1]) && strstr(err.msg, "latency_table.json"),
              "case %d: status %d: %s", i, st, err.msg);
    }
    remove(path);
}

int main(void) {
    char dir[] = "/tmp/dato_test_fuzz_findings_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    test_idx_promise_is_not_allocated(dir);
    test_png_chunk_promise_is_not_allocated(dir);
    test_png_size_promise_is_not_allocated(dir);
    test_npz_entry_promise_is_not_allocated(dir);
    test_latency_times_are_bounded(dir);
    rmdir(dir);
    return test_summary();
}
