// Known-answer tests of the NSGA-II core: constrained domination, non-dominated sort, crowding
// (extremes of every objective, duplicates, zero range), the crowded tournament, (mu+lambda)
// selection, exact 2-D/3-D hypervolume on hand-computed sets, and a checkpoint round trip that
// must continue bit-identically.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hypervolume.h"
#include "moo_problems.h"
#include "nsga2.h"
#include "test_util.h"

static double max_err; // largest |got - expected| over the real-valued checks

static void check_close(double got, double expected, double tol, const char* what) {
    double e = isinf(expected) ? (got == expected ? 0 : INFINITY) : fabs(got - expected);
    if (e > max_err) max_err = e;
    CHECK(e <= tol, "%s: got %.17g, expected %.17g", what, got, expected);
}

static void test_compare(void) {
    const double a[2] = {1, 2}, b[2] = {2, 3}, c[2] = {2, 1}, d[2] = {1, 2};
    CHECK(dato_nsga2_compare(a, 0, b, 0, 2) == 1, "a dominates b");
    CHECK(dato_nsga2_compare(b, 0, a, 0, 2) == -1, "b is dominated by a");
    CHECK(dato_nsga2_compare(a, 0, c, 0, 2) == 0, "a and c are incomparable");
    CHECK(dato_nsga2_compare(a, 0, d, 0, 2) == 0, "equal vectors: neither dominates");
    CHECK(dato_nsga2_compare(b, 0, a, 0.5, 2) == 1, "feasible beats infeasible whatever the objectives");
    CHECK(dato_nsga2_compare(b, 0.2, a, 0.5, 2) == 1, "smaller violation wins");
    CHECK(dato_nsga2_compare(a, 0.5, b, 0.2, 2) == -1, "larger violation loses");
    CHECK(dato_nsga2_compare(a, 0.3, b, 0.3, 2) == 0, "equal violations: neither dominates");
}

static void test_nondominated_sort(void) {
    // (1,5) (2,3) (3,1) front 0; (2,4) behind (2,3); (4,4) behind (2,4); (5,5) behind (4,4); a copy of (3,1)
    const double f[7][2] = {{1, 5}, {2, 3}, {3, 1}, {2, 4}, {4, 4}, {5, 5}, {3, 1}};
    const int expected[7] = {0, 0, 0, 1, 2, 3, 0};
    int ranks[7];
    CHECK(dato_nsga2_nondominated_sort(&f[0][0], NULL, 7, 2, ranks, NULL) == DATO_OK, "sort");
    for (int i = 0; i < 7; i++) CHECK(ranks[i] == expected[i], "rank[%d] = %d, expected %d", i, ranks[i], expected[i]);
    // infeasible (1,5) (violation 2) and (5,5) (violation 1): behind every feasible one, (5,5) first
    const double violations[7] = {2, 0, 0, 0, 0, 1, 0};
    const int expected_constrained[7] = {4, 0, 0, 1, 2, 3, 0};
    CHECK(dato_nsga2_nondominated_sort(&f[0][0], violations, 7, 2, ranks, NULL) == DATO_OK, "constrained sort");
    for (int i = 0; i < 7; i++)
        CHECK(ranks[i] == expected_constrained[i], "constrained rank[%d] = %d, expected %d", i, ranks[i],
              expected_constrained[i]);
    dato_error err = {{0}};
    CHECK(dato_nsga2_nondominated_sort(&f[0][0], NULL, -1, 2, ranks, &err) == DATO_ERR_INVALID && err.msg[0],
          "negative n rejected");
}

static void test_crowding(void) {
    double crowding[8];
    // 2 objectives, ranges 1: interior terms (0.5 + 0.7) and (0.8 + 0.6)
    const double f2[4][2] = {{0, 1}, {0.2, 0.6}, {0.5, 0.3}, {1, 0}};
    const int all4[4] = {0, 1, 2, 3};
    CHECK(dato_nsga2_crowding(&f2[0][0], 2, all4, 4, crowding, NULL) == DATO_OK, "crowding 2-D");
    check_close(crowding[0], INFINITY, 0, "2-D extreme f1 min");
    check_close(crowding[3], INFINITY, 0, "2-D extreme f1 max");
    check_close(crowding[1], 1.2, 1e-12, "2-D interior 1");
    check_close(crowding[2], 1.4, 1e-12, "2-D interior 2");
    // 3 objectives (SEARCH.md §3): E is the max of f1 only and must be protected; D = 0.5 + 0.8 + 0.7
    const double f3[5][3] = {{0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {0.5, 0.5, 0.5}, {2, 0.2, 0.3}};
    const int all5[5] = {0, 1, 2, 3, 4};
    CHECK(dato_nsga2_crowding(&f3[0][0], 3, all5, 5, crowding, NULL) == DATO_OK, "crowding 3-D");
    for (int i = 0; i < 5; i++)
        if (i != 3) check_close(crowding[i], INFINITY, 0, "3-D extreme");
    check_close(crowding[3], 2.0, 1e-12, "3-D interior D");
    // a duplicate counts once: the later copy gets 0, the first the distance among distinct vectors
    const double fd[4][2] = {{0, 1}, {0.5, 0.5}, {0.5, 0.5}, {1, 0}};
    CHECK(dato_nsga2_crowding(&fd[0][0], 2, all4, 4, crowding, NULL) == DATO_OK, "crowding duplicates");
    check_close(crowding[1], 2.0, 1e-12, "first copy");
    check_close(crowding[2], 0.0, 0, "later copy");
    check_close(crowding[0], INFINITY, 0, "extreme beside duplicates");
    // all copies: the first is an extreme, the rest 0
    const double fa[3][2] = {{1, 1}, {1, 1}, {1, 1}};
    const int all3[3] = {0, 1, 2};
    CHECK(dato_nsga2_crowding(&fa[0][0], 2, all3, 3, crowding, NULL) == DATO_OK, "crowding all copies");
    check_close(crowding[0], INFINITY, 0, "all copies: first");
    check_close(crowding[1] + crowding[2], 0.0, 0, "all copies: the rest");
    // zero range in f1 adds nothing (no infinities from it): middle gets (3 - 1) / 2 from f2 only
    const double fz[3][2] = {{1, 3}, {1, 2}, {1, 1}};
    CHECK(dato_nsga2_crowding(&fz[0][0], 2, all3, 3, crowding, NULL) == DATO_OK, "crowding zero range");
    check_close(crowding[1], 1.0, 1e-12, "zero range: middle");
    check_close(crowding[0], INFINITY, 0, "zero range: f2 max");
    // members as a subset: only their entries are written
    const int subset[2] = {1, 3};
    crowding[0] = crowding[2] = -7;
    CHECK(dato_nsga2_crowding(&f2[0][0], 2, subset, 2, crowding, NULL) == DATO_OK, "crowding subset");
    check_close(crowding[1], INFINITY, 0, "subset of two: both extremes");
    check_close(crowding[0] + crowding[2], -14, 0, "non-members untouched");
}

static void test_tournament(void) {
    const int ranks[4] = {0, 1, 0, 0};
    const double crowding[4] = {1.0, INFINITY, 2.0, 1.0};
    CHECK(dato_nsga2_tournament_winner(0, 1, ranks, crowding) == 0, "lower rank wins over infinite crowding");
    CHECK(dato_nsga2_tournament_winner(1, 0, ranks, crowding) == 0, "lower rank wins (swapped)");
    CHECK(dato_nsga2_tournament_winner(0, 2, ranks, crowding) == 2, "larger crowding wins");
    CHECK(dato_nsga2_tournament_winner(3, 0, ranks, crowding) == 0, "full tie: lower index");
}

// Operators that copy the parents unchanged, so children reveal who won the tournaments.
static void copy_crossover(void* ctx, const uint8_t* a, const uint8_t* b, uint8_t* child_a, uint8_t* child_b,
                           dato_rng* rng) {
    (void)ctx, (void)rng;
    *child_a = *a, *child_b = *b;
}
static void no_mutation(void* ctx, uint8_t* genome, dato_rng* rng) { (void)ctx, (void)genome, (void)rng; }

static void test_offspring_and_select(void) {
    dato_nsga2_ops ops = {copy_crossover, no_mutation, NULL, NULL};
    dato_nsga2_config config = {4, 2, 1, 7};
    dato_nsga2* s = NULL;
    dato_error err = {{0}};
    CHECK(dato_nsga2_create(&s, &config, &ops, &err) == DATO_OK, "create: %s", err.msg);
    if (!s) return;
    // parents ranked 0, 1, 2, 3 along a chain: each plays exactly two tournaments, so 0 wins twice
    // and 3 never
    const uint8_t chain_genomes[4] = {0, 1, 2, 3};
    const double chain[4][2] = {{0, 0}, {1, 1}, {2, 2}, {3, 3}};
    CHECK(dato_nsga2_set_population(s, chain_genomes, &chain[0][0], NULL, &err) == DATO_OK, "set: %s", err.msg);
    uint8_t children[4];
    int wins[4] = {0};
    CHECK(dato_nsga2_make_offspring(s, children, &err) == DATO_OK, "offspring: %s", err.msg);
    for (int i = 0; i < 4; i++) wins[children[i]]++;
    CHECK(wins[0] == 2 && wins[3] == 0, "tournament wins: best %d (expected 2), worst %d (expected 0)", wins[0],
          wins[3]);

    // (mu+lambda): front 0 = P0 P1 C0; front 1 = P2 and its copy C3 (the copy gets crowding 0);
    // C1 is infeasible and last though its objectives are best
    const uint8_t parents[4] = {10, 11, 12, 13};
    const double parent_f[4][2] = {{0, 1}, {1, 0}, {0.5, 0.5}, {2, 2}};
    const uint8_t kids[4] = {20, 21, 22, 23};
    const double kid_f[4][2] = {{0.2, 0.2}, {0.1, 0.1}, {3, 3}, {0.5, 0.5}};
    const double kid_violations[4] = {0, 1.0, 0, 0};
    CHECK(dato_nsga2_set_population(s, parents, &parent_f[0][0], NULL, &err) == DATO_OK, "set: %s", err.msg);
    const double bad_f[4][2] = {{0, 1}, {NAN, 0}, {0, 0}, {0, 0}};
    CHECK(dato_nsga2_select(s, kids, &bad_f[0][0], NULL, &err) == DATO_ERR_INVALID && strstr(err.msg, "objectives[1]"),
          "NaN objective rejected: %s", err.msg);
    CHECK(s->generation == 0 && s->genomes[1] == 11, "state unchanged after a rejected select");
    CHECK(dato_nsga2_select(s, kids, &kid_f[0][0], kid_violations, &err) == DATO_OK, "select: %s", err.msg);
    const uint8_t survivors[4] = {10, 11, 12, 20};
    const int survivor_ranks[4] = {0, 0, 1, 0};
    for (int i = 0; i < 4; i++) {
        CHECK(s->genomes[i] == survivors[i], "survivor %d: genome %d, expected %d", i, s->genomes[i], survivors[i]);
        CHECK(s->ranks[i] == survivor_ranks[i], "survivor %d: rank %d, expected %d", i, s->ranks[i],
              survivor_ranks[i]);
    }
    CHECK(s->generation == 1, "generation %lld, expected 1", (long long)s->generation);
    int front[4];
    int n_front = dato_nsga2_first_front(s, front);
    CHECK(n_front == 3 && front[0] == 0 && front[1] == 1 && front[2] == 3, "first front of %d", n_front);
    dato_nsga2_free(s);

    dato_nsga2_config bad = {1, 2, 1, 0};
    CHECK(dato_nsga2_create(&s, &bad, &ops, &err) == DATO_ERR_INVALID && s == NULL, "pop_size 1 rejected");
}

static void test_hypervolume(void) {
    double hv = -1;
    // staircase (1,3) (2,2) (3,1) under (4,4): 3 + 2 + 1; a dominated point, a copy, a point beyond the
    // reference, one on its boundary and a NaN add nothing
    const double p2[8][2] = {{1, 3}, {2, 2}, {3, 1}, {3, 3}, {2, 2}, {5, 0}, {4, 1}, {NAN, 0}};
    const double r2[2] = {4, 4};
    CHECK(dato_hypervolume(&p2[0][0], 8, 2, r2, &hv, NULL) == DATO_OK, "hv 2-D");
    check_close(hv, 6.0, 1e-12, "hv 2-D staircase");
    CHECK(dato_hypervolume(&p2[0][0], 0, 2, r2, &hv, NULL) == DATO_OK, "hv of no points");
    check_close(hv, 0.0, 0, "hv of no points");
    // three boxes of 0.25 meeting pairwise and all together in 0.125: 3(0.25) - 3(0.125) + 0.125
    const double p3[3][3] = {{0, 0.5, 0.5}, {0.5, 0, 0.5}, {0.5, 0.5, 0}};
    const double r3[3] = {1, 1, 1};
    CHECK(dato_hypervolume(&p3[0][0], 3, 3, r3, &hv, NULL) == DATO_OK, "hv 3-D");
    check_close(hv, 0.5, 1e-12, "hv 3-D inclusion-exclusion");
    // a flat set: the 2-D area times the depth
    const double flat[4][3] = {{1, 3, 0}, {2, 2, 0}, {3, 1, 0}, {2, 2, 1}};
    const double r_flat[3] = {4, 4, 2};
    CHECK(dato_hypervolume(&flat[0][0], 4, 3, r_flat, &hv, NULL) == DATO_OK, "hv 3-D flat");
    check_close(hv, 12.0, 1e-12, "hv 3-D flat");
    // random sets: 3-D with a constant f3 equals 2-D times the depth
    dato_rng rng;
    dato_rng_seed(&rng, 3);
    double pts2[200][2], pts3[200][3];
    for (int i = 0; i < 200; i++) {
        pts2[i][0] = pts3[i][0] = dato_rng_uniform(&rng);
        pts2[i][1] = pts3[i][1] = 1 - pts2[i][0] + 0.3 * dato_rng_uniform(&rng);
        pts3[i][2] = 0.25;
    }
    double hv2 = 0, hv3 = 0;
    const double r_rand[3] = {1.1, 1.1, 1.0};
    CHECK(dato_hypervolume(&pts2[0][0], 200, 2, r_rand, &hv2, NULL) == DATO_OK, "hv random 2-D");
    CHECK(dato_hypervolume(&pts3[0][0], 200, 3, r_rand, &hv3, NULL) == DATO_OK, "hv random 3-D");
    check_close(hv3, hv2 * 0.75, 1e-12, "hv 3-D of a flat random set");
    dato_error err = {{0}};
    CHECK(dato_hypervolume(&p3[0][0], 1, 4, r3, &hv, &err) == DATO_ERR_UNSUPPORTED && err.msg[0], "4 objectives");
}

// Runs generations of ZDT1 with pop 20.
static int run_zdt1(dato_nsga2* s, int generations) {
    uint8_t genomes[20 * 30 * sizeof(double)];
    double objectives[20][2], x[30];
    for (int g = 0; g < generations; g++) {
        if (dato_nsga2_make_offspring(s, genomes, NULL) != DATO_OK) return 0;
        for (int i = 0; i < 20; i++) {
            memcpy(x, genomes + (size_t)i * sizeof(x), sizeof(x));
            dato_moo_evaluate(DATO_MOO_ZDT1, x, objectives[i], NULL);
        }
        if (dato_nsga2_select(s, genomes, &objectives[0][0], NULL, NULL) != DATO_OK) return 0;
    }
    return 1;
}

static void test_checkpoint_round_trip(void) {
    dato_real_ops real_ops = dato_real_ops_default(30);
    dato_nsga2_ops ops = dato_real_nsga2_ops(&real_ops);
    dato_nsga2_config config = {20, 2, 30 * (int)sizeof(double), 42};
    dato_nsga2 *straight = NULL, *resumed = NULL;
    dato_error err = {{0}};
    CHECK(dato_nsga2_create(&straight, &config, &ops, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_nsga2_create(&resumed, &config, &ops, &err) == DATO_OK, "%s", err.msg);
    if (!straight || !resumed) return;
    uint8_t genomes[20 * 30 * sizeof(double)];
    double objectives[20][2], violations[20], x[30];
    dato_rng init;
    dato_rng_seed(&init, 5);
    for (int i = 0; i < 20; i++) {
        dato_real_random_genome(&real_ops, genomes + (size_t)i * sizeof(x), &init);
        memcpy(x, genomes + (size_t)i * sizeof(x), sizeof(x));
        dato_moo_evaluate(DATO_MOO_ZDT1, x, objectives[i], NULL);
    }
    CHECK(dato_nsga2_set_population(straight, genomes, &objectives[0][0], NULL, &err) == DATO_OK, "%s", err.msg);
    CHECK(run_zdt1(straight, 10), "first 10 generations");
    uint64_t rng_state[4];
    int64_t generation = -1;
    CHECK(dato_nsga2_get_state(straight, genomes, &objectives[0][0], violations, rng_state, &generation, &err) ==
              DATO_OK,
          "get_state: %s", err.msg);
    CHECK(generation == 10, "generation %lld after 10", (long long)generation);
    CHECK(dato_nsga2_set_state(resumed, genomes, &objectives[0][0], violations, rng_state, generation, &err) ==
              DATO_OK,
          "set_state: %s", err.msg);
    CHECK(run_zdt1(straight, 15) && run_zdt1(resumed, 15), "15 more generations each");
    size_t bytes = sizeof(genomes);
    CHECK(memcmp(straight->genomes, resumed->genomes, bytes) == 0, "genomes differ after resume");
    CHECK(memcmp(straight->objectives, resumed->objectives, sizeof(objectives)) == 0, "objectives differ");
    CHECK(memcmp(straight->ranks, resumed->ranks, 20 * sizeof(int)) == 0, "ranks differ");
    CHECK(memcmp(straight->crowding, resumed->crowding, 20 * sizeof(double)) == 0, "crowding differs");
    CHECK(memcmp(&straight->rng, &resumed->rng, sizeof(dato_rng)) == 0, "rng differs");
    CHECK(straight->generation == 25 && resumed->generation == 25, "generations %lld %lld",
          (long long)straight->generation, (long long)resumed->generation);
    const uint64_t zero_rng[4] = {0};
    CHECK(dato_nsga2_set_state(resumed, genomes, &objectives[0][0], violations, zero_rng, 3, &err) ==
              DATO_ERR_INVALID,
          "all-zero rng state rejected");
    dato_nsga2_free(straight);
    dato_nsga2_free(resumed);
}

int main(void) {
    test_compare();
    test_nondominated_sort();
    test_crowding();
    test_tournament();
    test_offspring_and_select();
    test_hypervolume();
    test_checkpoint_round_trip();
    printf("max error of real-valued checks: %.3g\n", max_err);
    return test_summary();
}
