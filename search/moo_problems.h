// Standard multi-objective test problems (ZDT1/2/3/6, DTLZ2 with 3 objectives) and real-coded
// NSGA-II operators for them: SBX crossover and polynomial mutation as pymoo's NSGA2 defaults
// apply them. The genome is double[n_var] stored in the byte block (genome_bytes =
// n_var * sizeof(double), copied in and out, so the block needs no alignment). All variables
// lie in [0, 1].
#ifndef DATO_MOO_PROBLEMS_H
#define DATO_MOO_PROBLEMS_H

#include <stdint.h>

#include "nsga2.h"
#include "rng.h"
#include "status.h"

typedef enum {
    DATO_MOO_ZDT1, // n 30, 2 objectives, convex front f2 = 1 - sqrt(f1)
    DATO_MOO_ZDT2, // n 30, 2 objectives, concave front f2 = 1 - f1^2
    DATO_MOO_ZDT3, // n 30, 2 objectives, 5 disconnected pieces
    DATO_MOO_ZDT6, // n 10, 2 objectives, non-uniform density
    DATO_MOO_DTLZ2, // n 12, 3 objectives, unit-sphere octant
    DATO_MOO_COUNT,
} dato_moo_problem;

typedef struct {
    const char* name; // "zdt1", ...
    int n_var;
    int n_obj;
} dato_moo_problem_info;

// Name and sizes of a problem; NULL for an out-of-range id.
const dato_moo_problem_info* dato_moo_info(dato_moo_problem problem);

// f (n_obj) = the problem's objectives at x (n_var), x in [0, 1].
dato_status dato_moo_evaluate(dato_moo_problem problem, const double* x, double* f, dato_error* err);

// Operator settings (pymoo NSGA2 defaults: SBX eta 15, prob 0.9, per-variable 0.5; PM eta 20,
// per-variable rate min(0.5, 1/n_var)). Bounds [lower, upper] for every variable.
typedef struct {
    int n_var;
    double lower, upper;
    double sbx_eta, sbx_prob, sbx_prob_var;
    double pm_eta, pm_prob_var;
} dato_real_ops;

// pymoo's defaults for n_var variables in [0, 1].
dato_real_ops dato_real_ops_default(int n_var);
// The callbacks for dato_nsga2 with ctx = real_ops (kept alive by the caller).
dato_nsga2_ops dato_real_nsga2_ops(dato_real_ops* real_ops);

// SBX (bounded, Deb's form): each pair crossed with sbx_prob, each variable with sbx_prob_var
// unless the parents are within 1e-14; per variable the children are swapped with probability 1/2.
void dato_sbx_crossover(void* real_ops, const uint8_t* a, const uint8_t* b, uint8_t* child_a, uint8_t* child_b,
                        dato_rng* rng);
// Polynomial mutation (bounded): each variable with probability pm_prob_var.
void dato_polynomial_mutation(void* real_ops, uint8_t* genome, dato_rng* rng);
// x (n_var) uniform in [lower, upper).
void dato_real_random_genome(const dato_real_ops* real_ops, uint8_t* genome, dato_rng* rng);

#endif
