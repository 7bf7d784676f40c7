#!/usr/bin/env bash
# The speedup of searched schedules over the baseline, measured in one run: rounds of
# bench_default_model on the search's final image set (20 per class prompt, batch 10), each round
# the baseline and then every schedule back to back, so a slow spell of a shared machine hits
# them alike. Prints each schedule's FID (the same in every round: the images are deterministic),
# its best and median denoising rate over the rounds, and the speedups those give.
#   bash bench/search_speedup.sh [rounds] SCHEDULE.json...   (default 5 rounds; build/ binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
[ $# -ge 1 ] || { echo "usage: bash bench/search_speedup.sh [rounds] SCHEDULE.json..." >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq "$rounds"); do
  for s in baseline "$@"; do
    # the summary row: | images | schedule | steps | guidance | accuracy | FID | floor | MMAC | img/s |
    ./build/bench_default_model --per-class 20 --batch 10 --floor /dev/null --schedule "$s" 2>/dev/null |
      awk -F'|' -v s="$s" '/^\| 200 /{gsub(/ /, "", $7); gsub(/ /, "", $10); print s, $7, $10}' >> "$log"
  done
  echo "round $r/$rounds done" >&2
done
python3 - "$log" "$rounds" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
by = {}
for name, fid, rate in rows:
    by.setdefault(name, (float(fid), []))[1].append(float(rate))
base_best, base_med = max(by["baseline"][1]), statistics.median(by["baseline"][1])
print(f"{sys.argv[2]} rounds; denoising images/s on 200 images (20 per prompt), batch 10")
print("| schedule | FID (200) | best img/s | median img/s | speedup (best / best) | speedup (median / median) |")
print("|---|---|---|---|---|---|")
for name, (fid, rates) in by.items():
    best, med = max(rates), statistics.median(rates)
    print(f"| {name} | {fid:.2f} | {best:.1f} | {med:.1f} | {best / base_best:.2f}x | {med / base_med:.2f}x |")
PY
