// libFuzzer target for the safetensors parser: any byte string must be accepted or rejected
// without reading outside the input, leaking, or breaking the invariants of a parsed file.
// Build and run: docs/FUZZING.md.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

// A broken invariant is a finding: trap so that libFuzzer saves the input.
#define INVARIANT(cond)                \
    do {                               \
        if (!(cond)) __builtin_trap(); \
    } while (0)

// Parses size bytes at data and checks the result.
static void check_parse(const uint8_t* data, size_t size) {
    dato_safetensors st;
    dato_error err;
    if (dato_safetensors_parse(&st, data, size, "fuzz-input", &err) != DATO_OK) {
        // A failed parse leaves nothing behind and names its source.
        INVARIANT(st.path == NULL && st.tensors == NULL && st.metadata == NULL && st.by_name == NULL);
        INVARIANT(memchr(err.msg, '\0', sizeof err.msg) != NULL && strncmp(err.msg, "fuzz-input: ", 12) == 0);
        return;
    }
    const uint8_t* data_start = data + 8 + st.header_size;
    const uint8_t* claimed_end = data_start; // tensors come in data order and never share a byte
    for (int i = 0; i < st.n_tensors; i++) {
        const dato_st_tensor* t = &st.tensors[i];
        const uint8_t* p = t->data;
        INVARIANT(p >= data_start && t->nbytes <= (size_t)(data + size - p));
        INVARIANT(t->numel >= 0 && t->nbytes == (size_t)t->numel * dato_st_dtype_size(t->dtype));
        INVARIANT(t->ndim >= 0 && t->ndim <= DATO_ST_MAX_DIMS);
        INVARIANT(dato_safetensors_find(&st, t->name) == t);
        if (t->nbytes) {
            INVARIANT(p >= claimed_end);
            claimed_end = p + t->nbytes;
        }
        uint8_t* copy = malloc(t->nbytes + 1);                      // (nbytes,)
        float* f32 = malloc((size_t)t->numel * sizeof(float) + 1); // (numel,)
        if (copy && f32) {
            memcpy(copy, p, t->nbytes); // ASan checks the whole claimed range
            dato_dtype dt;
            dato_status s = dato_st_tensor_to_f32(t, f32, (size_t)t->numel, &err);
            INVARIANT(dato_st_dtype_to_dato(t->dtype, &dt) ? s == DATO_OK : s == DATO_ERR_UNSUPPORTED);
        }
        free(copy);
        free(f32);
    }
    for (int i = 1; i < st.n_tensors; i++) INVARIANT(strcmp(st.by_name[i - 1]->name, st.by_name[i]->name) < 0);
    for (int i = 0; i < st.n_metadata; i++)
        INVARIANT(dato_safetensors_metadata(&st, st.metadata[i].key) == st.metadata[i].value);
    dato_safetensors_close(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // The input as a whole file.
    check_parse(data, size);
    // The input as "header NUL data" with the length prefix filled in, so that mutations of the
    // JSON reach the validation code without having to keep an 8-byte length consistent.
    const uint8_t* nul = memchr(data, '\0', size);
    if (!nul) return 0;
    size_t header_len = (size_t)(nul - data), data_len = size - header_len - 1;
    uint8_t* file = malloc(8 + header_len + data_len); // exact size: ASan sees any overrun
    if (!file) return 0;
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    memcpy(file + 8, data, header_len);
    memcpy(file + 8 + header_len, nul + 1, data_len);
    check_parse(file, 8 + header_len + data_len);
    free(file);
    return 0;
}
