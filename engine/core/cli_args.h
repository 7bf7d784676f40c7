// Command-line options as data: each tool lists its options in one table (name, kind, where the
// value goes, range or choices, help) and one parser (glibc getopt_long) reads them, so every tool
// takes "--name value" and "--name=value", unambiguous prefixes, and gives the same messages.
// The same table writes the options part of --help.
#ifndef DATO_CLI_ARGS_H
#define DATO_CLI_ARGS_H

#include <stdint.h>

#include "status.h"
#include "text_buffer.h"

typedef enum {
    DATO_ARG_FLAG,   // no value: *(int*)value = 1
    DATO_ARG_TEXT,   // *(const char**)value = the argument itself (it points into argv)
    DATO_ARG_INT,    // *(int*)value, an integer in [lo, hi]
    DATO_ARG_U64,    // *(uint64_t*)value, an integer in [lo, hi] (hi up to 2^64 - 1 as a double)
    DATO_ARG_FLOAT,  // *(float*)value, a number in [lo, hi]
    DATO_ARG_DOUBLE, // *(double*)value, a number in [lo, hi]
    DATO_ARG_CHOICE, // *(int*)value = the index of the argument in choices
} dato_arg_kind;

typedef struct {
    const char* name;           // the long option without "--"
    const char* alias;          // another accepted name (e.g. diffusers' spelling), or NULL
    dato_arg_kind kind;
    void* value;                // where the value goes (see the kinds)
    double lo, hi;              // numeric kinds: the inclusive range
    const char* const* choices; // DATO_ARG_CHOICE: the accepted words, NULL-terminated
    int* given;                 // optional: set to 1 when the option appears
    const char* metavar;        // the value's name in --help ("N", "FILE"); NULL for a flag
    const char* help;           // what it does; '\n' starts a continuation line
} dato_arg;

// Parses argv[1..argc) against table[0..n). Options may come in any order and between positional
// arguments; "--" ends the options. Positional arguments are returned in order (at most
// max_positional of them; argv is reordered as getopt_long does). An unknown or ambiguous option, a
// missing value, a value that is not a number in range, an unknown choice or too many positional
// arguments is DATO_ERR_INVALID with a message naming the option and what it expects.
// Not reentrant: getopt_long keeps its position in glibc's globals, reset at each call.
dato_status dato_args_parse(int argc, char** argv, const dato_arg* table, int n, const char** positional,
                            int max_positional, int* n_positional, dato_error* err);

// Appends the options part of --help: "  --name METAVAR" (and "--alias"), then the help text from
// column 26, its words filled up to column 100 ('\n' in the text starts a new line).
void dato_args_help(const dato_arg* table, int n, dato_text* out);

#endif
