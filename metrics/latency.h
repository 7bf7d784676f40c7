// The latency meter of the DaTo search (docs/LATENCY.md).
//
// 1. A meter: w warm-up runs, then k timed runs of a function; median and min of the wall clock
//    (CLOCK_MONOTONIC). With a backend it calls be->ops->synchronize before every clock read, so
//    an asynchronous backend (CUDA) is timed to the end of its queued work.
// 2. A per-call cost table lat[depth][ratio]: one UNet call at every cache depth 0..B+1 and prune
//    ratio of dato_schedule_ratios, plus the fixed cost of a model call outside the UNet (host copies,
//    guidance, sampler update) and the fixed cost of a generate call on a kept denoiser (sampler,
//    dato_denoiser_begin, cache and runtime resets). Calibrated once per key (model, latent size, batch, device, threads, ...), saved as
//    JSON and reused, so the latency of a schedule is predicted without running it.
#ifndef DATO_LATENCY_H
#define DATO_LATENCY_H

#include "backend.h"
#include "clock.h" // dato_clock_s: the meter's clock
#include "sampler.h"
#include "schedule.h"
#include "unet.h"

// ---- the meter ---------------------------------------------------------------------------------------

// The function to time; its status stops the measurement.
typedef dato_status (*dato_timed_fn)(void* ctx, dato_error* err);

typedef struct {
    double median_s, min_s, max_s; // over the timed runs, seconds
    int runs;
} dato_timing;

// Runs fn `warmup` times, then times `runs` >= 1 runs one by one. be may be NULL (host-only work);
// otherwise it is synchronized before each clock read.
dato_status dato_time_fn(dato_timing* out, dato_timed_fn fn, void* ctx, int warmup, int runs, dato_backend* be,
                         dato_error* err);
// Median of n values (sorts x in place); 0 for n < 1.
double dato_median(double* x, int n);

// ---- the cost table -------------------------------------------------------------------------------------

#define DATO_LAT_N_RATIOS DATO_SCHEDULE_N_RATIOS // the columns: schedule.h's dato_schedule_ratios
#define DATO_LAT_MAX_DEPTH (DATO_UNET_MAX_LAYERS + 1)

// What a table is valid for: a table is refused for a run whose key differs in any field.
typedef struct {
    char model[256];          // the caller's name of the model (e.g. its path)
    char model_hash[17];      // 16 hex digits: FNV-1a of the architecture (every parameter's name and shape)
    char device[16];          // the backend's name: "cpu", "cuda"
    int threads;              // the backend's thread count (the caller's setting; 0 = OpenMP default)
    int batch;                // images per generate call
    int guided;               // 1: classifier-free guidance, UNet rows [uncond x batch; cond x batch]
    int height, width;        // latent size
    int seq;                  // context tokens
    char sampler[32];         // the sampler whose update is in call_overhead_s
} dato_latency_key;

typedef struct {
    dato_latency_key key;
    int n_branches;                                    // B: depth B+1 is a full step
    double call_s[DATO_LAT_MAX_DEPTH + 1][DATO_LAT_N_RATIOS]; // one UNet call at (depth, ratio); depth 0: 0
    double call_overhead_s;   // every model call, depth 0 included: copies, guidance, sampler update
    double setup_s;           // every generate on a kept denoiser: sampler, host buffers, dato_denoiser_begin
    double setup_cache_s;     // more when the schedule has partial steps (the cache reset, graphs dropped)
    double setup_prune_s;     // more when the schedule prunes (the kept DaTo runtime reset)
} dato_latency_table;

// How to calibrate: the run's sizes and the meter's settings.
typedef struct {
    const char* model;        // the key's model name
    int threads;              // recorded in the key (the backend was created with it)
    int batch, guided, height, width, seq;
    dato_sampler_kind sampler;
    int warmup;               // untimed calls per entry before its first sample
    int runs;                 // samples per entry (>= 1), taken in rounds over the whole table; median
} dato_latency_setup;

// Fills key for u on be with the setup's sizes.
void dato_latency_key_make(dato_latency_key* key, const dato_unet* u, const dato_backend* be,
                           const dato_latency_setup* setup);
// Compares a table's key with a run's; DATO_ERR_INVALID naming the first field that differs.
dato_status dato_latency_key_check(const dato_latency_key* table, const dato_latency_key* run, const char* label,
                                   dato_error* err);

// Times every table entry on u (random inputs and context; the pruning runtime fed two fake
// predictions first). sched: the scheduler config for the sampler update (NULL: SD1.5's).
dato_status dato_latency_calibrate(dato_latency_table* t, const dato_unet* u, const dato_scheduler_config* sched,
                                   const dato_latency_setup* setup, dato_error* err);

typedef struct {
    double total_s;           // unet_s + overhead_s + setup_s
    double unet_s;            // the UNet calls
    double overhead_s;        // n_calls * call_overhead_s
    double setup_s;           // the generate call's fixed costs
    int n_calls;              // model calls (PLMS: steps + 1)
} dato_latency_prediction;

// The predicted time of dato_pipeline_generate with schedule s (NULL: every step full) and
// sampler kind for the table's key; decoding is not included. Errors name the step.
dato_status dato_latency_predict(const dato_latency_table* t, const dato_schedule* s, int steps,
                                 dato_sampler_kind kind, dato_latency_prediction* out, dato_error* err);

// JSON (docs/LATENCY.md), written through a temporary file and a rename.
dato_status dato_latency_save(const dato_latency_table* t, const char* path, dato_error* err);
// Reads a table; with run != NULL refuses one whose key differs (the message names the field).
dato_status dato_latency_load(dato_latency_table* t, const char* path, const dato_latency_key* run,
                              dato_error* err);

#endif
