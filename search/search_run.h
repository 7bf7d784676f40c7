// One dato-search run (METHOD.md §5): NSGA-II over DaTo schedules of one model, every candidate
// scored on the same prompts and initial noises (search/evaluator.h) for latency and FID, every
// evaluated genome kept in an archive (never evaluated twice), a crash-safe checkpoint after every
// generation (search/checkpoint.h), and at the end the archive's front re-scored on a larger image
// set with bootstrap intervals, its latency re-measured as paired ratios against the baseline, the
// members that re-measure dominates dropped, the picks confirmed beside the presets on fresh images,
// and the result files written (search/report.h).
//
//   setup -> initial population (presets + seeded random) -> evaluate -> [offspring -> screen on few
//   images -> promote the best to all -> select -> checkpoint] x gens -> final stages: re-score,
//   paired re-measure, drop, picks, confirmation, grids, report
//
// With MPI (docs/DISTRIBUTED.md) rank 0 runs all of the above but the evaluations, which every rank
// takes from one queue; results are applied in genome order, so with table latency the front is the
// one-process front, bit for bit, whatever the number of ranks (at 1 to 4 CPU threads per rank and
// in the one process, or the same count: above 4 the CPU GEMM's last bits depend on it).
//
// A resumed run continues from the checkpoint's last completed generation with the same RNG state
// and archive, so it ends with the same front, bit for bit, as an uninterrupted one (table latency).
#ifndef DATO_SEARCH_RUN_H
#define DATO_SEARCH_RUN_H

#include "backend.h"
#include "backend_open.h"
#include "eval_pool.h"
#include "search_config.h"
#include "status.h"

typedef struct {
    dato_search_config cfg;  // for a new run; ignored on resume except the fields below
    const char* run_dir;     // results/<run>/: checkpoint.h5, latency_table.json, front.*, report.html
    const char* resume;      // a checkpoint to continue, or NULL for a new run
    const char* latency_table; // new run: a cost table to reuse (copied into run_dir) instead of
                               // calibrating one; runs sharing a table can give identical fronts
    int gens_override;       // > 0: on resume, run to this many generations in total
    int final_images_override; // > 0: on resume, re-score the final front on this many images
    int threads_override;    // resume: CPU threads (0: the checkpoint's)
    int confirm_images_override, pairs_override, timing_images_override, bootstrap_override; // resume: the final
                             // stages' counts (-1, or 0 for all but confirm_images: the checkpoint's)
    int quiet;               // no progress bar, no per-generation lines
    int log_json;            // per-generation lines as JSON objects on stdout
    const char* command;     // the reproducing command line, for the report
    dato_eval_pool* pool;    // the ranks that evaluate (a pool of one without MPI); required
    // The program's dato_backend_open (backend_open.h): this library is built without CUDA, the
    // program's copy starts it where the program was built with it. NULL: the library's (CPU only).
    dato_backend_open_fn open_backend;
    int device;              // this rank's CUDA device; -1: its local rank (one GPU per rank on a host)
} dato_search_options;

// Runs (or resumes) a search to completion. Errors name the file, flag or field at fault; the last
// good checkpoint is never damaged by a failure.
// Rank 0 only: the workers of o->pool run dato_search_serve meanwhile.
dato_status dato_search_run(const dato_search_options* o, dato_error* err);

// Ranks > 0: opens the model on rank 0's config and evaluates the genomes rank 0 hands out, until
// rank 0 closes the pool. A failure here is also reported to rank 0, which stops the run.
dato_status dato_search_serve(const dato_search_options* o, dato_error* err);

#endif
