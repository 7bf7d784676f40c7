// The denoising loop on CUDA (tests/loop_compare.h's cases: every sampler, guidance on and off,
// plain and under a DaTo schedule that reuses, caches and prunes; tiny SD1.5 and SDXL):
//   - the device loop (latents on the GPU, sampler programs, UNet calls replayed as CUDA graphs)
//     against the CPU's host loop, the reference: max|diff| / max|cpu| <= 1e-4, the tolerance of
//     every other CUDA-vs-CPU pipeline check (test_cuda_pipeline);
//   - the device loop against CUDA's own host loop (direct launches, sampler on the host): 1e-5,
//     what the device loop differs by on the CPU (test_device_loop);
//   - the device loop twice: a graph replays the same kernels on the same data, so bit for bit (0).
// Exits 77 (skipped) without CUDA or a GPU.
#include "gpu_test.h"
#include "loop_compare.h"

int main(void) {
    dato_backend cpu, gpu;
    int start = gpu_test_start(&cpu, &gpu);
    if (start) return start;
    loop_side cpu_host = {&cpu, DATO_LOOP_HOST, "cpu host"}, cuda_host = {&gpu, DATO_LOOP_HOST, "cuda host"};
    loop_side cuda_device = {&gpu, DATO_LOOP_DEVICE, "cuda device"};
    const char* models[] = {"sd15", "sdxl"};
    for (int m = 0; m < 2; m++) {
        loop_compare_model(&cpu_host, &cuda_device, models[m], 1e-4);
        loop_compare_model(&cuda_host, &cuda_device, models[m], 1e-5);
        loop_compare_model(&cuda_device, &cuda_device, models[m], 0.0);
    }
    dato_backend_destroy(&gpu);
    dato_backend_destroy(&cpu);
    return test_summary();
}
