#!/usr/bin/env python3
"""Writes the seed corpora of the reader fuzz targets (docs/FUZZING.md) into tests/fuzz/corpus-<name>/,
and their dictionaries tests/fuzz/<name>.dict.

Seeds are small real examples: copies of fixtures and shipped files, cut-down forms of them (the
tokenizer's first merges), and for the formats without a small fixture (IDX, PNG variants, .npy
dtypes) tiny files written by numpy, PIL, gzip and zipfile with fixed contents. Every target's
seeds stay under 100 KB. Deterministic: a rerun writes the same bytes.

    python3 tests/fuzz/make_corpus.py
"""
import gzip
import io
import json
import os
import re
import shutil
import struct
import zipfile

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")


WRITTEN = []  # the seed folders this script owns


def out_dir(name):
    WRITTEN.append(name)
    d = os.path.join(ROOT, "tests", "fuzz", "corpus-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(d, name, src):
    with open(os.path.join(ROOT, src), "rb") as f:
        put(d, name, f.read())


def json_configs():
    d = out_dir("schedule")
    for n in ["deepcache_3_branch1_10steps_b9.json", "mixed_6steps_b12.json", "bad_unknown_key.json"]:
        copy(d, n, f"tests/fixtures/schedules/{n}")
    d = out_dir("unet_config")
    for m in ["sd15", "sd2v", "sdxl"]:
        copy(d, m + ".json", f"tests/fixtures/unet/{m}/unet/config.json")
    for m in ["sd15", "sdxl"]:
        copy(d, "tiny_" + m + ".json", f"tests/fixtures/pipeline/{m}/unet/config.json")
    d = out_dir("vae_config")
    for m in ["sd", "xl", "shift"]:
        copy(d, m + ".json", f"tests/fixtures/vae/{m}/vae/config.json")
    copy(d, "tiny_sd15.json", "tests/fixtures/pipeline/sd15/vae/config.json")
    d = out_dir("te_config")
    for m in ["clip_l", "open_h", "open_h_sd2", "open_g"]:
        copy(d, m + ".json", f"tests/fixtures/text_encoder/{m}/config.json")
    copy(d, "tiny_sdxl_2.json", "tests/fixtures/pipeline/sdxl/text_encoder_2/config.json")
    copy(d, "clip_tiny_full.json", "tests/fixtures/clip/tiny/config.json")
    d = out_dir("scheduler_config")
    for m in ["sd15", "sd2v"]:
        copy(d, m + ".json", f"tests/fixtures/unet/{m}/scheduler/scheduler_config.json")
    copy(d, "tiny_sdxl.json", "tests/fixtures/pipeline/sdxl/scheduler/scheduler_config.json")
    for m in ["v1", "v2", "xl_base"]:
        copy(d, "single_file_" + m + ".json", f"tests/fixtures/single_file/schedulers/{m}/scheduler_config.json")
    d = out_dir("model_defaults")
    copy(d, "fashion-sd.json", "models/fashion-sd/dato.json")
    put(d, "absolute_paths.json", json.dumps({"format": "dato-model-defaults", "version": 1, "steps": 25,
                                              "guidance": 7.5, "height": 512, "width": 512,
                                              "eval_prompts": "/data/prompts.txt", "feature_net": None}).encode())
    # The table a fashion-sd search measured (results/fashion-sd-pop32-gens50-seed0, not committed;
    # the numbers as it wrote them), in dato-search's layout.
    d = out_dir("latency")
    call_s = [
        [0, 0, 0, 0, 0, 0],
        [0.00931254199895193, 0.00949285999922722, 0.009469035001529846, 0.009056141001565265, 0.00906217300143908, 0.008847330000207876],
        [0.02290651300063473, 0.02472654599841917, 0.024489220999385, 0.023532807999799843, 0.02310111799852166, 0.022742154000297887],
        [0.03799530600008438, 0.0418624579997413, 0.0409055130003253, 0.04077659200083872, 0.0379678449990024, 0.037628717998813954],
        [0.0449337669997476, 0.045153809998737415, 0.04395389999990584, 0.043698580000636866, 0.04408087699994212, 0.04425084600006812],
        [0.04904101899956004, 0.05046446800042759, 0.0495230319993425, 0.04805195399967488, 0.049447249999502674, 0.0470580199998949],
        [0.0521433159992739, 0.054764730999522726, 0.05543502799991984, 0.05468615400059207, 0.054261216000668355, 0.05139636500098277],
        [0.05717591300162894, 0.058946502998878714, 0.058303265999711584, 0.0567197969994595, 0.0560004779999872, 0.05792050899981405],
    ]
    table = {"key": {"model": "models/fashion-sd", "model_hash": "24604f7c69207997", "device": "cpu", "threads": 0,
                     "batch": 10, "guided": 1, "height": 14, "width": 14, "seq": 16, "sampler": "pndm"},
             "format": "dato-latency", "version": 1, "n_branches": 6,
             "ratios": [0, 0.300000011920929, 0.40000000596046448, 0.5, 0.600000023841858, 0.699999988079071],
             "call_s": call_s, "call_overhead_s": 2.2111000362201594e-05, "setup_s": 1.1452000762801617e-05,
             "setup_cache_s": 2.3999928089324385e-07, "setup_prune_s": 7.2100010584108531e-07}
    put(d, "fashion-sd.json", json.dumps(table, indent="\t").encode())


def tokenizer():
    # The reduced vocabulary of tests/fixtures/tokenizer/json-sd1 (512 byte symbols, 1000 merges,
    # two specials), cut to its first 60 merges (small seeds keep the target fast): as vocab.json +
    # merges.txt and as tokenizer.json.
    with open(os.path.join(FIX, "tokenizer", "json-sd1", "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    merges = tj["model"]["merges"][:60]
    vocab = {k: v for k, v in tj["model"]["vocab"].items() if v < 512 + len(merges)}
    for tok in tj["added_tokens"]:
        tok["id"] = len(vocab)
        vocab[tok["content"]] = tok["id"]
    tj["model"]["vocab"], tj["model"]["merges"] = vocab, merges
    sep = b"\0"
    with open(os.path.join(ROOT, "models", "clip_tokenizer", "special_tokens_map.json"), "rb") as f:
        special_map = f.read()
    with open(os.path.join(FIX, "tokenizer", "json-sd1", "tokenizer_config.json"), "rb") as f:
        config = f.read()
    vocab_json = json.dumps(vocab, ensure_ascii=False).encode()
    merges_txt = ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)).encode()
    prompt = "A photo of an astronaut riding a horse, <|endoftext|> 4k, ÉCOLE!!".encode()
    d = out_dir("tokenizer")
    put(d, "vocab_merges_configs.bin", sep.join([vocab_json, merges_txt, config, special_map, prompt]))
    put(d, "vocab_merges.bin", sep.join([vocab_json, merges_txt, b"", b"", b"a red dress"]))
    put(d, "tokenizer_json.bin", sep.join([json.dumps(tj, ensure_ascii=False).encode(), b"", config, b"", prompt]))


def idx():
    # The layout of Fashion-MNIST's files, 3 images of 6x5 and their labels, plain and gzip.
    d = out_dir("idx")
    images = (np.arange(3 * 6 * 5) * 7 % 256).astype(np.uint8)
    img = bytes([0, 0, 8, 3]) + struct.pack(">III", 3, 6, 5) + images.tobytes()
    lab = bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes([9, 0, 3])
    put(d, "images.idx", img)
    put(d, "labels.idx", lab)
    put(d, "images.idx.gz", gzip.compress(img, mtime=0))


def npy_npz():
    d = out_dir("npy")
    for t in ["f16", "f32", "f64"]:
        copy(d, f"seed3_{t}.npy", f"tests/fixtures/noise/seed3_{t}.npy")
    b = io.BytesIO()
    np.save(b, np.float32(1.5))  # a 0-d array
    put(d, "scalar_f4.npy", b.getvalue())
    b = io.BytesIO()
    np.save(b, np.zeros((2, 0, 3), np.float64))
    put(d, "empty_f8.npy", b.getvalue())
    d = out_dir("npz")
    for n in ["stats_dim4.npz", "stats_dim4_adm.npz", "big_endian.npz", "fortran_order.npz", "no_sigma.npz",
              "sigma_shape.npz"]:
        copy(d, n, f"tests/fixtures/fid/{n}")
    b = io.BytesIO()  # deflated entries, as np.savez_compressed writes them
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        for name, a in [("mu.npy", np.arange(3, dtype=np.float32)), ("sigma.npy", np.eye(3, dtype=np.float32))]:
            e = io.BytesIO()
            np.save(e, a)
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), e.getvalue(), zipfile.ZIP_DEFLATED)
    put(d, "deflated_dim3.npz", b.getvalue())


def stats_h5():
    d = out_dir("stats_h5")
    copy(d, "stats_dim4_h5py.h5", "tests/fixtures/fid/stats_dim4_h5py.h5")


def file_seal():
    # the selector byte (0: a checkpoint's magic, 1: a statistics file's), then a sealed file of dato's
    d = out_dir("file_seal")
    put(d, "stats_test.bin", b"\x01" + open(os.path.join(ROOT, "datasets/fashion-mnist/stats_test.h5"), "rb").read())
    put(d, "stats_h5py_unsealed.bin", b"\x01" + open(os.path.join(ROOT, "tests/fixtures/fid/stats_dim4_h5py.h5"), "rb").read())
    put(d, "checkpoint_unsealed.bin", b"\x00" + open(os.path.join(ROOT, "tests/fuzz/corpus-checkpoint/going.h5"), "rb").read())


def png():
    d = out_dir("png")
    copy(d, "grey28.png", "tests/fixtures/clip/images/grey28.png")
    copy(d, "rgb64x48.png", "tests/fixtures/clip/images/rgb64x48.png")
    rgb = (np.arange(6 * 5 * 3).reshape(6, 5, 3) * 11 % 256).astype(np.uint8)
    variants = {
        "rgba.png": (Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA"), {}),
        "palette_trns.png": (Image.fromarray(rgb).quantize(4), {"transparency": 0}),
        "gray_alpha.png": (Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA"), {}),
        "gray16.png": (Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), {}),
        "gray1.png": (Image.fromarray(rgb[..., 0] > 100), {}),
        "interlaced.png": (Image.fromarray(rgb), {"interlace": 1}),
    }
    for name, (im, opts) in variants.items():
        b = io.BytesIO()
        im.save(b, "PNG", **opts)
        put(d, name, b.getvalue())


# Tokens every JSON dictionary holds: syntax, escapes and numbers at the edges of int, float and
# double (2^30 * 4 overflows int, 2^31, 2^32, 2^53 + 1, 1e10 past int, 1e39 past float, 1e999 past double).
JSON_TOKENS = [b"{", b"}", b"[", b"]", b":", b",", b'"', b"null", b"true", b"false", b"\\u0000", b"\\ud800", b'\\"',
               b"-0", b"0.5", b"-1", b"1073741824", b"2147483647", b"2147483648", b"-2147483649", b"4294967296",
               b"9007199254740993", b"1e10", b"1e39", b"1e308", b"1e999", b"-1e999", b"1e-320", "é".encode(),
               b"\xff\xfe", b"\xed\xa0\x80"]
# Per JSON target: the reader sources whose quoted names (keys, enum values) join the dictionary.
JSON_READERS = {
    "schedule": ["engine/runtime/schedule.c"],
    "unet_config": ["engine/models/unet_config.c", "engine/core/json_fields.c"],
    "vae_config": ["engine/models/vae.c", "engine/core/json_fields.c"],
    "te_config": ["engine/models/text_encoder_params.c", "engine/core/json_fields.c"],
    "scheduler_config": ["engine/runtime/scheduler_config.c"],
    "model_defaults": ["engine/models/model_defaults.c"],
    "latency": ["metrics/latency.c"],
    "tokenizer": ["engine/models/tokenizer.c"],
}
# Binary formats: magic numbers, chunk and field names, sizes at the edges.
BINARY_TOKENS = {
    "png": [b"\x89PNG\r\n\x1a\n", b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP",
            b"sBIT", b"tEXt", b"zTXt", b"iTXt", b"bKGD", b"pHYs", b"sPLT", b"hIST", b"tIME", b"eXIf",
            b"\x00\x00\x00\x0d", b"\x00\x0f\x42\x40", b"\x00\x0f\x42\x41", b"\x7f\xff\xff\xff",
            b"\x08\x02\x00\x00\x00", b"\x10\x06\x00\x00\x01", b"\x78\x9c"],
    "idx": [b"\x00\x00\x08\x01", b"\x00\x00\x08\x03", b"\x00\x00\x08\x04", b"\x00\x00\x0d\x03", b"\xff\xff\xff\xff",
            b"\x00\x01\x00\x00", b"\x80\x00\x00\x00", b"\x1f\x8b\x08\x00"],
    "npy": [b"\x93NUMPY", b"\x01\x00", b"\x02\x00", b"\x03\x00", b"'descr'", b"'<f2'", b"'<f4'", b"'<f8'", b"'>f4'",
            b"'|u1'", b"'fortran_order'", b"False", b"True", b"'shape'", b"()", b"(1,)", b", ", b"{", b"}", b"\n",
            b"9223372036854775807", b"4294967296", b"-1"],
    "stats_h5": [b"\x89HDF\r\n\x1a\n", b"OHDR", b"OCHK", b"TREE", b"HEAP", b"SNOD", b"GCOL", b"FRHP", b"FHDB",
                 b"BTHD", b"format", b"dato-fid-stats", b"version", b"count", b"extractor", b"weights_hash",
                 b"preprocessing", b"source", b"mu", b"sigma", b"\xff" * 8, b"\x00\x00\x00\x80"],
}
BINARY_TOKENS["npz"] = BINARY_TOKENS["npy"] + [b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"mu.npy", b"sigma.npy",
                                               b"\xff\xff\xff\xff"]


def dict_entry(token):
    """A dictionary line: the bytes quoted, '"' and '\\' escaped, bytes outside printable ASCII as \\xNN."""
    out = ""
    for b in token:
        c = chr(b)
        out += "\\" + c if c in '"\\' else c if 32 <= b < 127 else f"\\x{b:02x}"
    return '"' + out + '"'


def dictionaries():
    for name, sources in JSON_READERS.items():
        names = set()
        for src in sources:
            with open(os.path.join(ROOT, src), encoding="utf-8") as f:
                names |= set(re.findall(r'"([A-Za-z_<][A-Za-z0-9_.|>/ -]{1,40})"', f.read()))
        names = sorted(n for n in names if not n.endswith(".h"))
        tokens = JSON_TOKENS + [('"' + n + '"').encode() for n in names]
        write_dict(name, "JSON syntax, edge numbers and the quoted names in " + ", ".join(sources), tokens)
    for name, tokens in BINARY_TOKENS.items():
        write_dict(name, "magic numbers, field names and edge sizes", tokens)


def write_dict(name, what, tokens):
    lines = [f"# libFuzzer dictionary for fuzz_{name}: {what}.", "# Written by tests/fuzz/make_corpus.py."]
    for t in dict.fromkeys(tokens):
        lines.append(dict_entry(t))
    with open(os.path.join(ROOT, "tests", "fuzz", name + ".dict"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    dictionaries()
    json_configs()
    tokenizer()
    idx()
    npy_npz()
    stats_h5()
    file_seal()
    png()
    for name in WRITTEN:
        d = os.path.join(ROOT, "tests", "fuzz", "corpus-" + name)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        assert size < 100_000, f"corpus-{name}: {size} bytes"
        print(f"corpus-{name}: {len(os.listdir(d))} seeds, {size} bytes")
