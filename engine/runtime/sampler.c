// Samplers after diffusers' scheduling_{ddim,pndm,dpmsolver_multistep,euler_discrete,
// euler_ancestral_discrete}.py. Where diffusers computes in float32 (torch tensors: alphas_cumprod,
// sigmas, every step coefficient and update) this file computes in float, one rounding per torch
// operation and in torch's order; where it computes in float64 (numpy timestep grids, np.interp of
// sigmas) it computes in double. Results then match diffusers to a few float32 ulps.
#include "sampler.h"
#include "sampler_impl.h"
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- timestep grids (numpy, float64) --------------------------------------------------------------

// numpy.linspace(0, stop, num)[i].
static double np_linspace(double stop, int num, int i) {
    if (num == 1) return 0.0;
    if (i == num - 1) return stop;
    return (double)i * (stop / (double)(num - 1));
}

// numpy.arange(start, 0, step) with a float step < 0: its length and its i-th value (numpy fills
// start + i * delta with delta = (start + step) - start).
static long np_arange_length(double start, double step) { return (long)ceil((0.0 - start) / step); }
static double np_arange_at(double start, double step, long i) {
    if (i == 0) return start;
    if (i == 1) return start + step;
    return start + (double)i * ((start + step) - start);
}

// The descending timesteps of DDIM/PNDM/Euler for spacing leading/trailing/linspace (rounded; Euler's
// linspace is not rounded and is handled by the caller). grid: (steps).
static dato_status base_grid(const dato_scheduler_config* cfg, int steps, double* grid, dato_error* err) {
    int T = cfg->num_train_timesteps;
    for (int k = 0; k < steps; k++) {
        switch (cfg->timestep_spacing) {
        case DATO_SPACING_LEADING: grid[k] = (double)((steps - 1 - k) * (T / steps) + cfg->steps_offset); break;
        case DATO_SPACING_LINSPACE: grid[k] = rint(np_linspace(T - 1, steps, steps - 1 - k)); break;
        case DATO_SPACING_TRAILING: grid[k] = rint(np_arange_at(T, -(double)T / steps, k)) - 1; break;
        }
    }
    if (cfg->timestep_spacing == DATO_SPACING_TRAILING && np_arange_length(T, -(double)T / steps) != steps)
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "sampler: trailing spacing with %d steps gives %ld timesteps in diffusers (numpy arange "
                         "rounding); choose another step count",
                         steps, np_arange_length(T, -(double)T / steps));
    return DATO_OK;
}

// DPM-Solver's grid: N + 1 points, the last (smallest) dropped.
static dato_status dpm_grid(const dato_scheduler_config* cfg, int steps, double* grid, dato_error* err) {
    int T = cfg->num_train_timesteps;
    switch (cfg->timestep_spacing) {
    case DATO_SPACING_LEADING:
        for (int k = 0; k < steps; k++) grid[k] = (double)((steps - k) * (T / (steps + 1)) + cfg->steps_offset);
        return DATO_OK;
    case DATO_SPACING_LINSPACE:
        for (int k = 0; k < steps; k++) grid[k] = rint(np_linspace(T - 1, steps + 1, steps - k));
        return DATO_OK;
    case DATO_SPACING_TRAILING: return base_grid(cfg, steps, grid, err);
    }
    return dato_fail(err, DATO_ERR_INVALID, "sampler: bad timestep_spacing %d", (int)cfg->timestep_spacing);
}

// sigma_t = sqrt((1 - abar_t) / abar_t) in float32, as diffusers' sigma table.
static float sigma_at(const float* alphas_cumprod, int t) {
    return sqrtf((1.0f - alphas_cumprod[t]) / alphas_cumprod[t]);
}

// np.interp(t, arange(T), sigma table) in float64, rounded to float32.
static float interp_sigma(const float* alphas_cumprod, int T, double t) {
    if (t <= 0) return sigma_at(alphas_cumprod, 0);
    if (t >= T - 1) return sigma_at(alphas_cumprod, T - 1);
    int j = (int)floor(t);
    double low = sigma_at(alphas_cumprod, j);
    if ((double)j == t) return (float)low;
    double slope = (double)sigma_at(alphas_cumprod, j + 1) - low;
    return (float)(slope * (t - j) + low);
}

// ---- create / destroy ------------------------------------------------------------------------------

static bool is_euler(dato_sampler_kind kind) { return kind == DATO_SAMPLER_EULER || kind == DATO_SAMPLER_EULER_A; }

static const char* spacing_name(dato_timestep_spacing spacing) {
    return spacing == DATO_SPACING_LEADING ? "leading" : spacing == DATO_SPACING_TRAILING ? "trailing" : "linspace";
}

// Fills timesteps, sigmas and init_noise_sigma. grid: (steps) scratch.
static dato_status plan_timesteps(dato_sampler* s, double* grid, dato_error* err) {
    const dato_scheduler_config* cfg = &s->cfg;
    int T = cfg->num_train_timesteps, N = s->steps;
    dato_status st = cfg->kind == DATO_SAMPLER_DPMPP_2M ? dpm_grid(cfg, N, grid, err) : base_grid(cfg, N, grid, err);
    if (st) return st;
    if (is_euler(cfg->kind) && cfg->timestep_spacing == DATO_SPACING_LINSPACE)
        for (int k = 0; k < N; k++) grid[k] = (float)np_linspace(T - 1, N, N - 1 - k); // float32, not rounded
    for (int k = 0; k < N; k++) {
        if (!(grid[k] >= 0 && grid[k] <= T - 1))
            return dato_fail(
                err, DATO_ERR_INVALID,
                "sampler: %s with %d steps, %s spacing and steps_offset %d gives timestep %g outside [0, %d]",
                dato_sampler_kind_name(cfg->kind), N, spacing_name(cfg->timestep_spacing), cfg->steps_offset, grid[k],
                T - 1);
    }

    switch (cfg->kind) {
    case DATO_SAMPLER_DDIM:
        for (int k = 0; k < N; k++) s->timesteps[k] = (float)grid[k];
        s->init_noise_sigma = 1.0f;
        break;
    case DATO_SAMPLER_PNDM:
        // PLMS repeats the second timestep: t0, t1, t1, t2, ..., t_{N-1}.
        s->timesteps[0] = (float)grid[0];
        s->timesteps[1] = (float)grid[1];
        for (int c = 2; c <= N; c++) s->timesteps[c] = (float)grid[c - 1];
        // Call 1 redoes step 0 as the step from t1 + T/N to t1 (diffusers' rule, whatever the spacing).
        if (grid[1] + T / N > T - 1)
            return dato_fail(err, DATO_ERR_INVALID,
                             "sampler: pndm with %d steps redoes its first step from timestep %g outside [0, %d]", N,
                             grid[1] + T / N, T - 1);
        s->init_noise_sigma = 1.0f;
        break;
    case DATO_SAMPLER_DPMPP_2M:
        for (int k = 0; k < N; k++) {
            s->timesteps[k] = (float)grid[k];
            s->sigmas[k] = sigma_at(s->alphas_cumprod, (int)grid[k]);
        }
        s->sigmas[N] = 0.0f;
        s->init_noise_sigma = 1.0f;
        break;
    case DATO_SAMPLER_EULER:
    case DATO_SAMPLER_EULER_A: {
        float max_sigma = 0.0f;
        for (int k = 0; k < N; k++) {
            s->timesteps[k] = (float)grid[k];
            s->sigmas[k] = interp_sigma(s->alphas_cumprod, T, (double)s->timesteps[k]);
            max_sigma = fmaxf(max_sigma, s->sigmas[k]);
        }
        s->sigmas[N] = 0.0f;
        s->init_noise_sigma =
            cfg->timestep_spacing == DATO_SPACING_LEADING ? sqrtf(max_sigma * max_sigma + 1.0f) : max_sigma;
        break;
    }
    }
    return DATO_OK;
}

dato_status dato_sampler_create(dato_sampler** out, const dato_scheduler_config* cfg, dato_sampler_kind kind, int steps,
                                size_t latent_numel, dato_error* err) {
    if (!out || !cfg) return dato_fail(err, DATO_ERR_INVALID, "sampler: NULL argument");
    *out = NULL;
    dato_scheduler_config c = *cfg;
    c.kind = kind;
    dato_status st = dato_scheduler_config_validate(&c, err);
    if (st) return st;
    int T = c.num_train_timesteps;
    int min_steps = kind == DATO_SAMPLER_PNDM ? 2 : 1;
    if (steps < min_steps || steps > T)
        return dato_fail(err, DATO_ERR_INVALID, "sampler: %s needs steps in [%d, %d], got %d",
                         dato_sampler_kind_name(kind), min_steps, T, steps);
    if (latent_numel == 0 || latent_numel > ((size_t)1 << 40))
        return dato_fail(err, DATO_ERR_INVALID, "sampler: latent_numel %zu out of range", latent_numel);

    dato_sampler* s = calloc(1, sizeof *s);
    if (!s) return dato_fail(err, DATO_ERR_NOMEM, "sampler: no memory");
    s->cfg = c;
    s->steps = steps;
    s->num_calls = kind == DATO_SAMPLER_PNDM ? steps + 1 : steps;
    s->numel = latent_numel;

    // One block: tables, then latent-sized buffers (4 PLMS eps + PLMS start / DPM x0 pair + 3 for run).
    size_t n = latent_numel;
    size_t latent_buffers = kind == DATO_SAMPLER_PNDM ? 5 : kind == DATO_SAMPLER_DPMPP_2M ? 2 : 0;
    size_t table_floats = (size_t)T + (size_t)s->num_calls + (size_t)steps + 1;
    size_t total = table_floats + (latent_buffers + 3) * n;
    double* grid = malloc((size_t)steps * sizeof *grid);
    s->block = calloc(total, sizeof(float));
    if (!s->block || !grid) {
        free(grid);
        dato_sampler_destroy(s);
        return dato_fail(err, DATO_ERR_NOMEM, "sampler: no memory for %zu floats", total);
    }
    float* p = s->block;
    s->alphas_cumprod = p, p += T;
    s->timesteps = p, p += s->num_calls;
    s->sigmas = p, p += steps + 1;
    if (kind == DATO_SAMPLER_PNDM) {
        for (int i = 0; i < 4; i++) s->eps[i] = p, p += n;
        s->plms_start = p, p += n;
    } else if (kind == DATO_SAMPLER_DPMPP_2M) {
        s->x0_prev = p, p += n;
        s->x0_cur = p, p += n;
    }
    s->model_in = p, p += n;
    s->model_out = p, p += n;
    s->noise = p, p += n;

    st = dato_alphas_cumprod(&s->cfg, s->alphas_cumprod, err);
    if (!st) {
        s->final_alpha_cumprod = c.set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
        st = plan_timesteps(s, grid, err);
    }
    free(grid);
    if (st) {
        dato_sampler_destroy(s);
        return st;
    }
    dato_sampler_reset(s);
    *out = s;
    return DATO_OK;
}

void dato_sampler_destroy(dato_sampler* s) {
    if (!s) return;
    free(s->block);
    free(s);
}

void dato_sampler_reset(dato_sampler* s) {
    if (!s) return;
    s->next_call = 0;
    s->num_eps = 0;
    s->newest = 0;
}

// ---- queries -------------------------------------------------------------------------------------------

dato_sampler_kind dato_sampler_get_kind(const dato_sampler* s) { return s ? s->cfg.kind : DATO_SAMPLER_DDIM; }
int dato_sampler_steps(const dato_sampler* s) { return s ? s->steps : 0; }
int dato_sampler_num_calls(const dato_sampler* s) { return s ? s->num_calls : 0; }
float dato_sampler_init_noise_sigma(const dato_sampler* s) { return s ? s->init_noise_sigma : 0.0f; }

dato_sampler_call dato_sampler_call_info(const dato_sampler* s, int call) {
    dato_sampler_call info = {.step = -1, .call = call, .timestep = 0.0f, .input_scale = 0.0f};
    if (!s || call < 0 || call >= s->num_calls) return info;
    info.step = s->cfg.kind == DATO_SAMPLER_PNDM ? (call < 2 ? 0 : call - 1) : call;
    info.timestep = s->timesteps[call];
    if (is_euler(s->cfg.kind)) {
        float sigma = s->sigmas[call];
        info.input_scale = 1.0f / sqrtf(sigma * sigma + 1.0f);
    } else {
        info.input_scale = 1.0f;
    }
    return info;
}

bool dato_sampler_needs_noise(const dato_sampler* s, int call) {
    if (!s || call < 0 || call >= s->num_calls) return false;
    return s->cfg.kind == DATO_SAMPLER_EULER_A || (s->cfg.kind == DATO_SAMPLER_DDIM && s->cfg.eta > 0);
}

// ---- the updates -------------------------------------------------------------------------------------

// DDIM (scheduling_ddim.py step): x0 and eps from the model output, then
// x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - std^2) eps + std z.
static void step_ddim(dato_sampler* s, int call, const float* model_out, float* x, const float* noise) {
    const dato_scheduler_config* cfg = &s->cfg;
    ddim_step d = ddim_step_at(s, call);
    float sqrt_a = d.sqrt_a, sqrt_b = d.sqrt_b, sqrt_a_prev = d.sqrt_a_prev, std_dev = d.std_dev;
    float direction = d.direction;
    float clip = (float)cfg->clip_sample_range;
    bool v_pred = cfg->prediction_type == DATO_PREDICT_V, add_noise = cfg->eta > 0;
    for (size_t i = 0; i < s->numel; i++) {
        float m = model_out[i], xi = x[i], x0, e;
        if (v_pred) {
            x0 = sqrt_a * xi - sqrt_b * m;
            e = sqrt_a * m + sqrt_b * xi;
        } else {
            x0 = (xi - sqrt_b * m) / sqrt_a;
            e = m;
        }
        if (cfg->clip_sample) x0 = fminf(fmaxf(x0, -clip), clip);
        float next = sqrt_a_prev * x0 + direction * e;
        if (add_noise) next = next + std_dev * noise[i];
        x[i] = next;
    }
}

// PLMS (scheduling_pndm.py step_plms + _get_prev_sample): call 0 steps t0 -> t0 - T/N with e0 and
// keeps x; call 1 redoes that step from the kept x with (e0 + e1)/2 (stepping t1 + T/N -> t1, as
// diffusers does); later calls use Adams-Bashforth on the history. The combined output e' moves x by
// x_prev = sqrt(a_prev/a) x - (a_prev - a) e' / (a sqrt(1 - a_prev) + sqrt(a (1 - a) a_prev)).
static void step_plms(dato_sampler* s, int call, const float* model_out, float* x) {
    const dato_scheduler_config* cfg = &s->cfg;
    int ratio = cfg->num_train_timesteps / s->steps;
    int t = (int)s->timesteps[call], prev;
    const float* from = x; // (numel) the latent the step starts from
    if (call == 1) {
        prev = t;
        t = t + ratio;
        from = s->plms_start;
    } else {
        prev = t - ratio;
        s->newest = (s->newest + 1) & 3;
        memcpy(s->eps[s->newest], model_out, s->numel * sizeof(float));
        if (s->num_eps < 4) s->num_eps++;
        if (call == 0) memcpy(s->plms_start, x, s->numel * sizeof(float));
    }
    const float* e1 = s->eps[s->newest]; // newest first
    const float* e2 = s->eps[(s->newest + 3) & 3];
    const float* e3 = s->eps[(s->newest + 2) & 3];
    const float* e4 = s->eps[(s->newest + 1) & 3];
    int order = call == 1 ? 0 : s->num_eps; // 0: the Heun-like average of call 1

    plms_step ps = plms_step_at(s, t, prev);
    float sqrt_a = ps.sqrt_a, sqrt_b = ps.sqrt_b, sample_coeff = ps.sample_coeff, denom = ps.denom, diff = ps.diff;
    float one_24th = (float)(1.0 / 24.0);
    bool v_pred = cfg->prediction_type == DATO_PREDICT_V;
    for (size_t i = 0; i < s->numel; i++) {
        float e;
        switch (order) {
        case 0: e = (model_out[i] + e1[i]) / 2.0f; break;
        case 1: e = e1[i]; break;
        case 2: e = (3.0f * e1[i] - e2[i]) / 2.0f; break;
        case 3: e = (23.0f * e1[i] - 16.0f * e2[i] + 5.0f * e3[i]) / 12.0f; break;
        default: e = one_24th * (55.0f * e1[i] - 59.0f * e2[i] + 37.0f * e3[i] - 9.0f * e4[i]); break;
        }
        float xi = from[i];
        if (v_pred) e = sqrt_a * e + sqrt_b * xi;
        x[i] = sample_coeff * xi - diff * e / denom;
    }
}

// DPM-Solver++(2M), midpoint (scheduling_dpmsolver_multistep.py): x0 from the model output, then the
// first-order update on the first step and on the last (lower_order_final; final sigma 0 makes it
// return x0), the second-order one on the others.
static void step_dpmpp_2m(dato_sampler* s, int call, const float* model_out, float* x) {
    dpm_step d = dpm_step_at(s, call);
    dpm_point from = d.from;
    float c_x = d.c_x, c_d0 = d.c_d0, c_d1 = d.c_d1, inv_r0 = d.inv_r0;
    bool first_order = d.first_order;
    bool v_pred = s->cfg.prediction_type == DATO_PREDICT_V;
    float* m1 = s->x0_prev; // (numel)
    float* m0 = s->x0_cur;  // (numel)
    for (size_t i = 0; i < s->numel; i++) {
        float xi = x[i];
        float x0 = v_pred ? from.alpha * xi - from.sigma * model_out[i] : (xi - from.sigma * model_out[i]) / from.alpha;
        m0[i] = x0;
        if (first_order) {
            x[i] = c_x * xi - c_d0 * x0;
        } else {
            float d1 = inv_r0 * (x0 - m1[i]);
            x[i] = c_x * xi - c_d0 * x0 - c_d1 * d1;
        }
    }
    s->x0_prev = m0;
    s->x0_cur = m1;
}

// Euler and Euler ancestral (scheduling_euler_discrete.py, scheduling_euler_ancestral_discrete.py)
// in sigma space: x0 from the model output, d = (x - x0)/sigma, x += d (sigma_next - sigma); the
// ancestral step goes to sigma_down and adds sigma_up z.
static void step_euler(dato_sampler* s, int call, const float* model_out, float* x, const float* noise) {
    euler_step e = euler_step_at(s, call);
    float sigma = e.sigma, dt = e.dt, sigma_up = e.sigma_up;
    bool ancestral = s->cfg.kind == DATO_SAMPLER_EULER_A;
    float v_scale = -sigma / sqrtf(sigma * sigma + 1.0f), v_div = sigma * sigma + 1.0f;
    bool v_pred = s->cfg.prediction_type == DATO_PREDICT_V;
    for (size_t i = 0; i < s->numel; i++) {
        float xi = x[i];
        float x0 = v_pred ? model_out[i] * v_scale + xi / v_div : xi - sigma * model_out[i];
        float derivative = (xi - x0) / sigma;
        float next = xi + derivative * dt;
        if (ancestral) next = next + noise[i] * sigma_up;
        x[i] = next;
    }
}

dato_status dato_sampler_step(dato_sampler* s, int call, const float* model_out, float* x, const float* noise,
                              dato_error* err) {
    if (!s || !model_out || !x) return dato_fail(err, DATO_ERR_INVALID, "sampler step: NULL argument");
    if (call < 0 || call >= s->num_calls)
        return dato_fail(err, DATO_ERR_INVALID, "sampler step: call %d not in [0, %d)", call, s->num_calls);
    if (call != s->next_call)
        return dato_fail(err, DATO_ERR_INVALID, "sampler step: got call %d, expected call %d (reset for a new image)",
                         call, s->next_call);
    if (dato_sampler_needs_noise(s, call) && !noise)
        return dato_fail(err, DATO_ERR_INVALID, "sampler step: %s needs noise at call %d",
                         dato_sampler_kind_name(s->cfg.kind), call);
    switch (s->cfg.kind) {
    case DATO_SAMPLER_DDIM: step_ddim(s, call, model_out, x, noise); break;
    case DATO_SAMPLER_PNDM: step_plms(s, call, model_out, x); break;
    case DATO_SAMPLER_DPMPP_2M: step_dpmpp_2m(s, call, model_out, x); break;
    case DATO_SAMPLER_EULER:
    case DATO_SAMPLER_EULER_A: step_euler(s, call, model_out, x, noise); break;
    }
    s->next_call++;
    return DATO_OK;
}

dato_status dato_sampler_run(dato_sampler* s, float* x, dato_model_fn fn, void* ctx, dato_rng* rng, dato_error* err) {
    if (!s || !x || !fn) return dato_fail(err, DATO_ERR_INVALID, "sampler run: NULL argument");
    dato_sampler_reset(s);
    for (int call = 0; call < s->num_calls; call++) {
        dato_sampler_call info = dato_sampler_call_info(s, call);
        for (size_t i = 0; i < s->numel; i++) s->model_in[i] = x[i] * info.input_scale;
        dato_status st = fn(ctx, &info, s->model_in, s->model_out, err);
        if (st) return st;
        const float* noise = NULL;
        if (dato_sampler_needs_noise(s, call)) {
            if (!rng)
                return dato_fail(err, DATO_ERR_INVALID, "sampler run: %s needs a random generator",
                                 dato_sampler_kind_name(s->cfg.kind));
            dato_rng_fill_normal(rng, s->noise, s->numel);
            noise = s->noise;
        }
        st = dato_sampler_step(s, call, s->model_out, x, noise, err);
        if (st) return st;
        size_t bad = dato_first_nonfinite(x, s->numel);
        if (bad < s->numel) {
            char what[64];
            snprintf(what, sizeof what, "latent value %zu is %g", bad, (double)x[bad]);
            return dato_sampler_nonfinite(s, call, what, err);
        }
    }
    return DATO_OK;
}

dato_status dato_sampler_nonfinite(const dato_sampler* s, int call, const char* what, dato_error* err) {
    dato_sampler_call info = dato_sampler_call_info(s, call);
    return dato_fail(err, DATO_ERR_INVALID,
                     "sampler: the latents are not finite after step %d of %d (model call %d of %d; every earlier "
                     "step was finite): %s", info.step + 1, s->steps, call + 1, s->num_calls, what);
}
