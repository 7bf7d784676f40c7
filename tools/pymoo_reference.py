"""Reference hypervolumes of pymoo's NSGA2 on the test problems of tests/unit/test_nsga2_problems.c.

Runs pymoo's NSGA2 with its defaults (pop 100, SBX eta 15 prob 0.9, PM eta 20 per-variable rate 1/n,
duplicate elimination on) for 250 generations, seeds 0..4, on ZDT1/2/3/6 and DTLZ2 (3 objectives,
12 variables), and writes the HV of each final non-dominated front (pymoo's HV indicator, reference
1.1 in every objective) with per-problem means to tests/fixtures/nsga2/pymoo_hv.json.

    pip install pymoo && nice -n 19 python tools/pymoo_reference.py
"""
import json
import os

import pymoo
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.indicators.hv import HV
from pymoo.optimize import minimize
from pymoo.problems import get_problem

PROBLEMS = [  # (name, pymoo problem, number of objectives)
    ("zdt1", get_problem("zdt1", n_var=30), 2),
    ("zdt2", get_problem("zdt2", n_var=30), 2),
    ("zdt3", get_problem("zdt3", n_var=30), 2),
    ("zdt6", get_problem("zdt6", n_var=10), 2),
    ("dtlz2", get_problem("dtlz2", n_var=12, n_obj=3), 3),
]
SEEDS = [0, 1, 2, 3, 4]
POP_SIZE = 100
GENERATIONS = 250
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "nsga2", "pymoo_hv.json")


def main():
    result = {
        "pymoo_version": pymoo.__version__,
        "pop_size": POP_SIZE,
        "generations": GENERATIONS,
        "seeds": SEEDS,
        "reference_point": 1.1,
        "problems": {},
    }
    for name, problem, n_obj in PROBLEMS:
        indicator = HV(ref_point=[1.1] * n_obj)
        values = []
        for seed in SEEDS:
            res = minimize(problem, NSGA2(pop_size=POP_SIZE), ("n_gen", GENERATIONS), seed=seed, verbose=False)
            values.append(float(indicator(res.F)))  # res.F: the final non-dominated front
        mean = sum(values) / len(values)
        result["problems"][name] = {"n_var": problem.n_var, "n_obj": n_obj, "hv": values, "mean": mean}
        print(f"{name}: mean HV {mean:.5f}  per seed {' '.join(f'{v:.5f}' for v in values)}", flush=True)
    with open(OUT, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
