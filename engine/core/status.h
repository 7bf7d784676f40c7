// Status codes and error messages. Every fallible function returns a dato_status and,
// when given a dato_error*, writes a message that names the file, tensor or field at fault.
// No global error state: the caller owns the dato_error.
#ifndef DATO_STATUS_H
#define DATO_STATUS_H

#ifdef __cplusplus
extern "C" { // the CUDA backend includes these headers from .cu files
#endif

typedef enum {
    DATO_OK = 0,
    DATO_ERR_IO,          // a file could not be opened, read, mapped or written
    DATO_ERR_FORMAT,      // a file is malformed, truncated or inconsistent
    DATO_ERR_INVALID,     // a bad argument, config value or shape
    DATO_ERR_NOMEM,       // an allocation failed or a planned workspace overflowed
    DATO_ERR_UNSUPPORTED, // a valid input we do not handle (dtype, layer type, backend)
    DATO_ERR_NOT_FOUND,   // a named tensor, file or key is missing
    DATO_ERR_PEER,        // another process of the run (an MPI rank) failed or stopped answering
} dato_status;

typedef struct {
    char msg[1024];
} dato_error;

// Writes a printf-style message into err (if non-NULL) and returns st. Use as
// `return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s': ...", path, name);`
dato_status dato_fail(dato_error* err, dato_status st, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Puts a printf-style prefix before the message err already holds and returns st: the caller
// adds what it knows (the file, the component) to a callee's message. Passing err->msg to
// dato_fail instead would format into the buffer it reads. Use as
// `if (st) return dato_error_prefix(err, st, "%s: ", path);`
dato_status dato_error_prefix(dato_error* err, dato_status st, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Returns from the calling function when expr fails, passing its status on.
#define DATO_TRY(expr)                       \
    do {                                     \
        dato_status dato_try_ = (expr);      \
        if (dato_try_ != DATO_OK) return dato_try_; \
    } while (0)

// A short name for a status ("format error", ...).
const char* dato_status_name(dato_status st);

#ifdef __cplusplus
}
#endif

#endif
