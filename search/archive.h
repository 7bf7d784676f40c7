// The archive of every genome evaluated in a search run (METHOD.md §5: nothing is evaluated
// twice). An open-addressing hash map from genome bytes to a record {objectives, extras,
// generation first evaluated, evaluation index}; records are stored in insertion order, so the
// evaluation index is the record's row, and the flat arrays export and import as they are for
// the HDF5 checkpoint. Grows as needed.
#ifndef DATO_ARCHIVE_H
#define DATO_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct {
    size_t genome_bytes; // bytes of one genome
    int n_obj;           // objectives per record
    int n_extra;         // extra values per record (e.g. KID, measured latency)
    size_t count;        // records stored
    size_t capacity;     // records the arrays below have room for
    uint8_t* genomes;    // (capacity, genome_bytes), rows 0..count-1 in insertion order
    double* objectives;  // (capacity, n_obj)
    double* extras;      // (capacity, n_extra)
    int32_t* generations; // (capacity) generation each genome was first evaluated in
    uint64_t* hashes;    // (capacity) dato_genome_hash of each row, kept for rehashing
    int64_t* slots;      // (n_slots) a row index, or -1 for an empty slot
    size_t n_slots;      // a power of two, at least twice count
} dato_archive;

// One record, as pointers into the archive (valid until the next insert or free).
typedef struct {
    const uint8_t* genome;   // (genome_bytes)
    const double* objectives; // (n_obj)
    const double* extras;    // (n_extra)
    int32_t generation;
    size_t eval_index; // its row: the order in which genomes were first evaluated
} dato_archive_record;

// genome_bytes >= 1, n_obj >= 1, n_extra >= 0.
dato_status dato_archive_init(dato_archive* a, size_t genome_bytes, int n_obj, int n_extra, dato_error* err);
void dato_archive_free(dato_archive* a);

// Adds a record unless the genome is already there. *inserted (may be NULL) is 1 for a new
// record and 0 for a duplicate, whose stored record is left untouched; *eval_index (may be NULL)
// is the row of the genome's record either way. extras may be NULL when n_extra is 0.
dato_status dato_archive_insert(dato_archive* a, const uint8_t* genome, const double* objectives,
                                const double* extras, int32_t generation, int* inserted, size_t* eval_index,
                                dato_error* err);
// Replaces row's objectives and extras (a score at a higher fidelity); its genome, generation and
// place stay. extras may be NULL when n_extra is 0.
dato_status dato_archive_update(dato_archive* a, size_t row, const double* objectives, const double* extras,
                                dato_error* err);
// 1 and *eval_index = its row if the genome is in the archive, else 0.
int dato_archive_find(const dato_archive* a, const uint8_t* genome, size_t* eval_index);
size_t dato_archive_count(const dato_archive* a);
// Row i (0 <= i < count) in insertion order: iterate with i = 0..count-1.
dato_archive_record dato_archive_get(const dato_archive* a, size_t i);

// Copies all rows into flat arrays (any may be NULL to skip it): genomes (count, genome_bytes),
// objectives (count, n_obj), extras (count, n_extra), generations (count).
void dato_archive_export(const dato_archive* a, uint8_t* genomes, double* objectives, double* extras,
                         int32_t* generations);
// Inserts n rows of flat arrays as exported, in order. A genome present twice (in the rows or
// already in the archive) is a format error naming the row; the archive is then unchanged.
// extras may be NULL when n_extra is 0.
dato_status dato_archive_import(dato_archive* a, size_t n, const uint8_t* genomes, const double* objectives,
                                const double* extras, const int32_t* generations, dato_error* err);

#endif
