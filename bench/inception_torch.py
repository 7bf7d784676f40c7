#!/usr/bin/env python3
"""PyTorch side of the Inception benchmark: pytorch-fid's InceptionV3 (pool3, 2048-d) images/s.

Random weights (the architecture is what is timed), --dtype (float32 by default), eval,
inference_mode, 299x299 inputs in [-1, 1] (no resize inside the network, as dato's), --threads
torch threads or --device cuda (each timing ends with torch.cuda.synchronize). One JSON line.
  python3 bench/inception_torch.py --batch 16 --iters 3 --threads 2
  python3 bench/inception_torch.py --batch 64 --iters 5 --device cuda --dtype fp16
"""
import argparse
import json
import resource
import time

import pytorch_fid.inception
import torch
from pytorch_fid.inception import InceptionV3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    torch.manual_seed(0)
    # The FID network with its own random initialization instead of the downloaded weights (the
    # architecture is what is timed): the loader gets the model's current state dict back.
    real_load = torch.nn.Module.load_state_dict
    pytorch_fid.inception.load_state_dict_from_url = lambda *a, **k: None
    torch.nn.Module.load_state_dict = lambda self, sd, *a, **k: None if sd is None else real_load(self, sd, *a, **k)
    net = InceptionV3([3], resize_input=False, normalize_input=False).eval().to(device=device, dtype=dtype)
    torch.nn.Module.load_state_dict = real_load
    x = (torch.rand(args.batch, 3, 299, 299) * 2 - 1).to(device=device, dtype=dtype)
    best = 1e30
    with torch.inference_mode():
        for it in range(args.iters + 1):
            t0 = time.perf_counter()
            net(x)
            if cuda:
                torch.cuda.synchronize(device)  # kernels run asynchronously: wait for this batch
            s = time.perf_counter() - t0
            if it > 0:
                best = min(best, s)
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "device": args.device, "dtype": args.dtype,
                      "batch": args.batch, "threads": args.threads,
                      "images_per_s": round(args.batch / best, 2), "ms_per_batch": round(best * 1e3, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
