// NSGA-II: fast non-dominated sort, crowding distance, crowded tournament and (mu+lambda)
// replacement over opaque byte genomes. See nsga2.h for the rules and docs/NSGA2.md for why.
#include "nsga2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- helpers ----

int dato_nsga2_compare(const double* a_objectives, double a_violation, const double* b_objectives,
                       double b_violation, int n_obj) {
    // constraints first: feasible beats infeasible, then the smaller violation
    if (a_violation > 0 || b_violation > 0) {
        if (a_violation < b_violation) return 1;
        if (b_violation < a_violation) return -1;
        if (a_violation > 0) return 0; // equally infeasible: neither dominates
    }
    int a_better = 0, b_better = 0;
    for (int m = 0; m < n_obj; m++) {
        if (a_objectives[m] < b_objectives[m]) a_better = 1;
        else if (b_objectives[m] < a_objectives[m]) b_better = 1;
    }
    if (a_better && !b_better) return 1;
    if (b_better && !a_better) return -1;
    return 0;
}

dato_status dato_nsga2_nondominated_sort(const double* objectives, const double* violations, int n, int n_obj,
                                         int* ranks, dato_error* err) {
    if (n < 0 || n_obj < 1 || (n > 0 && (!objectives || !ranks)))
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: non-dominated sort: bad arguments (n %d, n_obj %d)", n,
                         n_obj);
    if (n == 0) return DATO_OK;
    // dominated[p * n + k]: the k-th solution p dominates (S_p); counts: how many dominate p (n_p)
    int* dominated = malloc((size_t)n * (size_t)n * sizeof(int));
    int* n_dominated = calloc((size_t)n, sizeof(int));
    int* counts = calloc((size_t)n, sizeof(int));
    int* front = malloc((size_t)n * sizeof(int)); // current front, then the next one appended
    if (!dominated || !n_dominated || !counts || !front) {
        free(dominated), free(n_dominated), free(counts), free(front);
        return dato_fail(err, DATO_ERR_NOMEM, "nsga2: non-dominated sort of %d solutions: out of memory", n);
    }
    for (int p = 0; p < n; p++) {
        for (int q = p + 1; q < n; q++) {
            int c = dato_nsga2_compare(objectives + (size_t)p * n_obj, violations ? violations[p] : 0,
                                       objectives + (size_t)q * n_obj, violations ? violations[q] : 0, n_obj);
            if (c > 0) dominated[(size_t)p * n + n_dominated[p]++] = q, counts[q]++;
            else if (c < 0) dominated[(size_t)q * n + n_dominated[q]++] = p, counts[p]++;
        }
    }
    int front_start = 0, front_end = 0;
    for (int p = 0; p < n; p++)
        if (counts[p] == 0) front[front_end++] = p, ranks[p] = 0;
    for (int rank = 1; front_start < front_end; rank++) {
        int next_end = front_end;
        for (int i = front_start; i < front_end; i++) {
            int p = front[i];
            for (int k = 0; k < n_dominated[p]; k++) {
                int q = dominated[(size_t)p * n + k];
                if (--counts[q] == 0) front[next_end++] = q, ranks[q] = rank;
            }
        }
        front_start = front_end, front_end = next_end;
    }
    free(dominated), free(n_dominated), free(counts), free(front);
    return DATO_OK;
}

typedef struct {
    double key;
    int index;
} keyed_index;

// Ascending key, ties by ascending index: a total order, so qsort's result is deterministic.
static int keyed_index_ascending(const void* pa, const void* pb) {
    const keyed_index* a = pa;
    const keyed_index* b = pb;
    if (a->key < b->key) return -1;
    if (a->key > b->key) return 1;
    return (a->index > b->index) - (a->index < b->index);
}

static int int_ascending(const void* pa, const void* pb) {
    int a = *(const int*)pa, b = *(const int*)pb;
    return (a > b) - (a < b);
}

// Descending key, ties by ascending index.
static int keyed_index_descending(const void* pa, const void* pb) {
    const keyed_index* a = pa;
    const keyed_index* b = pb;
    if (a->key > b->key) return -1;
    if (a->key < b->key) return 1;
    return (a->index > b->index) - (a->index < b->index);
}

dato_status dato_nsga2_crowding(const double* objectives, int n_obj, const int* members, int n_members,
                                double* crowding, dato_error* err) {
    if (n_members < 0 || n_obj < 1 || (n_members > 0 && (!objectives || !members || !crowding)))
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: crowding: bad arguments (n_members %d, n_obj %d)",
                         n_members, n_obj);
    if (n_members == 0) return DATO_OK;
    // distinct[k]: the k-th member whose objective vector differs from every earlier member's;
    // later copies get 0 and take no part in the distances (pymoo's duplicate rule)
    int* distinct = malloc((size_t)n_members * sizeof(int));
    keyed_index* sorted = malloc((size_t)n_members * sizeof(keyed_index));
    if (!distinct || !sorted) {
        free(distinct), free(sorted);
        return dato_fail(err, DATO_ERR_NOMEM, "nsga2: crowding of %d members: out of memory", n_members);
    }
    int n_distinct = 0;
    for (int i = 0; i < n_members; i++) {
        const double* f = objectives + (size_t)members[i] * n_obj;
        int is_copy = 0;
        for (int k = 0; k < n_distinct && !is_copy; k++)
            is_copy = memcmp(f, objectives + (size_t)distinct[k] * n_obj, (size_t)n_obj * sizeof(double)) == 0;
        crowding[members[i]] = 0;
        if (!is_copy) distinct[n_distinct++] = members[i];
    }
    for (int m = 0; m < n_obj; m++) {
        for (int k = 0; k < n_distinct; k++)
            sorted[k] = (keyed_index){objectives[(size_t)distinct[k] * n_obj + m], distinct[k]};
        qsort(sorted, (size_t)n_distinct, sizeof(keyed_index), keyed_index_ascending);
        double range = sorted[n_distinct - 1].key - sorted[0].key;
        if (!(range > 0)) continue; // all equal in this objective: it says nothing about spread
        crowding[sorted[0].index] = INFINITY;
        crowding[sorted[n_distinct - 1].index] = INFINITY;
        for (int k = 1; k < n_distinct - 1; k++)
            crowding[sorted[k].index] += (sorted[k + 1].key - sorted[k - 1].key) / range;
    }
    // a single distinct vector (or all-equal objectives) has no interior: treat it as an extreme
    if (n_distinct <= 2)
        for (int k = 0; k < n_distinct; k++) crowding[distinct[k]] = INFINITY;
    free(distinct), free(sorted);
    return DATO_OK;
}

int dato_nsga2_tournament_winner(int a, int b, const int* ranks, const double* crowding) {
    if (ranks[a] != ranks[b]) return ranks[a] < ranks[b] ? a : b;
    if (crowding[a] != crowding[b]) return crowding[a] > crowding[b] ? a : b;
    return a < b ? a : b;
}

// ---- the state ----

dato_status dato_nsga2_create(dato_nsga2** out, const dato_nsga2_config* config, const dato_nsga2_ops* ops,
                              dato_error* err) {
    if (!out || !config || !ops) return dato_fail(err, DATO_ERR_INVALID, "nsga2: create: NULL argument");
    *out = NULL;
    if (config->pop_size < 2 || config->pop_size > (1 << 20) || config->n_obj < 1 || config->n_obj > 64 ||
        config->genome_bytes < 1 || config->genome_bytes > (1 << 24))
        return dato_fail(err, DATO_ERR_INVALID,
                         "nsga2: config: pop_size %d (2..2^20), n_obj %d (1..64), genome_bytes %d (1..2^24)",
                         config->pop_size, config->n_obj, config->genome_bytes);
    if (!ops->crossover || !ops->mutate)
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: ops: crossover and mutate are required");
    dato_nsga2* s = calloc(1, sizeof(dato_nsga2));
    if (!s) return dato_fail(err, DATO_ERR_NOMEM, "nsga2: create: out of memory");
    s->config = *config;
    s->ops = *ops;
    dato_rng_seed(&s->rng, config->seed);
    size_t n = (size_t)config->pop_size, bytes = (size_t)config->genome_bytes, m = (size_t)config->n_obj;
    s->genomes = malloc(n * bytes);
    s->objectives = malloc(n * m * sizeof(double));
    s->violations = malloc(n * sizeof(double));
    s->ranks = malloc(n * sizeof(int));
    s->crowding = malloc(n * sizeof(double));
    s->merged_genomes = malloc(2 * n * bytes);
    s->merged_objectives = malloc(2 * n * m * sizeof(double));
    s->merged_violations = malloc(2 * n * sizeof(double));
    s->merged_ranks = malloc(2 * n * sizeof(int));
    s->merged_crowding = malloc(2 * n * sizeof(double));
    s->order = malloc(2 * n * sizeof(int));
    if (!s->genomes || !s->objectives || !s->violations || !s->ranks || !s->crowding || !s->merged_genomes ||
        !s->merged_objectives || !s->merged_violations || !s->merged_ranks || !s->merged_crowding || !s->order) {
        dato_nsga2_free(s);
        return dato_fail(err, DATO_ERR_NOMEM, "nsga2: create: out of memory for population %zu x %zu bytes", n,
                         bytes);
    }
    *out = s;
    return DATO_OK;
}

void dato_nsga2_free(dato_nsga2* s) {
    if (!s) return;
    free(s->genomes), free(s->objectives), free(s->violations), free(s->ranks), free(s->crowding);
    free(s->merged_genomes), free(s->merged_objectives), free(s->merged_violations);
    free(s->merged_ranks), free(s->merged_crowding), free(s->order);
    free(s);
}

// Objectives must be finite (crowding subtracts them, sorting compares them) and violations
// finite and >= 0; what names the offending array in messages.
static dato_status check_evaluations(const double* objectives, const double* violations, int n, int n_obj,
                                     const char* what, dato_error* err) {
    if (!objectives) return dato_fail(err, DATO_ERR_INVALID, "nsga2: %s objectives: NULL", what);
    for (int i = 0; i < n; i++) {
        for (int m = 0; m < n_obj; m++)
            if (!isfinite(objectives[(size_t)i * n_obj + m]))
                return dato_fail(err, DATO_ERR_INVALID, "nsga2: %s objectives[%d][%d] = %g: must be finite", what, i,
                                 m, objectives[(size_t)i * n_obj + m]);
        if (violations && !(isfinite(violations[i]) && violations[i] >= 0))
            return dato_fail(err, DATO_ERR_INVALID, "nsga2: %s violations[%d] = %g: must be finite and >= 0", what,
                             i, violations[i]);
    }
    return DATO_OK;
}

// Ranks and crowding of n solutions, front by front.
static dato_status rank_and_crowd(const double* objectives, const double* violations, int n, int n_obj, int* ranks,
                                  double* crowding, int* scratch, dato_error* err) {
    DATO_TRY(dato_nsga2_nondominated_sort(objectives, violations, n, n_obj, ranks, err));
    for (int rank = 0;; rank++) {
        int n_members = 0;
        for (int i = 0; i < n; i++)
            if (ranks[i] == rank) scratch[n_members++] = i;
        if (n_members == 0) return DATO_OK;
        DATO_TRY(dato_nsga2_crowding(objectives, n_obj, scratch, n_members, crowding, err));
    }
}

// Installs arrays already checked; the RNG and generation are the caller's business.
static dato_status install_population(dato_nsga2* s, const uint8_t* genomes, const double* objectives,
                                      const double* violations, dato_error* err) {
    size_t n = (size_t)s->config.pop_size, m = (size_t)s->config.n_obj;
    memcpy(s->genomes, genomes, n * (size_t)s->config.genome_bytes);
    memcpy(s->objectives, objectives, n * m * sizeof(double));
    for (size_t i = 0; i < n; i++) s->violations[i] = violations ? violations[i] : 0;
    DATO_TRY(rank_and_crowd(s->objectives, s->violations, (int)n, (int)m, s->ranks, s->crowding, s->order, err));
    s->has_population = 1;
    return DATO_OK;
}

dato_status dato_nsga2_set_population(dato_nsga2* s, const uint8_t* genomes, const double* objectives,
                                      const double* violations, dato_error* err) {
    if (!s || !genomes) return dato_fail(err, DATO_ERR_INVALID, "nsga2: set_population: NULL argument");
    DATO_TRY(check_evaluations(objectives, violations, s->config.pop_size, s->config.n_obj, "initial", err));
    s->has_population = 0;
    DATO_TRY(install_population(s, genomes, objectives, violations, err));
    dato_rng_seed(&s->rng, s->config.seed);
    s->generation = 0;
    return DATO_OK;
}

// Fisher-Yates shuffle of 0..n-1 into perm.
static void random_permutation(int* perm, int n, dato_rng* rng) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)dato_rng_below(rng, (uint64_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

dato_status dato_nsga2_make_offspring(dato_nsga2* s, uint8_t* children, dato_error* err) {
    if (!s || !children) return dato_fail(err, DATO_ERR_INVALID, "nsga2: make_offspring: NULL argument");
    if (!s->has_population)
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: make_offspring: no population (call set_population first)");
    int n = s->config.pop_size;
    size_t bytes = (size_t)s->config.genome_bytes;
    // competitors are consecutive pairs of a permutation, reshuffled when used up; the spare
    // second child of an odd population is bred into scratch and dropped
    int* perm = s->order;       // (pop_size) first half of the scratch
    int* winners = s->order + n; // (2) second half
    int used = n;
    uint8_t* spare = s->merged_genomes; // (genome_bytes)
    for (int c = 0; c < n; c += 2) {
        for (int w = 0; w < 2; w++) {
            if (used + 2 > n) random_permutation(perm, n, &s->rng), used = 0;
            winners[w] = dato_nsga2_tournament_winner(perm[used], perm[used + 1], s->ranks, s->crowding);
            used += 2;
        }
        uint8_t* child_a = children + (size_t)c * bytes;
        uint8_t* child_b = c + 1 < n ? children + (size_t)(c + 1) * bytes : spare;
        s->ops.crossover(s->ops.ctx, s->genomes + (size_t)winners[0] * bytes, s->genomes + (size_t)winners[1] * bytes,
                         child_a, child_b, &s->rng);
        s->ops.mutate(s->ops.ctx, child_a, &s->rng);
        if (s->ops.repair) s->ops.repair(s->ops.ctx, child_a);
        if (c + 1 < n) {
            s->ops.mutate(s->ops.ctx, child_b, &s->rng);
            if (s->ops.repair) s->ops.repair(s->ops.ctx, child_b);
        }
    }
    return DATO_OK;
}

dato_status dato_nsga2_select(dato_nsga2* s, const uint8_t* children, const double* child_objectives,
                              const double* child_violations, dato_error* err) {
    if (!s || !children) return dato_fail(err, DATO_ERR_INVALID, "nsga2: select: NULL argument");
    if (!s->has_population)
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: select: no population (call set_population first)");
    int n = s->config.pop_size, n_obj = s->config.n_obj;
    size_t bytes = (size_t)s->config.genome_bytes, m = (size_t)n_obj;
    DATO_TRY(check_evaluations(child_objectives, child_violations, n, n_obj, "child", err));
    // R = parents followed by children
    memcpy(s->merged_genomes, s->genomes, (size_t)n * bytes);
    memcpy(s->merged_genomes + (size_t)n * bytes, children, (size_t)n * bytes);
    memcpy(s->merged_objectives, s->objectives, (size_t)n * m * sizeof(double));
    memcpy(s->merged_objectives + (size_t)n * m, child_objectives, (size_t)n * m * sizeof(double));
    for (int i = 0; i < n; i++) {
        s->merged_violations[i] = s->violations[i];
        s->merged_violations[n + i] = child_violations ? child_violations[i] : 0;
    }
    DATO_TRY(rank_and_crowd(s->merged_objectives, s->merged_violations, 2 * n, n_obj, s->merged_ranks,
                            s->merged_crowding, s->order, err));
    // survivors: sort R by (rank, -crowding, index) and keep the first n; whole fronts come first,
    // so this takes every front that fits and the most spread part of the last one
    keyed_index* sorted = malloc((size_t)(2 * n) * sizeof(keyed_index));
    if (!sorted) return dato_fail(err, DATO_ERR_NOMEM, "nsga2: select: out of memory");
    int kept = 0;
    for (int rank = 0; kept < n; rank++) {
        int n_members = 0;
        for (int i = 0; i < 2 * n; i++)
            if (s->merged_ranks[i] == rank) sorted[n_members++] = (keyed_index){s->merged_crowding[i], i};
        if (kept + n_members > n) qsort(sorted, (size_t)n_members, sizeof(keyed_index), keyed_index_descending);
        for (int k = 0; k < n_members && kept < n; k++) s->order[kept++] = sorted[k].index;
    }
    free(sorted);
    // survivors in ascending index of R, so parents keep their relative order
    qsort(s->order, (size_t)n, sizeof(int), int_ascending);
    for (int i = 0; i < n; i++) {
        int r = s->order[i];
        memcpy(s->genomes + (size_t)i * bytes, s->merged_genomes + (size_t)r * bytes, bytes);
        memcpy(s->objectives + (size_t)i * m, s->merged_objectives + (size_t)r * m, m * sizeof(double));
        s->violations[i] = s->merged_violations[r];
    }
    DATO_TRY(rank_and_crowd(s->objectives, s->violations, n, n_obj, s->ranks, s->crowding, s->order, err));
    s->generation++;
    return DATO_OK;
}

int dato_nsga2_first_front(const dato_nsga2* s, int* indices) {
    if (!s || !indices || !s->has_population) return 0;
    int count = 0;
    for (int i = 0; i < s->config.pop_size; i++)
        if (s->ranks[i] == 0) indices[count++] = i;
    return count;
}

dato_status dato_nsga2_get_state(const dato_nsga2* s, uint8_t* genomes, double* objectives, double* violations,
                                 uint64_t rng_state[4], int64_t* generation, dato_error* err) {
    if (!s || !genomes || !objectives || !violations || !rng_state || !generation)
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: get_state: NULL argument");
    if (!s->has_population) return dato_fail(err, DATO_ERR_INVALID, "nsga2: get_state: no population yet");
    size_t n = (size_t)s->config.pop_size;
    memcpy(genomes, s->genomes, n * (size_t)s->config.genome_bytes);
    memcpy(objectives, s->objectives, n * (size_t)s->config.n_obj * sizeof(double));
    memcpy(violations, s->violations, n * sizeof(double));
    memcpy(rng_state, s->rng.s, sizeof(s->rng.s));
    *generation = s->generation;
    return DATO_OK;
}

dato_status dato_nsga2_set_state(dato_nsga2* s, const uint8_t* genomes, const double* objectives,
                                 const double* violations, const uint64_t rng_state[4], int64_t generation,
                                 dato_error* err) {
    if (!s || !genomes || !violations || !rng_state)
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: set_state: NULL argument");
    DATO_TRY(check_evaluations(objectives, violations, s->config.pop_size, s->config.n_obj, "state", err));
    if (generation < 0)
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: set_state: generation %lld < 0", (long long)generation);
    if (!(rng_state[0] | rng_state[1] | rng_state[2] | rng_state[3]))
        return dato_fail(err, DATO_ERR_INVALID, "nsga2: set_state: rng state is all zero (xoshiro would stick)");
    s->has_population = 0;
    DATO_TRY(install_population(s, genomes, objectives, violations, err));
    memcpy(s->rng.s, rng_state, sizeof(s->rng.s));
    s->generation = generation;
    return DATO_OK;
}
