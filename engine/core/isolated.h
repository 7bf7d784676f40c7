// Parsing an untrusted file with a library that may crash on it (libhdf5 1.10 trusts a file's
// metadata: a crafted one makes it read freed memory or memcpy overlapping buffers, and no check
// made before the library parses can prevent that). The caller's parse function runs in a forked
// child that appends its answer to a byte buffer; the parent receives [status, message, answer]
// through a pipe within a deadline, so the caller's process only ever receives bytes, which it
// decodes and checks itself (counts bounded before anything is allocated). A child that crashes,
// exits without answering, answers too much or runs late (it is killed) is a DATO_ERR_FORMAT
// refusal naming the file. Used by metrics/stats_io.c and search/checkpoint.c.
#ifndef DATO_ISOLATED_H
#define DATO_ISOLATED_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

// A growable byte buffer: the child's answer as built, then as received.
typedef struct {
    uint8_t* data; // (len) bytes
    size_t len, cap;
    int failed; // an allocation failed; later appends do nothing
} dato_bytes;

void dato_bytes_append(dato_bytes* b, const void* p, size_t n);
void dato_bytes_free(dato_bytes* b);
// The n bytes of b at *at into out, *at advanced; 0 (nothing copied) when fewer than n are left.
int dato_bytes_take(const dato_bytes* b, size_t* at, void* out, size_t n);

// Runs in the child: parses what ctx names, appends its answer, returns a status and on failure a
// message (which should name the file).
typedef dato_status (*dato_isolated_parse)(void* ctx, dato_bytes* answer, dato_error* err);

// Runs parse(ctx) in a forked child (its stdout and stderr go to /dev/null) and fills answer
// (free with dato_bytes_free; empty unless DATO_OK) with what it appended. The child has 3 s plus
// 1 s per 4 MB of input_bytes; an answer over max_answer bytes is refused. label names the file
// and parser the library (e.g. "HDF5") in the messages; a failing parse's own message is passed on.
dato_status dato_isolated_run(dato_isolated_parse parse, void* ctx, const char* label, const char* parser,
                              size_t input_bytes, size_t max_answer, dato_bytes* answer, dato_error* err);

#endif
