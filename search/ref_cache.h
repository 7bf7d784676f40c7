// The reference cache: what a search computes on an image set that does not depend on the search
// (the baseline's features, CLIP scores and grid cells, the presets' scores) kept between runs in a
// folder, one file per key. The key (search_run.c) hashes everything those results depend on: the
// model, prompts, image set, sampler, feature network, reference statistics, CLIP model, bootstrap.
//
// A file is the payload after a 512-byte seal (metrics/file_seal.h: magic, size, checksum), written
// whole to a temporary and renamed, so a reader sees a complete file or none. A file that is missing,
// damaged or of another key reads as absent: a cache never fails a run, it only saves time.
#ifndef DATO_REF_CACHE_H
#define DATO_REF_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define DATO_REF_CACHE_MAGIC "dato reference cache v2\n" // v2: the presets' probe digests

// The file of key under dir: "<dir>/refs-<16 hex digits>.bin".
dato_status dato_ref_cache_path(const char* dir, uint64_t key, char* out, size_t n, dato_error* err);
// 1 when dir holds a file for key (not read; a damaged one still reads as absent).
int dato_ref_cache_has(const char* dir, uint64_t key);
// Reads key's payload into *data (malloc'd, the caller frees) and *n; *data = NULL when the file is
// absent, damaged or another key's. Errors only when out of memory.
dato_status dato_ref_cache_get(const char* dir, uint64_t key, uint8_t** data, size_t* n, dato_error* err);
// Writes key's payload (n bytes), creating dir and its parents as needed; errors name the file.
dato_status dato_ref_cache_put(const char* dir, uint64_t key, const uint8_t* data, size_t n, dato_error* err);

#endif
