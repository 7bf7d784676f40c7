#include "cli_args.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELP_COLUMN 26 // where help text starts in --help
#define HELP_WIDTH 100 // and the column it fills up to

// getopt_long's code for table row i (its alias: the next one): above every character code.
static int code_of(int i, int is_alias) { return 256 + 2 * i + is_alias; }

// The option argument as written on the command line, without "=value".
static const char* written(const char* arg, char* buf, size_t cap) {
    const char* eq = strchr(arg, '=');
    snprintf(buf, cap, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
    return buf;
}

// Unknown or ambiguous: an ambiguous prefix lists the options it could be.
static dato_status unknown_option(const char* arg, const dato_arg* table, int n, dato_error* err) {
    char name[128];
    written(arg, name, sizeof name);
    const char* stem = strncmp(name, "--", 2) == 0 ? name + 2 : NULL;
    for (int i = 0; stem && i < n; i++)
        if (table[i].kind == DATO_ARG_FLAG && strchr(arg, '=') &&
            (!strcmp(table[i].name, stem) || (table[i].alias && !strcmp(table[i].alias, stem))))
            return dato_fail(err, DATO_ERR_INVALID, "option '%s' takes no value", name);
    char matches[512] = "";
    size_t len = 0;
    int n_match = 0;
    for (int i = 0; stem && *stem && i < n; i++)
        for (int a = 0; a < 2; a++) {
            const char* o = a ? table[i].alias : table[i].name;
            if (o && !strncmp(o, stem, strlen(stem)) && len + strlen(o) + 5 < sizeof matches) {
                len += (size_t)snprintf(matches + len, sizeof matches - len, "%s--%s", n_match ? ", " : "", o);
                n_match++;
            }
        }
    if (n_match > 1)
        return dato_fail(err, DATO_ERR_INVALID, "option '%s' is ambiguous: it could be %s", name, matches);
    return dato_fail(err, DATO_ERR_INVALID, "unknown option '%s' (see --help)", name);
}

// An integer bound as text: 2^64 (the largest double a uint64 range can name) reads as 2^64 - 1.
static const char* bound(double x, char* buf, size_t cap) {
    if (x >= 18446744073709551615.0) snprintf(buf, cap, "18446744073709551615");
    else snprintf(buf, cap, "%.0f", x);
    return buf;
}

// Stores v into row a's target, checking its form and range; messages name the option as the user
// gave it (shown: its name or its alias).
static dato_status store(const dato_arg* a, const char* shown, const char* v, dato_error* err) {
    char* end = NULL, lo[32], hi[32];
    errno = 0;
    switch (a->kind) {
    case DATO_ARG_FLAG:
        *(int*)a->value = 1;
        return DATO_OK;
    case DATO_ARG_TEXT:
        *(const char**)a->value = v;
        return DATO_OK;
    case DATO_ARG_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < a->lo || x > a->hi)
            return dato_fail(err, DATO_ERR_INVALID, "--%s: '%s' is not an integer in %s..%s", shown, v,
                             bound(a->lo, lo, sizeof lo), bound(a->hi, hi, sizeof hi));
        *(int*)a->value = (int)x;
        return DATO_OK;
    }
    case DATO_ARG_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (!*v || *v == '-' || *end || errno || (double)x < a->lo || (double)x > a->hi)
            return dato_fail(err, DATO_ERR_INVALID, "--%s: '%s' is not an integer in %s..%s", shown, v,
                             bound(a->lo, lo, sizeof lo), bound(a->hi, hi, sizeof hi));
        *(uint64_t*)a->value = (uint64_t)x;
        return DATO_OK;
    }
    case DATO_ARG_FLOAT:
    case DATO_ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || !isfinite(x) || x < a->lo || x > a->hi)
            return dato_fail(err, DATO_ERR_INVALID, "--%s: '%s' is not a number in %g..%g", shown, v, a->lo, a->hi);
        if (a->kind == DATO_ARG_FLOAT) *(float*)a->value = (float)x;
        else *(double*)a->value = x;
        return DATO_OK;
    }
    case DATO_ARG_CHOICE: {
        char words[512] = "";
        size_t len = 0;
        for (int k = 0; a->choices[k]; k++) {
            if (!strcmp(v, a->choices[k])) {
                *(int*)a->value = k;
                return DATO_OK;
            }
            if (len < sizeof words)
                len += (size_t)snprintf(words + len, sizeof words - len, "%s%s", k ? ", " : "", a->choices[k]);
        }
        return dato_fail(err, DATO_ERR_INVALID, "--%s: '%s': expected one of %s", shown, v, words);
    }
    }
    return dato_fail(err, DATO_ERR_INVALID, "--%s: unknown option kind %d", shown, (int)a->kind);
}

dato_status dato_args_parse(int argc, char** argv, const dato_arg* table, int n, const char** positional,
                            int max_positional, int* n_positional, dato_error* err) {
    struct option* longs = calloc((size_t)2 * n + 1, sizeof *longs);
    if (!longs) return dato_fail(err, DATO_ERR_NOMEM, "command line: out of memory");
    int k = 0, help = -1;
    for (int i = 0; i < n; i++) {
        int has_arg = table[i].kind == DATO_ARG_FLAG ? no_argument : required_argument;
        longs[k++] = (struct option){table[i].name, has_arg, NULL, code_of(i, 0)};
        if (table[i].alias) longs[k++] = (struct option){table[i].alias, has_arg, NULL, code_of(i, 1)};
        if (!strcmp(table[i].name, "help") && table[i].kind == DATO_ARG_FLAG) help = i;
    }
    *n_positional = 0;
    optind = 0; // glibc: a full re-initialization, so a second parse starts afresh
    opterr = 0; // messages are ours
    dato_status st = DATO_OK;
    int c;
    // "-": positional arguments come back in order as code 1; ":": a missing value is ':'; -h is --help.
    while (!st && (c = getopt_long(argc, argv, help >= 0 ? "-:h" : "-:", longs, NULL)) != -1) {
        const char* arg = argv[optind - 1];
        if (c == 1) {
            if (*n_positional >= max_positional)
                st = dato_fail(err, DATO_ERR_INVALID, "unexpected argument '%s' (see --help)", optarg);
            else positional[(*n_positional)++] = optarg;
        } else if (c == 'h') {
            st = store(&table[help], table[help].name, NULL, err);
        } else if (c == ':') {
            char name[128];
            st = dato_fail(err, DATO_ERR_INVALID, "option '%s' needs a value (see --help)", written(arg, name, sizeof name));
        } else if (c >= 256 && c < 256 + 2 * n) {
            const dato_arg* a = &table[(c - 256) / 2];
            st = store(a, (c - 256) % 2 ? a->alias : a->name, optarg, err);
            if (!st && a->given) *a->given = 1;
        } else {
            st = unknown_option(arg, table, n, err);
        }
    }
    for (int i = optind; !st && i < argc; i++) // after "--": every argument is positional
        if (*n_positional >= max_positional)
            st = dato_fail(err, DATO_ERR_INVALID, "unexpected argument '%s' (see --help)", argv[i]);
        else positional[(*n_positional)++] = argv[i];
    free(longs);
    return st;
}

void dato_args_help(const dato_arg* table, int n, dato_text* out) {
    for (int i = 0; i < n; i++) {
        const dato_arg* a = &table[i];
        size_t start = out->len;
        dato_text_append(out, "  --%s", a->name);
        if (a->alias) dato_text_append(out, ", --%s", a->alias);
        if (a->metavar) dato_text_append(out, " %s", a->metavar);
        int col = (int)(out->len - start);
        if (col >= HELP_COLUMN - 1) dato_text_append(out, "\n%*s", HELP_COLUMN, "");
        else dato_text_append(out, "%*s", HELP_COLUMN - col, "");
        col = HELP_COLUMN;
        // Words filled up to HELP_WIDTH; '\n' in the text starts a new line.
        for (const char* h = a->help; *h;) {
            if (*h == '\n' || *h == ' ') {
                if (*h == '\n') dato_text_append(out, "\n%*s", HELP_COLUMN, ""), col = HELP_COLUMN;
                h++;
                continue;
            }
            int len = (int)strcspn(h, " \n");
            if (col > HELP_COLUMN && col + 1 + len > HELP_WIDTH) dato_text_append(out, "\n%*s", HELP_COLUMN, ""), col = HELP_COLUMN;
            else if (col > HELP_COLUMN) dato_text_append(out, " "), col++;
            dato_text_append(out, "%.*s", len, h);
            col += len;
            h += len;
        }
        dato_text_append(out, "\n");
    }
}
