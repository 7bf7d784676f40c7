// NSGA-II (Deb et al. 2002) over opaque fixed-size byte genomes, driven ask/tell: the caller
// evaluates a whole generation at once (and may dedupe, checkpoint or distribute it), the core
// only breeds and selects. All objectives are minimised. Everything is deterministic from the
// seed: the one RNG is private to the state, and every tie is broken by index.
//
//   dato_nsga2_create(&s, &config, &ops, &err);
//   dato_nsga2_set_population(s, genomes, objectives, violations, &err);   // evaluated by the caller
//   for (...) {
//       dato_nsga2_make_offspring(s, children, &err);                     // (pop_size, genome_bytes)
//       ...evaluate children...
//       dato_nsga2_select(s, children, child_objectives, child_violations, &err);
//   }
//
// Rules chosen (docs/NSGA2.md says why):
// - constrained domination (paper §VI): a feasible solution (violation 0) beats an infeasible one,
//   of two infeasible ones the smaller violation wins (equal violations: neither dominates), two
//   feasible ones compare by Pareto dominance;
// - crowding distance per front: for each objective the minimum and the maximum get +inf, interior
//   points add (f[next] - f[prev]) / (f_max - f_min); an objective with zero range adds nothing.
//   Identical objective vectors (bitwise equal) count once: the lowest index of a group gets the
//   distance computed on the distinct vectors, every later copy gets 0 (pymoo's rule);
// - binary tournament by the crowded comparison: lower rank wins, then larger crowding, then lower
//   index; competitors are drawn as consecutive pairs of random permutations (every individual
//   plays twice per generation, as in Deb's code);
// - (mu+lambda) replacement: parents and children are ranked together, fronts are taken whole while
//   they fit, the last one by decreasing crowding (ties: lower index, parents before children);
// - rank and crowding are a pure function of the population's objectives and violations: they are
//   recomputed on the survivors after every selection, so a checkpoint need not store them.
#ifndef DATO_NSGA2_H
#define DATO_NSGA2_H

#include <stdint.h>

#include "rng.h"
#include "status.h"

// Variation operators on genomes of genome_bytes bytes. The core calls crossover for every pair of
// tournament winners and mutate (then repair, if set) on every child: the callbacks apply their own
// probabilities, drawing only from the rng they are given.
typedef struct {
    void (*crossover)(void* ctx, const uint8_t* a, const uint8_t* b, uint8_t* child_a, uint8_t* child_b,
                      dato_rng* rng);
    void (*mutate)(void* ctx, uint8_t* genome, dato_rng* rng);
    void (*repair)(void* ctx, uint8_t* genome); // may be NULL
    void* ctx;
} dato_nsga2_ops;

typedef struct {
    int pop_size;     // >= 2, also the number of children per generation
    int n_obj;        // >= 1
    int genome_bytes; // >= 1
    uint64_t seed;
} dato_nsga2_config;

// The state. Read its fields freely; change them only through the functions below.
typedef struct {
    dato_nsga2_config config;
    dato_nsga2_ops ops;
    int has_population; // set by set_population / set_state
    int64_t generation; // 0 after set_population, +1 per select
    dato_rng rng;
    uint8_t* genomes;   // (pop_size, genome_bytes)
    double* objectives; // (pop_size, n_obj)
    double* violations; // (pop_size) total constraint violation, 0 = feasible
    int* ranks;         // (pop_size) front index, 0 = non-dominated
    double* crowding;   // (pop_size) crowding distance, INFINITY at extremes
    // scratch for selection: parents followed by children
    uint8_t* merged_genomes;   // (2 pop_size, genome_bytes)
    double* merged_objectives; // (2 pop_size, n_obj)
    double* merged_violations; // (2 pop_size)
    int* merged_ranks;         // (2 pop_size)
    double* merged_crowding;   // (2 pop_size)
    int* order;                // (2 pop_size) indices, survivors first
} dato_nsga2;

dato_status dato_nsga2_create(dato_nsga2** out, const dato_nsga2_config* config, const dato_nsga2_ops* ops,
                              dato_error* err);
void dato_nsga2_free(dato_nsga2* s);

// Installs the initial population: genomes (pop_size, genome_bytes), objectives (pop_size, n_obj),
// violations (pop_size) or NULL for all feasible. Objectives must be finite, violations finite and
// >= 0. Computes rank and crowding, sets the generation to 0 and re-seeds the RNG from config.seed.
dato_status dato_nsga2_set_population(dato_nsga2* s, const uint8_t* genomes, const double* objectives,
                                      const double* violations, dato_error* err);

// Breeds pop_size children into children (pop_size, genome_bytes) by binary tournament,
// crossover, mutation and repair. Advances the RNG only.
dato_status dato_nsga2_make_offspring(dato_nsga2* s, uint8_t* children, dato_error* err);

// (mu+lambda) replacement with the evaluated children: children (pop_size, genome_bytes),
// child_objectives (pop_size, n_obj), child_violations (pop_size) or NULL for all feasible.
// Recomputes rank and crowding and increments the generation. On a bad argument the state is unchanged.
dato_status dato_nsga2_select(dato_nsga2* s, const uint8_t* children, const double* child_objectives,
                              const double* child_violations, dato_error* err);

// Writes the indices of the first front (rank 0), ascending, into indices (room for pop_size);
// returns how many.
int dato_nsga2_first_front(const dato_nsga2* s, int* indices);

// Checkpoint. The full state is: genomes (pop_size, genome_bytes), objectives (pop_size, n_obj),
// violations (pop_size), rng_state[4] (the dato_rng words) and the generation; ranks and crowding
// are derived. set_state after get_state continues bit-exactly (same children, same survivors).
// Config and ops are not part of it: create the state with the same ones before set_state.
dato_status dato_nsga2_get_state(const dato_nsga2* s, uint8_t* genomes, double* objectives, double* violations,
                                 uint64_t rng_state[4], int64_t* generation, dato_error* err);
dato_status dato_nsga2_set_state(dato_nsga2* s, const uint8_t* genomes, const double* objectives,
                                 const double* violations, const uint64_t rng_state[4], int64_t generation,
                                 dato_error* err);

// ---- helpers, exposed for tests ----

// Constrained domination of a over b (objectives (n_obj) each, violations >= 0):
// 1 if a dominates b, -1 if b dominates a, 0 if neither.
int dato_nsga2_compare(const double* a_objectives, double a_violation, const double* b_objectives,
                       double b_violation, int n_obj);

// Fast non-dominated sort of n solutions (objectives (n, n_obj), violations (n) or NULL) under
// constrained domination: ranks (n) gets each front index, 0 first. Allocates O(n^2) scratch.
dato_status dato_nsga2_nondominated_sort(const double* objectives, const double* violations, int n, int n_obj,
                                         int* ranks, dato_error* err);

// Crowding distance of the members of one front: members (n_members) are indices into
// objectives (?, n_obj); writes crowding[members[i]] for each member, other entries untouched.
dato_status dato_nsga2_crowding(const double* objectives, int n_obj, const int* members, int n_members,
                                double* crowding, dato_error* err);

// The crowded comparison: the winner of a tournament between a and b (rank, then crowding, then
// the lower index).
int dato_nsga2_tournament_winner(int a, int b, const int* ranks, const double* crowding);

#endif
