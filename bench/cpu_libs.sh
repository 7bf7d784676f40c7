#!/usr/bin/env bash
# Issue 22, "measure first": the CPU's FP32 FMA peak, SGEMM at the UNets' shapes in dato's own GEMM, OpenBLAS (with
# OPENBLAS_CORETYPE pinned to Haswell and unset), BLIS and oneDNN, and 3x3 convolutions as im2col +
# OpenBLAS against oneDNN's direct and Winograd algorithms; 1 and 2 threads.
#   bash bench/cpu_libs.sh [build-dir] [repeats]
# Needs the Release build of cpu_peak and gemm_libs (BLIS and oneDNN columns only where CMake found
# them: apt-get install libblis-dev libdnnl-dev) and conv_libs (oneDNN only). Prints markdown
# tables for docs/BENCHMARKS.md; the raw tab-separated lines go to results/bench/cpu_libs/.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
repeats="${2:-5}"
out=results/bench/cpu_libs
mkdir -p "$out"
export OMP_WAIT_POLICY=PASSIVE
unset OMP_NUM_THREADS OPENBLAS_NUM_THREADS # each program sets its thread counts itself
pin=Haswell                                # the environment's pin on dev-cpu

load() { echo "$1: $(uptime)" >> "$out/load.txt"; } # the machine is shared: the load goes with the numbers
: > "$out/load.txt"
: > "$out/libs.txt"
load start
"$build/cpu_peak" --repeats "$repeats" 2>/dev/null > "$out/peak-before.tsv"
for set in sd default; do # pinned and unpinned OpenBLAS are separate processes: it reads the variable once
  OPENBLAS_CORETYPE=$pin "$build/gemm_libs" --set $set --repeats "$repeats" > "$out/gemm-$set-pinned.tsv" 2>> "$out/libs.txt"
  load "gemm $set pinned"
  env -u OPENBLAS_CORETYPE "$build/gemm_libs" --set $set --repeats "$repeats" > "$out/gemm-$set-unset.tsv" 2>> "$out/libs.txt"
  load "gemm $set unset"
done
rm -f "$out/conv.tsv"
if [ -x "$build/conv_libs" ]; then
  OPENBLAS_CORETYPE=$pin "$build/conv_libs" --repeats "$repeats" > "$out/conv.tsv"
  load conv
fi
"$build/cpu_peak" --repeats "$repeats" 2>/dev/null > "$out/peak-after.tsv"
load end

python3 - "$out" <<'PY'
import csv, os, sys
out = sys.argv[1]
def rows(name):
    path = os.path.join(out, name)
    return list(csv.DictReader(open(path), delimiter="\t")) if os.path.exists(path) else []

print("Load (uptime) after each step:\n")
for line in open(os.path.join(out, "load.txt")):
    print("    " + line.strip())
print("\nLibraries as they reported themselves:\n")
for line in sorted(set(open(os.path.join(out, "libs.txt")))):
    print("    " + line.strip())

# The reference 2-thread peak: the fastest 2-thread repeat of the two runs, or twice the fastest
# 1-thread one if higher (the two cores are alike; on a shared machine the second is rarely free).
print("\n| run | threads | GFLOP/s (median) | GFLOP/s (best repeat) | implied GHz (median) |")
print("|---|---|---|---|---|")
peak2 = 0.0
for run in ("before", "after"):
    for r in rows(f"peak-{run}.tsv"):
        print(f"| {run} | {r['threads']} | {float(r['gflops']):.1f} | {float(r['gflops_best']):.1f} | {r['ghz']} |")
        peak2 = max(peak2, float(r["gflops_best"]) * 2 / int(r["threads"]))
print(f"\nReference 2-thread peak (max of the fastest 2-thread repeat and 2 x the fastest 1-thread one): {peak2:.1f} GFLOP/s.")
cell = lambda r: f"{float(r['gflops']):.1f} / {float(r['gflops_best']):.1f} ({100 * float(r['gflops']) / peak2:.0f}%)"

# GEMM: dato, OpenBLAS pinned and unset, BLIS and oneDNN from the pinned process (paired with its OpenBLAS).
libs = ["dato", "openblas", "blis", "onednn"]
errors = {}
for s in ("sd", "default"):
    pinned, unset = rows(f"gemm-{s}-pinned.tsv"), rows(f"gemm-{s}-unset.tsv")
    have = [l for l in libs if any(r["library"] == l for r in pinned)]
    key = lambda r: (r["shape"], r["threads"])
    table = {}
    for tag, rs in (("pinned", pinned), ("unset", unset)):
        for r in rs:
            name = r["library"] + (f" ({tag})" if r["library"] == "openblas" else "")
            errors[name] = max(errors.get(name, 0.0), float(r["max_error"]))
            if r["library"] == "openblas" or tag == "pinned":
                table.setdefault(key(r), {})[name] = r
    cols = ["dato"] * ("dato" in have) + ["openblas (pinned)", "openblas (unset)"] + [l for l in have if l not in ("openblas", "dato")]
    print(f"\nGEMM, set '{s}': GFLOP/s median / fastest round (median as % of the 2-thread peak)\n")
    print("| shape | M | N | K | threads | " + " | ".join(cols) + " |")
    print("|---|---|---|---|---|" + "---|" * len(cols))
    for (shape, t), v in table.items():
        r = v["openblas (pinned)"]
        print(f"| {shape} | {r['M']} | {r['N']} | {r['K']} | {t} | " +
              " | ".join(cell(v[c]) if c in v else "-" for c in cols) + " |")

print("\nGEMM correctness: max over shapes and thread counts of |C - ref| / sum_k |A_ik B_kj| (float64 reference)\n")
print("| library | max error |")
print("|---|---|")
for name, e in errors.items():
    print(f"| {name} | {e:.2e} |")

conv = rows("conv.tsv")
if conv:
    methods = list(dict.fromkeys(r["method"] for r in conv))
    print("\n3x3 convolutions, NCHW f32: median ms per call, GFLOP/s median / fastest round (median as % of the 2-thread peak)\n")
    print("| shape | batch | threads | " + " | ".join(methods) + " |")
    print("|---|---|---|" + "---|" * len(methods))
    table = {}
    for r in conv:
        table.setdefault((r["shape"], r["batch"], r["threads"]), {})[r["method"]] = r
    for (shape, b, t), v in table.items():
        cells = []
        for m in methods:
            r = v[m]
            cells.append(f"unsupported ({r['impl']})" if r["ms"] == "unsupported"
                         else f"{float(r['ms']):.2f} ms, {cell(r)}")
        print(f"| {shape} | {b} | {t} | " + " | ".join(cells) + " |")
    impls = sorted({(r["method"], r["impl"]) for r in conv if r["impl"] != "-"})
    print("\noneDNN implementations: " + "; ".join(f"{m}: {i}" for m, i in impls))
    print("Conv max error (as for GEMM): " + "; ".join(
        f"{m}: {max(float(r['max_error']) for r in conv if r['method'] == m and r['max_error'] != '-'):.2e}"
        for m in methods if any(r["max_error"] != "-" for r in conv if r["method"] == m)))
PY
