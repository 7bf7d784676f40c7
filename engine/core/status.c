#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

dato_status dato_fail(dato_error* err, dato_status st, const char* fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}

dato_status dato_error_prefix(dato_error* err, dato_status st, const char* fmt, ...) {
    if (err) {
        char head[sizeof err->msg], tail[sizeof err->msg]; // both aside: fmt's arguments may point into err
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(head, sizeof head, fmt, ap);
        va_end(ap);
        memcpy(tail, err->msg, sizeof tail);
        size_t h = strnlen(head, sizeof head - 1), t = strnlen(tail, sizeof tail - 1 - h);
        memcpy(err->msg, head, h);
        memcpy(err->msg + h, tail, t); // what does not fit is cut
        err->msg[h + t] = '\0';
    }
    return st;
}

const char* dato_status_name(dato_status st) {
    switch (st) {
    case DATO_OK: return "ok";
    case DATO_ERR_IO: return "I/O error";
    case DATO_ERR_FORMAT: return "format error";
    case DATO_ERR_INVALID: return "invalid argument";
    case DATO_ERR_NOMEM: return "out of memory";
    case DATO_ERR_UNSUPPORTED: return "unsupported";
    case DATO_ERR_NOT_FOUND: return "not found";
    case DATO_ERR_PEER: return "peer failure";
    }
    return "unknown status";
}
