"""dato schedules: the JSON files `dato-export` writes and the presets (docs/SCHEDULES.md).

A schedule gives, per sampler step k, a depth (0..B+1, B+1 full) and a pruning ratio. The reader is
as strict as engine/runtime/schedule.c: an unknown or repeated key, a wrong type or a value out of
range is an error naming the file, the key and, for genes, the step.
"""
import json
import math
import os
from dataclasses import dataclass

import numpy as np

RATIOS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7)  # the search space; stored as the float32 values
SAMPLER_ALIASES = {"plms": "pndm"}
SAMPLERS = ("ddim", "pndm", "dpmpp-2m", "euler", "euler-a")
KEYS = {"format": str, "version": int, "model": str, "sampler": str, "steps": int, "height": int,
        "width": int, "n_branches": int, "genes": list}
REQUIRED = ("format", "version", "steps", "n_branches", "genes")


@dataclass
class Schedule:
    depth: list           # (steps,) int, 0..n_branches+1
    ratio: list           # (steps,) float, one of RATIOS (as float32)
    n_branches: int
    sampler: str = ""     # "" = any
    name: str = "schedule"

    @property
    def steps(self):
        return len(self.depth)


def _canonical_ratio(value, where):
    for r in RATIOS:
        if abs(value - r) <= 1e-6:
            return float(np.float32(r))
    raise ValueError(f"{where}: field 'ratio' = {value} is not one of {', '.join(str(r) for r in RATIOS)}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def from_dict(d, name="schedule"):
    """A Schedule from the JSON object of a schedule file (keys as docs/SCHEDULES.md)."""
    for key in d:
        if key not in KEYS:
            raise ValueError(f"{name}: unknown key '{key}'")
    for key in REQUIRED:
        if key not in d:
            raise ValueError(f"{name}: missing key '{key}'")
    for key, kind in KEYS.items():
        if key in d and not (_is_int(d[key]) if kind is int else isinstance(d[key], kind)):
            raise ValueError(f"{name}: key '{key}' must be {'an integer' if kind is int else kind.__name__}")
    if d["format"] != "dato-schedule":
        raise ValueError(f"{name}: 'format' is {d['format']!r}, expected 'dato-schedule'")
    if d["version"] != 1:
        raise ValueError(f"{name}: version {d['version']} is not supported (expected 1)")
    steps, B = d["steps"], d["n_branches"]
    if not 1 <= steps <= 1000:
        raise ValueError(f"{name}: 'steps' = {steps} is out of range 1..1000")
    if B < 1:
        raise ValueError(f"{name}: 'n_branches' = {B} must be >= 1")
    if len(d["genes"]) != steps:
        raise ValueError(f"{name}: 'genes' has {len(d['genes'])} entries, 'steps' says {steps}")
    sampler = SAMPLER_ALIASES.get(d.get("sampler", ""), d.get("sampler", ""))
    if sampler not in SAMPLERS + ("",):
        raise ValueError(f"{name}: 'sampler' = {sampler!r} is not one of {', '.join(SAMPLERS)}")
    depth, ratio = [], []
    for k, gene in enumerate(d["genes"]):
        where = f"{name}: step {k} (genes[{k}])"
        if not isinstance(gene, dict):
            raise ValueError(f"{where}: expected {{\"depth\": integer, \"ratio\": number}}")
        odd = sorted(set(gene) ^ {"depth", "ratio"})
        if odd:
            raise ValueError(f"{where}: {'unknown' if odd[0] in gene else 'missing'} key '{odd[0]}'")
        if not _is_int(gene["depth"]) or not 0 <= gene["depth"] <= B + 1:
            raise ValueError(f"{where}: field 'depth' = {gene['depth']} is out of range 0..{B + 1}")
        if not isinstance(gene["ratio"], (int, float)) or isinstance(gene["ratio"], bool):
            raise ValueError(f"{where}: field 'ratio' must be a number")
        depth.append(gene["depth"])
        ratio.append(_canonical_ratio(float(gene["ratio"]), where))
    if depth[0] != B + 1:
        raise ValueError(f"{name}: step 0 (genes[0]) must be full (depth {B + 1}): the cache is empty")
    return Schedule(depth, ratio, B, sampler, name)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    for k in keys:
        if keys.count(k) > 1:
            raise ValueError(f"key '{k}' given twice")
    return dict(pairs)


def load(path):
    """A Schedule from a JSON file."""
    if os.path.getsize(path) > 1 << 20:
        raise ValueError(f"{path}: larger than 1 MiB")
    with open(path, encoding="utf-8") as f:
        try:
            d = json.load(f, object_pairs_hook=_no_duplicates)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    return from_dict(d, path)


# ---- presets (docs/SCHEDULES.md "Presets"), a function of (steps, B) --------------------------------

def _options(spec, parts, allowed):
    opts = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or key not in allowed or key in opts:
            raise ValueError(f"preset '{spec}': bad option '{part}' (expected deepcache:N[:branch=b])")
        opts[key] = value
    return opts


def preset(spec, steps, B):
    """The Schedule of a preset name: baseline, tome:R, deepcache:N[:branch=b], dato-paper."""
    full = B + 1
    depth_of = lambda b: min(b + 1, B)  # the partial step through skip branch b
    name, *parts = spec.split(":")
    if name == "baseline" and not parts:
        depth, ratio = [full] * steps, [0.0] * steps
    elif name == "tome" and len(parts) == 1:
        r = _canonical_ratio(float(parts[0]), f"preset '{spec}'")
        if r == 0:
            raise ValueError(f"preset '{spec}': R must be one of 0.3 .. 0.7")
        depth, ratio = [full] * steps, [r] * steps
    elif name == "deepcache" and parts and parts[0].isdigit() and int(parts[0]) >= 1:
        opts = _options(spec, parts[1:], ("branch", "center", "pow"))
        if "center" in opts or "pow" in opts:
            raise ValueError(f"preset '{spec}': the non-uniform DeepCache rule is not implemented here; "
                             "export the schedule to JSON with dato's tools and apply the file")
        n, branch = int(parts[0]), opts.get("branch", "0")
        if not branch.isdigit():
            raise ValueError(f"preset '{spec}': branch must be an integer >= 0")
        depth, ratio = [full if k % n == 0 else depth_of(int(branch)) for k in range(steps)], [0.0] * steps
    elif name == "dato-paper" and not parts:
        depth = [full if k in (0, 2, 5) or k % 10 == 0 else depth_of(1) if 2 * k < steps else depth_of(0)
                 for k in range(steps)]
        ratio = [0.0] + [float(np.float32(round(0.3 + 0.1 * math.floor(5 * k / steps), 1)))
                         for k in range(1, steps)]
    else:
        raise ValueError(f"unknown schedule preset '{spec}' (expected baseline, tome:R, deepcache:N[:branch=b], "
                         "dato-paper, or a .json file)")
    return Schedule(depth, ratio, B, "", spec)


def read(schedule):
    """A Schedule from a dict (a schedule file's object), a path to a .json file or a Schedule; a
    preset name is returned as it is (it is resolved per run, for that run's steps)."""
    if isinstance(schedule, dict):
        return from_dict(schedule)
    if isinstance(schedule, str) and (schedule.endswith(".json") or os.path.isfile(schedule)):
        return load(schedule)
    return schedule


def resolve(schedule, steps, B):
    """The Schedule for a run of `steps` sampler steps on a UNet with B branches, from anything read()
    takes or a preset name. Raises ValueError when the schedule's steps or branches differ from the run's."""
    schedule = read(schedule)
    if isinstance(schedule, str):
        schedule = preset(schedule, steps, B)
    if schedule.n_branches != B:
        raise ValueError(f"{schedule.name}: written for a UNet of {schedule.n_branches} skip branches, "
                         f"this pipeline's UNet has {B}")
    if schedule.steps != steps:
        raise ValueError(f"{schedule.name}: {schedule.steps} sampler steps, but this pipeline call runs {steps} "
                         f"(call the pipeline with num_inference_steps={schedule.steps}, or export a schedule "
                         f"for {steps} steps)")
    return schedule
