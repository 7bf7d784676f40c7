// The text encoder's config (config.json, or inferred from a checkpoint's shapes), its
// parameter table and its loading (the shared loader, engine/io/param_table.h). Names are data: one
// table for the tensors of a layer, one for the rest, each row naming the tensor in
// transformers' and OpenCLIP's layout.
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "json_fields.h"
#include "text_encoder.h"

// ---- config -----------------------------------------------------------------------------------

// The config's ints in range before any arithmetic on them (a config is untrusted input); the
// bounds are far above any released model's.
#define RANGE(name, field, lo, hi) DATO_INT_RANGE(dato_te_config, name, field, lo, hi)
static const dato_int_range INT_RANGES[] = {
    RANGE("vocab_size", vocab_size, 1, 1 << 20),
    RANGE("hidden_size", width, 1, 65536),
    RANGE("intermediate_size", intermediate, 1, 1 << 18),
    RANGE("num_hidden_layers", n_layers, 1, 1024),
    RANGE("max_position_embeddings", max_positions, 1, 65536),
    RANGE("projection_dim", projection_dim, 0, 65536),
};

dato_status dato_te_config_validate(const dato_te_config* c, dato_error* err) {
    dato_status st = dato_check_int_ranges(c, INT_RANGES, (int)(sizeof INT_RANGES / sizeof *INT_RANGES), err);
    if (st) return dato_error_prefix(err, st, "text encoder config: ");
    if (c->heads < 1 || c->width % c->heads != 0)
        return dato_fail(err, DATO_ERR_INVALID, "text encoder config: %d attention heads do not divide hidden_size %d",
                         c->heads, c->width);
    if (c->act != DATO_TE_ACT_QUICK_GELU && c->act != DATO_TE_ACT_GELU)
        return dato_fail(err, DATO_ERR_INVALID, "text encoder config: hidden_act must be quick_gelu or gelu");
    if (!(c->eps > 0.0f && c->eps < 1.0f))
        return dato_fail(err, DATO_ERR_INVALID, "text encoder config: layer_norm_eps %g is not in (0, 1)", (double)c->eps);
    return DATO_OK;
}

dato_status dato_te_config_from_json_text(dato_te_config* cfg, const char* text, const char* label, dato_error* err) {
    memset(cfg, 0, sizeof *cfg);
    cJSON* root;
    dato_status st = dato_json_parse_object(text, label, &root, err);
    if (st) return st;
    cfg->eps = 1e-5f;
    cfg->eos_token_id = DATO_TE_LEGACY_EOS;
    if ((st = dato_json_int(root, "vocab_size", &cfg->vocab_size, 1, label, err)) ||
        (st = dato_json_int(root, "hidden_size", &cfg->width, 1, label, err)) ||
        (st = dato_json_int(root, "intermediate_size", &cfg->intermediate, 1, label, err)) ||
        (st = dato_json_int(root, "num_hidden_layers", &cfg->n_layers, 1, label, err)) ||
        (st = dato_json_int(root, "num_attention_heads", &cfg->heads, 1, label, err)) ||
        (st = dato_json_int(root, "max_position_embeddings", &cfg->max_positions, 1, label, err)) ||
        (st = dato_json_int(root, "projection_dim", &cfg->projection_dim, 0, label, err)) ||
        (st = dato_json_int(root, "eos_token_id", &cfg->eos_token_id, 0, label, err)) ||
        (st = dato_json_float(root, "layer_norm_eps", &cfg->eps, label, err)))
        goto done;
    const cJSON* act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    const char* a = cJSON_IsString(act) ? act->valuestring : "quick_gelu"; // CLIPTextConfig's default
    if (strcmp(a, "quick_gelu") == 0) cfg->act = DATO_TE_ACT_QUICK_GELU;
    else if (strcmp(a, "gelu") == 0) cfg->act = DATO_TE_ACT_GELU;
    else {
        st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field 'hidden_act': '%s' is not quick_gelu or gelu", label, a);
        goto done;
    }
    if ((st = dato_te_config_validate(cfg, err))) dato_error_prefix(err, st, "%s: ", label);
done:
    cJSON_Delete(root);
    return st;
}

dato_status dato_te_config_from_json(dato_te_config* cfg, const char* path, dato_error* err) {
    char* text = NULL;
    dato_status st = dato_read_text_file(path, &text, 1 << 20, err);
    if (st) return st;
    st = dato_te_config_from_json_text(cfg, text, path, err);
    free(text);
    return st;
}

// ---- the parameter table ---------------------------------------------------------------------------

enum { D_END = 0, D_W, D_I, D_V, D_POS, D_P };
enum { KEEP_F32 = 0, GEMM = 1 }; // a tensor stays f32, or feeds linear (stored in the load dtype)

typedef struct {
    const char* hf; // transformers name (after "text_model.encoder.layers.N." for layers)
    const char* oc; // OpenCLIP name (after "transformer.resblocks.N." for layers)
    int oc_slice;   // 0, 1, 2: q, k, v rows of the fused in_proj; -1: a whole tensor
    int oc_transposed;
    size_t field;   // offset of the dato_tensor in dato_te_layer or dato_text_encoder
    int shape[2];
    int gemm;       // GEMM: a Linear weight; KEEP_F32: norms, biases, embeddings
} param_spec;

#define LY(f) offsetof(dato_te_layer, f)
static const param_spec LAYER_SPEC[] = {
    {"layer_norm1.weight", "ln_1.weight", -1, 0, LY(ln1.w), {D_W}, KEEP_F32},
    {"layer_norm1.bias", "ln_1.bias", -1, 0, LY(ln1.b), {D_W}, KEEP_F32},
    {"self_attn.q_proj.weight", "attn.in_proj_weight", 0, 0, LY(q.w), {D_W, D_W}, GEMM},
    {"self_attn.q_proj.bias", "attn.in_proj_bias", 0, 0, LY(q.b), {D_W}, KEEP_F32},
    {"self_attn.k_proj.weight", "attn.in_proj_weight", 1, 0, LY(k.w), {D_W, D_W}, GEMM},
    {"self_attn.k_proj.bias", "attn.in_proj_bias", 1, 0, LY(k.b), {D_W}, KEEP_F32},
    {"self_attn.v_proj.weight", "attn.in_proj_weight", 2, 0, LY(v.w), {D_W, D_W}, GEMM},
    {"self_attn.v_proj.bias", "attn.in_proj_bias", 2, 0, LY(v.b), {D_W}, KEEP_F32},
    {"self_attn.out_proj.weight", "attn.out_proj.weight", -1, 0, LY(out.w), {D_W, D_W}, GEMM},
    {"self_attn.out_proj.bias", "attn.out_proj.bias", -1, 0, LY(out.b), {D_W}, KEEP_F32},
    {"layer_norm2.weight", "ln_2.weight", -1, 0, LY(ln2.w), {D_W}, KEEP_F32},
    {"layer_norm2.bias", "ln_2.bias", -1, 0, LY(ln2.b), {D_W}, KEEP_F32},
    {"mlp.fc1.weight", "mlp.c_fc.weight", -1, 0, LY(fc1.w), {D_I, D_W}, GEMM},
    {"mlp.fc1.bias", "mlp.c_fc.bias", -1, 0, LY(fc1.b), {D_I}, KEEP_F32},
    {"mlp.fc2.weight", "mlp.c_proj.weight", -1, 0, LY(fc2.w), {D_W, D_I}, GEMM},
    {"mlp.fc2.bias", "mlp.c_proj.bias", -1, 0, LY(fc2.b), {D_W}, KEEP_F32},
};

#define TE(f) offsetof(dato_text_encoder, f)
static const param_spec MODEL_SPEC[] = {
    {"text_model.embeddings.token_embedding.weight", "token_embedding.weight", -1, 0, TE(token_embedding), {D_V, D_W},
     KEEP_F32},
    {"text_model.embeddings.position_embedding.weight", "positional_embedding", -1, 0, TE(position_embedding),
     {D_POS, D_W}, KEEP_F32},
    {"text_model.final_layer_norm.weight", "ln_final.weight", -1, 0, TE(final_ln.w), {D_W}, KEEP_F32},
    {"text_model.final_layer_norm.bias", "ln_final.bias", -1, 0, TE(final_ln.b), {D_W}, KEEP_F32},
};
static const param_spec PROJECTION_SPEC = {"text_projection.weight", "text_projection", -1, 1, TE(projection),
                                           {D_P, D_W}, GEMM};

#define LAYER_HF "text_model.encoder.layers.%d."
#define LAYER_OC "transformer.resblocks.%d."

// Pushes the row of spec s for layer (-1: a model tensor) whose field lies in base.
static dato_status add_param(dato_param_builder* bld, const dato_te_config* c, const param_spec* s, void* base,
                             int layer) {
    char hf[96] = "", oc[96] = "", hf_name[192], oc_name[192];
    if (layer >= 0) {
        snprintf(hf, sizeof hf, LAYER_HF, layer);
        snprintf(oc, sizeof oc, LAYER_OC, layer);
    }
    snprintf(hf_name, sizeof hf_name, "%s%s", hf, s->hf);
    snprintf(oc_name, sizeof oc_name, "%s%s", oc, s->oc);
    int64_t shape[2];
    int ndim = 0;
    for (int d = 0; d < 2 && s->shape[d] != D_END; d++) {
        int sym = s->shape[d];
        shape[ndim++] = sym == D_W     ? c->width
                        : sym == D_I   ? c->intermediate
                        : sym == D_V   ? c->vocab_size
                        : sym == D_POS ? c->max_positions
                                       : c->projection_dim;
    }
    DATO_TRY(dato_param_push(bld, hf_name, oc_name, ndim, shape, s->gemm, (dato_tensor*)((char*)base + s->field)));
    dato_param* p = &(*bld->params)[*bld->n - 1];
    p->oc_slice = s->oc_slice;
    p->oc_transposed = s->oc_transposed;
    return DATO_OK;
}

#define N_SPEC(s) ((int)(sizeof(s) / sizeof((s)[0])))

dato_status dato_text_encoder_build(dato_text_encoder* te, const dato_te_config* cfg, dato_backend* be,
                                    dato_error* err) {
    memset(te, 0, sizeof *te);
    dato_status st = dato_te_config_validate(cfg, err);
    if (st) return st;
    te->cfg = *cfg;
    te->be = be;
    te->layers = calloc((size_t)cfg->n_layers, sizeof *te->layers);
    if (!te->layers) return dato_fail(err, DATO_ERR_NOMEM, "text encoder: cannot allocate the layer table");
    dato_param_builder bld = {.params = &te->params, .n = &te->n_params, .device = be->device, .what = "text encoder",
                              .err = err};
    for (int i = 0; i < N_SPEC(MODEL_SPEC) && !st; i++) st = add_param(&bld, cfg, &MODEL_SPEC[i], te, -1);
    if (cfg->projection_dim > 0 && !st) st = add_param(&bld, cfg, &PROJECTION_SPEC, te, -1);
    for (int l = 0; l < cfg->n_layers && !st; l++)
        for (int i = 0; i < N_SPEC(LAYER_SPEC) && !st; i++)
            st = add_param(&bld, cfg, &LAYER_SPEC[i], &te->layers[l], l);
    if (st) dato_text_encoder_free(te);
    return st;
}

const dato_te_param* dato_text_encoder_find_param(const dato_text_encoder* te, dato_te_layout layout,
                                                  const char* name) {
    return dato_param_find(te->params, te->n_params, layout, name);
}

// ---- loading -----------------------------------------------------------------------------------

dato_status dato_text_encoder_set_weight_dtype(dato_text_encoder* te, dato_dtype dt, dato_error* err) {
    return dato_params_set_gemm_dtype(DATO_PARAM_TABLE(te, "text encoder"), dt, err);
}

// A transformers file saved without "text_model." (transformers 5's CLIPTextModel).
static int hf_is_bare(const dato_tensor_source* src, const char* prefix) {
    if (dato_source_findf(src, "%stext_model.embeddings.token_embedding.weight", prefix)) return 0;
    return dato_source_findf(src, "%sembeddings.token_embedding.weight", prefix) != NULL;
}

dato_status dato_text_encoder_load(dato_text_encoder* te, const dato_tensor_source* src, const char* prefix,
                                   dato_te_layout layout, dato_error* err) {
    int bare = layout == DATO_TE_LAYOUT_HF && hf_is_bare(src, prefix);
    dato_param_names names = {.src = src, .layout = layout, .prefix = prefix, .strip = bare ? "text_model." : NULL};
    return dato_params_load(DATO_PARAM_TABLE(te, "text encoder"), &names, err);
}

// ---- config from shapes ------------------------------------------------------------------------------

// The tensor prefix + name if it is 2-D, else NULL.
static const dato_st_tensor* find_2d(const dato_tensor_source* src, const char* prefix, const char* name) {
    const dato_st_tensor* t = dato_source_findf(src, "%s%s", prefix, name);
    return t && t->ndim == 2 ? t : NULL;
}

dato_status dato_te_config_infer(dato_te_config* cfg, const dato_tensor_source* src, const char* prefix,
                                 dato_te_layout layout, const dato_te_hints* hints, dato_error* err) {
    memset(cfg, 0, sizeof *cfg);
    int oc = layout == DATO_TE_LAYOUT_OPENCLIP;
    char inner[192];
    snprintf(inner, sizeof inner, "%s%s", prefix, !oc && !hf_is_bare(src, prefix) ? "text_model." : "");
    const char* tok_name = oc ? "token_embedding.weight" : "embeddings.token_embedding.weight";
    const char* pos_name = oc ? "positional_embedding" : "embeddings.position_embedding.weight";
    const dato_st_tensor* tok = find_2d(src, inner, tok_name);
    const dato_st_tensor* pos = find_2d(src, inner, pos_name);
    if (!tok || !pos)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: no %s text encoder under '%s' (%s and %s must exist, 2-D)",
                         src->label, oc ? "OpenCLIP" : "CLIP", prefix, tok_name, pos_name);
    cfg->vocab_size = dato_st_dim(tok, 0);
    cfg->width = dato_st_dim(tok, 1);
    cfg->max_positions = dato_st_dim(pos, 0);
    while (dato_source_findf(src, oc ? "%s" LAYER_OC "ln_1.weight" : "%sencoder.layers.%d.layer_norm1.weight", inner,
                             cfg->n_layers))
        cfg->n_layers++;
    char name[128];
    snprintf(name, sizeof name, oc ? LAYER_OC "mlp.c_fc.weight" : "encoder.layers.%d.mlp.fc1.weight", 0);
    const dato_st_tensor* fc1 = find_2d(src, inner, name);
    if (cfg->n_layers == 0 || !fc1)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: the text encoder under '%s' has no layers (or no 2-D '%s')",
                         src->label, prefix, name);
    cfg->intermediate = dato_st_dim(fc1, 0);
    const dato_st_tensor* proj = find_2d(src, prefix, oc ? "text_projection" : "text_projection.weight");
    if (proj) cfg->projection_dim = dato_st_dim(proj, oc ? 1 : 0);
    cfg->heads = hints && hints->heads ? hints->heads : cfg->width / 64;
    cfg->act = hints && hints->act ? hints->act : oc ? DATO_TE_ACT_GELU : DATO_TE_ACT_QUICK_GELU;
    cfg->eps = hints && hints->eps > 0 ? hints->eps : 1e-5f;
    cfg->eos_token_id = hints && hints->eos_token_id ? hints->eos_token_id : DATO_TE_LEGACY_EOS;
    dato_status st = dato_te_config_validate(cfg, err);
    if (st) return dato_error_prefix(err, st, "%s: inferred text encoder config: ", src->label);
    return DATO_OK;
}
