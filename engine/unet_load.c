// UNet weights: one block carved into the parameter table's slots; filled from a checkpoint
// (diffusers or LDM names, F32/F16/BF16 converted to f32) or from a seeded generator.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "rng.h"
#include "unet.h"
#include "unet_load.h"
#include "weight_dtype.h"

// The block holds every slot at its dtype: GEMM weights in weight_dtype, the rest f32.
static dato_status alloc_weights(dato_unet* u, dato_error* err) {
    if (u->weights) return DATO_OK;
    size_t bytes = 0;
    for (int i = 0; i < u->n_params; i++) {
        const dato_tensor* t = u->params[i].slot;
        bytes += dato_arena_bytes(t->dtype, (size_t)dato_tensor_numel(t));
    }
    u->weights = u->be->ops->alloc(u->be, bytes);
    if (!u->weights) return dato_fail(err, DATO_ERR_NOMEM, "unet: cannot allocate %zu bytes of weights", bytes);
    dato_arena a = dato_arena_over(u->weights, bytes);
    for (int i = 0; i < u->n_params; i++) {
        dato_tensor* t = u->params[i].slot;
        t->data = dato_arena_alloc(&a, dato_tensor_nbytes(t));
    }
    return DATO_OK;
}

dato_status dato_unet_set_weight_dtype(dato_unet* u, dato_dtype dt, dato_error* err) {
    DATO_TRY(dato_weight_dtype_check(u->be, dt, "unet", err));
    if (u->weights)
        return dato_fail(err, DATO_ERR_INVALID, "unet: the weight dtype must be set before the weights are loaded");
    u->weight_dtype = dt;
    for (int i = 0; i < u->n_params; i++)
        if (u->params[i].gemm) u->params[i].slot->dtype = dt;
    return DATO_OK;
}

// Host staging for the largest parameter: its f32 values (with_f32: not needed on the CPU
// backend, whose slots are filled in place) and their half copy when GEMM weights are half.
static dato_status alloc_staging(const dato_unet* u, int with_f32, float** f32, uint16_t** half, dato_error* err) {
    size_t max_n = 0;
    for (int i = 0; i < u->n_params; i++) {
        size_t n = (size_t)dato_tensor_numel(u->params[i].slot);
        max_n = n > max_n ? n : max_n;
    }
    int with_half = u->weight_dtype != DATO_F32;
    *f32 = with_f32 ? malloc(max_n * sizeof **f32) : NULL;
    *half = with_half ? malloc(max_n * sizeof **half) : NULL;
    if ((with_f32 && !*f32) || (with_half && !*half)) {
        free(*f32);
        free(*half);
        return dato_fail(err, DATO_ERR_NOMEM, "unet: cannot allocate a staging buffer");
    }
    return DATO_OK;
}

void dato_unet_free(dato_unet* u) {
    if (u->weights) u->be->ops->free(u->be, u->weights);
    free(u->params);
    free(u->tblocks);
    memset(u, 0, sizeof *u);
}

// A norm's gamma: its parameter name ends in "norm*.weight" or is a GroupNorm/LayerNorm slot.
static int is_norm_gamma(const dato_unet_param* p) {
    const char* n = p->name[DATO_LAYOUT_DIFFUSERS];
    size_t len = strlen(n);
    return p->ndim == 1 && len > 7 && strcmp(n + len - 7, ".weight") == 0 && strstr(n, "norm") != NULL;
}

dato_status dato_unet_init_random(dato_unet* u, unsigned long long seed, float scale, dato_error* err) {
    dato_status st = alloc_weights(u, err);
    if (st) return st;
    dato_rng rng;
    float* host;    // (max numel) f32 values
    uint16_t* half; // (max numel) their half copy, or NULL
    if ((st = alloc_staging(u, 1, &host, &half, err))) return st;
    for (int i = 0; i < u->n_params; i++) {
        const dato_unet_param* p = &u->params[i];
        size_t n = (size_t)dato_tensor_numel(p->slot);
        dato_rng_seed_stream(&rng, seed, (uint64_t)i); // each tensor its own stream: order-independent
        int gamma = is_norm_gamma(p);
        for (size_t k = 0; k < n; k++) host[k] = (gamma ? 1.0f : 0.0f) + scale * (float)dato_rng_normal(&rng);
        dato_weight_upload(u->be, p->slot->data, host, n, p->slot->dtype, half);
    }
    free(host);
    free(half);
    return DATO_OK;
}

static const char* shape_text(int ndim, const int64_t* shape, char* buf, size_t n) {
    dato_tensor t = dato_tensor_make(NULL, DATO_F32, DATO_DEV_CPU, ndim, shape);
    return dato_shape_str(&t, buf, n);
}

dato_status dato_unet_check_names(const dato_unet* u, const dato_tensor_source* src, dato_layout layout,
                                  const char* prefix, int strict, dato_error* err) {
    char name[256], s1[64], s2[64];
    size_t plen = strlen(prefix);
    for (int i = 0; i < u->n_params; i++) {
        const dato_unet_param* p = &u->params[i];
        snprintf(name, sizeof name, "%s%s", prefix, p->name[layout]);
        const dato_st_tensor* t = src->find(src->ctx, name);
        if (!t) return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: tensor '%s' is missing", src->label, name);
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config expects %s", src->label, name,
                             shape_text(t->ndim, t->shape, s1, sizeof s1), shape_text(p->ndim, p->shape, s2, sizeof s2));
    }
    if (!strict) return DATO_OK;
    // Every tensor under the prefix must be one the model uses: an extra one means a config mismatch.
    int n = src->count(src->ctx);
    for (int i = 0; i < n; i++) {
        const dato_st_tensor* t = src->at(src->ctx, i);
        if (strncmp(t->name, prefix, plen) != 0) continue;
        if (!dato_unet_find_param(u, layout, t->name + plen))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s' is not part of the configured UNet", src->label,
                             t->name);
    }
    return DATO_OK;
}

dato_status dato_unet_load_weights(dato_unet* u, const dato_tensor_source* src, dato_layout layout, const char* prefix,
                                   dato_error* err) {
    dato_status st = dato_unet_check_names(u, src, layout, prefix, 1, err);
    if (st) return st;
    if ((st = alloc_weights(u, err))) return st;
    float* host;    // (max numel) f32 staging, NULL on the CPU backend
    uint16_t* half; // (max numel) half staging, NULL for f32 weights
    if ((st = alloc_staging(u, u->be->device != DATO_DEV_CPU, &host, &half, err))) return st;
    char name[256];
    for (int i = 0; i < u->n_params && !st; i++) {
        const dato_unet_param* p = &u->params[i];
        snprintf(name, sizeof name, "%s%s", prefix, p->name[layout]);
        const dato_st_tensor* t = src->find(src->ctx, name);
        size_t n = (size_t)dato_tensor_numel(p->slot);
        float* dst = host ? host : p->slot->data;
        st = dato_st_tensor_to_f32(t, dst, n, err);
        if (!st && host) dato_weight_upload(u->be, p->slot->data, host, n, p->slot->dtype, half);
    }
    free(host);
    free(half);
    return st;
}

// ---- LDM single files: the config from tensor shapes -----------------------------------------------

static const dato_st_tensor* find_fmt(const dato_tensor_source* src, const char* prefix, const char* fmt, int a, int b) {
    char name[256], tail[192];
    snprintf(tail, sizeof tail, fmt, a, b);
    snprintf(name, sizeof name, "%s%s", prefix, tail);
    return src->find(src->ctx, name);
}

static int count_transformer_blocks(const dato_tensor_source* src, const char* prefix, const char* fmt, int layer) {
    int n = 0;
    while (find_fmt(src, prefix, fmt, layer, n)) n++;
    return n;
}

dato_status dato_unet_config_infer_ldm(dato_unet_config* cfg, const dato_tensor_source* src, const char* prefix,
                                       const dato_unet_ldm_hints* hints, dato_error* err) {
    memset(cfg, 0, sizeof *cfg);
    const dato_st_tensor* conv_in = find_fmt(src, prefix, "input_blocks.0.0.weight", 0, 0);
    const dato_st_tensor* conv_out = find_fmt(src, prefix, "out.2.weight", 0, 0);
    const dato_st_tensor* t0 = find_fmt(src, prefix, "time_embed.0.weight", 0, 0);
    if (!conv_in || conv_in->ndim != 4 || !conv_out || conv_out->ndim != 4 || !t0 || t0->ndim != 2)
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: no LDM UNet under '%s' (input_blocks.0.0.weight, out.2.weight and time_embed.0.weight "
                         "must exist with 4, 4 and 2 dims)",
                         src->label, prefix);
    cfg->in_channels = (int)conv_in->shape[1];
    cfg->out_channels = (int)conv_out->shape[0];
    cfg->time_embed_dim = (int)t0->shape[0];
    cfg->flip_sin_to_cos = 1;
    cfg->freq_shift = 0;
    cfg->norm_eps = 1e-5f;
    cfg->norm_groups = hints && hints->norm_groups ? hints->norm_groups : 32;

    // Levels and layers per block from where the downsamplers ("input_blocks.k.0.op") sit.
    int n_input = 0, first_op = -1, n_ops = 0;
    for (; n_input <= DATO_UNET_MAX_LAYERS; n_input++) {
        int is_op = find_fmt(src, prefix, "input_blocks.%d.0.op.weight", n_input, 0) != NULL;
        int exists = is_op || find_fmt(src, prefix, "input_blocks.%d.0.weight", n_input, 0) ||
                     find_fmt(src, prefix, "input_blocks.%d.0.in_layers.0.weight", n_input, 0);
        if (!exists) break;
        if (is_op && first_op < 0) first_op = n_input;
        n_ops += is_op;
    }
    cfg->n_levels = n_ops + 1;
    cfg->layers_per_block = first_op > 0 ? first_op - 1 : n_input - 1;
    if (cfg->n_levels > DATO_UNET_MAX_LEVELS || cfg->layers_per_block < 1 ||
        n_input != dato_unet_n_branches(cfg))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %d input blocks with %d downsamplers do not form a UNet this engine "
                         "supports", src->label, n_input, n_ops);
    int lpb = cfg->layers_per_block;
    cfg->cross_attention_dim = 0;
    for (int i = 0; i < cfg->n_levels; i++) {
        int k = (lpb + 1) * i + 1;
        const dato_st_tensor* c2 = find_fmt(src, prefix, "input_blocks.%d.0.out_layers.3.weight", k, 0);
        if (!c2 || c2->ndim != 4)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%sinput_blocks.%d.0.out_layers.3.weight' is missing",
                             src->label, prefix, k);
        cfg->block_channels[i] = (int)c2->shape[0];
        const dato_st_tensor* pin = find_fmt(src, prefix, "input_blocks.%d.1.proj_in.weight", k, 0);
        cfg->level_has_attn[i] = pin != NULL;
        if (pin) {
            cfg->use_linear_projection = pin->ndim == 2;
            cfg->transformer_depth[i] =
                count_transformer_blocks(src, prefix, "input_blocks.%d.1.transformer_blocks.%d.norm1.weight", k);
            const dato_st_tensor* tk = find_fmt(src, prefix, "input_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", k, 0);
            if (tk && tk->ndim == 2) cfg->cross_attention_dim = (int)tk->shape[1];
        } else {
            cfg->transformer_depth[i] = 1;
        }
    }
    cfg->mid_transformer_depth = count_transformer_blocks(src, prefix, "middle_block.%d.transformer_blocks.%d.norm1.weight", 1);
    if (cfg->mid_transformer_depth == 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: the mid block has no transformer (middle_block.1)", src->label);
    if (!cfg->cross_attention_dim) {
        const dato_st_tensor* tk = find_fmt(src, prefix, "middle_block.1.transformer_blocks.0.attn2.to_k.weight", 0, 0);
        if (tk && tk->ndim == 2) cfg->cross_attention_dim = (int)tk->shape[1];
    }
    // Heads cannot be read off shapes: SD1 (context 768) has 8 heads everywhere, SD2 and SDXL
    // heads of 64 dims (ENGINE.md §4), unless the caller knows better.
    for (int i = 0; i < cfg->n_levels; i++) {
        if (hints && hints->heads[i]) cfg->heads[i] = hints->heads[i];
        else cfg->heads[i] = cfg->cross_attention_dim == 768 ? 8 : cfg->block_channels[i] / 64;
        if (cfg->heads[i] < 1) cfg->heads[i] = 1;
    }
    cfg->upcast_attention = cfg->cross_attention_dim == 1024; // SD2.x
    const dato_st_tensor* label = find_fmt(src, prefix, "label_emb.0.0.weight", 0, 0);
    if (label) {
        if (label->ndim != 2)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%slabel_emb.0.0.weight' must be 2-D", src->label, prefix);
        cfg->add_embed_in = (int)label->shape[1];
        cfg->addition_time_embed_dim = hints && hints->addition_time_embed_dim ? hints->addition_time_embed_dim : 256;
    }
    cfg->sample_size = 64;
    if (cfg->time_embed_dim != 4 * cfg->block_channels[0])
        return dato_fail(err, DATO_ERR_FORMAT, "%s: time embedding width %d is not 4 x %d channels", src->label,
                         cfg->time_embed_dim, cfg->block_channels[0]);
    dato_status st = dato_unet_config_validate(cfg, err);
    if (st) return dato_fail(err, st, "%s: inferred UNet config: %s", src->label, err ? err->msg : "");
    return DATO_OK;
}

dato_status dato_unet_open_source(dato_unet* u, const dato_tensor_source* src, dato_backend* be,
                                  const dato_unet_ldm_hints* hints, dato_error* err) {
    return dato_unet_open_source_as(u, src, be, hints, DATO_F32, err);
}

dato_status dato_unet_open_source_as(dato_unet* u, const dato_tensor_source* src, dato_backend* be,
                                     const dato_unet_ldm_hints* hints, dato_dtype dtype, dato_error* err) {
    const char* prefix = "model.diffusion_model.";
    dato_unet_config cfg;
    memset(u, 0, sizeof *u);
    dato_status st = dato_unet_config_infer_ldm(&cfg, src, prefix, hints, err);
    if (!st) st = dato_unet_build(u, &cfg, be, err);
    if (!st) st = dato_unet_set_weight_dtype(u, dtype, err);
    if (!st) st = dato_unet_load_weights(u, src, DATO_LAYOUT_LDM, prefix, err);
    if (st && u->params) dato_unet_free(u);
    return st;
}

// ---- a model folder or a single file -------------------------------------------------------------------

dato_status dato_unet_open(dato_unet* u, const char* path, dato_backend* be, const dato_unet_ldm_hints* hints,
                           dato_error* err) {
    return dato_unet_open_as(u, path, be, hints, DATO_F32, err);
}

dato_status dato_unet_open_as(dato_unet* u, const char* path, dato_backend* be, const dato_unet_ldm_hints* hints,
                              dato_dtype dtype, dato_error* err) {
    char cfg_path[4096], unet_dir[4096];
    dato_unet_config cfg;
    dato_weight_files wf;
    dato_status st;
    memset(u, 0, sizeof *u);
    if (dato_is_dir(path)) { // diffusers: <path>/unet/ or <path> itself holding config.json
        if ((st = dato_path_join(unet_dir, sizeof unet_dir, path, "unet", err))) return st;
        if (!dato_is_dir(unet_dir)) snprintf(unet_dir, sizeof unet_dir, "%s", path);
        if ((st = dato_path_join(cfg_path, sizeof cfg_path, unet_dir, "config.json", err))) return st;
        if ((st = dato_unet_config_from_json(&cfg, cfg_path, err))) return st;
        if ((st = dato_weight_files_open(&wf, unet_dir, err))) return st;
        dato_tensor_source src = dato_tensor_source_files(&wf);
        st = dato_unet_build(u, &cfg, be, err);
        if (!st) st = dato_unet_set_weight_dtype(u, dtype, err);
        if (!st) st = dato_unet_load_weights(u, &src, DATO_LAYOUT_DIFFUSERS, "", err);
    } else { // a single LDM file
        if ((st = dato_weight_files_open(&wf, path, err))) return st;
        dato_tensor_source src = dato_tensor_source_files(&wf);
        st = dato_unet_open_source_as(u, &src, be, hints, dtype, err);
    }
    dato_weight_files_close(&wf);
    if (st && u->params) dato_unet_free(u);
    return st;
}
