// The DaTo genome (METHOD.md §5, docs/GENOME.md): T genes of two bytes each, byte 2k the cache
// depth of step k (0..B+1) and byte 2k+1 its prune-ratio code c: the ratio dato_schedule_ratios[c]
// (schedule.h; 0 = off, 1..5 = 0.3..0.7). The NSGA-II core sees genomes as opaque byte blocks;
// this file gives their meaning, the exact conversions to and from dato_schedule, the variation
// operators, and the initial population.
#ifndef DATO_GENOME_H
#define DATO_GENOME_H

#include <stddef.h>
#include <stdint.h>

#include "nsga2.h" // dato_nsga2_ops
#include "rng.h"
#include "schedule.h"
#include "status.h"

#define DATO_GENOME_N_RATIO_CODES DATO_SCHEDULE_N_RATIOS // code c -> dato_schedule_ratios[c]

typedef struct {
    int steps;            // T
    int n_branches;       // B: depth B+1 is a full step
    int allow_ratio_off;  // 1: mutation and random genomes may draw code 0, so the front reaches pure caching
    double mutation_prob; // per gene, steps 1..T-1 (default 1/T)
    int depth_step;       // a local depth move is +-depth_step, clamped to 0..B+1 (default 1)
    double reuse_prob;    // P(depth 0) for a gene of a seeded random genome (default 0.1)
} dato_genome_space;

// Defaults for T steps and B branches: ratio 0 allowed, p_m = 1/T, depth step 1, reuse 0.1.
// T in 1..DATO_SCHEDULE_MAX_STEPS, B in 1..254 (a depth must fit in a byte).
dato_status dato_genome_space_init(dato_genome_space* space, int steps, int n_branches, dato_error* err);
// Checks a filled-in space (ranges of every field); errors name the field.
dato_status dato_genome_space_check(const dato_genome_space* space, dato_error* err);
// 2 * T.
size_t dato_genome_bytes(const dato_genome_space* space);

// Every gene in range and step 0 full; errors name the step and the field.
dato_status dato_genome_check(const dato_genome_space* space, const uint8_t* genome, dato_error* err);
// Exact conversions. genome: (T, 2). The schedule must be for this space's T and B and valid;
// the schedule written has model/sampler "" and height/width 0.
dato_status dato_genome_from_schedule(const dato_genome_space* space, const dato_schedule* schedule,
                                      uint8_t* genome, dato_error* err);
dato_status dato_genome_to_schedule(const dato_genome_space* space, const uint8_t* genome, dato_schedule* out,
                                    dato_error* err);

// Operators; ctx is a const dato_genome_space*. Crossover and mutation map valid genomes to
// valid genomes; repair makes any byte block valid with the fewest changes (docs/GENOME.md).
void dato_genome_crossover(void* ctx, const uint8_t* a, const uint8_t* b, uint8_t* child_a, uint8_t* child_b,
                           dato_rng* rng);
void dato_genome_mutate(void* ctx, uint8_t* genome, dato_rng* rng);
void dato_genome_repair(void* ctx, uint8_t* genome);
// The three operators bound to space (which must outlive the returned struct).
dato_nsga2_ops dato_genome_ops(const dato_genome_space* space);

// The presets of the initial population, in order: baseline, deepcache:2..5:branch=1,
// tome:0.3..0.7, dato-paper.
#define DATO_GENOME_N_PRESETS 11
extern const char* const dato_genome_preset_specs[DATO_GENOME_N_PRESETS];

// out: (pop_size, 2T). The presets above that differ from those before them (as many as fit),
// then seeded random genomes drawn from rng, repaired, none equal to an earlier one (docs/GENOME.md
// gives the recipe and what happens when the space has fewer distinct genomes than pop_size).
dato_status dato_genome_initial_population(const dato_genome_space* space, int pop_size, dato_rng* rng,
                                           uint8_t* out, dato_error* err);

// FNV-1a 64 of the n bytes: stable across runs and platforms.
uint64_t dato_genome_hash(const uint8_t* bytes, size_t n);
// Text for logs: one "depth/ratio" per step separated by spaces, e.g. "13/0.0 2/0.3 0/0.0".
// Bytes needed for the text including the terminating 0:
size_t dato_genome_text_bytes(const dato_genome_space* space);
// Writes the text into text[cap]; an error if cap is too small or a gene is out of range.
dato_status dato_genome_to_text(const dato_genome_space* space, const uint8_t* genome, char* text, size_t cap,
                                dato_error* err);

#endif
