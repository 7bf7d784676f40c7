// libFuzzer target for the search checkpoint reader (dato_checkpoint_read_image, search/checkpoint.c:
// the seal, HDF5 in a forked child, the checks of what a resume relies on). The input is the file
// after its 512-byte user block: the target prepends the block and seals it, as an attacker would,
// so every mutation reaches HDF5 and the checks behind it. The seeds (tests/fuzz/corpus-checkpoint/)
// are real checkpoints without their seal block. Any bytes must be accepted or refused without a
// sanitizer report in this process and without a leak; a refusal names the label and leaves the
// checkpoint holding nothing; an accepted checkpoint keeps the promises of checkpoint.h.
// HDF5 itself runs in the child: a crash there is a refusal here (the child's own report, if
// any, goes to stderr and to a crash- file of the child, see docs/FUZZING.md).
// Build and run: docs/FUZZING.md.
#include <math.h>

#include "checkpoint.h"
#include "file_seal.h"
#include "fuzz_util.h"

#define LABEL "fuzz-input.h5"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    uint8_t* image = malloc(DATO_SEAL_BYTES + size); // (512 + size) the whole file
    if (!image) return 0;
    memcpy(image + DATO_SEAL_BYTES, data, size);
    dato_seal_image(image, DATO_SEAL_BYTES + size, DATO_CHECKPOINT_SEAL_MAGIC);
    dato_checkpoint c;
    dato_error err;
    dato_status st = dato_checkpoint_read_image(image, DATO_SEAL_BYTES + size, LABEL, &c, &err);
    free(image);
    if (st != DATO_OK) {
        fuzz_check_error(&err, LABEL);
        INVARIANT(!c.pop_genomes && !c.pop_objectives && !c.pop_violations && !c.arch_genomes && !c.arch_objectives &&
                  !c.arch_extras && !c.arch_generations && !c.final_genomes && !c.final_scores);
        return 0;
    }
    const dato_search_config* cfg = &c.cfg;
    size_t pop = (size_t)c.pop, n = (size_t)c.n_evaluations, gb = (size_t)c.genome_bytes, nf = (size_t)c.n_final;
    INVARIANT(c.pop == cfg->pop && c.steps == cfg->steps && gb == 2 * (size_t)c.steps && c.n_final >= 0 &&
              c.n_final <= DATO_CHECKPOINT_MAX_FINAL && c.n_evaluations >= 0 && c.generation >= 0);
    INVARIANT(isfinite(cfg->guidance) && cfg->guidance >= 0 && isfinite(c.elapsed_s));
    for (size_t i = 0; i < pop; i++) // step 0 full, latencies finite and > 0
        INVARIANT(c.pop_genomes[i * gb] == cfg->n_branches + 1 && c.pop_objectives[2 * i] > 0 &&
                  isfinite(c.pop_objectives[2 * i]) && isfinite(c.pop_objectives[2 * i + 1]));
    for (size_t i = 0; i < n; i++)
        INVARIANT(c.arch_genomes[i * gb] == cfg->n_branches + 1 && c.arch_objectives[2 * i] > 0 &&
                  isfinite(c.arch_objectives[2 * i]));
    // every byte the reader claims to have filled (ASan checks each array's whole range)
    fuzz_touch(c.pop_violations, pop * sizeof(double));
    fuzz_touch(c.arch_extras, n * DATO_SEARCH_N_EXTRA * sizeof(double));
    fuzz_touch(c.arch_generations, n * sizeof(int32_t));
    fuzz_touch(c.final_genomes, nf * gb);
    fuzz_touch(c.final_scores, nf * DATO_SEARCH_N_FINAL * sizeof(double));
    INVARIANT(memchr(cfg->model, 0, sizeof cfg->model) && memchr(cfg->sampler, 0, sizeof cfg->sampler) &&
              memchr(c.dato_version, 0, sizeof c.dato_version) && memchr(c.hdf5_version, 0, sizeof c.hdf5_version));
    dato_checkpoint_free(&c);
    return 0;
}
