// One dato-search run (METHOD.md §5): NSGA-II over DaTo schedules of one model, every candidate
// scored on the same prompts and initial noises (search/evaluator.h) for latency and FID, every
// evaluated genome kept in an archive (never evaluated twice), a crash-safe checkpoint after every
// generation (search/checkpoint.h), and at the end the archive's front re-scored on a larger image
// set with bootstrap intervals, the members dominated in (the search's latency, that FID) dropped
// (nothing in the front's membership or order depends on the clock), its latency re-measured as
// paired ratios against the baseline, the picks confirmed beside the presets on fresh images, and
// the result files written (search/report.h).
//
//   setup -> initial population (presets + seeded random) -> evaluate -> [offspring -> screen on few
//   images -> promote the best to all -> select -> checkpoint] x gens -> final stages: re-score,
//   paired re-measure, drop, picks, confirmation, grids, report
//
// With MPI (docs/DISTRIBUTED.md) rank 0 runs all of the above but the evaluations, which every rank
// takes from one queue (without MPI, the lanes of options.workers do); results are applied in genome order, so with table latency the front is the
// one-process front, bit for bit, whatever the number of ranks and of CPU threads per rank (the
// CPU GEMM's bits do not depend on the thread count).
//
// A resumed run continues from the checkpoint's last completed generation with the same RNG state
// and archive, so it ends with the same front, bit for bit, as an uninterrupted one (table latency).
#ifndef DATO_SEARCH_RUN_H
#define DATO_SEARCH_RUN_H

#include "backend.h"
#include "backend_open.h"
#include "eval_pool.h"
#include "report.h"
#include "search_config.h"
#include "status.h"

// The library prints nothing: it tells the caller what happens through an observer, every callback
// optional (NULL: not told), all called on rank 0 from the thread that runs dato_search_run.
typedef enum { DATO_SEARCH_INFO = 0, DATO_SEARCH_WARNING } dato_search_level;

// One generation's summary (after its checkpoint).
typedef struct {
    int generation, gens;       // this one (0: the initial population) of gens
    int front;                  // members of the population's first front
    double hypervolume;         // of that front, both objectives over the initial population's largest values
    dato_quality_objective objective;
    double best_quality;        // the front's least quality objective
    double fastest_s;           // the front's least latency objective, s per image
    int evaluations, screened_only, promoted, cache_hits; // new genomes scored; of them left at the screening;
                                // promoted to all images; children the archive (or an earlier sibling) held
    size_t archive;             // genomes evaluated so far
    double seconds, elapsed_s;  // this generation's wall time; the run's, resumes included
    double eta_s, eta_final_s;  // the time left to the end, and of it the final stages' rough estimate
} dato_search_generation;

typedef struct {
    void* ctx;
    // A line of news (INFO) or a warning, without the program's prefix or a newline.
    void (*message)(void* ctx, dato_search_level level, const char* text);
    // A stage's progress, e.g. "gen 3/50 screening": done of total, seconds since the stage began and left.
    void (*progress)(void* ctx, const char* stage, int done, int total, double elapsed_s, double eta_s);
    // After every generation's checkpoint.
    void (*generation)(void* ctx, const dato_search_generation* g);
    // Once, after the result files are written: the report they were written from.
    void (*summary)(void* ctx, const dato_report* r);
} dato_search_observer;

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
    dato_search_observer observer; // what the run tells its caller (all NULL: nothing)
    const char* command;     // the reproducing command line, for the report
    dato_eval_pool* pool;    // the ranks that evaluate (a pool of one without MPI); required
    // The program's dato_backend_open (backend_open.h): this library is built without CUDA, the
    // program's copy starts it where the program was built with it. NULL: the library's (CPU only).
    dato_backend_open_fn open_backend;
    int device;              // this rank's CUDA device; -1: its local rank (one GPU per rank on a host)
    int workers;             // one process: evaluations at once, each on a copy of the model with the threads
                             // shared out (search/eval_pool.h lanes); 0: by the model's size, 1: one at a time
    const char* reference_cache; // a folder for the references' results between runs (search/ref_cache.h); NULL: none
} dato_search_options;

// Runs (or resumes) a search to completion. Errors name the file, flag or field at fault; the last
// good checkpoint is never damaged by a failure.
// Rank 0 only: the workers of o->pool run dato_search_serve meanwhile.
dato_status dato_search_run(const dato_search_options* o, dato_error* err);

// Ranks > 0: opens the model on rank 0's config and evaluates the genomes rank 0 hands out, until
// rank 0 closes the pool. A failure here is also reported to rank 0, which stops the run.
dato_status dato_search_serve(const dato_search_options* o, dato_error* err);

#endif
