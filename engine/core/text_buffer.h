// A growable text buffer for writers of JSON, CSV, SVG and HTML: printf-style appends that
// record an allocation failure once instead of checking every call.
#ifndef DATO_TEXT_BUFFER_H
#define DATO_TEXT_BUFFER_H

#include <stddef.h>

#include "status.h"

typedef struct {
    char* data; // NUL-terminated
    size_t len, cap;
    int failed; // an allocation or format failed; later appends do nothing
} dato_text;

// An empty buffer with room for cap bytes; what names the text in the error.
dato_status dato_text_init(dato_text* b, size_t cap, const char* what, dato_error* err);
void dato_text_free(dato_text* b);
void dato_text_append(dato_text* b, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// A JSON string literal: quotes, backslashes and control bytes escaped, other bytes as they are.
void dato_text_append_json_string(dato_text* b, const char* s);

#endif
