// The evaluated-genome archive: insert/find past 10,000 entries (growth and rehashing),
// duplicates, insertion order, export/import round trips, and refused imports leaving the
// archive unchanged.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "test_util.h"

enum { N = 12000, BYTES = 100, N_OBJ = 2, N_EXTRA = 3 };

// Genome i: a counter in the first bytes and a fixed pattern after it, so genomes share most
// bytes (as schedules do) and differ in few.
static void make_genome(uint8_t* g, int i) {
    for (int b = 0; b < BYTES; b++) g[b] = (uint8_t)(13 - b % 7);
    g[5] = (uint8_t)(i & 255);
    g[50] = (uint8_t)((i >> 8) & 255);
}

static void record_values(int i, double* obj, double* extra) {
    obj[0] = 0.001 * i, obj[1] = 100.0 / (i + 1);
    extra[0] = i, extra[1] = -i, extra[2] = 0.5 * i;
}

static int contains(const char* msg, const char* part) { return strstr(msg, part) != NULL; }

int main(void) {
    dato_archive a;
    dato_error err = {{0}};
    CHECK(dato_archive_init(&a, 0, 2, 0, &err) != DATO_OK && contains(err.msg, "genome_bytes"), "'%s'", err.msg);
    CHECK(dato_archive_init(&a, 10, 0, 0, &err) != DATO_OK && contains(err.msg, "n_obj"), "'%s'", err.msg);
    CHECK(dato_archive_init(&a, BYTES, N_OBJ, N_EXTRA, &err) == DATO_OK, "%s", err.msg);

    uint8_t g[BYTES];
    double obj[N_OBJ], extra[N_EXTRA];
    make_genome(g, 0);
    CHECK(dato_archive_count(&a) == 0 && !dato_archive_find(&a, g, NULL), "empty archive");

    // insert N distinct genomes
    int all_new = 1, indices_ok = 1;
    for (int i = 0; i < N; i++) {
        make_genome(g, i);
        record_values(i, obj, extra);
        int inserted = 0;
        size_t row = 0;
        if (dato_archive_insert(&a, g, obj, extra, i / 100, &inserted, &row, &err) != DATO_OK) {
            CHECK(0, "insert %d: %s", i, err.msg);
            break;
        }
        all_new &= inserted == 1;
        indices_ok &= row == (size_t)i;
    }
    CHECK(all_new && indices_ok && dato_archive_count(&a) == N, "%zu records after %d distinct inserts",
          dato_archive_count(&a), N);
    CHECK(a.n_slots >= 2 * a.count, "table at most half full: %zu slots for %zu records", a.n_slots, a.count);

    // every genome is found at its row, records hold what was inserted, in insertion order
    double max_err = 0;
    int found = 1, order = 1;
    for (int i = 0; i < N; i++) {
        make_genome(g, i);
        record_values(i, obj, extra);
        size_t row = 0;
        found &= dato_archive_find(&a, g, &row) && row == (size_t)i;
        dato_archive_record r = dato_archive_get(&a, (size_t)i);
        order &= memcmp(r.genome, g, BYTES) == 0 && r.eval_index == (size_t)i && r.generation == i / 100;
        for (int o = 0; o < N_OBJ; o++) max_err = fmax(max_err, fabs(r.objectives[o] - obj[o]));
        for (int e = 0; e < N_EXTRA; e++) max_err = fmax(max_err, fabs(r.extras[e] - extra[e]));
    }
    CHECK(found && order, "find or insertion order wrong");
    CHECK(max_err == 0, "stored values differ by %g", max_err);
    make_genome(g, N); // never inserted
    CHECK(!dato_archive_find(&a, g, NULL), "found a genome never inserted");

    // duplicates: detected, the stored record untouched, the count unchanged
    int dup_ok = 1;
    for (int i = 0; i < N; i += 7) {
        make_genome(g, i);
        double other[N_OBJ] = {-1, -1}, other_extra[N_EXTRA] = {-2, -2, -2};
        int inserted = 1;
        size_t row = 0;
        dup_ok &= dato_archive_insert(&a, g, other, other_extra, 999, &inserted, &row, &err) == DATO_OK;
        dup_ok &= inserted == 0 && row == (size_t)i;
        dato_archive_record r = dato_archive_get(&a, (size_t)i);
        record_values(i, obj, extra);
        dup_ok &= r.objectives[0] == obj[0] && r.extras[2] == extra[2] && r.generation == i / 100;
    }
    CHECK(dup_ok && dato_archive_count(&a) == N, "duplicate inserts: count %zu", dato_archive_count(&a));

    // export -> import into a fresh archive -> export: identical arrays, same lookups
    uint8_t* genomes = malloc((size_t)N * BYTES);
    uint8_t* genomes2 = malloc((size_t)N * BYTES);
    double* objs = malloc((size_t)N * N_OBJ * sizeof(double));
    double* objs2 = malloc((size_t)N * N_OBJ * sizeof(double));
    double* extras = malloc((size_t)N * N_EXTRA * sizeof(double));
    double* extras2 = malloc((size_t)N * N_EXTRA * sizeof(double));
    int32_t* gens = malloc((size_t)N * sizeof(int32_t));
    int32_t* gens2 = malloc((size_t)N * sizeof(int32_t));
    if (!genomes || !genomes2 || !objs || !objs2 || !extras || !extras2 || !gens || !gens2) {
        CHECK(0, "out of memory");
        return test_summary();
    }
    dato_archive_export(&a, genomes, objs, extras, gens);
    dato_archive b;
    dato_archive_init(&b, BYTES, N_OBJ, N_EXTRA, NULL);
    CHECK(dato_archive_import(&b, N, genomes, objs, extras, gens, &err) == DATO_OK, "%s", err.msg);
    dato_archive_export(&b, genomes2, objs2, extras2, gens2);
    CHECK(dato_archive_count(&b) == N && memcmp(genomes, genomes2, (size_t)N * BYTES) == 0 &&
              memcmp(objs, objs2, (size_t)N * N_OBJ * sizeof(double)) == 0 &&
              memcmp(extras, extras2, (size_t)N * N_EXTRA * sizeof(double)) == 0 &&
              memcmp(gens, gens2, (size_t)N * sizeof(int32_t)) == 0,
          "export/import/export differs");
    int b_found = 1;
    for (int i = 0; i < N; i += 13) {
        make_genome(g, i);
        size_t row = 0;
        b_found &= dato_archive_find(&b, g, &row) && row == (size_t)i;
    }
    CHECK(b_found, "imported archive: lookups differ");

    // refused imports: a repeated row, or a genome already present; the archive is unchanged
    dato_archive c;
    dato_archive_init(&c, BYTES, N_OBJ, N_EXTRA, NULL);
    memcpy(genomes + 20 * BYTES, genomes + 3 * BYTES, BYTES); // row 20 repeats row 3
    CHECK(dato_archive_import(&c, 100, genomes, objs, extras, gens, &err) == DATO_ERR_FORMAT &&
              contains(err.msg, "row 20") && contains(err.msg, "row 3"),
          "'%s'", err.msg);
    make_genome(g, 10);
    CHECK(dato_archive_count(&c) == 0 && !dato_archive_find(&c, g, NULL), "refused import left %zu records",
          dato_archive_count(&c));
    CHECK(dato_archive_import(&c, 10, genomes, objs, extras, gens, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_archive_import(&c, 10, genomes + 5 * BYTES, objs, extras, gens, &err) == DATO_ERR_FORMAT &&
              contains(err.msg, "archive record 5"),
          "'%s'", err.msg);
    size_t row = 0;
    make_genome(g, 12);
    CHECK(dato_archive_count(&c) == 10 && !dato_archive_find(&c, g, NULL) && dato_archive_find(&c, genomes, &row) &&
              row == 0,
          "refused import changed the archive: %zu records", dato_archive_count(&c));

    // dense short keys: 2-byte genomes 0..29,999 (collisions in the low hash bits are common)
    dato_archive d;
    dato_archive_init(&d, 2, 1, 0, NULL);
    int dense_ok = 1;
    for (int i = 0; i < 30000; i++) {
        uint8_t k[2] = {(uint8_t)(i & 255), (uint8_t)(i >> 8)};
        double o = i;
        int inserted = 0;
        dense_ok &= dato_archive_insert(&d, k, &o, NULL, 0, &inserted, NULL, &err) == DATO_OK && inserted;
    }
    for (int i = 0; i < 30000; i++) {
        uint8_t k[2] = {(uint8_t)(i & 255), (uint8_t)(i >> 8)};
        size_t r = 0;
        dense_ok &= dato_archive_find(&d, k, &r) && r == (size_t)i && dato_archive_get(&d, r).objectives[0] == i;
    }
    uint8_t absent[2] = {0x30, 0x75}; // 30,000
    CHECK(dense_ok && !dato_archive_find(&d, absent, NULL) && dato_archive_count(&d) == 30000, "dense keys");

    // free leaves an empty, usable archive
    dato_archive_free(&d);
    double o = 1;
    CHECK(dato_archive_count(&d) == 0 && dato_archive_insert(&d, absent, &o, NULL, 0, NULL, NULL, &err) == DATO_OK &&
              dato_archive_count(&d) == 1,
          "insert after free: %s", err.msg);
    CHECK(dato_archive_insert(&a, g, obj, NULL, 0, NULL, NULL, &err) != DATO_OK && contains(err.msg, "extras"),
          "'%s'", err.msg);
    printf("archive: %d records, max stored-value error %g, %zu slots\n", N, max_err, a.n_slots);

    dato_archive_free(&a);
    dato_archive_free(&b);
    dato_archive_free(&c);
    dato_archive_free(&d);
    free(genomes), free(genomes2), free(objs), free(objs2), free(extras), free(extras2), free(gens), free(gens2);
    return test_summary();
}
