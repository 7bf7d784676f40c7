// UNet configuration: diffusers unet/config.json in, validated dato_unet_config out.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "json_fields.h"
#include "unet.h"

int dato_unet_n_branches(const dato_unet_config* cfg) {
    return 1 + cfg->n_levels * (cfg->layers_per_block + 1) - 1;
}

// Every integer of a config in its range, before any arithmetic on it: the layer list multiplies
// them (4 x block channels, 6 x the time embedding, channels x channels weights), and a config is
// untrusted input. The bounds are far above any released model's.
#define RANGE(name, field, lo, hi) DATO_INT_RANGE(dato_unet_config, name, field, lo, hi)
static const dato_int_range INT_RANGES[] = {
    RANGE("levels", n_levels, 1, DATO_UNET_MAX_LEVELS),
    RANGE("in_channels", in_channels, 1, 4096),
    RANGE("out_channels", out_channels, 1, 4096),
    RANGE("layers_per_block", layers_per_block, 1, DATO_UNET_MAX_LAYERS - 1),
    RANGE("cross_attention_dim", cross_attention_dim, 1, 65536),
    RANGE("norm_num_groups", norm_groups, 1, 65536),
    RANGE("sample_size", sample_size, 1, 4096),
    RANGE("addition_time_embed_dim", addition_time_embed_dim, 0, 65536),
    RANGE("projection_class_embeddings_input_dim", add_embed_in, 0, 1 << 20),
};
#define MAX_CHANNELS 65536 // block_out_channels

static dato_status check_ranges(const dato_unet_config* c, dato_error* err) {
    DATO_TRY(dato_check_int_ranges(c, INT_RANGES, (int)(sizeof INT_RANGES / sizeof *INT_RANGES), err));
    for (int i = 0; i < c->n_levels; i++)
        if (c->block_channels[i] < 1 || c->block_channels[i] > MAX_CHANNELS)
            return dato_fail(err, DATO_ERR_INVALID, "block_out_channels[%d] = %d is outside 1..%d", i,
                             c->block_channels[i], MAX_CHANNELS);
    if (dato_unet_n_branches(c) > DATO_UNET_MAX_LAYERS)
        return dato_fail(err, DATO_ERR_INVALID, "%d levels of layers_per_block %d give %d skip branches (at most %d)",
                         c->n_levels, c->layers_per_block, dato_unet_n_branches(c), DATO_UNET_MAX_LAYERS);
    return DATO_OK;
}

static dato_status parse_config(dato_unet_config* cfg, const cJSON* root, const char* label, dato_error* err) {
    dato_status st;
    memset(cfg, 0, sizeof *cfg);
    // diffusers' defaults for UNet2DConditionModel
    cfg->in_channels = 4;
    cfg->out_channels = 4;
    cfg->layers_per_block = 2;
    cfg->cross_attention_dim = 1280;
    cfg->flip_sin_to_cos = 1;
    cfg->norm_groups = 32;
    cfg->norm_eps = 1e-5f;
    cfg->sample_size = 64;

    if (!cJSON_IsObject(root)) return dato_fail(err, DATO_ERR_FORMAT, "%s: expected a JSON object", label);

    const cJSON* down = cJSON_GetObjectItemCaseSensitive(root, "down_block_types");
    const cJSON* up = cJSON_GetObjectItemCaseSensitive(root, "up_block_types");
    const cJSON* chans = cJSON_GetObjectItemCaseSensitive(root, "block_out_channels");
    if (!cJSON_IsArray(down) || !cJSON_IsArray(up) || !cJSON_IsArray(chans))
        return dato_fail(err, DATO_ERR_FORMAT,
                         "%s: fields 'down_block_types', 'up_block_types' and 'block_out_channels' must be lists", label);
    int n = cJSON_GetArraySize(chans);
    if (n < 1 || n > DATO_UNET_MAX_LEVELS || cJSON_GetArraySize(down) != n || cJSON_GetArraySize(up) != n)
        return dato_fail(err, DATO_ERR_INVALID,
                         "%s: 'block_out_channels', 'down_block_types', 'up_block_types' must have the same length "
                         "1..%d (got %d, %d, %d)",
                         label, DATO_UNET_MAX_LEVELS, n, cJSON_GetArraySize(down), cJSON_GetArraySize(up));
    cfg->n_levels = n;
    if ((st = dato_json_int_or_list(root, "block_out_channels", cfg->block_channels, n, label, err))) return st;
    for (int i = 0; i < n; i++) {
        const cJSON* d = cJSON_GetArrayItem(down, i);
        const cJSON* u = cJSON_GetArrayItem(up, n - 1 - i); // up blocks run from the deepest level
        if (!cJSON_IsString(d) || !cJSON_IsString(u))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: block types must be strings", label);
        int dattn = strcmp(d->valuestring, "CrossAttnDownBlock2D") == 0;
        int uattn = strcmp(u->valuestring, "CrossAttnUpBlock2D") == 0;
        if (!dattn && strcmp(d->valuestring, "DownBlock2D") != 0)
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: down_block_types[%d] = %s is not supported", label, i,
                             d->valuestring);
        if (!uattn && strcmp(u->valuestring, "UpBlock2D") != 0)
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: up_block_types[%d] = %s is not supported", label,
                             n - 1 - i, u->valuestring);
        if (dattn != uattn)
            return dato_fail(err, DATO_ERR_UNSUPPORTED,
                             "%s: down_block_types[%d] and up_block_types[%d] disagree on attention", label, i,
                             n - 1 - i);
        cfg->level_has_attn[i] = dattn;
    }
    static const char* const mid_types[] = {"UNetMidBlock2DCrossAttn", NULL};
    static const char* const time_types[] = {"positional", NULL};
    static const char* const act_types[] = {"silu", NULL};
    static const char* const shift_types[] = {"default", NULL};
    static const char* const add_types[] = {"text_time", NULL};
    if ((st = dato_json_expect_string(root, "mid_block_type", mid_types, label, err))) return st;
    if ((st = dato_json_expect_string(root, "time_embedding_type", time_types, label, err))) return st;
    if ((st = dato_json_expect_string(root, "act_fn", act_types, label, err))) return st;
    if ((st = dato_json_expect_string(root, "resnet_time_scale_shift", shift_types, label, err))) return st;
    if ((st = dato_json_expect_string(root, "addition_embed_type", add_types, label, err))) return st;
    static const char* const unsupported_if_set[] = {"class_embed_type", "encoder_hid_dim", "time_cond_proj_dim",
                                                     "reverse_transformer_layers_per_block", NULL};
    for (int i = 0; unsupported_if_set[i]; i++) {
        const cJSON* v = cJSON_GetObjectItemCaseSensitive(root, unsupported_if_set[i]);
        if (v && !cJSON_IsNull(v))
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s' is set; not supported", label,
                             unsupported_if_set[i]);
    }
    static const char* const must_be_false[] = {"only_cross_attention", "dual_cross_attention", "center_input_sample",
                                                NULL};
    for (int i = 0; must_be_false[i]; i++) {
        int b = 0;
        if ((st = dato_json_bool(root, must_be_false[i], &b, label, err))) return st;
        if (b) return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s' = true is not supported", label, must_be_false[i]);
    }

    if ((st = dato_json_int(root, "in_channels", &cfg->in_channels, 0, label, err))) return st;
    if ((st = dato_json_int(root, "out_channels", &cfg->out_channels, 0, label, err))) return st;
    if ((st = dato_json_int(root, "layers_per_block", &cfg->layers_per_block, 0, label, err))) return st;
    if ((st = dato_json_int(root, "cross_attention_dim", &cfg->cross_attention_dim, 0, label, err))) return st;
    if ((st = dato_json_int(root, "norm_num_groups", &cfg->norm_groups, 0, label, err))) return st;
    if ((st = dato_json_int(root, "sample_size", &cfg->sample_size, 0, label, err))) return st;
    if ((st = dato_json_float(root, "norm_eps", &cfg->norm_eps, label, err))) return st;
    if ((st = dato_json_float(root, "freq_shift", &cfg->freq_shift, label, err))) return st;
    if ((st = dato_json_bool(root, "flip_sin_to_cos", &cfg->flip_sin_to_cos, label, err))) return st;
    if ((st = dato_json_bool(root, "use_linear_projection", &cfg->use_linear_projection, label, err))) return st;
    if ((st = dato_json_bool(root, "upcast_attention", &cfg->upcast_attention, label, err))) return st;

    // diffusers: num_attention_heads defaults to attention_head_dim, which despite its name is
    // the head count (a misnomer its source admits).
    for (int i = 0; i < n; i++) cfg->heads[i] = 8;
    if ((st = dato_json_int_or_list(root, "attention_head_dim", cfg->heads, n, label, err))) return st;
    if ((st = dato_json_int_or_list(root, "num_attention_heads", cfg->heads, n, label, err))) return st;
    for (int i = 0; i < n; i++) cfg->transformer_depth[i] = 1;
    if ((st = dato_json_int_or_list(root, "transformer_layers_per_block", cfg->transformer_depth, n, label, err))) return st;
    cfg->mid_transformer_depth = cfg->transformer_depth[n - 1];
    const cJSON* add = cJSON_GetObjectItemCaseSensitive(root, "addition_embed_type");
    if (cJSON_IsString(add)) {
        if ((st = dato_json_int(root, "addition_time_embed_dim", &cfg->addition_time_embed_dim, 0, label, err))) return st;
        if ((st = dato_json_int(root, "projection_class_embeddings_input_dim", &cfg->add_embed_in, 0, label, err))) return st;
        if (cfg->addition_time_embed_dim <= 0 || cfg->add_embed_in <= 0)
            return dato_fail(err, DATO_ERR_INVALID,
                             "%s: 'text_time' needs addition_time_embed_dim and projection_class_embeddings_input_dim "
                             "(got %d and %d)", label, cfg->addition_time_embed_dim, cfg->add_embed_in);
    }
    // The time embedding's width is derived, once the channels are known to be in range.
    if ((st = check_ranges(cfg, err))) return dato_error_prefix(err, st, "%s: ", label);
    cfg->time_embed_dim = 4 * cfg->block_channels[0];
    if ((st = dato_unet_config_validate(cfg, err))) return dato_error_prefix(err, st, "%s: ", label);
    return DATO_OK;
}

dato_status dato_unet_config_from_json_text(dato_unet_config* cfg, const char* text, const char* label,
                                            dato_error* err) {
    cJSON* root = cJSON_Parse(text);
    if (!root) return dato_fail(err, DATO_ERR_FORMAT, "%s: not valid JSON", label);
    dato_status st = parse_config(cfg, root, label, err);
    cJSON_Delete(root);
    return st;
}

dato_status dato_unet_config_from_json(dato_unet_config* cfg, const char* path, dato_error* err) {
    char* text = NULL;
    dato_status st = dato_read_text_file(path, &text, 1 << 20, err);
    if (st) return st;
    st = dato_unet_config_from_json_text(cfg, text, path, err);
    free(text);
    return st;
}

dato_status dato_unet_config_validate(const dato_unet_config* c, dato_error* err) {
    DATO_TRY(check_ranges(c, err));
    for (int i = 0; i < c->n_levels; i++) {
        int ch = c->block_channels[i];
        if (ch % c->norm_groups)
            return dato_fail(err, DATO_ERR_INVALID, "block_out_channels[%d] = %d is not a multiple of norm_num_groups %d",
                             i, ch, c->norm_groups);
        if (c->level_has_attn[i] || i == c->n_levels - 1) { // the last level's heads serve the mid block
            if (c->heads[i] < 1 || c->heads[i] > ch || ch % c->heads[i])
                return dato_fail(err, DATO_ERR_INVALID, "level %d: %d channels do not split into %d heads", i, ch,
                                 c->heads[i]);
            if (c->transformer_depth[i] < 1 || c->transformer_depth[i] > 64)
                return dato_fail(err, DATO_ERR_INVALID, "level %d: transformer depth %d outside 1..64", i,
                                 c->transformer_depth[i]);
        }
    }
    if (c->mid_transformer_depth < 1 || c->mid_transformer_depth > 64)
        return dato_fail(err, DATO_ERR_INVALID, "mid block: transformer depth %d outside 1..64", c->mid_transformer_depth);
    if (c->time_embed_dim != 4 * c->block_channels[0])
        return dato_fail(err, DATO_ERR_INVALID, "time embedding width %d is not 4 x block_out_channels[0] = %d",
                         c->time_embed_dim, 4 * c->block_channels[0]);
    if (c->add_embed_in && (c->addition_time_embed_dim < 1 || c->add_embed_in <= 6 * c->addition_time_embed_dim))
        return dato_fail(err, DATO_ERR_INVALID,
                         "projection_class_embeddings_input_dim %d must exceed 6 x addition_time_embed_dim %d (the "
                         "pooled text embedding takes the rest)", c->add_embed_in, c->addition_time_embed_dim);
    if (!isfinite(c->norm_eps) || !(c->norm_eps > 0.0f))
        return dato_fail(err, DATO_ERR_INVALID, "norm_eps %g must be finite and > 0", (double)c->norm_eps);
    if (!isfinite(c->freq_shift))
        return dato_fail(err, DATO_ERR_INVALID, "freq_shift %g must be finite", (double)c->freq_shift);
    return DATO_OK;
}
