// Typed reads of config fields from cJSON objects, with messages that name the file (label)
// and the field. An absent or null field leaves *out as it was (the caller set the default),
// unless the reader is told the field is required.
#ifndef DATO_JSON_FIELDS_H
#define DATO_JSON_FIELDS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "status.h"

// Parses text into *root, which must be a JSON object (the caller frees it with cJSON_Delete);
// label names the text in messages.
dato_status dato_json_parse_object(const char* text, const char* label, cJSON** root, dato_error* err);
// Reads the file at path (at most 1 MiB) and parses it as dato_json_parse_object.
dato_status dato_json_read_object(const char* path, cJSON** root, dato_error* err);

// An exact integer; required: absent or null is an error.
dato_status dato_json_int(const cJSON* obj, const char* key, int* out, int required, const char* label,
                          dato_error* err);
// An exact integer in [lo, hi], required.
dato_status dato_json_int_in(const cJSON* obj, const char* key, int lo, int hi, int* out, const char* label,
                             dato_error* err);
// A list of 1 to n_max exact integers, each in [lo, hi], required: out gets them, *n their count.
dato_status dato_json_int_list(const cJSON* obj, const char* key, int lo, int hi, int* out, int n_max, int* n,
                               const char* label, dato_error* err);
// A finite number within float's range; required: absent or null is an error.
dato_status dato_json_number(const cJSON* obj, const char* key, float* out, int required, const char* label,
                             dato_error* err);
// An optional dato_json_number.
dato_status dato_json_float(const cJSON* obj, const char* key, float* out, const char* label, dato_error* err);
dato_status dato_json_bool(const cJSON* obj, const char* key, int* out, const char* label, dato_error* err);
// An integer, or a list of exactly n integers (per level): a single value fills all n.
dato_status dato_json_int_or_list(const cJSON* obj, const char* key, int* out, int n, const char* label,
                                  dato_error* err);
// Absent, null, or one of the NULL-terminated accepted strings; anything else is unsupported.
dato_status dato_json_expect_string(const cJSON* obj, const char* key, const char* const* accepted, const char* label,
                                    dato_error* err);

// An int of a config struct and its inclusive range (dato_check_int_ranges).
typedef struct {
    const char* name; // the field as the config file names it
    size_t offset;    // of the int in the struct
    int lo, hi;
} dato_int_range;
#define DATO_INT_RANGE(type, name, field, lo, hi) {name, offsetof(type, field), lo, hi}
// Checks the ints of a config struct against their ranges, in table order: the first outside is
// DATO_ERR_INVALID naming the field, its value and the range. A config (untrusted input) checks
// this before any arithmetic on its ints.
dato_status dato_check_int_ranges(const void* cfg, const dato_int_range* ranges, int n, dato_error* err);

#endif
