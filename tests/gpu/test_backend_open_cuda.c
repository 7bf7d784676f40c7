// The one backend start-up (engine/backends/backend_open.h) compiled with DATO_HAVE_CUDA, as the programs
// compile it: cuda starts on a device with the CUDA options, describes it, takes a device modulo
// the devices when asked (dato-search's rank per GPU), and names the device when it cannot start.
#include <stdio.h>
#include <string.h>

#include "backend_open.h"
#include "test_util.h"

int main(void) {
    int n = dato_cuda_device_count();
    if (n == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    dato_backend be;
    dato_error err = {{0}};
    char desc[320];
    // Device n is device 0 modulo n; half attention and im2col convolutions configured.
    dato_backend_spec spec = {.name = "cuda", .device = n, .device_modulo = 1, .attention = DATO_F16, .conv = "im2col"};
    CHECK(dato_backend_open(&be, &spec, desc, sizeof desc, &err) == DATO_OK, "%s", err.msg);
    CHECK(!strcmp(be.name, "cuda") && be.device == DATO_DEV_CUDA && !strncmp(desc, "CUDA device 0: ", 15) &&
              strstr(desc, ", sm_"),
          "cuda: name %s, desc '%s'", be.name, desc);
    printf("%s\n", desc);
    dato_backend_destroy(&be);

    spec.device_modulo = 0;
    char want[64];
    snprintf(want, sizeof want, "--backend cuda --device %d: ", n);
    CHECK(dato_backend_open(&be, &spec, desc, sizeof desc, &err) == DATO_ERR_UNSUPPORTED && strstr(err.msg, want) &&
              desc[0] == 0,
          "device %d of %d: '%s'", n, n, err.msg);

    // cudnn: where the build has no cuDNN, configure refuses and the started backend is released.
    spec = (dato_backend_spec){.name = "cuda", .conv = "cudnn"};
    dato_status st = dato_backend_open(&be, &spec, NULL, 0, &err);
    if (dato_backend_cuda_has_cudnn()) {
        CHECK(st == DATO_OK, "cudnn: %s", err.msg);
        if (!st) dato_backend_destroy(&be);
    } else {
        CHECK(st == DATO_ERR_UNSUPPORTED && strstr(err.msg, "cuDNN"), "cudnn without cuDNN: '%s'", err.msg);
    }
    printf("backend_open cuda: %d device(s), modulo, refusal and cudnn (%s) checked\n", n,
           dato_backend_cuda_has_cudnn() ? "built" : "not built");
    return test_summary();
}
