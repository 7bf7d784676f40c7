// PyTorch .ckpt / .pt / .pth checkpoints, both formats torch.save writes:
// - zip (torch >= 1.6): a zip (read with libzip) holding <archive>/data.pkl, the pickled object,
//   and <archive>/data/<key>, one raw little-endian storage per key (<archive> is the top folder,
//   whatever its name);
// - legacy (torch < 1.6, or _use_new_zipfile_serialization=False), tried when the file's first
//   byte is a pickle PROTO (0x80): pickles of the magic number, protocol version 1001 and sys_info,
//   then the object's pickle, then the sorted storage key list, then per key an 8-byte
//   little-endian element count and the storage's raw bytes. The file is memory-mapped; the
//   storages the tensors use are copied, the others skipped, every count checked.
//
// data.pkl is read by the restricted unpickler of engine/io/pickle.h, which executes nothing and
// refuses every global but the tensor-rebuild ones. The tensors exposed are those of the
// top-level dict's "state_dict" entry when it is a dict (LDM / Lightning files), else of the
// top-level dict; nested dicts give dotted names. Each storage a tensor uses is read once into
// memory owned by the dato_ckpt; tensors are contiguous views into it (storage offset applied).
// Checked, with messages naming the file and the tensor or key: data.pkl present, every
// storage entry present with exactly numel * dtype-size bytes, tensors contiguous and inside
// their storage (legacy: the key list names only declared storages, each count equals the
// declared numel, the bytes are in the file). Format and limits: docs/CKPT.md. The pre-0.4 tar
// format is refused.
#ifndef DATO_CKPT_H
#define DATO_CKPT_H

#include "safetensors.h"
#include "status.h"
#include "tensor_source.h"

typedef struct {
    char* path;
    char* archive; // the top folder of the zip entries (NULL for a legacy file)
    dato_st_tensor* tensors; // n_tensors, sorted by name (views into storage_data)
    int n_tensors;
    void** storage_data; // n_storages buffers, one per storage key
    int n_storages;
    int has_state_dict; // the tensors came from the "state_dict" entry
    int legacy; // the file is in the legacy (non-zip) format
} dato_ckpt;

// Opens and fully reads path. On failure *out is NULL.
dato_status dato_ckpt_open(dato_ckpt** out, const char* path, dato_error* err);
void dato_ckpt_close(dato_ckpt* c);
// The tensor called name, or NULL. O(log n).
const dato_st_tensor* dato_ckpt_find(const dato_ckpt* c, const char* name);
int dato_ckpt_count(const dato_ckpt* c);
// Tensor i in name order (0 <= i < count).
const dato_st_tensor* dato_ckpt_tensor(const dato_ckpt* c, int i);
// A tensor source over c (valid while c is open).
dato_tensor_source dato_ckpt_source(const dato_ckpt* c);

#endif
