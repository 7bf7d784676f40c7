// dato.json of a model folder (engine/models/model_defaults.h).
#include "model_defaults.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_dir.h"
#include "file_util.h"
#include "json_fields.h"

static const char* const KNOWN_KEYS[] = {"format", "version", "steps", "guidance", "height", "width",
                                         "eval_prompts", "feature_net", "reference_stats", "reference_cache", NULL};

// The numbers' ranges are the command line's (--steps, --height, --width; 0: not set).
#define RANGE(name, field, lo, hi) DATO_INT_RANGE(dato_model_defaults, name, field, lo, hi)
static const dato_int_range INT_RANGES[] = {
    RANGE("steps", steps, 0, 1000),
    RANGE("height", height, 0, 16384),
    RANGE("width", width, 0, 16384),
};

// A relative path in the file is relative to the model folder.
static dato_status read_path(const cJSON* root, const char* key, const char* model_dir, char* out, size_t n,
                             const char* label, dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return DATO_OK;
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return dato_fail(err, DATO_ERR_INVALID, "%s: \"%s\" must be a non-empty path string", label, key);
    if (v->valuestring[0] == '/') {
        if (snprintf(out, n, "%s", v->valuestring) >= (int)n)
            return dato_fail(err, DATO_ERR_INVALID, "%s: \"%s\" is too long", label, key);
        return DATO_OK;
    }
    return dato_path_join(out, n, model_dir, v->valuestring, err);
}

dato_status dato_model_defaults_load(dato_model_defaults* d, const char* model_dir, dato_error* err) {
    memset(d, 0, sizeof *d);
    char path[4096];
    if (!dato_is_dir(model_dir)) return DATO_OK;
    DATO_TRY(dato_path_join(path, sizeof path, model_dir, "dato.json", err));
    if (!dato_is_file(path)) return DATO_OK;
    char* text = NULL;
    DATO_TRY(dato_read_text_file(path, &text, 1 << 20, err));
    cJSON* root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dato_fail(err, DATO_ERR_INVALID, "%s: not a JSON object", path);
    }
    dato_status st = DATO_OK;
    for (const cJSON* it = root->child; it && !st; it = it->next) {
        int known = 0;
        for (int i = 0; KNOWN_KEYS[i]; i++) known |= !strcmp(it->string, KNOWN_KEYS[i]);
        if (!known) st = dato_fail(err, DATO_ERR_INVALID, "%s: unknown key \"%s\"", path, it->string);
    }
    const cJSON* fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    int version = 1;
    if (!st && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "dato-model-defaults")))
        st = dato_fail(err, DATO_ERR_INVALID, "%s: \"format\" must be \"dato-model-defaults\"", path);
    if (!st) st = dato_json_int(root, "version", &version, 1, path, err);
    if (!st && version != 1)
        st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: version %d, this build reads version 1", path, version);
    if (!st) st = dato_json_int(root, "steps", &d->steps, 0, path, err);
    if (!st) st = dato_json_float(root, "guidance", &d->guidance, path, err);
    if (!st) st = dato_json_int(root, "height", &d->height, 0, path, err);
    if (!st) st = dato_json_int(root, "width", &d->width, 0, path, err);
    if (!st && (st = dato_check_int_ranges(d, INT_RANGES, (int)(sizeof INT_RANGES / sizeof *INT_RANGES), err)))
        dato_error_prefix(err, st, "%s: ", path);
    if (!st && !(d->guidance >= 0 && d->guidance <= 100))
        st = dato_fail(err, DATO_ERR_INVALID, "%s: guidance = %g is outside 0..100 (as --guidance)", path,
                       (double)d->guidance);
    if (!st) st = read_path(root, "eval_prompts", model_dir, d->eval_prompts, sizeof d->eval_prompts, path, err);
    if (!st) st = read_path(root, "feature_net", model_dir, d->feature_net, sizeof d->feature_net, path, err);
    if (!st)
        st = read_path(root, "reference_stats", model_dir, d->reference_stats, sizeof d->reference_stats, path, err);
    if (!st)
        st = read_path(root, "reference_cache", model_dir, d->reference_cache, sizeof d->reference_cache, path, err);
    cJSON_Delete(root);
    if (st) memset(d, 0, sizeof *d);
    else d->present = 1;
    return st;
}

dato_status dato_default_model_dir(char* buf, size_t n, dato_error* err) {
    const char* env = getenv("DATO_DEFAULT_MODEL");
    if (env && env[0]) {
        if (snprintf(buf, n, "%s", env) >= (int)n) return dato_fail(err, DATO_ERR_INVALID, "$DATO_DEFAULT_MODEL is too long");
        return DATO_OK;
    }
    return dato_data_path(buf, n, "models/fashion-sd", err);
}
