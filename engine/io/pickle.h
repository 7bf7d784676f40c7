// A restricted reader of the pickle inside PyTorch checkpoints (data.pkl): it interprets the
// opcodes torch.save emits (protocol 2, plus the protocol 3-5 framing and string opcodes) and
// recognises a fixed list of globals. It never imports, calls or executes anything: a REDUCE
// of an allowed global is modelled (a tensor rebuild, an empty OrderedDict, an opaque value),
// and any other global is refused with its name as soon as the GLOBAL or STACK_GLOBAL opcode
// is read. Format, allowed globals and limits: docs/CKPT.md.
//
// The result is the flattened tensor dict: the top-level dict, or its "state_dict" entry when
// that is a dict; nested dicts give dotted names ("a.b.weight"); non-tensor values are skipped.
// Tensors are views into storages (zip entries data/<key>, or the records after a legacy file's
// pickles): validated here for contiguity and range; the bytes are read by engine/io/ckpt.c.
#ifndef DATO_PICKLE_H
#define DATO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "status.h"

#define DATO_PICKLE_MAX_DEPTH 16 // nested dicts below the root
#define DATO_PICKLE_MAX_NAME 1024 // bytes of a flattened tensor name
#define DATO_PICKLE_MAX_KEY 128 // bytes of a storage key

typedef struct {
    char* key; // the zip entry is <archive>/data/<key>
    dato_st_dtype dtype; // from the storage class (FloatStorage -> F32, ...)
    int64_t numel; // elements, as the persistent id says
} dato_pickle_storage;

typedef struct {
    char* name; // flattened dict key
    int storage; // index into storages
    int64_t offset; // storage offset, elements
    int ndim;
    int64_t shape[DATO_ST_MAX_DIMS];
    int64_t numel; // offset + numel <= the storage's numel
} dato_pickle_tensor;

typedef struct {
    dato_pickle_tensor* tensors; // n_tensors, sorted by name, names unique
    int n_tensors;
    dato_pickle_storage* storages; // n_storages referenced by tensors, sorted by key, keys unique
    int n_storages;
    int has_state_dict; // the root was the top-level dict's "state_dict"
    dato_pickle_storage* declared; // n_declared: every key any persistent id names, sorted, unique
    int n_declared; // (each with its first declaration's type and numel; tensors may use fewer)
    size_t pickle_size; // bytes up to and including STOP (a legacy file's next pickle follows)
} dato_pickle_tensors;

typedef struct {
    char** strings; // n
    int n;
    size_t pickle_size; // bytes up to and including STOP
} dato_pickle_strings;

// Interprets size bytes of pickle and fills out. label names the source in every message
// ("model.ckpt: archive/data.pkl"). On failure out is left empty (safe to free).
dato_status dato_pickle_load_tensors(dato_pickle_tensors* out, const void* bytes, size_t size, const char* label,
                                     dato_error* err);
void dato_pickle_tensors_free(dato_pickle_tensors* t);
// Interprets a pickle that must be a list (or tuple) of str: the storage key list of a legacy
// (non-zip) torch file. Same interpreter, same allow-list. On failure out is left empty.
dato_status dato_pickle_load_strings(dato_pickle_strings* out, const void* bytes, size_t size, const char* label,
                                     dato_error* err);
void dato_pickle_strings_free(dato_pickle_strings* s);

#endif
