// The promises of a checkpoint read (checkpoint.h), checked by the two checkpoint targets: the file
// reader (fuzz_checkpoint) and the parent's decoder of the child's answer (fuzz_checkpoint_answer).
#ifndef DATO_FUZZ_CHECKPOINT_CHECKS_H
#define DATO_FUZZ_CHECKPOINT_CHECKS_H
#include <math.h>

#include "checkpoint.h"
#include "fuzz_util.h"

// A refusal names label and holds nothing; an accepted checkpoint has counts that agree with its
// config, step 0 full, latencies finite and > 0, terminated strings and every array byte readable.
// Frees c.
static inline void fuzz_check_checkpoint(dato_status st, dato_checkpoint* c, const dato_error* err, const char* label) {
    if (st != DATO_OK) {
        fuzz_check_error(err, label);
        INVARIANT(!c->pop_genomes && !c->pop_objectives && !c->pop_violations && !c->arch_genomes &&
                  !c->arch_objectives && !c->arch_extras && !c->arch_generations && !c->final_genomes &&
                  !c->final_scores);
        return;
    }
    const dato_search_config* cfg = &c->cfg;
    size_t pop = (size_t)c->pop, n = (size_t)c->n_evaluations, gb = (size_t)c->genome_bytes, nf = (size_t)c->n_final;
    INVARIANT(c->pop == cfg->pop && c->steps == cfg->steps && gb == 2 * (size_t)c->steps && c->n_final >= 0 &&
              c->n_final <= DATO_CHECKPOINT_MAX_FINAL && c->n_evaluations >= 0 && c->generation >= 0);
    INVARIANT(isfinite(cfg->guidance) && cfg->guidance >= 0 && isfinite(c->elapsed_s));
    for (size_t i = 0; i < pop; i++) // step 0 full, latencies finite and > 0
        INVARIANT(c->pop_genomes[i * gb] == cfg->n_branches + 1 && c->pop_objectives[2 * i] > 0 &&
                  isfinite(c->pop_objectives[2 * i]) && isfinite(c->pop_objectives[2 * i + 1]));
    for (size_t i = 0; i < n; i++)
        INVARIANT(c->arch_genomes[i * gb] == cfg->n_branches + 1 && c->arch_objectives[2 * i] > 0 &&
                  isfinite(c->arch_objectives[2 * i]));
    // every byte the reader claims to have filled (ASan checks each array's whole range)
    fuzz_touch(c->pop_violations, pop * sizeof(double));
    fuzz_touch(c->arch_extras, n * DATO_SEARCH_N_EXTRA * sizeof(double));
    fuzz_touch(c->arch_generations, n * sizeof(int32_t));
    fuzz_touch(c->final_genomes, nf * gb);
    fuzz_touch(c->final_scores, nf * DATO_SEARCH_N_FINAL * sizeof(double));
    for (int i = 0; i < dato_search_config_n_fields; i++) { // every text field of the config terminated
        const dato_config_field* f = &dato_search_config_fields[i];
        if (f->kind == DATO_FIELD_TEXT) INVARIANT(memchr((const char*)cfg + f->offset, 0, f->size));
    }
    INVARIANT(memchr(c->dato_version, 0, sizeof c->dato_version) && memchr(c->hdf5_version, 0, sizeof c->hdf5_version));
    dato_checkpoint_free(c);
}
#endif
