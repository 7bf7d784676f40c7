"""Tiny seeded Stable Diffusion pipelines for the tests and the bench: SD1-style, SD2-style
(v_prediction, linear transformer projections, gelu text encoder) and SDXL-style, built from small
configs with fresh random weights (torch.manual_seed) and saved as diffusers folders that
dato-generate also reads. Only the CLIP tokenizers are read from tests/fixtures/pipeline."""
import os

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
                       UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKENIZERS = os.path.join(REPO, "tests", "fixtures", "pipeline")

TEXT = dict(vocab_size=1514, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=1512, eos_token_id=1513, pad_token_id=1513)
VAE = dict(block_out_channels=[8, 16], down_block_types=["DownEncoderBlock2D"] * 2,
           up_block_types=["UpDecoderBlock2D"] * 2, layers_per_block=1, norm_num_groups=4, latent_channels=4)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                 set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
SD_UNET = dict(block_out_channels=[16, 16, 32, 32], layers_per_block=2, attention_head_dim=2, norm_num_groups=8,
               cross_attention_dim=32,
               down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
               up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
KINDS = {
    # kind: (unet config, text activation, prediction type)
    "sd1": (SD_UNET, "quick_gelu", "epsilon"),
    "sd2": (dict(SD_UNET, use_linear_projection=True), "gelu", "v_prediction"),
    "sdxl": (dict(block_out_channels=[16, 32, 32], layers_per_block=2, attention_head_dim=[2, 4, 4],
                  norm_num_groups=8, cross_attention_dim=64, transformer_layers_per_block=[1, 2, 1],
                  use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
                  projection_class_embeddings_input_dim=16 + 6 * 8,
                  down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                  up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"]), "quick_gelu", "epsilon"),
}

# dato's sampler name -> how a test sets it on the pipeline
SCHEDULERS = {
    "ddim": lambda c: DDIMScheduler.from_config(c),
    "pndm": lambda c: PNDMScheduler.from_config(c, skip_prk_steps=True),
    "dpmpp-2m": lambda c: DPMSolverMultistepScheduler.from_config(c),
    "euler": lambda c: EulerDiscreteScheduler.from_config(c),
    "euler-a": lambda c: EulerAncestralDiscreteScheduler.from_config(c),
}


def build(kind, folder, seed=0):
    """The pipeline of `kind`, saved to folder (float32, CPU)."""
    unet_config, act, prediction = KINDS[kind]
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_config, sample_size=16)
    vae = AutoencoderKL(**VAE)
    scheduler = DDIMScheduler(**SCHEDULER, prediction_type=prediction)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT, hidden_act=act))
    if kind == "sdxl":
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT, hidden_act="gelu", projection_dim=16))
        tokenizers = [CLIPTokenizer.from_pretrained(os.path.join(TOKENIZERS, "sdxl", t))
                      for t in ("tokenizer", "tokenizer_2")]
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                         tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], unet=unet,
                                         scheduler=scheduler)
    else:
        tokenizer = CLIPTokenizer.from_pretrained(os.path.join(TOKENIZERS, "sd15", "tokenizer"))
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.save_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe
