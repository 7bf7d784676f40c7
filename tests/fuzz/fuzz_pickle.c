// libFuzzer target for the restricted unpickler of PyTorch checkpoints (engine/io/pickle.c): any
// byte string must be accepted or refused without reading outside the input, leaking, running
// away in time or memory, or breaking the invariants of the tensor table. Build and run:
// docs/CKPT.md (same setup as docs/FUZZING.md).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pickle.h"

// A broken invariant is a finding: trap so that libFuzzer saves the input.
#define INVARIANT(cond)                                                                                                \
    do {                                                                                                               \
        if (!(cond)) __builtin_trap();                                                                                 \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    dato_pickle_tensors pt;
    dato_error err;
    if (dato_pickle_load_tensors(&pt, data, size, "fuzz-input", &err) != DATO_OK) {
        // A failed parse leaves nothing behind and names its source.
        INVARIANT(pt.tensors == NULL && pt.storages == NULL && pt.n_tensors == 0 && pt.n_storages == 0);
        INVARIANT(memchr(err.msg, '\0', sizeof err.msg) != NULL && strncmp(err.msg, "fuzz-input: ", 12) == 0);
        return 0;
    }
    INVARIANT(pt.n_tensors >= 0 && (size_t)pt.n_tensors <= size / 4);
    for (int i = 0; i < pt.n_storages; i++) {
        const dato_pickle_storage* s = &pt.storages[i];
        INVARIANT(s->numel >= 0 && s->numel <= INT64_MAX / 16);
        INVARIANT(strlen(s->key) >= 1 && strlen(s->key) <= DATO_PICKLE_MAX_KEY);
        if (i) INVARIANT(strcmp(pt.storages[i - 1].key, s->key) < 0);
    }
    for (int i = 0; i < pt.n_tensors; i++) {
        const dato_pickle_tensor* t = &pt.tensors[i];
        INVARIANT(t->name && strlen(t->name) <= DATO_PICKLE_MAX_NAME);
        if (i) INVARIANT(strcmp(pt.tensors[i - 1].name, t->name) < 0);
        INVARIANT(t->storage >= 0 && t->storage < pt.n_storages);
        INVARIANT(t->ndim >= 0 && t->ndim <= DATO_ST_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            INVARIANT(t->shape[d] >= 0);
            numel *= t->shape[d];
        }
        INVARIANT(numel == t->numel);
        const dato_pickle_storage* s = &pt.storages[t->storage];
        INVARIANT(t->offset >= 0 && t->offset <= s->numel && t->numel <= s->numel - t->offset);
    }
    dato_pickle_tensors_free(&pt);
    return 0;
}
