// What an LDM single file does not say, filled in as diffusers 0.42.1's from_single_file fills it in
// (docs/SINGLE_FILE.md): the model type, read off a few tensor names and shapes as
// infer_diffusers_model_type reads it, and with it the diffusers repo whose configs the file borrows
// (that repo's scheduler_config.json as text, its UNet's sample_size); and the shape hints a small
// model of the SD architecture may need, settable by name so a command line can offer one flag per row.
#ifndef DATO_SINGLE_FILE_H
#define DATO_SINGLE_FILE_H

#include <stddef.h>

#include "status.h"
#include "tensor_source.h"
#include "text_encoder.h"
#include "unet_load.h"

typedef struct {
    const char* type;           // diffusers' model type: "v1", "v2", "xl_base", ...
    const char* repo;           // where from_single_file takes the configs (DIFFUSERS_DEFAULT_PIPELINE_PATHS)
    const char* scheduler_json; // that repo's scheduler/scheduler_config.json; NULL: dato does not carry it
    int sample_size;            // that repo's unet sample_size (latent pixels); 0 with scheduler_json NULL
} dato_single_file_model;

// The model type diffusers takes the file for: the first rule that holds, in diffusers' order, else
// "v1". Never NULL.
const dato_single_file_model* dato_single_file_model_infer(const dato_tensor_source* src);
// The row of a model type by name; NULL if dato has no such row.
const dato_single_file_model* dato_single_file_model_find(const char* type);

// What tensor shapes cannot tell about a single file's components; zero fields take the SD-family
// rules (unet_load.h, text_encoder.h, vae.h). Released SD checkpoints need none of it.
typedef struct {
    dato_unet_ldm_hints unet;
    dato_te_hints text[2]; // text_encoder, text_encoder_2 (SDXL's second)
    int vae_norm_groups;
} dato_single_file_hints;

typedef enum { DATO_HINT_INT, DATO_HINT_INT_LIST, DATO_HINT_FLOAT, DATO_HINT_ACT } dato_hint_kind;

// One settable hint: a command line offers --<name> <value> with this help.
typedef struct {
    const char* name;  // "unet-attention-heads": the component's folder and its config.json key
    const char* value; // what the value looks like, for usage lines: "N[,N...]"
    const char* help;
    dato_hint_kind kind;
    size_t offset;     // the field inside dato_single_file_hints
    int count;         // DATO_HINT_INT_LIST: at most this many values (one value sets them all)
    double min, max;   // the accepted range of each number
} dato_single_file_hint;

// The table of hints, n rows.
const dato_single_file_hint* dato_single_file_hint_table(int* n);
// Sets the hint called name (a row of the table) from its text; an unknown name lists the valid
// ones, a bad value names the expected form and range. hints is left unchanged on error.
dato_status dato_single_file_hint_set(dato_single_file_hints* hints, const char* name, const char* value,
                                      dato_error* err);

#endif
