// The DaTo genome: exact genome <-> schedule round trips for every preset, operators that keep
// genes in range, repair, complementary crossover, the mutation rate, determinism from the seed,
// the initial population (presets first, no duplicates), the hash and the text form.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genome.h"
#include "test_util.h"

static dato_schedule sched, back; // ~8 KB each: kept off the stack

static int contains(const char* msg, const char* part) { return strstr(msg, part) != NULL; }

// preset -> genome -> schedule gives the preset's bytes back, and the schedule validates.
static void check_preset_round_trip(const dato_genome_space* space, const char* spec) {
    dato_error err = {{0}};
    uint8_t genome[2 * DATO_SCHEDULE_MAX_STEPS];
    CHECK(dato_schedule_preset(&sched, spec, space->steps, space->n_branches, &err) == DATO_OK, "%s: %s", spec,
          err.msg);
    CHECK(dato_genome_from_schedule(space, &sched, genome, &err) == DATO_OK, "%s: %s", spec, err.msg);
    memset(&back, 0x5a, sizeof(back));
    CHECK(dato_genome_to_schedule(space, genome, &back, &err) == DATO_OK, "%s: %s", spec, err.msg);
    CHECK(memcmp(&sched, &back, sizeof(sched)) == 0, "%s (T=%d, B=%d): schedule bytes differ after the round trip",
          spec, space->steps, space->n_branches);
    CHECK(dato_schedule_validate(&back, space->steps, space->n_branches, &err) == DATO_OK, "%s: %s", spec, err.msg);
}

static void test_round_trips(void) {
    int shapes[][2] = {{50, 12}, {10, 12}, {25, 3}, {1, 1}, {7, 254}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        dato_genome_space space;
        dato_error err = {{0}};
        CHECK(dato_genome_space_init(&space, shapes[s][0], shapes[s][1], &err) == DATO_OK, "%s", err.msg);
        for (int p = 0; p < DATO_GENOME_N_PRESETS; p++) check_preset_round_trip(&space, dato_genome_preset_specs[p]);
        check_preset_round_trip(&space, "deepcache:1");
        if (space.steps >= 20) check_preset_round_trip(&space, "deepcache:5:center=15:pow=1.4");
    }
    // Random valid genomes: genome -> schedule -> genome is the identity.
    dato_genome_space space;
    dato_genome_space_init(&space, 50, 12, NULL);
    dato_rng rng;
    dato_rng_seed(&rng, 7);
    uint8_t pop[20 * 100], again[100];
    dato_error err = {{0}};
    CHECK(dato_genome_initial_population(&space, 20, &rng, pop, &err) == DATO_OK, "%s", err.msg);
    int identical = 1;
    for (int i = 0; i < 20; i++) {
        identical &= dato_genome_to_schedule(&space, pop + 100 * i, &sched, &err) == DATO_OK;
        identical &= dato_genome_from_schedule(&space, &sched, again, &err) == DATO_OK;
        identical &= memcmp(again, pop + 100 * i, 100) == 0;
    }
    CHECK(identical, "genome -> schedule -> genome changed a genome: %s", err.msg);

    // Ratios outside the allowed set and schedules for another run are refused.
    dato_schedule_preset(&sched, "baseline", 50, 12, NULL);
    sched.genes[3].ratio = 0.35f;
    CHECK(dato_genome_from_schedule(&space, &sched, again, &err) != DATO_OK && contains(err.msg, "step 3"),
          "bad ratio: '%s'", err.msg);
    dato_schedule_preset(&sched, "baseline", 40, 12, NULL);
    CHECK(dato_genome_from_schedule(&space, &sched, again, &err) != DATO_OK && contains(err.msg, "steps"),
          "wrong steps: '%s'", err.msg);
    CHECK(dato_schedule_ratio_index(0.5) == 3 && dato_schedule_ratios[3] == 0.5f &&
              dato_schedule_ratio_index(0.45) == -1 && DATO_GENOME_N_RATIO_CODES == 6,
          "ratio codes");
}

static void test_space_and_check(void) {
    dato_genome_space space;
    dato_error err = {{0}};
    CHECK(dato_genome_space_init(&space, 50, 12, &err) == DATO_OK, "%s", err.msg);
    CHECK(space.allow_ratio_off == 1 && space.mutation_prob == 1.0 / 50 && space.depth_step == 1 &&
              dato_genome_bytes(&space) == 100,
          "defaults");
    CHECK(dato_genome_space_init(&space, 0, 12, &err) != DATO_OK && contains(err.msg, "steps"), "'%s'", err.msg);
    CHECK(dato_genome_space_init(&space, 50, 255, &err) != DATO_OK && contains(err.msg, "n_branches"), "'%s'",
          err.msg);
    dato_genome_space_init(&space, 50, 12, NULL);
    space.mutation_prob = 1.5;
    CHECK(dato_genome_space_check(&space, &err) != DATO_OK && contains(err.msg, "mutation_prob"), "'%s'", err.msg);

    dato_genome_space_init(&space, 4, 12, NULL);
    uint8_t g[8] = {13, 0, 2, 3, 0, 5, 13, 1};
    CHECK(dato_genome_check(&space, g, &err) == DATO_OK, "%s", err.msg);
    g[4] = 14;
    CHECK(dato_genome_check(&space, g, &err) != DATO_OK && contains(err.msg, "step 2") && contains(err.msg, "depth"),
          "'%s'", err.msg);
    g[4] = 0, g[7] = 6;
    CHECK(dato_genome_check(&space, g, &err) != DATO_OK && contains(err.msg, "step 3") && contains(err.msg, "ratio"),
          "'%s'", err.msg);
    g[7] = 1, g[0] = 12;
    CHECK(dato_genome_check(&space, g, &err) != DATO_OK && contains(err.msg, "step 0"), "'%s'", err.msg);
}

// 10,000 rounds of crossover + mutation on a population, with large steps and rates: every
// child stays valid; with ratio 0 disallowed no mutated gene of an all-pruned parent gets 0.
static void test_operators_in_range(void) {
    dato_genome_space space;
    dato_genome_space_init(&space, 30, 12, NULL);
    space.mutation_prob = 0.5;
    space.depth_step = 3;
    dato_nsga2_ops ops = dato_genome_ops(&space);
    enum { POP = 16, BYTES = 60 };
    uint8_t pop[POP * BYTES], child_a[BYTES], child_b[BYTES];
    dato_rng rng;
    dato_rng_seed(&rng, 1);
    dato_error err = {{0}};
    CHECK(dato_genome_initial_population(&space, POP, &rng, pop, &err) == DATO_OK, "%s", err.msg);
    int invalid = 0;
    for (int round = 0; round < 10000; round++) {
        int i = (int)dato_rng_below(&rng, POP), j = (int)dato_rng_below(&rng, POP);
        ops.crossover(ops.ctx, pop + i * BYTES, pop + j * BYTES, child_a, child_b, &rng);
        ops.mutate(ops.ctx, child_a, &rng);
        ops.mutate(ops.ctx, child_b, &rng);
        invalid += dato_genome_check(&space, child_a, &err) != DATO_OK;
        invalid += dato_genome_check(&space, child_b, &err) != DATO_OK;
        memcpy(pop + i * BYTES, child_a, BYTES); // the population drifts, reaching the range ends
        memcpy(pop + j * BYTES, child_b, BYTES);
    }
    CHECK(invalid == 0, "%d invalid children over 10,000 rounds (last: %s)", invalid, err.msg);

    space.allow_ratio_off = 0;
    dato_schedule_preset(&sched, "tome:0.5", 30, 12, NULL);
    uint8_t g[BYTES];
    dato_genome_from_schedule(&space, &sched, g, NULL);
    int zeros = 0;
    for (int round = 0; round < 10000; round++) {
        ops.mutate(ops.ctx, g, &rng);
        for (int k = 0; k < 30; k++) zeros += g[2 * k + 1] == 0;
        invalid += dato_genome_check(&space, g, &err) != DATO_OK;
    }
    CHECK(zeros == 0 && invalid == 0, "allow_ratio_off = 0: %d zero ratio codes, %d invalid genomes", zeros, invalid);
    printf("operators: 20,000 children and 10,000 mutations, %d out of range\n", invalid);
}

static void test_repair(void) {
    dato_genome_space space;
    dato_genome_space_init(&space, 20, 12, NULL);
    dato_rng rng;
    dato_rng_seed(&rng, 3);
    uint8_t g[40], before[40];
    dato_error err = {{0}};
    int invalid = 0, changed_valid = 0;
    for (int round = 0; round < 1000; round++) {
        for (int i = 0; i < 40; i++) g[i] = (uint8_t)dato_rng_below(&rng, 256);
        memcpy(before, g, 40);
        dato_genome_repair(&space, g);
        invalid += dato_genome_check(&space, g, &err) != DATO_OK;
        // minimal: in-range values are kept, out-of-range ones clamp to the top
        for (int k = 1; k < 20; k++) {
            int d = before[2 * k], r = before[2 * k + 1];
            invalid += g[2 * k] != (d > 13 ? 13 : d);
            invalid += g[2 * k + 1] != (r > 5 ? 5 : r);
        }
        memcpy(before, g, 40); // a valid genome is left alone
        dato_genome_repair(&space, g);
        changed_valid += memcmp(before, g, 40) != 0;
    }
    CHECK(invalid == 0 && changed_valid == 0, "repair: %d bad genes, %d valid genomes changed", invalid, changed_valid);
    uint8_t reuse_first[40] = {0};
    dato_genome_repair(&space, reuse_first);
    CHECK(reuse_first[0] == 13 && reuse_first[2] == 0, "step 0 becomes full, a reuse step after it stays");
}

static void test_crossover_complementary(void) {
    dato_genome_space space;
    dato_genome_space_init(&space, 50, 12, NULL);
    dato_rng rng;
    dato_rng_seed(&rng, 11);
    uint8_t pop[2 * 100], ca[100], cb[100];
    dato_genome_initial_population(&space, 2, &rng, pop, NULL);
    dato_schedule_preset(&sched, "dato-paper", 50, 12, NULL);
    dato_genome_from_schedule(&space, &sched, pop + 100, NULL); // two parents differing in most genes
    const uint8_t *a = pop, *b = pop + 100;
    int bad = 0, from_a = 0, total = 0;
    for (int round = 0; round < 1000; round++) {
        dato_genome_crossover(&space, a, b, ca, cb, &rng);
        for (int k = 0; k < 50; k++) {
            int a_then_b = memcmp(ca + 2 * k, a + 2 * k, 2) == 0 && memcmp(cb + 2 * k, b + 2 * k, 2) == 0;
            int b_then_a = memcmp(ca + 2 * k, b + 2 * k, 2) == 0 && memcmp(cb + 2 * k, a + 2 * k, 2) == 0;
            bad += !a_then_b && !b_then_a;
            if (memcmp(a + 2 * k, b + 2 * k, 2) != 0) {
                from_a += a_then_b;
                total++;
            }
        }
    }
    double share = (double)from_a / total;
    // n = 1000 * (differing genes) >= 10,000 draws: sd <= 0.005, tolerance 0.03 (6 sd)
    CHECK(bad == 0, "%d genes of the children are not the parents' genes, swapped or not", bad);
    CHECK(fabs(share - 0.5) < 0.03, "child_a took %.4f of differing genes from a, expected 0.5 +- 0.03", share);
    printf("crossover: child_a takes %.4f of genes from a (|error| %.4f), %d genes not complementary\n", share,
           fabs(share - 0.5), bad);

    // children may alias the parents
    uint8_t x[100], y[100];
    memcpy(x, a, 100), memcpy(y, b, 100);
    dato_rng r1, r2;
    dato_rng_seed(&r1, 5), dato_rng_seed(&r2, 5);
    dato_genome_crossover(&space, a, b, ca, cb, &r1);
    dato_genome_crossover(&space, x, y, x, y, &r2);
    CHECK(memcmp(x, ca, 100) == 0 && memcmp(y, cb, 100) == 0, "crossover in place differs");
}

// Genes at an interior depth (6 of 0..13) and ratio code 3 mutate with probability p; a
// mutated gene keeps its value only when the jump redraws depth 6 and the ratio redraws 3:
// P(changed) = p * (1 - 0.5 * 1/14 * 1/6).
static void test_mutation_rate(void) {
    dato_genome_space space;
    dato_genome_space_init(&space, 50, 12, NULL);
    space.mutation_prob = 0.2;
    dato_rng rng;
    dato_rng_seed(&rng, 21);
    uint8_t g[100];
    long changed = 0, genes = 0, step0_changed = 0;
    for (int trial = 0; trial < 2000; trial++) {
        g[0] = 13, g[1] = 0;
        for (int k = 1; k < 50; k++) g[2 * k] = 6, g[2 * k + 1] = 3;
        dato_genome_mutate(&space, g, &rng);
        step0_changed += g[0] != 13 || g[1] != 0;
        for (int k = 1; k < 50; k++) changed += g[2 * k] != 6 || g[2 * k + 1] != 3;
        genes += 49;
    }
    double expected = 0.2 * (1.0 - 0.5 / 14.0 / 6.0), rate = (double)changed / genes;
    // n = 98,000 genes: sd = sqrt(e (1 - e) / n) = 0.0013; tolerance 0.007 (5 sd)
    CHECK(fabs(rate - expected) < 0.007, "mutation changed %.4f of genes, expected %.4f +- 0.007", rate, expected);
    CHECK(step0_changed == 0, "step 0 changed %ld times", step0_changed);
    printf("mutation: rate %.4f, expected %.4f, |error| %.4f\n", rate, expected, fabs(rate - expected));
}

// Same seed, same bytes (initial population and 100 rounds of operators); another seed differs.
static void run_seeded(uint64_t seed, uint8_t* pop) {
    dato_genome_space space;
    dato_genome_space_init(&space, 50, 12, NULL);
    space.mutation_prob = 0.1;
    dato_rng rng;
    dato_rng_seed(&rng, seed);
    dato_genome_initial_population(&space, 24, &rng, pop, NULL);
    for (int round = 0; round < 100; round++) {
        int i = (int)dato_rng_below(&rng, 24), j = (int)dato_rng_below(&rng, 24);
        dato_genome_crossover(&space, pop + 100 * i, pop + 100 * j, pop + 100 * i, pop + 100 * j, &rng);
        dato_genome_mutate(&space, pop + 100 * i, &rng);
    }
}

static void test_determinism(void) {
    static uint8_t p1[24 * 100], p2[24 * 100], p3[24 * 100];
    run_seeded(42, p1);
    run_seeded(42, p2);
    run_seeded(43, p3);
    CHECK(memcmp(p1, p2, sizeof(p1)) == 0, "same seed, different bytes");
    CHECK(memcmp(p1, p3, sizeof(p1)) != 0, "different seeds, same bytes");
}

static void test_initial_population(void) {
    dato_genome_space space;
    dato_genome_space_init(&space, 50, 12, NULL);
    enum { POP = 40, BYTES = 100 };
    static uint8_t pop[POP * BYTES];
    dato_rng rng;
    dato_rng_seed(&rng, 99);
    dato_error err = {{0}};
    CHECK(dato_genome_initial_population(&space, POP, &rng, pop, &err) == DATO_OK, "%s", err.msg);
    uint8_t g[BYTES];
    for (int p = 0; p < DATO_GENOME_N_PRESETS; p++) { // at 50 steps every preset is distinct
        dato_schedule_preset(&sched, dato_genome_preset_specs[p], 50, 12, NULL);
        dato_genome_from_schedule(&space, &sched, g, NULL);
        CHECK(memcmp(pop + p * BYTES, g, BYTES) == 0, "row %d is not preset %s", p, dato_genome_preset_specs[p]);
    }
    int duplicates = 0, invalid = 0, reuse = 0, genes = 0;
    for (int i = 0; i < POP; i++) {
        invalid += dato_genome_check(&space, pop + i * BYTES, &err) != DATO_OK;
        for (int j = 0; j < i; j++) duplicates += memcmp(pop + i * BYTES, pop + j * BYTES, BYTES) == 0;
        for (int k = 1; i >= DATO_GENOME_N_PRESETS && k < 50; k++, genes++) reuse += pop[i * BYTES + 2 * k] == 0;
    }
    CHECK(duplicates == 0 && invalid == 0, "%d duplicates, %d invalid genomes", duplicates, invalid);
    // random genes: P(depth 0) = 0.1 over 29 * 49 = 1421 genes, sd 0.008; tolerance 0.04
    double reuse_share = (double)reuse / genes;
    CHECK(fabs(reuse_share - 0.1) < 0.04, "random genomes reuse %.3f of steps, expected 0.1 +- 0.04", reuse_share);

    // A population smaller than the presets takes the first ones.
    uint8_t three[3 * BYTES];
    CHECK(dato_genome_initial_population(&space, 3, &rng, three, &err) == DATO_OK &&
              memcmp(three, pop, 3 * BYTES) == 0,
          "pop 3 is not the first three presets");
    // One step: only baseline and tome:R are distinct; the rest fill with (repeated) baseline.
    dato_genome_space tiny;
    dato_genome_space_init(&tiny, 1, 12, NULL);
    uint8_t small[10 * 2];
    CHECK(dato_genome_initial_population(&tiny, 10, &rng, small, &err) == DATO_OK, "%s", err.msg);
    int distinct_first = 1;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < i; j++) distinct_first &= memcmp(small + 2 * i, small + 2 * j, 2) != 0;
    CHECK(distinct_first && small[1] == 0 && small[3] == 1 && small[11] == 5 && small[12] == 13,
          "one-step population: 6 distinct presets first");
    CHECK(dato_genome_initial_population(&space, 0, &rng, pop, &err) != DATO_OK && contains(err.msg, "pop_size"),
          "'%s'", err.msg);
    printf("initial population: %d duplicates, reuse share %.3f (|error| %.3f)\n", duplicates, reuse_share,
           fabs(reuse_share - 0.1));
}

static void test_hash_and_text(void) {
    CHECK(dato_genome_hash((const uint8_t*)"", 0) == 0xcbf29ce484222325ULL, "FNV-1a 64 of the empty string");
    CHECK(dato_genome_hash((const uint8_t*)"a", 1) == 0xaf63dc4c8601ec8cULL, "FNV-1a 64 of 'a'");
    CHECK(dato_genome_hash((const uint8_t*)"foobar", 6) == 0x85944171f73967e8ULL, "FNV-1a 64 of 'foobar'");

    dato_genome_space space;
    dato_genome_space_init(&space, 3, 12, NULL);
    uint8_t g[6] = {13, 0, 2, 1, 0, 5};
    char text[64];
    dato_error err = {{0}};
    CHECK(dato_genome_to_text(&space, g, text, sizeof(text), &err) == DATO_OK &&
              strcmp(text, "13/0.0 2/0.3 0/0.7") == 0,
          "text '%s' (%s)", text, err.msg);
    CHECK(dato_genome_to_text(&space, g, text, 10, &err) != DATO_OK && contains(err.msg, "buffer"), "'%s'", err.msg);
    dato_genome_space wide;
    dato_genome_space_init(&wide, 4, 254, NULL);
    uint8_t w[8] = {255, 5, 255, 5, 255, 5, 255, 5};
    char exact[33];
    CHECK(dato_genome_text_bytes(&wide) == 33, "text bytes");
    CHECK(dato_genome_to_text(&wide, w, exact, sizeof(exact), &err) == DATO_OK &&
              strcmp(exact, "255/0.7 255/0.7 255/0.7 255/0.7") == 0,
          "widest text '%s'", exact);
}

int main(void) {
    test_space_and_check();
    test_round_trips();
    test_operators_in_range();
    test_repair();
    test_crossover_complementary();
    test_mutation_rate();
    test_determinism();
    test_initial_population();
    test_hash_and_text();
    return test_summary();
}
