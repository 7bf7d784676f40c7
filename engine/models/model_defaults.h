// A model folder's dato.json: the defaults dato's tools take for that model when a flag is not
// given (steps, guidance, image size, evaluation prompts, feature network, reference statistics,
// the references' results a search would otherwise make on a first run).
// Diffusers ignores the file, so the folder stays a plain diffusers folder. Format: docs/DEFAULT_MODEL.md.
#ifndef DATO_MODEL_DEFAULTS_H
#define DATO_MODEL_DEFAULTS_H

#include <stddef.h>

#include "status.h"

typedef struct {
    int present;                 // 0: the model has no dato.json; every field below is 0 or ""
    int steps;                   // 0: not set
    float guidance;              // 0: not set
    int height, width;           // pixels; 0: not set
    char eval_prompts[4096];     // paths resolved against the model folder; "" when not set
    char feature_net[4096];
    char reference_stats[4096];
    char reference_cache[4096]; // a folder of dato-search's reference cache entries shipped with the model (read-only)
} dato_model_defaults;

// Reads model_dir/dato.json. A missing file (or a single-file model) is not an error: *d gets
// present = 0. Unknown keys and wrong types are errors naming the file and the key.
dato_status dato_model_defaults_load(dato_model_defaults* d, const char* model_dir, dato_error* err);

// The embedded default model's folder: $DATO_DEFAULT_MODEL when set, else models/fashion-sd in
// the data dir (engine/core/data_dir.h: $DATO_DATA_DIR, the installed share/dato, or the source tree).
// Writes it into buf.
dato_status dato_default_model_dir(char* buf, size_t n, dato_error* err);

#endif
