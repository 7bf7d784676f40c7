// A model's parameter table and its one loader. Every tensor a model loads is a row: its name in
// the model's two checkpoint layouts (the UNet's and the VAE's: diffusers 0, LDM 1; the text
// encoder's: transformers 0, OpenCLIP 1), its shape in the engine and the slot it fills. The
// slots are carved in table order from one weight block on the backend: GEMM weights
// (Linear/Conv2d) in the model's weight dtype (engine/io/weight_dtype.h), everything else f32.
// The UNet, the VAE decoder, the text encoders and CLIP's vision tower build such a table and
// check, allocate, convert and upload it here.
#ifndef DATO_PARAM_TABLE_H
#define DATO_PARAM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "status.h"
#include "tensor.h"
#include "tensor_source.h"

// One row. A file may store a parameter differently from the engine; the last fields say how.
typedef struct {
    char name[2][128];  // in layouts 0 and 1, without the checkpoint prefix
    char legacy[128];   // an older layout-0 name a file may hold instead (VAE attention's query, key,
                        // value, proj_attn), or ""
    int ndim;
    int64_t shape[4];   // in the engine
    int gemm;           // a Linear/Conv2d weight: stored in the model's weight dtype
    int matrix;         // a (C, C) Linear that a file may store as a (C, C, 1, 1) conv (LDM VAE attention)
    int oc_slice;       // layout 1: row block 0, 1 or 2 (q, k, v) of a fused tensor 3x as tall
                        // (OpenCLIP's in_proj); -1: the whole tensor
    int oc_transposed;  // layout 1: stored transposed (OpenCLIP's text_projection)
    dato_tensor* slot;  // the model's tensor; its data points into the weight block once allocated
} dato_param;

// A model's table as the loader sees it: the model's own fields, passed by value.
typedef struct {
    dato_param* params;       // (n)
    int n;
    dato_backend* be;
    void** weights;           // the model's weight block: NULL until allocated
    dato_dtype* weight_dtype; // the model's GEMM weight dtype: set by dato_params_set_gemm_dtype
    const char* what;         // the model in messages: "unet", "vae", "text encoder"
} dato_param_table;

// The table of model m, a struct with be, params, n_params, weights and weight_dtype (the UNet,
// the VAE, the text encoder).
#define DATO_PARAM_TABLE(m, what_)                                                                         \
    ((dato_param_table){.params = (m)->params, .n = (m)->n_params, .be = (m)->be, .weights = &(m)->weights, \
                        .weight_dtype = &(m)->weight_dtype, .what = (what_)})

// A table being built: rows appended to the model's array (*params, *n rows, room for cap).
typedef struct {
    dato_param** params;
    int* n;
    int cap;
    size_t* numel;      // the model's element count, or NULL
    dato_device device; // of the slots
    const char* what;   // the model in messages
    dato_error* err;
} dato_param_builder;

// How a checkpoint names a table's tensors.
typedef struct {
    const dato_tensor_source* src;
    int layout;          // 0 or 1: which name
    const char* prefix;  // before every name ("model.diffusion_model."; "" in a component folder)
    const char* strip;   // dropped from the start of a name holding it, or NULL ("text_model." in
                         // transformers 5's bare CLIPTextModel); strict checks the names as they are
    const char* strict;  // every tensor under prefix + strict must be a row ("": all under prefix);
                         // NULL: other tensors are ignored
    const char* model;   // with strict: the model an extra tensor is not part of ("UNet", "VAE decoder")
} dato_param_names;

// Appends a row: names in layouts 0 and 1, shape and gemm flag; no legacy name, not a matrix, whole
// in both layouts (the caller sets those after). *slot becomes an f32 view on the builder's device
// with no data. Refuses a name over 127 bytes, naming it.
dato_status dato_param_push(dato_param_builder* b, const char* name0, const char* name1, int ndim,
                            const int64_t* shape, int gemm, dato_tensor* slot);
// The row whose name in layout is name (in layout 0 also its legacy name); NULL if none.
const dato_param* dato_param_find(const dato_param* params, int n, int layout, const char* name);

// After build, before the block is allocated: every GEMM slot (and *t.weight_dtype) set to dt (F32,
// or F16/BF16 on a backend that multiplies them), refusing a backend that cannot.
dato_status dato_params_set_gemm_dtype(dato_param_table t, dato_dtype dt, dato_error* err);
// Allocates the weight block (nothing when it exists) and points every slot into it.
dato_status dato_params_alloc(dato_param_table t, dato_error* err);
// Allocates and fills every slot with seeded normals * scale, a stream per row (norm gammas, by
// their layout-0 name, 1 + noise): exact real shapes without a file.
dato_status dato_params_init_random(dato_param_table t, unsigned long long seed, float scale, dato_error* err);
// Checks every row against the checkpoint: present (under its legacy name too), with its shape
// as the layout stores it; with names->strict, no tensor the table does not name. The message
// names the file and the tensor.
dato_status dato_params_check(const dato_param* params, int n, const dato_param_names* names,
                              dato_error* err);
// dato_params_check, then allocates and fills every slot: F32/F16/BF16 converted to f32, taken
// apart as the layout stores it, GEMM weights converted to their dtype.
dato_status dato_params_load(dato_param_table t, const dato_param_names* names, dato_error* err);

// Dimension d of a checkpoint tensor as a config's int: INT_MAX when larger (every config refuses
// that), so that a config inferred from shapes is range-checked before any arithmetic.
int dato_st_dim(const dato_st_tensor* t, int d);
// "(a, b, c)": a shape for messages.
const char* dato_shape_text(int ndim, const int64_t* shape, char* buf, size_t n);
// The tensor whose whole name is printf(fmt, ...), or NULL.
const dato_st_tensor* dato_source_findf(const dato_tensor_source* src, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
