// SGEMM of the UNets' shapes in dato's own GEMM (engine/backends/cpu/cpu_gemm.c), OpenBLAS, BLIS and
// oneDNN, interleaved in one run (issue 22).
// Row-major C (M, N) = A (M, K) B (K, N), alpha 1, beta 0: the UNets' GEMMs as issue 22 states
// them. BLIS and oneDNN are in the build only where CMake found them (DATO_HAVE_BLIS,
// DATO_HAVE_DNNL); they are bench-only, never engine dependencies.
//   gemm_libs [--threads-max 2] [--repeats 5] [--set sd|default|all]
// For each shape and thread count: one warm-up call per library, then `repeats` rounds that time
// each library in turn (so ratios are paired), each sample at least 20 ms of back-to-back calls.
// Prints tab-separated lines: set, shape, M, N, K, threads, library, median ms per call, GFLOP/s
// of the median and of the fastest round (other load on a shared machine only slows a round), max
// error. The error is max |C - ref| / sum_k |A_ik B_kj| over up to 4096 entries of the warm-up
// call's C against a double-precision reference: a correct SGEMM stays below K x 2^-24, a wrong
// kernel is O(1).
#include <cblas.h>
#include <math.h>
#include <omp.h>

#include "bench_util.h"
#include "cpu/cpu_ops.h" // dato's GEMM entry point and its CPU backend state

#ifdef DATO_HAVE_BLIS
#define BLIS_DISABLE_BLAS // BLIS's own cblas_sgemm/sgemm_ would clash with OpenBLAS's declarations
#define BLIS_DISABLE_CBLAS
#pragma GCC diagnostic push // blis.h is not -Wextra clean
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wtype-limits"
#include DATO_BLIS_HEADER // blis.h by full path: its folder has a cblas.h of its own
#pragma GCC diagnostic pop
#endif
#ifdef DATO_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

#define MAX_REPEATS 64
#define MIN_SAMPLE_S 0.02
#define CHECKED_ENTRIES 4096

typedef struct {
    const char* set;   // "sd" (SD1.5, 64x64 latent, batch 2) or "default" (models/fashion-sd)
    const char* name;  // what the GEMM is in the UNet
    int m, n, k;
} gemm_shape;

// SD1.5: 3x3 convs as im2col GEMMs per image (M = Co, N = H*W, K = Ci*9) and the transformer
// linears over 2 x 4096 tokens. The default model (channels 32, 48; 14x14 latents; 196 tokens):
// convs per image, linears over rows x 196 tokens for rows = 40 and 128 (images x CFG).
static const gemm_shape SHAPES[] = {
    {"sd", "conv 320->320 64x64", 320, 4096, 2880},
    {"sd", "conv 640->640 32x32", 640, 1024, 5760},
    {"sd", "conv 1280->1280 16x16", 1280, 256, 11520},
    {"sd", "conv 1280->1280 8x8", 1280, 64, 11520},
    {"sd", "linear 320->320", 8192, 320, 320},
    {"sd", "linear 320->2560 (GEGLU proj)", 8192, 2560, 320},
    {"sd", "linear 1280->320", 8192, 320, 1280},
    {"default", "conv 32->32 14x14", 32, 196, 288},
    {"default", "conv 48->48 7x7", 48, 49, 432},
    {"default", "linear 32->32, 40 rows", 40 * 196, 32, 32},
    {"default", "linear 32->256, 40 rows", 40 * 196, 256, 32},
    {"default", "linear 128->32, 40 rows", 40 * 196, 32, 128},
    {"default", "linear 32->32, 128 rows", 128 * 196, 32, 32},
    {"default", "linear 32->256, 128 rows", 128 * 196, 256, 32},
    {"default", "linear 128->32, 128 rows", 128 * 196, 32, 128},
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

// ---- the libraries: one row-major SGEMM and one thread-count setter each ---------------------------
static void openblas_gemm(int m, int n, int k, const float* a, const float* b, float* c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}
static void openblas_threads(int t) { openblas_set_num_threads(t); }

#ifdef DATO_HAVE_BLIS
static void blis_gemm(int m, int n, int k, const float* a, const float* b, float* c) {
    float one = 1.0f, zero = 0.0f;
    bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, (float*)a, k, 1, (float*)b, n, 1, &zero, c, n, 1);
}
static void blis_threads(int t) { bli_thread_set_num_threads(t); }
#endif

#ifdef DATO_HAVE_DNNL
static void onednn_gemm(int m, int n, int k, const float* a, const float* b, float* c) {
    dnnl_sgemm('N', 'N', m, n, k, 1.0f, a, k, b, n, 0.0f, c, n); // row-major; status checked by the error column
}
static void onednn_threads(int t) { omp_set_num_threads(t); } // the Debian build's runtime is OpenMP
#endif

// dato: the team GEMM that linear and conv2d call, on a CPU backend of the thread count last set
// (one backend per count, made on first use and kept: its panels are planned once, as in the engine),
// at the CPU's best kernel level or capped at AVX2 ($DATO_CPU_ISA=avx2: the AVX-512 kernel's pair).
#define DATO_MAX_THREADS 64
static dato_backend dato_backends[2][DATO_MAX_THREADS + 1]; // [best, avx2][threads]
static int dato_level, dato_current;
static void dato_gemm(int m, int n, int k, const float* a, const float* b, float* c) {
    const cpu_backend* cpu = dato_backends[dato_level][dato_current].impl;
    cpu_gemm_args g = {.m = m, .n = n, .k = k, .a = a, .lda = k, .b = b, .ldb = n, .c = c, .ldc = n};
    #pragma omp parallel num_threads(cpu->threads)
    cpu_gemm_team(cpu, &g);
}
static void dato_open(int level, int t) {
    dato_error err;
    dato_level = level;
    dato_current = t < DATO_MAX_THREADS ? t : DATO_MAX_THREADS;
    dato_backend* be = &dato_backends[level][dato_current];
    if (be->impl) return;
    if (level) setenv("DATO_CPU_ISA", "avx2", 1);
    dato_status st = dato_backend_cpu_init(be, dato_current, &err);
    unsetenv("DATO_CPU_ISA");
    if (st != DATO_OK) {
        fprintf(stderr, "gemm_libs: %s\n", err.msg); // the bench cannot go on without it
        exit(1);
    }
}
static void dato_threads(int t) { dato_open(0, t); }
static void dato_avx2_threads(int t) { dato_open(1, t); }

typedef struct {
    const char* name;
    void (*gemm)(int m, int n, int k, const float* a, const float* b, float* c);
    void (*set_threads)(int t);
} gemm_lib;

static const gemm_lib LIBS[] = {
    {"dato", dato_gemm, dato_threads},
    {"dato-avx2", dato_gemm, dato_avx2_threads},
    {"openblas", openblas_gemm, openblas_threads},
#ifdef DATO_HAVE_BLIS
    {"blis", blis_gemm, blis_threads},
#endif
#ifdef DATO_HAVE_DNNL
    {"onednn", onednn_gemm, onednn_threads},
#endif
};
#define N_LIBS ((int)(sizeof LIBS / sizeof LIBS[0]))

// ---- data, reference, timing --------------------------------------------------------------------------
// max over up to CHECKED_ENTRIES entries (a fixed stride through C) of |C - ref| / sum_k |A_ik B_kj|;
// INFINITY if any checked entry is not finite.
static double gemm_error(const gemm_shape* s, const float* a, const float* b, const float* c) {
    size_t total = (size_t)s->m * (size_t)s->n;
    size_t stride = total > CHECKED_ENTRIES ? total / CHECKED_ENTRIES : 1;
    double worst = 0;
    for (size_t e = 0; e < total; e += stride) {
        size_t i = e / (size_t)s->n, j = e % (size_t)s->n;
        double ref = 0, mag = 0;
        for (int p = 0; p < s->k; p++) {
            double t = (double)a[i * (size_t)s->k + (size_t)p] * (double)b[(size_t)p * (size_t)s->n + j];
            ref += t;
            mag += fabs(t);
        }
        if (!isfinite(c[e])) return INFINITY;
        double err = fabs((double)c[e] - ref) / (mag > 0 ? mag : 1);
        if (err > worst) worst = err;
    }
    return worst;
}

// Seconds per call of lib on shape s, over `calls` back-to-back calls.
static double time_calls(const gemm_lib* lib, const gemm_shape* s, int calls, const float* a, const float* b,
                         float* c) {
    double t0 = dato_clock_s();
    for (int i = 0; i < calls; i++) lib->gemm(s->m, s->n, s->k, a, b, c);
    return (dato_clock_s() - t0) / calls;
}

static void usage(void) {
    printf("usage: gemm_libs [--threads-max N] [--repeats R] [--set sd|default|all]\n"
           "  SGEMM at the UNets' shapes in each library found at build time, 1..N threads;\n"
           "  tab-separated lines: set shape M N K threads library ms GFLOP/s best_GFLOP/s max_error\n");
}

int main(int argc, char** argv) {
    int threads_max = 2, repeats = 5;
    const char* set = "all";
    int rc = bench_parse_lib_options(argc, argv, "gemm_libs", usage, MAX_REPEATS, &threads_max, &repeats, &set);
    if (rc) return rc - 1;
    // What each library picked for this CPU, for the record (stderr: the table stays clean).
    fprintf(stderr, "gemm_libs: OpenBLAS core %s (%s)\n", openblas_get_corename(), openblas_get_config());
#ifdef DATO_HAVE_BLIS
    fprintf(stderr, "gemm_libs: BLIS %s, arch %s\n", bli_info_get_version_str(), bli_arch_string(bli_arch_query_id()));
#endif
#ifdef DATO_HAVE_DNNL
    const dnnl_version_t* v = dnnl_version();
    fprintf(stderr, "gemm_libs: oneDNN %d.%d.%d, ISA %s\n", v->major, v->minor, v->patch,
            dnnl_get_effective_cpu_isa() == dnnl_cpu_isa_avx2 ? "avx2" : "not avx2");
#endif

    printf("set\tshape\tM\tN\tK\tthreads\tlibrary\tms\tgflops\tgflops_best\tmax_error\n");
    for (int si = 0; si < N_SHAPES; si++) {
        const gemm_shape* s = &SHAPES[si];
        if (strcmp(set, "all") && strcmp(set, s->set)) continue;
        size_t na = (size_t)s->m * (size_t)s->k, nb = (size_t)s->k * (size_t)s->n, nc = (size_t)s->m * (size_t)s->n;
        float* a = malloc(na * sizeof *a); // (M, K)
        float* b = malloc(nb * sizeof *b); // (K, N)
        float* c = malloc(nc * sizeof *c); // (M, N)
        if (!a || !b || !c) {
            fprintf(stderr, "gemm_libs: out of memory for %s (%d x %d x %d)\n", s->name, s->m, s->n, s->k);
            return 1;
        }
        bench_fill_uniform(a, na, 1 + (uint64_t)si);
        bench_fill_uniform(b, nb, 1000 + (uint64_t)si);
        double flops = 2.0 * s->m * s->n * s->k;
        for (int t = 1; t <= threads_max; t++) {
            // Warm-up (thread pools, packing buffers, page faults); the first library's time sets how
            // many calls make one sample, the same count for every library.
            double err[N_LIBS];
            int calls = 1;
            for (int l = 0; l < N_LIBS; l++) {
                LIBS[l].set_threads(t);
                memset(c, 0, nc * sizeof *c);
                double dt = time_calls(&LIBS[l], s, 1, a, b, c);
                err[l] = gemm_error(s, a, b, c);
                if (l == 0) calls = bench_calls_for(dt, MIN_SAMPLE_S);
            }
            double times[N_LIBS][MAX_REPEATS];
            for (int r = 0; r < repeats; r++)
                for (int l = 0; l < N_LIBS; l++) {
                    LIBS[l].set_threads(t);
                    times[l][r] = time_calls(&LIBS[l], s, calls, a, b, c);
                }
            for (int l = 0; l < N_LIBS; l++) {
                qsort(times[l], (size_t)repeats, sizeof times[l][0], cmp_double);
                double med = times[l][repeats / 2];
                printf("%s\t%s\t%d\t%d\t%d\t%d\t%s\t%.4f\t%.1f\t%.1f\t%.2e\n", s->set, s->name, s->m, s->n, s->k, t,
                       LIBS[l].name, med * 1e3, flops / med * 1e-9, flops / times[l][0] * 1e-9, err[l]);
            }
            fflush(stdout);
        }
        free(a);
        free(b);
        free(c);
    }
    return 0;
}
