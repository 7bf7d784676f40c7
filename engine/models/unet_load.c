// UNet weights: the parameter table loaded by the shared loader (engine/io/param_table.h) from a
// checkpoint (diffusers or LDM names) or filled by a seeded generator; an LDM file's config from
// its tensor shapes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "param_table.h"
#include "unet.h"
#include "unet_load.h"

dato_status dato_unet_set_weight_dtype(dato_unet* u, dato_dtype dt, dato_error* err) {
    return dato_params_set_gemm_dtype(DATO_PARAM_TABLE(u, "unet"), dt, err);
}

void dato_unet_free(dato_unet* u) {
    if (u->weights) u->be->ops->free(u->be, u->weights);
    free(u->params);
    free(u->tblocks);
    memset(u, 0, sizeof *u);
}

dato_status dato_unet_init_random(dato_unet* u, unsigned long long seed, float scale, dato_error* err) {
    return dato_params_init_random(DATO_PARAM_TABLE(u, "unet"), seed, scale, err);
}

dato_status dato_unet_check_names(const dato_unet* u, const dato_tensor_source* src, dato_layout layout,
                                  const char* prefix, int strict, dato_error* err) {
    dato_param_names names = {.src = src, .layout = layout, .prefix = prefix, .strict = strict ? "" : NULL,
                              .model = "UNet"};
    return dato_params_check(u->params, u->n_params, &names, err);
}

dato_status dato_unet_load_weights(dato_unet* u, const dato_tensor_source* src, dato_layout layout, const char* prefix,
                                   dato_error* err) {
    dato_param_names names = {.src = src, .layout = layout, .prefix = prefix, .strict = "", .model = "UNet"};
    return dato_params_load(DATO_PARAM_TABLE(u, "unet"), &names, err);
}

// ---- LDM single files: the config from tensor shapes -----------------------------------------------

// The transformer blocks of an LDM module ("input_blocks.4.1", "middle_block.1").
static int count_transformer_blocks(const dato_tensor_source* src, const char* prefix, const char* module) {
    int n = 0;
    while (dato_source_findf(src, "%s%s.transformer_blocks.%d.norm1.weight", prefix, module, n)) n++;
    return n;
}

dato_status dato_unet_config_infer_ldm(dato_unet_config* cfg, const dato_tensor_source* src, const char* prefix,
                                       const dato_unet_ldm_hints* hints, dato_error* err) {
    memset(cfg, 0, sizeof *cfg);
    const dato_st_tensor* conv_in = dato_source_findf(src, "%sinput_blocks.0.0.weight", prefix);
    const dato_st_tensor* conv_out = dato_source_findf(src, "%sout.2.weight", prefix);
    const dato_st_tensor* t0 = dato_source_findf(src, "%stime_embed.0.weight", prefix);
    if (!conv_in || conv_in->ndim != 4 || !conv_out || conv_out->ndim != 4 || !t0 || t0->ndim != 2)
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: no LDM UNet under '%s' (input_blocks.0.0.weight, out.2.weight and time_embed.0.weight "
                         "must exist with 4, 4 and 2 dims)",
                         src->label, prefix);
    cfg->in_channels = dato_st_dim(conv_in, 1);
    cfg->out_channels = dato_st_dim(conv_out, 0);
    cfg->time_embed_dim = dato_st_dim(t0, 0);
    cfg->flip_sin_to_cos = 1;
    cfg->freq_shift = 0;
    cfg->norm_eps = 1e-5f;
    cfg->norm_groups = hints && hints->norm_groups ? hints->norm_groups : 32;

    // Levels and layers per block from where the downsamplers ("input_blocks.k.0.op") sit.
    int n_input = 0, first_op = -1, n_ops = 0;
    for (; n_input <= DATO_UNET_MAX_LAYERS; n_input++) {
        int is_op = dato_source_findf(src, "%sinput_blocks.%d.0.op.weight", prefix, n_input) != NULL;
        int exists = is_op || dato_source_findf(src, "%sinput_blocks.%d.0.weight", prefix, n_input) ||
                     dato_source_findf(src, "%sinput_blocks.%d.0.in_layers.0.weight", prefix, n_input);
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
        const dato_st_tensor* c2 = dato_source_findf(src, "%sinput_blocks.%d.0.out_layers.3.weight", prefix, k);
        if (!c2 || c2->ndim != 4)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%sinput_blocks.%d.0.out_layers.3.weight' is missing",
                             src->label, prefix, k);
        cfg->block_channels[i] = dato_st_dim(c2, 0);
        const dato_st_tensor* pin = dato_source_findf(src, "%sinput_blocks.%d.1.proj_in.weight", prefix, k);
        cfg->level_has_attn[i] = pin != NULL;
        if (pin) {
            cfg->use_linear_projection = pin->ndim == 2;
            char module[32];
            snprintf(module, sizeof module, "input_blocks.%d.1", k);
            cfg->transformer_depth[i] = count_transformer_blocks(src, prefix, module);
            const dato_st_tensor* tk =
                dato_source_findf(src, "%sinput_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", prefix, k);
            if (tk && tk->ndim == 2) cfg->cross_attention_dim = dato_st_dim(tk, 1);
        } else {
            cfg->transformer_depth[i] = 1;
        }
    }
    cfg->mid_transformer_depth = count_transformer_blocks(src, prefix, "middle_block.1");
    if (cfg->mid_transformer_depth == 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: the mid block has no transformer (middle_block.1)", src->label);
    if (!cfg->cross_attention_dim) {
        const dato_st_tensor* tk =
            dato_source_findf(src, "%smiddle_block.1.transformer_blocks.0.attn2.to_k.weight", prefix);
        if (tk && tk->ndim == 2) cfg->cross_attention_dim = dato_st_dim(tk, 1);
    }
    // Heads cannot be read off shapes: SD1 (context 768) has 8 heads everywhere, SD2 and SDXL
    // heads of 64 dims (ENGINE.md §4), unless the caller knows better.
    for (int i = 0; i < cfg->n_levels; i++) {
        if (hints && hints->heads[i]) cfg->heads[i] = hints->heads[i];
        else cfg->heads[i] = cfg->cross_attention_dim == 768 ? 8 : cfg->block_channels[i] / 64;
        if (cfg->heads[i] < 1) cfg->heads[i] = 1;
    }
    cfg->upcast_attention = cfg->cross_attention_dim == 1024; // SD2.x
    const dato_st_tensor* label = dato_source_findf(src, "%slabel_emb.0.0.weight", prefix);
    if (label) {
        if (label->ndim != 2)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%slabel_emb.0.0.weight' must be 2-D", src->label, prefix);
        cfg->add_embed_in = dato_st_dim(label, 1);
        cfg->addition_time_embed_dim = hints && hints->addition_time_embed_dim ? hints->addition_time_embed_dim : 256;
    }
    cfg->sample_size = 64;
    dato_status st = dato_unet_config_validate(cfg, err); // the time embedding's width too: 4 x the channels
    if (st) return dato_error_prefix(err, st, "%s: inferred UNet config: ", src->label);
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
