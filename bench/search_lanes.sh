#!/usr/bin/env bash
# Lanes against one evaluation at a time (docs/DISTRIBUTED.md, "Lanes"): the default model's
# search run alternately with --workers 1 and with its default lanes, in pairs, on one cost table
# (so both search the same path and must end with the same archive). Prints, per run, the wall
# time of generation 0 (32 candidates on all images), of generations 1..G (screening and promotion)
# and of the final re-score (the front and the presets on the final images, through the pool), each
# pair's ratios (one at a time / lanes) and their medians, and whether the two fronts agree.
#   bash bench/search_lanes.sh [pairs] [gens] [final images] [binary]
#   (default 3, 2, 40 and build-cpu/dato-search)
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3}
gens=${2:-2}
final=${3:-40}
exe=$(realpath "${4:-build-cpu/dato-search}")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMP_WAIT_POLICY=PASSIVE
"$exe" --pop 4 --gens 0 --final-images 2 --confirm-images 0 --pairs 1 --quiet --out "$out/table" >/dev/null
table=$out/table/latency_table.json
common="--pop 32 --gens $gens --final-images $final --confirm-images 0 --pairs 1 --quiet --latency-table $table"
# Seconds of one run's stages: "gen0 gens final", from its traces and its own clock.
run() {
  local dir=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  "$exe" $common "$@" --out "$dir" >/dev/null
  t1=$(date +%s.%N)
  python3 - "$dir" "$t0" "$t1" <<'EOF'
import csv, sys
d, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
g = list(csv.DictReader(open(f"{d}/generations.csv")))
gen0 = float(g[0]["generation_s"])
gens = sum(float(r["generation_s"]) for r in g[1:])
print(f"{gen0:.2f} {gens:.2f} {t1 - t0 - gen0 - gens:.2f}")
EOF
}
# The columns that do not depend on the clock: label, the table's latency, FID, KID, schedule, teacher, intervals.
front() { cut -d, -f2-5,8-10,12-20 "$1/front.csv" | md5sum | cut -c1-12; }
ratios=()
for i in $(seq 1 "$pairs"); do
  read -r a0 ag ar < <(run "$out/one$i" --workers 1)
  read -r b0 bg br < <(run "$out/lanes$i")
  r=$(python3 -c "print(f'{$a0 / $b0:.3f} {$ag / $bg:.3f} {($a0 + $ag + $ar) / ($b0 + $bg + $br):.3f}')")
  ratios+=("$r")
  echo "pair $i: one at a time gen0 ${a0}s gens ${ag}s rest ${ar}s | lanes gen0 ${b0}s gens ${bg}s rest ${br}s |" \
       "ratios gen0/gens/run $r | fronts $(front "$out/one$i") $(front "$out/lanes$i")"
done
printf '%s\n' "${ratios[@]}" | python3 -c "
import statistics, sys
cols = list(zip(*[map(float, l.split()) for l in sys.stdin if l.strip()]))
print('median ratios (one at a time / lanes): ' + ', '.join(f'{n} {statistics.median(c):.3f} ({min(c):.3f}..{max(c):.3f})' for n, c in zip(('gen 0', 'gens 1..G', 'whole run'), cols)))"
