// Small helpers shared by the bench programs: the peak RSS, a comparator for medians, a prompts
// file's lines, and the command-line parser they all use (the clock is the engine's dato_clock_s, clock.h).
#ifndef DATO_BENCH_UTIL_H
#define DATO_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clock.h"

// Peak resident set size of this process so far, in MiB (Linux reports KiB).
static inline double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

// The non-empty lines of a text file (up to max, each at most 1023 bytes), strdup'd into a
// calloc'd array; *n gets their count. NULL if the file cannot be opened. Free with bench_free_lines.
static inline char** bench_read_lines(const char* path, int max, int* n) {
    FILE* f = fopen(path, "r");
    if (!f) return NULL;
    char** lines = calloc((size_t)max, sizeof *lines);
    char buf[1024];
    *n = 0;
    while (lines && *n < max && fgets(buf, sizeof buf, f)) {
        size_t len = strcspn(buf, "\r\n");
        buf[len] = 0;
        if (len) lines[(*n)++] = strdup(buf);
    }
    fclose(f);
    return lines;
}

static inline void bench_free_lines(char** lines, int n) {
    for (int i = 0; lines && i < n; i++) free(lines[i]);
    free(lines);
}

static inline int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

// One command-line option: "--name VALUE" (an int or a string) or a bare "--name" flag.
typedef struct {
    const char* name;
    int* int_value;          // --name N
    const char** str_value;  // --name TEXT
    int* flag;               // --name (set to 1)
} bench_opt;

// Parses argv against opts. Returns 0 to go on, 1 after --help (usage printed), 2 on an error
// (message printed with prog's name).
static inline int bench_parse(int argc, char** argv, const char* prog, const bench_opt* opts, int n_opts,
                              void (*usage)(void)) {
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 1;
        }
        const bench_opt* o = NULL;
        for (int k = 0; k < n_opts && !o; k++)
            if (!strcmp(a, opts[k].name)) o = &opts[k];
        if (!o) {
            fprintf(stderr, "%s: unknown option %s (try --help)\n", prog, a);
            return 2;
        }
        if (o->flag) {
            *o->flag = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", prog, a);
            return 2;
        }
        const char* v = argv[++i];
        if (o->str_value) {
            *o->str_value = v;
        } else {
            char* end = NULL;
            long x = strtol(v, &end, 10);
            if (*end || end == v) {
                fprintf(stderr, "%s: %s: '%s' is not a number\n", prog, a, v);
                return 2;
            }
            *o->int_value = (int)x;
        }
    }
    return 0;
}

// The options of the library benches (gemm_libs, conv_libs): --threads-max N (>= 1), --repeats R
// (1..max_repeats) and --set sd|default|all, checked. Returns as bench_parse does.
static inline int bench_parse_lib_options(int argc, char** argv, const char* prog, void (*usage)(void),
                                          int max_repeats, int* threads_max, int* repeats, const char** set) {
    const bench_opt opts[] = {{"--threads-max", threads_max, NULL, NULL},
                              {"--repeats", repeats, NULL, NULL},
                              {"--set", NULL, set, NULL}};
    int rc = bench_parse(argc, argv, prog, opts, 3, usage);
    if (rc) return rc;
    if (*threads_max < 1 || *repeats < 1 || *repeats > max_repeats ||
        (strcmp(*set, "sd") && strcmp(*set, "default") && strcmp(*set, "all"))) {
        fprintf(stderr, "%s: expected --threads-max >= 1, --repeats 1..%d, --set sd|default|all\n", prog, max_repeats);
        return 2;
    }
    return 0;
}

// Fills x (n) with uniform floats in [-1, 1) from a 64-bit LCG: the same values on every machine.
static inline void bench_fill_uniform(float* x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(seed >> 40) / (double)(1ULL << 23) - 1.0);
    }
}

// How many back-to-back calls of dt seconds each make a timing sample of at least min_s seconds.
static inline int bench_calls_for(double dt, double min_s) {
    return dt >= min_s ? 1 : (int)(min_s / (dt > 1e-7 ? dt : 1e-7)) + 1;
}

#endif
