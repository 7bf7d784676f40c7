#!/usr/bin/env bash
# The search evaluator's throughput (bench_evaluator) of this checkout against an earlier commit,
# run alternately in pairs on the same machine; prints each pair and the median ratio new/old.
#
#   bash bench/evaluator_vs_commit.sh REV [PAIRS] [bench_evaluator options]
#   bash bench/evaluator_vs_commit.sh HEAD~1 9 --images 16 --batch 2 --rounds 2 --steps 10 --threads 1
#
# REV is built in a temporary git worktree (removed at the end); where it predates
# bench/bench_evaluator.c, this checkout's copy is built against it (its API is older than the file).
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: evaluator_vs_commit.sh REV [PAIRS] [bench_evaluator options]}
pairs=${2:-9}
shift $(( $# >= 2 ? 2 : 1 ))
old=$(mktemp -d /tmp/dato-old-XXXXXX)
trap 'git worktree remove --force "$old" >/dev/null 2>&1 || true' EXIT
git worktree add -q --detach "$old" "$rev"
[ -f "$old/bench/bench_evaluator.c" ] || cp bench/bench_evaluator.c "$old/bench/"
for dir in "$old" .; do
  cmake -S "$dir" -B "$dir/build-bench" -DDATO_CUDA=OFF -DDATO_MPI=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$dir/build-bench" -j2 --target bench_evaluator >/dev/null
done
throughput() { (cd "$1" && OMP_WAIT_POLICY=PASSIVE build-bench/bench_evaluator "${@:2}" | sed -n 's/^throughput: \([0-9.]*\).*/\1/p'); }
ratios=()
for i in $(seq 1 "$pairs"); do
  o=$(throughput "$old" "$@")
  n=$(throughput . "$@")
  r=$(python3 -c "print(f'{$n / $o:.3f}')")
  ratios+=("$r")
  echo "pair $i: $rev $o img/s, this checkout $n img/s, ratio $r"
done
python3 -c "import statistics, sys; r = [float(x) for x in sys.argv[1:]]; print(f'median ratio {statistics.median(r):.3f} (range {min(r):.3f}..{max(r):.3f}, {len(r)} pairs)')" "${ratios[@]}"
