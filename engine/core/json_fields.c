// Typed config fields from cJSON objects, messages naming the file and the field.
#include "json_fields.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"

dato_status dato_json_parse_object(const char* text, const char* label, cJSON** root, dato_error* err) {
    *root = cJSON_Parse(text);
    if (!*root) return dato_fail(err, DATO_ERR_FORMAT, "%s: not valid JSON", label);
    if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        return dato_fail(err, DATO_ERR_FORMAT, "%s: not a JSON object", label);
    }
    return DATO_OK;
}

dato_status dato_json_read_object(const char* path, cJSON** root, dato_error* err) {
    char* text = NULL;
    *root = NULL;
    DATO_TRY(dato_read_text_file(path, &text, 1 << 20, err));
    dato_status st = dato_json_parse_object(text, path, root, err);
    free(text);
    return st;
}

// *v = the field key, NULL when absent or null: an error when required.
static dato_status field(const cJSON* obj, const char* key, int required, const cJSON** v, const char* label,
                         dato_error* err) {
    *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (*v && cJSON_IsNull(*v)) *v = NULL;
    if (!*v && required) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s' is missing", label, key);
    return DATO_OK;
}

// A number that is an int (range checked first: converting a larger double to int is undefined).
static int is_exact_int(const cJSON* v) {
    return cJSON_IsNumber(v) && v->valuedouble >= INT_MIN && v->valuedouble <= INT_MAX &&
           v->valuedouble == (double)(int)v->valuedouble;
}

// The n entries of list into out: exact integers in [lo, hi] (the whole int range: any integer).
static dato_status list_ints(const cJSON* list, int n, int lo, int hi, int* out, const char* key, const char* label,
                             dato_error* err) {
    for (int i = 0; i < n; i++) {
        const cJSON* e = cJSON_GetArrayItem(list, i);
        if (!is_exact_int(e) || e->valuedouble < lo || e->valuedouble > hi) {
            if (lo == INT_MIN && hi == INT_MAX)
                return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s'[%d]: expected an integer", label, key, i);
            return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s'[%d]: expected an integer in [%d, %d]", label, key, i,
                             lo, hi);
        }
        out[i] = (int)e->valuedouble;
    }
    return DATO_OK;
}

dato_status dato_json_int(const cJSON* obj, const char* key, int* out, int required, const char* label,
                          dato_error* err) {
    const cJSON* v;
    DATO_TRY(field(obj, key, required, &v, label, err));
    if (!v) return DATO_OK;
    if (!is_exact_int(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected an integer", label, key);
    *out = (int)v->valuedouble;
    return DATO_OK;
}

dato_status dato_json_int_in(const cJSON* obj, const char* key, int lo, int hi, int* out, const char* label,
                             dato_error* err) {
    DATO_TRY(dato_json_int(obj, key, out, 1, label, err));
    if (*out < lo || *out > hi)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s' = %d is outside [%d, %d]", label, key, *out, lo, hi);
    return DATO_OK;
}

dato_status dato_json_int_list(const cJSON* obj, const char* key, int lo, int hi, int* out, int n_max, int* n,
                               const char* label, dato_error* err) {
    const cJSON* v;
    DATO_TRY(field(obj, key, 1, &v, label, err));
    int len = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (len < 1 || len > n_max)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected a list of 1 to %d integers", label, key,
                         n_max);
    DATO_TRY(list_ints(v, len, lo, hi, out, key, label, err));
    *n = len;
    return DATO_OK;
}

dato_status dato_json_number(const cJSON* obj, const char* key, float* out, int required, const char* label,
                             dato_error* err) {
    const cJSON* v;
    DATO_TRY(field(obj, key, required, &v, label, err));
    if (!v) return DATO_OK;
    // Converting a double beyond float's range to float is undefined: such a value is refused too.
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > FLT_MAX)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected a finite number (at most %g in magnitude)",
                         label, key, (double)FLT_MAX);
    *out = (float)v->valuedouble;
    return DATO_OK;
}

dato_status dato_json_float(const cJSON* obj, const char* key, float* out, const char* label, dato_error* err) {
    return dato_json_number(obj, key, out, 0, label, err);
}

dato_status dato_json_bool(const cJSON* obj, const char* key, int* out, const char* label, dato_error* err) {
    const cJSON* v;
    DATO_TRY(field(obj, key, 0, &v, label, err));
    if (!v) return DATO_OK;
    if (!cJSON_IsBool(v)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected true or false", label, key);
    *out = cJSON_IsTrue(v);
    return DATO_OK;
}

dato_status dato_json_int_or_list(const cJSON* obj, const char* key, int* out, int n, const char* label,
                                  dato_error* err) {
    const cJSON* v;
    DATO_TRY(field(obj, key, 0, &v, label, err));
    if (!v) return DATO_OK;
    if (is_exact_int(v)) {
        for (int i = 0; i < n; i++) out[i] = (int)v->valuedouble;
        return DATO_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field '%s': expected an integer or a list of %d integers", label,
                         key, n);
    return list_ints(v, n, INT_MIN, INT_MAX, out, key, label, err);
}

dato_status dato_json_expect_string(const cJSON* obj, const char* key, const char* const* accepted, const char* label,
                                    dato_error* err) {
    const cJSON* v;
    DATO_TRY(field(obj, key, 0, &v, label, err));
    if (!v) return DATO_OK;
    if (cJSON_IsString(v))
        for (int i = 0; accepted[i]; i++)
            if (strcmp(v->valuestring, accepted[i]) == 0) return DATO_OK;
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field '%s' = %s is not supported (expected %s)", label, key,
                     cJSON_IsString(v) ? v->valuestring : "(not a string)", accepted[0]);
}

dato_status dato_check_int_ranges(const void* cfg, const dato_int_range* ranges, int n, dato_error* err) {
    for (int i = 0; i < n; i++) {
        const dato_int_range* r = &ranges[i];
        int v = *(const int*)((const char*)cfg + r->offset);
        if (v < r->lo || v > r->hi)
            return dato_fail(err, DATO_ERR_INVALID, "%s = %d is outside %d..%d", r->name, v, r->lo, r->hi);
    }
    return DATO_OK;
}
