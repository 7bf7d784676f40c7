// NSGA-II end to end on ZDT1/2/3/6 and DTLZ2: pop 100 x 250 generations, seeds 0..4, HV of the
// final first front against fixed floors and against pymoo's NSGA2 on the same setting
// (tests/fixtures/nsga2/pymoo_hv.json, written by tools/pymoo_reference.py): our mean must be
// at least 0.99 x pymoo's.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hypervolume.h"
#include "moo_problems.h"
#include "nsga2.h"
#include "test_util.h"

enum { POP_SIZE = 100, GENERATIONS = 250, N_SEEDS = 5 };

// Evaluates n genomes (n, n_var doubles as bytes) into objectives (n, n_obj).
static int evaluate_all(dato_moo_problem problem, const uint8_t* genomes, int n, double* objectives) {
    const dato_moo_problem_info* info = dato_moo_info(problem);
    double x[64];
    for (int i = 0; i < n; i++) {
        memcpy(x, genomes + (size_t)i * info->n_var * sizeof(double), (size_t)info->n_var * sizeof(double));
        if (dato_moo_evaluate(problem, x, objectives + (size_t)i * info->n_obj, NULL) != DATO_OK) return 0;
    }
    return 1;
}

// One run; returns the HV of the final first front (reference 1.1 everywhere), or -1 on failure.
static double run_hv(dato_moo_problem problem, uint64_t seed) {
    const dato_moo_problem_info* info = dato_moo_info(problem);
    dato_real_ops real_ops = dato_real_ops_default(info->n_var);
    dato_nsga2_ops ops = dato_real_nsga2_ops(&real_ops);
    dato_nsga2_config config = {POP_SIZE, info->n_obj, info->n_var * (int)sizeof(double), seed};
    dato_error err = {{0}};
    dato_nsga2* s = NULL;
    if (dato_nsga2_create(&s, &config, &ops, &err) != DATO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    size_t bytes = (size_t)POP_SIZE * config.genome_bytes;
    uint8_t* genomes = malloc(bytes);                                             // (POP_SIZE, n_var doubles)
    double* objectives = malloc((size_t)POP_SIZE * info->n_obj * sizeof(double)); // (POP_SIZE, n_obj)
    double* front = malloc((size_t)POP_SIZE * info->n_obj * sizeof(double));      // (n_front, n_obj)
    int* front_index = malloc(POP_SIZE * sizeof(int));
    double hv = -1;
    dato_rng init_rng; // the initial population has its own stream, apart from the GA's
    dato_rng_seed_stream(&init_rng, seed, 1);
    for (int i = 0; genomes && i < POP_SIZE; i++)
        dato_real_random_genome(&real_ops, genomes + (size_t)i * config.genome_bytes, &init_rng);
    if (!genomes || !objectives || !front || !front_index || !evaluate_all(problem, genomes, POP_SIZE, objectives) ||
        dato_nsga2_set_population(s, genomes, objectives, NULL, &err) != DATO_OK)
        goto done;
    for (int gen = 0; gen < GENERATIONS; gen++) {
        if (dato_nsga2_make_offspring(s, genomes, &err) != DATO_OK ||
            !evaluate_all(problem, genomes, POP_SIZE, objectives) ||
            dato_nsga2_select(s, genomes, objectives, NULL, &err) != DATO_OK)
            goto done;
    }
    int n_front = dato_nsga2_first_front(s, front_index);
    for (int k = 0; k < n_front; k++)
        memcpy(front + (size_t)k * info->n_obj, s->objectives + (size_t)front_index[k] * info->n_obj,
               (size_t)info->n_obj * sizeof(double));
    const double reference[3] = {1.1, 1.1, 1.1};
    if (dato_hypervolume(front, n_front, info->n_obj, reference, &hv, &err) != DATO_OK) hv = -1;
done:
    if (err.msg[0]) fprintf(stderr, "%s: %s\n", info->name, err.msg);
    free(genomes), free(objectives), free(front), free(front_index);
    dato_nsga2_free(s);
    return hv;
}

int main(void) {
    const double floors[DATO_MOO_COUNT] = {0.865, 0.53, 1.32, 0.49, 0.68};
    size_t json_size = 0;
    char* json_text = (char*)read_bytes("tests/fixtures/nsga2/pymoo_hv.json", &json_size);
    cJSON* json = json_text ? cJSON_ParseWithLength(json_text, json_size) : NULL;
    CHECK(json != NULL, "tests/fixtures/nsga2/pymoo_hv.json unreadable (run tools/pymoo_reference.py)");
    const cJSON* version = cJSON_GetObjectItem(json, "pymoo_version");
    printf("problem  ours mean   per seed                                       pymoo mean  ours/pymoo  floor\n");
    for (int p = 0; p < DATO_MOO_COUNT; p++) {
        const dato_moo_problem_info* info = dato_moo_info((dato_moo_problem)p);
        double hv[N_SEEDS], mean = 0;
        for (int seed = 0; seed < N_SEEDS; seed++) {
            hv[seed] = run_hv((dato_moo_problem)p, (uint64_t)seed);
            CHECK(hv[seed] >= 0, "%s seed %d: run failed", info->name, seed);
            mean += hv[seed] / N_SEEDS;
        }
        const cJSON* entry = cJSON_GetObjectItem(cJSON_GetObjectItem(json, "problems"), info->name);
        const cJSON* pymoo_mean = cJSON_GetObjectItem(entry, "mean");
        double reference_mean = cJSON_IsNumber(pymoo_mean) ? pymoo_mean->valuedouble : NAN;
        printf("%-7s  %.5f   %.5f %.5f %.5f %.5f %.5f   %.5f     %.4f      %.3f\n", info->name, mean, hv[0], hv[1],
               hv[2], hv[3], hv[4], reference_mean, mean / reference_mean, floors[p]);
        CHECK(mean >= floors[p], "%s: mean HV %.5f < floor %.3f", info->name, mean, floors[p]);
        CHECK(mean >= 0.99 * reference_mean, "%s: mean HV %.5f < 0.99 x pymoo %.5f", info->name, mean,
              reference_mean);
    }
    printf("pymoo version of the reference: %s\n", cJSON_IsString(version) ? version->valuestring : "?");
    cJSON_Delete(json);
    free(json_text);
    return test_summary();
}
