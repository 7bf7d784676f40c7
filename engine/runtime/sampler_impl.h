// The sampler's private state, shared by sampler.c (the CPU updates) and sampler_program.c (the
// same updates as axpby programs for other backends). Not part of the engine's public API:
// include sampler.h instead.
#ifndef DATO_SAMPLER_IMPL_H
#define DATO_SAMPLER_IMPL_H

#include <math.h>
#include <stddef.h>

#include "sampler.h"

struct dato_sampler {
    dato_scheduler_config cfg; // cfg.kind is this sampler's kind
    int steps;
    int num_calls;
    size_t numel;
    float init_noise_sigma;
    float final_alpha_cumprod; // DDIM/PNDM: abar "before t = 0"
    float* alphas_cumprod;     // (num_train_timesteps)
    float* timesteps;          // (num_calls) the UNet timestep of each call
    float* sigmas;             // (steps + 1) DPM-Solver and Euler: sigma of each step, then 0

    // History, forgotten by reset.
    int next_call;
    int num_eps;       // PLMS: model outputs held in eps (at most 4)
    int newest;        // PLMS: index in eps of the newest
    float* eps[4];     // PLMS: (numel) each, a ring of past model outputs (not the one of call 1)
    float* plms_start; // PLMS: (numel) x at call 0, from which call 1 redoes step 0
    float* x0_prev;    // DPM-Solver: (numel) the previous step's x0 prediction
    float* x0_cur;     // DPM-Solver: (numel) this step's x0 prediction (swapped with x0_prev)

    // dato_sampler_run's buffers.
    float* model_in;  // (numel)
    float* model_out; // (numel)
    float* noise;     // (numel)
    float* block;     // the one allocation every float buffer above lives in
};

// alpha_t = 1/sqrt(sigma^2 + 1), sigma_t = sigma alpha_t, lambda = log alpha_t - log sigma_t
// (DPMSolverMultistepScheduler._sigma_to_alpha_sigma_t); sigma 0 gives lambda = +inf.
typedef struct {
    float alpha, sigma, lambda;
} dpm_point;

static inline dpm_point dpm_point_at(float sigma) {
    dpm_point p;
    p.alpha = 1.0f / sqrtf(sigma * sigma + 1.0f);
    p.sigma = sigma * p.alpha;
    p.lambda = logf(p.alpha) - logf(p.sigma);
    return p;
}

// DDIM's step `call`: abar at t and at the previous timestep, their square roots, the std of the
// added noise (eta) and the coefficient of the direction pointing to x_t.
typedef struct {
    float a, a_prev, sqrt_a, sqrt_b, sqrt_a_prev, std_dev, direction;
} ddim_step;

static inline ddim_step ddim_step_at(const dato_sampler* s, int call) {
    const dato_scheduler_config* cfg = &s->cfg;
    int t = (int)s->timesteps[call];
    int prev = t - cfg->num_train_timesteps / s->steps;
    ddim_step d;
    d.a = s->alphas_cumprod[t];
    d.a_prev = prev >= 0 ? s->alphas_cumprod[prev] : s->final_alpha_cumprod;
    float b = 1.0f - d.a;
    d.sqrt_a = sqrtf(d.a), d.sqrt_b = sqrtf(b), d.sqrt_a_prev = sqrtf(d.a_prev);
    float variance = ((1.0f - d.a_prev) / b) * (1.0f - d.a / d.a_prev);
    d.std_dev = (float)cfg->eta * sqrtf(variance);
    d.direction = sqrtf(1.0f - d.a_prev - d.std_dev * d.std_dev);
    return d;
}

// PLMS's update from timestep t to prev (PNDMScheduler._get_prev_sample): x_prev =
// sample_coeff x - diff e / denom, with e = the combined eps (v-prediction: sqrt_a e + sqrt_b x).
typedef struct {
    float sqrt_a, sqrt_b, sample_coeff, denom, diff;
} plms_step;

static inline plms_step plms_step_at(const dato_sampler* s, int t, int prev) {
    float a = s->alphas_cumprod[t];
    float a_prev = prev >= 0 ? s->alphas_cumprod[prev] : s->final_alpha_cumprod;
    float b = 1.0f - a, b_prev = 1.0f - a_prev;
    return (plms_step){.sqrt_a = sqrtf(a), .sqrt_b = sqrtf(b), .sample_coeff = sqrtf(a_prev / a),
                       .denom = a * sqrtf(b_prev) + sqrtf(a * b * a_prev), .diff = a_prev - a};
}

// The coefficients of DPM-Solver++(2M)'s step i (midpoint): x0 from the output at `from`, then
// x_next = c_x x - c_d0 x0 (first order: the first and the last step, lower_order_final), or
// x_next = c_x x - c_d0 x0 - c_d1 inv_r0 (x0 - x0_prev).
typedef struct {
    dpm_point from;
    float c_x, c_d0, c_d1, inv_r0;
    bool first_order;
} dpm_step;

static inline dpm_step dpm_step_at(const dato_sampler* s, int i_step) {
    dpm_step d = {.from = dpm_point_at(s->sigmas[i_step])};
    dpm_point to = dpm_point_at(s->sigmas[i_step + 1]);
    float h = to.lambda - d.from.lambda;
    d.c_x = to.sigma / d.from.sigma;
    d.c_d0 = to.alpha * (expf(-h) - 1.0f);
    d.first_order = i_step == 0 || i_step == s->steps - 1;
    if (!d.first_order) {
        dpm_point before = dpm_point_at(s->sigmas[i_step - 1]);
        float h0 = d.from.lambda - before.lambda;
        float r0 = h0 / h;
        d.inv_r0 = 1.0f / r0;
        d.c_d1 = 0.5f * d.c_d0;
    }
    return d;
}

// Euler's step `call` in sigma space: dt to the target sigma (sigma_down for the ancestral one,
// which then adds sigma_up z).
typedef struct {
    float sigma, dt, sigma_up;
} euler_step;

static inline euler_step euler_step_at(const dato_sampler* s, int call) {
    float sigma = s->sigmas[call], sigma_next = s->sigmas[call + 1];
    float sigma_up = 0.0f, target = sigma_next;
    if (s->cfg.kind == DATO_SAMPLER_EULER_A) {
        float from2 = sigma * sigma, to2 = sigma_next * sigma_next;
        sigma_up = sqrtf(to2 * (from2 - to2) / from2);
        target = sqrtf(to2 - sigma_up * sigma_up); // sigma_down
    }
    return (euler_step){.sigma = sigma, .dt = target - sigma, .sigma_up = sigma_up};
}

#endif
