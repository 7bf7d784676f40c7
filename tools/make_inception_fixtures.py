"""Reference features for the Inception-v3 parity test (run once by hand; CI never runs it).

Fills every tensor of pytorch-fid's InceptionV3 (output_blocks=[3], resize_input=False,
normalize_input=False, eval mode) from a seeded integer hash that tests/parity/
test_inception_parity.c implements identically, runs a batch of synthetic [-1, 1] images made
by the same hash, and writes under --out (default tests/fixtures/inception):
  features.safetensors   features (B, 2048) F32: the pool_3 output; weight_seed, image_seed,
                         batch (I64, shape [1]) so the C test regenerates weights and images
  truncated.pth          torch.save of a truncated state dict: Conv2d_1a_3x3's five tensors and
                         num_batches_tracked, plus fc.bias; the C test loads it through
                         engine/io/ckpt.h and expects the next unit to be reported missing
The full weights (95 MB) are not stored: the C test regenerates them and writes a safetensors
file in a temp dir, which exercises the same loader path the real weights take.

The hash (uint32 arithmetic, wrapping): for tensor index i in state-dict order (fc.* and
num_batches_tracked skipped; 5 tensors per unit: conv.weight, bn.weight, bn.bias,
bn.running_mean, bn.running_var) and element k,
  h = seed ^ (i * 0x9E3779B9) ^ (k * 0x85EBCA6B); h ^= h >> 16; h *= 0x7FEB352D;
  h ^= h >> 15; h *= 0x846CA68B; h ^= h >> 16;  u = (h >> 8) / 2^24;  v = 2u - 1 in [-1, 1)
and per kind: conv.weight v*sqrt(6/fan_in) (He variance), bn.weight 1 + 0.2v, bn.bias 0.1v,
running_mean 0.1v, running_var 1 + 0.5v. Image b's pixel k: the hash with seed image_seed,
i = b, as v (uniform in [-1, 1)).

Usage: pip install pytorch-fid==0.3.0 --no-deps; python3 tools/make_inception_fixtures.py
"""
import argparse
import os

import numpy as np
import torch
from safetensors.torch import save_file
import pytorch_fid.inception
from pytorch_fid.inception import InceptionV3

WEIGHT_SEED = 1234
IMAGE_SEED = 99
BATCH = 3
SIZE = 299


def hash_uniform(seed, i, n):
    """v in [-1, 1) for elements k = 0..n-1 of tensor i."""
    k = np.arange(n, dtype=np.uint32)
    h = np.uint32(seed) ^ np.uint32((i * 0x9E3779B9) & 0xFFFFFFFF) ^ (k * np.uint32(0x85EBCA6B))
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x7FEB352D)
    h ^= h >> np.uint32(15)
    h *= np.uint32(0x846CA68B)
    h ^= h >> np.uint32(16)
    u = (h >> np.uint32(8)).astype(np.float64) / float(1 << 24)
    return 2.0 * u - 1.0


def seeded_value(kind, i, shape, seed):
    n = int(np.prod(shape))
    v = hash_uniform(seed, i, n)
    if kind == "conv.weight":
        fan_in = shape[1] * shape[2] * shape[3]
        x = v * np.sqrt(6.0 / fan_in)
    elif kind == "bn.weight":
        x = 1.0 + 0.2 * v
    elif kind in ("bn.bias", "bn.running_mean"):
        x = 0.1 * v
    elif kind == "bn.running_var":
        x = 1.0 + 0.5 * v
    else:
        raise ValueError(kind)
    return torch.from_numpy(x.astype(np.float32).reshape(shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/inception")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    # the .pth names: torchvision's Inception3 as pytorch-fid builds it (1008 classes, no aux)
    import torchvision
    template = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    names = [k for k in template if not k.endswith("num_batches_tracked") and not k.startswith("fc.")]
    assert len(names) == 94 * 5, len(names)
    kinds = ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    seeded = dict(template)
    for i, name in enumerate(names):
        assert name.endswith(kinds[i % 5]), (name, kinds[i % 5])
        seeded[name] = seeded_value(kinds[i % 5], i, tuple(template[name].shape), WEIGHT_SEED)
    seeded["fc.weight"] = torch.zeros(1008, 2048)
    seeded["fc.bias"] = torch.zeros(1008)
    # fid_inception_v3() downloads the real weights and loads them strictly: hand it these instead
    pytorch_fid.inception.load_state_dict_from_url = lambda *a, **k: seeded
    model = InceptionV3(output_blocks=[3], resize_input=False, normalize_input=False).eval()
    print("first names:", names[:2], "last:", names[-1])

    images = np.stack([hash_uniform(IMAGE_SEED, b, 3 * SIZE * SIZE) for b in range(BATCH)])
    x = torch.from_numpy(images.astype(np.float32).reshape(BATCH, 3, SIZE, SIZE))
    with torch.no_grad():
        feats = model(x)[0].reshape(BATCH, 2048).contiguous()
    print("features: mean %.4f std %.4f max %.4f" % (feats.mean(), feats.std(), feats.max()))

    os.makedirs(args.out, exist_ok=True)
    save_file({"features": feats,
               "weight_seed": torch.tensor([WEIGHT_SEED], dtype=torch.int64),
               "image_seed": torch.tensor([IMAGE_SEED], dtype=torch.int64),
               "batch": torch.tensor([BATCH], dtype=torch.int64)},
              os.path.join(args.out, "features.safetensors"))
    trunc = {name: seeded[name].clone() for name in names[:5]}
    trunc["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
    trunc["fc.bias"] = torch.zeros(1008)
    torch.save(trunc, os.path.join(args.out, "truncated.pth"))


if __name__ == "__main__":
    main()
