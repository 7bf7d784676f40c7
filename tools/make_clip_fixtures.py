"""Reference outputs for the CLIP score parity test (run once by hand; CI never runs it).

Builds two tiny seeded-random transformers CLIPModel folders, as torchmetrics' CLIPScore loads
them (CLIPModel.from_pretrained + CLIPProcessor.from_pretrained on the folder), and writes under
--out (default tests/fixtures/clip):

  tiny/        quick_gelu in both towers; text eos_token_id 2 (the legacy argmax-of-ids pooling
               of the hub's openai/clip-vit-* configs); vision 32 wide, 2 layers, patch 14 at 224
               (257 tokens); text 6 wide (2 heads of 3), 2 layers, projection_dim 16; weights F16 in one
               model.safetensors; the hub's preprocessor_config.json (shortest edge 224, center
               crop 224, OpenAI mean/std).
  tiny_gelu/   gelu in both towers; eos_token_id 49407 (first-eos pooling, transformers 5's
               default); vision 16 wide, patch 32 (50 tokens), layer_norm_eps 1e-6; text 4 wide;
               projection 12; weights BF16 in two shards + model.safetensors.index.json; transformers 5's
               processor_config.json layout (nested "image_processor"), shortest edge 240 and
               crop 224, mean = std = 0.5.
  Both folders: config.json saved by save_pretrained with "dtype": "float32" (the weights are
  rounded to F16/BF16 and stored so; transformers widens them to f32 at load, as the C side does),
  tokenizer_config.json and special_tokens_map.json copied from models/clip_tokenizer, and
  vocab.json / merges.txt as relative symlinks to models/clip_tokenizer (the real CLIP BPE
  vocabulary, 1.5 MB, is committed once). The text towers keep the full 49408-token vocabulary,
  which is why they are so narrow.

  images/grey28.png (28x28 grey), rgb64x48.png (H 64, W 48), rgb512.png (512x512): uint8 test
               images drawn from numpy's default_rng(2024) (noise for the small ones; 8x8 blocks of
               random colours, a 5-pixel checkerboard and a noise patch for the large one, so the
               PNG stays small while the antialiased downscale sees hard edges everywhere).
  captions.txt three captions, one per line; the third is longer than 77 tokens.
  io_<variant>.safetensors, for image i paired with caption i (i = 0, 1, 2):
    input_ids     (3, 77) I32  the processor's ids (padding=True, no truncation) cut to 77 as
                               torchmetrics does (the long caption loses its eos)
    pixel_fnv     (3,) I64     FNV-1a 64 of pixel_values[i] (3, 224, 224) f32 little-endian bytes
    pixel_window  (3, 3, 16, 16) F32  pixel_values[i][:, 104:120, 104:120]
    image_embeds  (3, P) F32   CLIPModel.get_image_features(pixel_values).pooler_output
    text_embeds   (3, P) F32   CLIPModel.get_text_features(input_ids, attention_mask).pooler_output
    score_raw     (3,) F32     torchmetrics' per-pair 100 * cos (_clip_score_update), unclamped
    score_pair    (3,) F32     CLIPScore on each pair alone: max(100 * cos, 0)
    score         (1,) F32     CLIPScore over the three pairs: max(mean of 100 * cos, 0)

Which image processor: transformers 5's CLIPImageProcessor is the torchvision backend
(TorchvisionBackend; the PIL one is CLIPImageProcessorPil), and CLIPProcessor.from_pretrained
picks it when torchvision is installed. On torch uint8 (C, H, W) tensors, as torchmetrics hands
them over: grey -> 3 channels by repetition, torchvision resize (bicubic, antialias=True), which
on a CPU keeps uint8 and runs ATen's integer antialiased resampler (int16 weights, horizontal
pass then vertical, each rounded to uint8), center crop, then (x - 255 mean) / (255 std) in f32.
The script checks a numpy transcription of exactly that against the processor, bit for bit, on
many sizes before writing anything (metrics/clip.c implements the same).

torchmetrics 1.9.0's CLIPScore fails on transformers 5 (get_*_features return a
BaseModelOutputWithPooling: "'BaseModelOutputWithPooling' object has no attribute 'norm'",
Lightning-AI/torchmetrics#3407, fixed upstream by #3408 after 1.9.0). The script first tries
CLIPScore(model_name_or_path=<folder>) (through a symlink whose name contains "openai", which
1.9.0 requires); when it fails that way it passes torchmetrics' documented callable form instead,
with the very CLIPModel.from_pretrained / CLIPProcessor.from_pretrained of the folder and an
adapter returning pooler_output, the upstream fix.

Everything runs on the CPU in float32 with fixed seeds; two runs give the same files, except
that the io files' __metadata__ may come in another order (the library writes it in hash order).
The script asserts that each variant has a negative pair and a positive mean, so the test sees
torchmetrics clamp the mean and not the pairs. Versions used: torch 2.15.0, torchvision
0.29.2, transformers 5.25.0, torchmetrics 1.9.0, numpy 2.4.6, Pillow 13.0.0, safetensors 0.8.0.

Usage: python3 tools/make_clip_fixtures.py [--out tests/fixtures/clip]
"""
import argparse
import json
import math
import os
import shutil
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import torchmetrics
import transformers
from torchmetrics.functional.multimodal.clip_score import _clip_score_update
from torchmetrics.multimodal.clip_score import CLIPScore
from transformers import CLIPConfig, CLIPModel, CLIPProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER = os.path.join(ROOT, "models", "clip_tokenizer")
L = 77
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]

CAPTIONS = [
    "a photo of a cat",
    "A grey sneaker on a white background, café style",
    " ".join(["a very long caption about a red dress, a black bag and two ankle boots"] * 7),
]

VARIANTS = {
    "tiny": dict(
        seed=2,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=224, patch_size=14, hidden_act="quick_gelu"),
        text=dict(vocab_size=49408, hidden_size=6, intermediate_size=12, num_hidden_layers=2,
                  num_attention_heads=2, max_position_embeddings=L, hidden_act="quick_gelu",
                  bos_token_id=49406, eos_token_id=2, pad_token_id=1),
        projection_dim=16, dtype=torch.float16, shard=None, processor_file="preprocessor_config.json",
        size=224, crop=224, mean=OPENAI_MEAN, std=OPENAI_STD),
    "tiny_gelu": dict(
        seed=2,
        vision=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                    image_size=224, patch_size=32, hidden_act="gelu", layer_norm_eps=1e-6),
        text=dict(vocab_size=49408, hidden_size=4, intermediate_size=8, num_hidden_layers=2,
                  num_attention_heads=2, max_position_embeddings=L, hidden_act="gelu",
                  bos_token_id=49406, eos_token_id=49407, pad_token_id=49407),
        projection_dim=12, dtype=torch.bfloat16, shard="800KB", processor_file="processor_config.json",
        size=240, crop=224, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
}


# ---- test images ------------------------------------------------------------------------------

def make_images():
    rng = np.random.default_rng(2024)
    grey = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    grey[8:20, 10:18] = 230  # a bright block: a Fashion-MNIST-like shape on noise
    small = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    blocks = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    big = np.repeat(np.repeat(blocks, 8, 0), 8, 1)  # 8x8 blocks of random colours
    y, x = np.mgrid[0:256, 0:256]
    big[256:, :256][(x // 5 + y // 5) % 2 == 1] = [250, 250, 20]  # a 5-pixel checkerboard
    big[400:464, 360:424] = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # a noise patch
    return [grey, small, big]


def to_chw_tensor(img):
    """An (H, W) or (H, W, 3) uint8 array as the (C, H, W) uint8 tensor torchmetrics takes."""
    t = torch.from_numpy(np.ascontiguousarray(img))
    return t[None] if t.ndim == 2 else t.permute(2, 0, 1).contiguous()


# ---- the processor, transcribed (what metrics/clip.c implements) ---------------------------------

def cubic_aa(x):  # ATen's HelperInterpCubic::aa_filter, Keys a = -0.5, in double
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2.0:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def int16_weights(n_in, n_out):
    """ATen's _compute_index_ranges_int16_weights (antialias, align_corners False)."""
    scale = n_in / n_out
    support = 2.0 * scale if scale >= 1.0 else 2.0
    taps = int(math.ceil(support)) * 2 + 1
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    rows, wt_max = [], 0.0
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        n = max(0, min(min(int(center + support + 0.5), n_in) - lo, taps))
        w = [cubic_aa((j + lo - center + 0.5) * inv) for j in range(n)]
        total = 0.0
        for v in w:
            total += v
        if total != 0.0:
            w = [v / total for v in w]
            wt_max = max([wt_max] + w)
        rows.append((lo, w))
    prec = 0
    while prec < 22 and int(0.5 + wt_max * (1 << (prec + 1))) < (1 << 15):
        prec += 1
    q = [(lo, [int(-0.5 + v * (1 << prec)) if v * (1 << prec) < 0 else int(0.5 + v * (1 << prec)) for v in w])
         for lo, w in rows]
    return q, prec


def resample_axis(img, axis, n_out):
    if img.shape[axis] == n_out:
        return img
    q, prec = int16_weights(img.shape[axis], n_out)
    src = np.moveaxis(img, axis, 0).astype(np.int64)
    out = np.empty((n_out,) + src.shape[1:], np.int64)
    for i, (lo, w) in enumerate(q):
        acc = np.full(src.shape[1:], 1 << (prec - 1), np.int64)
        for j, wj in enumerate(w):
            acc += src[lo + j] * wj
        out[i] = np.clip(acc >> prec, 0, 255)
    return np.moveaxis(out, 0, axis)


def transcribed_processor(chw, size, crop, mean, std, rescale):
    x = chw.numpy()
    if x.shape[0] == 1:
        x = np.repeat(x, 3, 0)
    _, h, w = x.shape
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    nh, nw = (new_long, size) if w <= h else (size, new_long)
    y = resample_axis(resample_axis(x, 2, nw), 1, nh)  # horizontal, then vertical
    top, left = int((nh - crop) / 2.0), int((nw - crop) / 2.0)
    y = y[:, top:top + crop, left:left + crop].astype(np.float32)
    m = (np.array(mean, np.float32) * np.float32(1.0 / rescale)).astype(np.float32)[:, None, None]
    s = (np.array(std, np.float32) * np.float32(1.0 / rescale)).astype(np.float32)[:, None, None]
    return ((y - m).astype(np.float32) / s).astype(np.float32)


def check_transcription(processor, v):
    ip = processor.image_processor
    assert type(ip).__name__ == "CLIPImageProcessor" and ip.backend == "torchvision", type(ip)
    rng = np.random.default_rng(5)
    shapes = [(1, 28, 28), (3, 64, 48), (3, 48, 64), (3, 512, 512), (3, 300, 223), (3, 225, 224), (3, 7, 5),
              (1, 100, 37), (3, 224, 224), (3, 224, 500), (3, 1000, 333), (3, 897, 1203)]
    for shape in shapes:
        x = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8))
        ref = processor(images=[x], return_tensors="pt")["pixel_values"][0].numpy()
        got = transcribed_processor(x, v["size"], v["crop"], v["mean"], v["std"], ip.rescale_factor)
        assert ref.shape == got.shape and np.array_equal(ref, got), (shape, np.abs(ref - got).max())


# ---- model folders --------------------------------------------------------------------------------

def seeded_init(model, seed):
    """Every parameter from one generator, in named_parameters order: matrices and kernels
    randn / sqrt(fan_in), embeddings randn, LayerNorm gammas 1 + 0.1 randn, biases 0.05 randn."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name == "logit_scale":
                continue
            if name.endswith(("token_embedding.weight", "position_embedding.weight", "class_embedding")):
                p.copy_(r)
            elif "norm" in name and name.endswith(".weight"):
                p.copy_(1 + 0.1 * r)
            elif name.endswith(".bias"):
                p.copy_(0.05 * r)
            else:
                p.copy_(r / math.sqrt(p[0].numel()))


def write_folder(folder, v):
    if os.path.lexists(folder):
        shutil.rmtree(folder)
    cfg = CLIPConfig(text_config=v["text"], vision_config=v["vision"], projection_dim=v["projection_dim"])
    model = CLIPModel(cfg).eval()
    seeded_init(model, v["seed"])
    with torch.no_grad():  # round to the stored dtype; the model stays f32
        for p in model.parameters():
            p.copy_(p.to(v["dtype"]).float())
    kw = {"max_shard_size": v["shard"]} if v["shard"] else {}
    model.save_pretrained(folder, **kw)
    # store every tensor in the narrow dtype (config.json keeps "dtype": "float32")
    for f in os.listdir(folder):
        if f.endswith(".safetensors"):
            path = os.path.join(folder, f)
            sd = load_file(path)
            save_file({k: t.to(v["dtype"]) for k, t in sd.items()}, path, metadata={"format": "pt"})
    ip = dict(crop_size={"height": v["crop"], "width": v["crop"]}, do_center_crop=True, do_convert_rgb=True,
              do_normalize=True, do_rescale=True, do_resize=True, image_mean=v["mean"], image_std=v["std"],
              image_processor_type="CLIPImageProcessor", resample=3, rescale_factor=1 / 255,
              size={"shortest_edge": v["size"]})
    if v["processor_file"] == "preprocessor_config.json":
        body = ip
    else:
        body = {"image_processor": ip, "processor_class": "CLIPProcessor"}
    with open(os.path.join(folder, v["processor_file"]), "w") as f:
        json.dump(body, f, indent=2)
        f.write("\n")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(TOKENIZER, name), os.path.join(folder, name))
    for name in ("vocab.json", "merges.txt"):
        os.symlink(os.path.relpath(os.path.join(TOKENIZER, name), folder), os.path.join(folder, name))
    return model


class FeaturesAsTensors(torch.nn.Module):
    """What torchmetrics 1.9.0 expects of a model: get_*_features returning tensors."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, pixel_values):
        return self.model.get_image_features(pixel_values=pixel_values).pooler_output

    def get_text_features(self, input_ids, attention_mask=None):
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output


def clip_score_metric(folder, tmp, model, processor):
    """CLIPScore on the folder as torchmetrics loads it; the callable form when 1.9.0 + transformers 5 fail."""
    link = os.path.join(tmp, "openai-" + os.path.basename(folder))  # 1.9.0 accepts only "openai" paths
    os.symlink(os.path.abspath(folder), link)
    try:
        CLIPScore(model_name_or_path=link)(to_chw_tensor(np.zeros((8, 8), np.uint8)), "x")
        return lambda: CLIPScore(model_name_or_path=link)
    except AttributeError as e:
        assert "norm" in str(e), e
        print("  CLIPScore(model_name_or_path=<folder>) fails on transformers 5 (torchmetrics#3407): callable form")
    return lambda: CLIPScore(model_name_or_path=lambda: (FeaturesAsTensors(model), processor))


def fnv1a64(arr):
    h = 0xCBF29CE484222325
    for b in np.ascontiguousarray(arr, dtype="<f4").tobytes():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h - (1 << 64) if h >= (1 << 63) else h  # as int64


def run_variant(out, name, v, images):
    folder = os.path.join(out, name)
    written = write_folder(folder, v)
    model = CLIPModel.from_pretrained(folder).eval()  # exactly torchmetrics' loading
    processor = CLIPProcessor.from_pretrained(folder)
    for (k, p), q in zip(model.state_dict().items(), written.state_dict().values()):
        assert p.dtype == torch.float32 and torch.equal(p, q), k
    check_transcription(processor, v)

    chw = [to_chw_tensor(im) for im in images]
    with torch.no_grad():
        pv = processor(images=chw, return_tensors="pt", padding=True)["pixel_values"]  # as torchmetrics
        for i, x in enumerate(chw):
            assert torch.equal(pv[i], processor(images=[x], return_tensors="pt")["pixel_values"][0])
        image_embeds = model.get_image_features(pixel_values=pv).pooler_output
        tok = processor(text=CAPTIONS, return_tensors="pt", padding=True)
        assert tok["input_ids"].shape[1] > L, "the long caption must exceed 77 tokens"
        ids, mask = tok["input_ids"][:, :L], tok["attention_mask"][:, :L]
        text_embeds = model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output

        raw, _ = _clip_score_update(chw, CAPTIONS, FeaturesAsTensors(model), processor)
        with tempfile.TemporaryDirectory() as tmp:
            make_metric = clip_score_metric(folder, tmp, model, processor)
            pair = torch.stack([make_metric()(chw[i], CAPTIONS[i]) for i in range(3)])
            score = make_metric()(chw, CAPTIONS).reshape(1)
    cos = torch.nn.functional.cosine_similarity(image_embeds, text_embeds, dim=-1)
    assert torch.allclose(100 * cos, raw, rtol=1e-5, atol=1e-4), (cos, raw)
    assert torch.allclose(pair, raw.clamp(min=0)) and torch.allclose(score, raw.mean().clamp(min=0).reshape(1))
    assert (raw < 0).any() and raw.mean() > 0, f"{name}: want a negative pair and a positive mean, got {raw}"

    io = {
        "input_ids": ids.to(torch.int32).contiguous(),
        "pixel_fnv": torch.tensor([fnv1a64(pv[i].numpy()) for i in range(3)], dtype=torch.int64),
        "pixel_window": pv[:, :, 104:120, 104:120].contiguous(),
        "image_embeds": image_embeds.float().contiguous(),
        "text_embeds": text_embeds.float().contiguous(),
        "score_raw": raw.float().contiguous(),
        "score_pair": pair.float().contiguous(),
        "score": score.float().contiguous(),
    }
    meta = {"variant": name, "transformers": transformers.__version__, "torchmetrics": torchmetrics.__version__,
            "torch": torch.__version__, "image_processor": type(processor.image_processor).__name__ + " (torchvision)"}
    save_file(io, os.path.join(out, f"io_{name}.safetensors"), metadata=meta)
    print(f"{name}: score_raw {raw.tolist()} score {score.item():.6f}, P {image_embeds.shape[1]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "clip"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    images = make_images()
    for im, fname in zip(images, ("grey28.png", "rgb64x48.png", "rgb512.png")):
        Image.fromarray(im).save(os.path.join(args.out, "images", fname), optimize=True)
        back = np.array(Image.open(os.path.join(args.out, "images", fname)))
        assert np.array_equal(back, im)
    with open(os.path.join(args.out, "captions.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(CAPTIONS) + "\n")
    for name, v in VARIANTS.items():
        run_variant(args.out, name, v, images)
    total = 0
    for dirpath, _, files in os.walk(args.out):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    print(f"fixtures: {total / 1e6:.2f} MB (symlinks not counted)")
    assert total < 2_000_000


if __name__ == "__main__":
    main()
