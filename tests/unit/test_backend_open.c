// The one backend start-up (engine/backends/backend_open.h) as this build of a library sees it (no
// DATO_HAVE_CUDA here): the CPU starts with its threads, every refusal names the option and says
// what was expected, and cuda says the build has none. tests/gpu/test_backend_open_cuda.c checks
// the CUDA part.
#include <string.h>

#include "backend_open.h"
#include "test_util.h"

static int contains(const char* msg, const char* part) { return strstr(msg, part) != NULL; }

// spec is refused with status st and a message holding part.
static void check_refused(const dato_backend_spec* spec, dato_status st, const char* part) {
    dato_backend be;
    dato_error err = {{0}};
    char desc[64] = "stale";
    dato_status got = dato_backend_open(&be, spec, desc, sizeof desc, &err);
    CHECK(got == st && contains(err.msg, part) && desc[0] == 0, "%s: status %d (want %d), '%s' lacks '%s'",
          spec->name, got, st, err.msg, part);
}

int main(void) {
    dato_backend be;
    dato_error err = {{0}};
    char desc[64] = "stale";
    dato_backend_spec cpu = {.name = "cpu", .threads = 2};
    CHECK(dato_backend_open(&be, &cpu, desc, sizeof desc, &err) == DATO_OK, "%s", err.msg);
    CHECK(!strcmp(be.name, "cpu") && be.device == DATO_DEV_CPU && desc[0] == 0, "cpu: name %s, desc '%s'", be.name,
          desc);
    dato_backend_destroy(&be);
    CHECK(dato_backend_open(&be, &cpu, NULL, 0, &err) == DATO_OK, "no desc: %s", err.msg);
    dato_backend_destroy(&be);

    check_refused(&(dato_backend_spec){.name = "tpu"}, DATO_ERR_INVALID, "--backend 'tpu': expected cpu or cuda");
    check_refused(&(dato_backend_spec){.name = "cpu", .conv = "im2col"}, DATO_ERR_INVALID,
                  "--conv im2col needs --backend cuda");
    check_refused(&(dato_backend_spec){.name = "cuda", .conv = "fast"}, DATO_ERR_INVALID,
                  "--conv 'fast': expected auto, im2col or cudnn");
    check_refused(&(dato_backend_spec){.name = "cuda", .device = 3, .device_modulo = 1}, DATO_ERR_UNSUPPORTED,
                  "--backend cuda: this build has no CUDA backend");
    // The names the programs' option tables offer, in the order their enums follow.
    CHECK(!strcmp(dato_backend_names[0], "cpu") && !strcmp(dato_backend_names[1], "cuda") && !dato_backend_names[2] &&
              !strcmp(dato_backend_conv_names[2], "cudnn") && !dato_backend_conv_names[3],
          "name tables");
    printf("backend_open: cpu started; 4 refusals with their messages\n");
    return test_summary();
}
