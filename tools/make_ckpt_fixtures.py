"""Writes tests/fixtures/ckpt/: PyTorch zip checkpoints for engine/io/ckpt.c and the hostile files
its test expects to be refused. Run from the repo root: python tools/make_ckpt_fixtures.py

Good files (torch.save):
  ldm_small.ckpt   {"state_dict": OrderedDict (with _metadata) of F32/F16/BF16/I64 tensors, two
                   views sharing one storage at offsets 2 and 10, a 0-d tensor, an empty tensor;
                   "global_step": 123, "epoch": 4, "best_score": numpy float64, optimizer state}
  plain.pt         a module's state_dict (F16), no "state_dict" wrapper
  parameter.pth    {"layer": {"weight": nn.Parameter}, "bias": nn.Parameter}: nested dicts, _rebuild_parameter
  ldm_small.data.pkl    ldm_small.ckpt's pickle alone (for in-memory tests and as a fuzz seed)
  expected.safetensors  every tensor of the three, contiguous, named "<file stem>/<tensor name>"
  unet_sd15_ldm.ckpt    the tiny SD1.5 UNet of tests/fixtures/unet/sd15 under LDM names
                   (model.diffusion_model.*), F16, wrapped as {"state_dict": ..., "global_step": 0}

Hostile files (zips written here, pickles by hand): see HOSTILE below; the C test checks each message.

Legacy (non-zip) files: see legacy_files(). `python tools/make_ckpt_fixtures.py legacy` writes only
those (torch's legacy storage keys are pointer values, so rewriting the zip fixtures is not needed).
"""
import sys
import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file

OUT = "tests/fixtures/ckpt"
UNET_DIR = "tests/fixtures/unet/sd15"


def ldm_small_object(gen):
    """(a) LDM-style: a real state_dict() (an OrderedDict with _metadata, pickled with BUILD) plus
    extras. Returns (object to save, its state dict). gen must be fresh (seed 7) for the values
    expected.safetensors holds."""
    lin = torch.nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, 4, generator=gen))
        lin.bias.copy_(torch.randn(3, generator=gen))
    sd = lin.state_dict()
    sd["half"] = torch.randn(5, generator=gen).half()
    sd["bf16"] = torch.randn(2, 3, generator=gen).bfloat16()
    base = torch.randn(16, generator=gen)  # one storage, two views at offsets 2 and 10
    sd["view_a"] = base[2:8].view(2, 3)
    sd["view_b"] = base[10:14]
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["position_ids"] = torch.arange(6, dtype=torch.int64).view(1, 6)
    # What else a Lightning checkpoint holds: optimizer state (int keys, tensors that are not
    # weights and are never read), floats, None, bools, strings, lists.
    optimizer_states = [{"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(3, 4)}},
                         "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "amsgrad": False,
                                           "foreach": None, "params": [0]}]}]
    return {"state_dict": sd, "global_step": 123, "epoch": 4, "best_score": np.float64(0.5),
            "optimizer_states": optimizer_states, "lr_schedulers": [],
            "pytorch-lightning_version": "1.4.2"}, sd


def good_files():
    expected = {}
    gen = torch.Generator().manual_seed(7)
    obj, sd = ldm_small_object(gen)
    torch.save(obj, f"{OUT}/ldm_small.ckpt")
    for k, v in sd.items():
        expected[f"ldm_small/{k}"] = v.contiguous().clone()

    # (b) a plain state dict
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2)).half()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    torch.save(net.state_dict(), f"{OUT}/plain.pt")
    for k, v in net.state_dict().items():
        expected[f"plain/{k}"] = v.clone()

    # (c) nn.Parameter values, one in a nested dict
    w = torch.nn.Parameter(torch.randn(2, 2, generator=gen))
    b = torch.nn.Parameter(torch.randn(2, generator=gen).bfloat16())
    torch.save({"layer": {"weight": w}, "bias": b}, f"{OUT}/parameter.pth")
    expected["parameter/layer.weight"] = w.detach().clone()
    expected["parameter/bias"] = b.detach().clone()

    save_file(expected, f"{OUT}/expected.safetensors")
    with zipfile.ZipFile(f"{OUT}/ldm_small.ckpt") as z:  # the raw pickle, for in-memory parser tests
        open(f"{OUT}/ldm_small.data.pkl", "wb").write(z.read("ldm_small/data.pkl"))


def unet_file():
    weights = load_file(f"{UNET_DIR}/unet/diffusion_pytorch_model.safetensors")
    sd = collections.OrderedDict()
    for line in open(f"{UNET_DIR}/ldm_names.tsv"):
        if line.startswith("#") or not line.strip():
            continue
        diffusers_name, ldm_name, shape = line.rstrip("\n").split("\t")
        t = weights[diffusers_name].reshape([int(s) for s in shape.split(",")])
        sd["model.diffusion_model." + ldm_name] = t.half()
    torch.save({"state_dict": sd, "global_step": 0}, f"{OUT}/unet_sd15_ldm.ckpt")


# ---- hand-made pickles -----------------------------------------------------------------------

def u(s):  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


def i(x):  # BININT or LONG1
    if -(2**31) <= x < 2**31:
        return b"J" + struct.pack("<i", x)
    return b"\x8a\x08" + struct.pack("<q", x)


def tup(xs):
    return b"(" + b"".join(i(x) for x in xs) + b"t"


def tensor(cls, key, numel, offset, shape, stride):
    pid = b"(" + u("storage") + b"ctorch\n" + cls.encode() + b"\n" + u(key) + u("cpu") + i(numel) + b"t"
    return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"Q" + i(offset) + tup(shape) + tup(stride)
            + b"\x89ccollections\nOrderedDict\n)Rt" + b"R")


def dict_of(pairs):
    return b"\x80\x02}(" + b"".join(u(k) + v for k, v in pairs) + b"u."


def write_zip(path, entries, archive="archive", compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(f"{archive}/{name}", data)


def f32_bytes(n):
    return np.arange(n, dtype="<f4").tobytes()


def hostile_files():
    ok_tensor = tensor("FloatStorage", "0", 4, 0, [2, 2], [2, 1])
    ok_data = {"version": b"3\n", "data/0": f32_bytes(4)}

    def with_pickle(name, pkl, data=ok_data, compression=zipfile.ZIP_STORED):
        write_zip(f"{OUT}/{name}", {"data.pkl": pkl, **data}, compression=compression)

    # Code execution attempts: refused when the global is named, before any REDUCE.
    with_pickle("global_os_system.ckpt", b"\x80\x02cos\nsystem\n" + u("touch /tmp/pwned") + b"\x85R.")
    with_pickle("global_posix_system.ckpt", dict_of([("w", ok_tensor), ("x", b"cposix\nsystem\n" + u("id") + b"\x85R")]))
    with_pickle("stack_global_eval.ckpt", b"\x80\x04" + u("builtins") + u("eval") + b"\x93" + u("1+1") + b"\x85R.")
    with_pickle("load_from_bytes.ckpt", b"\x80\x02ctorch.storage\n_load_from_bytes\n" + b"C\x00\x85R.")
    with_pickle("unknown_class.ckpt", b"\x80\x02c__main__\nEvil\n)\x81.")
    # Structure
    good = dict_of([("w", ok_tensor)])
    with_pickle("truncated_pickle.ckpt", good[: len(good) // 2])
    with_pickle("missing_storage.ckpt", dict_of([("w", ok_tensor), ("v", tensor("FloatStorage", "1", 4, 0, [4], [1]))]))
    with_pickle("storage_size_mismatch.ckpt", good, {"data/0": f32_bytes(3)})
    with_pickle("huge_shape.ckpt", dict_of([("w", tensor("FloatStorage", "0", 4, 0, [2**31, 2**31, 2**31], [2**62, 2**31, 1]))]))
    with_pickle("huge_storage.ckpt", dict_of([("w", tensor("FloatStorage", "0", 2**40, 0, [4], [1]))]))
    with_pickle("out_of_range.ckpt", dict_of([("w", tensor("FloatStorage", "0", 4, 2, [3], [1]))]))
    with_pickle("non_contiguous.ckpt", dict_of([("w", tensor("FloatStorage", "0", 4, 0, [2, 2], [1, 2]))]))
    # {"a": {"a": {...}}} 100000 deep: no recursion in the interpreter; the walk stops at 16 levels.
    # Deflated (libzip inflates it), which keeps the file small.
    depth = 100000
    with_pickle("deep_nesting.ckpt", b"\x80\x02}" + (u("a") + b"}") * depth + b"s" * depth + b".",
                compression=zipfile.ZIP_DEFLATED)
    write_zip(f"{OUT}/no_data_pkl.ckpt", {"version": b"3\n"})
    with open(f"{OUT}/not_a_zip.ckpt", "wb") as f:  # the legacy format (read since legacy support; the test loads it)
        buf = io.BytesIO()
        torch.save({"w": torch.ones(2)}, buf, _use_new_zipfile_serialization=False)
        f.write(buf.getvalue())
    # A valid torch file whose tensor is a transposed view.
    torch.save({"t": torch.arange(6.0).view(2, 3).t()}, f"{OUT}/transposed.ckpt")


# ---- the legacy (non-zip) format ------------------------------------------------------------

def legacy_bytes(obj_pickle, keys, records):
    """A legacy file as torch's _legacy_save lays it out: magic, protocol version, sys_info, the
    object's pickle, the key list, then per record an 8-byte element count and the raw bytes."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    head = b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, sys_info))
    body = b"".join(struct.pack("<q", count) + data for count, data in records)
    return head + obj_pickle + pickle.dumps(keys, protocol=2) + body


def legacy_files():
    """ldm_small_legacy.ckpt: ldm_small.ckpt's object saved by torch in the legacy format (same
    tensors, so the test compares it with expected.safetensors' ldm_small/*), and hostile legacy
    files built by hand. Only these files are written (the zip fixtures are left as they are)."""
    obj, _ = ldm_small_object(torch.Generator().manual_seed(7))
    torch.save(obj, f"{OUT}/ldm_small_legacy.ckpt", _use_new_zipfile_serialization=False)
    saved = torch.load(f"{OUT}/ldm_small_legacy.ckpt", weights_only=False)["state_dict"]
    expected = load_file(f"{OUT}/expected.safetensors")
    for k, v in saved.items():  # the fixture must hold exactly what the C test compares against
        assert torch.equal(v, expected[f"ldm_small/{k}"]), k

    def legacy_tensor(cls, key, numel, offset, shape, stride):  # a 6-tuple persistent id
        pid = b"(" + u("storage") + b"ctorch\n" + cls.encode() + b"\n" + u(key) + u("cpu") + i(numel) + b"Nt"
        return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"Q" + i(offset) + tup(shape) + tup(stride)
                + b"\x89ccollections\nOrderedDict\n)Rt" + b"R")

    w = legacy_tensor("FloatStorage", "140001", 4, 0, [2, 2], [2, 1])
    good = dict_of([("w", w)])
    data = f32_bytes(4)

    def write(name, b):
        open(f"{OUT}/{name}", "wb").write(b)

    # Hand-made but well-formed: the C test loads it (w = 0, 1, 2, 3), which pins the layout above.
    write("legacy_handmade.ckpt", legacy_bytes(good, ["140001"], [(4, data)]))
    write("legacy_truncated_storage.ckpt", legacy_bytes(good, ["140001"], [(4, data)])[:-5])
    write("legacy_bad_magic.ckpt", legacy_bytes(good, ["140001"], [(4, data)]).replace(b"\x6c\xfc\x9c", b"\x6c\xfc\x9d", 1))
    write("legacy_size_mismatch.ckpt", legacy_bytes(good, ["140001"], [(3, data)]))
    write("legacy_unknown_key.ckpt", legacy_bytes(good, ["140001", "666"], [(4, data), (4, data)]))
    write("legacy_view_metadata.ckpt",
          legacy_bytes(good.replace(b"Nt", b"(" + u("140002") + i(0) + i(4) + b"tt", 1), ["140001"], [(4, data)]))


def main():
    os.makedirs(OUT, exist_ok=True)
    good_files()
    unet_file()
    hostile_files()
    legacy_files()
    for name in sorted(os.listdir(OUT)):
        print(f"{OUT}/{name}: {os.path.getsize(f'{OUT}/{name}')} bytes")


if __name__ == "__main__":
    if sys.argv[1:] == ["legacy"]:
        legacy_files()
    else:
        main()
