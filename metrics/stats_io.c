// FID statistics files: HDF5 read/write, .npz/.npy import. See stats_io.h.
#include "stats_io.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#include "file_seal.h"
#include "h5_util.h"
#include "isolated.h"
#include "npy.h"

// Feature dimensions above this are refused (sigma alone would be 32 GiB); matches fid.c.
#define STATS_MAX_DIM 65536
// Largest .npz entry read into memory: a float64 sigma of dim 16384 is 2 GiB.
#define NPZ_MAX_ENTRY ((uint64_t)4 << 30)

// The first line of the seal (file_seal.h) in the user block of a file dato_stats_write_h5 wrote.

// ---- HDF5 --------------------------------------------------------------------------------------

static dato_status write_dataset(hid_t file, const char* path, const char* name, int ndim, const hsize_t* dims,
                                 const double* data, dato_error* err) {
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = space < 0 ? -1
                         : H5Dcreate2(file, name, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) rc |= H5Dclose(ds);
    if (space >= 0) H5Sclose(space);
    if (rc < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot write dataset '%s'", path, name);
    return DATO_OK;
}

static dato_status write_string_attr(hid_t root, const char* path, const char* name, const char* value,
                                     dato_error* err) {
    hid_t type = H5Tcopy(H5T_C_S1);
    herr_t rc = type < 0 ? -1 : H5Tset_size(type, strlen(value) + 1);
    if (rc >= 0) rc = H5Tset_strpad(type, H5T_STR_NULLTERM);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = rc < 0 || space < 0 ? -1 : H5Acreate2(root, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    rc = attr < 0 ? -1 : H5Awrite(attr, type, value);
    if (attr >= 0) rc |= H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (rc < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot write attribute '%s'", path, name);
    return DATO_OK;
}

static dato_status write_int_attr(hid_t root, const char* path, const char* name, int64_t value, dato_error* err) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space < 0 ? -1 : H5Acreate2(root, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr < 0 ? -1 : H5Awrite(attr, H5T_NATIVE_INT64, &value);
    if (attr >= 0) rc |= H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    if (rc < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot write attribute '%s'", path, name);
    return DATO_OK;
}

static dato_status write_h5_contents(hid_t file, const char* path, const dato_fid_stats* stats,
                                     const dato_stats_meta* meta, dato_error* err) {
    hsize_t dims[2] = {(hsize_t)stats->dim, (hsize_t)stats->dim};
    DATO_TRY(write_dataset(file, path, "mu", 1, dims, stats->mu, err));
    DATO_TRY(write_dataset(file, path, "sigma", 2, dims, stats->sigma, err));
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    if (root < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot open the root group", path);
    dato_status st = write_string_attr(root, path, "format", DATO_STATS_FORMAT, err);
    if (st == DATO_OK) st = write_int_attr(root, path, "version", DATO_STATS_VERSION, err);
    if (st == DATO_OK) st = write_int_attr(root, path, "count", stats->count, err);
    if (st == DATO_OK) st = write_string_attr(root, path, "extractor", meta->extractor, err);
    if (st == DATO_OK) st = write_string_attr(root, path, "weights_hash", meta->weights_hash, err);
    if (st == DATO_OK) st = write_string_attr(root, path, "preprocessing", meta->preprocessing, err);
    if (st == DATO_OK) st = write_string_attr(root, path, "source", meta->source, err);
    H5Gclose(root);
    return st;
}

// Every field of meta must be NUL-terminated within its array; st is the status of a refusal.
static dato_status check_meta(const dato_stats_meta* meta, const char* path, dato_status st, dato_error* err) {
    const char* fields[4] = {meta->extractor, meta->weights_hash, meta->preprocessing, meta->source};
    const size_t caps[4] = {sizeof meta->extractor, sizeof meta->weights_hash, sizeof meta->preprocessing,
                            sizeof meta->source};
    const char* names[4] = {"extractor", "weights_hash", "preprocessing", "source"};
    for (int i = 0; i < 4; i++)
        if (!memchr(fields[i], 0, caps[i]))
            return dato_fail(err, st, "%s: metadata field '%s' is not NUL-terminated", path, names[i]);
    return DATO_OK;
}

dato_status dato_stats_write_h5(const char* path, const dato_fid_stats* stats, const dato_stats_meta* meta,
                                dato_error* err) {
    if (stats->dim < 1 || stats->dim > STATS_MAX_DIM || !stats->mu || !stats->sigma)
        return dato_fail(err, DATO_ERR_INVALID, "%s: statistics of dim %d have no mu/sigma or a bad dim", path,
                         stats->dim);
    if (stats->count < 0 || stats->count == 1)
        return dato_fail(err, DATO_ERR_INVALID, "%s: count %ld: must be 0 (unknown) or at least 2", path,
                         stats->count);
    DATO_TRY(check_meta(meta, path, DATO_ERR_INVALID, err));
    DATO_TRY(dato_fid_stats_check(stats, path, DATO_ERR_INVALID, err));
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return dato_fail(err, DATO_ERR_INVALID, "%s: path too long", path);
    dato_h5_quiet quiet = dato_h5_silence();
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE); // with a user block for the seal
    hid_t file = fcpl >= 0 && H5Pset_userblock(fcpl, DATO_SEAL_BYTES) >= 0
                     ? H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT)
                     : -1;
    if (fcpl >= 0) H5Pclose(fcpl);
    dato_status st;
    if (file < 0) {
        st = dato_fail(err, DATO_ERR_IO, "%s: cannot create the HDF5 file", tmp);
    } else {
        st = write_h5_contents(file, path, stats, meta, err);
        if (H5Fclose(file) < 0 && st == DATO_OK) st = dato_fail(err, DATO_ERR_IO, "%s: cannot close", tmp);
    }
    dato_h5_restore(quiet);
    if (st == DATO_OK) st = dato_seal_file(tmp, DATO_STATS_SEAL_MAGIC, err);
    if (st == DATO_OK && rename(tmp, path) != 0) st = dato_fail(err, DATO_ERR_IO, "%s: cannot rename from %s", path, tmp);
    if (st != DATO_OK) remove(tmp);
    return st;
}

static dato_status read_string_attr(hid_t root, const char* path, const char* name, char* out, size_t cap,
                                    dato_error* err) {
    hid_t attr = dato_h5_open_attr(root, path, "", name, H5T_STRING, err);
    if (attr < 0) return DATO_ERR_FORMAT;
    hid_t type = H5Aget_type(attr);
    dato_status st = DATO_OK;
    if (H5Tis_variable_str(type) > 0) { // as h5py writes str attributes: UTF-8, which HDF5 does not
        hid_t mem = H5Tcopy(H5T_C_S1);  // convert to or from ASCII, so read in the file's character set
        char* value = NULL;
        if (H5Tset_size(mem, H5T_VARIABLE) < 0 || H5Tset_cset(mem, H5Tget_cset(type)) < 0 ||
            H5Aread(attr, mem, &value) < 0 || !value)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: cannot read attribute '%s'", path, name);
        else if (strlen(value) >= cap)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s' is longer than %zu bytes", path, name, cap - 1);
        else
            memcpy(out, value, strlen(value) + 1);
        if (value) H5free_memory(value);
        H5Tclose(mem);
    } else {
        size_t size = H5Tget_size(type);
        if (size == 0 || size >= cap) {
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: attribute '%s' has %zu bytes, at most %zu allowed", path, name,
                           size, cap - 1);
        } else {
            memset(out, 0, cap);
            if (H5Aread(attr, type, out) < 0)
                st = dato_fail(err, DATO_ERR_FORMAT, "%s: cannot read attribute '%s'", path, name);
            out[size] = 0; // a space- or NUL-padded value of exactly size bytes
        }
    }
    H5Tclose(type);
    H5Aclose(attr);
    return st;
}

static dato_status read_int_attr(hid_t root, const char* path, const char* name, int64_t* out, dato_error* err) {
    hid_t attr = dato_h5_open_attr(root, path, "", name, H5T_INTEGER, err);
    if (attr < 0) return DATO_ERR_FORMAT;
    herr_t rc = H5Aread(attr, H5T_NATIVE_INT64, out);
    H5Aclose(attr);
    if (rc < 0) return dato_fail(err, DATO_ERR_FORMAT, "%s: cannot read attribute '%s'", path, name);
    return DATO_OK;
}

// Opens dataset name (float32 or float64) and writes its shape; ndim must match.
static hid_t open_float_dataset(hid_t file, const char* path, const char* name, int ndim, hsize_t* dims,
                                dato_error* err) {
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        dato_fail(err, DATO_ERR_FORMAT, "%s: dataset '%s' is missing", path, name);
        return -1;
    }
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t type = ds < 0 ? -1 : H5Dget_type(ds);
    hid_t space = ds < 0 ? -1 : H5Dget_space(ds);
    int is_float = type >= 0 && H5Tget_class(type) == H5T_FLOAT && (H5Tget_size(type) == 4 || H5Tget_size(type) == 8);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank == ndim) H5Sget_simple_extent_dims(space, dims, NULL);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (!is_float || rank != ndim) {
        if (ds >= 0) H5Dclose(ds);
        dato_fail(err, DATO_ERR_FORMAT, "%s: dataset '%s' must be a %d-D float32/float64 array (%s, %d dims)", path,
                  name, ndim, is_float ? "float" : "not float32/float64", rank);
        return -1;
    }
    return ds;
}

static dato_status read_h5_contents(hid_t file, const char* path, dato_fid_stats* stats, dato_stats_meta* meta,
                                    dato_error* err) {
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    if (root < 0) return dato_fail(err, DATO_ERR_FORMAT, "%s: cannot open the root group", path);
    char format[64];
    int64_t version = 0, count = 0;
    dato_status st = read_string_attr(root, path, "format", format, sizeof format, err);
    if (st == DATO_OK && strcmp(format, DATO_STATS_FORMAT) != 0)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: attribute 'format' is '%s', expected '%s'", path, format,
                       DATO_STATS_FORMAT);
    if (st == DATO_OK) st = read_int_attr(root, path, "version", &version, err);
    if (st == DATO_OK && version != DATO_STATS_VERSION)
        st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: version %lld, this build reads version %d", path,
                       (long long)version, DATO_STATS_VERSION);
    if (st == DATO_OK) st = read_int_attr(root, path, "count", &count, err);
    if (st == DATO_OK && (count < 0 || count == 1))
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: attribute 'count' is %lld: must be 0 (unknown) or at least 2", path,
                       (long long)count);
    if (st == DATO_OK) st = read_string_attr(root, path, "extractor", meta->extractor, sizeof meta->extractor, err);
    if (st == DATO_OK)
        st = read_string_attr(root, path, "weights_hash", meta->weights_hash, sizeof meta->weights_hash, err);
    if (st == DATO_OK)
        st = read_string_attr(root, path, "preprocessing", meta->preprocessing, sizeof meta->preprocessing, err);
    if (st == DATO_OK) st = read_string_attr(root, path, "source", meta->source, sizeof meta->source, err);
    H5Gclose(root);
    if (st != DATO_OK) return st;

    hsize_t mu_dims[1], sigma_dims[2];
    hid_t mu = open_float_dataset(file, path, "mu", 1, mu_dims, err);
    if (mu < 0) return DATO_ERR_FORMAT;
    hid_t sigma = open_float_dataset(file, path, "sigma", 2, sigma_dims, err);
    if (sigma < 0) {
        H5Dclose(mu);
        return DATO_ERR_FORMAT;
    }
    if (mu_dims[0] < 1 || mu_dims[0] > STATS_MAX_DIM)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: dataset 'mu' has %llu values, expected 1..%d", path,
                       (unsigned long long)mu_dims[0], STATS_MAX_DIM);
    else if (sigma_dims[0] != mu_dims[0] || sigma_dims[1] != mu_dims[0])
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: dataset 'sigma' is (%llu, %llu), expected (%llu, %llu) to match 'mu'",
                       path, (unsigned long long)sigma_dims[0], (unsigned long long)sigma_dims[1],
                       (unsigned long long)mu_dims[0], (unsigned long long)mu_dims[0]);
    if (st == DATO_OK) st = dato_fid_stats_alloc(stats, (int)mu_dims[0], err);
    if (st == DATO_OK && (H5Dread(mu, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, stats->mu) < 0 ||
                          H5Dread(sigma, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, stats->sigma) < 0))
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: cannot read datasets 'mu' and 'sigma'", path);
    H5Dclose(mu);
    H5Dclose(sigma);
    stats->count = (long)count;
    return st;
}

// Sealed files (what dato_stats_write_h5 writes) must match their seal; unsealed ones (written by
// h5py or older dato) must start with the HDF5 signature: a user block that is not a seal may be a
// damaged one, and what it covered could not be checked.
static dato_status check_stats_seal(const char* path, dato_error* err) {
    dato_seal_state seal;
    DATO_TRY(dato_seal_check(path, DATO_STATS_SEAL_MAGIC, &seal, err));
    if (seal != DATO_SEAL_NONE) return DATO_OK;
    if (H5Fis_hdf5(path) > 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: an HDF5 file whose user block is not a '%.*s' (a damaged seal?)",
                         path, (int)strlen(DATO_STATS_SEAL_MAGIC) - 1, DATO_STATS_SEAL_MAGIC);
    return dato_fail(err, DATO_ERR_FORMAT, "%s: not an HDF5 file", path);
}

// ---- reading in a child process (isolated.h: libhdf5 1.10 crashes on some crafted files) ----------
// The child's answer: [meta (dato_stats_meta, 4 char arrays), count (int64), dim (int32),
// mu (dim float64), sigma (dim * dim float64)], in this machine's byte order.
#define ANSWER_HEAD (sizeof(dato_stats_meta) + sizeof(int64_t) + sizeof(int32_t))
// The largest statistics the format allows (dim STATS_MAX_DIM); the parent's buffer grows as the
// bytes arrive, so a child that announces more than it sends costs only what it sends.
#define ANSWER_MAX (ANSWER_HEAD + 8 * ((size_t)STATS_MAX_DIM + (size_t)STATS_MAX_DIM * STATS_MAX_DIM))

void dato_stats_encode_answer(const dato_fid_stats* stats, const dato_stats_meta* meta, dato_bytes* answer) {
    int64_t count = stats->count;
    int32_t dim = stats->dim;
    dato_bytes_append(answer, meta, sizeof *meta);
    dato_bytes_append(answer, &count, sizeof count);
    dato_bytes_append(answer, &dim, sizeof dim);
    dato_bytes_append(answer, stats->mu, sizeof(double) * (size_t)dim);
    dato_bytes_append(answer, stats->sigma, sizeof(double) * (size_t)dim * (size_t)dim);
}

// Runs in the child: HDF5 parses the file at ctx (a path) and the statistics are appended to answer.
static dato_status parse_stats_file(void* ctx, dato_bytes* answer, dato_error* err) {
    const char* path = ctx;
    dato_fid_stats stats = {0};
    dato_stats_meta meta;
    memset(&meta, 0, sizeof meta);
    dato_h5_quiet quiet = dato_h5_silence();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    dato_status st = file < 0 ? dato_fail(err, DATO_ERR_IO, "%s: cannot open the HDF5 file", path)
                              : read_h5_contents(file, path, &stats, &meta, err);
    if (file >= 0) H5Fclose(file);
    dato_h5_restore(quiet);
    if (st == DATO_OK) dato_stats_encode_answer(&stats, &meta, answer);
    dato_fid_stats_free(&stats);
    return st;
}

// The answer into stats and meta, its dim and length checked before allocating.
static dato_status decode_stats(const dato_bytes* answer, const char* path, dato_fid_stats* stats,
                                dato_stats_meta* meta, dato_error* err) {
    size_t at = 0;
    int64_t count = 0;
    int32_t dim = 0;
    if (!dato_bytes_take(answer, &at, meta, sizeof *meta) || !dato_bytes_take(answer, &at, &count, sizeof count) ||
        !dato_bytes_take(answer, &at, &dim, sizeof dim) || dim < 1 || dim > STATS_MAX_DIM ||
        answer->len - at != 8 * ((size_t)dim + (size_t)dim * (size_t)dim))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: HDF5's answer of %zu bytes is not statistics of dim 1..%d", path,
                         answer->len, STATS_MAX_DIM);
    if (count < 0 || count == 1)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: attribute 'count' is %lld: must be 0 (unknown) or at least 2", path,
                         (long long)count);
    DATO_TRY(check_meta(meta, path, DATO_ERR_FORMAT, err));
    DATO_TRY(dato_fid_stats_alloc(stats, dim, err));
    stats->count = (long)count;
    dato_bytes_take(answer, &at, stats->mu, sizeof(double) * (size_t)dim);
    dato_bytes_take(answer, &at, stats->sigma, sizeof(double) * (size_t)dim * (size_t)dim);
    return dato_fid_stats_check(stats, path, DATO_ERR_FORMAT, err);
}

dato_status dato_stats_decode_answer(const uint8_t* answer, size_t len, const char* label, dato_fid_stats* stats,
                                     dato_stats_meta* meta, dato_error* err) {
    memset(stats, 0, sizeof *stats);
    memset(meta, 0, sizeof *meta);
    const dato_bytes view = {(uint8_t*)answer, len, len, 0}; // only read
    dato_status st = decode_stats(&view, label, stats, meta, err);
    if (st != DATO_OK) { // refused statistics hold nothing
        dato_fid_stats_free(stats);
        memset(meta, 0, sizeof *meta);
    }
    return st;
}

dato_status dato_stats_read_h5(const char* path, dato_fid_stats* stats, dato_stats_meta* meta, dato_error* err) {
    memset(stats, 0, sizeof *stats);
    memset(meta, 0, sizeof *meta);
    dato_h5_quiet quiet = dato_h5_silence();
    dato_status st = check_stats_seal(path, err); // a missing file is I/O, one that is not HDF5 format
    dato_h5_restore(quiet);
    if (st != DATO_OK) return st;
    struct stat sb;
    size_t size = stat(path, &sb) == 0 && sb.st_size > 0 ? (size_t)sb.st_size : 0; // scales the child's time
    dato_bytes answer = {0};
    st = dato_isolated_run(parse_stats_file, (void*)path, path, "HDF5", size, ANSWER_MAX, &answer, err);
    if (st == DATO_OK) st = dato_stats_decode_answer(answer.data, answer.len, path, stats, meta, err);
    dato_bytes_free(&answer);
    return st;
}

// ---- compatibility -----------------------------------------------------------------------------

dato_status dato_stats_check_compatible(const dato_stats_meta* a, const char* label_a, const dato_stats_meta* b,
                                        const char* label_b, dato_error* err) {
    const char* names[3] = {"extractor", "weights hash", "preprocessing"};
    const char* va[3] = {a->extractor, a->weights_hash, a->preprocessing};
    const char* vb[3] = {b->extractor, b->weights_hash, b->preprocessing};
    for (int i = 0; i < 3; i++)
        if (strcmp(va[i], vb[i]) != 0)
            return dato_fail(err, DATO_ERR_INVALID,
                             "statistics are not comparable: %s differs: '%s' (%s) vs '%s' (%s)", names[i], va[i],
                             label_a, vb[i], label_b);
    return DATO_OK;
}

dato_status dato_stats_fid(const dato_fid_stats* a, const dato_stats_meta* meta_a, const dato_fid_stats* b,
                           const dato_stats_meta* meta_b, dato_fid_result* out, dato_error* err) {
    memset(out, 0, sizeof *out);
    const char* label_a = meta_a->source[0] ? meta_a->source : "first statistics";
    const char* label_b = meta_b->source[0] ? meta_b->source : "second statistics";
    DATO_TRY(dato_stats_check_compatible(meta_a, label_a, meta_b, label_b, err));
    return dato_fid_from_stats(a, b, out, err);
}

// ---- .npz (its .npy entries parsed by engine/io/npy.c) -------------------------------------------

// Reads entry name of the open archive z into a malloc'd buffer.
static dato_status read_zip_entry(zip_t* z, const char* path, const char* name, unsigned char** out, size_t* n,
                                  dato_error* err) {
    *out = NULL;
    zip_int64_t index = zip_name_locate(z, name, 0);
    if (index < 0) return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: entry '%s' is missing", path, name);
    zip_stat_t info;
    if (zip_stat_index(z, (zip_uint64_t)index, 0, &info) != 0 || !(info.valid & ZIP_STAT_SIZE))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: entry '%s': no size", path, name);
    if (info.size > NPZ_MAX_ENTRY)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: entry '%s' has %llu bytes, more than the %llu read", path,
                         name, (unsigned long long)info.size, (unsigned long long)NPZ_MAX_ENTRY);
    // The buffer grows as the entry inflates (1 MiB, then doubling): an entry whose directory
    // record promises gigabytes costs what the archive really holds.
    zip_file_t* f = zip_fopen_index(z, (zip_uint64_t)index, 0);
    unsigned char* buf = malloc(1); // (cap) bytes, at least 1 for an empty entry
    zip_uint64_t got = 0, cap = 1;
    zip_int64_t r = f ? 1 : -1;
    int nomem = !buf;
    while (!nomem && r > 0 && got < info.size) {
        if (got == cap) {
            cap = cap > 1 ? (cap > info.size / 2 ? info.size : 2 * cap) : (info.size < (1 << 20) ? info.size : 1 << 20);
            unsigned char* grown = realloc(buf, (size_t)cap);
            nomem = !grown;
            if (nomem) break;
            buf = grown;
        }
        r = zip_fread(f, buf + got, cap - got);
        if (r > 0) got += (zip_uint64_t)r;
    }
    if (f) zip_fclose(f);
    if (nomem) {
        free(buf);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: entry '%s': cannot allocate %llu bytes", path, name,
                         (unsigned long long)info.size);
    }
    if (r < 0 || got != info.size) {
        free(buf);
        return dato_fail(err, DATO_ERR_FORMAT, "%s: entry '%s': read %llu of %llu bytes (corrupt archive)", path, name,
                         (unsigned long long)got, (unsigned long long)info.size);
    }
    *out = buf;
    *n = (size_t)info.size;
    return DATO_OK;
}

static void npy_to_double(const dato_npy_array* a, double* dst) {
    for (int64_t i = 0; i < a->numel; i++) dst[i] = dato_npy_at(a, i);
}

static dato_status read_npz_contents(zip_t* z, const char* path, dato_fid_stats* stats, dato_error* err) {
    unsigned char *mu_bytes = NULL, *sigma_bytes = NULL;
    size_t mu_n = 0, sigma_n = 0;
    dato_npy_array mu, sigma;
    char mu_label[4200], sigma_label[4200];
    snprintf(mu_label, sizeof mu_label, "%s: entry 'mu.npy'", path);
    snprintf(sigma_label, sizeof sigma_label, "%s: entry 'sigma.npy'", path);
    dato_status st = read_zip_entry(z, path, "mu.npy", &mu_bytes, &mu_n, err);
    if (st == DATO_OK) st = read_zip_entry(z, path, "sigma.npy", &sigma_bytes, &sigma_n, err);
    if (st == DATO_OK) st = dato_npy_parse(mu_bytes, mu_n, mu_label, &mu, err);
    if (st == DATO_OK) st = dato_npy_parse(sigma_bytes, sigma_n, sigma_label, &sigma, err);
    if (st == DATO_OK && (mu.ndim != 1 || mu.shape[0] < 1 || mu.shape[0] > STATS_MAX_DIM))
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: 'mu' must be 1-D with 1..%d values (%d dims, first %lld)", path,
                       STATS_MAX_DIM, mu.ndim, (long long)(mu.ndim ? mu.shape[0] : 0));
    if (st == DATO_OK && (sigma.ndim != 2 || sigma.shape[0] != mu.shape[0] || sigma.shape[1] != mu.shape[0]))
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: 'sigma' must be (%lld, %lld) to match 'mu', got %d dims (%lld, %lld)",
                       path, (long long)mu.shape[0], (long long)mu.shape[0], sigma.ndim,
                       (long long)(sigma.ndim > 0 ? sigma.shape[0] : 0), (long long)(sigma.ndim > 1 ? sigma.shape[1] : 0));
    if (st == DATO_OK) st = dato_fid_stats_alloc(stats, (int)mu.shape[0], err);
    if (st == DATO_OK) {
        npy_to_double(&mu, stats->mu);
        npy_to_double(&sigma, stats->sigma);
        st = dato_fid_stats_check(stats, path, DATO_ERR_FORMAT, err);
    }
    free(mu_bytes);
    free(sigma_bytes);
    return st;
}

dato_status dato_stats_read_npz(const char* path, dato_fid_stats* stats, dato_error* err) {
    memset(stats, 0, sizeof *stats);
    int code = 0;
    zip_t* z = zip_open(path, ZIP_RDONLY, &code);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, code);
        dato_status st = dato_fail(err, code == ZIP_ER_NOENT || code == ZIP_ER_OPEN ? DATO_ERR_IO : DATO_ERR_FORMAT,
                                   "%s: cannot open as .npz (zip): %s", path, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return st;
    }
    dato_status st = read_npz_contents(z, path, stats, err);
    zip_discard(z);
    if (st != DATO_OK) dato_fid_stats_free(stats);
    return st;
}
