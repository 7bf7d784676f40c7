// CLIP score (metrics/clip.h): the folder's configs, the vision tower's parameter table and
// forward, the image processor's resize, crop and normalization, the text path through
// engine/models/text_encoder.h, and the score. Compiled as ISO C11 (no FMA contraction), so the
// preprocessing's double and float operations round as ATen's and torch's do.
#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "clip.h"
#include "file_util.h"
#include "json_fields.h"
#include "param_table.h"
#include "tensor_source.h"
#include "weight_files.h"

static const float OPENAI_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f}; // CLIPImageProcessor's defaults
static const float OPENAI_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

// ---- configs ----------------------------------------------------------------------------------

static dato_status json_object(const cJSON* root, const char* key, const cJSON** out, const char* path,
                               dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s' is missing", path, key);
    if (!cJSON_IsObject(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected an object", path, key);
    *out = v;
    return DATO_OK;
}

// hidden_act: absent means quick_gelu (CLIPVisionConfig's default).
static dato_status parse_act(const cJSON* obj, dato_te_act* act, const char* label, dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, "hidden_act");
    const char* a = cJSON_IsString(v) ? v->valuestring : "quick_gelu";
    if (v && !cJSON_IsNull(v) && !cJSON_IsString(v))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'hidden_act': expected a string", label);
    if (strcmp(a, "quick_gelu") == 0) *act = DATO_TE_ACT_QUICK_GELU;
    else if (strcmp(a, "gelu") == 0) *act = DATO_TE_ACT_GELU;
    else return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field 'hidden_act': '%s' is not quick_gelu or gelu", label, a);
    return DATO_OK;
}

// vision_config: the architecture fields are required (a guessed ViT-B/32 would load nothing).
static dato_status parse_vision(const cJSON* vc, dato_clip_vision_config* cfg, const char* label, dato_error* err) {
    int channels = 3;
    cfg->eps = 1e-5f;
    DATO_TRY(dato_json_int(vc, "hidden_size", &cfg->width, 1, label, err));
    DATO_TRY(dato_json_int(vc, "intermediate_size", &cfg->intermediate, 1, label, err));
    DATO_TRY(dato_json_int(vc, "num_hidden_layers", &cfg->n_layers, 1, label, err));
    DATO_TRY(dato_json_int(vc, "num_attention_heads", &cfg->heads, 1, label, err));
    DATO_TRY(dato_json_int(vc, "image_size", &cfg->image_size, 1, label, err));
    DATO_TRY(dato_json_int(vc, "patch_size", &cfg->patch_size, 1, label, err));
    DATO_TRY(dato_json_int(vc, "num_channels", &channels, 0, label, err));
    DATO_TRY(dato_json_float(vc, "layer_norm_eps", &cfg->eps, label, err));
    DATO_TRY(parse_act(vc, &cfg->act, label, err));
    if (cfg->width < 1 || cfg->intermediate < 1 || cfg->n_layers < 1 || cfg->heads < 1 || cfg->width % cfg->heads)
        return dato_fail(err, DATO_ERR_INVALID,
                         "%s: hidden_size %d, intermediate_size %d, num_hidden_layers %d must be positive and "
                         "num_attention_heads %d must divide hidden_size",
                         label, cfg->width, cfg->intermediate, cfg->n_layers, cfg->heads);
    if (cfg->patch_size < 1 || cfg->image_size < cfg->patch_size || cfg->image_size > DATO_CLIP_MAX_SIDE)
        return dato_fail(err, DATO_ERR_INVALID,
                         "%s: image_size %d and patch_size %d: need 1 <= patch_size <= image_size <= %d", label,
                         cfg->image_size, cfg->patch_size, DATO_CLIP_MAX_SIDE);
    if (channels != 3)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field 'num_channels': %d, only 3 is supported", label, channels);
    if (!(cfg->eps > 0.0f && cfg->eps < 1.0f))
        return dato_fail(err, DATO_ERR_INVALID, "%s: field 'layer_norm_eps': %g is not in (0, 1)", label, (double)cfg->eps);
    return DATO_OK;
}

// text_config -> the text encoder's config. An absent eos_token_id is transformers 5's default
// (49407; the engine's reader would take the legacy 2), projection_dim is CLIPConfig's.
static dato_status parse_text(const cJSON* tc, int projection_dim, dato_te_config* cfg, const char* label,
                              dato_error* err) {
    cJSON* copy = cJSON_Duplicate(tc, 1);
    if (!copy) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot copy text_config", label);
    const cJSON* eos = cJSON_GetObjectItemCaseSensitive(copy, "eos_token_id");
    if (!eos || cJSON_IsNull(eos)) {
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "eos_token_id");
        cJSON_AddNumberToObject(copy, "eos_token_id", 49407);
    }
    char* text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    if (!text) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot print text_config", label);
    dato_status st = dato_te_config_from_json_text(cfg, text, label, err);
    free(text);
    if (st) return st;
    cfg->projection_dim = projection_dim;
    return DATO_OK;
}

// An int, or an object with the given keys (absent keys keep their values): "size" and
// "crop_size" come as 224 (old hub files) or {"shortest_edge": 224} / {"height": h, "width": w}.
static dato_status parse_size(const cJSON* ip, const char* key, int* shortest, int* h, int* w, const char* label,
                              dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(ip, key);
    if (!v || cJSON_IsNull(v)) return DATO_OK;
    if (cJSON_IsNumber(v)) {
        int n = (int)v->valuedouble;
        if (shortest) *shortest = n;
        else *h = *w = n;
    } else if (cJSON_IsObject(v)) {
        int s = 0, hh = 0, ww = 0;
        DATO_TRY(dato_json_int(v, "shortest_edge", &s, 0, label, err));
        DATO_TRY(dato_json_int(v, "height", &hh, 0, label, err));
        DATO_TRY(dato_json_int(v, "width", &ww, 0, label, err));
        if (cJSON_GetObjectItemCaseSensitive(v, "longest_edge"))
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s.longest_edge' is not supported", label, key);
        if (s > 0 && shortest) {
            *shortest = s;
        } else if (hh > 0 && ww > 0) {
            if (shortest) *shortest = 0;
            *h = hh, *w = ww;
        } else {
            return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected %sheight and width", label, key,
                             shortest ? "shortest_edge or " : "");
        }
    } else {
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected an integer or an object", label, key);
    }
    return DATO_OK;
}

// image_mean / image_std: a list of 3 numbers or one number.
static dato_status parse_triple(const cJSON* ip, const char* key, float* out, const char* label, dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(ip, key);
    if (!v || cJSON_IsNull(v)) return DATO_OK;
    if (cJSON_IsNumber(v)) {
        out[0] = out[1] = out[2] = (float)v->valuedouble;
        return DATO_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected a number or a list of 3 numbers", label, key);
    for (int i = 0; i < 3; i++) {
        const cJSON* e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s'[%d]: expected a number", label, key, i);
        out[i] = (float)e->valuedouble; // torch.tensor(list) is float32
    }
    return DATO_OK;
}

static dato_status parse_image_processor(const cJSON* ip, int image_size, dato_clip_image_prep* p, const char* label,
                                         dato_error* err) {
    *p = (dato_clip_image_prep){.do_resize = 1, .shortest_edge = 224, .do_center_crop = 1, .crop_h = 224,
                                .crop_w = 224, .do_rescale = 1, .rescale_factor = 1.0 / 255.0, .do_normalize = 1};
    memcpy(p->mean, OPENAI_MEAN, sizeof p->mean);
    memcpy(p->std, OPENAI_STD, sizeof p->std);
    int resample = 3;
    DATO_TRY(dato_json_bool(ip, "do_resize", &p->do_resize, label, err));
    DATO_TRY(parse_size(ip, "size", &p->shortest_edge, &p->resize_h, &p->resize_w, label, err));
    DATO_TRY(dato_json_int(ip, "resample", &resample, 0, label, err));
    DATO_TRY(dato_json_bool(ip, "do_center_crop", &p->do_center_crop, label, err));
    DATO_TRY(parse_size(ip, "crop_size", NULL, &p->crop_h, &p->crop_w, label, err));
    DATO_TRY(dato_json_bool(ip, "do_rescale", &p->do_rescale, label, err));
    DATO_TRY(dato_json_bool(ip, "do_normalize", &p->do_normalize, label, err));
    DATO_TRY(parse_triple(ip, "image_mean", p->mean, label, err));
    DATO_TRY(parse_triple(ip, "image_std", p->std, label, err));
    const cJSON* rf = cJSON_GetObjectItemCaseSensitive(ip, "rescale_factor");
    if (rf && !cJSON_IsNull(rf)) {
        if (!cJSON_IsNumber(rf) || !(rf->valuedouble > 0))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'rescale_factor': expected a positive number", label);
        p->rescale_factor = rf->valuedouble;
    }
    if (p->do_resize && resample != 3)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field 'resample': %d, only 3 (bicubic) is supported", label,
                         resample);
    if (p->do_resize && (p->shortest_edge > DATO_CLIP_MAX_SIDE || p->resize_h > DATO_CLIP_MAX_SIDE ||
                         p->resize_w > DATO_CLIP_MAX_SIDE || (p->shortest_edge < 1 && (p->resize_h < 1 || p->resize_w < 1))))
        return dato_fail(err, DATO_ERR_INVALID, "%s: field 'size': sides must be in 1..%d", label, DATO_CLIP_MAX_SIDE);
    for (int c = 0; c < 3; c++)
        if (p->do_normalize && !(p->std[c] != 0.0f))
            return dato_fail(err, DATO_ERR_INVALID, "%s: field 'image_std'[%d] is zero", label, c);
    // the vision tower takes (3, S, S): the crop, or an exact resize, must give that
    int ok = p->do_center_crop ? p->crop_h == image_size && p->crop_w == image_size
                               : p->do_resize && p->shortest_edge == 0 && p->resize_h == image_size &&
                                     p->resize_w == image_size;
    if (!ok)
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "%s: field '%s' must give %dx%d images (vision_config.image_size), got crop %dx%d%s", label,
                         p->do_center_crop ? "crop_size" : "size", image_size, image_size, p->crop_h, p->crop_w,
                         p->do_center_crop ? "" : " with do_center_crop false");
    return DATO_OK;
}

// preprocessor_config.json (the hub's layout), else processor_config.json's "image_processor"
// (what transformers 5's CLIPProcessor.save_pretrained writes).
static dato_status open_image_processor(dato_clip* c, const char* dir, dato_error* err) {
    char path[4096];
    cJSON* root = NULL;
    DATO_TRY(dato_path_join(path, sizeof path, dir, "preprocessor_config.json", err));
    int nested = 0;
    if (!dato_is_file(path)) {
        DATO_TRY(dato_path_join(path, sizeof path, dir, "processor_config.json", err));
        if (!dato_is_file(path))
            return dato_fail(err, DATO_ERR_NOT_FOUND,
                             "%s: neither preprocessor_config.json nor processor_config.json (the image processor)", dir);
        nested = 1;
    }
    DATO_TRY(dato_json_read_object(path, &root, err));
    const cJSON* ip = root;
    dato_status st = nested ? json_object(root, "image_processor", &ip, path, err) : DATO_OK;
    if (!st) st = parse_image_processor(ip, c->cfg.image_size, &c->prep, path, err);
    cJSON_Delete(root);
    return st;
}

static dato_status read_configs(dato_clip* c, const char* dir, dato_te_config* tcfg, dato_error* err) {
    char path[4096], label[4200];
    cJSON* root = NULL;
    DATO_TRY(dato_path_join(path, sizeof path, dir, "config.json", err));
    if (!dato_is_dir(dir)) return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: not a CLIP model folder (no such directory)", dir);
    DATO_TRY(dato_json_read_object(path, &root, err));
    const cJSON *vc = NULL, *tc = NULL;
    dato_status st;
    if ((st = json_object(root, "vision_config", &vc, path, err)) ||
        (st = json_object(root, "text_config", &tc, path, err)) ||
        (st = dato_json_int(root, "projection_dim", &c->cfg.projection_dim, 1, path, err)))
        goto done;
    if (c->cfg.projection_dim < 1) {
        st = dato_fail(err, DATO_ERR_INVALID, "%s: field 'projection_dim': %d is not positive", path, c->cfg.projection_dim);
        goto done;
    }
    snprintf(label, sizeof label, "%s vision_config", path);
    if ((st = parse_vision(vc, &c->cfg, label, err))) goto done;
    snprintf(label, sizeof label, "%s text_config", path);
    st = parse_text(tc, c->cfg.projection_dim, tcfg, label, err);
done:
    cJSON_Delete(root);
    return st;
}

// ---- the vision tower's parameters -----------------------------------------------------------------

enum { S_END = 0, S_W, S_I, S_T, S_D, S_3, S_P };

typedef struct {
    const char* name; // after "vision_model.encoder.layers.N." for layers
    size_t field;     // offset of the dato_tensor in dato_te_layer or dato_clip
    int shape[4];
} vparam;

#define LY(f) offsetof(dato_te_layer, f)
static const vparam LAYER_PARAMS[] = {
    {"layer_norm1.weight", LY(ln1.w), {S_W}},           {"layer_norm1.bias", LY(ln1.b), {S_W}},
    {"self_attn.q_proj.weight", LY(q.w), {S_W, S_W}},   {"self_attn.q_proj.bias", LY(q.b), {S_W}},
    {"self_attn.k_proj.weight", LY(k.w), {S_W, S_W}},   {"self_attn.k_proj.bias", LY(k.b), {S_W}},
    {"self_attn.v_proj.weight", LY(v.w), {S_W, S_W}},   {"self_attn.v_proj.bias", LY(v.b), {S_W}},
    {"self_attn.out_proj.weight", LY(out.w), {S_W, S_W}}, {"self_attn.out_proj.bias", LY(out.b), {S_W}},
    {"layer_norm2.weight", LY(ln2.w), {S_W}},           {"layer_norm2.bias", LY(ln2.b), {S_W}},
    {"mlp.fc1.weight", LY(fc1.w), {S_I, S_W}},          {"mlp.fc1.bias", LY(fc1.b), {S_I}},
    {"mlp.fc2.weight", LY(fc2.w), {S_W, S_I}},          {"mlp.fc2.bias", LY(fc2.b), {S_W}},
};

#define CL(f) offsetof(dato_clip, f)
static const vparam MODEL_PARAMS[] = {
    {"vision_model.embeddings.class_embedding", CL(class_emb), {S_W}},
    {"vision_model.embeddings.patch_embedding.weight", CL(patch_w), {S_W, S_3, S_P, S_P}},
    {"vision_model.embeddings.position_embedding.weight", CL(pos_emb), {S_T, S_W}},
    {"vision_model.pre_layrnorm.weight", CL(pre_ln.w), {S_W}},
    {"vision_model.pre_layrnorm.bias", CL(pre_ln.b), {S_W}},
    {"vision_model.post_layernorm.weight", CL(post_ln.w), {S_W}},
    {"vision_model.post_layernorm.bias", CL(post_ln.b), {S_W}},
    {"visual_projection.weight", CL(proj), {S_D, S_W}},
};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int vision_tokens(const dato_clip_vision_config* v) {
    int g = v->image_size / v->patch_size;
    return g * g + 1;
}

// Parameter i of the table (model rows first, then each layer's): its file name, slot and shape.
static dato_tensor* vparam_at(dato_clip* c, int i, char* name, size_t n, int64_t* shape, int* ndim) {
    const vparam* p;
    char* base;
    if (i < N_OF(MODEL_PARAMS)) {
        p = &MODEL_PARAMS[i], base = (char*)c;
        snprintf(name, n, "%s", p->name);
    } else {
        int l = (i - N_OF(MODEL_PARAMS)) / N_OF(LAYER_PARAMS);
        p = &LAYER_PARAMS[(i - N_OF(MODEL_PARAMS)) % N_OF(LAYER_PARAMS)], base = (char*)&c->layers[l];
        snprintf(name, n, "vision_model.encoder.layers.%d.%s", l, p->name);
    }
    const dato_clip_vision_config* v = &c->cfg;
    *ndim = 0;
    for (int d = 0; d < 4 && p->shape[d] != S_END; d++) {
        int s = p->shape[d];
        shape[(*ndim)++] = s == S_W ? v->width : s == S_I ? v->intermediate : s == S_T ? vision_tokens(v)
                           : s == S_D ? v->projection_dim : s == S_3 ? 3 : v->patch_size;
    }
    return (dato_tensor*)(base + p->field);
}

// Checks and loads the vision tower through the shared loader (engine/io/param_table.h): a table
// over the slots, one layout (the file's names).
static dato_status load_vision(dato_clip* c, const dato_tensor_source* src, dato_error* err) {
    int n_params = N_OF(MODEL_PARAMS) + c->cfg.n_layers * N_OF(LAYER_PARAMS);
    dato_param* params = NULL; // (n)
    int n = 0;
    dato_param_builder bld = {.params = &params, .n = &n, .device = c->be->device, .what = "clip vision tower",
                              .err = err};
    char name[160];
    int64_t shape[4];
    int ndim;
    dato_status st = DATO_OK;
    for (int i = 0; i < n_params && !st; i++) {
        dato_tensor* slot = vparam_at(c, i, name, sizeof name, shape, &ndim);
        st = dato_param_push(&bld, name, name, ndim, shape, 0, slot);
    }
    dato_param_table t = {.params = params, .n = n, .be = c->be, .weights = &c->weights,
                          .what = "clip vision tower"};
    dato_param_names names = {.src = src, .prefix = ""};
    if (!st) st = dato_params_load(t, &names, err);
    free(params);
    return st;
}

// ---- opening ------------------------------------------------------------------------------------------

void dato_clip_free(dato_clip* c) {
    if (c->be) {
        if (c->weights) c->be->ops->free(c->be, c->weights);
        if (c->ws_block) c->be->ops->free(c->be, c->ws_block);
        if (c->text_out) c->be->ops->free(c->be, c->text_out);
    }
    if (c->text.be) dato_text_encoder_free(&c->text);
    dato_tokenizer_free(c->tok);
    free(c->layers);
    free(c->pixels);
    free(c->ids);
    free(c->row);
    free(c->scratch);
    memset(c, 0, sizeof *c);
}

dato_status dato_clip_open(dato_clip* c, const char* dir, dato_backend* be, dato_error* err) {
    memset(c, 0, sizeof *c);
    c->be = be;
    dato_te_config tcfg;
    dato_weight_files wf;
    memset(&wf, 0, sizeof wf);
    dato_status st = read_configs(c, dir, &tcfg, err);
    if (!st) st = open_image_processor(c, dir, err);
    if (!st) st = dato_tokenizer_open(&c->tok, dir, err);
    if (!st) {
        c->text_len = tcfg.max_positions;
        st = dato_tokenizer_set_max_len(c->tok, c->text_len + 1, err);
    }
    if (!st && dato_tokenizer_vocab_size(c->tok) > tcfg.vocab_size)
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: vocab.json has %d tokens, text_config.vocab_size is %d", dir,
                       dato_tokenizer_vocab_size(c->tok), tcfg.vocab_size);
    if (!st) {
        c->layers = calloc((size_t)c->cfg.n_layers, sizeof *c->layers);
        c->row = malloc((size_t)(c->text_len + 1) * sizeof *c->row);
        if (!c->layers || !c->row) st = dato_fail(err, DATO_ERR_NOMEM, "clip: cannot allocate the layer table");
    }
    if (!st) st = dato_weight_files_open(&wf, dir, err);
    if (!st) {
        dato_tensor_source src = dato_tensor_source_files(&wf);
        st = load_vision(c, &src, err);
        if (!st) st = dato_text_encoder_build(&c->text, &tcfg, be, err);
        if (!st) st = dato_text_encoder_load(&c->text, &src, "", DATO_TE_LAYOUT_HF, err);
    }
    dato_weight_files_close(&wf);
    if (st) dato_clip_free(c);
    return st;
}

int dato_clip_dim(const dato_clip* c) { return c->cfg.projection_dim; }

// ---- the vision forward ---------------------------------------------------------------------------------

// Row `row` of a (rows, C) tensor as a (C) tensor; data stays NULL while measuring.
static dato_tensor row_1d(const dato_tensor* t, int64_t row) {
    int64_t c = t->shape[t->ndim - 1];
    float* base = t->data; // (rows, C)
    return dato_tensor_make(base ? base + row * c : NULL, DATO_F32, t->device, 1, &c);
}

// Rows [row, row + n) of a (rows, C) tensor as an (n, C) tensor.
static dato_tensor rows_2d(const dato_tensor* t, int64_t row, int64_t n) {
    int64_t c = t->shape[t->ndim - 1];
    float* base = t->data; // (rows, C)
    return dato_tensor_make(base ? base + row * c : NULL, DATO_F32, t->device, 2, (int64_t[]){n, c});
}

static dato_tensor tmp2(dato_arena* a, const dato_backend* be, int64_t rows, int64_t cols) {
    return dato_arena_tensor(a, DATO_F32, be->device, 2, (int64_t[]){rows, cols});
}


// embeds (B, D) on the host from pixels (B, 3, S, S) on the host, on backend be over arena a
// (the null backend and a measuring arena while planning: pixels and embeds are not touched).
static dato_status vision_forward(const dato_clip* c, dato_backend* be, dato_arena* a, const float* pixels, int B,
                                  float* embeds, dato_error* err) {
    const dato_backend_ops* op = be->ops;
    const dato_clip_vision_config* cfg = &c->cfg;
    int64_t S = cfg->image_size, P = cfg->patch_size, G = S / P, N = G * G, T = N + 1;
    int64_t W = cfg->width, M = (int64_t)B * T, D = cfg->projection_dim;
    size_t mark = dato_arena_mark(a);
    dato_te_acts s = dato_te_acts_carve(a, be->device, M, W, cfg->intermediate); // (B*T, .) each
    dato_tensor* x = &s.x;                             // (B*T, W) the residual stream
    dato_tensor g = tmp2(a, be, B, W);                 // (B, W) class tokens
    dato_tensor e = tmp2(a, be, B, D);                 // (B, D) projected embeddings
    size_t embed_mark = dato_arena_mark(a);            // the patch stage's temporaries go above
    dato_tensor px = dato_arena_tensor(a, DATO_F32, be->device, 4, (int64_t[]){B, 3, S, S});   // (B, 3, S, S)
    dato_tensor patches = dato_arena_tensor(a, DATO_F32, be->device, 4, (int64_t[]){B, W, G, G}); // (B, W, G, G)
    dato_tensor tokens = dato_arena_tensor(a, DATO_F32, be->device, 3, (int64_t[]){B, N, W});  // (B, N, W)
    if (a->overflowed) return dato_fail(err, DATO_ERR_NOMEM, "clip: workspace too small (planned %zu bytes)", a->cap);

    // embeddings: patch conv, [class; patches] per image, + positions, then pre_layrnorm
    op->upload(be, px.data, pixels, (size_t)dato_tensor_numel(&px) * sizeof(float));
    DATO_TRY(op->conv2d(be, &patches, &px, &c->patch_w, NULL, (int)P, (int)P, 0, 0, err));
    DATO_TRY(op->nchw_to_tokens(be, &tokens, &patches, err));
    dato_tensor tok2 = dato_tensor_make(tokens.data, DATO_F32, be->device, 2, (int64_t[]){(int64_t)B * N, W}); // (B*N, W)
    for (int b = 0; b < B; b++) {
        dato_tensor cls = row_1d(x, (int64_t)b * T);
        DATO_TRY(op->copy(be, &cls, &c->class_emb, err));
        dato_tensor dst = rows_2d(x, (int64_t)b * T + 1, N), src = rows_2d(&tok2, (int64_t)b * N, N); // (N, W)
        DATO_TRY(op->copy(be, &dst, &src, err));
        dato_tensor xb = rows_2d(x, (int64_t)b * T, T); // (T, W) of image b
        DATO_TRY(op->add(be, &xb, &xb, &c->pos_emb, err));
    }
    dato_arena_release(a, embed_mark);
    DATO_TRY(op->layer_norm(be, x, x, &c->pre_ln.w, &c->pre_ln.b, cfg->eps, err));

    for (int l = 0; l < cfg->n_layers; l++)
        DATO_TRY(dato_te_layer_forward(be, &c->layers[l], B, (int)T, cfg->heads, cfg->eps, cfg->act, 0, &s, err)); // no mask

    // pooled: post_layernorm of each class token, then visual_projection
    for (int b = 0; b < B; b++) {
        dato_tensor dst = row_1d(&g, b), src = row_1d(x, (int64_t)b * T);
        DATO_TRY(op->copy(be, &dst, &src, err));
    }
    DATO_TRY(op->layer_norm(be, &g, &g, &c->post_ln.w, &c->post_ln.b, cfg->eps, err));
    DATO_TRY(op->linear(be, &e, &g, &c->proj, NULL, err));
    op->download(be, embeds, e.data, (size_t)B * D * sizeof(float));
    dato_arena_release(a, mark);
    return DATO_OK;
}

static dato_status reserve_images(dato_clip* c, int n, dato_error* err) {
    if (c->ws_block && c->ws_images == n) return DATO_OK;
    if (c->ws_block) c->be->ops->free(c->be, c->ws_block);
    free(c->pixels);
    c->ws_block = NULL, c->pixels = NULL, c->ws_images = 0, c->ws_bytes = 0;
    dato_backend null_be;
    dato_backend_null_init(&null_be);
    dato_arena m = dato_arena_measure();
    DATO_TRY(vision_forward(c, &null_be, &m, NULL, n, NULL, err));
    size_t S = (size_t)c->cfg.image_size;
    c->ws_block = c->be->ops->alloc(c->be, m.peak);
    c->pixels = malloc((size_t)n * 3 * S * S * sizeof *c->pixels);
    if (!c->ws_block || !c->pixels)
        return dato_fail(err, DATO_ERR_NOMEM, "clip: cannot allocate a %zu-byte workspace for %d images", m.peak, n);
    c->ws_bytes = m.peak;
    c->ws_images = n;
    return DATO_OK;
}

static dato_status reserve_prompts(dato_clip* c, int n, dato_error* err) {
    if (c->ids && c->ws_prompts == n) return DATO_OK;
    free(c->ids);
    if (c->text_out) c->be->ops->free(c->be, c->text_out);
    c->ids = NULL, c->text_out = NULL, c->ws_prompts = 0;
    DATO_TRY(dato_text_encoder_reserve(&c->text, n, c->text_len, err));
    size_t out_bytes = (size_t)n * (size_t)c->cfg.projection_dim * sizeof(float);
    c->ids = malloc((size_t)n * (size_t)c->text_len * sizeof *c->ids);
    c->text_out = c->be->ops->alloc(c->be, out_bytes);
    if (!c->ids || !c->text_out)
        return dato_fail(err, DATO_ERR_NOMEM, "clip: cannot allocate the ids and embeddings of %d prompts", n);
    c->ws_prompts = n;
    return DATO_OK;
}

dato_status dato_clip_reserve(dato_clip* c, int n_images, int n_prompts, dato_error* err) {
    if (n_images < 0 || n_prompts < 0)
        return dato_fail(err, DATO_ERR_INVALID, "clip: batch sizes %d images, %d prompts", n_images, n_prompts);
    if (n_images) DATO_TRY(reserve_images(c, n_images, err));
    if (n_prompts) DATO_TRY(reserve_prompts(c, n_prompts, err));
    return DATO_OK;
}

// ---- the image processor ------------------------------------------------------------------------------

// ATen's upsample_bicubic2d_aa filter, Keys a = -0.5 (HelperInterpCubic::aa_filter), in double.
static double cubic_aa(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2.0) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
}

// One axis of the resampler, for the S outputs of the crop window: window index j is output
// j + off of the axis, and reads inputs lo[j] .. lo[j] + n[j] - 1 with the int16 weights
// w[j * taps ..] at `prec` fractional bits (n[j] = 0 outside the resized image: padding).
typedef struct {
    int n_in, n_out, taps, off, prec;
    int* lo;     // (S)
    int* n;      // (S)
    int16_t* w;  // (S, taps)
    double* wd;  // (taps) one output's double weights
} axis_taps;

static int axis_tap_count(int n_in, int n_out) { // ceil(support) * 2 + 1, support 2 * max(1, in/out)
    double scale = (double)n_in / n_out;
    double support = scale >= 1.0 ? 2.0 * scale : 2.0;
    return (int)ceil(support) * 2 + 1;
}

// Output i's weights wd (taps), normalized, its first input *lo and count *n (ATen's
// _compute_indices_min_size_weights_aa in double); returns their largest.
static double output_weights(const axis_taps* t, int i, double* wd, int* lo_out, int* n_out) {
    double scale = (double)t->n_in / t->n_out;
    double support = scale >= 1.0 ? 2.0 * scale : 2.0;
    double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
    double center = scale * (i + 0.5);
    int64_t lo = (int64_t)(center - support + 0.5), hi = (int64_t)(center + support + 0.5);
    lo = lo < 0 ? 0 : lo;
    hi = hi > t->n_in ? t->n_in : hi;
    int64_t n = hi - lo;
    n = n < 0 ? 0 : n > t->taps ? t->taps : n;
    double total = 0.0, wt_max = 0.0;
    for (int64_t j = 0; j < n; j++) {
        wd[j] = cubic_aa(((double)(j + lo) - center + 0.5) * invscale);
        total += wd[j];
    }
    if (total != 0.0)
        for (int64_t j = 0; j < n; j++) {
            wd[j] /= total;
            wt_max = wd[j] > wt_max ? wd[j] : wt_max;
        }
    *lo_out = (int)lo, *n_out = (int)n;
    return wt_max;
}

// ATen's _compute_index_ranges_int16_weights (antialias, align_corners false, no scale given):
// the precision is the largest (< 22) that keeps the largest weight of the whole axis in int16,
// then each weight is scaled by 2^prec and rounded half away from zero. Fills the S window rows.
static void axis_weights(axis_taps* t, int S) {
    int lo, n;
    double wt_max = 0.0;
    for (int i = 0; i < t->n_out; i++) {
        double m = output_weights(t, i, t->wd, &lo, &n);
        wt_max = m > wt_max ? m : wt_max;
    }
    int prec = 0;
    for (; prec < 22; prec++)
        if ((int)(0.5 + wt_max * (double)(1 << (prec + 1))) >= (1 << 15)) break;
    t->prec = prec;
    for (int j = 0; j < S; j++) {
        int i = j + t->off;
        t->lo[j] = t->n[j] = 0;
        if (i >= 0 && i < t->n_out) output_weights(t, i, t->wd, &t->lo[j], &t->n[j]);
        for (int k = 0; k < t->taps; k++) {
            double v = k < t->n[j] ? t->wd[k] * (double)(1 << prec) : 0.0;
            t->w[(size_t)j * t->taps + k] = (int16_t)(v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v));
        }
    }
}

// sum_j src[j * stride] * w[j], rounded at prec bits and clamped to uint8, as ATen's uint8 loops.
static uint8_t resample_one(const uint8_t* src, ptrdiff_t stride, const int16_t* w, int n, int prec) {
    int64_t acc = prec > 0 ? (int64_t)1 << (prec - 1) : 0;
    for (int j = 0; j < n; j++) acc += (int64_t)src[j * stride] * w[j];
    if (acc < 0) return 0;
    acc >>= prec;
    return (uint8_t)(acc > 255 ? 255 : acc);
}

// The resized size: shortest edge to s, the other int(s * long / short) (Python float math), or exact.
static void resized_size(const dato_clip_image_prep* p, int h, int w, int* nh, int* nw) {
    if (!p->do_resize) {
        *nh = h, *nw = w;
    } else if (p->shortest_edge == 0) {
        *nh = p->resize_h, *nw = p->resize_w;
    } else {
        int s = p->shortest_edge, short_side = w <= h ? w : h, long_side = w <= h ? h : w;
        int new_long = (int)((double)s * long_side / short_side);
        *nh = w <= h ? new_long : s;
        *nw = w <= h ? s : new_long;
    }
}

// Output index j of the S-wide window reads resized index j + off (outside [0, n): zero padding):
// torchvision's center_crop, which pads a side smaller than the crop and crops the rest.
static int crop_offset(int n, int crop) {
    return crop > n ? -((crop - n) / 2) : (int)((double)(n - crop) / 2.0);
}

typedef struct {
    axis_taps x, y;   // horizontal and vertical passes (n_in == n_out: the pass is skipped)
    uint8_t* rows;    // (h, S, ch): the horizontal pass over the window's columns
} prep_plan;

// Carves the plan out of c->scratch (grown when this image needs more) for an (h, w, ch) image
// resized to (nh, nw), whose S x S window starts at (off_y, off_x).
static dato_status plan_scratch(dato_clip* c, int h, int w, int ch, int nh, int nw, int off_y, int off_x,
                                prep_plan* pl, dato_error* err) {
    size_t S = (size_t)c->cfg.image_size;
    pl->x = (axis_taps){.n_in = w, .n_out = nw, .taps = axis_tap_count(w, nw), .off = off_x};
    pl->y = (axis_taps){.n_in = h, .n_out = nh, .taps = axis_tap_count(h, nh), .off = off_y};
    size_t tx = (size_t)pl->x.taps, ty = (size_t)pl->y.taps;
    size_t bytes = (tx + ty) * sizeof(double) + 4 * S * sizeof(int) + S * (tx + ty) * sizeof(int16_t) +
                   (size_t)h * S * ch;
    if (bytes > c->scratch_bytes) {
        free(c->scratch);
        c->scratch_bytes = 0;
        c->scratch = malloc(bytes);
        if (!c->scratch)
            return dato_fail(err, DATO_ERR_NOMEM, "clip: cannot allocate %zu bytes to resize a %dx%d image", bytes, h, w);
        c->scratch_bytes = bytes;
    }
    char* p = c->scratch; // doubles first, then ints, int16s and bytes: each aligned for its type
    pl->x.wd = (double*)p, p += tx * sizeof(double);
    pl->y.wd = (double*)p, p += ty * sizeof(double);
    pl->x.lo = (int*)p, p += S * sizeof(int);
    pl->x.n = (int*)p, p += S * sizeof(int);
    pl->y.lo = (int*)p, p += S * sizeof(int);
    pl->y.n = (int*)p, p += S * sizeof(int);
    pl->x.w = (int16_t*)p, p += S * tx * sizeof(int16_t);
    pl->y.w = (int16_t*)p, p += S * ty * sizeof(int16_t);
    pl->rows = (uint8_t*)p;
    return DATO_OK;
}

dato_status dato_clip_preprocess(dato_clip* c, const uint8_t* image, int h, int w, int ch, float* out,
                                 dato_error* err) {
    if (!c->weights) return dato_fail(err, DATO_ERR_INVALID, "clip: no model loaded");
    if (!image || !out) return dato_fail(err, DATO_ERR_INVALID, "clip preprocessing: NULL image or output");
    if (h < 1 || w < 1 || h > DATO_CLIP_MAX_SIDE || w > DATO_CLIP_MAX_SIDE || (ch != 1 && ch != 3))
        return dato_fail(err, DATO_ERR_INVALID,
                         "clip preprocessing: image %dx%d with %d channels (need sides 1..%d, 1 or 3 channels)", h, w, ch,
                         DATO_CLIP_MAX_SIDE);
    const dato_clip_image_prep* p = &c->prep;
    int S = c->cfg.image_size, nh, nw;
    resized_size(p, h, w, &nh, &nw);
    int off_y = p->do_center_crop ? crop_offset(nh, p->crop_h) : 0; // window row i reads resized row i + off_y
    int off_x = p->do_center_crop ? crop_offset(nw, p->crop_w) : 0;
    prep_plan pl;
    DATO_TRY(plan_scratch(c, h, w, ch, nh, nw, off_y, off_x, &pl, err));
    int resize_x = nw != w, resize_y = nh != h;
    if (resize_x) axis_weights(&pl.x, S);
    if (resize_y) axis_weights(&pl.y, S);

    // horizontal pass (or a copy) of every input row, over the window's columns: rows (h, S, ch)
    for (int y = 0; y < h; y++) {
        for (int j = 0; j < S; j++) {
            int ox = j + off_x;
            uint8_t* dst = pl.rows + ((size_t)y * S + j) * ch; // (ch)
            if (ox < 0 || ox >= nw) continue;                 // padding: never read
            for (int k = 0; k < ch; k++) {
                const uint8_t* src = image + (size_t)y * w * ch + k; // row y, channel k
                dst[k] = resize_x ? resample_one(src + (size_t)pl.x.lo[j] * ch, ch, pl.x.w + (size_t)j * pl.x.taps,
                                                 pl.x.n[j], pl.x.prec)
                                  : src[(size_t)ox * ch];
            }
        }
    }
    // vertical pass (or a copy) of the window's rows, then the normalization into out (3, S, S)
    float scale[3], mean[3];
    for (int k = 0; k < 3; k++) {
        if (p->do_rescale && p->do_normalize) { // fused: (x - mean / r) / (std / r), each tensor float32
            float inv = (float)(1.0 / p->rescale_factor);
            mean[k] = p->mean[k] * inv, scale[k] = p->std[k] * inv;
        } else {
            mean[k] = p->do_normalize ? p->mean[k] : 0.0f;
            scale[k] = p->do_normalize ? p->std[k] : 1.0f;
        }
    }
    float rescale = (float)p->rescale_factor;
    for (int i = 0; i < S; i++) {
        int oy = i + off_y;
        for (int j = 0; j < S; j++) {
            int ox = j + off_x, inside = oy >= 0 && oy < nh && ox >= 0 && ox < nw;
            uint8_t px[3] = {0, 0, 0};
            for (int k = 0; inside && k < ch; k++) {
                const uint8_t* col = pl.rows + (size_t)j * ch + k; // column j, channel k: stride S * ch
                px[k] = resize_y ? resample_one(col + (size_t)pl.y.lo[i] * S * ch, (ptrdiff_t)S * ch,
                                                pl.y.w + (size_t)i * pl.y.taps, pl.y.n[i], pl.y.prec)
                                 : col[(size_t)oy * S * ch];
            }
            if (ch == 1) px[1] = px[2] = px[0]; // grey -> RGB: the channel repeated
            for (int k = 0; k < 3; k++) {
                float x = (float)px[k];
                float v = p->do_normalize ? (x - mean[k]) / scale[k] : p->do_rescale ? x * rescale : x;
                out[((size_t)k * S + i) * S + j] = v;
            }
        }
    }
    return DATO_OK;
}

dato_status dato_clip_image_embeds(dato_clip* c, const uint8_t* images, int n, int h, int w, int ch, float* out,
                                   dato_error* err) {
    if (!c->weights) return dato_fail(err, DATO_ERR_INVALID, "clip: no model loaded");
    if (n < 1 || !images || !out)
        return dato_fail(err, DATO_ERR_INVALID, "clip image embeds: %d images, or NULL buffers", n);
    DATO_TRY(reserve_images(c, n, err));
    size_t S = (size_t)c->cfg.image_size, in_bytes = (size_t)h * w * ch;
    for (int i = 0; i < n; i++)
        DATO_TRY(dato_clip_preprocess(c, images + i * in_bytes, h, w, ch, c->pixels + i * 3 * S * S, err));
    dato_arena a = dato_arena_over(c->ws_block, c->ws_bytes);
    return vision_forward(c, c->be, &a, c->pixels, n, out, err);
}

// ---- text ---------------------------------------------------------------------------------------------

dato_status dato_clip_tokenize(dato_clip* c, const char* prompt, int32_t* ids, int* n_tokens, dato_error* err) {
    if (!c->tok) return dato_fail(err, DATO_ERR_INVALID, "clip: no model loaded");
    int n = 0;
    DATO_TRY(dato_tokenizer_encode(c->tok, prompt, c->row, &n, err)); // (L + 1): bos, up to L - 1 ids, eos, pads
    memcpy(ids, c->row, (size_t)c->text_len * sizeof *ids);            // the first L, as torchmetrics cuts
    if (n_tokens) *n_tokens = n > c->text_len ? c->text_len : n;
    return DATO_OK;
}

dato_status dato_clip_text_embeds(dato_clip* c, const char* const* prompts, int n, float* out, dato_error* err) {
    if (!c->weights) return dato_fail(err, DATO_ERR_INVALID, "clip: no model loaded");
    if (n < 1 || !prompts || !out)
        return dato_fail(err, DATO_ERR_INVALID, "clip text embeds: %d prompts, or NULL buffers", n);
    DATO_TRY(reserve_prompts(c, n, err));
    int L = c->text_len, D = c->cfg.projection_dim;
    for (int i = 0; i < n; i++) {
        if (!prompts[i]) return dato_fail(err, DATO_ERR_INVALID, "clip text embeds: prompt %d is NULL", i);
        DATO_TRY(dato_clip_tokenize(c, prompts[i], c->ids + (size_t)i * L, NULL, err));
    }
    dato_tensor pooled = dato_tensor_make(c->text_out, DATO_F32, c->be->device, 2, (int64_t[]){n, D}); // (n, D)
    DATO_TRY(dato_text_encoder_forward(&c->text, c->ids, n, L, 0, 1, NULL, &pooled, err));
    c->be->ops->download(c->be, out, c->text_out, (size_t)n * D * sizeof(float));
    return DATO_OK;
}

// ---- the score ----------------------------------------------------------------------------------------

double dato_clip_cosine(const float* img, const float* txt, int d) {
    double dot = 0.0, ni = 0.0, nt = 0.0;
    for (int i = 0; i < d; i++) {
        dot += (double)img[i] * txt[i];
        ni += (double)img[i] * img[i];
        nt += (double)txt[i] * txt[i];
    }
    return ni > 0.0 && nt > 0.0 ? dot / (sqrt(ni) * sqrt(nt)) : 0.0;
}

double dato_clip_score_pair(const float* img, const float* txt, int d) {
    double s = 100.0 * dato_clip_cosine(img, txt, d);
    return s > 0.0 ? s : 0.0;
}

double dato_clip_score_mean(const float* img, const float* txt, int n, int d) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += 100.0 * dato_clip_cosine(img + (size_t)i * d, txt + (size_t)i * d, d);
    double mean = n > 0 ? sum / n : 0.0;
    return mean > 0.0 ? mean : 0.0;
}
