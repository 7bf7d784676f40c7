#include "archive.h"

#include <stdlib.h>
#include <string.h>

#include "genome.h"

#define INITIAL_CAPACITY 64 // records; slots start at twice this

dato_status dato_archive_init(dato_archive* a, size_t genome_bytes, int n_obj, int n_extra, dato_error* err) {
    memset(a, 0, sizeof(*a));
    if (genome_bytes < 1 || genome_bytes > (1u << 20))
        return dato_fail(err, DATO_ERR_INVALID, "archive: genome_bytes = %zu is out of range 1..%u", genome_bytes,
                         1u << 20);
    if (n_obj < 1 || n_obj > 64)
        return dato_fail(err, DATO_ERR_INVALID, "archive: n_obj = %d is out of range 1..64", n_obj);
    if (n_extra < 0 || n_extra > 64)
        return dato_fail(err, DATO_ERR_INVALID, "archive: n_extra = %d is out of range 0..64", n_extra);
    a->genome_bytes = genome_bytes;
    a->n_obj = n_obj;
    a->n_extra = n_extra;
    return DATO_OK;
}

void dato_archive_free(dato_archive* a) {
    free(a->genomes);
    free(a->objectives);
    free(a->extras);
    free(a->generations);
    free(a->hashes);
    free(a->slots);
    size_t genome_bytes = a->genome_bytes;
    int n_obj = a->n_obj, n_extra = a->n_extra;
    memset(a, 0, sizeof(*a));
    a->genome_bytes = genome_bytes; // still usable: an insert after free starts afresh
    a->n_obj = n_obj;
    a->n_extra = n_extra;
}

// The slot holding the row of genome (hash h), or the empty slot where it would go. Linear
// probing; the table is at most half full, so an empty slot always exists.
static size_t probe(const dato_archive* a, const uint8_t* genome, uint64_t h) {
    size_t mask = a->n_slots - 1;
    for (size_t s = (size_t)h & mask;; s = (s + 1) & mask) {
        int64_t row = a->slots[s];
        if (row < 0) return s;
        if (a->hashes[row] == h && memcmp(a->genomes + (size_t)row * a->genome_bytes, genome, a->genome_bytes) == 0)
            return s;
    }
}

// Empties the slot table and enters rows 0..count-1 again.
static void refill_slots(dato_archive* a) {
    for (size_t s = 0; s < a->n_slots; s++) a->slots[s] = -1;
    for (size_t row = 0; row < a->count; row++)
        a->slots[probe(a, a->genomes + row * a->genome_bytes, a->hashes[row])] = (int64_t)row;
}

// Replaces the slot table by one of n_slots (a power of two).
static dato_status rebuild_slots(dato_archive* a, size_t n_slots, dato_error* err) {
    int64_t* slots = malloc(n_slots * sizeof(*slots));
    if (!slots) return dato_fail(err, DATO_ERR_NOMEM, "archive: cannot allocate %zu hash slots", n_slots);
    free(a->slots);
    a->slots = slots;
    a->n_slots = n_slots;
    refill_slots(a);
    return DATO_OK;
}

// realloc of *p to n elements of size bytes; *p is kept on failure.
static int grow_array(void** p, size_t n, size_t size) {
    if (size == 0) return 1;
    void* grown = realloc(*p, n * size);
    if (!grown) return 0;
    *p = grown;
    return 1;
}

// Room for one more record: the row arrays double, and the slot table doubles to stay at most
// half full.
static dato_status reserve_one(dato_archive* a, dato_error* err) {
    if (a->count + 1 > a->capacity) {
        size_t cap = a->capacity ? 2 * a->capacity : INITIAL_CAPACITY;
        if (cap > ((size_t)1 << 40) / a->genome_bytes)
            return dato_fail(err, DATO_ERR_NOMEM, "archive: %zu records of %zu bytes are too many", cap,
                             a->genome_bytes);
        int ok = grow_array((void**)&a->genomes, cap, a->genome_bytes);
        ok = ok && grow_array((void**)&a->objectives, cap, (size_t)a->n_obj * sizeof(double));
        ok = ok && grow_array((void**)&a->extras, cap, (size_t)a->n_extra * sizeof(double));
        ok = ok && grow_array((void**)&a->generations, cap, sizeof(int32_t));
        ok = ok && grow_array((void**)&a->hashes, cap, sizeof(uint64_t));
        if (!ok) return dato_fail(err, DATO_ERR_NOMEM, "archive: cannot grow to %zu records", cap);
        a->capacity = cap; // every array has room for cap rows from here on
    }
    if (2 * (a->count + 1) > a->n_slots)
        DATO_TRY(rebuild_slots(a, a->n_slots ? 2 * a->n_slots : 2 * INITIAL_CAPACITY, err));
    return DATO_OK;
}

dato_status dato_archive_insert(dato_archive* a, const uint8_t* genome, const double* objectives,
                                const double* extras, int32_t generation, int* inserted, size_t* eval_index,
                                dato_error* err) {
    if (a->n_extra > 0 && !extras)
        return dato_fail(err, DATO_ERR_INVALID, "archive insert: extras is NULL but n_extra = %d", a->n_extra);
    size_t row;
    if (dato_archive_find(a, genome, &row)) {
        if (inserted) *inserted = 0;
        if (eval_index) *eval_index = row;
        return DATO_OK;
    }
    DATO_TRY(reserve_one(a, err));
    uint64_t h = dato_genome_hash(genome, a->genome_bytes);
    row = a->count++;
    memcpy(a->genomes + row * a->genome_bytes, genome, a->genome_bytes);
    memcpy(a->objectives + row * (size_t)a->n_obj, objectives, (size_t)a->n_obj * sizeof(double));
    if (a->n_extra > 0) memcpy(a->extras + row * (size_t)a->n_extra, extras, (size_t)a->n_extra * sizeof(double));
    a->generations[row] = generation;
    a->hashes[row] = h;
    a->slots[probe(a, genome, h)] = (int64_t)row;
    if (inserted) *inserted = 1;
    if (eval_index) *eval_index = row;
    return DATO_OK;
}

dato_status dato_archive_update(dato_archive* a, size_t row, const double* objectives, const double* extras,
                                dato_error* err) {
    if (row >= a->count)
        return dato_fail(err, DATO_ERR_INVALID, "archive update: row %zu of %zu", row, a->count);
    if (a->n_extra > 0 && !extras)
        return dato_fail(err, DATO_ERR_INVALID, "archive update: extras is NULL but n_extra = %d", a->n_extra);
    memcpy(a->objectives + row * (size_t)a->n_obj, objectives, (size_t)a->n_obj * sizeof(double));
    if (a->n_extra > 0) memcpy(a->extras + row * (size_t)a->n_extra, extras, (size_t)a->n_extra * sizeof(double));
    return DATO_OK;
}

int dato_archive_find(const dato_archive* a, const uint8_t* genome, size_t* eval_index) {
    if (a->count == 0) return 0;
    int64_t row = a->slots[probe(a, genome, dato_genome_hash(genome, a->genome_bytes))];
    if (row < 0) return 0;
    if (eval_index) *eval_index = (size_t)row;
    return 1;
}

size_t dato_archive_count(const dato_archive* a) { return a->count; }

dato_archive_record dato_archive_get(const dato_archive* a, size_t i) {
    return (dato_archive_record){
        .genome = a->genomes + i * a->genome_bytes,
        .objectives = a->objectives + i * (size_t)a->n_obj,
        .extras = a->n_extra > 0 ? a->extras + i * (size_t)a->n_extra : NULL,
        .generation = a->generations[i],
        .eval_index = i,
    };
}

void dato_archive_export(const dato_archive* a, uint8_t* genomes, double* objectives, double* extras,
                         int32_t* generations) {
    if (a->count == 0) return;
    if (genomes) memcpy(genomes, a->genomes, a->count * a->genome_bytes);
    if (objectives) memcpy(objectives, a->objectives, a->count * (size_t)a->n_obj * sizeof(double));
    if (extras && a->n_extra > 0) memcpy(extras, a->extras, a->count * (size_t)a->n_extra * sizeof(double));
    if (generations) memcpy(generations, a->generations, a->count * sizeof(int32_t));
}

dato_status dato_archive_import(dato_archive* a, size_t n, const uint8_t* genomes, const double* objectives,
                                const double* extras, const int32_t* generations, dato_error* err) {
    if (a->n_extra > 0 && !extras && n > 0)
        return dato_fail(err, DATO_ERR_INVALID, "archive import: extras is NULL but n_extra = %d", a->n_extra);
    size_t count_before = a->count;
    dato_status st = DATO_OK;
    for (size_t i = 0; i < n && st == DATO_OK; i++) {
        int inserted = 0;
        size_t row = 0;
        st = dato_archive_insert(a, genomes + i * a->genome_bytes, objectives + i * (size_t)a->n_obj,
                                 a->n_extra > 0 ? extras + i * (size_t)a->n_extra : NULL, generations[i], &inserted,
                                 &row, err);
        if (st == DATO_OK && !inserted && row >= count_before)
            st = dato_fail(err, DATO_ERR_FORMAT, "archive import: row %zu repeats the genome of row %zu", i,
                           row - count_before);
        else if (st == DATO_OK && !inserted)
            st = dato_fail(err, DATO_ERR_FORMAT, "archive import: row %zu repeats the genome of archive record %zu",
                           i, row);
    }
    if (st != DATO_OK && a->count != count_before) { // drop the rows this import added
        a->count = count_before;
        refill_slots(a);
    }
    return st;
}
