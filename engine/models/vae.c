// The VAE decoder: config (diffusers JSON or inferred from LDM shapes), weights, workspace and
// the forward.
//
// Memory: activations rotate through three buffers carved once from the workspace: two "act"
// buffers that each fit the largest activation (at 512x512 the 256-channel upsampled tensor)
// and one "tmp" that fits the largest ResBlock output. A ResBlock reads one act buffer and
// writes the other, using tmp for its hidden state; an upsample goes act -> other act -> back.
// So SD's decoder at 512x512 needs 2 x 256 MiB + 128 MiB plus the small attention buffers.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "json_fields.h"
#include "param_table.h"
#include "vae.h"

// ---- configuration -------------------------------------------------------------------------------

// Every entry of the list field `key` (absent is fine) must equal `want`; *n gets its length.
static dato_status json_all_strings(const cJSON* obj, const char* key, const char* want, int* n, const char* label,
                                    dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *n = -1;
    if (!v || cJSON_IsNull(v)) return DATO_OK;
    if (!cJSON_IsArray(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected a list", label, key);
    *n = cJSON_GetArraySize(v);
    for (int i = 0; i < *n; i++) {
        const cJSON* e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(e) || strcmp(e->valuestring, want) != 0)
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s'[%d]: only %s is supported", label, key, i, want);
    }
    return DATO_OK;
}

static dato_status config_from_cjson(dato_vae_config* cfg, const cJSON* root, const char* label, dato_error* err) {
    memset(cfg, 0, sizeof *cfg);
    // diffusers AutoencoderKL defaults
    cfg->latent_channels = 4;
    cfg->out_channels = 3;
    cfg->layers_per_block = 1;
    cfg->norm_groups = 32;
    cfg->norm_eps = 1e-6f;
    cfg->scaling_factor = 0.18215f;
    cfg->mid_attention = 1;
    cfg->post_quant_conv = 1;

    const cJSON* cls = cJSON_GetObjectItemCaseSensitive(root, "_class_name");
    if (cls && (!cJSON_IsString(cls) || strcmp(cls->valuestring, "AutoencoderKL") != 0))
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '_class_name': only AutoencoderKL is supported", label);
    dato_status st = dato_json_int_list(root, "block_out_channels", 1, 65536, cfg->block_channels, DATO_VAE_MAX_LEVELS,
                                        &cfg->n_levels, label, err);
    if (st) return st;
    int n_up = -1;
    if ((st = json_all_strings(root, "up_block_types", "UpDecoderBlock2D", &n_up, label, err))) return st;
    if (n_up >= 0 && n_up != cfg->n_levels)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'up_block_types' has %d entries, block_out_channels %d", label,
                         n_up, cfg->n_levels);
    const cJSON* act = cJSON_GetObjectItemCaseSensitive(root, "act_fn");
    if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0))
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field 'act_fn': only silu is supported", label);
    // Per-channel latent statistics (Playground-style) would change the scaling: not handled.
    const char* stats[] = {"latents_mean", "latents_std"};
    for (int i = 0; i < 2; i++) {
        const cJSON* s = cJSON_GetObjectItemCaseSensitive(root, stats[i]);
        if (s && !cJSON_IsNull(s))
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s' is not supported (must be null)", label, stats[i]);
    }
    if ((st = dato_json_int(root, "latent_channels", &cfg->latent_channels, 0, label, err))) return st;
    if ((st = dato_json_int(root, "out_channels", &cfg->out_channels, 0, label, err))) return st;
    if ((st = dato_json_int(root, "layers_per_block", &cfg->layers_per_block, 0, label, err))) return st;
    if ((st = dato_json_int(root, "norm_num_groups", &cfg->norm_groups, 0, label, err))) return st;
    if ((st = dato_json_float(root, "scaling_factor", &cfg->scaling_factor, label, err))) return st;
    if ((st = dato_json_float(root, "shift_factor", &cfg->shift_factor, label, err))) return st;
    if ((st = dato_json_bool(root, "mid_block_add_attention", &cfg->mid_attention, label, err))) return st;
    if ((st = dato_json_bool(root, "use_post_quant_conv", &cfg->post_quant_conv, label, err))) return st;
    st = dato_vae_config_validate(cfg, err);
    if (st) return dato_error_prefix(err, st, "%s: ", label);
    return DATO_OK;
}

dato_status dato_vae_config_from_json_text(dato_vae_config* cfg, const char* text, const char* label,
                                           dato_error* err) {
    cJSON* root;
    DATO_TRY(dato_json_parse_object(text, label, &root, err));
    dato_status st = config_from_cjson(cfg, root, label, err);
    cJSON_Delete(root);
    return st;
}

dato_status dato_vae_config_from_json(dato_vae_config* cfg, const char* path, dato_error* err) {
    char* text = NULL;
    dato_status st = dato_read_text_file(path, &text, 1 << 20, err);
    if (st) return st;
    st = dato_vae_config_from_json_text(cfg, text, path, err);
    free(text);
    return st;
}

// The config's ints in range before any arithmetic on them (a config is untrusted input).
#define RANGE(name, field, lo, hi) DATO_INT_RANGE(dato_vae_config, name, field, lo, hi)
static const dato_int_range INT_RANGES[] = {
    RANGE("levels", n_levels, 1, DATO_VAE_MAX_LEVELS),
    RANGE("layers_per_block", layers_per_block, 0, DATO_VAE_MAX_RES - 1),
    RANGE("latent_channels", latent_channels, 1, 4096),
    RANGE("out_channels", out_channels, 1, 4096),
    RANGE("norm_num_groups", norm_groups, 1, 65536),
};

dato_status dato_vae_config_validate(const dato_vae_config* c, dato_error* err) {
    dato_status st = dato_check_int_ranges(c, INT_RANGES, (int)(sizeof INT_RANGES / sizeof *INT_RANGES), err);
    if (st) return dato_error_prefix(err, st, "vae config: ");
    for (int i = 0; i < c->n_levels; i++)
        if (c->block_channels[i] < 1 || c->block_channels[i] > 65536 || c->block_channels[i] % c->norm_groups)
            return dato_fail(err, DATO_ERR_INVALID,
                             "vae config: block_out_channels[%d] = %d is not a positive multiple of %d groups", i,
                             c->block_channels[i], c->norm_groups);
    if (!isfinite(c->scaling_factor) || c->scaling_factor == 0.0f || !isfinite(c->shift_factor))
        return dato_fail(err, DATO_ERR_INVALID, "vae config: scaling_factor %g / shift_factor %g", c->scaling_factor,
                         c->shift_factor);
    if (!isfinite(c->norm_eps) || !(c->norm_eps > 0))
        return dato_fail(err, DATO_ERR_INVALID, "vae config: norm eps %g must be finite and > 0", c->norm_eps);
    return DATO_OK;
}

dato_status dato_vae_config_infer_ldm(dato_vae_config* cfg, const dato_tensor_source* src, const char* prefix,
                                      float scaling_factor, int norm_groups, dato_error* err) {
    memset(cfg, 0, sizeof *cfg);
    const dato_st_tensor* conv_in = dato_source_findf(src, "%sdecoder.conv_in.weight", prefix);
    const dato_st_tensor* conv_out = dato_source_findf(src, "%sdecoder.conv_out.weight", prefix);
    if (!conv_in || conv_in->ndim != 4 || !conv_out || conv_out->ndim != 4)
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: no LDM VAE decoder under '%s' (decoder.conv_in.weight and decoder.conv_out.weight must "
                         "exist with 4 dims)",
                         src->label, prefix);
    cfg->latent_channels = dato_st_dim(conv_in, 1);
    cfg->out_channels = dato_st_dim(conv_out, 0);
    cfg->norm_groups = norm_groups > 0 ? norm_groups : 32;
    cfg->norm_eps = 1e-6f;
    cfg->scaling_factor = scaling_factor;
    cfg->mid_attention = dato_source_findf(src, "%sdecoder.mid.attn_1.q.weight", prefix) != NULL;
    cfg->post_quant_conv = dato_source_findf(src, "%spost_quant_conv.weight", prefix) != NULL;
    while (cfg->n_levels <= DATO_VAE_MAX_LEVELS &&
           dato_source_findf(src, "%sdecoder.up.%d.block.0.conv2.weight", prefix, cfg->n_levels))
        cfg->n_levels++;
    if (cfg->n_levels < 1 || cfg->n_levels > DATO_VAE_MAX_LEVELS)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %d decoder up blocks under '%sdecoder.up.', expected 1..%d",
                         src->label, cfg->n_levels, prefix, DATO_VAE_MAX_LEVELS);
    for (int i = 0; i < cfg->n_levels; i++) {
        const dato_st_tensor* c2 = dato_source_findf(src, "%sdecoder.up.%d.block.0.conv2.weight", prefix, i);
        if (c2->ndim != 4)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%sdecoder.up.%d.block.0.conv2.weight' must have 4 dims",
                             src->label, prefix, i);
        cfg->block_channels[i] = dato_st_dim(c2, 0);
    }
    int n_res = 0;
    while (n_res < DATO_VAE_MAX_RES && dato_source_findf(src, "%sdecoder.up.0.block.%d.conv1.weight", prefix, n_res))
        n_res++;
    cfg->layers_per_block = n_res - 1;
    dato_status st = dato_vae_config_validate(cfg, err);
    if (st) return dato_error_prefix(err, st, "%s: inferred VAE config: ", src->label);
    return DATO_OK;
}

// ---- weights ---------------------------------------------------------------------------------------

dato_status dato_vae_set_weight_dtype(dato_vae* v, dato_dtype dt, dato_error* err) {
    return dato_params_set_gemm_dtype(DATO_PARAM_TABLE(v, "vae"), dt, err);
}

void dato_vae_free(dato_vae* v) {
    if (v->weights) v->be->ops->free(v->be, v->weights);
    free(v->params);
    memset(v, 0, sizeof *v);
}

dato_status dato_vae_init_random(dato_vae* v, unsigned long long seed, float scale, dato_error* err) {
    return dato_params_init_random(DATO_PARAM_TABLE(v, "vae"), seed, scale, err);
}

dato_status dato_vae_load_weights(dato_vae* v, const dato_tensor_source* src, dato_layout layout, const char* prefix,
                                  dato_error* err) {
    dato_param_names names = {.src = src, .layout = layout, .prefix = prefix, .strict = "decoder.",
                              .model = "VAE decoder"};
    return dato_params_load(DATO_PARAM_TABLE(v, "vae"), &names, err);
}

dato_status dato_vae_open_folder(dato_vae* v, const char* dir, dato_backend* be, dato_error* err) {
    return dato_vae_open_folder_as(v, dir, be, DATO_F32, err);
}

dato_status dato_vae_open_folder_as(dato_vae* v, const char* dir, dato_backend* be, dato_dtype dtype, dato_error* err) {
    char vae_dir[4096], cfg_path[4096];
    dato_vae_config cfg;
    memset(v, 0, sizeof *v);
    if (!dato_is_dir(dir)) return dato_fail(err, DATO_ERR_IO, "%s: not a directory", dir);
    DATO_TRY(dato_path_join(vae_dir, sizeof vae_dir, dir, "vae", err));
    if (!dato_is_dir(vae_dir)) snprintf(vae_dir, sizeof vae_dir, "%s", dir);
    DATO_TRY(dato_path_join(cfg_path, sizeof cfg_path, vae_dir, "config.json", err));
    DATO_TRY(dato_vae_config_from_json(&cfg, cfg_path, err));
    dato_weight_files wf;
    DATO_TRY(dato_weight_files_open(&wf, vae_dir, err));
    dato_tensor_source src = dato_tensor_source_files(&wf);
    dato_status st = dato_vae_build(v, &cfg, be, err);
    if (!st) st = dato_vae_set_weight_dtype(v, dtype, err);
    if (!st) st = dato_vae_load_weights(v, &src, DATO_LAYOUT_DIFFUSERS, "", err);
    dato_weight_files_close(&wf);
    if (st && v->params) dato_vae_free(v);
    return st;
}

dato_status dato_vae_open_source(dato_vae* v, const dato_tensor_source* src, const char* prefix, float scaling_factor,
                                 int norm_groups, dato_backend* be, dato_error* err) {
    return dato_vae_open_source_as(v, src, prefix, scaling_factor, norm_groups, be, DATO_F32, err);
}

dato_status dato_vae_open_source_as(dato_vae* v, const dato_tensor_source* src, const char* prefix,
                                    float scaling_factor, int norm_groups, dato_backend* be, dato_dtype dtype,
                                    dato_error* err) {
    dato_vae_config cfg;
    memset(v, 0, sizeof *v);
    DATO_TRY(dato_vae_config_infer_ldm(&cfg, src, prefix, scaling_factor, norm_groups ? norm_groups : 32, err));
    DATO_TRY(dato_vae_build(v, &cfg, be, err));
    dato_status st = dato_vae_set_weight_dtype(v, dtype, err);
    if (!st) st = dato_vae_load_weights(v, src, DATO_LAYOUT_LDM, prefix, err);
    if (st) dato_vae_free(v);
    return st;
}

// ---- forward ---------------------------------------------------------------------------------------

typedef struct {
    dato_backend* be;
    const dato_backend_ops* op;
    const dato_vae_config* cfg;
    dato_arena* a;
    dato_error* err;
} fwd_ctx;

// A 4-D view over buffer memory.
static dato_tensor view4(void* data, dato_device dev, int64_t b, int64_t c, int64_t h, int64_t w) {
    return dato_tensor_make(data, DATO_F32, dev, 4, (int64_t[]){b, c, h, w});
}

// Elements of the largest activation (act) and of the largest ResBlock output (tmp) of a decode
// of (B, h, w) latents, walking the same shapes as decode_impl.
static void plan_buffers(const dato_vae_config* c, int64_t B, int64_t h, int64_t w, int64_t* act, int64_t* tmp) {
    int nl = c->n_levels;
    int64_t top = c->block_channels[nl - 1], hw = h * w;
    int64_t a = (c->latent_channels > top ? c->latent_channels : top) * hw, t = a;
    int64_t ch = top;
    for (int i = 0; i < nl; i++) {
        int64_t co = c->block_channels[nl - 1 - i];
        int64_t in = (ch > co ? ch : co) * hw;
        a = in > a ? in : a;
        t = co * hw > t ? co * hw : t;
        if (i < nl - 1) { // the upsampled tensor before its conv
            hw *= 4;
            a = co * hw > a ? co * hw : a;
        }
        ch = co;
    }
    *act = B * a;
    *tmp = B * t;
}

// out = conv (3x3, pad 1) of x after norm (GroupNorm, then SiLU): the backend's fused op where it has
// one; else the two ops, the normalized x in normed (x's shape; x itself when it may be clobbered).
static dato_status norm_silu_conv(fwd_ctx* f, dato_tensor* out, const dato_tensor* x, dato_tensor* normed,
                                  const dato_affine* norm, const dato_affine* conv) {
    const dato_vae_config* c = f->cfg;
    if (f->op->group_norm_conv2d)
        return f->op->group_norm_conv2d(f->be, out, x, &norm->w, &norm->b, c->norm_groups, c->norm_eps, 1, &conv->w,
                                        &conv->b, 1, 1, 1, 1, f->err);
    DATO_TRY(f->op->group_norm(f->be, normed, x, &norm->w, &norm->b, c->norm_groups, c->norm_eps, 1, f->err));
    return f->op->conv2d(f->be, out, normed, &conv->w, &conv->b, 1, 1, 1, 1, f->err);
}

// out = ResBlock(x); x's buffer (sized for any activation) is clobbered, tmp holds the hidden state.
static dato_status resblock_forward(fwd_ctx* f, const dato_vae_resblock* r, dato_tensor* out, dato_tensor* x,
                                    float* tmp) {
    dato_device dev = f->be->device;
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
    dato_tensor h = view4(tmp, dev, B, r->cout, H, W); // (B, cout, H, W)
    if (r->cin != r->cout) {
        // shortcut first, so x's buffer is free for the normalized input and the conv2 output
        DATO_TRY(f->op->conv2d(f->be, out, x, &r->conv_shortcut.w, &r->conv_shortcut.b, 1, 1, 0, 0, f->err));
        DATO_TRY(norm_silu_conv(f, &h, x, x, &r->norm1, &r->conv1));
        dato_tensor h2 = view4(x->data, dev, B, r->cout, H, W); // (B, cout, H, W) in x's buffer
        DATO_TRY(norm_silu_conv(f, &h2, &h, &h, &r->norm2, &r->conv2));
        return f->op->add(f->be, out, out, &h2, f->err);
    }
    dato_tensor xn = view4(out->data, dev, B, r->cin, H, W); // (B, cin, H, W) normalized, in out's buffer
    DATO_TRY(norm_silu_conv(f, &h, x, &xn, &r->norm1, &r->conv1));
    DATO_TRY(norm_silu_conv(f, out, &h, &h, &r->norm2, &r->conv2));
    return f->op->add(f->be, out, out, x, f->err);
}

// x (B, C, H, W) += proj_out(attention(GN(x))) with one head over the H*W tokens; spare is an
// act-sized buffer, tmp a tmp-sized one; q/k/v/o come from the arena.
static dato_status attention_forward(fwd_ctx* f, const dato_vae_attention* at, dato_tensor* x, float* spare,
                                     float* tmp) {
    dato_device dev = f->be->device;
    int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], N = H * W;
    size_t mark = dato_arena_mark(f->a);
    int64_t st[3] = {B, N, C};
    dato_tensor q = dato_arena_tensor(f->a, DATO_F32, dev, 3, st); // (B, N, C)
    dato_tensor k = dato_arena_tensor(f->a, DATO_F32, dev, 3, st); // (B, N, C)
    dato_tensor v = dato_arena_tensor(f->a, DATO_F32, dev, 3, st); // (B, N, C)
    dato_tensor o = dato_arena_tensor(f->a, DATO_F32, dev, 3, st); // (B, N, C)
    if (f->a->overflowed)
        return dato_fail(f->err, DATO_ERR_NOMEM, "vae: workspace too small in the mid attention (planned %zu bytes)",
                         f->a->cap);
    dato_tensor g = view4(spare, dev, B, C, H, W);                              // (B, C, H, W) normalized
    dato_tensor tok = dato_tensor_make(tmp, DATO_F32, dev, 3, (int64_t[]){B, N, C}); // (B, N, C)
    DATO_TRY(f->op->group_norm(f->be, &g, x, &at->norm.w, &at->norm.b, f->cfg->norm_groups, f->cfg->norm_eps, 0, f->err));
    DATO_TRY(f->op->nchw_to_tokens(f->be, &tok, &g, f->err));
    DATO_TRY(f->op->linear(f->be, &q, &tok, &at->q.w, &at->q.b, f->err));
    DATO_TRY(f->op->linear(f->be, &k, &tok, &at->k.w, &at->k.b, f->err));
    DATO_TRY(f->op->linear(f->be, &v, &tok, &at->v.w, &at->v.b, f->err));
    DATO_TRY(f->op->attention(f->be, &o, &q, &k, &v, 1, 1.0f / sqrtf((float)C), 0, f->err));
    DATO_TRY(f->op->linear(f->be, &tok, &o, &at->out.w, &at->out.b, f->err));
    DATO_TRY(f->op->tokens_to_nchw(f->be, &g, &tok, f->err));
    DATO_TRY(f->op->add(f->be, x, x, &g, f->err));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// The decode on backend be over arena a (reset here); shift is (B, latent_channels) or data NULL.
static dato_status decode_impl(const dato_vae* v, dato_backend* be, dato_arena* a, const dato_tensor* shift,
                               const dato_tensor* latents, dato_tensor* image, dato_error* err) {
    const dato_vae_config* c = &v->cfg;
    fwd_ctx f = {.be = be, .op = be->ops, .cfg = c, .a = a, .err = err};
    dato_device dev = be->device;
    int64_t B = latents->shape[0], H = latents->shape[2], W = latents->shape[3];
    int64_t act_n, tmp_n;
    plan_buffers(c, B, H, W, &act_n, &tmp_n);
    a->top = 0;
    a->overflowed = 0;
    float* buf[2] = {dato_arena_alloc(a, (size_t)act_n * sizeof(float)), dato_arena_alloc(a, (size_t)act_n * sizeof(float))};
    float* tmp = dato_arena_alloc(a, (size_t)tmp_n * sizeof(float));
    if (a->overflowed)
        return dato_fail(err, DATO_ERR_NOMEM, "vae: workspace too small for the activation buffers (planned %zu bytes)",
                         a->cap);
    int cur = 0; // buf[cur] holds the running activation

    // z = latents / scaling_factor (+ shift) in tmp; post_quant_conv into buf[1]; conv_in into buf[0].
    int zc = c->latent_channels, top = c->block_channels[c->n_levels - 1];
    dato_tensor z = view4(tmp, dev, B, zc, H, W); // (B, zc, h, w)
    DATO_TRY(f.op->axpby(be, &z, 1.0f / c->scaling_factor, latents, 0.0f, latents, err));
    if (shift->data) DATO_TRY(f.op->add_channel_bias(be, &z, shift, err));
    if (c->post_quant_conv) {
        dato_tensor pq = view4(buf[1], dev, B, zc, H, W); // (B, zc, h, w)
        DATO_TRY(f.op->conv2d(be, &pq, &z, &v->post_quant_conv.w, &v->post_quant_conv.b, 1, 1, 0, 0, err));
        z = pq;
    }
    dato_tensor x = view4(buf[cur], dev, B, top, H, W); // (B, top, h, w)
    DATO_TRY(f.op->conv2d(be, &x, &z, &v->conv_in.w, &v->conv_in.b, 1, 1, 1, 1, err));

    // mid
    for (int k = 0; k < 2; k++) {
        dato_tensor y = view4(buf[1 - cur], dev, B, top, H, W); // (B, top, h, w)
        DATO_TRY(resblock_forward(&f, &v->mid_res[k], &y, &x, tmp));
        cur = 1 - cur;
        x = y;
        if (k == 0 && c->mid_attention) DATO_TRY(attention_forward(&f, &v->mid_attn, &x, buf[1 - cur], tmp));
    }

    // up blocks, deepest first
    for (int i = 0; i < c->n_levels; i++) {
        const dato_vae_up_block* ub = &v->up[i];
        for (int j = 0; j < ub->n_res; j++) {
            int co = ub->res[j].cout;
            dato_tensor y = view4(buf[1 - cur], dev, B, co, H, W); // (B, co, H, W)
            DATO_TRY(resblock_forward(&f, &ub->res[j], &y, &x, tmp));
            cur = 1 - cur;
            x = y;
        }
        if (ub->has_upsample) {
            int64_t C = x.shape[1];
            H *= 2;
            W *= 2;
            dato_tensor up = view4(buf[1 - cur], dev, B, C, H, W); // (B, C, 2H, 2W) nearest
            DATO_TRY(f.op->upsample_nearest2x(be, &up, &x, err));
            x = view4(buf[cur], dev, B, C, H, W);
            DATO_TRY(f.op->conv2d(be, &x, &up, &ub->upsample.w, &ub->upsample.b, 1, 1, 1, 1, err));
        }
    }

    return norm_silu_conv(&f, image, &x, &x, &v->norm_out, &v->conv_out);
}

static dato_status check_io(const dato_vae* v, const dato_tensor* latents, const dato_tensor* image, dato_error* err) {
    const dato_vae_config* c = &v->cfg;
    int64_t f = (int64_t)1 << (c->n_levels - 1);
    char s1[64];
    if (!latents || latents->ndim != 4 || latents->dtype != DATO_F32 || latents->shape[1] != c->latent_channels ||
        latents->shape[0] < 1 || latents->shape[2] < 1 || latents->shape[3] < 1)
        return dato_fail(err, DATO_ERR_INVALID, "vae: latents must be F32 (B, %d, h, w), got %s", c->latent_channels,
                         latents ? dato_shape_str(latents, s1, sizeof s1) : "NULL");
    if (!image || image->ndim != 4 || image->dtype != DATO_F32 || image->shape[0] != latents->shape[0] ||
        image->shape[1] != c->out_channels || image->shape[2] != f * latents->shape[2] ||
        image->shape[3] != f * latents->shape[3])
        return dato_fail(err, DATO_ERR_INVALID, "vae: image must be F32 (%lld, %d, %lld, %lld), got %s",
                         (long long)latents->shape[0], c->out_channels, (long long)(f * latents->shape[2]),
                         (long long)(f * latents->shape[3]), image ? dato_shape_str(image, s1, sizeof s1) : "NULL");
    return DATO_OK;
}

// The workspace peak of a (batch, h, w) decode: the decode itself on the null backend over a measuring arena.
static dato_status measure(const dato_vae* v, int batch, int h, int w, size_t* peak, dato_error* err) {
    const dato_vae_config* c = &v->cfg;
    int64_t f = (int64_t)1 << (c->n_levels - 1);
    if (batch < 1 || h < 1 || w < 1 || (int64_t)batch * h * w * f * f > ((int64_t)1 << 34))
        return dato_fail(err, DATO_ERR_INVALID, "vae: workspace for batch %d, %dx%d latents is out of range", batch, h, w);
    dato_device dev = v->be->device;
    dato_backend null_be;
    dato_backend_null_init(&null_be);
    dato_arena meas = dato_arena_measure();
    dato_tensor lat = view4(NULL, dev, batch, c->latent_channels, h, w);
    dato_tensor img = view4(NULL, dev, batch, c->out_channels, f * h, f * w);
    dato_tensor no_shift = {0};
    dato_status st = decode_impl(v, &null_be, &meas, &no_shift, &lat, &img, err);
    dato_backend_destroy(&null_be);
    *peak = meas.peak;
    return st;
}

static size_t shift_bytes(const dato_vae_config* c, int batch) {
    return c->shift_factor != 0.0f ? dato_arena_bytes(DATO_F32, (size_t)batch * c->latent_channels) : 0;
}

dato_status dato_vae_ws_bytes(const dato_vae* v, int batch, int h, int w, size_t* bytes, dato_error* err) {
    size_t peak = 0;
    DATO_TRY(measure(v, batch, h, w, &peak, err));
    *bytes = peak + shift_bytes(&v->cfg, batch);
    return DATO_OK;
}

dato_status dato_vae_ws_create(dato_vae_ws* ws, const dato_vae* v, int batch, int h, int w, dato_error* err) {
    memset(ws, 0, sizeof *ws);
    const dato_vae_config* c = &v->cfg;
    size_t peak = 0;
    DATO_TRY(measure(v, batch, h, w, &peak, err));
    ws->batch = batch;
    ws->h = h;
    ws->w = w;
    size_t sb = shift_bytes(c, batch);
    ws->bytes = peak + sb;
    ws->block = v->be->ops->alloc(v->be, ws->bytes);
    if (!ws->block) return dato_fail(err, DATO_ERR_NOMEM, "vae: cannot allocate a %zu-byte workspace", ws->bytes);
    ws->arena = dato_arena_over(ws->block, peak);
    if (sb) { // the (B, latent_channels) shift, uploaded once
        size_t n = (size_t)batch * c->latent_channels;
        float* host = malloc(n * sizeof *host);
        if (!host) {
            dato_vae_ws_free(ws, v);
            return dato_fail(err, DATO_ERR_NOMEM, "vae: cannot allocate the shift staging buffer");
        }
        for (size_t i = 0; i < n; i++) host[i] = c->shift_factor;
        ws->shift = dato_tensor_make((char*)ws->block + peak, DATO_F32, v->be->device, 2,
                                     (int64_t[]){batch, c->latent_channels});
        v->be->ops->upload(v->be, ws->shift.data, host, n * sizeof *host);
        free(host);
    }
    return DATO_OK;
}

void dato_vae_ws_free(dato_vae_ws* ws, const dato_vae* v) {
    if (ws->block) v->be->ops->free(v->be, ws->block);
    memset(ws, 0, sizeof *ws);
}

dato_status dato_vae_decode(const dato_vae* v, dato_vae_ws* ws, const dato_tensor* latents, dato_tensor* image,
                            dato_error* err) {
    DATO_TRY(check_io(v, latents, image, err));
    if (!ws->block || latents->shape[0] != ws->batch || latents->shape[2] != ws->h || latents->shape[3] != ws->w)
        return dato_fail(err, DATO_ERR_INVALID, "vae: latents (B=%lld, %lldx%lld) do not match the workspace (B=%d, %dx%d)",
                         (long long)latents->shape[0], (long long)latents->shape[2], (long long)latents->shape[3],
                         ws->batch, ws->h, ws->w);
    if (!latents->data || !image->data || latents->device != v->be->device || image->device != v->be->device)
        return dato_fail(err, DATO_ERR_INVALID, "vae: latents and image must be allocated on the %s backend's device",
                         v->be->name);
    return decode_impl(v, v->be, &ws->arena, &ws->shift, latents, image, err);
}
