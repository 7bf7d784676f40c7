"""Reference data for the feature-network parity test (tests/parity/test_featnet.c).

Builds tools/train_default.py's FeatNet with torch.manual_seed(0) weights and BatchNorm statistics
and affines set to non-trivial random values (so the fold done by export_featnet is really tested),
exports it with export_featnet (the very code that exports the shipped model), runs the UNFOLDED
net in eval mode on the first 16 Fashion-MNIST test images, and writes under --out
(default tests/fixtures/featnet):
  model/config.json, model/model.safetensors   the exported net (stages [8, 16] instead of the
                                               shipped [32, 64], to keep fc1 and the fixture small;
                                               the C side builds the net from config.json)
  reference.safetensors
    images    (16, 28, 28) U8   Fashion-MNIST test images 0..15
    labels    (16) I64          their classes
    inputs    (16, 1, 28, 28) F32  featnet_input(images)
    features  (16, 64) F32      fc1 output (pre-activation)
    logits    (16, 10) F32      fc2 output
    rgb       (4, 28, 28, 3) U8 random RGB images (with pure grey, black, white and primaries)
    rgb_luma  (4, 28, 28) U8    PIL's Image.convert("L") of each
Everything is float32 on the CPU with one thread. Usage: python3 tools/make_featnet_fixtures.py
"""
import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_default as td  # noqa: E402

FIXTURE_STAGES = [8, 16]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(td.ROOT, "tests", "fixtures", "featnet"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    td.FEATNET_STAGES = FIXTURE_STAGES  # FeatNet and export_featnet both read the module global
    net = td.FeatNet()
    with torch.no_grad():
        for m in net.convs:
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(c))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c))
                m.weight.copy_(1.0 + 0.4 * torch.randn(c))
                m.bias.copy_(0.2 * torch.randn(c))
    net.eval()
    td.export_featnet(net, os.path.join(args.out, "model"), 0.0)

    images, labels = td.load_split("test")
    images, labels = images[:16].contiguous(), labels[:16].contiguous()
    x = td.featnet_input(images)
    with torch.no_grad():
        features = net.features(x)
        logits = net(x)
        assert torch.allclose(net.fc2(torch.relu(features)), logits)

    gen = torch.Generator().manual_seed(1)
    rgb = torch.randint(0, 256, (4, 28, 28, 3), generator=gen, dtype=torch.uint8)
    rgb[0, 0, :4] = torch.tensor([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0]], dtype=torch.uint8)
    rgb[0, 1, :4] = torch.tensor([[0, 0, 255], [128, 128, 128], [1, 2, 3], [254, 253, 252]], dtype=torch.uint8)
    luma = np.stack([np.asarray(Image.fromarray(im.numpy(), "RGB").convert("L")) for im in rgb])

    save_file({"images": images, "labels": labels, "inputs": x.contiguous(), "features": features.contiguous(),
               "logits": logits.contiguous(), "rgb": rgb.contiguous(), "rgb_luma": torch.from_numpy(luma.copy())},
              os.path.join(args.out, "reference.safetensors"))
    print(f"wrote {args.out}: features max |.| {features.abs().max():.3f}, logits max |.| {logits.abs().max():.3f}")


if __name__ == "__main__":
    main()
