#!/usr/bin/env python3
"""Projects dato-search over K ranks by replaying a run's recorded evaluations.

A run folder holds evaluations.csv (every evaluation: generation, candidate, rank, eval_s,
round_trip_s) and generations.csv (per generation: evaluated, cache hits, eval_wall_s, master_s).
This replays them on K simulated ranks (rank 0 evaluating too), the way search/eval_pool.c hands
out work: one queue in candidate order, the next task to the first rank free, rank 0 spending
--dispatch-us per task on the messages (serially: one message thread). Two drivers:

  generational  what dato-search does: a generation's tasks, a barrier, then rank 0's own work for
                the generation (selection, breeding, archive, checkpoint: master_s) before the next;
  steady-state  the asynchronous variant (not built): a rank that finishes gets a new child at once;
                rank 0 spends master_s / pop per child plus the dispatch, and no rank waits for a
                generation's slowest candidate.

--eval-mean S rescales every evaluation time to a mean of S seconds (e.g. SD1.5 on a GPU) while
rank 0's own costs stay as measured: the master's work does not get faster with a GPU.

  python3 bench/mpi_scaling_sim.py RUN_DIR [--eval-mean S] [--dispatch-us U] [--ranks 1,2,3,8,64]
"""
import argparse
import csv
import heapq
import statistics
import sys


def read_run(run_dir):
    gens = {}
    with open(f"{run_dir}/evaluations.csv") as f:
        for row in csv.DictReader(f):
            gens.setdefault(int(row["generation"]), []).append(float(row["eval_s"]))
    with open(f"{run_dir}/generations.csv") as f:
        master = {int(r["generation"]): float(r["master_s"]) for r in csv.DictReader(f)}
        f.seek(0)
        pop = max(int(r["candidates"]) for r in csv.DictReader(f))
    return [(gens.get(g, []), master[g]) for g in sorted(master)], pop


def list_schedule(durations, k, dispatch_s, start=0.0):
    """Greedy: each task in order to the earliest free rank, rank 0 handing them out one at a time.
    Returns (finish time of the last task, busy rank-seconds)."""
    free = [start] * k
    heapq.heapify(free)
    master_t, end = start, start
    for d in durations:
        t = max(heapq.heappop(free), master_t)
        master_t = t + dispatch_s
        done = master_t + d
        heapq.heappush(free, done)
        end = max(end, done)
    return end, sum(durations)


def generational(gens, k, dispatch_s):
    t = 0.0
    for durations, master_s in gens:
        end, _ = list_schedule(durations, k, dispatch_s, t) if durations else (t, 0)
        t = end + master_s
    return t


def steady_state(gens, k, dispatch_s, pop):
    per_child = statistics.mean(m for _, m in gens) / pop + dispatch_s
    durations = [d for ds, _ in gens for d in ds]
    end, _ = list_schedule(durations, k, per_child)
    return end


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--eval-mean", type=float, default=0, help="rescale evaluations to this mean (s); 0: as recorded")
    ap.add_argument("--dispatch-us", type=float, default=1000, help="rank 0's time per task on messages (us)")
    ap.add_argument("--ranks", default="1,2,3,4,8,16,32,64")
    a = ap.parse_args()
    gens, pop = read_run(a.run_dir)
    all_d = [d for ds, _ in gens for d in ds]
    if not all_d:
        sys.exit(f"{a.run_dir}: no evaluations recorded")
    scale = a.eval_mean / statistics.mean(all_d) if a.eval_mean > 0 else 1.0
    gens = [([d * scale for d in ds], m) for ds, m in gens]
    all_d = [d * scale for d in all_d]
    masters = [m for _, m in gens]
    dispatch_s = a.dispatch_us * 1e-6
    per_gen = [len(ds) for ds, _ in gens]
    print(f"{a.run_dir}: {len(gens)} generations, pop {pop}, {len(all_d)} evaluations "
          f"({statistics.mean(per_gen):.1f} per generation, the rest archive hits); evaluation mean "
          f"{statistics.mean(all_d):.3f} s, max/mean {max(all_d) / statistics.mean(all_d):.2f}; rank 0's own "
          f"work {1e3 * statistics.mean(masters):.1f} ms per generation; dispatch {a.dispatch_us:.0f} us per task")
    per_child = statistics.mean(masters) / pop + dispatch_s
    print(f"rank 0 saturates (steady-state) at about {statistics.mean(all_d) / per_child:.0f} ranks: "
          f"mean evaluation / rank 0's time per child")
    print()
    print("| ranks | generational s | speedup | efficiency | steady-state s | speedup | efficiency |")
    print("|---|---|---|---|---|---|---|")
    g1 = generational(gens, 1, dispatch_s)
    s1 = steady_state(gens, 1, dispatch_s, pop)
    for k in (int(x) for x in a.ranks.split(",")):
        g = generational(gens, k, dispatch_s)
        s = steady_state(gens, k, dispatch_s, pop)
        print(f"| {k} | {g:.1f} | {g1 / g:.2f}x | {g1 / g / k:.0%} | {s:.1f} | {s1 / s:.2f}x | {s1 / s / k:.0%} |")


if __name__ == "__main__":
    main()
