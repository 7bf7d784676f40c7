#include "json_fields.h"

#include <string.h>

static int is_exact_int(const cJSON* v) {
    return cJSON_IsNumber(v) && v->valuedouble == (double)(int)v->valuedouble;
}

dato_status dato_json_int(const cJSON* obj, const char* key, int* out, int required, const char* label,
                          dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v))
        return required ? dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s' is missing", label, key) : DATO_OK;
    if (!is_exact_int(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected an integer", label, key);
    *out = (int)v->valuedouble;
    return DATO_OK;
}

dato_status dato_json_float(const cJSON* obj, const char* key, float* out, const char* label, dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return DATO_OK;
    if (!cJSON_IsNumber(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected a number", label, key);
    *out = (float)v->valuedouble;
    return DATO_OK;
}

dato_status dato_json_bool(const cJSON* obj, const char* key, int* out, const char* label, dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return DATO_OK;
    if (!cJSON_IsBool(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected true or false", label, key);
    *out = cJSON_IsTrue(v);
    return DATO_OK;
}

dato_status dato_json_int_or_list(const cJSON* obj, const char* key, int* out, int n, const char* label,
                                  dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return DATO_OK;
    if (is_exact_int(v)) {
        for (int i = 0; i < n; i++) out[i] = (int)v->valuedouble;
        return DATO_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected an integer or a list of %d integers", label,
                         key, n);
    for (int i = 0; i < n; i++) {
        const cJSON* e = cJSON_GetArrayItem(v, i);
        if (!is_exact_int(e))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s'[%d]: expected an integer", label, key, i);
        out[i] = (int)e->valuedouble;
    }
    return DATO_OK;
}

dato_status dato_json_expect_string(const cJSON* obj, const char* key, const char* const* accepted, const char* label,
                                    dato_error* err) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return DATO_OK;
    if (cJSON_IsString(v))
        for (int i = 0; accepted[i]; i++)
            if (strcmp(v->valuestring, accepted[i]) == 0) return DATO_OK;
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s' = %s is not supported (expected %s)", label, key,
                     cJSON_IsString(v) ? v->valuestring : "(not a string)", accepted[0]);
}
