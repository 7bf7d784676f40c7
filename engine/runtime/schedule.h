// DaTo schedules as data (METHOD.md §2): for each sampler step k, a cache depth and a token
// prune ratio. depth B+1 is a full step (B = the UNet's skip branches), 1..B a partial step
// through branch depth-1, 0 reuses the previous raw noise prediction; ratio is one of
// dato_schedule_ratios (0: off). Step 0 is always full.
#ifndef DATO_SCHEDULE_H
#define DATO_SCHEDULE_H

#include "status.h"

#define DATO_SCHEDULE_MAX_STEPS 1000

// The prune ratios a gene may hold, as the exact floats every schedule stores (parsed, loaded and
// preset alike): the one list of them. Index i is also the genome's ratio code (search/genome.h),
// the latency table's column (metrics/latency.h) and the graph variant of a pruning step (dato.c).
#define DATO_SCHEDULE_N_RATIOS 6
static const float dato_schedule_ratios[DATO_SCHEDULE_N_RATIOS] = {0.0f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f};

// The index of the allowed ratio within 1e-6 of r, or -1 if there is none.
int dato_schedule_ratio_index(double r);

typedef struct {
    int depth;   // 0..n_branches + 1
    float ratio; // one of dato_schedule_ratios
} dato_gene;

typedef struct {
    char model[256];   // what it was searched for (a name or hash; "" = any model)
    char sampler[32];  // sampler name ("" = any)
    int steps;
    int height, width; // image size in pixels (0 = any)
    int n_branches;    // B of the model it is for: depth B+1 is full
    dato_gene genes[DATO_SCHEDULE_MAX_STEPS]; // (steps)
} dato_schedule;

// Checks s against a run of `steps` steps on a UNet with n_branches branches; errors name the
// step and field. Ratios match dato_schedule_ratios within 1e-6.
dato_status dato_schedule_validate(const dato_schedule* s, int steps, int n_branches, dato_error* err);

// JSON (docs/SCHEDULES.md): {"format": "dato-schedule", "version": 1, ..., "genes": [{"depth": d,
// "ratio": r}, ...]}. Strict: unknown or duplicate keys and wrong types are errors naming the key
// (and gene index). Parsing checks the schedule against its own steps and n_branches and stores
// canonical ratios; `label` names the source in messages.
dato_status dato_schedule_parse(dato_schedule* out, const char* json, const char* label, dato_error* err);
dato_status dato_schedule_load(dato_schedule* out, const char* path, dato_error* err);
// Deterministic text, one gene per line; *out is malloc'd (the caller frees it).
dato_status dato_schedule_to_json(const dato_schedule* s, char** out, dato_error* err);
// Writes path via a temporary file in the same folder and a rename.
dato_status dato_schedule_save(const dato_schedule* s, const char* path, dato_error* err);

// Presets (docs/SCHEDULES.md gives the exact rules): "baseline", "deepcache:N[:branch=B]",
// "deepcache:N:center=C:pow=P[:branch=B]" (DeepCache's arguments), "tome:R", "dato-paper".
// model/sampler stay "", height/width 0.
// Errors name the spec; *out is then unspecified (parse, load, and resolve of a file leave it
// untouched).
dato_status dato_schedule_preset(dato_schedule* out, const char* spec, int steps, int n_branches, dato_error* err);
// 1 when file_or_preset names a schedule file (an existing file, or any name ending in .json), 0
// when it is a preset: the rule dato_schedule_resolve follows.
int dato_schedule_names_file(const char* file_or_preset);
// An existing file (or any name ending in .json) is loaded and validated against the run;
// anything else is parsed as a preset.
dato_status dato_schedule_resolve(dato_schedule* out, const char* file_or_preset, int steps, int n_branches,
                                  dato_error* err);

// DeepCache's sample_from_quad_center(total, n_samples, center, pow), bit for bit (numpy's complex
// arithmetic included): writes the n_samples full-step indices into indices (room for
// n_samples + 1) and returns n_samples, or -1 where DeepCache raises ValueError (no pow from
// power down to 1 gives n_samples indices; power <= 1; center outside [0, total)).
int dato_deepcache_quad_center(int* indices, int total, int n_samples, int center, double power);

typedef struct {
    int full, partial, reuse; // steps with depth B+1, 1..B, 0
    double mean_ratio;        // mean prune ratio over the computed (full + partial) steps
} dato_schedule_counts;

dato_schedule_counts dato_schedule_count(const dato_schedule* s);

#endif
