#!/usr/bin/env bash
# Multi-fidelity against single fidelity, side by side: two dato-search runs of the default model
# started together (so each sees the other's load: the loaded-machine trial too), identical but
# for --screen-images (0: every candidate on all 10 images, as before screening existed; the
# default: 2). Prints, per run, the search's wall time (generations 1..G: generation 0 is the same
# full evaluation in both), the images it generated, its last hypervolume (both normalized by the
# same generation-0 maxima), and whether its final front holds up: no member dominating another
# on the paired ratio and FID, none slower than the baseline.
# Both runs share one calibrated cost table (the first argument's run folder's, or one calibrated
# here by a zero-generation run), so their latencies and hypervolumes are on the same scale.
#   bash bench/search_fidelity.sh [gens] [final images] [latency_table.json]
#   (default 10, 100 and a fresh table; build/ binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
gens=${1:-10}
final=${2:-100}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
table=${3:-}
if [ -z "$table" ]; then
  ./build/dato-search --pop 4 --gens 0 --final-images 2 --confirm-images 0 --pairs 1 --quiet --out "$out/table" >/dev/null
  table=$out/table/latency_table.json
fi
# Two runs side by side on 2 cores: OpenMP's idle threads must sleep, not spin on the other's cores.
export OMP_WAIT_POLICY=PASSIVE
common="--pop 32 --gens $gens --final-images $final --confirm-images 0 --log-json --latency-table $table"
start=$(date +%s)
./build/dato-search $common --screen-images 0 --out "$out/single" > "$out/single.log" 2> "$out/single.err" &
a=$!
./build/dato-search $common --out "$out/multi" > "$out/multi.log" 2> "$out/multi.err" &
b=$!
wait $a $b
echo "both runs took $(( $(date +%s) - start )) s side by side (each on all $(nproc) cores, OMP_WAIT_POLICY=PASSIVE)"
python3 - "$out" "$gens" <<'PY'
import csv, json, sys
out, gens = sys.argv[1], int(sys.argv[2])
print(f"| run | search s (gens 1..{gens}) | images generated (gens 1..{gens}) | screened only | promoted | HV at gen {gens} | front | dominated pairs | slower than baseline |")
print("|---|---|---|---|---|---|---|---|---|")
for name in ("single", "multi"):
    gen_rows = list(csv.DictReader(open(f"{out}/{name}/generations.csv")))
    search_s = sum(float(r["generation_s"]) for r in gen_rows if int(r["generation"]) > 0)
    ev = list(csv.DictReader(open(f"{out}/{name}/evaluations.csv")))
    images = sum(int(r["images"]) for r in ev if int(r["generation"]) > 0)
    lines = [json.loads(l) for l in open(f"{out}/{name}.log") if l.startswith("{\"generation\"")]
    screened = sum(l["screened_only"] for l in lines)
    promoted = sum(l["promoted"] for l in lines)
    hv = lines[-1]["hypervolume"]
    front = list(csv.DictReader(open(f"{out}/{name}/front.csv")))
    pts = [(float(r["latency_ratio"]), float(r["fid"])) for r in front]
    dominated = sum(1 for i, a in enumerate(pts) for j, b in enumerate(pts)
                    if i != j and a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1]))
    slower = sum(1 for r, _ in pts if r >= 1)
    print(f"| {name} | {search_s:.0f} | {images} | {screened} | {promoted} | {hv:.4f} | {len(pts)} | {dominated} | {slower} |")
PY
