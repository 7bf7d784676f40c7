// The device loop (DATO_LOOP_DEVICE: latents on the backend, guidance and sampler updates as axpby
// programs, engine/runtime/sampler_program.h) against the host loop (dato_sampler_step, diffusers'
// arithmetic), both on the CPU backend, so the loop the GPU runs is checked here without one
// (tests/loop_compare.h has the cases). The two loops differ only in the rounding of the guidance
// and sampler arithmetic: the final latents and every call's raw UNet outputs agree to
// max|diff| / max|host| <= 1e-5.
#include "loop_compare.h"

int main(void) {
    dato_backend be;
    dato_error err;
    if (dato_backend_cpu_init(&be, 1, &err)) { // one thread: 160 short loops, no OpenMP barriers to wait on
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    loop_side host = {&be, DATO_LOOP_HOST, "cpu host"}, device = {&be, DATO_LOOP_DEVICE, "cpu device"};
    loop_compare_model(&host, &device, "sd15", 1e-5);
    loop_compare_model(&host, &device, "sdxl", 1e-5);
    dato_backend_destroy(&be);
    return test_summary();
}
