// The sampler updates of sampler.c as axpby programs (see sampler_program.h). Each kind's scalars
// (sqrt(abar), sigmas, DPM-Solver's c_x, c_d0, ...) are computed in float exactly as sampler.c's
// step_* functions compute them; the per-element arithmetic of those functions is then folded into
// one coefficient per input slot, in double, rounded to float once. The derivations are in the
// comments of each planner.
#include "sampler_program.h"

#include <math.h>

#include "sampler_impl.h"

typedef struct {
    dato_sampler_instr* prog;
    int n;
} program;

// slot[dst] = alpha * slot[a] + beta * slot[b].
static void emit(program* p, int dst, double alpha, int a, double beta, int b) {
    p->prog[p->n++] = (dato_sampler_instr){
        .dst = (int8_t)dst, .a = (int8_t)a, .b = (int8_t)b, .alpha = (float)alpha, .beta = (float)beta};
}

// slot[dst] = alpha * slot[a] (beta 0, b = a: axpby still reads b).
static void emit1(program* p, int dst, double alpha, int a) { emit(p, dst, alpha, a, 0.0, a); }

static int history(int i) { return DATO_SLOT_H0 + i; }

// DDIM: with x0, e from the model output m,
//   eps: x0 = (x - sqrt_b m) / sqrt_a, e = m
//   v:   x0 = sqrt_a x - sqrt_b m,     e = sqrt_a m + sqrt_b x
// x_prev = sqrt_a_prev x0 + direction e + std z is linear in (x, m, z). No history.
static void plan_ddim(const dato_sampler* s, int call, bool noise, program* p) {
    const dato_scheduler_config* cfg = &s->cfg;
    ddim_step d = ddim_step_at(s, call);
    float sqrt_a = d.sqrt_a, sqrt_b = d.sqrt_b, sqrt_a_prev = d.sqrt_a_prev, std_dev = d.std_dev;
    float direction = d.direction;
    double cx, cm;
    if (cfg->prediction_type == DATO_PREDICT_V) {
        cx = (double)sqrt_a_prev * sqrt_a + (double)direction * sqrt_b;
        cm = (double)direction * sqrt_a - (double)sqrt_a_prev * sqrt_b;
    } else {
        cx = (double)sqrt_a_prev / sqrt_a;
        cm = (double)direction - (double)sqrt_a_prev * sqrt_b / sqrt_a;
    }
    emit(p, DATO_SLOT_X, cx, DATO_SLOT_X, cm, DATO_SLOT_OUT);
    if (noise) emit(p, DATO_SLOT_X, 1.0, DATO_SLOT_X, std_dev, DATO_SLOT_NOISE);
}

// PLMS: the combined output E = sum_i w_i e_i (Adams-Bashforth weights over the newest outputs, the
// average of calls 0 and 1 at call 1) moves the start latent x_s by
//   eps: x_prev = sc x_s - k E
//   v:   x_prev = sc x_s - k (sqrt_a E + sqrt_b x_s) = (sc - k sqrt_b) x_s - k sqrt_a E
// with sc = sqrt(a_prev/a), k = (a_prev - a) / denom.
//
// History (3 slots). The outputs kept are those of calls 0, 2, 3, 4, ... (call 1's only averages):
// output number j (j = 0 at call 0, j = c - 1 at call c >= 2) goes to H[j % 3], written after the
// update, which reads outputs j-1, j-2, j-3 (the last of which sits in H[j % 3], hence the order).
// The start latent of call 0, read by call 1, lives in H1, which output 1 (call 2) takes over. The
// last call keeps nothing.
static void plan_plms(const dato_sampler* s, int call, program* p) {
    const dato_scheduler_config* cfg = &s->cfg;
    int ratio = cfg->num_train_timesteps / s->steps;
    int t = (int)s->timesteps[call], prev;
    int from = DATO_SLOT_X;
    const int start = history(1); // x at call 0
    if (call == 1) {
        prev = t;
        t = t + ratio;
        from = start;
    } else {
        prev = t - ratio;
    }
    plms_step ps = plms_step_at(s, t, prev);
    float sqrt_a = ps.sqrt_a, sqrt_b = ps.sqrt_b, sample_coeff = ps.sample_coeff, denom = ps.denom, diff = ps.diff;
    double k = (double)diff / denom;
    double c_from = sample_coeff, c_e = -k;
    if (cfg->prediction_type == DATO_PREDICT_V) {
        c_from = sample_coeff - k * sqrt_b;
        c_e = -k * sqrt_a;
    }

    // w[0] weighs this call's output, w[i] the i-th previous kept output.
    static const double w1[] = {1.0};
    static const double w2[] = {3.0 / 2.0, -1.0 / 2.0};
    static const double w3[] = {23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0};
    static const double w4[] = {55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0};
    static const double* weights[] = {NULL, w1, w2, w3, w4};
    if (call == 1) {
        emit(p, DATO_SLOT_X, c_from, from, 0.5 * c_e, DATO_SLOT_OUT);
        emit(p, DATO_SLOT_X, 1.0, DATO_SLOT_X, 0.5 * c_e, history(0));
        return;
    }
    int j = call == 0 ? 0 : call - 1; // this output's number among the kept ones
    int order = call == 0 ? 1 : call < 4 ? call : 4;
    const double* w = weights[order];
    if (call == 0) emit1(p, start, 1.0, DATO_SLOT_X);
    emit(p, DATO_SLOT_X, c_from, from, w[0] * c_e, DATO_SLOT_OUT);
    for (int i = 1; i < order; i++) emit(p, DATO_SLOT_X, 1.0, DATO_SLOT_X, w[i] * c_e, history((j - i) % 3));
    if (call < s->num_calls - 1) emit1(p, history(j % 3), 1.0, DATO_SLOT_OUT);
}

// DPM-Solver++(2M): x0 = p x + q m (eps: p = 1/alpha, q = -sigma/alpha; v: p = alpha, q = -sigma),
//   first order:  x_next = c_x x - c_d0 x0
//   second order: x_next = c_x x - c_d0 x0 - c_d1 (x0 - x0_prev) / r0
//                        = c_x x - (c_d0 + c_d1/r0) x0 + (c_d1/r0) x0_prev
// History (2 slots): the x0 of call c goes to H[c % 2], so x0_prev is in H[(c + 1) % 2]. The last
// call (first order, nothing to keep) folds x0 in: x_next = (c_x - c_d0 p) x - c_d0 q m.
static void plan_dpmpp_2m(const dato_sampler* s, int call, program* p) {
    int i_step = call;
    dpm_step d = dpm_step_at(s, call);
    dpm_point from = d.from;
    float c_x = d.c_x, c_d0 = d.c_d0, c_d1 = d.c_d1, inv_r0 = d.inv_r0;
    bool first_order = d.first_order;
    double px, qm;
    if (s->cfg.prediction_type == DATO_PREDICT_V) {
        px = from.alpha;
        qm = -(double)from.sigma;
    } else {
        px = 1.0 / from.alpha;
        qm = -(double)from.sigma / from.alpha;
    }
    if (i_step == s->steps - 1) {
        emit(p, DATO_SLOT_X, c_x - (double)c_d0 * px, DATO_SLOT_X, -(double)c_d0 * qm, DATO_SLOT_OUT);
        return;
    }
    int cur = history(call % 2), before = history((call + 1) % 2);
    emit(p, cur, px, DATO_SLOT_X, qm, DATO_SLOT_OUT);
    if (first_order) {
        emit(p, DATO_SLOT_X, c_x, DATO_SLOT_X, -(double)c_d0, cur);
    } else {
        double d1 = (double)c_d1 * inv_r0;
        emit(p, DATO_SLOT_X, c_x, DATO_SLOT_X, -((double)c_d0 + d1), cur);
        emit(p, DATO_SLOT_X, 1.0, DATO_SLOT_X, d1, before);
    }
}

// Euler (ancestral): x_next = x + d dt (+ sigma_up z) with d = (x - x0) / sigma:
//   eps: x0 = x - sigma m, so d = m:  x_next = x + dt m
//   v:   x0 = v_scale m + x / v_div:  x_next = (1 + dt (1 - 1/v_div) / sigma) x - (dt v_scale / sigma) m
// No history.
static void plan_euler(const dato_sampler* s, int call, bool noise, program* p) {
    euler_step e = euler_step_at(s, call);
    float sigma = e.sigma, dt = e.dt, sigma_up = e.sigma_up;
    if (s->cfg.prediction_type == DATO_PREDICT_V) {
        float v_scale = -sigma / sqrtf(sigma * sigma + 1.0f), v_div = sigma * sigma + 1.0f;
        double cx = 1.0 + (double)dt * (1.0 - 1.0 / v_div) / sigma;
        double cm = -(double)dt * v_scale / sigma;
        emit(p, DATO_SLOT_X, cx, DATO_SLOT_X, cm, DATO_SLOT_OUT);
    } else {
        emit(p, DATO_SLOT_X, 1.0, DATO_SLOT_X, dt, DATO_SLOT_OUT);
    }
    if (noise) emit(p, DATO_SLOT_X, 1.0, DATO_SLOT_X, sigma_up, DATO_SLOT_NOISE);
}

dato_status dato_sampler_program(const dato_sampler* s, int call, dato_sampler_instr* prog, int* n, dato_error* err) {
    if (n) *n = 0;
    if (!s || !prog || !n) return dato_fail(err, DATO_ERR_INVALID, "sampler program: NULL argument");
    if (call < 0 || call >= s->num_calls)
        return dato_fail(err, DATO_ERR_INVALID, "sampler program: call %d not in [0, %d)", call, s->num_calls);
    if (s->cfg.kind == DATO_SAMPLER_DDIM && s->cfg.clip_sample)
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "sampler program: ddim with clip_sample (x0 clamped to [-%g, %g]) is not a linear update; "
                         "set clip_sample false or step on the CPU with dato_sampler_step",
                         s->cfg.clip_sample_range, s->cfg.clip_sample_range);
    program p = {.prog = prog, .n = 0};
    bool noise = dato_sampler_needs_noise(s, call);
    switch (s->cfg.kind) {
    case DATO_SAMPLER_DDIM: plan_ddim(s, call, noise, &p); break;
    case DATO_SAMPLER_PNDM: plan_plms(s, call, &p); break;
    case DATO_SAMPLER_DPMPP_2M: plan_dpmpp_2m(s, call, &p); break;
    case DATO_SAMPLER_EULER:
    case DATO_SAMPLER_EULER_A: plan_euler(s, call, noise, &p); break;
    default:
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "sampler program: unknown sampler kind %d", (int)s->cfg.kind);
    }
    *n = p.n;
    return DATO_OK;
}

int dato_sampler_program_slots(const dato_sampler* s) {
    if (!s) return 0;
    switch (s->cfg.kind) {
    case DATO_SAMPLER_PNDM: return 3;
    case DATO_SAMPLER_DPMPP_2M: return 2;
    default: return 0;
    }
}

const char* dato_sampler_slot_name(int slot) {
    static const char* names[DATO_SLOT_COUNT] = {"x", "out", "noise", "h0", "h1", "h2"};
    return slot >= 0 && slot < DATO_SLOT_COUNT ? names[slot] : "?";
}
