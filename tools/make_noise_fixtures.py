"""Reference noise for dato's torch generator (engine/core/torch_rng.c) and latents files (engine/io/latents_file.c),
and diffusers runs started from `generator=torch.Generator().manual_seed(3)` (tests/parity/test_noise_parity.c).

Writes, under --out (default tests/fixtures/noise); see its README.md:
  torch_randn.safetensors     torch.randn draws (float32, CPU) of both kernels, single draws and one sequence
  seed3_f32.npy, seed3_f64.npy, seed3_f16.npy, seed3.safetensors
                              randn_tensor((1, 4, 8, 8), generator=manual_seed(3)) as latents files
  parity.safetensors, parity.json
                              StableDiffusionPipeline on tests/fixtures/pipeline/sd15, DDIM and Euler, seed 3

torch's n >= 16 float route depends on its CPU capability: "AVX2" (avx_mathfun) or "DEFAULT" (libm).
Each kernel's draws are made in a child process with ATEN_CPU_CAPABILITY set, which must report it back.
The pipeline runs use this process's capability, which must be AVX2 (on an AVX-512 machine, run with
ATEN_CPU_CAPABILITY=avx2). One thread, deterministic: two runs write byte-identical files.

Usage: python3 tools/make_noise_fixtures.py [--out tests/fixtures/noise]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

SEEDS = [0, 3, 2**32 + 5, 2**63]
SIZES = list(range(1, 41)) + [100, 1000, 4 * 64 * 64]  # the last: randn_tensor((1, 4, 64, 64))
# Successive draws from one generator: the cached second sample of the n < 16 route survives n >= 16
# draws, and the mt19937 state carries over every draw.
SEQUENCE = [1, 1, 3, 16, 1, 17, 5, 1000, 2]
SEQUENCE_SEED = 3
KERNELS = {"avx2": "AVX2", "scalar": "DEFAULT"}  # dato_torch_kernel -> ATEN_CPU_CAPABILITY
SCALAR_BIG_SEEDS = [3]  # scalar kernel: the (1, 4, 64, 64) draw for this seed only (size)

PIPELINE = "tests/fixtures/pipeline/sd15"
PROMPT = "a photo of a cat"
PARITY_SEED = 3
STEPS = 10
GUIDANCE = 7.5
SIZE = 16  # pixels; latents (1, 4, 8, 8)


def draws(kernel):
    """{name: float32 tensor} of this process's torch (its capability must be KERNELS[kernel])."""
    from diffusers.utils.torch_utils import randn_tensor

    assert torch.backends.cpu.get_cpu_capability() == KERNELS[kernel], torch.backends.cpu.get_cpu_capability()
    out = {}
    for seed in SEEDS:
        for n in SIZES:
            if n == SIZES[-1] and kernel == "scalar" and seed not in SCALAR_BIG_SEEDS:
                continue
            x = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
            if n == SIZES[-1]:  # diffusers' randn_tensor draws the same numbers, shaped
                y = randn_tensor((1, 4, 64, 64), generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
                assert torch.equal(x, y.flatten())
            out[f"{kernel}.seed{seed}.n{n}"] = x
    g = torch.Generator().manual_seed(SEQUENCE_SEED)
    out[f"{kernel}.seed{SEQUENCE_SEED}.sequence"] = torch.cat([torch.randn(n, generator=g) for n in SEQUENCE])
    return out


def draws_in_child(kernel, tmp):
    path = os.path.join(tmp, f"{kernel}.safetensors")
    env = dict(os.environ, ATEN_CPU_CAPABILITY=KERNELS[kernel].lower())
    subprocess.run([sys.executable, __file__, "--draws", kernel, path], env=env, check=True)
    return load_file(path)


def check_draws(t):
    # Below 16 values both kernels take torch's double route; the seed is taken mod 2^32.
    for seed in SEEDS:
        for n in range(1, 16):
            assert torch.equal(t[f"avx2.seed{seed}.n{n}"], t[f"scalar.seed{seed}.n{n}"])
    for n in SIZES[:-1]:
        assert torch.equal(t[f"avx2.seed{2**32 + 5}.n{n}"], torch.randn(n, generator=torch.Generator().manual_seed(5)))
    # The kernels differ in the last bits only, and only from 16 values on.
    a, s = t[f"avx2.seed3.n{SIZES[-1]}"], t[f"scalar.seed3.n{SIZES[-1]}"]
    diff = (a - s).abs().max().item()
    assert 0 < diff < 1e-5, diff
    print(f"  avx2 vs scalar kernel, seed 3, 16384 values: {int((a != s).sum())} differ, max {diff:.2e}")


def latents_files(out_dir, noise):
    arr = noise.numpy()
    for suffix, dtype in (("f32", np.float32), ("f64", np.float64), ("f16", np.float16)):
        np.save(os.path.join(out_dir, f"seed{PARITY_SEED}_{suffix}.npy"), arr.astype(dtype))
    # Two tensors: the loader must take the one named "latents".
    save_file({"latents": noise, "other": torch.zeros(2)}, os.path.join(out_dir, f"seed{PARITY_SEED}.safetensors"))


def parity(out_dir, noise):
    import diffusers
    import transformers
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    assert torch.backends.cpu.get_cpu_capability() == "AVX2", "run on AVX2 (ATEN_CPU_CAPABILITY=avx2)"
    diffusers.utils.logging.disable_progress_bar()
    pipe = StableDiffusionPipeline.from_pretrained(PIPELINE, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    schedulers = {"ddim": pipe.scheduler, "euler": EulerDiscreteScheduler.from_config(pipe.scheduler.config)}
    tensors, info = {}, {}
    for name, scheduler in schedulers.items():
        pipe.scheduler = scheduler
        call = dict(prompt=PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=SIZE, width=SIZE)
        gen = lambda: torch.Generator().manual_seed(PARITY_SEED)  # noqa: E731
        image = pipe(**call, generator=gen(), output_type="np").images
        latents_out = pipe(**call, generator=gen(), output_type="latent").images
        # generator= is torch.randn of the whole shape, then * init_noise_sigma: passing that noise as
        # latents= gives the very same image.
        same = pipe(**call, latents=noise.clone(), output_type="np").images
        assert np.array_equal(image, same), name
        u8 = (image * 255).round().astype("uint8")
        assert u8.std() > 10, f"{name}: flat image"
        # The image depends on the noise: another seed, or (Euler) noise left unscaled by init_noise_sigma,
        # moves it by more than the test's tolerance.
        sigma = float(scheduler.init_noise_sigma)
        wrong = [torch.randn(noise.shape, generator=torch.Generator().manual_seed(PARITY_SEED + 1))]
        wrong += [noise / sigma] if sigma != 1.0 else []
        for w in wrong:
            assert np.abs(pipe(**call, latents=w, output_type="np").images - image).max() * 255 > 10, name
        tensors[f"{name}_image_u8"] = torch.from_numpy(np.ascontiguousarray(u8))
        tensors[f"{name}_latents_out"] = latents_out.contiguous()
        info[name] = dict(scheduler=type(scheduler).__name__, init_noise_sigma=sigma,
                          timestep_spacing=scheduler.config.timestep_spacing,
                          timesteps=[float(t) for t in scheduler.timesteps])
        print(f"  {name}: init_noise_sigma {sigma:.6f}, image std {u8.std():.1f}")
    assert info["ddim"]["init_noise_sigma"] == 1.0 and info["euler"]["init_noise_sigma"] > 1.0
    save_file(tensors, os.path.join(out_dir, "parity.safetensors"))
    info.update(model=PIPELINE, prompt=PROMPT, negative_prompt=None, seed=PARITY_SEED,
                generator=f"torch.Generator().manual_seed({PARITY_SEED})", num_inference_steps=STEPS,
                guidance_scale=GUIDANCE, height=SIZE, width=SIZE, latent_shape=list(noise.shape),
                versions=dict(torch=torch.__version__, diffusers=diffusers.__version__,
                              transformers=transformers.__version__, numpy=np.__version__))
    with open(os.path.join(out_dir, "parity.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/noise")
    parser.add_argument("--draws", nargs=2, metavar=("KERNEL", "FILE"), help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if args.draws:
        save_file(draws(args.draws[0]), args.draws[1])
        return

    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = {}
        for kernel in KERNELS:
            t.update(draws_in_child(kernel, tmp))
    check_draws(t)
    t["sequence_sizes"] = torch.tensor(SEQUENCE, dtype=torch.int64)
    save_file(t, os.path.join(args.out, "torch_randn.safetensors"))

    noise = torch.randn((1, 4, SIZE // 2, SIZE // 2), generator=torch.Generator().manual_seed(PARITY_SEED))
    latents_files(args.out, noise)
    parity(args.out, noise)
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {args.out}: {total / 1e3:.0f} kB")
    assert total < 600_000, total


if __name__ == "__main__":
    main()
