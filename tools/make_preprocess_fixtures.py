"""Reference outputs of the three FID preprocessing modes for tests/unit/test_preprocess.c.

Each case is a uint8 image drawn from a 32-bit LCG that the C test reproduces
(s = s * 1664525 + 1013904223 mod 2^32, pixel = s >> 24, row-major (H, W, C)); a grey case
draws (H, W) and repeats the channel, as PIL's convert("RGB") does. For each case and mode
the reference implementation maps it to a float32 (3, 299, 299) tensor:
  pytorch-fid  torchvision ToTensor (x / 255), F.interpolate(299, bilinear, align_corners=False), 2x - 1
               (pytorch_fid.inception.InceptionV3 with resize_input and normalize_input)
  tf           torch_fidelity.interpolate_compat_tensorflow.interpolate_bilinear_2d_like_tensorflow1x
               on [0, 255] floats (align_corners=False, method "slow"), then (x - 128) / 128
  clean        cleanfid.resize.make_resizer("PIL", False, "bicubic", (299, 299)) (PIL 'F' bicubic
               per channel, clipped to [0, 255]), then (x - 128) / 128 as clean-fid's InceptionV3W
Stored per case in <case>.safetensors: "index" (4096 flat output positions, F32, exact) and
"<mode>" (the outputs there, F32), with the full output's mean and max abs in the metadata
("<mode>.mean", "<mode>.max_abs", as %.17g) and the image size ("h", "w", "seed", "grey").

Needs: torch, numpy, Pillow, clean-fid and torch-fidelity (pip install clean-fid torch-fidelity --no-deps;
only their pure-Python resize code is used).
Usage: python3 tools/make_preprocess_fixtures.py [out_dir]   (default tests/fixtures/preprocess)
"""
import importlib.util
import os
import sys

import numpy as np
import PIL
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

from cleanfid.resize import make_resizer

OUT = 299
N_SAMPLES = 4096

# (name, h, w, seed, grey): Fashion-MNIST-like grey, small upscale, identity size, antialiased downscale.
CASES = [
    ("grey28", 28, 28, 1, True),
    ("rgb32x40", 32, 40, 2, False),
    ("rgb299", 299, 299, 3, False),
    ("rgb600x450", 600, 450, 4, False),
]


def load_tf_interpolate():
    # torch_fidelity/__init__ imports torchvision; load only the interpolation module.
    spec = importlib.util.find_spec("torch_fidelity")
    path = os.path.join(os.path.dirname(spec.origin), "interpolate_compat_tensorflow.py")
    mod_spec = importlib.util.spec_from_file_location("interpolate_compat_tensorflow", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod.interpolate_bilinear_2d_like_tensorflow1x


def lcg_bytes(n, seed):
    out = np.empty(n, dtype=np.uint8)
    s = seed & 0xFFFFFFFF
    for i in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = s >> 24
    return out


def make_image(h, w, seed, grey):
    if grey:
        g = lcg_bytes(h * w, seed).reshape(h, w)
        return np.asarray(PIL.Image.fromarray(g, mode="L").convert("RGB"))
    return lcg_bytes(h * w * 3, seed).reshape(h, w, 3)


def prep_pytorch_fid(img):
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None].to(torch.float32).div(255)
    x = F.interpolate(x, size=(OUT, OUT), mode="bilinear", align_corners=False)
    return (2 * x - 1)[0].numpy()


def prep_tf(img, tf_interpolate):
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None].to(torch.float32)
    x = tf_interpolate(x, size=(OUT, OUT), align_corners=False)
    return ((x - 128) / 128)[0].numpy()


def prep_clean(img):
    x = make_resizer("PIL", False, "bicubic", (OUT, OUT))(img)  # (299, 299, 3) float32 in [0, 255]
    x = torch.from_numpy(x.transpose(2, 0, 1).copy())
    return ((x - 128) / 128).numpy()


def main():
    # With one thread ATen resizes 3-channel images with its channels-last kernel, whose rounding
    # differs by an ulp; two threads select the generic kernel that dato reproduces bit for bit.
    torch.set_num_threads(2)
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/preprocess"
    os.makedirs(out_dir, exist_ok=True)
    tf_interpolate = load_tf_interpolate()
    rng = np.random.default_rng(20251124)
    for name, h, w, seed, grey in CASES:
        img = make_image(h, w, seed, grey)
        outs = {
            "pytorch-fid": prep_pytorch_fid(img),
            "tf": prep_tf(img, tf_interpolate),
            "clean": prep_clean(img),
        }
        index = np.sort(rng.choice(3 * OUT * OUT, size=N_SAMPLES, replace=False))
        tensors = {"index": index.astype(np.float32)}
        meta = {"h": str(h), "w": str(w), "seed": str(seed), "grey": "1" if grey else "0"}
        for mode, y in outs.items():
            assert y.shape == (3, OUT, OUT) and y.dtype == np.float32
            flat = y.reshape(-1)
            tensors[mode] = np.ascontiguousarray(flat[index])
            meta[mode + ".mean"] = "%.17g" % flat.astype(np.float64).mean()
            meta[mode + ".max_abs"] = "%.17g" % np.abs(flat).max()
        save_file(tensors, os.path.join(out_dir, name + ".safetensors"), metadata=meta)
        print(name, {k: meta[k + ".mean"] for k in outs})


if __name__ == "__main__":
    main()
