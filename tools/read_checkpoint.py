"""Reads a dato-search checkpoint with h5py (docs/CHECKPOINT.md): prints the generation, the config,
the population table and the final front, checks every dataset's shape and dtype and recomputes the
seal and the checksum. Reads format 3 and format 2 (5 archive extras, 4 final columns: the checksum
covers the arrays as stored).

    python tools/read_checkpoint.py run/ckpt.h5 [--no-checksum]

Exits 1 when the layout or the checksum is wrong. Needs h5py and numpy.
"""
import argparse
import sys

import h5py
import numpy as np

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1

# Columns per format_version: archive extras, final rows (checkpoint.h's DATO_FINAL_*).
EXTRA_COLUMNS = {2: 5, 3: 6}
FINAL_COLUMNS = {2: 4, 3: 14}


def fnv1a64(h, data):
    for byte in data:
        h = ((h ^ byte) * FNV_PRIME) & MASK
    return h


def check_seal(path):
    """The 512-byte user block: size and FNV-1a 64 of every byte after it (docs/CHECKPOINT.md)."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data[:512].split(b"\0")[0].decode("ascii", "replace").splitlines()
    if len(lines) < 3 or lines[0] != "dato-search-checkpoint seal":
        sys.exit(f"{path}: no seal block: not a dato-search checkpoint")
    size, digest = int(lines[1].split()[1]), int(lines[2].split()[1], 16)
    if size != len(data) or fnv1a64(FNV_OFFSET, data[512:]) != digest:
        sys.exit(f"{path}: the seal does not match ({len(data)} bytes, sealed {size}): damaged")
    print(f"seal ok: {size} bytes, fnv1a64 {digest:016x}")


def interleave(depth, code):
    """(n, T) depth and ratio code -> (n, 2T) genome bytes: gene k = bytes [2k] depth, [2k+1] code."""
    return np.stack([depth, code], axis=-1).reshape(depth.shape[0], -1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--no-checksum", action="store_true", help="skip the seal and checksum (pure Python: slow on big archives)")
    args = parser.parse_args()

    if not args.no_checksum:
        check_seal(args.path)
    problems = []
    with h5py.File(args.path, "r") as f:
        root = f.attrs
        version = int(root["format_version"]) if "format_version" in root else -1
        if root.get("format") != "dato-search-checkpoint" or version not in EXTRA_COLUMNS:
            sys.exit(f"{args.path}: not a dato-search checkpoint of format 2 or 3 (format_version {version})")
        n_extra, n_final_cols = EXTRA_COLUMNS[version], FINAL_COLUMNS[version]
        generation, n = int(root["generation"]), int(root["n_evaluations"])
        print(f"{args.path}: format {version}, generation {generation}, {n} evaluations, "
              f"{root['elapsed_s']:.1f} s elapsed, dato {root['dato_version']}, HDF5 {root['hdf5_version']}")
        cfg = dict(f["config"].attrs)
        print("config:")
        for key, value in cfg.items():
            print(f"  {key} = {value!r}" if isinstance(value, str) else f"  {key} = {value}")
        pop, steps = int(cfg["pop"]), int(cfg["steps"])

        expected = {
            "population/cache_depth": ((pop, steps), np.uint8),
            "population/prune_ratio_code": ((pop, steps), np.uint8),
            "population/objectives": ((pop, 2), np.float64),
            "population/violations": ((pop,), np.float64),
            "rng/state": ((4,), np.uint64),
            "archive/cache_depth": ((n, steps), np.uint8),
            "archive/prune_ratio_code": ((n, steps), np.uint8),
            "archive/objectives": ((n, 2), np.float64),
            "archive/extras": ((n, n_extra), np.float64),
            "archive/generation": ((n,), np.int32),
        }
        if "final" in f:  # a finished run's re-scored final front
            m = f["final/scores"].shape[0]
            expected.update({
                "final/cache_depth": ((m, steps), np.uint8),
                "final/prune_ratio_code": ((m, steps), np.uint8),
                "final/scores": ((m, n_final_cols), np.float64),
                "final/baseline": ((n_final_cols,), np.float64),
            })
        data = {}
        for name, (shape, dtype) in expected.items():
            if name not in f:
                problems.append(f"{name} is missing")
                continue
            d = f[name]
            if d.shape != shape or d.dtype != dtype:
                problems.append(f"{name} is {d.dtype}{d.shape}, expected {np.dtype(dtype)}{shape}")
            data[name] = d[()]
        if problems:
            sys.exit(f"{args.path}: " + "; ".join(problems))

        ratios = f["population/prune_ratio_code"].attrs["ratios"]
        names = f["population/objectives"].attrs["names"].split(",")
        print(f"population ({pop} x {steps} genes; rng {f['rng/state'].attrs['algorithm']}):")
        print(f"  {'#':>3}  {names[0]:>22}  {names[1]:>10}  {'violation':>9}  genes (depth/ratio)")
        depth, code = data["population/cache_depth"], data["population/prune_ratio_code"]
        objectives, violations = data["population/objectives"], data["population/violations"]
        for i in range(pop):
            genes = " ".join(f"{d}/{ratios[c]:.1f}" for d, c in zip(depth[i], code[i]))
            print(f"  {i:>3}  {objectives[i, 0]:>22.6g}  {objectives[i, 1]:>10.4f}  {violations[i]:>9.3g}  {genes}")

        extras = data["archive/extras"]
        if version >= 3 and n:  # the fidelity column: the images each evaluation's score rests on
            images, counts = np.unique(extras[:, 5], return_counts=True)
            print("archive fidelity: " + ", ".join(f"{c} evaluations on {x:g} images" for x, c in zip(images, counts)))
            if not np.all((images >= 1) & (images == np.floor(images))):
                problems.append("archive/extras column 5 (images) holds a value that is not a whole number >= 1")

        if "final" in f:
            names = f["final/scores"].attrs["names"].split(",")
            base = data["final/baseline"]
            print(f"final front ({f['final'].attrs['images']} images per schedule):")
            widths = [max(10, len(x)) for x in names]
            print(f"  {'':>8}  " + "  ".join(f"{x:>{w}}" for x, w in zip(names, widths)))
            print(f"  {'baseline':>8}  " + "  ".join(f"{x:>{w}.6g}" for x, w in zip(base, widths)))
            for i, row in enumerate(data["final/scores"]):
                print(f"  {i:>8}  " + "  ".join(f"{x:>{w}.6g}" for x, w in zip(row, widths)))
            if version == 2:
                print("  (format 2: no intervals nor paired ratios; dato reads the other columns as NaN)")
        if problems:
            sys.exit(f"{args.path}: " + "; ".join(problems))

        if not args.no_checksum:
            h = FNV_OFFSET
            h = fnv1a64(h, interleave(depth, code).tobytes())
            h = fnv1a64(h, objectives.astype("<f8").tobytes())
            h = fnv1a64(h, violations.astype("<f8").tobytes())
            h = fnv1a64(h, data["rng/state"].astype("<u8").tobytes())
            h = fnv1a64(h, interleave(data["archive/cache_depth"], data["archive/prune_ratio_code"]).tobytes())
            h = fnv1a64(h, data["archive/objectives"].astype("<f8").tobytes())
            h = fnv1a64(h, data["archive/extras"].astype("<f8").tobytes())
            h = fnv1a64(h, data["archive/generation"].astype("<i4").tobytes())
            if "final" in f:
                h = fnv1a64(h, interleave(data["final/cache_depth"], data["final/prune_ratio_code"]).tobytes())
                h = fnv1a64(h, data["final/scores"].astype("<f8").tobytes())
                h = fnv1a64(h, data["final/baseline"].astype("<f8").tobytes())
            stored = int(root["checksum"])
            if h != stored:
                sys.exit(f"{args.path}: checksum mismatch (stored {stored:016x}, payload {h:016x})")
            print(f"checksum {h:016x} ok")
    print("layout ok")


if __name__ == "__main__":
    main()
