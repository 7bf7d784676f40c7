"""End-to-end reference runs of diffusers' StableDiffusionPipeline and StableDiffusionXLPipeline with tiny
random components, for the dato C pipeline tests (text -> tokens -> CLIP -> guided DDIM loop -> VAE -> image).

Writes, under out_dir (default tests/fixtures/pipeline):
  sd15/                  a complete diffusers folder (model_index.json, unet/, vae/, text_encoder/,
                         tokenizer/, scheduler/), loadable with StableDiffusionPipeline.from_pretrained
  sdxl/                  the same for StableDiffusionXLPipeline (adds text_encoder_2/, tokenizer_2/)
  reference/<model>_<case>.json         prompts, negative prompts, call arguments, token ids, timesteps
  reference/<model>_<case>.safetensors  every intermediate the C side needs to localize a mismatch
  README.md is written by hand (see it for tensor names and the semantics the C side must reproduce).

The tokenizers use a small CLIP vocabulary: the first N_MERGES merges of OpenAI's BPE file
(bpe_simple_vocab_16e6.txt.gz from open_clip_torch), built the way HF's CLIP vocab.json is built, so ids
of words covered by those merges equal the real SD ids except <|startoftext|>/<|endoftext|>.

Everything runs on the CPU in float32 with fixed seeds, one thread, deterministic algorithms.
The script reloads each folder with from_pretrained and asserts that the reload reproduces every stored
tensor bit for bit, and that the images are not flat.

Requires: torch, diffusers, transformers, safetensors, and open_clip_torch (pip install open_clip_torch
--no-deps: only its BPE file is read, the package is never imported).

Usage: python3 tools/make_pipeline_fixtures.py [--out tests/fixtures/pipeline]
"""
import argparse
import gzip
import importlib.util
import json
import os
import shutil
import tempfile

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

import diffusers
import transformers
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

N_MERGES = 1000
MAX_LENGTH = 77
STEPS = 10
GUIDANCE = 7.5
BATCH = 3

PROMPTS = [
    "a photo of a cat",
    "A painting of an old house by the sea, 4k!",
    "red car",
]
NEGATIVE_PROMPTS = [
    "blurry",
    "low quality, bad art",
    "a photo of a dog, " * 12,  # over 75 tokens: exercises truncation to 77 with eos kept last
]

# SD1.5's scheduler values (runwayml/stable-diffusion-v1-5) on a DDIMScheduler.
SD15_SCHEDULER = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
    timestep_spacing="leading",
)
# SDXL base's scheduler_config.json values (it ships EulerDiscreteScheduler) that DDIM shares;
# sample_max_value 1.0 only matters with thresholding, which is off.
SDXL_SCHEDULER = dict(SD15_SCHEDULER, sample_max_value=1.0)


def bytes_to_unicode():
    """OpenAI CLIP's byte -> printable unicode table, in its insertion order (that order gives the ids)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def build_vocab_files(raw_dir):
    """Writes vocab.json and merges.txt the way HF's CLIP files are built from the BPE file."""
    spec = importlib.util.find_spec("open_clip")
    assert spec is not None, "pip install open_clip_torch --no-deps (only its BPE file is used)"
    bpe_path = os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = lines[1:1 + N_MERGES]  # line 0 is the "#version" header
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == len(tokens) == 512 + N_MERGES + 2, "duplicate vocab entry"
    os.makedirs(raw_dir, exist_ok=True)
    with open(os.path.join(raw_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(raw_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return len(vocab)


def make_tokenizer(raw_dir, pad_token):
    return CLIPTokenizer.from_pretrained(raw_dir, pad_token=pad_token, model_max_length=MAX_LENGTH)


def finish_tokenizer_folder(folder, raw_dir, tokenizer):
    """transformers 5 saves tokenizer.json + tokenizer_config.json; SD folders (and the C tokenizer) hold
    vocab.json + merges.txt + special_tokens_map.json instead, so write those, drop tokenizer.json (a 150 KB
    copy; CLIPTokenizer rebuilds it from vocab.json + merges.txt) and the loader-state config keys."""
    os.remove(os.path.join(folder, "tokenizer.json"))
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(raw_dir, name), os.path.join(folder, name))
    special = {k: getattr(tokenizer, k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2, sort_keys=True)
        f.write("\n")
    config_path = os.path.join(folder, "tokenizer_config.json")
    with open(config_path) as f:
        config = json.load(f)
    for key in ("is_local", "local_files_only"):
        config.pop(key, None)
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def text_config(vocab_size, act, projection_dim=None):
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        hidden_act=act,
        layer_norm_eps=1e-5,
        projection_dim=projection_dim if projection_dim is not None else 32,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )


def make_vae(scaling_factor):
    torch.manual_seed(0)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=4,
        sample_size=16,
        scaling_factor=scaling_factor,
    )


def eval_all(pipe):
    """from_pretrained returns modules in eval mode; built ones start in train mode (SDPA then differs in the
    last bit), so match the reloaded pipeline."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    return pipe.to(torch.float32)


def perturb_norms(model, seed):
    """Norm gammas/betas near (1, 0) instead of exactly (1, 0), so a C kernel that ignores them fails."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.GroupNorm, torch.nn.LayerNorm)) and module.weight is not None:
                module.weight.add_(0.1 * torch.randn(module.weight.shape, generator=g))
                module.bias.add_(0.1 * torch.randn(module.bias.shape, generator=g))


def build_sd15(vocab_size, raw_dir):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=2,
        cross_attention_dim=32,
    )
    perturb_norms(unet, 1)
    vae = make_vae(0.18215)
    perturb_norms(vae, 2)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(text_config(vocab_size, "quick_gelu"))
    perturb_norms(text_encoder, 3)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=make_tokenizer(raw_dir, "<|endoftext|>"),
        unet=unet,
        scheduler=DDIMScheduler(**SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return eval_all(pipe)


def build_sdxl(vocab_size, raw_dir):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=(2, 4),
        transformer_layers_per_block=(1, 2),
        use_linear_projection=True,
        cross_attention_dim=64,  # text_encoder hidden 32 + text_encoder_2 hidden 32
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=16 + 6 * 8,  # pooled projection_dim + 6 time ids x 8
    )
    perturb_norms(unet, 11)
    vae = make_vae(0.13025)
    perturb_norms(vae, 12)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(text_config(vocab_size, "quick_gelu"))
    perturb_norms(text_encoder, 13)
    torch.manual_seed(1)
    text_encoder_2 = CLIPTextModelWithProjection(text_config(vocab_size, "gelu", projection_dim=16))
    perturb_norms(text_encoder_2, 14)
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=make_tokenizer(raw_dir, "<|endoftext|>"),
        tokenizer_2=make_tokenizer(raw_dir, "!"),
        unet=unet,
        scheduler=DDIMScheduler(**SDXL_SCHEDULER),
        add_watermarker=False,
    )
    return eval_all(pipe)


def initial_latents(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((BATCH, 4, 8, 8), generator=g, dtype=torch.float32)


def token_ids(tokenizer, texts):
    return tokenizer(texts, padding="max_length", max_length=MAX_LENGTH, truncation=True,
                     return_tensors="pt").input_ids.to(torch.int32)


def run_case(pipe, is_xl, negative, latents_in):
    """One pipeline call (twice: "latent" and "np") plus encode_prompt; returns (tensors, info)."""
    unet_outputs = []
    hook = pipe.unet.register_forward_hook(lambda m, args, out: unet_outputs.append(out[0].detach().clone()))
    step_latents = []

    def on_step_end(p, i, t, kwargs):
        step_latents.append(kwargs["latents"].detach().clone())
        return {}

    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    call = dict(prompt=PROMPTS, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                height=size, width=size)
    final_latents = pipe(**call, latents=latents_in.clone(), output_type="latent",
                         callback_on_step_end=on_step_end).images
    hook.remove()
    images = pipe(**call, latents=latents_in.clone(), output_type="np").images  # (B, H, W, 3) float32
    images_u8 = (images * 255).round().astype("uint8")  # diffusers numpy_to_pil, round half to even
    pil = pipe(**call, latents=latents_in.clone(), output_type="pil").images
    assert all(np.array_equal(np.asarray(p), u) for p, u in zip(pil, images_u8))
    assert torch.equal(step_latents[-1], final_latents)

    tensors = {
        "latents_in": latents_in,
        "latents_out": final_latents,
        "step_latents": torch.stack(step_latents),  # (STEPS, B, 4, h, w): latents after each scheduler step
        "unet_out": torch.stack(unet_outputs),  # (STEPS, 2B, 4, h, w): rows [uncond x B, cond x B]
        "image": torch.from_numpy(np.ascontiguousarray(images)),
        "image_u8": torch.from_numpy(np.ascontiguousarray(images_u8)),
        "timesteps": pipe.scheduler.timesteps.to(torch.int32),
    }
    negative_texts = [""] * BATCH if negative is None else ([negative] * BATCH if isinstance(negative, str)
                                                                else list(negative))
    with torch.no_grad():
        if is_xl:
            pe, npe, pooled, npooled = pipe.encode_prompt(
                PROMPTS, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=True,
                negative_prompt=negative)
            tensors.update(
                input_ids=token_ids(pipe.tokenizer, PROMPTS),
                input_ids_2=token_ids(pipe.tokenizer_2, PROMPTS),
                pooled_prompt_embeds=pooled,
                negative_pooled_prompt_embeds=npooled,
                add_time_ids=pipe._get_add_time_ids(
                    (size, size), (0, 0), (size, size), dtype=torch.float32,
                    text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim),
            )
        else:
            pe, npe = pipe.encode_prompt(PROMPTS, "cpu", 1, True, negative_prompt=negative)
            tensors.update(input_ids=token_ids(pipe.tokenizer, PROMPTS),
                           uncond_input_ids=token_ids(pipe.tokenizer, negative_texts))
    zeroed = is_xl and negative is None and pipe.config.force_zeros_for_empty_prompt
    if not zeroed:  # zeroed negatives are never tokenized
        tensors["uncond_input_ids"] = token_ids(pipe.tokenizer, negative_texts)
        if is_xl:
            tensors["uncond_input_ids_2"] = token_ids(pipe.tokenizer_2, negative_texts)
    tensors.update(prompt_embeds=pe, negative_prompt_embeds=npe)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    info = dict(
        prompt=PROMPTS,
        negative_prompt=negative,
        negative_prompt_as_encoded=None if zeroed else negative_texts,
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        eta=0.0,
        height=size,
        width=size,
        init_noise_sigma=float(pipe.scheduler.init_noise_sigma),
        vae_scaling_factor=pipe.vae.config.scaling_factor,
        timesteps=tensors["timesteps"].tolist(),
    )
    if is_xl:
        info.update(force_zeros_for_empty_prompt=pipe.config.force_zeros_for_empty_prompt,
                    add_time_ids=tensors["add_time_ids"].tolist())
    if negative is NEGATIVE_PROMPTS:
        truncated = tensors["uncond_input_ids"][2]
        assert truncated[-1] == pipe.tokenizer.eos_token_id and pipe.tokenizer.eos_token_id not in truncated[:-1]
    for name in ("input_ids", "input_ids_2", "uncond_input_ids", "uncond_input_ids_2"):
        if name in tensors:
            info[name] = tensors[name].tolist()
    return tensors, info


def check_semantics(name, pipe, is_xl, t):
    """Recomputes the stored tensors from the documented rules (README), so the README is tested."""
    with torch.no_grad():
        def encode(encoder, ids, penultimate):
            out = encoder(ids.long(), output_hidden_states=True)
            last_ln = getattr(encoder, "text_model", encoder).final_layer_norm(out.hidden_states[-1])
            context = out.hidden_states[-2] if penultimate else last_ln
            eos_pos = (ids == encoder.config.eos_token_id).int().argmax(-1)  # first <|endoftext|>
            return context, last_ln[torch.arange(ids.shape[0]), eos_pos]

        if is_xl:
            c1, _ = encode(pipe.text_encoder, t["input_ids"], True)
            c2, pooled_ln = encode(pipe.text_encoder_2, t["input_ids_2"], True)
            assert torch.allclose(torch.cat([c1, c2], -1), t["prompt_embeds"], atol=1e-6), name
            assert torch.allclose(pipe.text_encoder_2.text_projection(pooled_ln), t["pooled_prompt_embeds"],
                                  atol=1e-6), name
            if "uncond_input_ids" in t:
                c1, _ = encode(pipe.text_encoder, t["uncond_input_ids"], True)
                c2, pooled_ln = encode(pipe.text_encoder_2, t["uncond_input_ids_2"], True)
                assert torch.allclose(torch.cat([c1, c2], -1), t["negative_prompt_embeds"], atol=1e-6), name
                assert torch.allclose(pipe.text_encoder_2.text_projection(pooled_ln),
                                      t["negative_pooled_prompt_embeds"], atol=1e-6), name
        else:
            for ids, embeds in (("input_ids", "prompt_embeds"), ("uncond_input_ids", "negative_prompt_embeds")):
                assert torch.allclose(encode(pipe.text_encoder, t[ids], False)[0], t[embeds], atol=1e-6), name

        # Guided DDIM (eta 0) from the stored UNet outputs, in float64.
        alphas = pipe.scheduler.alphas_cumprod.double()
        latents = t["latents_in"].double() * pipe.scheduler.init_noise_sigma
        step = 1000 // STEPS
        for i, timestep in enumerate(t["timesteps"].tolist()):
            uncond, cond = t["unet_out"][i].double().chunk(2)
            eps = uncond + GUIDANCE * (cond - uncond)
            a = alphas[timestep]
            a_prev = alphas[timestep - step] if timestep - step >= 0 else alphas[0]
            x0 = (latents - (1 - a).sqrt() * eps) / a.sqrt()
            latents = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
            err = (latents - t["step_latents"][i].double()).abs().max().item()
            assert err < 1e-4 * (1 + latents.abs().max().item()), f"{name}: step {i} err {err}"
            latents = t["step_latents"][i].double()

        decoded = pipe.vae.decode(t["latents_out"] / pipe.vae.config.scaling_factor).sample
        image = (decoded / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
        assert torch.allclose(image, t["image"], atol=1e-6), name


def check_image(name, tensors):
    image = tensors["image"]
    assert torch.isfinite(image).all(), name
    per_image_std = image.flatten(1).std(dim=1)
    clamped = ((image <= 0) | (image >= 1)).float().mean().item()
    print(f"  {name}: image std per sample {[round(s, 3) for s in per_image_std.tolist()]}, "
          f"clamped fraction {clamped:.3f}, latents_out abs max {tensors['latents_out'].abs().max():.3f}")
    assert per_image_std.min() > 0.03, f"{name}: flat image"
    assert clamped < 0.25, f"{name}: image mostly clamped"
    for a in range(BATCH):
        for b in range(a + 1, BATCH):
            diff = (tensors["image_u8"][a].int() - tensors["image_u8"][b].int()).abs().max().item()
            assert diff > 10, f"{name}: prompts {a} and {b} give the same image"


CASES = {
    # SD1.5: negative_prompt None encodes "" (identical to passing "").
    "sd15": {"negative": NEGATIVE_PROMPTS, "empty": None},
    # SDXL: None zeroes the negative embeddings (force_zeros_for_empty_prompt); "" encodes "".
    "sdxl": {"negative": NEGATIVE_PROMPTS, "empty": "", "zeros": None},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/pipeline")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    diffusers.utils.logging.disable_progress_bar()

    ref_dir = os.path.join(args.out, "reference")
    os.makedirs(ref_dir, exist_ok=True)
    raw_dir = tempfile.mkdtemp(prefix="clip_vocab_")
    vocab_size = build_vocab_files(raw_dir)
    print(f"vocab: {vocab_size} tokens ({N_MERGES} merges)")

    builders = {"sd15": (build_sd15, StableDiffusionPipeline, False, 100),
                "sdxl": (build_sdxl, StableDiffusionXLPipeline, True, 200)}
    versions = dict(torch=torch.__version__, diffusers=diffusers.__version__,
                    transformers=transformers.__version__, numpy=np.__version__)
    for model, (build, cls, is_xl, seed) in builders.items():
        print(model)
        folder = os.path.join(args.out, model)
        shutil.rmtree(folder, ignore_errors=True)
        pipe = build(vocab_size, raw_dir)
        pipe.set_progress_bar_config(disable=True)
        pipe.save_pretrained(folder, safe_serialization=True)
        for sub in ("tokenizer", "tokenizer_2") if is_xl else ("tokenizer",):
            finish_tokenizer_folder(os.path.join(folder, sub), raw_dir, getattr(pipe, sub))
        latents_in = initial_latents(seed)

        results = {}
        for case, negative in CASES[model].items():
            tensors, info = run_case(pipe, is_xl, negative, latents_in)
            check_image(f"{model}_{case}", tensors)
            check_semantics(f"{model}_{case}", pipe, is_xl, tensors)
            info.update(model=model, case=case, folder=model, versions=versions)
            results[case] = (tensors, info)
            save_file(tensors, os.path.join(ref_dir, f"{model}_{case}.safetensors"))
            with open(os.path.join(ref_dir, f"{model}_{case}.json"), "w", encoding="utf-8") as f:
                json.dump(info, f, indent=1, ensure_ascii=False)
                f.write("\n")

        # The cases must differ where their semantics differ.
        base = results["negative"][0]["image_u8"].int()
        for case in CASES[model]:
            if case != "negative":
                assert (results[case][0]["image_u8"].int() - base).abs().max() > 10, f"{model}_{case}"
        if is_xl:
            assert results["zeros"][0]["negative_prompt_embeds"].abs().max() == 0
            assert results["empty"][0]["negative_prompt_embeds"].abs().max() > 0
        else:  # None and [""] * B must be the same request (a bare "" with a list of prompts is a TypeError)
            tensors, _ = run_case(pipe, is_xl, [""] * BATCH, latents_in)
            assert torch.equal(tensors["image"], results["empty"][0]["image"])

        # Reload the folder from disk: every stored tensor must come back bit for bit.
        reloaded = cls.from_pretrained(folder, dtype=torch.float32)
        reloaded.set_progress_bar_config(disable=True)
        for case, negative in CASES[model].items():
            tensors, _ = run_case(reloaded, is_xl, negative, latents_in)
            for name, ref in results[case][0].items():
                assert torch.equal(tensors[name], ref), f"{model}_{case}: reload changes {name}"
        # The saved tokenizer files must tokenize like the in-memory tokenizer, beyond the stored prompts too.
        texts = PROMPTS + NEGATIVE_PROMPTS + ["", "Hello,   WORLD!! 1234 naïve café <|endoftext|> x"]
        for sub in ("tokenizer", "tokenizer_2") if is_xl else ("tokenizer",):
            saved, used = getattr(reloaded, sub), getattr(pipe, sub)
            assert saved.pad_token == used.pad_token and saved.model_max_length == MAX_LENGTH, sub
            assert torch.equal(token_ids(saved, texts), token_ids(used, texts)), sub
        print(f"  reload from {folder}: identical")
    shutil.rmtree(raw_dir)

    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(args.out) for f in fs)
    print(f"total size {total / 1e6:.2f} MB")
    assert total < 5e6, "fixtures grew past 5 MB"


if __name__ == "__main__":
    main()
