// cli_args.c: every form the four tools accept ("--n v", "--n=v", prefixes, aliases, positional
// arguments anywhere, "--"), every refusal with the message it gives, and the --help layout.
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "cli_args.h"
#include "test_util.h"

typedef struct {
    int pop, verbose, help, kind, pop_given;
    const char* out;
    uint64_t seed;
    float guidance;
    double limit;
} values;

static const char* const KINDS[] = {"table", "measured", NULL};

#define N_ROWS 8
static void table_for(values* v, dato_arg* t) {
    dato_arg rows[N_ROWS] = {
        {"pop", NULL, DATO_ARG_INT, &v->pop, 4, 4096, NULL, &v->pop_given, "N", "population size (default 32)"},
        {"pairs", NULL, DATO_ARG_INT, &v->pop, 1, 10, NULL, NULL, "N", "timing pairs"},
        {"out", NULL, DATO_ARG_TEXT, &v->out, 0, 0, NULL, NULL, "DIR", "run folder"},
        {"seed", NULL, DATO_ARG_U64, &v->seed, 0, 18446744073709551615.0, NULL, NULL, "S", "seed"},
        {"guidance", "guidance-scale", DATO_ARG_FLOAT, &v->guidance, 0, 100, NULL, NULL, "G",
         "guidance scale\n(second line)"},
        {"limit", NULL, DATO_ARG_DOUBLE, &v->limit, 0.5, 2, NULL, NULL, "X", "a limit"},
        {"latency", NULL, DATO_ARG_CHOICE, &v->kind, 0, 0, KINDS, NULL, "table|measured", "latency objective"},
        {"help", NULL, DATO_ARG_FLAG, &v->help, 0, 0, NULL, NULL, NULL, "this text"},
    };
    memcpy(t, rows, sizeof rows);
}

// Parses a NULL-terminated argument list (argv[0] added); the status, *v and the positionals.
static dato_status parse(values* v, const char** pos, int* n_pos, dato_error* err, ...) {
    char* argv[32] = {"tool"};
    int argc = 1;
    va_list ap;
    va_start(ap, err);
    for (const char* a; (a = va_arg(ap, const char*));) argv[argc++] = (char*)a;
    va_end(ap);
    *v = (values){.pop = 32};
    dato_arg t[N_ROWS];
    table_for(v, t);
    return dato_args_parse(argc, argv, t, N_ROWS, pos, 2, n_pos, err);
}

static int has(const char* msg, const char* needle) { return strstr(msg, needle) != NULL; }

int main(void) {
    values v;
    const char* pos[2];
    int np;
    dato_error err = {{0}};

    dato_status st = parse(&v, pos, &np, &err, "--pop", "8", "--out=run dir", "ckpt.h5", "--seed", "18446744073709551615",
                           "--guidance-scale", "7.5", "--limit=1.25", "--latency", "measured", "extra", NULL);
    CHECK(st == DATO_OK, "%s", err.msg);
    CHECK(v.pop == 8 && v.pop_given == 1, "pop %d given %d", v.pop, v.pop_given);
    CHECK(v.out && !strcmp(v.out, "run dir"), "out %s", v.out ? v.out : "(null)");
    CHECK(v.seed == UINT64_MAX, "seed %llu", (unsigned long long)v.seed);
    CHECK(v.guidance == 7.5f && v.limit == 1.25 && v.kind == 1, "guidance %g limit %g kind %d", (double)v.guidance,
          v.limit, v.kind);
    CHECK(np == 2 && !strcmp(pos[0], "ckpt.h5") && !strcmp(pos[1], "extra"), "positionals %d", np);

    // A unique prefix is the option; "--" ends the options; -h is --help; a second parse starts afresh.
    st = parse(&v, pos, &np, &err, "--po=9", "-h", "--", "--pop", NULL);
    CHECK(st == DATO_OK && v.pop == 9 && v.help == 1 && np == 1 && !strcmp(pos[0], "--pop"), "%s", err.msg);
    st = parse(&v, pos, &np, &err, "--guidance", "1", NULL);
    CHECK(st == DATO_OK && v.pop == 32 && v.pop_given == 0 && v.guidance == 1.0f, "%s", err.msg);

    // Refusals, each naming the option and what it expects.
    struct {
        const char* a[4];
        const char* msg;
    } bad[] = {
        {{"--pop", "3"}, "--pop: '3' is not an integer in 4..4096"},
        {{"--pop", "8x"}, "--pop: '8x' is not an integer in 4..4096"},
        {{"--pop=", NULL}, "--pop: '' is not an integer"},
        {{"--pop"}, "option '--pop' needs a value"},
        {{"--p", "5"}, "option '--p' is ambiguous: it could be --pop, --pairs"},
        {{"--popx", "5"}, "unknown option '--popx'"},
        {{"--seed", "-1"}, "--seed: '-1' is not an integer in 0..18446744073709551615"},
        {{"--guidance", "nan"}, "--guidance: 'nan' is not a number in 0..100"},
        {{"--guidance-scale=inf"}, "--guidance-scale: 'inf' is not a number in 0..100"}, // the alias as given
        {{"--limit", "3"}, "--limit: '3' is not a number in 0.5..2"},
        {{"--latency", "fast"}, "--latency: 'fast': expected one of table, measured"},
        {{"a", "b", "c"}, "unexpected argument 'c'"},
        {{"--help=1"}, "option '--help' takes no value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err.msg[0] = 0;
        st = parse(&v, pos, &np, &err, bad[i].a[0], bad[i].a[1], bad[i].a[2], bad[i].a[3], NULL);
        CHECK(st == DATO_ERR_INVALID && has(err.msg, bad[i].msg), "case %zu: got '%s', want '%s'", i, err.msg,
              bad[i].msg);
    }

    // --help: names, aliases and metavars, help from column 26, continuation lines under it.
    dato_arg t[N_ROWS];
    table_for(&v, t);
    dato_text h;
    CHECK(dato_text_init(&h, 256, "help", &err) == DATO_OK, "%s", err.msg);
    dato_args_help(t, N_ROWS, &h);
    const char* want = "  --pop N                 population size (default 32)\n"
                       "  --pairs N               timing pairs\n";
    CHECK(!strncmp(h.data, want, strlen(want)), "help starts:\n%s", h.data);
    CHECK(has(h.data, "  --guidance, --guidance-scale G\n                          guidance scale\n"
                      "                          (second line)\n"),
          "help:\n%s", h.data);
    CHECK(has(h.data, "  --help                  this text\n"), "help:\n%s", h.data);
    dato_text_free(&h);
    return test_summary();
}
