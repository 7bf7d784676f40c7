// The samplers as axpby programs (sampler_program.h) against dato_sampler_step: for every sampler
// kind x prediction type (DDIM with eta 0 and > 0, PLMS, DPM-Solver++(2M) with its first/last
// steps, Euler and Euler ancestral over the spacings), random model outputs and noise (the same for
// both paths), the program path run on host float slots as a backend's axpby would run it. The
// latent after every call agrees within 1e-5 relative (the programs fold coefficients in another
// rounding order, so not bit for bit). Also: the programs are planned before the loop, use only the
// slots they declare, never write OUT or NOISE, read NOISE only when the call needs noise, never read
// history at call 0; bad calls and clip_sample are refused.
#include <stdint.h>
#include <string.h>

#include "rng.h"
#include "sampler.h"
#include "sampler_program.h"
#include "scheduler_config.h"
#include "test_util.h"

#define NUMEL 512 // (2, 4, 8, 8)
#define MAX_CALLS 64

// The backend's axpby on the host: slot[dst] = alpha * slot[a] + beta * slot[b], elementwise, in float.
static void run_program(const dato_sampler_instr* prog, int n, float* slots[DATO_SLOT_COUNT]) {
    for (int k = 0; k < n; k++) {
        const dato_sampler_instr* in = &prog[k];
        float* out = slots[in->dst];
        const float *a = slots[in->a], *b = slots[in->b];
        for (int i = 0; i < NUMEL; i++) out[i] = in->alpha * a[i] + in->beta * b[i];
    }
}

// Structural checks of one call's program. Returns 1 when it is well formed.
static int check_program(const char* name, const dato_sampler* s, int call, const dato_sampler_instr* prog, int n) {
    int hist = dato_sampler_program_slots(s), ok = n >= 1 && n <= DATO_SAMPLER_MAX_INSTR;
    bool noise = dato_sampler_needs_noise(s, call), reads_noise = false;
    for (int k = 0; k < n; k++) {
        const dato_sampler_instr* in = &prog[k];
        int limit = DATO_SLOT_H0 + hist;
        ok &= in->dst >= 0 && in->dst < limit && in->a >= 0 && in->a < limit && in->b >= 0 && in->b < limit;
        ok &= in->dst != DATO_SLOT_OUT && in->dst != DATO_SLOT_NOISE;
        ok &= isfinite(in->alpha) && isfinite(in->beta);
        reads_noise |= in->a == DATO_SLOT_NOISE || in->b == DATO_SLOT_NOISE;
    }
    ok &= reads_noise == noise;
    CHECK(ok, "%s: call %d: malformed program (%d instructions)", name, call, n);
    return ok;
}

// Field by field (the struct has padding).
static bool same_program(const dato_sampler_instr* p, const dato_sampler_instr* q, int n) {
    for (int k = 0; k < n; k++)
        if (p[k].dst != q[k].dst || p[k].a != q[k].a || p[k].b != q[k].b || p[k].alpha != q[k].alpha ||
            p[k].beta != q[k].beta)
            return false;
    return true;
}

static void print_program(const dato_sampler_instr* prog, int n) {
    for (int k = 0; k < n; k++)
        printf("    %s = %.9g * %s + %.9g * %s\n", dato_sampler_slot_name(prog[k].dst), prog[k].alpha,
               dato_sampler_slot_name(prog[k].a), prog[k].beta, dato_sampler_slot_name(prog[k].b));
}

typedef struct {
    dato_sampler_kind kind;
    dato_prediction_type prediction;
    dato_timestep_spacing spacing;
    double eta;
    bool set_alpha_to_one;
    int steps;
} sampler_case;

static const char* spacing_name(dato_timestep_spacing sp) {
    return sp == DATO_SPACING_LEADING ? "leading" : sp == DATO_SPACING_TRAILING ? "trailing" : "linspace";
}

// Runs one case both ways; returns the max relative error over all calls.
static double test_case(const sampler_case* c, bool verbose) {
    char name[128];
    snprintf(name, sizeof name, "%s %s %s eta %.1f%s %d steps", dato_sampler_kind_name(c->kind),
             c->prediction == DATO_PREDICT_V ? "v" : "eps", spacing_name(c->spacing), c->eta,
             c->set_alpha_to_one ? " a1" : "", c->steps);
    dato_scheduler_config cfg;
    dato_scheduler_config_default(&cfg);
    cfg.prediction_type = c->prediction;
    cfg.timestep_spacing = c->spacing;
    cfg.eta = c->eta;
    cfg.set_alpha_to_one = c->set_alpha_to_one;
    dato_error err = {{0}};
    dato_sampler *s = NULL, *planner = NULL;
    if (dato_sampler_create(&s, &cfg, c->kind, c->steps, NUMEL, &err) != DATO_OK ||
        dato_sampler_create(&planner, &cfg, c->kind, c->steps, NUMEL, &err) != DATO_OK) {
        CHECK(0, "%s: create: %s", name, err.msg);
        dato_sampler_destroy(s);
        return INFINITY;
    }
    int calls = dato_sampler_num_calls(s), hist = dato_sampler_program_slots(s);
    CHECK(calls <= MAX_CALLS && hist <= DATO_SAMPLER_MAX_HISTORY, "%s: %d calls, %d history slots", name, calls,
          hist);

    // Every program planned before the loop, from a sampler that never steps.
    static dato_sampler_instr progs[MAX_CALLS][DATO_SAMPLER_MAX_INSTR];
    int counts[MAX_CALLS];
    for (int k = 0; k < calls; k++) {
        CHECK(dato_sampler_program(planner, k, progs[k], &counts[k], &err) == DATO_OK, "%s: call %d: %s", name, k,
              err.msg);
        check_program(name, s, k, progs[k], counts[k]);
    }
    if (verbose)
        for (int k = 0; k < calls && k < 3; k++) {
            printf("  %s, call %d:\n", name, k);
            print_program(progs[k], counts[k]);
        }

    static float x_ref[NUMEL], out[NUMEL], noise[NUMEL], x[NUMEL], hbuf[DATO_SAMPLER_MAX_HISTORY][NUMEL];
    float* slots[DATO_SLOT_COUNT] = {x, out, noise, hbuf[0], hbuf[1], hbuf[2]};
    dato_rng rng;
    dato_rng_seed(&rng, 1234 + (uint64_t)c->kind * 100 + (uint64_t)c->steps);
    dato_rng_fill_normal(&rng, x_ref, NUMEL);
    for (int i = 0; i < NUMEL; i++) x_ref[i] *= dato_sampler_init_noise_sigma(s);
    memcpy(x, x_ref, sizeof x);
    // History is garbage before call 0: NaN proves call 0 does not read it.
    for (int h = 0; h < DATO_SAMPLER_MAX_HISTORY; h++)
        for (int i = 0; i < NUMEL; i++) hbuf[h][i] = NAN;

    double max_err = 0;
    for (int k = 0; k < calls; k++) {
        dato_rng_fill_normal(&rng, out, NUMEL);
        bool needs = dato_sampler_needs_noise(s, k);
        if (needs) {
            dato_rng_fill_normal(&rng, noise, NUMEL);
        } else {
            for (int i = 0; i < NUMEL; i++) noise[i] = NAN; // unread
        }
        CHECK(dato_sampler_step(s, k, out, x_ref, needs ? noise : NULL, &err) == DATO_OK, "%s: step %d: %s", name, k,
              err.msg);
        // Planning mid-run gives the same program (a function of the call index only).
        dato_sampler_instr again[DATO_SAMPLER_MAX_INSTR];
        int n_again = 0;
        CHECK(dato_sampler_program(s, k, again, &n_again, &err) == DATO_OK && same_program(again, progs[k], n_again) &&
                  n_again == counts[k],
              "%s: call %d: program differs when planned mid-run", name, k);
        run_program(progs[k], counts[k], slots);
        double e = test_rel_err(x, x_ref, NUMEL);
        if (e > max_err || e != e) max_err = e;
    }
    double final_err = test_rel_err(x, x_ref, NUMEL);
    int max_n = 0;
    for (int k = 0; k < calls; k++) max_n = counts[k] > max_n ? counts[k] : max_n;
    printf("%-42s %2d calls, %d history slots, <= %d instr: max|x| %.4g, max rel err final %.3g, any call %.3g\n",
           name, calls, hist, max_n, test_max_abs(x_ref, NUMEL), final_err, max_err);
    CHECK(max_err <= 1e-5, "%s: program vs step rel err %.3g > 1e-5", name, max_err);
    dato_sampler_destroy(s);
    dato_sampler_destroy(planner);
    return max_err;
}

static void test_all_samplers(void) {
    const dato_prediction_type preds[] = {DATO_PREDICT_EPSILON, DATO_PREDICT_V};
    const sampler_case shapes[] = {
        {DATO_SAMPLER_DDIM, 0, DATO_SPACING_LEADING, 0.0, false, 10},
        {DATO_SAMPLER_DDIM, 0, DATO_SPACING_TRAILING, 0.0, true, 20},
        {DATO_SAMPLER_DDIM, 0, DATO_SPACING_LINSPACE, 0.5, false, 25},
        {DATO_SAMPLER_DDIM, 0, DATO_SPACING_LEADING, 1.0, true, 15},
        {DATO_SAMPLER_PNDM, 0, DATO_SPACING_LEADING, 0.0, false, 20},
        {DATO_SAMPLER_PNDM, 0, DATO_SPACING_TRAILING, 0.0, true, 10},
        {DATO_SAMPLER_PNDM, 0, DATO_SPACING_LINSPACE, 0.0, false, 25},
        {DATO_SAMPLER_PNDM, 0, DATO_SPACING_LEADING, 0.0, false, 2}, // calls 0, 1, 2 only
        {DATO_SAMPLER_PNDM, 0, DATO_SPACING_LEADING, 0.0, false, 4},
        {DATO_SAMPLER_DPMPP_2M, 0, DATO_SPACING_LINSPACE, 0.0, false, 20},
        {DATO_SAMPLER_DPMPP_2M, 0, DATO_SPACING_LEADING, 0.0, false, 10},
        {DATO_SAMPLER_DPMPP_2M, 0, DATO_SPACING_TRAILING, 0.0, false, 25},
        {DATO_SAMPLER_DPMPP_2M, 0, DATO_SPACING_LINSPACE, 0.0, false, 1}, // first = last step
        {DATO_SAMPLER_DPMPP_2M, 0, DATO_SPACING_LINSPACE, 0.0, false, 2},
        {DATO_SAMPLER_EULER, 0, DATO_SPACING_LINSPACE, 0.0, false, 20},
        {DATO_SAMPLER_EULER, 0, DATO_SPACING_LEADING, 0.0, false, 15},
        {DATO_SAMPLER_EULER, 0, DATO_SPACING_TRAILING, 0.0, false, 10},
        {DATO_SAMPLER_EULER_A, 0, DATO_SPACING_LINSPACE, 0.0, false, 20},
        {DATO_SAMPLER_EULER_A, 0, DATO_SPACING_LEADING, 0.0, false, 15},
        {DATO_SAMPLER_EULER_A, 0, DATO_SPACING_TRAILING, 0.0, false, 25},
    };
    double worst[5][2] = {{0}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int p = 0; p < 2; p++) {
            sampler_case c = shapes[i];
            c.prediction = preds[p];
            double e = test_case(&c, i == 4 && p == 0);
            if (e > worst[c.kind][p] || e != e) worst[c.kind][p] = e;
        }
    for (int k = 0; k < 5; k++)
        printf("worst %-9s eps %.3g  v %.3g\n", dato_sampler_kind_name((dato_sampler_kind)k), worst[k][0],
               worst[k][1]);
}

static void test_errors(void) {
    dato_scheduler_config cfg;
    dato_scheduler_config_default(&cfg);
    dato_error err = {{0}};
    dato_sampler* s = NULL;
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_PNDM, 10, NUMEL, &err) == DATO_OK, "%s", err.msg);
    if (!s) return;
    dato_sampler_instr prog[DATO_SAMPLER_MAX_INSTR];
    int n = -1;
    CHECK(dato_sampler_program(s, 11, prog, &n, &err) == DATO_ERR_INVALID && n == 0, "call 11 of 11 accepted");
    CHECK(strstr(err.msg, "call 11") != NULL, "message: %s", err.msg);
    CHECK(dato_sampler_program(s, -1, prog, &n, &err) == DATO_ERR_INVALID && strstr(err.msg, "call -1"),
          "call -1: %s", err.msg);
    CHECK(dato_sampler_program(s, 0, NULL, &n, &err) == DATO_ERR_INVALID, "NULL prog");
    CHECK(dato_sampler_program(NULL, 0, prog, &n, &err) == DATO_ERR_INVALID, "NULL sampler");
    CHECK(dato_sampler_program_slots(s) == 3 && dato_sampler_program_slots(NULL) == 0, "PLMS slots");
    dato_sampler_destroy(s);

    // DDIM's clip_sample clamps x0: no linear program.
    cfg.clip_sample = true;
    cfg.clip_sample_range = 1.0;
    s = NULL;
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_DDIM, 10, NUMEL, &err) == DATO_OK, "%s", err.msg);
    if (!s) return;
    CHECK(dato_sampler_program(s, 0, prog, &n, &err) == DATO_ERR_UNSUPPORTED && n == 0, "clip_sample accepted");
    CHECK(strstr(err.msg, "clip_sample") != NULL, "message: %s", err.msg);
    printf("errors: %s\n", err.msg);
    dato_sampler_destroy(s);
    // Samplers that ignore clip_sample keep their programs.
    CHECK(dato_sampler_create(&s, &cfg, DATO_SAMPLER_EULER, 10, NUMEL, &err) == DATO_OK, "%s", err.msg);
    if (!s) return;
    CHECK(dato_sampler_program(s, 0, prog, &n, &err) == DATO_OK && n == 1, "euler with clip_sample: %s", err.msg);
    dato_sampler_destroy(s);
    CHECK(strcmp(dato_sampler_slot_name(DATO_SLOT_H2), "h2") == 0 && strcmp(dato_sampler_slot_name(99), "?") == 0,
          "slot names");
}

int main(void) {
    test_all_samplers();
    test_errors();
    return test_summary();
}
