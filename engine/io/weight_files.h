// A checkpoint stored as one or more safetensors files, looked up by tensor name.
//
// dato_weight_files_open accepts:
//   - a .safetensors file: every tensor in it;
//   - a *.safetensors.index.json (sharded checkpoint): its "weight_map" {name: shard file}
//     gives the tensors. Shard names are relative to the index's folder (absolute paths and
//     ".." are refused); each shard is opened once, and every mapped name must exist in its
//     shard. Tensors a shard holds beyond the map are ignored, as transformers/diffusers do;
//   - a directory holding exactly one of diffusion_pytorch_model.safetensors,
//     diffusion_pytorch_model.safetensors.index.json, model.safetensors,
//     model.safetensors.index.json; when none is there, exactly one of their fp16 variants
//     (diffusion_pytorch_model.fp16.safetensors, ...safetensors.index.fp16.json, ...). The full
//     precision file is preferred when both are present.
#ifndef DATO_WEIGHT_FILES_H
#define DATO_WEIGHT_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"
#include "status.h"

typedef struct {
    char* path;                     // the .safetensors or .index.json actually opened
    dato_safetensors* files;        // n_files open files (shards)
    int n_files;
    const dato_st_tensor** tensors; // n_tensors: file data order, or weight_map order for an index
    int n_tensors;
    int32_t* slots;                 // open-addressing hash table of indices into tensors, -1 = empty
    size_t n_slots;                 // a power of two, at least twice n_tensors
} dato_weight_files;

// Opens path (see above). On failure wf is left empty (safe to close).
dato_status dato_weight_files_open(dato_weight_files* wf, const char* path, dato_error* err);
// The tensor called name, or NULL. O(1) expected.
const dato_st_tensor* dato_weight_files_find(const dato_weight_files* wf, const char* name);
// Number of tensors, and the i-th one (0 <= i < count) for iterating over all of them.
int dato_weight_files_count(const dato_weight_files* wf);
const dato_st_tensor* dato_weight_files_tensor(const dato_weight_files* wf, int i);
// Closes every file; wf is left empty.
void dato_weight_files_close(dato_weight_files* wf);
// dato_safetensors_release of tensor t in whichever open file holds it.
void dato_weight_files_release(const dato_weight_files* wf, const dato_st_tensor* t);

#endif
