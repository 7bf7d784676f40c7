// Typed reads of config fields from cJSON objects, with messages that name the file (label)
// and the field. An absent or null field leaves *out as it was (the caller set the default),
// unless the reader is told the field is required.
#ifndef DATO_JSON_FIELDS_H
#define DATO_JSON_FIELDS_H

#include <cjson/cJSON.h>

#include "status.h"

// An exact integer; required: absent or null is an error.
dato_status dato_json_int(const cJSON* obj, const char* key, int* out, int required, const char* label,
                          dato_error* err);
dato_status dato_json_float(const cJSON* obj, const char* key, float* out, const char* label, dato_error* err);
dato_status dato_json_bool(const cJSON* obj, const char* key, int* out, const char* label, dato_error* err);
// An integer, or a list of exactly n integers (per level): a single value fills all n.
dato_status dato_json_int_or_list(const cJSON* obj, const char* key, int* out, int n, const char* label,
                                  dato_error* err);
// Absent, null, or one of the NULL-terminated accepted strings; anything else is unsupported.
dato_status dato_json_expect_string(const cJSON* obj, const char* key, const char* const* accepted, const char* label,
                                    dato_error* err);

#endif
