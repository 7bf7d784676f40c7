"""Fixtures for the scheduler an LDM single file gets (engine/models/single_file.c, docs/SINGLE_FILE.md): what
diffusers' from_single_file chooses, and images of the tiny SD1.5 pipeline under every sampler.

diffusers' from_single_file (no `config`, no legacy `prediction_type`/`scheduler_type` kwargs) reads the
model type off the file (single_file_utils.infer_diffusers_model_type), takes that type's default repo
(DIFFUSERS_DEFAULT_PIPELINE_PATHS) and loads the scheduler with <class>.from_pretrained(repo,
subfolder="scheduler"): the hub's scheduler_config.json, verbatim. Switching samplers is then
X.from_config(pipe.scheduler.config). There is no network here, so the three hub files are copied
below (SCHEDULERS); the script checks that diffusers maps each model type to the repo given.

Writes, under out_dir (default tests/fixtures/single_file):
  schedulers/<type>/scheduler_config.json  the hub file of the repo of v1, v2 and xl_base
  schedulers.json      per model type: repo, UNet sample_size, and for every dato sampler the config
                       diffusers runs (X.from_config of the hub config), the keys that class uses
  model_types.json     tensor name/shape sets and the model type infer_diffusers_model_type gives each
  sd15_samplers.safetensors  the tiny SD1.5 pipeline (tests/fixtures/pipeline/sd15, from
                       make_pipeline_fixtures.py) with SD1.5's scheduler config (PNDM), then
                       X.from_config(pipe.scheduler.config) for X in DDIM, PNDM, DPM-Solver++ 2M,
                       Euler: latents_in, image_u8_<sampler> (B, 16, 16, 3) uint8, timesteps_<sampler>.
                       The prompts, negative prompts, steps and guidance of reference/sd15_negative.json.

Float32 on the CPU, one thread, deterministic algorithms: reruns are byte-identical.

Usage: python3 tools/make_single_file_fixtures.py [out_dir]
"""
import json
import os
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
)
from diffusers.loaders import single_file_utils as sfu

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PIPELINE = os.path.join(ROOT, "tests", "fixtures", "pipeline")

# The hub's scheduler/scheduler_config.json of each default repo, in the hub's key order.
SCHEDULERS = {
    "v1": ("stable-diffusion-v1-5/stable-diffusion-v1-5", 64, {
        "_class_name": "PNDMScheduler",
        "_diffusers_version": "0.6.0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "num_train_timesteps": 1000,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
        "clip_sample": False,
    }),
    "v2": ("stabilityai/stable-diffusion-2-1", 96, {
        "_class_name": "DDIMScheduler",
        "_diffusers_version": "0.8.0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction",
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
    }),
    "xl_base": ("stabilityai/stable-diffusion-xl-base-1.0", 128, {
        "_class_name": "EulerDiscreteScheduler",
        "_diffusers_version": "0.19.0.dev0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "interpolation_type": "linear",
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "sample_max_value": 1.0,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "trained_betas": None,
        "use_karras_sigmas": False,
    }),
}

# dato's sampler names -> diffusers classes, and the config keys each class's math reads that dato reads.
COMMON = ["num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type", "timestep_spacing",
          "steps_offset"]
SAMPLERS = {
    "ddim": (DDIMScheduler, COMMON + ["set_alpha_to_one", "clip_sample"]),
    "pndm": (PNDMScheduler, COMMON + ["set_alpha_to_one"]),
    "dpmpp-2m": (DPMSolverMultistepScheduler, COMMON),
    "euler": (EulerDiscreteScheduler, COMMON),
    "euler-a": (EulerAncestralDiscreteScheduler, COMMON),
}
REFERENCE_SAMPLERS = ["ddim", "pndm", "dpmpp-2m", "euler"]  # deterministic: Euler-a draws torch's noise

# Name -> shape sets in the LDM layout, with the type diffusers gives each (checked below).
UNET = "model.diffusion_model."
SD1_TE = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
SD2_TE = "cond_stage_model.model.token_embedding.weight"
XL_TE0 = "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"
XL_TE1_9 = "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"
REFINER_TE0_9 = "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias"
CONV_IN = UNET + "input_blocks.0.0.weight"
TO_K2 = UNET + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
MODEL_TYPE_CASES = [
    ("sd15", {CONV_IN: [320, 4, 3, 3], TO_K2: [320, 768], SD1_TE: [49408, 768]}),
    ("sd2", {CONV_IN: [320, 4, 3, 3], TO_K2: [320, 1024], SD2_TE: [49408, 1024]}),
    ("sdxl", {CONV_IN: [320, 4, 3, 3], XL_TE0: [49408, 768], XL_TE1_9: [1280]}),
    ("sdxl_tiny_openclip", {CONV_IN: [32, 4, 3, 3], XL_TE0: [1514, 32]}),  # no 10th OpenCLIP layer: v1
    ("unet_only", {CONV_IN: [32, 4, 3, 3]}),
    ("sd15_inpainting", {CONV_IN: [320, 9, 3, 3], TO_K2: [320, 768]}),
    ("sd2_inpainting", {CONV_IN: [320, 9, 3, 3], TO_K2: [320, 1024]}),
    ("sdxl_inpainting", {CONV_IN: [320, 9, 3, 3], XL_TE1_9: [1280]}),
    ("sdxl_refiner", {CONV_IN: [384, 4, 3, 3], REFINER_TE0_9: [1280]}),
    ("playground", {CONV_IN: [320, 4, 3, 3], XL_TE1_9: [1280], "edm_mean": [1, 4, 1, 1]}),
    ("upscale", {CONV_IN: [256, 7, 3, 3], UNET + "input_blocks.10.0.skip_connection.bias": [512]}),
    ("pix2pix", {CONV_IN: [320, 8, 3, 3], TO_K2: [320, 768]}),
]


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=2) + "\n")


def diffusers_config(cls, config, keys):
    """The keys a class uses, as diffusers holds them after cls.from_config(config)."""
    c = cls.from_config(config).config
    return {"_class_name": cls.__name__, **{k: c[k] for k in keys}}


def scheduler_expectations(out_dir):
    types = {}
    for model_type, (repo, sample_size, hub) in SCHEDULERS.items():
        assert sfu.DIFFUSERS_DEFAULT_PIPELINE_PATHS[model_type]["pretrained_model_name_or_path"] == repo, model_type
        folder = os.path.join(out_dir, "schedulers", model_type)
        write_json(os.path.join(folder, "scheduler_config.json"), hub)
        # As from_single_file loads it: the class of the file, from the file (keys it lacks recorded).
        loaded = getattr(diffusers, hub["_class_name"]).from_pretrained(folder)
        types[model_type] = {
            "repo": repo,
            "sample_size": sample_size,
            "class": hub["_class_name"],
            "samplers": {name: diffusers_config(cls, loaded.config, keys) for name, (cls, keys) in SAMPLERS.items()},
        }
    write_json(os.path.join(out_dir, "schedulers.json"), {"diffusers": diffusers.__version__, "types": types})
    return types


def model_type_cases(out_dir):
    cases = []
    for name, shapes in MODEL_TYPE_CASES:
        checkpoint = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
        cases.append({"name": name, "tensors": shapes, "model_type": sfu.infer_diffusers_model_type(checkpoint)})
    expected = {"sd15": "v1", "sd2": "v2", "sdxl": "xl_base", "sdxl_tiny_openclip": "v1", "unet_only": "v1"}
    assert all(c["model_type"] == expected[c["name"]] for c in cases if c["name"] in expected), cases
    write_json(os.path.join(out_dir, "model_types.json"), {"diffusers": diffusers.__version__, "cases": cases})


def sampler_images(out_dir, types):
    ref = json.load(open(os.path.join(PIPELINE, "reference", "sd15_negative.json")))
    latents_in = load_file(os.path.join(PIPELINE, "reference", "sd15_negative.safetensors"))["latents_in"]
    pipe = StableDiffusionPipeline.from_pretrained(
        os.path.join(PIPELINE, "sd15"), dtype=torch.float32, safety_checker=None, requires_safety_checker=False,
        scheduler=PNDMScheduler.from_pretrained(os.path.join(out_dir, "schedulers", "v1")))
    pipe.set_progress_bar_config(disable=True)
    base = pipe.scheduler.config
    tensors = {"latents_in": latents_in.contiguous()}
    images = {}
    for name in REFERENCE_SAMPLERS:
        cls, keys = SAMPLERS[name]
        pipe.scheduler = cls.from_config(base)
        assert diffusers_config(cls, base, keys) == types["v1"]["samplers"][name]
        out = pipe(prompt=ref["prompt"], negative_prompt=ref["negative_prompt"],
                   num_inference_steps=ref["num_inference_steps"], guidance_scale=ref["guidance_scale"],
                   height=ref["height"], width=ref["width"], latents=latents_in.clone(), output_type="np").images
        u8 = (out * 255).round().astype("uint8")  # numpy_to_pil's rounding
        assert 0.03 < u8.std() / 255 and len(np.unique(u8)) > 50, name  # not flat
        images[name] = u8
        tensors["image_u8_" + name] = torch.from_numpy(np.ascontiguousarray(u8))
        tensors["timesteps_" + name] = pipe.scheduler.timesteps.to(torch.float32).contiguous()
    # The samplers disagree with each other (so each image tests its own sampler).
    for a in REFERENCE_SAMPLERS:
        for b in REFERENCE_SAMPLERS:
            assert a == b or np.abs(images[a].astype(int) - images[b].astype(int)).max() > 8, (a, b)
    save_file(tensors, os.path.join(out_dir, "sd15_samplers.safetensors"), metadata={"format": "pt"})


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "single_file")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    types = scheduler_expectations(out_dir)
    model_type_cases(out_dir)
    sampler_images(out_dir, types)
    print("wrote", out_dir)


if __name__ == "__main__":
    main()
