// PyTorch's CPU generator and torch.randn, bit for bit, so that dato starts from the very noise a
// diffusers run starts from (docs/NOISE.md).
//
//   dato_torch_generator g;
//   dato_torch_manual_seed(&g, S);                       // torch.Generator().manual_seed(S)
//   dato_torch_randn(&g, DATO_TORCH_AVX2, x, n);          // torch.randn(n, generator=g, dtype=torch.float32)
//
// The generator is torch's mt19937 (seeded with the low 32 bits of S, as torch does) plus its cached
// second Box-Muller sample; successive draws carry both over, as successive torch calls do.
// torch.randn of n floats takes one of two routes (aten/src/ATen/native/cpu/DistributionTemplates.h):
// - n >= 16: n uniforms (24 bits each), Box-Muller over each block of 16 (the first 8 are u1, the
//   last 8 u2), and when 16 does not divide n, 16 fresh uniforms overwrite the last 16 values and are
//   transformed the same way. The float transform depends on torch's CPU capability (the kernels
//   below); the cached sample is neither read nor written.
// - 0 < n < 16: one double Box-Muller sample per value (two 53-bit uniforms per pair), the second of
//   each pair cached in the generator and returned by the next such draw.
#ifndef DATO_TORCH_RNG_H
#define DATO_TORCH_RNG_H

#include <stddef.h>
#include <stdint.h>

#define DATO_TORCH_MT_N 624

typedef struct {
    uint32_t mt[DATO_TORCH_MT_N]; // mt19937 state
    int next;                     // index of the next state word; DATO_TORCH_MT_N: regenerate first
    int has_cached;               // the cached second sample of the double (n < 16) route
    double cached;
} dato_torch_generator;

// The float transform of torch's n >= 16 route, by torch.backends.cpu.get_cpu_capability():
typedef enum {
    DATO_TORCH_AVX2,   // "AVX2": x86-64 with AVX2 and no AVX-512 (avx_mathfun's log and sincos, FMA)
    DATO_TORCH_SCALAR, // "DEFAULT" (AVX512 too, by torch's source; not measured): glibc's logf, cosf, sinf
} dato_torch_kernel;

// The kernel torch picks on this CPU by default: AVX2 where the CPU has AVX2 and FMA but not AVX-512
// (torch's AVX512 capability, like DEFAULT, takes the scalar transform), else SCALAR. torch's
// ATEN_CPU_CAPABILITY=default turns a user's AVX2 torch to SCALAR: --noise torch-default then.
dato_torch_kernel dato_torch_kernel_native(void);

// torch.Generator().manual_seed(seed): any uint64 (torch keeps only seed mod 2^32 for mt19937).
void dato_torch_manual_seed(dato_torch_generator* g, uint64_t seed);
// torch.randn(n, generator=g, dtype=torch.float32) on the CPU with the given kernel; x: (n).
void dato_torch_randn(dato_torch_generator* g, dato_torch_kernel kernel, float* x, size_t n);
// Initial latents x (B, C, h, w), n = B * C * h * w, as diffusers draws them with one CPU generator:
//   randn_tensor((B, C, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
// which the prepare_latents of StableDiffusionPipeline and StableDiffusionXLPipeline call for
//   pipe(prompt, num_images_per_prompt=N, generator=torch.Generator().manual_seed(seed))
// (float32 pipeline) with B = number of prompts x N and (h, w) = (height, width) / vae_scale_factor.
// A list of generators, one seed per image, is one call per image with B = 1.
void dato_torch_randn_latents(uint64_t seed, dato_torch_kernel kernel, float* x, size_t n);

#endif
