#include "status.h"

#include <stdarg.h>
#include <stdio.h>

dato_status dato_fail(dato_error* err, dato_status st, const char* fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
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
