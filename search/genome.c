#include "genome.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

// DeepCache's branch 1 (its paper's SD setting): slower and closer to the baseline than its
// default branch 0, which mutation reaches from these in one step per gene.
const char* const dato_genome_preset_specs[DATO_GENOME_N_PRESETS] = {
    "baseline", "deepcache:2:branch=1", "deepcache:3:branch=1", "deepcache:4:branch=1", "deepcache:5:branch=1",
    "tome:0.3", "tome:0.4",             "tome:0.5",             "tome:0.6",             "tome:0.7",
    "dato-paper",
};

// Random genomes are redrawn this many times in a row before a duplicate is accepted: a space
// smaller than the population (tiny T) must still fill it.
#define MAX_DUPLICATE_DRAWS 1000

dato_status dato_genome_space_init(dato_genome_space* space, int steps, int n_branches, dato_error* err) {
    *space = (dato_genome_space){
        .steps = steps,
        .n_branches = n_branches,
        .allow_ratio_off = 1,
        .mutation_prob = steps > 0 ? 1.0 / steps : 0.0,
        .depth_step = 1,
        .reuse_prob = 0.1,
    };
    return dato_genome_space_check(space, err);
}

dato_status dato_genome_space_check(const dato_genome_space* space, dato_error* err) {
    if (space->steps < 1 || space->steps > DATO_SCHEDULE_MAX_STEPS)
        return dato_fail(err, DATO_ERR_INVALID, "genome space: field 'steps' = %d is out of range 1..%d", space->steps,
                         DATO_SCHEDULE_MAX_STEPS);
    if (space->n_branches < 1 || space->n_branches > 254)
        return dato_fail(err, DATO_ERR_INVALID, "genome space: field 'n_branches' = %d is out of range 1..254",
                         space->n_branches);
    if (space->allow_ratio_off != 0 && space->allow_ratio_off != 1)
        return dato_fail(err, DATO_ERR_INVALID, "genome space: field 'allow_ratio_off' = %d must be 0 or 1",
                         space->allow_ratio_off);
    if (!(space->mutation_prob >= 0.0 && space->mutation_prob <= 1.0))
        return dato_fail(err, DATO_ERR_INVALID, "genome space: field 'mutation_prob' = %g is not in [0, 1]",
                         space->mutation_prob);
    if (space->depth_step < 1 || space->depth_step > space->n_branches + 1)
        return dato_fail(err, DATO_ERR_INVALID, "genome space: field 'depth_step' = %d is out of range 1..%d",
                         space->depth_step, space->n_branches + 1);
    if (!(space->reuse_prob >= 0.0 && space->reuse_prob <= 1.0))
        return dato_fail(err, DATO_ERR_INVALID, "genome space: field 'reuse_prob' = %g is not in [0, 1]",
                         space->reuse_prob);
    return DATO_OK;
}

size_t dato_genome_bytes(const dato_genome_space* space) { return 2 * (size_t)space->steps; }

dato_status dato_genome_check(const dato_genome_space* space, const uint8_t* genome, dato_error* err) {
    DATO_TRY(dato_genome_space_check(space, err));
    int full = space->n_branches + 1;
    for (int k = 0; k < space->steps; k++) {
        if (genome[2 * k] > full)
            return dato_fail(err, DATO_ERR_INVALID, "genome: step %d: depth %d is out of range 0..%d", k,
                             genome[2 * k], full);
        if (genome[2 * k + 1] >= DATO_GENOME_N_RATIO_CODES)
            return dato_fail(err, DATO_ERR_INVALID, "genome: step %d: ratio code %d is out of range 0..%d", k,
                             genome[2 * k + 1], DATO_GENOME_N_RATIO_CODES - 1);
    }
    if (genome[0] != full)
        return dato_fail(err, DATO_ERR_INVALID, "genome: step 0: depth %d, but step 0 must be full (depth %d)",
                         genome[0], full);
    return DATO_OK;
}

dato_status dato_genome_from_schedule(const dato_genome_space* space, const dato_schedule* schedule,
                                      uint8_t* genome, dato_error* err) {
    DATO_TRY(dato_genome_space_check(space, err));
    dato_error inner;
    if (dato_schedule_validate(schedule, space->steps, space->n_branches, &inner))
        return dato_fail(err, DATO_ERR_INVALID, "genome from schedule: %s", inner.msg);
    for (int k = 0; k < space->steps; k++) {
        genome[2 * k] = (uint8_t)schedule->genes[k].depth;
        genome[2 * k + 1] = (uint8_t)dato_schedule_ratio_index(schedule->genes[k].ratio); // validated above
    }
    return DATO_OK;
}

dato_status dato_genome_to_schedule(const dato_genome_space* space, const uint8_t* genome, dato_schedule* out,
                                    dato_error* err) {
    DATO_TRY(dato_genome_check(space, genome, err));
    memset(out, 0, sizeof(*out));
    out->steps = space->steps;
    out->n_branches = space->n_branches;
    for (int k = 0; k < space->steps; k++)
        out->genes[k] = (dato_gene){genome[2 * k], dato_schedule_ratios[genome[2 * k + 1]]};
    return DATO_OK;
}

// ---------------------------------------------------------------------------------------------
// Operators

void dato_genome_crossover(void* ctx, const uint8_t* a, const uint8_t* b, uint8_t* child_a, uint8_t* child_b,
                           dato_rng* rng) {
    const dato_genome_space* space = ctx;
    // Uniform crossover on whole genes (a depth travels with its ratio): child_b gets what
    // child_a did not, so the two children together hold every parent gene exactly once.
    for (int k = 0; k < space->steps; k++) {
        int swap = dato_rng_below(rng, 2) == 1;
        const uint8_t* from_a = swap ? b : a;
        const uint8_t* from_b = swap ? a : b;
        uint8_t gene_a[2] = {from_a[2 * k], from_a[2 * k + 1]}; // copied first: children may alias parents
        uint8_t gene_b[2] = {from_b[2 * k], from_b[2 * k + 1]};
        memcpy(child_a + 2 * k, gene_a, 2);
        memcpy(child_b + 2 * k, gene_b, 2);
    }
}

// A ratio code drawn uniformly among the allowed ones.
static uint8_t random_ratio_code(const dato_genome_space* space, dato_rng* rng) {
    if (space->allow_ratio_off) return (uint8_t)dato_rng_below(rng, DATO_GENOME_N_RATIO_CODES);
    return (uint8_t)(1 + dato_rng_below(rng, DATO_GENOME_N_RATIO_CODES - 1));
}

void dato_genome_mutate(void* ctx, uint8_t* genome, dato_rng* rng) {
    const dato_genome_space* space = ctx;
    int full = space->n_branches + 1;
    // Step 0 is fixed: its depth must be full and no dynamics score exists yet to prune with.
    for (int k = 1; k < space->steps; k++) {
        if (dato_rng_uniform(rng) >= space->mutation_prob) continue;
        int depth = genome[2 * k];
        if (dato_rng_below(rng, 2) == 0) { // a local move keeps most of what the gene computes
            depth += dato_rng_below(rng, 2) == 0 ? -space->depth_step : space->depth_step;
            depth = depth < 0 ? 0 : depth > full ? full : depth;
        } else { // a jump reaches reuse and full from anywhere
            depth = (int)dato_rng_below(rng, (uint64_t)full + 1);
        }
        genome[2 * k] = (uint8_t)depth;
        genome[2 * k + 1] = random_ratio_code(space, rng);
    }
}

void dato_genome_repair(void* ctx, uint8_t* genome) {
    const dato_genome_space* space = ctx;
    int full = space->n_branches + 1;
    // Only what validation requires: out-of-range values clamp to the nearest legal one and
    // step 0 becomes full. A reuse step (depth 0) needs nothing: step 0 is full, so some step
    // before it has computed a prediction to reuse.
    for (int k = 0; k < space->steps; k++) {
        if (genome[2 * k] > full) genome[2 * k] = (uint8_t)full;
        if (genome[2 * k + 1] >= DATO_GENOME_N_RATIO_CODES) genome[2 * k + 1] = DATO_GENOME_N_RATIO_CODES - 1;
    }
    genome[0] = (uint8_t)full;
}

dato_nsga2_ops dato_genome_ops(const dato_genome_space* space) {
    return (dato_nsga2_ops){
        .crossover = dato_genome_crossover,
        .mutate = dato_genome_mutate,
        .repair = dato_genome_repair,
        .ctx = (void*)space, // the operators only read it
    };
}

// ---------------------------------------------------------------------------------------------
// Initial population

// A seeded random genome: step 0 full and unpruned (as dato-paper), every other step depth 0
// with probability reuse_prob, else uniform in 1..B+1, and a ratio code uniform among the allowed.
static void random_genome(const dato_genome_space* space, dato_rng* rng, uint8_t* genome) {
    int full = space->n_branches + 1;
    genome[0] = (uint8_t)full;
    genome[1] = 0;
    for (int k = 1; k < space->steps; k++) {
        int reuse = dato_rng_uniform(rng) < space->reuse_prob;
        genome[2 * k] = reuse ? 0 : (uint8_t)(1 + dato_rng_below(rng, (uint64_t)full));
        genome[2 * k + 1] = random_ratio_code(space, rng);
    }
    dato_genome_repair((void*)space, genome);
}

// 1 if genome equals one of the first n rows of population.
static int seen_before(const uint8_t* population, int n, const uint8_t* genome, size_t bytes) {
    for (int i = 0; i < n; i++)
        if (memcmp(population + (size_t)i * bytes, genome, bytes) == 0) return 1;
    return 0;
}

dato_status dato_genome_initial_population(const dato_genome_space* space, int pop_size, dato_rng* rng,
                                           uint8_t* out, dato_error* err) {
    DATO_TRY(dato_genome_space_check(space, err));
    if (pop_size < 1)
        return dato_fail(err, DATO_ERR_INVALID, "initial population: pop_size = %d must be >= 1", pop_size);
    size_t bytes = dato_genome_bytes(space);
    dato_schedule* schedule = malloc(sizeof(*schedule));
    uint8_t* candidate = malloc(bytes);
    if (!schedule || !candidate) {
        free(schedule);
        free(candidate);
        return dato_fail(err, DATO_ERR_NOMEM, "initial population: cannot allocate a schedule");
    }
    dato_status st = DATO_OK;
    int n = 0;
    for (int p = 0; p < DATO_GENOME_N_PRESETS && n < pop_size && st == DATO_OK; p++) {
        const char* spec = dato_genome_preset_specs[p];
        st = dato_schedule_preset(schedule, spec, space->steps, space->n_branches, err);
        if (st == DATO_OK) st = dato_genome_from_schedule(space, schedule, candidate, err);
        if (st == DATO_OK && !seen_before(out, n, candidate, bytes))
            memcpy(out + (size_t)n++ * bytes, candidate, bytes);
    }
    for (int failed_draws = 0; n < pop_size && st == DATO_OK;) {
        random_genome(space, rng, candidate);
        if (seen_before(out, n, candidate, bytes) && ++failed_draws < MAX_DUPLICATE_DRAWS) continue;
        memcpy(out + (size_t)n++ * bytes, candidate, bytes);
        failed_draws = 0;
    }
    free(schedule);
    free(candidate);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Hash and text

uint64_t dato_genome_hash(const uint8_t* bytes, size_t n) { return dato_fnv1a64(DATO_FNV_OFFSET, bytes, n); }

// "ddd/0.r " is at most 8 bytes per gene (depth <= 255).
size_t dato_genome_text_bytes(const dato_genome_space* space) { return 8 * (size_t)space->steps + 1; }

dato_status dato_genome_to_text(const dato_genome_space* space, const uint8_t* genome, char* text, size_t cap,
                                dato_error* err) {
    DATO_TRY(dato_genome_space_check(space, err));
    if (cap < dato_genome_text_bytes(space))
        return dato_fail(err, DATO_ERR_INVALID, "genome text: buffer of %zu bytes, %zu needed", cap,
                         dato_genome_text_bytes(space));
    size_t len = 0;
    text[0] = 0;
    for (int k = 0; k < space->steps; k++) {
        int code = genome[2 * k + 1];
        if (code >= DATO_GENOME_N_RATIO_CODES)
            return dato_fail(err, DATO_ERR_INVALID, "genome text: step %d: ratio code %d is out of range 0..%d", k,
                             code, DATO_GENOME_N_RATIO_CODES - 1);
        int n = snprintf(text + len, cap - len, "%s%d/%.1f", k ? " " : "", genome[2 * k], (double)dato_schedule_ratios[code]);
        if (n < 0 || (size_t)n >= cap - len)
            return dato_fail(err, DATO_ERR_INVALID, "genome text: buffer of %zu bytes is too small", cap);
        len += (size_t)n;
    }
    return DATO_OK;
}
