"""apply(pipe, schedule) / remove(pipe): a dato schedule on a diffusers Stable Diffusion pipeline.

The patch replaces `pipe.unet.forward` (the pipelines call `self.unet(...)` once per UNet call) and
wraps the scheduler's `set_timesteps` (called once at the start of every pipeline call) so that each
call starts fresh: no cache, no predictions, call counter 0. At the first UNet call of a pipeline
call the hook knows the sampler and how many steps the loop runs, and refuses a schedule that does
not fit. UNet call c maps to sampler step c, except PLMS (PNDM with skip_prk_steps), whose calls 0
and 1 are both step 0 (dato's rule, docs/DATO.md).
"""
import functools

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

from . import schedule as schedules
from .runtime import DaToUNet

# diffusers scheduler class -> (dato sampler name, config values dato's sampler assumes)
SAMPLERS = {
    "DDIMScheduler": ("ddim", {"thresholding": False, "rescale_betas_zero_snr": False}),
    "PNDMScheduler": ("pndm", {"skip_prk_steps": True}),
    "DPMSolverMultistepScheduler": ("dpmpp-2m", {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                                 "solver_type": "midpoint", "lower_order_final": True,
                                                 "use_karras_sigmas": False, "thresholding": False}),
    "EulerDiscreteScheduler": ("euler", {"use_karras_sigmas": False, "rescale_betas_zero_snr": False}),
    "EulerAncestralDiscreteScheduler": ("euler-a", {"rescale_betas_zero_snr": False}),
}


def sampler_name(scheduler):
    """dato's name of a diffusers scheduler, or ValueError naming what dato cannot run."""
    cls = type(scheduler).__name__
    if cls not in SAMPLERS:
        raise ValueError(f"dato_diffusers: {cls} is not a sampler dato supports "
                         f"({', '.join(SAMPLERS)})")
    name, needs = SAMPLERS[cls]
    for key, value in needs.items():
        if key in scheduler.config and scheduler.config[key] != value:
            raise ValueError(f"dato_diffusers: {cls} with {key}={scheduler.config[key]!r}; dato's {name} "
                             f"needs {key}={value!r}")
    return name


def call_step(sampler, call):
    """The sampler step of UNet call `call`: PLMS calls twice in step 0."""
    return max(call - 1, 0) if sampler == "pndm" else call


class Hook:
    """The state of one patched pipeline: the schedule, the runtime, and the pipeline call running."""

    def __init__(self, pipe, schedule, seed, max_level):
        self.pipe = pipe
        self.unet = pipe.unet
        self.model = DaToUNet(pipe.unet, seed=seed, max_level=max_level)
        self.schedule = schedules.read(schedule)  # a bad file fails here; a preset name is resolved per call
        self.run = None           # the running call's (Schedule, sampler name, number of UNet calls)
        self.call = 0
        self.scheduler = None
        self.watch(pipe.scheduler)
        pipe.unet.forward = self.forward
        self.model.install()

    def watch(self, scheduler):
        """Wraps scheduler.set_timesteps: every pipeline call calls it first, so a run starts there."""
        self.unwatch()
        original = scheduler.set_timesteps

        @functools.wraps(original)
        def set_timesteps(*args, **kwargs):
            self.run = None
            return original(*args, **kwargs)

        scheduler.set_timesteps = set_timesteps
        self.scheduler = scheduler

    def unwatch(self):
        if self.scheduler is not None and "set_timesteps" in vars(self.scheduler):
            del self.scheduler.set_timesteps
        self.scheduler = None

    def remove(self):
        self.unwatch()
        self.model.uninstall()
        self.model.reset()
        del self.unet.forward

    def begin(self, timestep):
        """The first UNet call of a pipeline call: checks sampler and steps, forgets the last run."""
        sched = self.pipe.scheduler
        if sched is not self.scheduler:  # the user swapped schedulers after apply
            self.watch(sched)
        sampler = sampler_name(sched)
        timesteps = sched.timesteps
        start = getattr(sched, "begin_index", None)
        if start is None:  # img2img without set_begin_index: where the loop's first timestep sits
            hits = (timesteps == torch.as_tensor(timestep).to(timesteps.device, timesteps.dtype)).nonzero()
            if len(hits) == 0:
                raise ValueError(f"dato_diffusers: timestep {timestep} is not among the scheduler's timesteps")
            start = int(hits[0, 0])
        n_calls = len(timesteps) - start
        steps = n_calls - 1 if sampler == "pndm" else n_calls
        s = schedules.resolve(self.schedule, steps, self.model.B)
        if s.sampler and s.sampler != sampler:
            raise ValueError(f"{s.name}: searched for sampler '{s.sampler}', but the pipeline's scheduler is "
                             f"{type(sched).__name__} ('{sampler}'); set pipe.scheduler to the schedule's sampler")
        self.run = (s, sampler, n_calls)
        self.call = 0
        self.model.reset()

    def forward(self, sample, timestep, encoder_hidden_states=None, class_labels=None, timestep_cond=None,
                attention_mask=None, cross_attention_kwargs=None, added_cond_kwargs=None,
                down_block_additional_residuals=None, mid_block_additional_residual=None,
                down_intrablock_additional_residuals=None, encoder_attention_mask=None, return_dict=True):
        if down_block_additional_residuals is not None or mid_block_additional_residual is not None or \
                down_intrablock_additional_residuals is not None:
            raise ValueError("dato_diffusers: ControlNet/adapter residuals are not supported")
        if self.run is None or self.pipe.scheduler is not self.scheduler:
            self.begin(timestep)
        s, sampler, n_calls = self.run
        if self.call >= n_calls:
            raise ValueError(f"dato_diffusers: UNet call {self.call + 1} of a run of {n_calls} calls")
        k = call_step(sampler, self.call)
        guided = bool(getattr(self.pipe, "do_classifier_free_guidance", False))
        raw = self.model(sample, timestep, encoder_hidden_states, step=k, depth=s.depth[k], ratio=s.ratio[k],
                         n_cond=sample.shape[0] // 2 if guided else 0, class_labels=class_labels,
                         timestep_cond=timestep_cond, attention_mask=attention_mask,
                         cross_attention_kwargs=cross_attention_kwargs, added_cond_kwargs=added_cond_kwargs,
                         encoder_attention_mask=encoder_attention_mask)
        self.call += 1
        if self.call == n_calls:  # the run is over: drop the cache and predictions
            self.run = None
            self.model.reset()
        return UNet2DConditionOutput(sample=raw) if return_dict else (raw,)


def apply(pipe, schedule, seed=0, max_level=None):
    """Patches pipe (StableDiffusion[XL][Img2Img]Pipeline) to run `schedule`: a .json file written by
    dato-export, its dict, a Schedule, or a preset name ('deepcache:3', 'tome:0.5', ...). seed: the
    random base-token pick of steps that prune before two predictions exist (dato-generate --seed).
    max_level: the deepest level that prunes (default: the first level with transformers). Returns pipe."""
    remove(pipe)
    pipe._dato_hook = Hook(pipe, schedule, seed, max_level)
    return pipe


def remove(pipe):
    """Undoes apply (a no-op on an unpatched pipeline). Returns pipe."""
    hook = getattr(pipe, "_dato_hook", None)
    if hook is not None:
        hook.remove()
        del pipe._dato_hook
    return pipe
