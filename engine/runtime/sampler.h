// The samplers (diffusers' schedulers) of the dato engine: DDIM, PNDM/PLMS, DPM-Solver++(2M), Euler
// and Euler ancestral, with epsilon and v-prediction, matching diffusers' formulas and float32/float64
// arithmetic (ENGINE.md §10). A sampler is planned once for (config, kind, steps, latent size):
// every table and buffer is allocated at create, nothing in the loop allocates.
//
// The loop is indexed by model call, not by timestep: PLMS calls the model twice at its second
// timestep (steps + 1 calls), and call_info says which sampler step each call belongs to.
//
//   for (int c = 0; c < dato_sampler_num_calls(s); c++) {
//       dato_sampler_call info = dato_sampler_call_info(s, c);
//       model_in = x * info.input_scale; model_out = guided UNet(model_in, info.timestep);
//       dato_sampler_step(s, c, model_out, x, noise_or_NULL, &err);
//   }
// or dato_sampler_run(), which does exactly that through a callback.
#ifndef DATO_SAMPLER_H
#define DATO_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>

#include "rng.h"
#include "scheduler_config.h"
#include "status.h"

typedef struct dato_sampler dato_sampler;

// What to feed the model at one call.
typedef struct {
    int step;          // sampler step, 0..steps-1 (PLMS: calls 0 and 1 are both step 0); -1 for a bad call
    int call;          // model call, 0..num_calls-1
    float timestep;    // the UNet's timestep (integral except for Euler with linspace spacing)
    float input_scale; // model input = x * input_scale: 1/sqrt(sigma^2 + 1) for Euler, 1 otherwise
} dato_sampler_call;

// Plans `steps` sampler steps over latents of latent_numel floats. kind overrides cfg->kind.
// Fails (naming the value) on a bad config, steps outside [1, num_train_timesteps] (PLMS: >= 2), a
// timestep grid that leaves [0, num_train_timesteps) or that diffusers would size wrongly (trailing
// spacing whose numpy arange gives steps + 1 entries), or latent_numel == 0.
dato_status dato_sampler_create(dato_sampler** out, const dato_scheduler_config* cfg, dato_sampler_kind kind, int steps,
                                size_t latent_numel, dato_error* err);
void dato_sampler_destroy(dato_sampler* s);

dato_sampler_kind dato_sampler_get_kind(const dato_sampler* s);
int dato_sampler_steps(const dato_sampler* s);
// Model calls of a full run: PLMS steps + 1, the others steps.
int dato_sampler_num_calls(const dato_sampler* s);
dato_sampler_call dato_sampler_call_info(const dato_sampler* s, int call);
// The initial latent is standard normal noise times this: 1 for DDIM/PNDM/DPM-Solver; for Euler the
// largest sigma (linspace, trailing) or sqrt(sigma_max^2 + 1) (leading).
float dato_sampler_init_noise_sigma(const dato_sampler* s);
// Whether step(call) needs latent_numel standard normals: every call of Euler ancestral and of
// DDIM with eta > 0 (as diffusers draws them, even where they are multiplied by 0).
bool dato_sampler_needs_noise(const dato_sampler* s, int call);

// One update x <- sampler(x, model_out) for model call `call`. Calls must come in order 0, 1, 2, ...
// after create or reset (the multistep samplers keep history); out of order is DATO_ERR_INVALID.
// model_out, x: (latent_numel); noise: (latent_numel) standard normals when needs_noise, else may be NULL.
dato_status dato_sampler_step(dato_sampler* s, int call, const float* model_out, float* x, const float* noise,
                              dato_error* err);

// The model: writes model_out (latent_numel) for model_in (latent_numel) at call->timestep.
typedef dato_status (*dato_model_fn)(void* ctx, const dato_sampler_call* call, const float* model_in, float* model_out,
                                     dato_error* err);

// The error for latents that stopped being finite at model call `call`: names the call's step;
// what says where ("latent value 17 is nan"). The host loop (dato_sampler_run) checks x after
// every step; the device loop (pipeline.c) a per-call mean of x, which is finite exactly when every
// value is.
dato_status dato_sampler_nonfinite(const dato_sampler* s, int call, const char* what, dato_error* err);

// The whole denoising loop: resets the sampler, then for each call computes model_in = x * input_scale,
// calls fn, draws noise with dato_rng_fill_normal(rng, noise, latent_numel) after the model call when
// the call needs noise, and steps. x: (latent_numel), the initial latent already multiplied by
// init_noise_sigma; overwritten with the final latent. rng may be NULL for deterministic samplers.
// The model_in, model_out and noise buffers belong to the sampler. A failing fn stops the loop and
// its status is returned; so does a NaN or infinity in x after a step (dato_sampler_nonfinite).
dato_status dato_sampler_run(dato_sampler* s, float* x, dato_model_fn fn, void* ctx, dato_rng* rng, dato_error* err);

// Forgets the history (for a new image) without reallocating.
void dato_sampler_reset(dato_sampler* s);

#endif
