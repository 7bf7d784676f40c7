"""DeepCache's own rules, run from the installed DeepCache package, as fixtures for dato's deepcache
presets (docs/SCHEDULES.md).

Writes:
  tests/fixtures/schedules/deepcache_full_steps.txt
      one line per (steps, cache_interval[, center, pow]): the steps that DeepCache's
      StableDiffusionPipeline runs in full, or "raises" where it raises ValueError. The lines come
      from DeepCache's own statements: `sample_from_quad_center` and the block of
      `StableDiffusionPipeline.__call__` from `if cache_interval == 1:` to
      `interval_seq = sorted(interval_seq)`, taken out of the installed
      DeepCache/sd/pipeline_stable_diffusion.py with Python's ast and executed as they are (the
      module itself no longer imports with diffusers 0.42: it asks for diffusers' removed
      PositionNet). A step i is full when `i in interval_seq`, the pipeline's own test.
  tests/fixtures/deepcache/parity.safetensors
      diffusers' StableDiffusionPipeline over tests/fixtures/pipeline/sd15 (the prompts, negative
      prompts and latents of its sd15_negative case, DDIM 10 steps, guidance 7.5) under
      DeepCacheSDHelper.set_params(cache_interval=N, cache_branch_id=b), for each case of CASES:
      <case>.image_u8, <case>.latents_out and <case>.full_steps (the steps whose UNet call ran the
      mid block, i.e. ran in full).

Checks (assertion errors otherwise):
  - the branch mapping: on the SD1.5- and SDXL-shaped UNets of tests/fixtures/unet (layers_per_block
    2), a partial call under DeepCacheSDHelper with cache_branch_id b runs exactly the layers of
    dato's depth min(b + 1, B) (input blocks 0..d-1 and output blocks B-d..B-1 in LDM numbering, the
    mid block not at all); on the pipeline fixture's UNet (layers_per_block 1) the branch ids of
    CASES run the depths named there. The whole mapping of each UNet is printed.
  - without the helper the pipeline reproduces the pipeline fixture's sd15_negative image bit for bit;
  - each case's full steps are DeepCache's uniform rule (k % N == 0), and its image is not the
    baseline's.

Everything runs on the CPU in float32 with one thread: reruns are byte-identical.

Requires: torch, diffusers, safetensors, numpy, and DeepCache (pip install DeepCache==0.1.1).
Usage: python3 tools/make_deepcache_fixtures.py
"""
import ast
import json
import os
import random
import textwrap
import types

import numpy as np
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file

import DeepCache
from DeepCache import DeepCacheSDHelper

PIPELINE = "tests/fixtures/pipeline"
SCHEDULE_FIXTURE = "tests/fixtures/schedules/deepcache_full_steps.txt"
PARITY_FIXTURE = "tests/fixtures/deepcache/parity.safetensors"

# case -> (cache_interval, cache_branch_id, the dato depth this branch id gives on the fixture's UNet)
CASES = {
    "interval3_branch0": (3, 0, 1),  # DeepCache's README call; dato's deepcache:3
    "interval4_branch0": (4, 0, 1),  # 4 does not divide the 10 steps: full at 0, 4, 8
    "interval3_branch1": (3, 1, 2),  # deepcache:3:branch=1
    "interval3_branch9": (3, 9, 4),  # past the last branch: everything but the mid block (depth B = 4)
}


# ---- DeepCache's full-step rule, from its own source ------------------------------------------------

def deepcache_pipeline_rule():
    """DeepCache's interval_seq as a function of (num_inference_steps, cache_interval, uniform, center, pow)."""
    path = os.path.join(os.path.dirname(DeepCache.__file__), "sd", "pipeline_stable_diffusion.py")
    source = open(path).read()
    tree = ast.parse(source)
    quad = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "sample_from_quad_center"]
    pipeline = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "StableDiffusionPipeline"]
    assert len(quad) == 1 and len(pipeline) == 1, path
    call = [n for n in pipeline[0].body if isinstance(n, ast.FunctionDef) and n.name == "__call__"]
    assert len(call) == 1, path
    body = call[0].body
    first = [i for i, n in enumerate(body) if isinstance(n, ast.If) and ast.unparse(n.test) == "cache_interval == 1"]
    assert len(first) == 1, "DeepCache's __call__ changed: no single `if cache_interval == 1:`"
    i = first[0]
    assert ast.unparse(body[i + 1]) == "interval_seq = sorted(interval_seq)", ast.unparse(body[i + 1])
    block = "\n".join(textwrap.dedent(ast.get_source_segment(source, n, padded=True)) for n in body[i:i + 2])
    text = (ast.get_source_segment(source, quad[0]) + "\n\n"
            "def interval_seq_of(num_inference_steps, cache_interval, uniform, center, pow):\n"
            + textwrap.indent(block, "    ") + "\n    return interval_seq\n")
    namespace = {"np": np}
    exec(compile(text, path, "exec"), namespace)
    return namespace["interval_seq_of"]


def full_steps_line(rule, steps, interval, center=None, power=None):
    uniform = center is None
    head = f"{steps} {interval} " + ("- -" if uniform else f"{center} {power!r}")
    try:
        seq = rule(steps, interval, uniform, center, power)
    except ValueError:
        return head + " : raises"
    return head + " : " + " ".join(str(i) for i in range(steps) if i in seq)


def write_schedule_fixture(rule):
    rng = random.Random(0)
    steps_list = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 20, 24, 25, 27, 30, 32, 36, 40, 45, 49,
                  50, 51, 60, 64, 75, 99, 100, 128, 150, 200, 250, 500, 1000]
    lines = []
    for steps in steps_list:
        for interval in (1, 2, 3, 4, 5, 7, 10):
            if interval <= steps and steps <= 250:
                lines.append(full_steps_line(rule, steps, interval))
        for _ in range(30):
            # at most ~100 full steps a line keeps the file small
            interval = rng.randint(max(1, steps // 100), min(steps, 16) if steps < 100 else steps // 10)
            center = rng.randrange(steps)
            power = rng.choice([1.2, 1.4, 1.5, 2.0, 10.0]) if rng.random() < 0.25 else round(rng.uniform(1.01, 4.0), 2)
            lines.append(full_steps_line(rule, steps, interval, center, power))
    # DeepCache's README example and N not dividing the steps near it; then cases where no pow down to
    # 1 gives the count, so DeepCache raises (pow 1.0: its loop never runs)
    hand = [(50, 5, 15, 1.4), (50, 3, 15, 1.4), (50, 7, 15, 1.4), (25, 2, 10, 1.5),
            (20, 2, 9, 1.05), (30, 2, 15, 1.05), (30, 2, 15, 1.2), (30, 2, 15, 1.4), (100, 2, 51, 1.05), (10, 2, 3, 1.0)]
    for steps, interval, center, power in hand:
        lines.append(full_steps_line(rule, steps, interval, center, power))
    header = ("# DeepCache 0.1.1's full steps (tools/make_deepcache_fixtures.py): steps cache_interval center pow"
              " : the steps i with `i in interval_seq`, or raises (ValueError); center pow = - - is uniform=True\n")
    with open(SCHEDULE_FIXTURE, "w") as f:
        f.write(header + "\n".join(lines) + "\n")
    n_raises = sum(line.endswith("raises") for line in lines)
    ceil_differs = 0
    for line in lines:
        head, full = line.split(" : ")
        steps, interval, center, _ = head.split()
        if center != "-" and full != "raises" and int(steps) % int(interval) != 0:
            ceil_differs += 1
    print(f"{SCHEDULE_FIXTURE}: {len(lines)} cases, {n_raises} raise, {ceil_differs} non-uniform ones where "
          f"N does not divide the steps, {os.path.getsize(SCHEDULE_FIXTURE)} bytes")
    assert ceil_differs > 100 and n_raises >= 6


# ---- DeepCacheSDHelper's branches in dato's depths -------------------------------------------------

def ldm_layers(unet):
    """LDM's input_blocks and output_blocks as lists of diffusers modules (dato's layer numbering)."""
    inputs = [[unet.conv_in]]
    for block in unet.down_blocks:
        attentions = getattr(block, "attentions", None)
        for j, resnet in enumerate(block.resnets):
            inputs.append([resnet] + ([attentions[j]] if attentions else []))
        if block.downsamplers:
            inputs.append([block.downsamplers[0]])
    outputs = []
    for block in unet.up_blocks:
        attentions = getattr(block, "attentions", None)
        for j, resnet in enumerate(block.resnets):
            last = j == len(block.resnets) - 1
            outputs.append([resnet] + ([attentions[j]] if attentions else [])
                           + ([block.upsamplers[0]] if block.upsamplers and last else []))
    return inputs, outputs


def first_leaf(module):
    """The first parameterized leaf of a module: it runs only when the module's own forward does
    (the helper replaces a cached module's forward, so a hook on the module itself would fire anyway)."""
    for m in module.modules():
        if not list(m.children()) and list(m.parameters(recurse=False)):
            return m
    raise AssertionError(f"no leaf in {type(module).__name__}")


def helper_partial_layers(unet, branch):
    """(input layers, output layers, mid block) that a partial call runs under the helper's branch."""
    inputs, outputs = ldm_layers(unet)
    ran = set()
    hooks = []
    groups = [("in", i, mods) for i, mods in enumerate(inputs)] + [("out", j, mods) for j, mods in enumerate(outputs)]
    groups.append(("mid", 0, [unet.mid_block.resnets[0]]))
    for kind, index, mods in groups:
        for m in mods:
            hooks.append(first_leaf(m).register_forward_hook(lambda *_, key=(kind, index): ran.add(key)))
    cfg = unet.config
    x = torch.randn(2, cfg.in_channels, cfg.sample_size, cfg.sample_size, generator=torch.Generator().manual_seed(0))
    context = torch.randn(2, 3, cfg.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    extra = {}
    if cfg.addition_embed_type == "text_time":
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        extra["added_cond_kwargs"] = {"text_embeds": torch.zeros(2, pooled), "time_ids": torch.zeros(2, 6)}
    timesteps = torch.tensor([901, 801])
    pipe = types.SimpleNamespace(unet=unet, scheduler=types.SimpleNamespace(timesteps=timesteps))
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=2, cache_branch_id=branch)
    helper.enable()
    with torch.no_grad():
        unet(x, timesteps[0], encoder_hidden_states=context, **extra)  # step 0: full, fills the cache
        ran.clear()
        unet(x, timesteps[1], encoder_hidden_states=context, **extra)  # step 1: partial
    helper.disable()
    for h in hooks:
        h.remove()
    layers_in = sorted(i for kind, i in ran if kind == "in")
    layers_out = sorted(j for kind, j in ran if kind == "out")
    return layers_in, layers_out, ("mid", 0) in ran, len(inputs)


def depth_of_branch(unet, branch, name):
    """The dato depth a helper branch id runs: its up layers must be a suffix B-d..B-1 fed by fresh skips."""
    layers_in, layers_out, mid, B = helper_partial_layers(unet, branch)
    d = len(layers_out)
    assert not mid, f"{name}: branch {branch} runs the mid block on a partial step"
    assert layers_out == list(range(B - d, B)), f"{name}: branch {branch} runs output blocks {layers_out}"
    assert layers_in[:d] == list(range(d)), f"{name}: branch {branch} runs input blocks {layers_in}"
    wasted = layers_in[d:]
    return d, wasted, B


def check_branch_mapping(unet, name, exact):
    row = []
    B = None
    for branch in range(15):
        d, wasted, B = depth_of_branch(unet, branch, name)
        row.append(f"{branch}->{d}" + (f" (+input {wasted})" if wasted else ""))
        if exact:
            assert d == min(branch + 1, B) and not wasted, f"{name}: branch {branch} gives depth {d}, not {branch + 1}"
    print(f"{name} (B = {B}): cache_branch_id -> dato depth: " + ", ".join(row))
    return B


# ---- DeepCacheSDHelper on the pipeline fixture -----------------------------------------------------

def run_pipeline(pipe, call, latents_in):
    """(image_u8, final latents, steps whose call ran the mid block)."""
    full, calls, final = [], [0], []
    mid = pipe.unet.mid_block.resnets[0]
    h_mid = first_leaf(mid).register_forward_hook(lambda *_: full.append(calls[0]))

    def on_step_end(p, i, t, kwargs):
        calls[0] += 1
        final[:] = [kwargs["latents"].detach().clone()]
        return {}

    images = pipe(**call, latents=latents_in.clone(), output_type="np", callback_on_step_end=on_step_end).images
    h_mid.remove()
    return (images * 255).round().astype("uint8"), final[0], full


def write_parity_fixture():
    ref = load_file(f"{PIPELINE}/reference/sd15_negative.safetensors")
    info = json.load(open(f"{PIPELINE}/reference/sd15_negative.json"))
    pipe = StableDiffusionPipeline.from_pretrained(f"{PIPELINE}/sd15", dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    B = check_branch_mapping(pipe.unet, "tests/fixtures/pipeline/sd15", exact=False)
    for name, (interval, branch, depth) in CASES.items():
        d, _, _ = depth_of_branch(pipe.unet, branch, "pipeline sd15")
        assert d == depth, f"{name}: branch {branch} runs depth {d} on the fixture, CASES says {depth}"
    call = dict(prompt=info["prompt"], negative_prompt=info["negative_prompt"],
                num_inference_steps=info["num_inference_steps"], guidance_scale=info["guidance_scale"],
                height=info["height"], width=info["width"])
    plain, _, plain_full = run_pipeline(pipe, call, ref["latents_in"])
    assert np.array_equal(plain, ref["image_u8"].numpy()), "the baseline differs from the pipeline fixture"
    assert plain_full == list(range(call["num_inference_steps"]))
    tensors = {}
    for name, (interval, branch, depth) in CASES.items():
        helper = DeepCacheSDHelper(pipe=pipe)
        helper.set_params(cache_interval=interval, cache_branch_id=branch)
        helper.enable()
        image, latents, full = run_pipeline(pipe, call, ref["latents_in"])
        helper.disable()
        assert full == list(range(0, call["num_inference_steps"], interval)), f"{name}: full steps {full}"
        diff = np.abs(image.astype(int) - plain.astype(int)).max()
        assert diff > 2, f"{name}: the image is the baseline's (max diff {diff}/255)"
        print(f"{name}: DeepCacheSDHelper(cache_interval={interval}, cache_branch_id={branch}) = dato depth "
              f"{depth} of B = {B}; full steps {full}; image vs baseline max |diff| {diff}/255")
        tensors[f"{name}.image_u8"] = torch.from_numpy(np.ascontiguousarray(image))
        tensors[f"{name}.latents_out"] = latents.contiguous()
        tensors[f"{name}.full_steps"] = torch.tensor(full, dtype=torch.int32)
    os.makedirs(os.path.dirname(PARITY_FIXTURE), exist_ok=True)
    save_file(tensors, PARITY_FIXTURE)
    print(f"{PARITY_FIXTURE}: {os.path.getsize(PARITY_FIXTURE)} bytes")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    write_schedule_fixture(deepcache_pipeline_rule())
    for name in ("sd15", "sdxl"):
        folder = f"tests/fixtures/unet/{name}/unet"
        check_branch_mapping(UNet2DConditionModel.from_pretrained(folder).eval(), folder, exact=True)
    write_parity_fixture()


if __name__ == "__main__":
    main()
