// ZDT/DTLZ2 test problems and SBX / polynomial mutation, following pymoo 0.6
// (pymoo/problems/multi/zdt.py, many/dtlz.py, operators/crossover/sbx.py, mutation/pm.py).
#include "moo_problems.h"

#include <math.h>
#include <string.h>

static const dato_moo_problem_info problem_infos[DATO_MOO_COUNT] = {
    {"zdt1", 30, 2}, {"zdt2", 30, 2}, {"zdt3", 30, 2}, {"zdt6", 10, 2}, {"dtlz2", 12, 3},
};

const dato_moo_problem_info* dato_moo_info(dato_moo_problem problem) {
    if ((int)problem < 0 || problem >= DATO_MOO_COUNT) return NULL;
    return &problem_infos[problem];
}

dato_status dato_moo_evaluate(dato_moo_problem problem, const double* x, double* f, dato_error* err) {
    const dato_moo_problem_info* info = dato_moo_info(problem);
    if (!info || !x || !f) return dato_fail(err, DATO_ERR_INVALID, "moo_problems: evaluate: bad problem %d or NULL",
                                            (int)problem);
    int n = info->n_var;
    if (problem == DATO_MOO_DTLZ2) {
        double g = 0; // distance of the last n - 2 variables from 0.5
        for (int i = 2; i < n; i++) g += (x[i] - 0.5) * (x[i] - 0.5);
        double a = x[0] * M_PI / 2, b = x[1] * M_PI / 2;
        f[0] = (1 + g) * cos(a) * cos(b);
        f[1] = (1 + g) * cos(a) * sin(b);
        f[2] = (1 + g) * sin(a);
        return DATO_OK;
    }
    double tail = 0; // mean of x[1..n)
    for (int i = 1; i < n; i++) tail += x[i];
    tail /= n - 1;
    double f1, g;
    if (problem == DATO_MOO_ZDT6) {
        f1 = 1 - exp(-4 * x[0]) * pow(sin(6 * M_PI * x[0]), 6);
        g = 1 + 9 * pow(tail, 0.25);
    } else {
        f1 = x[0];
        g = 1 + 9 * tail;
    }
    double h;
    switch (problem) {
    case DATO_MOO_ZDT1: h = 1 - sqrt(f1 / g); break;
    case DATO_MOO_ZDT3: h = 1 - sqrt(f1 / g) - (f1 / g) * sin(10 * M_PI * f1); break;
    default: h = 1 - (f1 / g) * (f1 / g); break; // ZDT2, ZDT6
    }
    f[0] = f1;
    f[1] = g * h;
    return DATO_OK;
}

dato_real_ops dato_real_ops_default(int n_var) {
    return (dato_real_ops){
        .n_var = n_var,
        .lower = 0,
        .upper = 1,
        .sbx_eta = 15,
        .sbx_prob = 0.9,
        .sbx_prob_var = 0.5,
        .pm_eta = 20,
        .pm_prob_var = n_var >= 2 ? 1.0 / n_var : 0.5, // min(0.5, 1 / n_var)
    };
}

dato_nsga2_ops dato_real_nsga2_ops(dato_real_ops* real_ops) {
    return (dato_nsga2_ops){dato_sbx_crossover, dato_polynomial_mutation, NULL, real_ops};
}

static double clip(double x, double lower, double upper) { return x < lower ? lower : x > upper ? upper : x; }

// The spread factor for a child whose side of the parents leaves room beta (>= 1) to the bound.
static double sbx_betaq(double beta, double eta, double u) {
    double alpha = 2 - pow(beta, -(eta + 1));
    if (u <= 1 / alpha) return pow(u * alpha, 1 / (eta + 1));
    return pow(1 / (2 - u * alpha), 1 / (eta + 1));
}

void dato_sbx_crossover(void* ctx, const uint8_t* a, const uint8_t* b, uint8_t* child_a, uint8_t* child_b,
                        dato_rng* rng) {
    const dato_real_ops* ops = ctx;
    int n = ops->n_var;
    double lo = ops->lower, hi = ops->upper;
    size_t bytes = (size_t)n * sizeof(double);
    memmove(child_a, a, bytes);
    memmove(child_b, b, bytes);
    if (!(dato_rng_uniform(rng) < ops->sbx_prob) || !(hi > lo)) return;
    for (int i = 0; i < n; i++) {
        double xa, xb;
        memcpy(&xa, a + (size_t)i * sizeof(double), sizeof(double));
        memcpy(&xb, b + (size_t)i * sizeof(double), sizeof(double));
        if (!(dato_rng_uniform(rng) < ops->sbx_prob_var) || !(fabs(xa - xb) > 1e-14)) continue;
        double y1 = fmin(xa, xb), y2 = fmax(xa, xb), delta = y2 - y1;
        double u = dato_rng_uniform(rng); // the same u for both children, as in Deb's code and pymoo
        double c1 = 0.5 * ((y1 + y2) - sbx_betaq(1 + 2 * (y1 - lo) / delta, ops->sbx_eta, u) * delta);
        double c2 = 0.5 * ((y1 + y2) + sbx_betaq(1 + 2 * (hi - y2) / delta, ops->sbx_eta, u) * delta);
        if (dato_rng_uniform(rng) < 0.5) {
            double t = c1;
            c1 = c2, c2 = t;
        }
        c1 = clip(c1, lo, hi), c2 = clip(c2, lo, hi);
        memcpy(child_a + (size_t)i * sizeof(double), &c1, sizeof(double));
        memcpy(child_b + (size_t)i * sizeof(double), &c2, sizeof(double));
    }
}

void dato_polynomial_mutation(void* ctx, uint8_t* genome, dato_rng* rng) {
    const dato_real_ops* ops = ctx;
    double lo = ops->lower, hi = ops->upper, eta = ops->pm_eta;
    if (!(hi > lo)) return;
    for (int i = 0; i < ops->n_var; i++) {
        if (!(dato_rng_uniform(rng) < ops->pm_prob_var)) continue;
        double y;
        memcpy(&y, genome + (size_t)i * sizeof(double), sizeof(double));
        double delta1 = (y - lo) / (hi - lo), delta2 = (hi - y) / (hi - lo);
        double u = dato_rng_uniform(rng), deltaq;
        if (u <= 0.5)
            deltaq = pow(2 * u + (1 - 2 * u) * pow(1 - delta1, eta + 1), 1 / (eta + 1)) - 1;
        else
            deltaq = 1 - pow(2 * (1 - u) + 2 * (u - 0.5) * pow(1 - delta2, eta + 1), 1 / (eta + 1));
        y = clip(y + deltaq * (hi - lo), lo, hi);
        memcpy(genome + (size_t)i * sizeof(double), &y, sizeof(double));
    }
}

void dato_real_random_genome(const dato_real_ops* ops, uint8_t* genome, dato_rng* rng) {
    for (int i = 0; i < ops->n_var; i++) {
        double x = ops->lower + (ops->upper - ops->lower) * dato_rng_uniform(rng);
        memcpy(genome + (size_t)i * sizeof(double), &x, sizeof(double));
    }
}
