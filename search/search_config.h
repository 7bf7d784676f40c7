// What defines a dato-search run: every setting that changes its answer, and the identities
// (hashes) of the model, the prompt set and the reference statistics. Stored in the checkpoint;
// a resume compares the stored config with the command line's and refuses any difference that
// would change the answer, naming the field.
#ifndef DATO_SEARCH_CONFIG_H
#define DATO_SEARCH_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define DATO_SEARCH_N_OBJ 2   // objectives, both minimized: [0] latency (s per image), [1] quality (the
                              // config's objective: FID, or the teacher distance)
#define DATO_SEARCH_N_EXTRA 6 // per evaluation: [0] KID (mean), [1] measured latency (s per image, NaN if not
                              // measured), [2] predicted latency from the cost table (NaN if no table),
                              // [3] FID, [4] teacher distance (both on the images the score rests on,
                              // whatever the objective), [5] those images: its fidelity, `images` or
                              // `screen_images` (checkpoints of format 2 had 5 columns: read as `images`)
#define DATO_EXTRA_IMAGES 5

typedef enum { DATO_LATENCY_TABLE = 0, DATO_LATENCY_MEASURED } dato_latency_mode;
typedef enum { DATO_REF_FILE = 0, DATO_REF_BASELINE } dato_ref_mode;
// The quality objective of the search. FID: against the reference (ref_mode). Teacher: the mean
// over images of the squared feature distance between a schedule's image and the baseline's image
// from the same prompt and noise (SEARCH.md §7 lesson 2). The final front is re-scored with FID
// either way; docs/SEARCH.md has the measurements behind the default (teacher).
// CLIP: 100 - the CLIP score of the images against their prompts (--clip DIR), minimized.
typedef enum { DATO_OBJECTIVE_TEACHER = 0, DATO_OBJECTIVE_FID, DATO_OBJECTIVE_CLIP } dato_quality_objective;
// Where the networks run. The CUDA backend's images differ from the CPU's in their last bits, so
// the backend is part of the answer; a checkpoint from before the field existed means the CPU.
typedef enum { DATO_SEARCH_BACKEND_CPU = 0, DATO_SEARCH_BACKEND_CUDA } dato_search_backend;
// The network whose features score quality (teacher distance, FID, KID): the feature network a model
// ships for its own domain (the default model's), or pytorch-fid's Inception-v3 (pool3, 2048-d), the
// network of every published FID. A checkpoint from before the field existed means the first.
typedef enum { DATO_EXTRACTOR_FEATNET = 0, DATO_EXTRACTOR_INCEPTION } dato_extractor_kind;

typedef struct {
    // the model and the images
    char model[4096];           // path as given
    char model_hash[32];        // "fnv1a64:..." of the UNet's architecture and weights file(s)
    char prompts_file[4096];
    char prompts_hash[32];      // of the prompt list's bytes
    int n_prompts;
    int images;                 // images per evaluation (spread over the prompts)
    int screen_images;          // multi-fidelity: new candidates are scored first on this many of the images
                                // (the first ones of each prompt: a subset of the search's image set), and only
                                // the best `promote` fraction of them on all `images`; 0: every candidate on all
    float promote;              // the fraction promoted from the screening to the full image set, in (0, 1]
    int final_images;           // images per final-front re-score
    int confirm_images;         // images of the confirmation stage (fresh noises), 0: no confirmation
    int pairs;                  // interleaved baseline/member timing pairs behind each final latency ratio
    int timing_images;          // images per timed generate call in those pairs
    int bootstrap;              // bootstrap replicates behind each 95% interval
    int height, width;          // image size in pixels (0 in checkpoints from before: the model's default)
    int steps;
    float guidance;
    char sampler[32];
    char scheduler_config[4096]; // a scheduler_config.json (file or folder) over the model's own; "": the model's
    char prediction_type[16];    // "epsilon" or "v_prediction" over the scheduler config's; "": the config's
    int batch;                  // images per generate call (pruning's seeded fallback is per call)
    dato_search_backend backend;
    // the objectives
    dato_quality_objective objective;
    dato_ref_mode ref_mode;
    char ref[4096];             // reference statistics file ("" with DATO_REF_BASELINE)
    char ref_hash[32];          // of that file ("" with DATO_REF_BASELINE)
    dato_extractor_kind extractor;
    char feature_net[4096];     // the extractor's weights: a feature-network folder, or Inception's weights file
    char preprocess[16];        // Inception's preprocessing: pytorch-fid, tf or clean ("" with the feature network)
    char clip[4096];            // a CLIP model folder (transformers' layout): CLIP scores, "" for none
    char clip_hash[32];         // of its config and weights
    dato_latency_mode latency_mode;
    char latency_table_hash[32]; // of the calibrated cost table the latencies came from ("" if measured)
    // the algorithm
    int pop;
    int gens;                   // generations to run in total (a resume may raise it)
    uint64_t seed;
    int n_branches;             // B of the UNet: genome depths 0..B+1
    int threads;                // CPU threads per rank, 0: all (split among a host's ranks); any count
                                // gives the same bits, so a resume may change it
} dato_search_config;

// Every field as data, for the checkpoint (all fields) and the resume check (those with answer = 1),
// so a new field is one line in search_config.c.
typedef enum { DATO_FIELD_TEXT, DATO_FIELD_INT, DATO_FIELD_FLOAT, DATO_FIELD_U64, DATO_FIELD_ENUM } dato_config_field_kind;

typedef struct {
    const char* name;            // as the struct member and the checkpoint attribute
    dato_config_field_kind kind;
    size_t offset;               // in dato_search_config
    size_t size;                 // bytes of a DATO_FIELD_TEXT array
    int answer;                  // 1: changes the search's answer, so a resume must keep it
    const char* const* names;    // DATO_FIELD_ENUM: the name of each value (stored as text in checkpoints)
    int n_names;
    int optional;                // 1: absent from older checkpoints, where it reads as 0 (an enum's first name)
} dato_config_field;

extern const dato_config_field dato_search_config_fields[];
extern const int dato_search_config_n_fields;

// "teacher", "fid" or "clip": the objective's name in flags, checkpoints and reports.
const char* dato_quality_objective_name(dato_quality_objective o);
// "cpu" or "cuda".
const char* dato_search_backend_name(dato_search_backend b);
// "featnet" or "inception".
const char* dato_extractor_kind_name(dato_extractor_kind k);

// Compares a checkpoint's config with a resume's. Fields that change the answer (model, prompts,
// reference, images, steps, guidance, sampler, seed, pop, latency mode, ...) must agree; gens and
// the final stages' counts and threads may differ.
// DATO_ERR_INVALID names the first field that differs with both values, e.g. "model_hash: checkpoint
// fnv1a64:ab.. vs now fnv1a64:cd..".
dato_status dato_search_config_check_resume(const dato_search_config* saved, const dato_search_config* now,
                                            dato_error* err);

#endif
