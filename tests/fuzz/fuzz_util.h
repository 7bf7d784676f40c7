// What the reader targets share: the invariant trap, the input as NUL-terminated text or as
// NUL-separated parts, and a per-process scratch folder on tmpfs where an input becomes the file(s)
// a reader that takes a path opens (the real reader runs, file I/O included).
#ifndef DATO_FUZZ_UTIL_H
#define DATO_FUZZ_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "status.h"

// A broken invariant is a finding: trap so that libFuzzer saves the input.
#define INVARIANT(cond)                \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// A failed read left a terminated message that names the source (a label or a path).
static inline void fuzz_check_error(const dato_error* err, const char* source) {
    INVARIANT(memchr(err->msg, '\0', sizeof err->msg) != NULL && strstr(err->msg, source) != NULL);
}

// Reads every byte of p[0..n), so that ASan checks a buffer a reader claims to have filled.
static inline void fuzz_touch(const void* p, size_t n) {
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i++) sink ^= ((const uint8_t*)p)[i];
    (void)sink;
}

// The input as a malloc'd NUL-terminated string (an embedded NUL ends the text early, as it would
// in a file read as text); NULL when out of memory.
static inline char* fuzz_text(const uint8_t* data, size_t size) {
    char* s = malloc(size + 1); // (size + 1,)
    if (!s) return NULL;
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

// Splits the input at its first max - 1 NUL bytes into parts[0..max) (lens in len); returns the
// number of parts. Parts past the returned count are empty. A multi-file input is its files
// joined by NUL, which text files never hold.
static inline int fuzz_split(const uint8_t* data, size_t size, const uint8_t** parts, size_t* len, int max) {
    int n = 0;
    while (n < max - 1) {
        const uint8_t* nul = memchr(data, '\0', size);
        if (!nul) break;
        parts[n] = data;
        len[n++] = (size_t)(nul - data);
        size -= (size_t)(nul - data) + 1;
        data = nul + 1;
    }
    parts[n] = data;
    len[n++] = size;
    for (int i = n; i < max; i++) parts[i] = data + size, len[i] = 0;
    return n;
}

static char fuzz_scratch[64]; // the scratch folder, made on first use and removed at exit()

static void fuzz_remove_scratch(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_scratch);
    if (system(cmd)) return;
}

// The scratch folder: /dev/shm/dato-fuzz-XXXXXX (tmpfs: no disk writes at fuzzing speed). A run
// that libFuzzer ends with _Exit (a finding, -runs reached) leaves it behind: a few KB.
static inline const char* fuzz_dir(void) {
    if (!fuzz_scratch[0]) {
        snprintf(fuzz_scratch, sizeof fuzz_scratch, "/dev/shm/dato-fuzz-XXXXXX");
        if (!mkdtemp(fuzz_scratch)) abort();
        atexit(fuzz_remove_scratch);
    }
    return fuzz_scratch;
}

// Writes n bytes to scratch/name and returns that path (a static buffer per name slot: slot
// 0..7 lets a target hold several paths at once).
static inline const char* fuzz_file(int slot, const char* name, const void* data, size_t n) {
    static char paths[8][128];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir(), name);
    FILE* f = fopen(paths[slot], "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f)) abort(); // tmpfs full: not a finding, stop
    return paths[slot];
}

// Removes scratch/name if it exists (a file some inputs have and others lack).
static inline void fuzz_unlink(const char* name) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    unlink(path);
}
#endif
