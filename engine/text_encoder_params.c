// The text encoder's config (config.json, or inferred from a checkpoint's shapes), its
// parameter table and its loading. Names are data: one table for the tensors of a layer, one
// for the rest, each row naming the tensor in transformers' and OpenCLIP's layout.
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "json_fields.h"
#include "text_encoder.h"
#include "weight_dtype.h"

// ---- config -----------------------------------------------------------------------------------

dato_status dato_te_config_validate(const dato_te_config* c, dato_error* err) {
    if (c->vocab_size < 1 || c->width < 1 || c->intermediate < 1 || c->n_layers < 1 || c->max_positions < 1)
        return dato_fail(err, DATO_ERR_INVALID,
                         "text encoder config: vocab_size %d, hidden_size %d, intermediate_size %d, "
                         "num_hidden_layers %d and max_position_embeddings %d must all be positive",
                         c->vocab_size, c->width, c->intermediate, c->n_layers, c->max_positions);
    if (c->heads < 1 || c->width % c->heads != 0)
        return dato_fail(err, DATO_ERR_INVALID, "text encoder config: %d attention heads do not divide hidden_size %d",
                         c->heads, c->width);
    if (c->act != DATO_TE_ACT_QUICK_GELU && c->act != DATO_TE_ACT_GELU)
        return dato_fail(err, DATO_ERR_INVALID, "text encoder config: hidden_act must be quick_gelu or gelu");
    if (!(c->eps > 0.0f && c->eps < 1.0f))
        return dato_fail(err, DATO_ERR_INVALID, "text encoder config: layer_norm_eps %g is not in (0, 1)", (double)c->eps);
    if (c->projection_dim < 0)
        return dato_fail(err, DATO_ERR_INVALID, "text encoder config: projection_dim %d is negative", c->projection_dim);
    return DATO_OK;
}

dato_status dato_te_config_from_json_text(dato_te_config* cfg, const char* text, const char* label, dato_error* err) {
    memset(cfg, 0, sizeof *cfg);
    cJSON* root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dato_fail(err, DATO_ERR_FORMAT, "%s: not a JSON object", label);
    }
    dato_status st;
    cfg->eps = 1e-5f;
    cfg->eos_token_id = DATO_TE_LEGACY_EOS;
    if ((st = dato_json_int(root, "vocab_size", &cfg->vocab_size, 1, label, err)) ||
        (st = dato_json_int(root, "hidden_size", &cfg->width, 1, label, err)) ||
        (st = dato_json_int(root, "intermediate_size", &cfg->intermediate, 1, label, err)) ||
        (st = dato_json_int(root, "num_hidden_layers", &cfg->n_layers, 1, label, err)) ||
        (st = dato_json_int(root, "num_attention_heads", &cfg->heads, 1, label, err)) ||
        (st = dato_json_int(root, "max_position_embeddings", &cfg->max_positions, 1, label, err)) ||
        (st = dato_json_int(root, "projection_dim", &cfg->projection_dim, 0, label, err)) ||
        (st = dato_json_int(root, "eos_token_id", &cfg->eos_token_id, 0, label, err)))
        goto done;
    const cJSON* eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    if (eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps)) {
            st = dato_fail(err, DATO_ERR_FORMAT, "%s: field 'layer_norm_eps': expected a number", label);
            goto done;
        }
        cfg->eps = (float)eps->valuedouble;
    }
    const cJSON* act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    const char* a = cJSON_IsString(act) ? act->valuestring : "quick_gelu"; // CLIPTextConfig's default
    if (strcmp(a, "quick_gelu") == 0) cfg->act = DATO_TE_ACT_QUICK_GELU;
    else if (strcmp(a, "gelu") == 0) cfg->act = DATO_TE_ACT_GELU;
    else {
        st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field 'hidden_act': '%s' is not quick_gelu or gelu", label, a);
        goto done;
    }
    dato_error why = {{0}};
    st = dato_te_config_validate(cfg, &why);
    if (st) st = dato_fail(err, st, "%s: %s", label, why.msg);
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

static void add_param(dato_text_encoder* te, const param_spec* s, void* base, int layer) {
    const dato_te_config* c = &te->cfg;
    dato_te_param* p = &te->params[te->n_params++];
    memset(p, 0, sizeof *p);
    char hf[96] = "", oc[96] = "";
    if (layer >= 0) {
        snprintf(hf, sizeof hf, LAYER_HF, layer);
        snprintf(oc, sizeof oc, LAYER_OC, layer);
    }
    snprintf(p->name[DATO_TE_LAYOUT_HF], sizeof p->name[0], "%s%s", hf, s->hf);
    snprintf(p->name[DATO_TE_LAYOUT_OPENCLIP], sizeof p->name[0], "%s%s", oc, s->oc);
    for (int d = 0; d < 2 && s->shape[d] != D_END; d++) {
        int sym = s->shape[d];
        p->shape[p->ndim++] = sym == D_W     ? c->width
                              : sym == D_I   ? c->intermediate
                              : sym == D_V   ? c->vocab_size
                              : sym == D_POS ? c->max_positions
                                             : c->projection_dim;
    }
    p->oc_slice = s->oc_slice;
    p->oc_transposed = s->oc_transposed;
    p->gemm = s->gemm;
    p->slot = (dato_tensor*)((char*)base + s->field);
    *p->slot = dato_tensor_make(NULL, DATO_F32, te->be->device, p->ndim, p->shape);
}

#define N_SPEC(s) ((int)(sizeof(s) / sizeof((s)[0])))

dato_status dato_text_encoder_build(dato_text_encoder* te, const dato_te_config* cfg, dato_backend* be,
                                    dato_error* err) {
    memset(te, 0, sizeof *te);
    dato_status st = dato_te_config_validate(cfg, err);
    if (st) return st;
    te->cfg = *cfg;
    te->be = be;
    int cap = N_SPEC(MODEL_SPEC) + 1 + cfg->n_layers * N_SPEC(LAYER_SPEC);
    te->params = calloc((size_t)cap, sizeof *te->params);
    te->layers = calloc((size_t)cfg->n_layers, sizeof *te->layers);
    if (!te->params || !te->layers) {
        dato_text_encoder_free(te);
        return dato_fail(err, DATO_ERR_NOMEM, "text encoder: cannot allocate the parameter table");
    }
    for (int i = 0; i < N_SPEC(MODEL_SPEC); i++) add_param(te, &MODEL_SPEC[i], te, -1);
    if (cfg->projection_dim > 0) add_param(te, &PROJECTION_SPEC, te, -1);
    for (int l = 0; l < cfg->n_layers; l++)
        for (int i = 0; i < N_SPEC(LAYER_SPEC); i++) add_param(te, &LAYER_SPEC[i], &te->layers[l], l);
    return DATO_OK;
}

const dato_te_param* dato_text_encoder_find_param(const dato_text_encoder* te, dato_te_layout layout,
                                                  const char* name) {
    for (int i = 0; i < te->n_params; i++)
        if (strcmp(te->params[i].name[layout], name) == 0) return &te->params[i];
    return NULL;
}

// ---- loading -----------------------------------------------------------------------------------

dato_status dato_text_encoder_set_weight_dtype(dato_text_encoder* te, dato_dtype dt, dato_error* err) {
    DATO_TRY(dato_weight_dtype_check(te->be, dt, "text encoder", err));
    if (te->weights)
        return dato_fail(err, DATO_ERR_INVALID,
                         "text encoder: the weight dtype must be set before the weights are loaded");
    te->weight_dtype = dt;
    for (int i = 0; i < te->n_params; i++)
        if (te->params[i].gemm) te->params[i].slot->dtype = dt;
    return DATO_OK;
}

static const char* shape_text(int ndim, const int64_t* shape, char* buf, size_t n) {
    dato_tensor t = dato_tensor_make(NULL, DATO_F32, DATO_DEV_CPU, ndim, shape);
    return dato_shape_str(&t, buf, n);
}

// The tensor's name in the file: prefix, then the layout's name, less "text_model." when the
// HF file was saved without it (bare).
static void file_name(char* buf, size_t n, const char* prefix, const dato_te_param* p, dato_te_layout layout, int bare) {
    const char* name = p->name[layout];
    if (bare && strncmp(name, "text_model.", 11) == 0) name += 11;
    snprintf(buf, n, "%s%s", prefix, name);
}

// Its shape in the file: 3 row blocks for OpenCLIP's fused in_proj, (W, P) for its projection.
static void file_shape(const dato_te_param* p, dato_te_layout layout, int64_t* shape) {
    shape[0] = p->shape[0];
    shape[1] = p->ndim > 1 ? p->shape[1] : 0;
    if (layout != DATO_TE_LAYOUT_OPENCLIP) return;
    if (p->oc_slice >= 0) shape[0] *= 3;
    if (p->oc_transposed) shape[0] = p->shape[1], shape[1] = p->shape[0];
}

static int hf_is_bare(const dato_tensor_source* src, const char* prefix) {
    char name[256];
    snprintf(name, sizeof name, "%stext_model.embeddings.token_embedding.weight", prefix);
    if (src->find(src->ctx, name)) return 0;
    snprintf(name, sizeof name, "%sembeddings.token_embedding.weight", prefix);
    return src->find(src->ctx, name) != NULL;
}

dato_status dato_text_encoder_load(dato_text_encoder* te, const dato_tensor_source* src, const char* prefix,
                                   dato_te_layout layout, dato_error* err) {
    int bare = layout == DATO_TE_LAYOUT_HF && hf_is_bare(src, prefix);
    char name[256], s1[64], s2[64];
    size_t total = 0, max_file = 0;
    for (int i = 0; i < te->n_params; i++) { // check every tensor before allocating
        const dato_te_param* p = &te->params[i];
        file_name(name, sizeof name, prefix, p, layout, bare);
        const dato_st_tensor* t = src->find(src->ctx, name);
        if (!t) return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: tensor '%s' is missing", src->label, name);
        int64_t want[2];
        file_shape(p, layout, want);
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == want[d];
        if (!same)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config expects %s", src->label,
                             name, shape_text(t->ndim, t->shape, s1, sizeof s1), shape_text(p->ndim, want, s2, sizeof s2));
        total += dato_arena_bytes(p->slot->dtype, (size_t)dato_tensor_numel(p->slot)); // GEMM weights in weight_dtype
        max_file = (size_t)t->numel > max_file ? (size_t)t->numel : max_file;
    }
    dato_backend* be = te->be;
    te->weights = be->ops->alloc(be, total);
    float* stage = malloc(2 * max_file * sizeof *stage); // the file's tensor, then the engine's slice of it
    uint16_t* half = te->weight_dtype != DATO_F32 ? malloc(max_file * sizeof *half) : NULL; // (slice) in half
    if (!te->weights || !stage || (te->weight_dtype != DATO_F32 && !half)) {
        free(stage);
        free(half);
        return dato_fail(err, DATO_ERR_NOMEM, "text encoder: cannot allocate %zu bytes of weights", total);
    }
    dato_arena a = dato_arena_over(te->weights, total);
    dato_status st = DATO_OK;
    for (int i = 0; i < te->n_params && !st; i++) {
        const dato_te_param* p = &te->params[i];
        file_name(name, sizeof name, prefix, p, layout, bare);
        const dato_st_tensor* t = src->find(src->ctx, name);
        size_t n = (size_t)dato_tensor_numel(p->slot);
        p->slot->data = dato_arena_alloc(&a, dato_tensor_nbytes(p->slot));
        float* file = stage;            // (file numel)
        float* mine = stage + max_file; // (n)
        if ((st = dato_st_tensor_to_f32(t, file, (size_t)t->numel, err))) break;
        if (layout == DATO_TE_LAYOUT_OPENCLIP && p->oc_slice >= 0) {
            memcpy(mine, file + (size_t)p->oc_slice * n, n * sizeof *mine); // rows [s n / cols, (s + 1) n / cols)
        } else if (layout == DATO_TE_LAYOUT_OPENCLIP && p->oc_transposed) {
            int64_t rows = p->shape[0], cols = p->shape[1]; // file (cols, rows)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) mine[r * cols + c] = file[c * rows + r];
        } else {
            mine = file;
        }
        dato_weight_upload(be, p->slot->data, mine, n, p->slot->dtype, half);
    }
    free(stage);
    free(half);
    return st;
}

// ---- config from shapes ------------------------------------------------------------------------------

static const dato_st_tensor* find_2d(const dato_tensor_source* src, const char* prefix, const char* name) {
    char full[512];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const dato_st_tensor* t = src->find(src->ctx, full);
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
    cfg->vocab_size = (int)tok->shape[0];
    cfg->width = (int)tok->shape[1];
    cfg->max_positions = (int)pos->shape[0];
    char name[128];
    for (;; cfg->n_layers++) {
        snprintf(name, sizeof name, oc ? LAYER_OC "ln_1.weight" : "encoder.layers.%d.layer_norm1.weight", cfg->n_layers);
        char full[384];
        snprintf(full, sizeof full, "%s%s", inner, name);
        if (!src->find(src->ctx, full)) break;
    }
    snprintf(name, sizeof name, oc ? LAYER_OC "mlp.c_fc.weight" : "encoder.layers.%d.mlp.fc1.weight", 0);
    const dato_st_tensor* fc1 = find_2d(src, inner, name);
    if (cfg->n_layers == 0 || !fc1)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: the text encoder under '%s' has no layers (or no 2-D '%s')",
                         src->label, prefix, name);
    cfg->intermediate = (int)fc1->shape[0];
    const dato_st_tensor* proj = find_2d(src, prefix, oc ? "text_projection" : "text_projection.weight");
    if (proj) cfg->projection_dim = (int)proj->shape[oc ? 1 : 0];
    cfg->heads = hints && hints->heads ? hints->heads : cfg->width / 64;
    cfg->act = hints && hints->act ? hints->act : oc ? DATO_TE_ACT_GELU : DATO_TE_ACT_QUICK_GELU;
    cfg->eps = hints && hints->eps > 0 ? hints->eps : 1e-5f;
    cfg->eos_token_id = hints && hints->eos_token_id ? hints->eos_token_id : DATO_TE_LEGACY_EOS;
    dato_error why = {{0}};
    dato_status st = dato_te_config_validate(cfg, &why);
    if (st) return dato_fail(err, st, "%s: inferred text encoder config: %s", src->label, why.msg);
    return DATO_OK;
}
