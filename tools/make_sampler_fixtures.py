"""Reference runs of diffusers' schedulers for the dato sampler tests (tests/unit/test_sampler.c).

Writes, under out_dir (default tests/fixtures/samplers):
  index.json                 the case names, in order
  <case>.json                one scheduler x config x step count: its scheduler config (as diffusers
                             stores it), the per-call timesteps and model-input scales, init_noise_sigma,
                             and a synthetic run on a (1,4,8,8) latent: the initial latent (already times
                             init_noise_sigma), the fixed tensor B of the toy model, the noise each call
                             drew (DDIM eta > 0, Euler ancestral) and the latent after every call
  tables.json                alphas_cumprod for the two beta schedules used (bit-exact reference)
  grids.json                 timesteps and init_noise_sigma (Euler: sigmas) of every sampler x spacing
                             for step counts 1..16, 20, 25, 30, 40, 50, 61, 100
  sd15_scheduler_config.json the SD1.5 scheduler_config.json as diffusers saves it

The toy model stands in for the guided UNet and is reproduced bit-exactly by the C test:
  model_out = 0.3f * model_in + c * B,   c = (float)(0.05 * cos((double)timestep / 100))
in float32, one rounding per operation. Tensors are stored as base64 of little-endian float32
("f32le" strings) so the files stay small and exact.

Everything runs on the CPU in float32 with fixed seeds: reruns are bit-identical.

Usage: python3 tools/make_sampler_fixtures.py [out_dir]
"""
import base64
import json
import math
import os
import sys

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
)
from diffusers.schedulers import scheduling_euler_ancestral_discrete

LATENT_SHAPE = (1, 4, 8, 8)

# SD1.5's scheduler config as a pipeline holds it (runwayml/stable-diffusion-v1-5, with PNDM's defaults
# for the keys its file omits): switching schedulers with from_config carries these keys over.
SD15 = dict(
    timestep_spacing="leading",
    prediction_type="epsilon",
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    num_train_timesteps=1000,
    set_alpha_to_one=False,
    skip_prk_steps=True,
    steps_offset=1,
    clip_sample=False,
)

CLASSES = {
    "ddim": DDIMScheduler,
    "pndm": PNDMScheduler,
    "dpmpp-2m": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "euler-a": EulerAncestralDiscreteScheduler,
}

# (name, sampler, config overrides on top of SD15, steps, eta). The configs cover every spacing,
# both prediction types, a linear beta schedule with set_alpha_to_one, step counts 10 and 25 and
# odd ones, DPM-Solver++ below and above 15 steps, and the stochastic samplers with stored noise.
CASES = [
    ("ddim_leading_eps_10", "ddim", {}, 10, 0.0),
    ("ddim_trailing_v_25", "ddim", {"timestep_spacing": "trailing", "prediction_type": "v_prediction"}, 25, 0.0),
    ("ddim_linspace_eps_11", "ddim", {"timestep_spacing": "linspace"}, 11, 0.0),
    ("ddim_leading_eps_10_eta05", "ddim", {}, 10, 0.5),
    ("ddim_linear_alpha1_v_7_eta05", "ddim",
     {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear", "set_alpha_to_one": True,
      "steps_offset": 0, "prediction_type": "v_prediction"}, 7, 0.5),
    ("pndm_leading_eps_10", "pndm", {}, 10, 0.0),
    ("pndm_trailing_v_11", "pndm", {"timestep_spacing": "trailing", "prediction_type": "v_prediction"}, 11, 0.0),
    ("pndm_linspace_eps_25", "pndm", {"timestep_spacing": "linspace"}, 25, 0.0),
    ("dpmpp2m_leading_eps_10", "dpmpp-2m", {}, 10, 0.0),
    ("dpmpp2m_linspace_v_25", "dpmpp-2m", {"timestep_spacing": "linspace", "prediction_type": "v_prediction"}, 25, 0.0),
    ("dpmpp2m_trailing_eps_7", "dpmpp-2m", {"timestep_spacing": "trailing"}, 7, 0.0),
    ("euler_linspace_eps_10", "euler", {"timestep_spacing": "linspace"}, 10, 0.0),
    ("euler_leading_v_25", "euler", {"prediction_type": "v_prediction"}, 25, 0.0),
    ("euler_trailing_eps_11", "euler", {"timestep_spacing": "trailing"}, 11, 0.0),
    ("euler_linspace_v_11", "euler", {"timestep_spacing": "linspace", "prediction_type": "v_prediction"}, 11, 0.0),
    ("eulera_linspace_eps_10", "euler-a", {"timestep_spacing": "linspace"}, 10, 0.0),
    ("eulera_leading_v_11", "euler-a", {"prediction_type": "v_prediction"}, 11, 0.0),
    ("eulera_trailing_eps_25", "euler-a", {"timestep_spacing": "trailing"}, 25, 0.0),
]


def f32le(array):
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def toy_model(model_in, timestep, B):
    """The synthetic guided model output, float32 with one rounding per operation."""
    c = np.float32(0.05 * math.cos(float(timestep) / 100.0))
    return np.float32(0.3) * model_in + c * B


def make_scheduler(sampler, overrides):
    config = dict(SD15)
    config.update(overrides)
    cls = CLASSES[sampler]
    # Build through from_config, as a pipeline switching schedulers does: keys the class does not
    # take (skip_prk_steps for DDIM, ...) are ignored by diffusers.
    return cls.from_config(config)


def json_config(scheduler):
    """The config as diffusers would save it, minus values JSON cannot hold (-inf)."""
    config = {"_class_name": type(scheduler).__name__}
    for key, value in dict(scheduler.config).items():
        if key.startswith("_"):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        if isinstance(value, tuple):
            value = list(value)
        config[key] = value
    return config


def run_case(name, sampler, overrides, steps, eta, seed):
    scheduler = make_scheduler(sampler, overrides)
    scheduler.set_timesteps(steps)
    rng = np.random.RandomState(seed)
    B = rng.standard_normal(LATENT_SHAPE).astype(np.float32)
    z = rng.standard_normal(LATENT_SHAPE).astype(np.float32)
    timesteps = scheduler.timesteps
    noises = [rng.standard_normal(LATENT_SHAPE).astype(np.float32) for _ in range(len(timesteps))]
    stochastic = sampler == "euler-a" or (sampler == "ddim" and eta > 0)

    # Euler ancestral draws its noise inside step(): hand it ours, in call order.
    pending = list(noises)

    def stored_noise(shape, generator=None, device=None, dtype=None, layout=None):
        assert tuple(shape) == LATENT_SHAPE
        return torch.from_numpy(pending.pop(0)).to(dtype=dtype)

    saved_randn = scheduling_euler_ancestral_discrete.randn_tensor
    scheduling_euler_ancestral_discrete.randn_tensor = stored_noise
    try:
        init_noise_sigma = scheduler.init_noise_sigma
        x = torch.from_numpy(z) * init_noise_sigma
        x_init = x.numpy().copy()
        input_scales, latents = [], []
        for call, t in enumerate(timesteps):
            model_in = scheduler.scale_model_input(x, t)
            # Euler divides the input by sqrt(sigma^2 + 1); the engine multiplies by its inverse.
            if sampler in ("euler", "euler-a"):
                divisor = (scheduler.sigmas[scheduler.step_index] ** 2 + 1) ** 0.5
                assert torch.equal(model_in, x / divisor)
                input_scales.append(1.0 / float(divisor))
            else:
                assert torch.equal(model_in, x)
                input_scales.append(1.0)
            model_out = torch.from_numpy(toy_model(model_in.numpy(), float(t), B))
            kwargs = {}
            if sampler == "ddim":
                kwargs["eta"] = eta
                if eta > 0:
                    kwargs["variance_noise"] = torch.from_numpy(noises[call])
            x = scheduler.step(model_out, t, x, **kwargs).prev_sample
            latents.append(x.numpy().copy())
    finally:
        scheduling_euler_ancestral_discrete.randn_tensor = saved_randn
    if sampler == "euler-a":
        assert not pending, f"{name}: Euler ancestral drew {len(noises) - len(pending)} noises"

    return {
        "name": name,
        "sampler": sampler,
        "scheduler_config": json_config(scheduler),
        "steps": steps,
        "eta": eta,
        "latent_shape": list(LATENT_SHAPE),
        "timesteps": [float(t) for t in timesteps],
        "input_scale": input_scales,
        "init_noise_sigma": float(init_noise_sigma),
        "toy_model": "model_out = 0.3f*model_in + (float)(0.05*cos((double)timestep/100)) * B",
        "B": f32le(B),
        "x_init": f32le(x_init),
        "noise": [f32le(n) for n in noises] if stochastic else None,
        "latents": [f32le(l) for l in latents],
        "max_abs_latent": [float(np.abs(l).max()) for l in latents],
    }


GRID_STEPS = list(range(1, 17)) + [20, 25, 30, 40, 50, 61, 100]


def grids(step_counts):
    """Timesteps (per model call) and init_noise_sigma of every sampler x spacing x step count, on
    SD1.5's schedule; Euler also its sigmas. Trailing step counts where numpy's arange yields an extra
    timestep are marked unsupported (dato refuses them)."""
    out = {}
    for sampler in CLASSES:
        for spacing in ("leading", "trailing", "linspace"):
            runs = {}
            for steps in step_counts:
                if sampler == "pndm" and steps < 2:
                    continue
                scheduler = make_scheduler(sampler, {"timestep_spacing": spacing})
                scheduler.set_timesteps(steps)
                calls = steps + 1 if sampler == "pndm" else steps
                if len(scheduler.timesteps) != calls:
                    runs[str(steps)] = {"unsupported": True}
                    continue
                run = {
                    "timesteps": [float(t) for t in scheduler.timesteps],
                    "init_noise_sigma": float(scheduler.init_noise_sigma),
                }
                if sampler in ("euler", "euler-a"):
                    run["sigmas"] = [float(x) for x in scheduler.sigmas[:-1]]
                runs[str(steps)] = run
            out[f"{sampler} {spacing}"] = runs
    return out


def tables():
    out = {}
    for name, config in [
        ("scaled_linear_0.00085_0.012", SD15),
        ("linear_0.0001_0.02", {"beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear"}),
    ]:
        scheduler = DDIMScheduler.from_config(config)
        out[name] = {
            "beta_start": config["beta_start"],
            "beta_end": config["beta_end"],
            "beta_schedule": config["beta_schedule"],
            "num_train_timesteps": 1000,
            "alphas_cumprod": f32le(scheduler.alphas_cumprod.numpy()),
        }
    return out


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def main(out_dir):
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    for seed, (name, sampler, overrides, steps, eta) in enumerate(CASES):
        case = run_case(name, sampler, overrides, steps, eta, seed)
        write_json(os.path.join(out_dir, name + ".json"), case)
        print(f"{name}: {len(case['timesteps'])} calls, init_noise_sigma {case['init_noise_sigma']:.6g}, "
              f"final max|x| {case['max_abs_latent'][-1]:.4g}")
    write_json(os.path.join(out_dir, "index.json"), {"cases": [c[0] for c in CASES]})
    write_json(os.path.join(out_dir, "tables.json"), tables())
    with open(os.path.join(out_dir, "grids.json"), "w") as f:
        json.dump(grids(GRID_STEPS), f, separators=(",", ":"))
        f.write("\n")
    PNDMScheduler.from_config(SD15).save_config(out_dir)  # writes scheduler_config.json
    os.replace(os.path.join(out_dir, "scheduler_config.json"), os.path.join(out_dir, "sd15_scheduler_config.json"))
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"wrote {out_dir}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "tests", "fixtures", "samplers"))
