// Integration tests of dato-search: run a command with its output kept, look into what it said,
// and compare two runs' checkpoints bit for bit.
#ifndef DATO_SEARCH_RUNS_H
#define DATO_SEARCH_RUNS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "checkpoint.h"
#include "inception.h"
#include "test_util.h"

// Runs cmd through the shell with stdout and stderr in dir/out.txt and dir/err.txt: its exit code.
// A run that fails shows its stderr's last line (what an unexpected failure was).
static inline int search_test_run(const char* dir, const char* cmd) {
    char full[8192];
    snprintf(full, sizeof full, "%s > %s/out.txt 2> %s/err.txt", cmd, dir, dir);
    int rc = system(full);
    rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    if (rc) {
        snprintf(full, sizeof full, "echo 'exit %d:' $(tail -n 1 %s/err.txt) >&2", rc, dir);
        if (system(full)) fprintf(stderr, "exit %d\n", rc);
    }
    return rc;
}

// 1 when the file at path holds what; else, with show, prints the file.
static inline int search_test_file_has(const char* path, const char* what, int show) {
    size_t n = 0;
    char* text = (char*)read_bytes(path, &n);
    char* z = text ? realloc(text, n + 1) : NULL;
    if (!z) {
        free(text);
        return 0;
    }
    z[n] = 0;
    int found = strstr(z, what) != NULL;
    if (!found && show) fprintf(stderr, "%s was: %s\n", path, z);
    free(z);
    return found;
}

// 1 when the last run's stderr holds what; else prints that stderr.
static inline int search_test_err_has(const char* dir, const char* what) {
    char path[512];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    return search_test_file_has(path, what, 1);
}

// Writes pytorch-fid's Inception-v3 with seeded weights (dato_inception_write_seeded, seed 7) to
// path: the real file is not available to the tests. 1 on success.
static inline int search_test_seeded_inception(const char* path) {
    dato_backend be;
    dato_error err = {{0}};
    if (dato_backend_cpu_init(&be, 2, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    dato_inception net;
    dato_inception_init(&net, &be);
    dato_status st = dato_inception_write_seeded(&net, path, 7, &err);
    if (st) fprintf(stderr, "%s\n", err.msg);
    dato_inception_free(&net);
    dato_backend_destroy(&be);
    return st == DATO_OK;
}

// Population and archive of two finished runs identical: genomes, objectives, violations, extras
// (each score's fidelity too) bit for bit, RNG, generation. The final rows are not compared: which
// candidates the paired re-measure keeps is the clock's.
static inline int search_test_same_result(const char* a, const char* b) {
    dato_checkpoint x = {0}, y = {0};
    dato_error err;
    if (dato_checkpoint_read(a, &x, &err) || dato_checkpoint_read(b, &y, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        dato_checkpoint_free(&x);
        return 0;
    }
    size_t P = (size_t)x.pop;
    int ok = x.generation == y.generation && x.pop == y.pop && x.n_evaluations == y.n_evaluations &&
             !memcmp(x.pop_genomes, y.pop_genomes, P * x.genome_bytes) &&
             !memcmp(x.pop_objectives, y.pop_objectives, P * x.n_obj * sizeof(double)) &&
             !memcmp(x.rng_state, y.rng_state, sizeof x.rng_state) &&
             !memcmp(x.arch_genomes, y.arch_genomes, (size_t)x.n_evaluations * x.genome_bytes) &&
             !memcmp(x.arch_objectives, y.arch_objectives, (size_t)x.n_evaluations * x.n_obj * sizeof(double)) &&
             !memcmp(x.pop_violations, y.pop_violations, P * sizeof(double));
    // Every extra but the measured latency (column 1, wall time): KID, prediction, FID, teacher, fidelity.
    for (int64_t i = 0; ok && i < x.n_evaluations; i++)
        for (int k = 0; k < x.n_extra; k++)
            if (k != 1 && memcmp(&x.arch_extras[i * x.n_extra + k], &y.arch_extras[i * y.n_extra + k], sizeof(double)))
                ok = 0;
    printf("%s vs %s: generation %lld/%lld, %lld/%lld evaluations: %s\n", a, b, (long long)x.generation,
           (long long)y.generation, (long long)x.n_evaluations, (long long)y.n_evaluations,
           ok ? "identical" : "DIFFERENT");
    dato_checkpoint_free(&x);
    dato_checkpoint_free(&y);
    return ok;
}

// The generation a checkpoint holds, -1 when it cannot be read.
static inline int64_t search_test_generation(const char* path) {
    dato_checkpoint c = {0};
    dato_error err;
    int64_t g = dato_checkpoint_read(path, &c, &err) ? -1 : c.generation;
    dato_checkpoint_free(&c);
    return g;
}

#endif
