// Growable text (engine/core/text_buffer.h).
#include "text_buffer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

dato_status dato_text_init(dato_text* b, size_t cap, const char* what, dato_error* err) {
    *b = (dato_text){.data = malloc(cap ? cap : 1), .cap = cap ? cap : 1};
    if (!b->data) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate the text", what);
    b->data[0] = 0;
    return DATO_OK;
}

void dato_text_free(dato_text* b) {
    free(b->data);
    *b = (dato_text){0};
}

void dato_text_append(dato_text* b, const char* fmt, ...) {
    if (b->failed || !b->data) {
        b->failed = 1;
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n + 1;
        char* grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
}

void dato_text_append_json_string(dato_text* b, const char* s) {
    dato_text_append(b, "\"");
    for (const unsigned char* c = (const unsigned char*)s; *c; c++) {
        if (*c == '"' || *c == '\\') dato_text_append(b, "\\%c", *c);
        else if (*c < 0x20) dato_text_append(b, "\\u%04x", *c);
        else dato_text_append(b, "%c", *c);
    }
    dato_text_append(b, "\"");
}
