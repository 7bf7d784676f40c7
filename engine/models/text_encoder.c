// The CLIP text encoder forward and its workspace, and opening one from a folder or a
// single-file checkpoint. Every activation comes from one arena planned for (B, L) by running
// this same forward on the null backend with a measuring arena.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "text_encoder.h"

void dato_text_encoder_free(dato_text_encoder* te) {
    if (te->weights) te->be->ops->free(te->be, te->weights);
    if (te->ws_block) te->be->ops->free(te->be, te->ws_block);
    free(te->params);
    free(te->layers);
    free(te->eos_pos);
    memset(te, 0, sizeof *te);
}

void dato_te_eos_positions(const int32_t* ids, int B, int L, int eos_token_id, int32_t* pos) {
    for (int b = 0; b < B; b++) {
        const int32_t* row = ids + (size_t)b * L; // (L)
        int p = 0;
        if (eos_token_id == DATO_TE_LEGACY_EOS) { // the first largest id
            for (int i = 1; i < L; i++) p = row[i] > row[p] ? i : p;
        } else { // the first eos; 0 when there is none
            for (int i = L - 1; i >= 0; i--) p = row[i] == eos_token_id ? i : p;
        }
        pos[b] = p;
    }
}

// ---- forward ---------------------------------------------------------------------------------------

// Row `row` of a 2-D tensor (rows, C) as a (1, C) tensor; data stays NULL while measuring.
static dato_tensor row_of(const dato_tensor* t, int64_t row) {
    int64_t c = t->shape[t->ndim - 1];
    float* base = t->data; // (rows, C)
    return dato_tensor_make(base ? base + row * c : NULL, t->dtype, t->device, 2, (int64_t[]){1, c});
}

// A (rows, cols) view of a tensor's memory.
static dato_tensor view2(const dato_tensor* t, int64_t rows, int64_t cols) {
    return dato_tensor_make(t->data, t->dtype, t->device, 2, (int64_t[]){rows, cols});
}

static dato_tensor tmp(dato_arena* a, const dato_backend* be, int64_t rows, int64_t cols) {
    return dato_arena_tensor(a, DATO_F32, be->device, 2, (int64_t[]){rows, cols});
}

dato_te_acts dato_te_acts_carve(dato_arena* a, dato_device dev, int64_t M, int64_t W, int64_t I) {
    dato_te_acts s;
    dato_tensor* wide[] = {&s.x, &s.h, &s.q, &s.k, &s.v, &s.o};
    for (int i = 0; i < 6; i++) *wide[i] = dato_arena_tensor(a, DATO_F32, dev, 2, (int64_t[]){M, W});
    s.f = dato_arena_tensor(a, DATO_F32, dev, 2, (int64_t[]){M, I});
    return s;
}

dato_status dato_te_layer_forward(dato_backend* be, const dato_te_layer* ly, int B, int L, int heads, float eps,
                                  dato_te_act act, int causal, dato_te_acts* s, dato_error* err) {
    const dato_backend_ops* op = be->ops;
    int64_t W = s->x.shape[1];
    DATO_TRY(op->layer_norm(be, &s->h, &s->x, &ly->ln1.w, &ly->ln1.b, eps, err));
    DATO_TRY(op->linear(be, &s->q, &s->h, &ly->q.w, &ly->q.b, err));
    DATO_TRY(op->linear(be, &s->k, &s->h, &ly->k.w, &ly->k.b, err));
    DATO_TRY(op->linear(be, &s->v, &s->h, &ly->v.w, &ly->v.b, err));
    dato_tensor q3 = dato_tensor_make(s->q.data, DATO_F32, be->device, 3, (int64_t[]){B, L, W}); // (B, L, W)
    dato_tensor k3 = dato_tensor_make(s->k.data, DATO_F32, be->device, 3, (int64_t[]){B, L, W}); // (B, L, W)
    dato_tensor v3 = dato_tensor_make(s->v.data, DATO_F32, be->device, 3, (int64_t[]){B, L, W}); // (B, L, W)
    dato_tensor o3 = dato_tensor_make(s->o.data, DATO_F32, be->device, 3, (int64_t[]){B, L, W}); // (B, L, W)
    DATO_TRY(op->attention(be, &o3, &q3, &k3, &v3, heads, 1.0f / sqrtf((float)(W / heads)), causal, err));
    DATO_TRY(op->linear(be, &s->h, &s->o, &ly->out.w, &ly->out.b, err));
    DATO_TRY(op->add(be, &s->x, &s->x, &s->h, err));
    DATO_TRY(op->layer_norm(be, &s->h, &s->x, &ly->ln2.w, &ly->ln2.b, eps, err));
    DATO_TRY(op->linear(be, &s->f, &s->h, &ly->fc1.w, &ly->fc1.b, err));
    DATO_TRY(act == DATO_TE_ACT_GELU ? op->gelu(be, &s->f, &s->f, err) : op->quick_gelu(be, &s->f, &s->f, err));
    DATO_TRY(op->linear(be, &s->h, &s->f, &ly->fc2.w, &ly->fc2.b, err));
    DATO_TRY(op->add(be, &s->x, &s->x, &s->h, err));
    return DATO_OK;
}

// The forward on backend be over arena a (be is the null backend while planning). eos_pos
// (B) on the host is read only when pooled is asked for.
static dato_status forward_on(const dato_text_encoder* te, dato_backend* be, dato_arena* a, const int32_t* ids, int B,
                              int L, int skip, int final_norm, dato_tensor* hidden, dato_tensor* pooled,
                              const int32_t* eos_pos, dato_error* err) {
    const dato_backend_ops* op = be->ops;
    const dato_te_config* c = &te->cfg;
    int64_t M = (int64_t)B * L, W = c->width;
    size_t mark = dato_arena_mark(a);
    dato_te_acts s = dato_te_acts_carve(a, be->device, M, W, c->intermediate); // (B*L, .) each
    dato_tensor* x = &s.x;                            // (B*L, W) the residual stream
    dato_tensor g = tmp(a, be, B, W);                 // (B, W) eos rows
    if (a->overflowed)
        return dato_fail(err, DATO_ERR_NOMEM, "text encoder: workspace too small (planned %zu bytes)", a->cap);

    // embeddings: token rows gathered by copies (the table stays on the device), then + positions
    dato_tensor pos = view2(&te->position_embedding, L, W); // (L, W) rows 0..L-1
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < L; i++) {
            dato_tensor dst = row_of(x, (int64_t)b * L + i), src = row_of(&te->token_embedding, ids[b * L + i]);
            DATO_TRY(op->copy(be, &dst, &src, err));
        }
        dato_tensor xb = row_of(x, (int64_t)b * L); // (L, W) of image b
        xb.shape[0] = L;
        DATO_TRY(op->add(be, &xb, &xb, &pos, err));
    }

    int capture = c->n_layers - skip;                 // layers run before hidden is taken
    int n_run = pooled ? c->n_layers : capture;
    for (int l = 0;; l++) {
        if (hidden && l == capture) {
            dato_tensor out = view2(hidden, M, W); // (B*L, W)
            if (final_norm) DATO_TRY(op->layer_norm(be, &out, x, &te->final_ln.w, &te->final_ln.b, c->eps, err));
            else DATO_TRY(op->copy(be, &out, x, err));
        }
        if (l == n_run) break;
        DATO_TRY(dato_te_layer_forward(be, &te->layers[l], B, L, c->heads, c->eps, c->act, 1, &s, err));
    }

    if (pooled) { // final LayerNorm is per row: norm only the eos rows
        for (int b = 0; b < B; b++) {
            dato_tensor dst = row_of(&g, b), src = row_of(x, (int64_t)b * L + eos_pos[b]);
            DATO_TRY(op->copy(be, &dst, &src, err));
        }
        DATO_TRY(op->layer_norm(be, &g, &g, &te->final_ln.w, &te->final_ln.b, c->eps, err));
        if (te->projection.data) DATO_TRY(op->linear(be, pooled, &g, &te->projection, NULL, err));
        else DATO_TRY(op->copy(be, pooled, &g, err));
    }
    dato_arena_release(a, mark);
    return DATO_OK;
}

dato_status dato_text_encoder_reserve(dato_text_encoder* te, int B, int L, dato_error* err) {
    if (B < 1 || L < 1 || L > te->cfg.max_positions)
        return dato_fail(err, DATO_ERR_INVALID, "text encoder: batch %d and length %d (1..%d) are not valid", B, L,
                         te->cfg.max_positions);
    if (te->ws_block && te->ws_batch == B && te->ws_len == L) return DATO_OK;
    if (te->ws_block) te->be->ops->free(te->be, te->ws_block);
    free(te->eos_pos);
    te->ws_block = NULL;
    te->ws_batch = te->ws_len = 0;
    // the measuring pass: every output asked for, on ids of token 0 (values are not read)
    dato_backend null_be;
    dato_backend_null_init(&null_be);
    dato_arena m = dato_arena_measure();
    int32_t* ids = calloc((size_t)B * L, sizeof *ids);
    te->eos_pos = calloc((size_t)B, sizeof *te->eos_pos);
    if (!ids || !te->eos_pos) {
        free(ids);
        return dato_fail(err, DATO_ERR_NOMEM, "text encoder: cannot allocate the planning ids");
    }
    int64_t P = te->projection.data ? te->cfg.projection_dim : te->cfg.width;
    dato_tensor hidden = dato_tensor_make(NULL, DATO_F32, te->be->device, 3, (int64_t[]){B, L, te->cfg.width});
    dato_tensor pooled = dato_tensor_make(NULL, DATO_F32, te->be->device, 2, (int64_t[]){B, P});
    dato_status st = forward_on(te, &null_be, &m, ids, B, L, 0, 1, &hidden, &pooled, te->eos_pos, err);
    free(ids);
    if (st) return st;
    te->ws_block = te->be->ops->alloc(te->be, m.peak);
    if (!te->ws_block)
        return dato_fail(err, DATO_ERR_NOMEM, "text encoder: cannot allocate a %zu-byte workspace", m.peak);
    te->ws = dato_arena_over(te->ws_block, m.peak);
    te->ws_batch = B;
    te->ws_len = L;
    return DATO_OK;
}

dato_status dato_text_encoder_forward(dato_text_encoder* te, const int32_t* ids, int B, int L, int skip,
                                      int final_norm, dato_tensor* hidden, dato_tensor* pooled, dato_error* err) {
    const dato_te_config* c = &te->cfg;
    char s1[64];
    if (!te->weights) return dato_fail(err, DATO_ERR_INVALID, "text encoder: no weights loaded");
    if (!ids) return dato_fail(err, DATO_ERR_INVALID, "text encoder: no ids");
    DATO_TRY(dato_text_encoder_reserve(te, B, L, err));
    if (skip < 0 || skip > c->n_layers)
        return dato_fail(err, DATO_ERR_INVALID, "text encoder: skip %d is not in 0..%d layers", skip, c->n_layers);
    for (int i = 0; i < B * L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return dato_fail(err, DATO_ERR_INVALID, "text encoder: id %d at position %d is not in the vocabulary (%d)",
                             (int)ids[i], i, c->vocab_size);
    if (hidden && (hidden->ndim != 3 || hidden->shape[0] != B || hidden->shape[1] != L || hidden->shape[2] != c->width))
        return dato_fail(err, DATO_ERR_INVALID, "text encoder: hidden %s is not (%d, %d, %d)",
                         dato_shape_str(hidden, s1, sizeof s1), B, L, c->width);
    int64_t P = te->projection.data ? c->projection_dim : c->width;
    if (pooled && (pooled->ndim != 2 || pooled->shape[0] != B || pooled->shape[1] != P))
        return dato_fail(err, DATO_ERR_INVALID, "text encoder: pooled %s is not (%d, %lld)",
                         dato_shape_str(pooled, s1, sizeof s1), B, (long long)P);
    if (pooled) dato_te_eos_positions(ids, B, L, c->eos_token_id, te->eos_pos);
    return forward_on(te, te->be, &te->ws, ids, B, L, skip, final_norm, hidden, pooled, te->eos_pos, err);
}

// ---- opening ------------------------------------------------------------------------------------------

dato_status dato_text_encoder_open_source(dato_text_encoder* te, const dato_tensor_source* src, const char* prefix,
                                          dato_te_layout layout, const dato_te_hints* hints, dato_backend* be,
                                          dato_error* err) {
    return dato_text_encoder_open_source_as(te, src, prefix, layout, hints, be, DATO_F32, err);
}

dato_status dato_text_encoder_open_source_as(dato_text_encoder* te, const dato_tensor_source* src, const char* prefix,
                                             dato_te_layout layout, const dato_te_hints* hints, dato_backend* be,
                                             dato_dtype dtype, dato_error* err) {
    dato_te_config cfg;
    memset(te, 0, sizeof *te);
    DATO_TRY(dato_te_config_infer(&cfg, src, prefix, layout, hints, err));
    DATO_TRY(dato_text_encoder_build(te, &cfg, be, err));
    dato_status st = dato_text_encoder_set_weight_dtype(te, dtype, err);
    if (!st) st = dato_text_encoder_load(te, src, prefix, layout, err);
    if (st) dato_text_encoder_free(te);
    return st;
}

dato_status dato_text_encoder_open_folder(dato_text_encoder* te, const char* dir, dato_backend* be, dato_error* err) {
    return dato_text_encoder_open_folder_as(te, dir, be, DATO_F32, err);
}

dato_status dato_text_encoder_open_folder_as(dato_text_encoder* te, const char* dir, dato_backend* be, dato_dtype dtype,
                                             dato_error* err) {
    char cfg_path[4096];
    dato_te_config cfg;
    dato_weight_files wf;
    memset(te, 0, sizeof *te);
    DATO_TRY(dato_path_join(cfg_path, sizeof cfg_path, dir, "config.json", err));
    DATO_TRY(dato_te_config_from_json(&cfg, cfg_path, err));
    DATO_TRY(dato_weight_files_open(&wf, dir, err));
    dato_tensor_source src = dato_tensor_source_files(&wf);
    if (!src.find(src.ctx, "text_projection.weight")) cfg.projection_dim = 0; // a CLIPTextModel: its config's projection_dim is unused
    dato_status st = dato_text_encoder_build(te, &cfg, be, err);
    if (!st) st = dato_text_encoder_set_weight_dtype(te, dtype, err);
    if (!st) st = dato_text_encoder_load(te, &src, "", DATO_TE_LAYOUT_HF, err);
    dato_weight_files_close(&wf);
    if (st) dato_text_encoder_free(te);
    return st;
}
