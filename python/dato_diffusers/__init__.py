"""Apply dato schedules (per-step cache depth and DaTo token pruning) to diffusers pipelines.

    import dato_diffusers
    dato_diffusers.apply(pipe, "knee.json")   # or a preset: "deepcache:3", "tome:0.5", ...
    image = pipe(prompt, num_inference_steps=50).images[0]
    dato_diffusers.remove(pipe)

docs/PYTHON.md describes the rules; the C engine (engine/runtime/dato.c) is the spec.
"""
from .pipeline import apply, remove
from .runtime import DaToUNet, n_branches
from .schedule import Schedule, load, preset

__all__ = ["apply", "remove", "DaToUNet", "n_branches", "Schedule", "load", "preset"]
__version__ = "0.1.0"
