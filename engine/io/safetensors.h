// safetensors files: a reader over a memory-mapped file (or any byte buffer) and a writer.
//
// Layout (huggingface/safetensors): an 8-byte little-endian u64 n, then n bytes of UTF-8 JSON
// (possibly padded with spaces), then the data. The JSON maps each tensor name to
// {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, offsets relative to the
// first data byte, plus an optional "__metadata__": {string: string}.
//
// The reader trusts nothing in the file. It rejects, with a message naming the file and the
// tensor: a file shorter than 8 bytes; a header length over 100 MB or past the end of the file;
// a header that is not valid UTF-8, not JSON, not an object, or has anything but whitespace
// after the object; an entry that is not an object; a missing or non-string dtype (an unknown
// dtype name is DATO_ERR_UNSUPPORTED); a shape that is not an array of at most 8 non-negative
// integers or whose element count overflows; data_offsets that are not two integers, have
// begin > end, end past the data, or end - begin != numel * dtype size; two tensors sharing a
// byte; duplicate tensor names; a __metadata__ that is not an object of strings or repeats a
// key. JSON numbers must be exact integers in [0, 2^53).
// Holes: the spec asks writers to pack tensors with no gaps; this reader rejects overlaps but
// accepts gaps and does not require the tensors to cover the data (bytes nobody claims are
// harmless, and lenient readers load files from other writers). The writer never leaves gaps.
//
// Tensor data pointers point into the file and are NOT necessarily aligned: read them with
// memcpy or dato_st_tensor_to_f32. A dato_safetensors must outlive the tensors found in it.
#ifndef DATO_SAFETENSORS_H
#define DATO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef enum {
    DATO_ST_F64 = 0,
    DATO_ST_F32,
    DATO_ST_F16,
    DATO_ST_BF16,
    DATO_ST_I64,
    DATO_ST_I32,
    DATO_ST_I16,
    DATO_ST_I8,
    DATO_ST_U64,
    DATO_ST_U32,
    DATO_ST_U16,
    DATO_ST_U8,
    DATO_ST_BOOL,
    DATO_ST_F8_E4M3,
    DATO_ST_F8_E5M2,
} dato_st_dtype;

#define DATO_ST_MAX_DIMS 8
#define DATO_ST_MAX_HEADER ((uint64_t)100000000) // bytes; the reference implementation's cap

typedef struct {
    char* name;
    const char* path; // the file it lives in (owned by its dato_safetensors)
    dato_st_dtype dtype;
    int ndim; // 0 for a scalar
    int64_t shape[DATO_ST_MAX_DIMS];
    int64_t numel;
    const void* data; // nbytes little-endian bytes inside the file, maybe unaligned
    size_t nbytes;
} dato_st_tensor;

typedef struct {
    char* key;
    char* value;
} dato_st_metadata;

typedef struct {
    char* path;                // the file, or the label given to dato_safetensors_parse
    void* map;                 // the mapping when opened from a file, else NULL
    size_t map_size;
    dato_st_tensor* tensors;   // n_tensors, in data order (by begin offset, then name)
    int n_tensors;
    dato_st_tensor** by_name;  // n_tensors pointers into tensors, sorted by name
    dato_st_metadata* metadata; // n_metadata pairs from __metadata__, sorted by key
    int n_metadata;
    size_t header_size;        // n, the JSON header length in bytes
} dato_safetensors;

// Maps path read-only, parses and validates it. On failure st is left empty (safe to close).
dato_status dato_safetensors_open(dato_safetensors* st, const char* path, dato_error* err);
// Parses size bytes at bytes (not copied: tensor data point into them, so they must outlive
// st). label names the source in error messages (NULL: "<memory>").
dato_status dato_safetensors_parse(dato_safetensors* st, const void* bytes, size_t size, const char* label,
                                   dato_error* err);
// The tensor called name, or NULL. O(log n).
const dato_st_tensor* dato_safetensors_find(const dato_safetensors* st, const char* name);
// The __metadata__ value for key, or NULL.
const char* dato_safetensors_metadata(const dato_safetensors* st, const char* key);
// Frees everything and unmaps the file; st is left empty.
void dato_safetensors_close(dato_safetensors* st);
// Tells the kernel that tensor t of st (opened from a file) is read for now: the mapped pages
// wholly inside its bytes leave this process's memory, and come back from the file if t is read
// again. Loaders call it after converting each tensor, so a file's pages are not resident beside
// the converted weights. Does nothing where st holds no mapping or t is not in it.
void dato_safetensors_release(const dato_safetensors* st, const dato_st_tensor* t);

// "F32", "BF16", ... as spelled in the header.
const char* dato_st_dtype_name(dato_st_dtype dt);
// Bytes per element.
size_t dato_st_dtype_size(dato_st_dtype dt);
// 1 and *out set when dt is an engine dtype (F32, F16, BF16), else 0.
int dato_st_dtype_to_dato(dato_st_dtype dt, dato_dtype* out);
// Converts an F32/F16/BF16 tensor to f32. dst_elems must equal t->numel. Other dtypes are
// DATO_ERR_UNSUPPORTED with a message naming the tensor and its file.
dato_status dato_st_tensor_to_f32(const dato_st_tensor* t, float* dst, size_t dst_elems, dato_error* err);

// One tensor to write. shape has ndim entries (0..DATO_ST_MAX_DIMS; ndim 0 is a scalar).
typedef struct {
    const char* name;
    dato_dtype dtype;
    int ndim;
    const int64_t* shape;
    const void* data; // numel * dato_dtype_size(dtype) little-endian bytes
} dato_st_write_entry;

// Writes n tensors to path, in the given order, packed with no gaps. The header is padded with
// spaces so that the data start at a multiple of 8 bytes in the file; each tensor is therefore
// 8-byte aligned when the tensors before it have byte sizes that are multiples of 8 (no gaps
// are inserted to force it: the spec forbids holes). metadata_kv is NULL or
// {key0, value0, key1, value1, ..., NULL}. Written to path.tmp and renamed, so a failed write
// leaves no partial file at path.
dato_status dato_safetensors_write(const char* path, const dato_st_write_entry* entries, int n,
                                   const char* const* metadata_kv, dato_error* err);

#endif
