// Scheduler configuration: the training noise schedule and the inference options of a diffusers
// scheduler (scheduler/scheduler_config.json), the sampler kinds and their names, and the
// alphas_cumprod table computed exactly as diffusers computes it (float32, see ENGINE.md §10).
#ifndef DATO_SCHEDULER_CONFIG_H
#define DATO_SCHEDULER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef enum {
    DATO_SAMPLER_DDIM,     // DDIMScheduler
    DATO_SAMPLER_PNDM,     // PNDMScheduler with skip_prk_steps (PLMS): steps + 1 model calls
    DATO_SAMPLER_DPMPP_2M, // DPMSolverMultistepScheduler: dpmsolver++, order 2, midpoint, lower_order_final
    DATO_SAMPLER_EULER,    // EulerDiscreteScheduler
    DATO_SAMPLER_EULER_A,  // EulerAncestralDiscreteScheduler
} dato_sampler_kind;

typedef enum { DATO_BETA_SCALED_LINEAR, DATO_BETA_LINEAR } dato_beta_schedule;
typedef enum { DATO_PREDICT_EPSILON, DATO_PREDICT_V } dato_prediction_type;
typedef enum { DATO_SPACING_LEADING, DATO_SPACING_TRAILING, DATO_SPACING_LINSPACE } dato_timestep_spacing;

typedef struct {
    dato_sampler_kind kind; // the sampler this config names (_class_name), or the caller's override
    int num_train_timesteps;
    double beta_start, beta_end;
    dato_beta_schedule beta_schedule;
    dato_prediction_type prediction_type;
    dato_timestep_spacing timestep_spacing;
    int steps_offset;
    bool set_alpha_to_one; // DDIM/PNDM: abar "before t = 0" is 1 (true) or abar_0 (false)
    bool clip_sample;      // DDIM: clamp x0 to [-clip_sample_range, clip_sample_range]
    double clip_sample_range;
    double eta; // DDIM noise weight: a pipeline argument, not in the JSON; 0 = deterministic
} dato_scheduler_config;

// SD1.5's scheduler (PNDM/PLMS, scaled_linear 0.00085..0.012, 1000 steps, leading + offset 1,
// set_alpha_to_one false, epsilon, clip_sample false, eta 0).
void dato_scheduler_config_default(dato_scheduler_config* cfg);

// Reads a diffusers scheduler_config.json (path: the file, or a folder holding it directly or in its
// scheduler/, as dato_scheduler_config_read finds it). The sampler kind comes from "_class_name"
// (PNDMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
// EulerAncestralDiscreteScheduler) unless kind_override is non-NULL; an unknown or missing class
// without an override is an error. A key the file lacks takes the default of the class of the
// resolved kind, as diffusers' from_config does when switching schedulers (so SD1.5's file, which
// has no timestep_spacing, gives leading for DDIM/PNDM and linspace for DPM-Solver and Euler).
// Options that change the math in ways dato does not implement (karras sigmas, thresholding,
// zero-SNR rescaling, PRK steps, ...) are errors naming the field; a wrong type or unknown value
// is an error naming the field. PNDM always runs PLMS, also where skip_prk_steps is missing.
dato_status dato_scheduler_config_load(const char* path, const dato_sampler_kind* kind_override,
                                       dato_scheduler_config* cfg, dato_error* err);
// The same from JSON text; source names it in error messages.
dato_status dato_scheduler_config_parse(const char* json, const char* source, const dato_sampler_kind* kind_override,
                                        dato_scheduler_config* cfg, dato_error* err);
// The text of the scheduler_config.json that path names: path itself if it is a file, else
// path/scheduler_config.json (a scheduler folder), else path/scheduler/scheduler_config.json (a
// diffusers folder). *json is malloc'd; file (file_size bytes) receives the path read.
dato_status dato_scheduler_config_read(const char* path, char** json, char* file, size_t file_size, dato_error* err);
// Checks ranges: num_train_timesteps >= 2, 0 < beta_start <= beta_end < 1, 0 <= steps_offset <
// num_train_timesteps, eta >= 0, clip_sample_range > 0, known enum values.
dato_status dato_scheduler_config_validate(const dato_scheduler_config* cfg, dato_error* err);

// "epsilon" or "v_prediction" (diffusers' names) -> the prediction type.
dato_status dato_prediction_type_parse(const char* name, dato_prediction_type* type, dato_error* err);
const char* dato_prediction_type_name(dato_prediction_type type);

// CLI names: "ddim", "pndm" (or "plms"), "dpmpp-2m", "euler", "euler-a".
dato_status dato_sampler_kind_parse(const char* name, dato_sampler_kind* kind, dato_error* err);
const char* dato_sampler_kind_name(dato_sampler_kind kind);
// diffusers class name -> kind ("PNDMScheduler" -> DATO_SAMPLER_PNDM, ...); DATO_ERR_UNSUPPORTED if unknown.
dato_status dato_sampler_kind_from_class(const char* class_name, dato_sampler_kind* kind, dato_error* err);

// alphas_cumprod[t] for t in [0, num_train_timesteps), bit-exact with diffusers: betas from a
// float32 torch.linspace (scaled_linear squares it), alphas = 1 - betas in float32, cumulative
// product accumulated in double and rounded to float32 at each entry (torch's CPU cumprod).
dato_status dato_alphas_cumprod(const dato_scheduler_config* cfg, float* alphas_cumprod /* (num_train_timesteps) */,
                                dato_error* err);

#endif
