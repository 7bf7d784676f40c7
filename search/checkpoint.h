// Crash-safe HDF5 checkpoints of a dato-search run (SEARCH.md §9, docs/CHECKPOINT.md): the run's
// config, the NSGA-II state (population, objectives, violations, rng, generation) and the archive
// of every evaluation. Each checkpoint is a new file written beside the target and renamed over
// it, so a kill or a full disk at any moment leaves either the old or the new checkpoint at path.
//
//   dato_checkpoint_remove_stale_temps(path, &err);        // at start-up
//   dato_checkpoint c;  dato_checkpoint_read(path, &c, &err);   // resume: validated, or refused (holding nothing)
//   ... dato_search_config_check_resume(&c.cfg, &cfg, &err); dato_nsga2_set_state(...) ...
//   dato_checkpoint_free(&c);
//   ... after each generation: fill a dato_checkpoint (pointers to the run's arrays) and
//   dato_checkpoint_write(path, &c, &err);
#ifndef DATO_CHECKPOINT_H
#define DATO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "isolated.h"
#include "search_config.h"
#include "status.h"

#define DATO_CHECKPOINT_FORMAT "dato-search-checkpoint"
#define DATO_CHECKPOINT_FORMAT_VERSION 3 // 3: archive extras gain the fidelity column, final rows their
                                         // intervals and paired ratios; format 2 files are still read
#define DATO_CHECKPOINT_MAX_FINAL 256 // final-front rows
#define DATO_CHECKPOINT_SEAL_MAGIC "dato-search-checkpoint seal\n" // the seal's first line (file_seal.h)

// The columns of a final row (and of final_baseline). Format 2 files had the first 4; reading one
// fills the rest with NaN.
enum {
    DATO_FINAL_LATENCY = 0, // s per image: the baseline's measured time x the member's paired ratio
    DATO_FINAL_FID,         // on final_images images
    DATO_FINAL_KID,         // KID x 1000 against the baseline's images, NaN where not computed
    DATO_FINAL_TEACHER,
    DATO_FINAL_FID_LO, DATO_FINAL_FID_HI, // bootstrap 95% intervals over images
    DATO_FINAL_TEACHER_LO, DATO_FINAL_TEACHER_HI,
    DATO_FINAL_CLIP, DATO_FINAL_CLIP_LO, DATO_FINAL_CLIP_HI, // NaN without --clip
    DATO_FINAL_RATIO, DATO_FINAL_RATIO_LO, DATO_FINAL_RATIO_HI, // median, least and greatest paired ratio
    DATO_SEARCH_N_FINAL
};
#define DATO_SEARCH_N_FINAL_V2 4 // columns in format 2

typedef struct {
    dato_search_config cfg;
    int64_t generation;    // generations completed
    int64_t n_evaluations; // archive rows
    int pop, genome_bytes, n_obj, n_extra, steps; // steps = T genes per genome (genome_bytes = 2 T)
    uint8_t* pop_genomes;      // (pop, genome_bytes)
    double* pop_objectives;    // (pop, n_obj)
    double* pop_violations;    // (pop)
    uint64_t rng_state[4];     // the NSGA-II rng (xoshiro256**)
    uint8_t* arch_genomes;     // (n_evaluations, genome_bytes)
    double* arch_objectives;   // (n_evaluations, n_obj)
    double* arch_extras;       // (n_evaluations, n_extra)
    int32_t* arch_generations; // (n_evaluations)
    char dato_version[32], hdf5_version[32]; // written by write (the values of this build); read back
    double elapsed_s;          // search wall time so far (for the ETA / report)
    // The final front, re-scored on cfg.final_images images once the run has finished (n_final 0
    // before): what dato-export picks from, because it is the front's FID, not its search proxy.
    int n_final;
    uint8_t* final_genomes;    // (n_final, genome_bytes) by measured latency
    double* final_scores;      // (n_final, DATO_SEARCH_N_FINAL), columns DATO_FINAL_*
    double final_baseline[DATO_SEARCH_N_FINAL]; // the baseline schedule, scored the same way
} dato_checkpoint;

// Writes c to path atomically: the HDF5 file is built in memory, sealed, written to path.tmp.<pid>
// in the same directory, fsynced, renamed over path, and the directory fsynced. On failure the
// temp file is removed, a previous checkpoint at path is untouched, and the error names the file
// and what failed (with errno's reason, e.g. "No space left on device").
// c must be consistent: pop == cfg.pop, steps == cfg.steps, genome_bytes == 2 steps,
// n_obj == DATO_SEARCH_N_OBJ, n_extra == DATO_SEARCH_N_EXTRA, and pass every check read makes
// (genes, sampler, guidance, numbers), so that no checkpoint is written that read would refuse;
// dato_version and hdf5_version are ignored.
dato_status dato_checkpoint_write(const char* path, const dato_checkpoint* c, dato_error* err);

// Reads and validates a checkpoint into c (allocating its arrays). The seal (a whole-file checksum)
// is checked first; HDF5 then parses the file in a forked child process, because HDF5 1.10 can
// crash on crafted metadata (docs/CHECKPOINT.md), and sends the checkpoint back through a pipe. It
// checks the format name and version, every dataset's type, shape and stored size, the payload
// checksum; then this process checks what a resume relies on: genes in range with step 0 full, a
// known sampler, guidance in 0..100, every number finite (NaN only where the format means "not
// computed"), latencies > 0. Any damage is DATO_ERR_FORMAT (a missing or unreadable file
// DATO_ERR_IO, a newer format version DATO_ERR_UNSUPPORTED) naming the file and the field. On
// failure c holds nothing (dato_checkpoint_free is then a no-op, and safe).
dato_status dato_checkpoint_read(const char* path, dato_checkpoint* c, dato_error* err);
// The same from a whole checkpoint file already in memory (image, size bytes, seal included);
// messages name label. dato_checkpoint_read reads the file and calls this.
dato_status dato_checkpoint_read_image(const uint8_t* image, size_t size, const char* label, dato_checkpoint* c,
                                       dato_error* err);

// The parent's side of the isolated parse, exposed for fuzzing and tests: the child's answer (answer,
// len bytes: the struct, then its 9 arrays) into c, checked as dato_checkpoint_read checks it.
// DATO_ERR_FORMAT naming label; on failure c holds nothing.
dato_status dato_checkpoint_decode_answer(const uint8_t* answer, size_t len, const char* label, dato_checkpoint* c,
                                          dato_error* err);
// The child's side: c (as read) appended to answer in the form decode_answer takes, pointers zeroed.
void dato_checkpoint_encode_answer(const dato_checkpoint* c, dato_bytes* answer);

// Frees c's arrays and sets their pointers to NULL: safe on a checkpoint that read refused, and twice.
void dato_checkpoint_free(dato_checkpoint* c);

// Writes the seal of the checkpoint file at path (its size and FNV-1a 64 of every byte after the
// 512-byte HDF5 user block, docs/CHECKPOINT.md) into the user block, and fsyncs it. Write does
// this; a tool that edits a checkpoint in place must call it after, or read refuses the file.
dato_status dato_checkpoint_seal(const char* path, dato_error* err);

// Removes path.tmp.<pid> files left by a writer that was killed (its pid no longer running).
dato_status dato_checkpoint_remove_stale_temps(const char* path, dato_error* err);

// FNV-1a 64 of the payload arrays as stored (docs/CHECKPOINT.md gives the byte order): the value
// of the root attribute "checksum".
uint64_t dato_checkpoint_checksum(const dato_checkpoint* c);

#endif
