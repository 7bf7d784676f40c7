// Crash-safe HDF5 checkpoints of a dato-search run. See checkpoint.h and docs/CHECKPOINT.md.
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_seal.h"
#include "genome.h"
#include "h5_util.h"
#include "isolated.h"
#include "scheduler_config.h"

// DATO_VERSION comes from the build: project(dato VERSION ...) in CMakeLists.txt.

#define MAX_STEPS 100000       // sanity bounds on a file's counts, so a damaged header cannot ask
#define MAX_POP (1 << 24)      // for absurd allocations
#define MAX_EVALUATIONS ((int64_t)1 << 32)
#define MAX_GUIDANCE 100.0 // the largest --guidance dato-search takes
#define PATH_CAP 4200
// The HDF5 user block: bytes the library skips at the start of the file, where the seal goes.
#define SEAL_BYTES DATO_SEAL_BYTES
#define SEAL_MAGIC DATO_CHECKPOINT_SEAL_MAGIC

// ---- the checksum (FNV-1a 64, file_seal.h) ------------------------------------------------------

// Values are hashed as their little-endian bytes, whatever the host, so the file's checksum is portable.
static uint64_t fnv_le(uint64_t h, uint64_t v, int n_bytes) {
    uint8_t le[8];
    for (int i = 0; i < n_bytes; i++) le[i] = (uint8_t)(v >> (8 * i));
    return dato_fnv1a64(h, le, (size_t)n_bytes);
}

static uint64_t fnv_doubles(uint64_t h, const double* x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &x[i], 8);
        h = fnv_le(h, bits, 8);
    }
    return h;
}

// The payload checksum over the arrays as a file stores them: the archive extras with n_extra
// columns and the final rows (and baseline) with n_final_cols, each array compact (row-major, no
// padding). Format 3: DATO_SEARCH_N_EXTRA and DATO_SEARCH_N_FINAL; format 2: 5 and
// DATO_SEARCH_N_FINAL_V2, which read checks before it widens the rows to this build's layout.
static uint64_t payload_checksum(const dato_checkpoint* c, int n_extra, int n_final_cols) {
    size_t pop = (size_t)c->pop, n = (size_t)c->n_evaluations, gb = (size_t)c->genome_bytes;
    uint64_t h = DATO_FNV_OFFSET;
    h = dato_fnv1a64(h, c->pop_genomes, pop * gb);
    h = fnv_doubles(h, c->pop_objectives, pop * (size_t)c->n_obj);
    h = fnv_doubles(h, c->pop_violations, pop);
    for (int i = 0; i < 4; i++) h = fnv_le(h, c->rng_state[i], 8);
    h = dato_fnv1a64(h, c->arch_genomes, n * gb);
    h = fnv_doubles(h, c->arch_objectives, n * (size_t)c->n_obj);
    h = fnv_doubles(h, c->arch_extras, n * (size_t)n_extra);
    for (size_t i = 0; i < n; i++) h = fnv_le(h, (uint32_t)c->arch_generations[i], 4);
    if (c->n_final > 0) {
        h = dato_fnv1a64(h, c->final_genomes, (size_t)c->n_final * gb);
        h = fnv_doubles(h, c->final_scores, (size_t)c->n_final * (size_t)n_final_cols);
        h = fnv_doubles(h, c->final_baseline, (size_t)n_final_cols);
    }
    return h;
}

uint64_t dato_checkpoint_checksum(const dato_checkpoint* c) {
    return payload_checksum(c, c->n_extra, DATO_SEARCH_N_FINAL);
}

// ---- the config as attributes of /config --------------------------------------------------------

// The config's fields as data: dato_search_config_fields (search/search_config.c).


// ---- HDF5 plumbing ----------------------------------------------------------------------------

// A failed write step: names the file and the step, with the OS's reason when HDF5 left one in
// errno (callers clear errno before the step).
static dato_status write_failure(dato_error* err, const char* path, const char* what, const char* name) {
    int e = errno;
    return dato_fail(err, DATO_ERR_IO, "%s: %s%s%s%s failed (%s)", path, what, name ? " '" : "", name ? name : "",
                     name ? "'" : "", e ? strerror(e) : "HDF5 error, errno not set");
}

// Creates dataset name of file type ftype and shape dims, and writes data (mem type mtype) into it.
static dato_status write_dataset(hid_t loc, const char* path, const char* name, hid_t ftype, hid_t mtype, int ndim,
                                 const hsize_t* dims, const void* data, dato_error* err) {
    errno = 0;
    hsize_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= dims[i];
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    // no modification times: the same checkpoint makes the same bytes (and the fuzz seeds are reproducible)
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = space < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0
                   ? -1
                   : H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0) H5Pclose(dcpl);
    herr_t rc = ds < 0 ? -1 : 0;
    if (rc >= 0 && numel > 0) rc = H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    if (rc < 0) return write_failure(err, path, "writing dataset", name);
    return DATO_OK;
}

// A scalar attribute of file type ftype from value (mem type mtype).
static dato_status write_attr(hid_t loc, const char* path, const char* name, hid_t ftype, hid_t mtype,
                              const void* value, dato_error* err) {
    errno = 0;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space < 0 ? -1 : H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr < 0 ? -1 : H5Awrite(attr, mtype, value);
    if (attr >= 0 && H5Aclose(attr) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    if (rc < 0) return write_failure(err, path, "writing attribute", name);
    return DATO_OK;
}

// Variable-length UTF-8, which h5py returns as str.
static dato_status write_text_attr(hid_t loc, const char* path, const char* name, const char* value,
                                   dato_error* err) {
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0 || H5Tset_size(type, H5T_VARIABLE) < 0 || H5Tset_cset(type, H5T_CSET_UTF8) < 0) {
        if (type >= 0) H5Tclose(type);
        return write_failure(err, path, "making the string type of attribute", name);
    }
    dato_status st = write_attr(loc, path, name, type, type, &value, err);
    H5Tclose(type);
    return st;
}

static dato_status write_i64_attr(hid_t loc, const char* path, const char* name, int64_t value, dato_error* err) {
    return write_attr(loc, path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, err);
}

static dato_status write_f64_attr(hid_t loc, const char* path, const char* name, double value, dato_error* err) {
    return write_attr(loc, path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, err);
}

static dato_status write_u64_attr(hid_t loc, const char* path, const char* name, uint64_t value, dato_error* err) {
    return write_attr(loc, path, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value, err);
}

// A 1-D float64 attribute (the code -> ratio table).
static dato_status write_f64_array_attr(hid_t loc, const char* path, const char* name, const double* values, int n,
                                        dato_error* err) {
    errno = 0;
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t attr = space < 0 ? -1 : H5Acreate2(loc, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr < 0 ? -1 : H5Awrite(attr, H5T_NATIVE_DOUBLE, values);
    if (attr >= 0 && H5Aclose(attr) < 0) rc = -1;
    if (space >= 0) H5Sclose(space);
    if (rc < 0) return write_failure(err, path, "writing attribute", name);
    return DATO_OK;
}

static dato_status write_config(hid_t group, const char* path, const dato_search_config* cfg, dato_error* err) {
    const char* base = (const char*)cfg;
    for (int i = 0; i < dato_search_config_n_fields; i++) {
        const dato_config_field* f = &dato_search_config_fields[i];
        const char* p = base + f->offset;
        switch (f->kind) {
        case DATO_FIELD_TEXT:
            DATO_TRY(write_text_attr(group, path, f->name, p, err));
            break;
        case DATO_FIELD_INT: {
            int v;
            memcpy(&v, p, sizeof v);
            DATO_TRY(write_i64_attr(group, path, f->name, v, err));
            break;
        }
        case DATO_FIELD_FLOAT: {
            float v;
            memcpy(&v, p, sizeof v);
            DATO_TRY(write_f64_attr(group, path, f->name, v, err));
            break;
        }
        case DATO_FIELD_U64: {
            uint64_t v;
            memcpy(&v, p, sizeof v);
            DATO_TRY(write_u64_attr(group, path, f->name, v, err));
            break;
        }
        case DATO_FIELD_ENUM: {
            int v;
            memcpy(&v, p, sizeof v);
            if (v < 0 || v >= f->n_names)
                return dato_fail(err, DATO_ERR_INVALID, "%s: config field '%s' = %d is not a known value", path,
                                 f->name, v);
            DATO_TRY(write_text_attr(group, path, f->name, f->names[v], err));
            break;
        }
        }
    }
    return DATO_OK;
}

// Splits interleaved genomes (n, T, 2) into depth (n, T) and ratio code (n, T).
static void split_genomes(const uint8_t* genomes, size_t n, size_t steps, uint8_t* depth, uint8_t* code) {
    for (size_t i = 0; i < n * steps; i++) {
        depth[i] = genomes[2 * i];
        code[i] = genomes[2 * i + 1];
    }
}

// Writes the genomes (n, 2T) of group as cache_depth and prune_ratio_code (n, T).
static dato_status write_genomes(hid_t group, const char* path, const uint8_t* genomes, size_t n, size_t steps,
                                 dato_error* err) {
    size_t numel = n * steps;
    uint8_t* depth = malloc(numel ? numel : 1);
    uint8_t* code = malloc(numel ? numel : 1);
    dato_status st = DATO_OK;
    if (!depth || !code) {
        st = dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate %zu bytes to split genomes", path, 2 * numel);
    } else {
        split_genomes(genomes, n, steps, depth, code);
        hsize_t dims[2] = {(hsize_t)n, (hsize_t)steps};
        st = write_dataset(group, path, "cache_depth", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, dims, depth, err);
        if (st == DATO_OK)
            st = write_dataset(group, path, "prune_ratio_code", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, dims, code, err);
    }
    free(depth);
    free(code);
    return st;
}

static dato_status write_table_group(hid_t file, const char* path, const char* name, const dato_checkpoint* c,
                                     const uint8_t* genomes, const double* objectives, size_t n, dato_error* err) {
    // The genome's ratio codes as the file documents them: dato_schedule_ratios as decimal float64s
    // (0.3, not (double)0.3f), so readers see the values the format has always written.
    static const double ratios[DATO_GENOME_N_RATIO_CODES] = {0, 0.3, 0.4, 0.5, 0.6, 0.7};
    errno = 0;
    hid_t group = H5Gcreate2(file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) return write_failure(err, path, "creating group", name);
    size_t steps = (size_t)c->steps;
    hsize_t obj_dims[2] = {(hsize_t)n, (hsize_t)c->n_obj};
    dato_status st = write_genomes(group, path, genomes, n, steps, err);
    if (st == DATO_OK) st = write_dataset(group, path, "objectives", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, obj_dims,
                                          objectives, err);
    // attributes on the datasets just written say what the numbers mean
    hid_t code_ds = st == DATO_OK ? H5Dopen2(group, "prune_ratio_code", H5P_DEFAULT) : -1;
    if (st == DATO_OK && code_ds < 0) st = write_failure(err, path, "opening dataset", "prune_ratio_code");
    if (st == DATO_OK) st = write_f64_array_attr(code_ds, path, "ratios", ratios, DATO_GENOME_N_RATIO_CODES, err);
    if (code_ds >= 0) H5Dclose(code_ds);
    hid_t obj_ds = st == DATO_OK ? H5Dopen2(group, "objectives", H5P_DEFAULT) : -1;
    if (st == DATO_OK && obj_ds < 0) st = write_failure(err, path, "opening dataset", "objectives");
    char names[64];
    snprintf(names, sizeof names, "latency_s_per_image,%s", dato_quality_objective_name(c->cfg.objective));
    if (st == DATO_OK) st = write_text_attr(obj_ds, path, "names", names, err);
    if (obj_ds >= 0) H5Dclose(obj_ds);
    if (H5Gclose(group) < 0 && st == DATO_OK) st = write_failure(err, path, "closing group", name);
    return st;
}

// The "names" attributes of /archive/extras and of /final/scores and /final/baseline: one per column,
// in the order of search_config.h's extras and checkpoint.h's DATO_FINAL_* (format 3).
#define EXTRA_NAMES "kid,measured_latency_s_per_image,table_latency_s_per_image,fid,teacher,images"
#define FINAL_SCORE_NAMES                                                                                  \
    "latency_s_per_image,fid,kid,teacher,fid_lo,fid_hi,teacher_lo,teacher_hi,clip,clip_lo,clip_hi,"       \
    "latency_ratio,ratio_lo,ratio_hi"
_Static_assert(DATO_SEARCH_N_EXTRA == 6 && DATO_EXTRA_IMAGES == 5 && DATO_SEARCH_N_FINAL == 14 &&
                   DATO_FINAL_RATIO_HI == 13,
               "a column was added: update EXTRA_NAMES, FINAL_SCORE_NAMES, docs/CHECKPOINT.md and the format version");

// /final: the re-scored final front (genomes as in /population, scores, the baseline's scores).
static dato_status write_final_group(hid_t file, const char* path, const dato_checkpoint* c, dato_error* err) {
    errno = 0;
    hid_t group = H5Gcreate2(file, "final", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (group < 0) return write_failure(err, path, "creating group", "final");
    hsize_t score_dims[2] = {(hsize_t)c->n_final, DATO_SEARCH_N_FINAL}, base_dims[1] = {DATO_SEARCH_N_FINAL};
    dato_status st = write_genomes(group, path, c->final_genomes, (size_t)c->n_final, (size_t)c->steps, err);
    if (st == DATO_OK) st = write_dataset(group, path, "scores", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, score_dims,
                                          c->final_scores, err);
    if (st == DATO_OK) st = write_dataset(group, path, "baseline", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, base_dims,
                                          c->final_baseline, err);
    const char* named[] = {"scores", "baseline"};
    for (int i = 0; i < 2 && st == DATO_OK; i++) {
        hid_t ds = H5Dopen2(group, named[i], H5P_DEFAULT);
        if (ds < 0) {
            st = write_failure(err, path, "opening dataset", named[i]);
            break;
        }
        st = write_text_attr(ds, path, "names", FINAL_SCORE_NAMES, err);
        H5Dclose(ds);
    }
    if (st == DATO_OK) st = write_i64_attr(group, path, "images", c->cfg.final_images, err);
    if (H5Gclose(group) < 0 && st == DATO_OK) st = write_failure(err, path, "closing group", "final");
    return st;
}

static dato_status write_contents(hid_t file, const char* path, const dato_checkpoint* c, dato_error* err) {
    size_t pop = (size_t)c->pop, n = (size_t)c->n_evaluations;
    // root attributes
    unsigned major = 0, minor = 0, release = 0;
    H5get_libversion(&major, &minor, &release);
    char hdf5_version[32];
    snprintf(hdf5_version, sizeof hdf5_version, "%u.%u.%u", major, minor, release);
    errno = 0;
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    if (root < 0) return write_failure(err, path, "opening the root group", NULL);
    dato_status st = write_text_attr(root, path, "format", DATO_CHECKPOINT_FORMAT, err);
    if (st == DATO_OK) st = write_i64_attr(root, path, "format_version", DATO_CHECKPOINT_FORMAT_VERSION, err);
    if (st == DATO_OK) st = write_i64_attr(root, path, "generation", c->generation, err);
    if (st == DATO_OK) st = write_i64_attr(root, path, "n_evaluations", c->n_evaluations, err);
    if (st == DATO_OK) st = write_text_attr(root, path, "dato_version", DATO_VERSION, err);
    if (st == DATO_OK) st = write_text_attr(root, path, "hdf5_version", hdf5_version, err);
    if (st == DATO_OK) st = write_f64_attr(root, path, "elapsed_s", c->elapsed_s, err);
    if (st == DATO_OK) st = write_u64_attr(root, path, "checksum", dato_checkpoint_checksum(c), err);
    H5Gclose(root);
    if (st != DATO_OK) return st;

    errno = 0;
    hid_t config = H5Gcreate2(file, "config", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (config < 0) return write_failure(err, path, "creating group", "config");
    st = write_config(config, path, &c->cfg, err);
    H5Gclose(config);
    if (st != DATO_OK) return st;

    DATO_TRY(write_table_group(file, path, "population", c, c->pop_genomes, c->pop_objectives, pop, err));
    hsize_t pop_dims[1] = {(hsize_t)pop};
    DATO_TRY(write_dataset(file, path, "/population/violations", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, pop_dims,
                           c->pop_violations, err));

    errno = 0;
    hid_t rng = H5Gcreate2(file, "rng", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (rng < 0) return write_failure(err, path, "creating group", "rng");
    hsize_t rng_dims[1] = {4};
    st = write_dataset(rng, path, "state", H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, rng_dims, c->rng_state, err);
    hid_t state = st == DATO_OK ? H5Dopen2(rng, "state", H5P_DEFAULT) : -1;
    if (st == DATO_OK && state < 0) st = write_failure(err, path, "opening dataset", "/rng/state");
    if (st == DATO_OK) st = write_text_attr(state, path, "algorithm", "xoshiro256**", err);
    if (state >= 0) H5Dclose(state);
    H5Gclose(rng);
    if (st != DATO_OK) return st;

    DATO_TRY(write_table_group(file, path, "archive", c, c->arch_genomes, c->arch_objectives, n, err));
    hsize_t extra_dims[2] = {(hsize_t)n, (hsize_t)c->n_extra};
    DATO_TRY(write_dataset(file, path, "/archive/extras", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, extra_dims,
                           c->arch_extras, err));
    hid_t extras = H5Dopen2(file, "/archive/extras", H5P_DEFAULT);
    if (extras < 0) return write_failure(err, path, "opening dataset", "/archive/extras");
    st = write_text_attr(extras, path, "names", EXTRA_NAMES, err);
    H5Dclose(extras);
    if (st != DATO_OK) return st;
    hsize_t gen_dims[1] = {(hsize_t)n};
    DATO_TRY(write_dataset(file, path, "/archive/generation", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, gen_dims,
                           c->arch_generations, err));
    return c->n_final > 0 ? write_final_group(file, path, c, err) : DATO_OK;
}

// Every gene of genomes (n, 2T) in range: depth 0..n_branches+1, ratio code 0..5, and step 0 full
// (depth n_branches+1), as dato_genome_check wants them (search/genome.h).
static dato_status check_genes(const uint8_t* genomes, size_t n, size_t steps, int n_branches, const char* path,
                               const char* group, dato_status status, dato_error* err) {
    for (size_t i = 0; i < n; i++) {
        if (steps > 0 && genomes[i * steps * 2] != n_branches + 1)
            return dato_fail(err, status, "%s: '/%s/cache_depth'[%zu][0] is %d, expected %d (step 0 is a full call)",
                             path, group, i, genomes[i * steps * 2], n_branches + 1);
        for (size_t k = 0; k < steps; k++) {
            int depth = genomes[(i * steps + k) * 2], code = genomes[(i * steps + k) * 2 + 1];
            if (depth > n_branches + 1)
                return dato_fail(err, status, "%s: '/%s/cache_depth'[%zu][%zu] is %d, expected 0..%d", path, group, i,
                                 k, depth, n_branches + 1);
            if (code >= DATO_GENOME_N_RATIO_CODES)
                return dato_fail(err, status, "%s: '/%s/prune_ratio_code'[%zu][%zu] is %d, expected 0..%d", path,
                                 group, i, k, code, DATO_GENOME_N_RATIO_CODES - 1);
        }
    }
    return DATO_OK;
}

// Column DATO_EXTRA_IMAGES of extras (n, DATO_SEARCH_N_EXTRA), the images each score rests on: a
// whole number in 1..INT_MAX on every row.
static dato_status check_extra_images(const double* extras, size_t n, const char* path, dato_status status,
                                      dato_error* err) {
    for (size_t r = 0; r < n; r++) {
        double v = extras[r * DATO_SEARCH_N_EXTRA + DATO_EXTRA_IMAGES];
        if (!(v >= 1 && v <= INT_MAX && v == (double)(int64_t)v))
            return dato_fail(err, status,
                             "%s: '/archive/extras'[%zu][%d] (images) is %.17g, expected a whole number >= 1", path,
                             r, DATO_EXTRA_IMAGES, v);
    }
    return DATO_OK;
}

// What a number of a checkpoint may be: finite, and where a rule says so also NaN (not computed),
// > 0 (a latency) or >= 0 (a violation).
enum { MAY_BE_NAN = 1, POSITIVE = 2, NON_NEGATIVE = 4 };
static const int OBJECTIVE_RULES[DATO_SEARCH_N_OBJ] = {POSITIVE, 0};
static const int VIOLATION_RULES[1] = {NON_NEGATIVE};
static const int EXTRA_RULES[DATO_SEARCH_N_EXTRA] = {MAY_BE_NAN, MAY_BE_NAN | POSITIVE, MAY_BE_NAN | POSITIVE,
                                                     MAY_BE_NAN, MAY_BE_NAN, POSITIVE};
static const int FINAL_RULES[DATO_SEARCH_N_FINAL] = {POSITIVE,   MAY_BE_NAN, MAY_BE_NAN, MAY_BE_NAN, MAY_BE_NAN,
                                                     MAY_BE_NAN, MAY_BE_NAN, MAY_BE_NAN, MAY_BE_NAN, MAY_BE_NAN,
                                                     MAY_BE_NAN, MAY_BE_NAN, MAY_BE_NAN, MAY_BE_NAN};

// Column k of a comma-separated names list into out[cap] ("" past its end).
static void column_name(const char* names, int k, char* out, size_t cap) {
    for (; k > 0 && names; k--) names = strchr(names, ',') ? strchr(names, ',') + 1 : NULL;
    size_t n = names ? strcspn(names, ",") : 0;
    snprintf(out, cap, "%.*s", (int)n, names ? names : "");
}

// Every value of a (rows, cols) against rules[cols]; messages name dataset name, the cell and its column.
static dato_status check_numbers(const double* a, size_t rows, int cols, const int* rules, const char* names,
                                 const char* path, const char* name, dato_status status, dato_error* err) {
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            double v = a[r * (size_t)cols + (size_t)k];
            int rule = rules[k];
            if ((isnan(v) && (rule & MAY_BE_NAN)) ||
                (isfinite(v) && !((rule & POSITIVE) && v <= 0) && !((rule & NON_NEGATIVE) && v < 0)))
                continue;
            char column[64];
            column_name(names, k, column, sizeof column);
            return dato_fail(err, status, "%s: '%s'[%zu][%d] (%s) is %.17g, expected %sa finite number%s", path, name,
                             r, k, column, v, rule & MAY_BE_NAN ? "NaN or " : "",
                             rule & POSITIVE ? " > 0" : rule & NON_NEGATIVE ? " >= 0" : "");
        }
    return DATO_OK;
}

// What a resume relies on, checked when a checkpoint is written and again when it is read: the
// config's text NUL-terminated and its enums known, counts that agree with the config, every genome
// in range with step 0 full, a known sampler, a guidance in 0..MAX_GUIDANCE, and every number finite
// (NaN only where the format means "not computed"), latencies > 0. Messages name the file, the field
// and the value expected.
static dato_status check_checkpoint(const dato_checkpoint* c, const char* path, dato_status status, dato_error* err) {
    const dato_search_config* cfg = &c->cfg;
    for (int i = 0; i < dato_search_config_n_fields; i++) { // first: the checks below read text and enums
        const dato_config_field* f = &dato_search_config_fields[i];
        const char* p = (const char*)cfg + f->offset;
        if (f->kind == DATO_FIELD_TEXT && !memchr(p, 0, f->size))
            return dato_fail(err, status, "%s: config field '%s' is not NUL-terminated within %zu bytes", path,
                             f->name, f->size);
        int v;
        if (f->kind == DATO_FIELD_ENUM && (memcpy(&v, p, sizeof v), v < 0 || v >= f->n_names))
            return dato_fail(err, status, "%s: config field '%s' is %d, expected 0..%d", path, f->name, v,
                             f->n_names - 1);
    }
    if (c->n_final < 0 || c->n_final > DATO_CHECKPOINT_MAX_FINAL || (c->n_final > 0 && (!c->final_genomes || !c->final_scores)))
        return dato_fail(err, status, "%s: n_final %d must be 0..%d, with its arrays", path, c->n_final,
                         DATO_CHECKPOINT_MAX_FINAL);
    if (c->pop < 1 || c->pop > MAX_POP || c->pop != cfg->pop)
        return dato_fail(err, status, "%s: pop %d must be 1..%d and equal config 'pop' %d", path, c->pop, MAX_POP,
                         cfg->pop);
    dato_genome_space space; // steps 1..DATO_SCHEDULE_MAX_STEPS and n_branches 1..254, as the genome wants them
    dato_error inner;
    if (dato_genome_space_init(&space, c->steps, cfg->n_branches, &inner))
        return dato_fail(err, status, "%s: config 'steps' %d or 'n_branches' %d: %s", path, c->steps, cfg->n_branches,
                         inner.msg);
    if (c->steps != cfg->steps || c->genome_bytes != 2 * c->steps)
        return dato_fail(err, status, "%s: steps %d must equal config 'steps' %d, and genome_bytes %d be 2 steps", path,
                         c->steps, cfg->steps, c->genome_bytes);
    if (c->n_obj != DATO_SEARCH_N_OBJ || c->n_extra != DATO_SEARCH_N_EXTRA)
        return dato_fail(err, status, "%s: n_obj %d and n_extra %d must be %d and %d", path, c->n_obj, c->n_extra,
                         DATO_SEARCH_N_OBJ, DATO_SEARCH_N_EXTRA);
    if (c->generation < 0 || c->n_evaluations < 0 || c->n_evaluations > MAX_EVALUATIONS)
        return dato_fail(err, status, "%s: generation %lld and n_evaluations %lld must be >= 0 (and <= %lld)", path,
                         (long long)c->generation, (long long)c->n_evaluations, (long long)MAX_EVALUATIONS);
    if (!c->pop_genomes || !c->pop_objectives || !c->pop_violations ||
        (c->n_evaluations > 0 && (!c->arch_genomes || !c->arch_objectives || !c->arch_extras || !c->arch_generations)))
        return dato_fail(err, status, "%s: an array of the checkpoint is NULL", path);
    dato_sampler_kind kind; // "bogus" must not quietly become the model's sampler on resume
    if (dato_sampler_kind_parse(cfg->sampler, &kind, &inner))
        return dato_fail(err, status, "%s: config 'sampler': %s", path, inner.msg);
    if (!(isfinite(cfg->guidance) && cfg->guidance >= 0 && cfg->guidance <= MAX_GUIDANCE))
        return dato_fail(err, status, "%s: config 'guidance' is %g, expected a finite number in 0..%g", path,
                         (double)cfg->guidance, MAX_GUIDANCE);
    if (!(isfinite(c->elapsed_s) && c->elapsed_s >= 0))
        return dato_fail(err, status, "%s: attribute 'elapsed_s' is %g, expected a finite number >= 0", path,
                         c->elapsed_s);

    size_t pop = (size_t)c->pop, n = (size_t)c->n_evaluations, steps = (size_t)c->steps, nf = (size_t)c->n_final;
    char objective_names[64];
    snprintf(objective_names, sizeof objective_names, "latency_s_per_image,%s",
             dato_quality_objective_name(cfg->objective));
    DATO_TRY(check_genes(c->pop_genomes, pop, steps, cfg->n_branches, path, "population", status, err));
    DATO_TRY(check_genes(c->arch_genomes, n, steps, cfg->n_branches, path, "archive", status, err));
    DATO_TRY(check_genes(c->final_genomes, nf, steps, cfg->n_branches, path, "final", status, err));
    DATO_TRY(check_numbers(c->pop_objectives, pop, DATO_SEARCH_N_OBJ, OBJECTIVE_RULES, objective_names, path,
                           "/population/objectives", status, err));
    DATO_TRY(check_numbers(c->pop_violations, pop, 1, VIOLATION_RULES, "violation", path, "/population/violations",
                           status, err));
    DATO_TRY(check_numbers(c->arch_objectives, n, DATO_SEARCH_N_OBJ, OBJECTIVE_RULES, objective_names, path,
                           "/archive/objectives", status, err));
    DATO_TRY(check_extra_images(c->arch_extras, n, path, status, err));
    DATO_TRY(check_numbers(c->arch_extras, n, DATO_SEARCH_N_EXTRA, EXTRA_RULES, EXTRA_NAMES, path, "/archive/extras",
                           status, err));
    if (nf == 0) return DATO_OK;
    DATO_TRY(check_numbers(c->final_scores, nf, DATO_SEARCH_N_FINAL, FINAL_RULES, FINAL_SCORE_NAMES, path,
                           "/final/scores", status, err));
    return check_numbers(c->final_baseline, 1, DATO_SEARCH_N_FINAL, FINAL_RULES, FINAL_SCORE_NAMES, path,
                         "/final/baseline", status, err);
}

// ---- the seal: a whole-file checksum in the user block --------------------------------------------
// HDF5 1.10 trusts its metadata: a flipped bit in a heap or an object header can make it read out of
// bounds or double-free. The seal (file_seal.h: size and FNV-1a 64 of every byte after the user block) is checked
// before HDF5 parses anything, so HDF5 only ever sees files exactly as dato_checkpoint_write left them.

dato_status dato_checkpoint_seal(const char* path, dato_error* err) { return dato_seal_file(path, SEAL_MAGIC, err); }

// Checks the seal of a checkpoint file's bytes: DATO_ERR_FORMAT, naming path, if damaged or absent.
static dato_status check_seal(const uint8_t* image, size_t size, const char* path, dato_error* err) {
    dato_seal_state seal;
    DATO_TRY(dato_seal_check_image(image, size, path, SEAL_MAGIC, &seal, err));
    if (seal == DATO_SEAL_INTACT) return DATO_OK;
    return dato_fail(err, DATO_ERR_FORMAT, "%s: not a dato-search checkpoint (no seal block%s)", path,
                     seal == DATO_SEAL_NONE_HDF5 ? "; an HDF5 file of another kind" : "; not an HDF5 file");
}

// open, fsync, close of a directory: makes a rename in it durable.
static dato_status fsync_directory(const char* dir, dato_error* err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot open the directory to fsync (%s)", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) return dato_fail(err, DATO_ERR_IO, "%s: fsync of the directory failed (%s)", dir, strerror(e));
    return DATO_OK;
}

// The directory part of path ("." if none) into dir[cap].
static void directory_of(const char* path, char* dir, size_t cap) {
    const char* slash = strrchr(path, '/');
    if (!slash) snprintf(dir, cap, ".");
    else if (slash == path) snprintf(dir, cap, "/");
    else snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

// Builds the whole checkpoint file in memory (HDF5's core driver, no backing store) and returns
// its image, sealed, in *image (malloc'd) of *size bytes. HDF5 never touches the disk: a full disk
// or an I/O error shows up in our own write() with its errno, and cannot leave HDF5 holding a
// half-closed file (HDF5 1.10 crashes at exit after an H5Fclose that failed on ENOSPC).
static dato_status build_image(const char* path, const dato_checkpoint* c, uint8_t** image, size_t* size,
                               dato_error* err) {
    *image = NULL;
    dato_h5_quiet quiet = dato_h5_silence();
    dato_status st = DATO_OK;
    errno = 0;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    // EARLIEST: the oldest object formats that hold the data, so HDF5 1.8 readers open the file
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_LATEST) < 0)
        st = write_failure(err, path, "setting the file access properties", NULL);
    hid_t fcpl = st == DATO_OK ? H5Pcreate(H5P_FILE_CREATE) : -1;
    if (st == DATO_OK && (fcpl < 0 || H5Pset_userblock(fcpl, SEAL_BYTES) < 0))
        st = write_failure(err, path, "setting the user block for the seal", NULL);
    hid_t file = st == DATO_OK ? H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl) : -1;
    if (st == DATO_OK && file < 0) st = write_failure(err, path, "creating the HDF5 file in memory", NULL);
    if (fapl >= 0) H5Pclose(fapl);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (st == DATO_OK) st = write_contents(file, path, c, err);
    if (st == DATO_OK && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) st = write_failure(err, path, "H5Fflush", NULL);
    // the image starts at the superblock: the user block is left out, and prepended here
    ssize_t n = st == DATO_OK ? H5Fget_file_image(file, NULL, 0) : -1;
    if (st == DATO_OK && n <= 0) st = write_failure(err, path, "H5Fget_file_image (size)", NULL);
    if (st == DATO_OK && !(*image = malloc(SEAL_BYTES + (size_t)n)))
        st = dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate the %zd-byte file image", path, n);
    if (st == DATO_OK && H5Fget_file_image(file, *image + SEAL_BYTES, (size_t)n) != n)
        st = write_failure(err, path, "H5Fget_file_image", NULL);
    if (file >= 0 && H5Fclose(file) < 0 && st == DATO_OK) st = write_failure(err, path, "H5Fclose", NULL);
    dato_h5_restore(quiet);
    if (st != DATO_OK) {
        free(*image);
        *image = NULL;
        return st;
    }
    *size = SEAL_BYTES + (size_t)n;
    dato_seal_image(*image, *size, SEAL_MAGIC);
    return DATO_OK;
}

// Writes size bytes to a new file at tmp and fsyncs it; the message names tmp and the errno.
static dato_status write_file(const char* tmp, const uint8_t* bytes, size_t size, dato_error* err) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot create (%s)", tmp, strerror(errno));
    dato_status st = DATO_OK;
    for (size_t done = 0; done < size && st == DATO_OK;) {
        ssize_t wrote = write(fd, bytes + done, size - done);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0)
            st = dato_fail(err, DATO_ERR_IO, "%s: write failed after %zu of %zu bytes (%s)", tmp, done, size,
                           wrote < 0 ? strerror(errno) : "no progress");
        else
            done += (size_t)wrote;
    }
    // the fsync of the recipe: the bytes reach the disk before the rename makes them the checkpoint
    if (st == DATO_OK && fsync(fd) != 0) st = dato_fail(err, DATO_ERR_IO, "%s: fsync failed (%s)", tmp, strerror(errno));
    if (close(fd) != 0 && st == DATO_OK) st = dato_fail(err, DATO_ERR_IO, "%s: close failed (%s)", tmp, strerror(errno));
    return st;
}

dato_status dato_checkpoint_write(const char* path, const dato_checkpoint* c, dato_error* err) {
    DATO_TRY(check_checkpoint(c, path, DATO_ERR_INVALID, err));
    char tmp[PATH_CAP];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return dato_fail(err, DATO_ERR_INVALID, "%s: path too long", path);
    uint8_t* image = NULL;
    size_t size = 0;
    DATO_TRY(build_image(path, c, &image, &size, err));
    dato_status st = write_file(tmp, image, size, err);
    free(image);
    if (st == DATO_OK && rename(tmp, path) != 0)
        st = dato_fail(err, DATO_ERR_IO, "%s: cannot rename %s over it (%s)", path, tmp, strerror(errno));
    if (st != DATO_OK) {
        remove(tmp);
        return st;
    }
    // the rename itself is durable only once the directory entry is on disk
    char dir[PATH_CAP];
    directory_of(path, dir, sizeof dir);
    st = fsync_directory(dir, err);
    if (st != DATO_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return dato_fail(err, DATO_ERR_IO, "%s: written, but the rename may not survive a power loss: %s", path, msg);
    }
    return DATO_OK;
}

// ---- reading ------------------------------------------------------------------------------------

// A string attribute, variable-length (as written) or fixed-length, into out[cap].
static dato_status read_text_attr(hid_t loc, const char* path, const char* where, const char* name, char* out,
                                  size_t cap, dato_error* err) {
    hid_t attr = dato_h5_open_attr(loc, path, where, name, H5T_STRING, err);
    if (attr < 0) return DATO_ERR_FORMAT;
    hid_t type = H5Aget_type(attr);
    H5T_cset_t cset = type < 0 ? H5T_CSET_ERROR : H5Tget_cset(type);
    dato_status st = DATO_OK;
    if (cset != H5T_CSET_ASCII && cset != H5T_CSET_UTF8) {
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s%s' is not an ASCII or UTF-8 string", path, where, name);
    } else if (H5Tis_variable_str(type) > 0) {
        hid_t mem = H5Tcopy(H5T_C_S1);
        char* value = NULL;
        // HDF5 converts no character set into another: read in the file's (ASCII or UTF-8)
        if (mem < 0 || H5Tset_size(mem, H5T_VARIABLE) < 0 || H5Tset_cset(mem, cset) < 0 ||
            H5Aread(attr, mem, &value) < 0 || !value)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: cannot read attribute '%s%s'", path, where, name);
        else if (strlen(value) >= cap)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s%s' is longer than %zu bytes", path, where, name,
                           cap - 1);
        else
            memcpy(out, value, strlen(value) + 1);
        if (value) H5free_memory(value);
        if (mem >= 0) H5Tclose(mem);
    } else {
        size_t size = H5Tget_size(type);
        if (size == 0 || size >= cap) {
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s%s' has %zu bytes, at most %zu allowed", path,
                           where, name, size, cap - 1);
        } else {
            memset(out, 0, cap);
            if (H5Aread(attr, type, out) < 0)
                st = dato_fail(err, DATO_ERR_FORMAT, "%s: cannot read attribute '%s%s'", path, where, name);
            out[size] = 0;
        }
    }
    if (type >= 0) H5Tclose(type);
    H5Aclose(attr);
    return st;
}

// A numeric attribute of class cls, converted to mem_type into out: an integer of 1 to 8 bytes or a
// float of 4 or 8 (HDF5 would convert other sizes too, through code paths no checkpoint needs).
static dato_status read_number_attr(hid_t loc, const char* path, const char* where, const char* name,
                                    H5T_class_t cls, hid_t mem_type, void* out, dato_error* err) {
    hid_t attr = dato_h5_open_attr(loc, path, where, name, cls, err);
    if (attr < 0) return DATO_ERR_FORMAT;
    hid_t type = H5Aget_type(attr);
    size_t size = type < 0 ? 0 : H5Tget_size(type);
    int size_ok = cls == H5T_INTEGER ? (size == 1 || size == 2 || size == 4 || size == 8) : (size == 4 || size == 8);
    herr_t rc = size_ok ? H5Aread(attr, mem_type, out) : -1;
    if (type >= 0) H5Tclose(type);
    H5Aclose(attr);
    if (!size_ok)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s%s' is a %zu-byte %s, expected %s", path, where, name,
                         size, cls == H5T_INTEGER ? "integer" : "float",
                         cls == H5T_INTEGER ? "1, 2, 4 or 8 bytes" : "4 or 8 bytes");
    if (rc < 0) return dato_fail(err, DATO_ERR_FORMAT, "%s: cannot read attribute '%s%s'", path, where, name);
    return DATO_OK;
}

static dato_status read_i64_attr(hid_t loc, const char* path, const char* where, const char* name, int64_t* out,
                                  dato_error* err) {
    return read_number_attr(loc, path, where, name, H5T_INTEGER, H5T_NATIVE_INT64, out, err);
}

// An enum stored as one of names[n]; *out gets its index.
static dato_status read_enum_attr(hid_t loc, const char* path, const char* name, const char* const* names, int n,
                                  int* out, dato_error* err) {
    char text[32];
    DATO_TRY(read_text_attr(loc, path, "/config/", name, text, sizeof text, err));
    for (int i = 0; i < n; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return DATO_OK;
        }
    char expected[256] = "";
    for (int i = 0, m = 0; i < n && m < (int)sizeof expected; i++)
        m += snprintf(expected + m, sizeof expected - m, "%s'%s'", i ? (i + 1 < n ? ", " : " or ") : "", names[i]);
    return dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '/config/%s' is '%s', expected %s", path, name, text, expected);
}

static dato_status read_config(hid_t group, const char* path, dato_search_config* cfg, dato_error* err) {
    char* base = (char*)cfg;
    for (int i = 0; i < dato_search_config_n_fields; i++) {
        const dato_config_field* f = &dato_search_config_fields[i];
        char* p = base + f->offset;
        if (f->optional && H5Aexists(group, f->name) == 0) { // written before the field existed
            memset(p, 0, f->kind == DATO_FIELD_TEXT ? f->size : f->kind == DATO_FIELD_U64 ? 8 : 4);
            continue;
        }
        switch (f->kind) {
        case DATO_FIELD_TEXT:
            DATO_TRY(read_text_attr(group, path, "/config/", f->name, p, f->size, err));
            break;
        case DATO_FIELD_INT: {
            int64_t v;
            DATO_TRY(read_i64_attr(group, path, "/config/", f->name, &v, err));
            if (v < INT_MIN || v > INT_MAX)
                return dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '/config/%s' is %lld, outside int", path,
                                 f->name, (long long)v);
            int iv = (int)v;
            memcpy(p, &iv, sizeof iv);
            break;
        }
        case DATO_FIELD_FLOAT: {
            double v;
            DATO_TRY(read_number_attr(group, path, "/config/", f->name, H5T_FLOAT, H5T_NATIVE_DOUBLE, &v, err));
            if (fabs(v) > FLT_MAX && !isinf(v)) // the conversion of a finite double beyond float is undefined
                return dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '/config/%s' is %g, outside float", path,
                                 f->name, v);
            float fv = (float)v;
            memcpy(p, &fv, sizeof fv);
            break;
        }
        case DATO_FIELD_U64: {
            uint64_t v;
            DATO_TRY(read_number_attr(group, path, "/config/", f->name, H5T_INTEGER, H5T_NATIVE_UINT64, &v, err));
            memcpy(p, &v, sizeof v);
            break;
        }
        case DATO_FIELD_ENUM: {
            int index = 0;
            DATO_TRY(read_enum_attr(group, path, f->name, f->names, f->n_names, &index, err));
            memcpy(p, &index, sizeof index);
            break;
        }
        }
    }
    return DATO_OK;
}

// Reads dataset name, which must have class cls, element size elem_size (and, for integers, the
// signedness is_signed) and exactly the shape dims[ndim], into out (mem type mem_type).
static dato_status read_dataset(hid_t file, const char* path, const char* name, H5T_class_t cls, size_t elem_size,
                                int is_signed, int ndim, const hsize_t* dims, hid_t mem_type, void* out,
                                dato_error* err) {
    // H5Lexists fails, rather than answering 0, when a parent group is missing
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: dataset '%s' is missing", path, name);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    if (ds < 0) return dato_fail(err, DATO_ERR_FORMAT, "%s: '%s' is not a readable dataset", path, name);
    hid_t type = H5Dget_type(ds);
    hid_t space = H5Dget_space(ds);
    int type_ok = type >= 0 && H5Tget_class(type) == cls && H5Tget_size(type) == elem_size &&
                  (cls != H5T_INTEGER || (H5Tget_sign(type) == H5T_SGN_2) == is_signed);
    hsize_t got[2] = {0, 0};
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank == ndim) H5Sget_simple_extent_dims(space, got, NULL);
    int shape_ok = rank == ndim;
    hsize_t numel = 1;
    for (int i = 0; i < ndim && shape_ok; i++) {
        shape_ok = got[i] == dims[i];
        numel *= dims[i];
    }
    const char* type_name = cls == H5T_FLOAT ? "float" : is_signed ? "int" : "uint";
    // the bytes the file stores for it must be those its shape needs (written contiguous, unfiltered)
    hsize_t stored = type_ok && shape_ok ? H5Dget_storage_size(ds) : 0;
    dato_status st = DATO_OK;
    if (!type_ok)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: dataset '%s' is not %s%zu", path, name, type_name, 8 * elem_size);
    else if (!shape_ok)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: dataset '%s' has %d dims (%llu, %llu), expected (%llu, %llu)", path,
                       name, rank, (unsigned long long)got[0], (unsigned long long)got[1],
                       (unsigned long long)dims[0], (unsigned long long)(ndim > 1 ? dims[1] : 0));
    else if (numel > 0 && stored != numel * elem_size)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: dataset '%s' stores %llu bytes, its shape needs %llu", path, name,
                       (unsigned long long)stored, (unsigned long long)(numel * elem_size));
    else if (numel > 0 && H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: cannot read dataset '%s' (damaged or truncated)", path, name);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    return st;
}

// Reads /<group>/cache_depth and prune_ratio_code (n, T) and interleaves them into genomes (n, 2T).
static dato_status read_genomes(hid_t file, const char* path, const char* group, size_t n, size_t steps,
                                uint8_t* genomes, dato_error* err) {
    size_t numel = n * steps;
    uint8_t* depth = malloc(numel ? numel : 1);
    uint8_t* code = malloc(numel ? numel : 1);
    if (!depth || !code) {
        free(depth);
        free(code);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate %zu bytes for the '/%s' genomes", path, 2 * numel,
                         group);
    }
    char depth_name[64], code_name[64];
    snprintf(depth_name, sizeof depth_name, "/%s/cache_depth", group);
    snprintf(code_name, sizeof code_name, "/%s/prune_ratio_code", group);
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)steps};
    dato_status st = read_dataset(file, path, depth_name, H5T_INTEGER, 1, 0, 2, dims, H5T_NATIVE_UINT8, depth, err);
    if (st == DATO_OK)
        st = read_dataset(file, path, code_name, H5T_INTEGER, 1, 0, 2, dims, H5T_NATIVE_UINT8, code, err);
    if (st == DATO_OK)
        for (size_t i = 0; i < numel; i++) {
            genomes[2 * i] = depth[i];
            genomes[2 * i + 1] = code[i];
        }
    free(depth);
    free(code);
    return st;
}

// The root attributes; *version gets format_version, 2 or 3 (older is refused as DATO_ERR_FORMAT,
// newer as DATO_ERR_UNSUPPORTED).
static dato_status read_root(hid_t file, const char* path, dato_checkpoint* c, uint64_t* checksum, int* version_out,
                             dato_error* err) {
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    if (root < 0) return dato_fail(err, DATO_ERR_FORMAT, "%s: cannot open the root group", path);
    char format[64];
    int64_t version = 0;
    dato_status st = read_text_attr(root, path, "", "format", format, sizeof format, err);
    if (st == DATO_OK && strcmp(format, DATO_CHECKPOINT_FORMAT) != 0)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: attribute 'format' is '%s', expected '%s'", path, format,
                       DATO_CHECKPOINT_FORMAT);
    if (st == DATO_OK) st = read_i64_attr(root, path, "", "format_version", &version, err);
    if (st == DATO_OK && (version < 2 || version > DATO_CHECKPOINT_FORMAT_VERSION))
        st = dato_fail(err, version > DATO_CHECKPOINT_FORMAT_VERSION ? DATO_ERR_UNSUPPORTED : DATO_ERR_FORMAT,
                       "%s: format_version %lld, this build reads versions 2 to %d", path, (long long)version,
                       DATO_CHECKPOINT_FORMAT_VERSION);
    *version_out = (int)version;
    if (st == DATO_OK) st = read_i64_attr(root, path, "", "generation", &c->generation, err);
    if (st == DATO_OK) st = read_i64_attr(root, path, "", "n_evaluations", &c->n_evaluations, err);
    if (st == DATO_OK && (c->generation < 0 || c->n_evaluations < 0 || c->n_evaluations > MAX_EVALUATIONS))
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: generation %lld or n_evaluations %lld out of range", path,
                       (long long)c->generation, (long long)c->n_evaluations);
    if (st == DATO_OK)
        st = read_text_attr(root, path, "", "dato_version", c->dato_version, sizeof c->dato_version, err);
    if (st == DATO_OK)
        st = read_text_attr(root, path, "", "hdf5_version", c->hdf5_version, sizeof c->hdf5_version, err);
    if (st == DATO_OK)
        st = read_number_attr(root, path, "", "elapsed_s", H5T_FLOAT, H5T_NATIVE_DOUBLE, &c->elapsed_s, err);
    if (st == DATO_OK)
        st = read_number_attr(root, path, "", "checksum", H5T_INTEGER, H5T_NATIVE_UINT64, checksum, err);
    H5Gclose(root);
    return st;
}

// malloc of n elements of size bytes, overflow-checked; at least 1 byte so n = 0 is not NULL.
static void* alloc_array(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return malloc(n * size > 0 ? n * size : 1);
}

// The arrays of c for its counts (pop, n_evaluations, n_final, genome_bytes); final_scores has
// DATO_SEARCH_N_FINAL columns whatever the file's format. Free with dato_checkpoint_free.
static dato_status alloc_arrays(dato_checkpoint* c, const char* path, dato_error* err) {
    size_t pop = (size_t)c->pop, n = (size_t)c->n_evaluations, gb = (size_t)c->genome_bytes, nf = (size_t)c->n_final;
    c->pop_genomes = alloc_array(pop, gb);
    c->pop_objectives = alloc_array(pop, DATO_SEARCH_N_OBJ * sizeof(double));
    c->pop_violations = alloc_array(pop, sizeof(double));
    c->arch_genomes = alloc_array(n, gb);
    c->arch_objectives = alloc_array(n, DATO_SEARCH_N_OBJ * sizeof(double));
    c->arch_extras = alloc_array(n, DATO_SEARCH_N_EXTRA * sizeof(double));
    c->arch_generations = alloc_array(n, sizeof(int32_t));
    c->final_genomes = nf ? alloc_array(nf, gb) : NULL;
    c->final_scores = nf ? alloc_array(nf, DATO_SEARCH_N_FINAL * sizeof(double)) : NULL;
    if (!c->pop_genomes || !c->pop_objectives || !c->pop_violations || !c->arch_genomes || !c->arch_objectives ||
        !c->arch_extras || !c->arch_generations || (nf && (!c->final_genomes || !c->final_scores)))
        return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate the arrays of %zu evaluations", path, n);
    return DATO_OK;
}

// Sets the array pointers of c to NULL, freeing nothing.
static void forget_arrays(dato_checkpoint* c) {
    c->pop_genomes = c->arch_genomes = c->final_genomes = NULL;
    c->pop_objectives = c->pop_violations = c->arch_objectives = c->arch_extras = c->final_scores = NULL;
    c->arch_generations = NULL;
}

// The code -> ratio table that /<group>/prune_ratio_code carries must be dato_schedule_ratios
// (within 1e-6: the file holds decimal float64s), or the file's codes mean other ratios than this build's.
static dato_status check_ratio_table(hid_t file, const char* path, const char* group, dato_error* err) {
    char name[64];
    snprintf(name, sizeof name, "/%s/prune_ratio_code", group);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t attr = ds >= 0 && H5Aexists(ds, "ratios") > 0 ? H5Aopen(ds, "ratios", H5P_DEFAULT) : -1;
    hid_t type = attr >= 0 ? H5Aget_type(attr) : -1;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : -1;
    double ratios[DATO_SCHEDULE_N_RATIOS];
    int ok = type >= 0 && space >= 0 && H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 8 &&
             H5Sget_simple_extent_ndims(space) == 1 && H5Sget_simple_extent_npoints(space) == DATO_SCHEDULE_N_RATIOS &&
             H5Aread(attr, H5T_NATIVE_DOUBLE, ratios) >= 0;
    for (int k = 0; k < DATO_SCHEDULE_N_RATIOS && ok; k++) ok = fabs(ratios[k] - dato_schedule_ratios[k]) <= 1e-6;
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
    if (ds >= 0) H5Dclose(ds);
    if (ok) return DATO_OK;
    char expected[128] = "";
    for (int k = 0, m = 0; k < DATO_SCHEDULE_N_RATIOS && m < (int)sizeof expected; k++)
        m += snprintf(expected + m, sizeof expected - m, "%s%g", k ? ", " : "", (double)dato_schedule_ratios[k]);
    return dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s/ratios' must be the %d float64 ratios %s", path, name,
                     DATO_SCHEDULE_N_RATIOS, expected);
}

// /final, present once the run has finished: its rows count from the scores' first dim. The file's
// rows have cols columns (DATO_SEARCH_N_FINAL, or DATO_SEARCH_N_FINAL_V2 in format 2), read compact
// into the first cols x n_final values of final_scores (allocated for DATO_SEARCH_N_FINAL) and the
// first cols of final_baseline; read_contents widens a format 2 file's rows after the checksum.
static dato_status read_final_group(hid_t file, const char* path, dato_checkpoint* c, int cols, dato_error* err) {
    hid_t ds = H5Dopen2(file, "/final/scores", H5P_DEFAULT);
    if (ds < 0) return dato_fail(err, DATO_ERR_FORMAT, "%s: dataset '/final/scores' is missing", path);
    hid_t space = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    int nd = space >= 0 ? H5Sget_simple_extent_dims(space, dims, NULL) : -1;
    if (space >= 0) H5Sclose(space);
    H5Dclose(ds);
    if (nd != 2 || dims[0] < 1 || dims[0] > DATO_CHECKPOINT_MAX_FINAL || dims[1] != (hsize_t)cols)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: '/final/scores' must be (1..%d, %d)", path,
                         DATO_CHECKPOINT_MAX_FINAL, cols);
    c->n_final = (int)dims[0];
    size_t nf = (size_t)c->n_final;
    c->final_genomes = alloc_array(nf, (size_t)c->genome_bytes);
    c->final_scores = alloc_array(nf, DATO_SEARCH_N_FINAL * sizeof(double));
    if (!c->final_genomes || !c->final_scores)
        return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate the final front", path);
    hsize_t base_dims[1] = {(hsize_t)cols};
    DATO_TRY(read_genomes(file, path, "final", nf, (size_t)c->steps, c->final_genomes, err));
    DATO_TRY(read_dataset(file, path, "/final/scores", H5T_FLOAT, 8, 0, 2, dims, H5T_NATIVE_DOUBLE, c->final_scores,
                          err));
    return read_dataset(file, path, "/final/baseline", H5T_FLOAT, 8, 0, 1, base_dims, H5T_NATIVE_DOUBLE,
                        c->final_baseline, err);
}

// Widens rows (rows, from) stored compact at the start of a (its buffer holding rows x to values) to
// (rows, to) in place, filling columns from..to-1 with fill. Last row first: row r's new place,
// from r x to, never overlaps a row below r that is still to move.
static void widen_rows(double* a, size_t rows, int from, int to, double fill) {
    for (size_t r = rows; r-- > 0;) {
        memmove(a + r * (size_t)to, a + r * (size_t)from, (size_t)from * sizeof *a);
        for (int k = from; k < to; k++) a[r * (size_t)to + (size_t)k] = fill;
    }
}

static dato_status read_contents(hid_t file, const char* path, dato_checkpoint* c, dato_error* err) {
    uint64_t stored_checksum = 0;
    int version = 0;
    DATO_TRY(read_root(file, path, c, &stored_checksum, &version, err));
    // the columns as stored: format 2 had 5 extras (no images) and 4 final columns
    int extra_cols = version == 2 ? DATO_SEARCH_N_EXTRA - 1 : DATO_SEARCH_N_EXTRA;
    int final_cols = version == 2 ? DATO_SEARCH_N_FINAL_V2 : DATO_SEARCH_N_FINAL;
    if (H5Lexists(file, "/config", H5P_DEFAULT) <= 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: group '/config' is missing", path);
    hid_t config = H5Gopen2(file, "/config", H5P_DEFAULT);
    if (config < 0) return dato_fail(err, DATO_ERR_FORMAT, "%s: cannot open group '/config'", path);
    dato_status st = read_config(config, path, &c->cfg, err);
    H5Gclose(config);
    if (st != DATO_OK) return st;

    const dato_search_config* cfg = &c->cfg;
    if (cfg->pop < 1 || cfg->pop > MAX_POP || cfg->steps < 1 || cfg->steps > MAX_STEPS || cfg->n_branches < 1 ||
        cfg->n_branches > 254)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: config pop %d, steps %d or n_branches %d out of range", path,
                         cfg->pop, cfg->steps, cfg->n_branches);
    c->pop = cfg->pop;
    c->steps = cfg->steps;
    c->genome_bytes = 2 * cfg->steps;
    c->n_obj = DATO_SEARCH_N_OBJ;
    c->n_extra = DATO_SEARCH_N_EXTRA;
    size_t pop = (size_t)c->pop, n = (size_t)c->n_evaluations, steps = (size_t)c->steps;
    DATO_TRY(alloc_arrays(c, path, err)); // n_final is 0 until read_final_group

    hsize_t pop_obj[2] = {pop, DATO_SEARCH_N_OBJ}, pop_1d[1] = {pop}, rng_1d[1] = {4};
    hsize_t arch_obj[2] = {n, DATO_SEARCH_N_OBJ}, arch_extra[2] = {n, (hsize_t)extra_cols}, arch_1d[1] = {n};
    DATO_TRY(read_genomes(file, path, "population", pop, steps, c->pop_genomes, err));
    DATO_TRY(read_dataset(file, path, "/population/objectives", H5T_FLOAT, 8, 0, 2, pop_obj, H5T_NATIVE_DOUBLE,
                          c->pop_objectives, err));
    DATO_TRY(read_dataset(file, path, "/population/violations", H5T_FLOAT, 8, 0, 1, pop_1d, H5T_NATIVE_DOUBLE,
                          c->pop_violations, err));
    DATO_TRY(read_dataset(file, path, "/rng/state", H5T_INTEGER, 8, 0, 1, rng_1d, H5T_NATIVE_UINT64, c->rng_state,
                          err));
    DATO_TRY(read_genomes(file, path, "archive", n, steps, c->arch_genomes, err));
    DATO_TRY(read_dataset(file, path, "/archive/objectives", H5T_FLOAT, 8, 0, 2, arch_obj, H5T_NATIVE_DOUBLE,
                          c->arch_objectives, err));
    DATO_TRY(read_dataset(file, path, "/archive/extras", H5T_FLOAT, 8, 0, 2, arch_extra, H5T_NATIVE_DOUBLE,
                          c->arch_extras, err));
    DATO_TRY(read_dataset(file, path, "/archive/generation", H5T_INTEGER, 4, 1, 1, arch_1d, H5T_NATIVE_INT32,
                          c->arch_generations, err));

    DATO_TRY(check_ratio_table(file, path, "population", err));
    DATO_TRY(check_ratio_table(file, path, "archive", err));
    if (H5Lexists(file, "/final", H5P_DEFAULT) > 0) DATO_TRY(read_final_group(file, path, c, final_cols, err));
    // over the arrays as stored, so a format 2 file verifies before its rows are widened
    uint64_t checksum = payload_checksum(c, extra_cols, final_cols);
    if (checksum != stored_checksum)
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: checksum mismatch (stored %016llx, payload %016llx): the file is damaged", path,
                         (unsigned long long)stored_checksum, (unsigned long long)checksum);
    if (version == 2) { // every evaluation of a format 2 run was scored on `images`; no intervals nor ratios
        widen_rows(c->arch_extras, n, extra_cols, DATO_SEARCH_N_EXTRA, (double)cfg->images);
        if (c->n_final > 0) { // (without /final the baseline stays all 0, as a format 3 read leaves it)
            widen_rows(c->final_scores, (size_t)c->n_final, final_cols, DATO_SEARCH_N_FINAL, NAN);
            for (int k = final_cols; k < DATO_SEARCH_N_FINAL; k++) c->final_baseline[k] = NAN;
        }
        return DATO_OK;
    }
    return DATO_OK; // the caller checks the numbers and genes (check_checkpoint), outside this process
}

// HDF5 opens image (size bytes, the whole file) from memory: the core driver with the image and no
// backing store. The name is a path that cannot exist, because the core driver refuses to open an
// image under the name of an existing file.
static hid_t open_image(const uint8_t* image, size_t size) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t file = -1;
    if (fapl >= 0 && H5Pset_fapl_core(fapl, (size_t)1 << 20, 0) >= 0 &&
        H5Pset_file_image(fapl, (void*)image, size) >= 0) // HDF5 copies the image
        file = H5Fopen("/dev/null/dato-checkpoint-image", H5F_ACC_RDONLY, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    return file;
}

// Everything HDF5 does with a checkpoint's bytes: open the image, read and check the contents.
static dato_status parse_image(const uint8_t* image, size_t size, const char* label, dato_checkpoint* c,
                               dato_error* err) {
    memset(c, 0, sizeof *c);
    dato_h5_quiet quiet = dato_h5_silence();
    dato_status st;
    hid_t file = open_image(image, size);
    if (file < 0) {
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: HDF5 cannot open it (truncated or damaged)", label);
    } else {
        st = read_contents(file, label, c, err);
        H5Fclose(file);
    }
    dato_h5_restore(quiet);
    return st;
}

// ---- HDF5 in a child process ------------------------------------------------------------------------
// HDF5 1.10 trusts a file's metadata: a crafted object header or global heap makes it read freed
// memory or jump through a wild pointer (one byte flipped and the seal recomputed is enough), and no
// check made before H5Aread can prevent that, since HDF5 parses the headers on its own. So HDF5
// parses the checkpoint in a forked child (engine/core/isolated.h) whose answer is
// [the struct, its 9 arrays]: the caller's process only ever receives bytes and checks them, and a
// child that dies is a refusal.

// The answer's arrays are the file's datasets, each read at most 8 times wider than stored (a
// 1-byte integer into a float64); a larger answer comes from a crafted file.
#define ANSWER_PER_FILE_BYTE 8

// The arrays of c (allocated for its counts) and their sizes in bytes, in the order the child sends them.
#define N_ARRAYS 9
static void checkpoint_arrays(const dato_checkpoint* c, void* ptr[N_ARRAYS], size_t bytes[N_ARRAYS]) {
    size_t pop = (size_t)c->pop, n = (size_t)c->n_evaluations, gb = (size_t)c->genome_bytes, nf = (size_t)c->n_final;
    void* p[N_ARRAYS] = {c->pop_genomes,     c->pop_objectives, c->pop_violations,
                         c->arch_genomes,    c->arch_objectives, c->arch_extras,
                         c->arch_generations, c->final_genomes,  c->final_scores};
    size_t b[N_ARRAYS] = {pop * gb,       pop * DATO_SEARCH_N_OBJ * 8, pop * 8,
                          n * gb,         n * DATO_SEARCH_N_OBJ * 8,   n * DATO_SEARCH_N_EXTRA * 8,
                          n * 4,          nf * gb,                     nf * DATO_SEARCH_N_FINAL * 8};
    memcpy(ptr, p, sizeof p);
    memcpy(bytes, b, sizeof b);
}

typedef struct {
    const uint8_t* image; // (size) bytes: the whole file
    size_t size;
    const char* label;
} image_job;

void dato_checkpoint_encode_answer(const dato_checkpoint* c, dato_bytes* answer) {
    dato_checkpoint head; // (the struct is about 30 KB: each text field of the config has 4 KB)
    memcpy(&head, c, sizeof head);
    forget_arrays(&head); // pointers mean nothing in the other process, and would make the bytes vary
    dato_bytes_append(answer, &head, sizeof head);
    void* ptr[N_ARRAYS];
    size_t bytes[N_ARRAYS];
    checkpoint_arrays(c, ptr, bytes);
    for (int i = 0; i < N_ARRAYS; i++) dato_bytes_append(answer, ptr[i], bytes[i]);
}

// Runs in the child: parse_image, and on success the struct and its arrays into answer.
static dato_status parse_checkpoint(void* ctx, dato_bytes* answer, dato_error* err) {
    const image_job* job = ctx;
    dato_checkpoint c;
    dato_status st = parse_image(job->image, job->size, job->label, &c, err);
    if (st == DATO_OK) dato_checkpoint_encode_answer(&c, answer);
    dato_checkpoint_free(&c);
    return st;
}

// The answer into c: its counts bounded and the length they imply checked before anything is allocated.
static dato_status decode_checkpoint(const dato_bytes* answer, const char* label, dato_checkpoint* c,
                                     dato_error* err) {
    size_t at = 0;
    if (!dato_bytes_take(answer, &at, c, sizeof *c))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: HDF5's answer stopped short", label);
    forget_arrays(c); // the child's pointers
    if (c->pop < 1 || c->pop > MAX_POP || c->steps < 1 || c->steps > MAX_STEPS || c->genome_bytes != 2 * c->steps ||
        c->n_evaluations < 0 || c->n_evaluations > MAX_EVALUATIONS || c->n_final < 0 ||
        c->n_final > DATO_CHECKPOINT_MAX_FINAL)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: HDF5's answer has counts out of range", label);
    if (!memchr(c->dato_version, 0, sizeof c->dato_version) || !memchr(c->hdf5_version, 0, sizeof c->hdf5_version))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: HDF5's answer has a version string not NUL-terminated", label);
    void* ptr[N_ARRAYS];
    size_t bytes[N_ARRAYS], total = 0; // (counts bounded above: no overflow)
    checkpoint_arrays(c, ptr, bytes);
    for (int i = 0; i < N_ARRAYS; i++) total += bytes[i];
    if (answer->len - at != total) // before allocating: counts alone may ask for terabytes
        return dato_fail(err, DATO_ERR_FORMAT, "%s: HDF5's answer has %zu bytes of arrays, its counts say %zu", label,
                         answer->len - at, total);
    DATO_TRY(alloc_arrays(c, label, err));
    checkpoint_arrays(c, ptr, bytes);
    for (int i = 0; i < N_ARRAYS; i++) dato_bytes_take(answer, &at, ptr[i], bytes[i]);
    return DATO_OK;
}

dato_status dato_checkpoint_decode_answer(const uint8_t* answer, size_t len, const char* label, dato_checkpoint* c,
                                          dato_error* err) {
    memset(c, 0, sizeof *c);
    const dato_bytes view = {(uint8_t*)answer, len, len, 0}; // only read
    dato_status st = decode_checkpoint(&view, label, c, err);
    if (st == DATO_OK) st = check_checkpoint(c, label, DATO_ERR_FORMAT, err);
    if (st != DATO_OK) dato_checkpoint_free(c); // a refused checkpoint holds nothing
    return st;
}

dato_status dato_checkpoint_read_image(const uint8_t* image, size_t size, const char* label, dato_checkpoint* c,
                                       dato_error* err) {
    memset(c, 0, sizeof *c);
    DATO_TRY(check_seal(image, size, label, err));
    image_job job = {image, size, label};
    size_t max_answer = sizeof *c + ANSWER_PER_FILE_BYTE * size; // size bytes are in memory: no overflow
    dato_bytes answer = {0};
    dato_status st = dato_isolated_run(parse_checkpoint, &job, label, "HDF5", size, max_answer, &answer, err);
    if (st == DATO_OK) st = dato_checkpoint_decode_answer(answer.data, answer.len, label, c, err);
    dato_bytes_free(&answer);
    return st;
}

// The whole file at path into *image (malloc'd) of *size bytes.
static dato_status read_file(const char* path, uint8_t** image, size_t* size, dato_error* err) {
    *image = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    dato_status st = DATO_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        st = dato_fail(err, DATO_ERR_IO, "%s: not a regular file", path);
    else if ((unsigned long long)sb.st_size > SIZE_MAX - 1 || !(*image = malloc((size_t)sb.st_size + 1)))
        st = dato_fail(err, DATO_ERR_NOMEM, "%s: cannot hold its %lld bytes in memory", path, (long long)sb.st_size);
    size_t done = 0;
    while (st == DATO_OK && done < (size_t)sb.st_size) {
        ssize_t got = read(fd, *image + done, (size_t)sb.st_size - done);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) st = dato_fail(err, DATO_ERR_IO, "%s: read failed (%s)", path, strerror(errno));
        if (got == 0) break; // shrank meanwhile: the seal check sees the short size
        done += (size_t)(got > 0 ? got : 0);
    }
    close(fd);
    if (st != DATO_OK) {
        free(*image);
        *image = NULL;
    }
    *size = done;
    return st;
}

dato_status dato_checkpoint_read(const char* path, dato_checkpoint* c, dato_error* err) {
    memset(c, 0, sizeof *c);
    size_t size = 0;
    uint8_t* image = NULL;
    DATO_TRY(read_file(path, &image, &size, err));
    dato_status st = dato_checkpoint_read_image(image, size, path, c, err);
    free(image);
    return st;
}

void dato_checkpoint_free(dato_checkpoint* c) {
    free(c->pop_genomes);
    free(c->pop_objectives);
    free(c->pop_violations);
    free(c->arch_genomes);
    free(c->arch_objectives);
    free(c->arch_extras);
    free(c->arch_generations);
    free(c->final_genomes);
    free(c->final_scores);
    forget_arrays(c);
    c->n_final = 0;
}

// ---- stale temp files ------------------------------------------------------------------------------

// The pid of a "<base>.tmp.<pid>" name, or 0 when name is not one.
static long temp_pid(const char* name, const char* base) {
    size_t nb = strlen(base);
    if (strncmp(name, base, nb) != 0 || strncmp(name + nb, ".tmp.", 5) != 0) return 0;
    const char* digits = name + nb + 5;
    size_t nd = strspn(digits, "0123456789");
    if (nd == 0 || nd > 9 || digits[nd] != 0) return 0;
    return strtol(digits, NULL, 10);
}

dato_status dato_checkpoint_remove_stale_temps(const char* path, dato_error* err) {
    char dir[PATH_CAP];
    directory_of(path, dir, sizeof dir);
    const char* slash = strrchr(path, '/');
    const char* base = slash ? slash + 1 : path;
    if (!*base) return dato_fail(err, DATO_ERR_INVALID, "%s: names a directory, not a checkpoint file", path);
    DIR* d = opendir(dir);
    if (!d) return dato_fail(err, DATO_ERR_IO, "%s: cannot list directory %s (%s)", path, dir, strerror(errno));
    dato_status st = DATO_OK;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        long pid = temp_pid(e->d_name, base);
        if (pid <= 0) continue;
        // a live writer other than this process is mid-write: leave its temp alone
        if (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) continue;
        char full[2 * PATH_CAP];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        if (unlink(full) != 0 && errno != ENOENT && st == DATO_OK)
            st = dato_fail(err, DATO_ERR_IO, "%s: cannot remove stale temp %s (%s)", path, full, strerror(errno));
    }
    closedir(d);
    return st;
}
