#!/usr/bin/env bash
# dato-search's evaluation throughput with 1, 2 and 3 MPI ranks on this machine, beside the same
# search in one process without MPI, in one run: the default model's search at pop P for G
# generations (10 images per evaluation, one thread per rank, one shared latency table, so every
# run evaluates the same genomes). From each run's generations.csv: evaluations per second of
# evaluation wall time, and rank 0's own time per generation and per evaluation. Then the
# bench_eval_pool rows: rank 0's cost per task with no evaluation work, beside raw MPI ping-pong.
#   bash bench/mpi_scaling.sh [P] [G]      (default 12 3; build/ binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
pop=${1:-12}
gens=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_MCA_btl_vader_single_copy_mechanism=none # containers forbid the cross-process copy
mpirun="mpirun --oversubscribe"
[ "$(id -u)" -eq 0 ] && mpirun="$mpirun --allow-run-as-root"
flags="--pop $pop --gens $gens --images 10 --final-images 10 --threads 1 --seed 1 --quiet"
./build/dato-search $flags --out "$tmp/one-process"
runs="one-process"
for k in 1 2 3; do
  $mpirun -np $k ./build/dato-search $flags --latency-table "$tmp/one-process/latency_table.json" --out "$tmp/mpi-np$k"
  runs="$runs mpi-np$k"
done
python3 - "$tmp" $runs <<'PY'
import csv, sys
tmp, runs = sys.argv[1], sys.argv[2:]
print(f"{open('/proc/cpuinfo').read().count('processor')} cores; pop and generations as given; each rank 1 thread")
print("| run | ranks | evaluations | evaluation wall s | evaluations/s | speedup | rank 0's own ms/generation | ms/evaluation |")
print("|---|---|---|---|---|---|---|---|")
base = None
for r in runs:
    rows = list(csv.DictReader(open(f"{tmp}/{r}/generations.csv")))
    ev = sum(int(x["evaluated"]) for x in rows)
    wall = sum(float(x["eval_wall_s"]) for x in rows)
    master = sum(float(x["master_s"]) for x in rows)
    rate = ev / wall
    base = base or rate
    print(f"| {r} | {rows[0]['ranks']} | {ev} | {wall:.1f} | {rate:.2f} | {rate / base:.2f}x | "
          f"{1e3 * master / len(rows):.1f} | {1e3 * master / ev:.2f} |")
PY
echo
echo "| ranks | tasks | work us | task B | result B | tasks/s | wall us/task | rank 0 CPU us/task | ping-pong us |"
echo "|---|---|---|---|---|---|---|---|---|"
for k in 2 3; do $mpirun -np $k ./build/bench_eval_pool --tasks 2000 --genome-bytes 50; done
