// Inception-v3 (pytorch-fid's FID network) feature extraction on the CPU backend: images per
// second at 299x299, seeded random weights (no file needed). Prints one JSON line with the same
// fields as bench/inception_torch.py; bench/inception_cpu.sh runs both side by side.
//
//   bench_inception --batch 16 --iters 3 --threads 2
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "inception.h"
#include "rng.h"

// A tensor source over in-memory tensors (sorted by nothing: linear lookup is fine for 470).
typedef struct {
    dato_st_tensor* t;
    int n;
} mem_source;

static const dato_st_tensor* mem_find(const void* ctx, const char* name) {
    const mem_source* m = ctx;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}
static int mem_count(const void* ctx) { return ((const mem_source*)ctx)->n; }
static const dato_st_tensor* mem_at(const void* ctx, int i) { return &((const mem_source*)ctx)->t[i]; }

static void add(mem_source* m, const char* unit, const char* suffix, int ndim, const int64_t* shape, float* data) {
    dato_st_tensor* t = &m->t[m->n++];
    memset(t, 0, sizeof *t);
    t->name = malloc(strlen(unit) + strlen(suffix) + 2);
    sprintf(t->name, "%s.%s", unit, suffix);
    t->dtype = DATO_ST_F32;
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) t->numel *= (t->shape[d] = shape[d]);
    t->data = data;
    t->nbytes = (size_t)t->numel * sizeof(float);
}

int main(int argc, char** argv) {
    int batch = 16, iters = 3, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: bench_inception [--batch B] [--iters K] [--threads T]\n"
                   "  Times pytorch-fid's Inception-v3 pool3 features at 299x299 with seeded random weights.\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_inception: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_inception: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (batch < 1 || iters < 1) return 2;
    dato_error err;
    dato_backend be;
    if (dato_backend_cpu_init(&be, threads, &err)) return 1;
    dato_inception net;
    dato_inception_init(&net, &be);

    // Seeded weights in every unit's shape: He-scaled convs, BN near identity.
    mem_source m = {.t = calloc(5 * DATO_INCEPTION_UNITS, sizeof(dato_st_tensor))};
    dato_rng rng;
    dato_rng_seed(&rng, 11);
    for (int i = 0; i < DATO_INCEPTION_UNITS; i++) {
        const dato_inception_unit* u = &net.units[i];
        int64_t ws[4] = {u->cout, u->cin, u->kh, u->kw}, cs[1] = {u->cout};
        size_t nw = (size_t)u->cout * u->cin * u->kh * u->kw;
        float* w = malloc(nw * sizeof *w);
        float scale = sqrtf(2.0f / (float)(u->cin * u->kh * u->kw));
        for (size_t k = 0; k < nw; k++) w[k] = scale * (float)dato_rng_normal(&rng);
        add(&m, u->name, "conv.weight", 4, ws, w);
        static const char* const bn[4] = {"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
        for (int j = 0; j < 4; j++) {
            float* v = malloc((size_t)u->cout * sizeof *v);
            for (int c = 0; c < u->cout; c++) v[c] = j == 0 || j == 3 ? 1.0f : 0.0f;
            add(&m, u->name, bn[j], 1, cs, v);
        }
    }
    dato_tensor_source src = {.ctx = &m, .label = "seeded", .find = mem_find, .count = mem_count, .at = mem_at};
    if (dato_inception_load(&net, &src, &err)) {
        fprintf(stderr, "bench_inception: %s\n", err.msg);
        return 1;
    }
    size_t nx = (size_t)batch * 3 * 299 * 299;
    float* x = malloc(nx * sizeof *x);
    float* f = malloc((size_t)batch * DATO_INCEPTION_FEATURES * sizeof *f);
    for (size_t k = 0; k < nx; k++) x[k] = (float)(2.0 * dato_rng_uniform(&rng) - 1.0);
    dato_tensor tx = dato_tensor_f32_4d(x, batch, 3, 299, 299), tf = dato_tensor_f32_2d(f, batch, 2048);
    double best = 1e30;
    for (int it = 0; it < iters + 1; it++) { // the first forward plans the workspace: not timed
        double t0 = now_s();
        if (dato_inception_forward(&net, &tx, &tf, &err)) {
            fprintf(stderr, "bench_inception: %s\n", err.msg);
            return 1;
        }
        double s = now_s() - t0;
        if (it > 0 && s < best) best = s;
    }
    printf("{\"impl\":\"dato\",\"batch\":%d,\"threads\":%d,\"images_per_s\":%.2f,\"ms_per_batch\":%.1f,"
           "\"peak_rss_mb\":%.0f}\n",
           batch, threads, batch / best, best * 1e3, peak_rss_mb());
    for (int i = 0; i < m.n; i++) {
        free(m.t[i].name);
        free((void*)m.t[i].data);
    }
    free(m.t);
    free(x);
    free(f);
    dato_inception_free(&net);
    dato_backend_destroy(&be);
    return 0;
}
