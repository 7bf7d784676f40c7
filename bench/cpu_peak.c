// The machine's FP32 peak: a loop of independent 256-bit FMAs on 1 and on 2 threads (issue 22).
// 12 ymm accumulator chains cover Zen 3's FMA latency (4 cycles) x throughput (2 per cycle) = 8
// FMAs in flight with room to spare; each FMA is 8 lanes x 2 flops. AVX-512 is not used: the
// dev-cpu-b machine has none (the kernel is AVX2+FMA, compiled for that target whatever the build).
//   cpu_peak [--threads-max 2] [--repeats 5] [--iters-m 200]   (rounds of the loop, in millions)
// Prints one tab-separated line per thread count: threads, median s, GFLOP/s of the median and of
// the fastest repeat (a shared machine's other load only slows a repeat down), implied GHz of the
// median (GFLOP/s / (threads x 32 flops per cycle per core)).
#include <immintrin.h>
#include <omp.h>

#include "bench_util.h"

#define CHAINS 12
#define FLOPS_PER_CYCLE_PER_CORE 32.0 // 2 FMA pipes x 8 lanes x 2 flops (Zen 3, AVX2)

// iters rounds of CHAINS independent FMAs acc = acc * a + b; a < 1 keeps every acc bounded (-> b / (1 - a)).
__attribute__((target("avx2,fma"))) static float fma_chains(long iters, float seed) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    __m256 acc[CHAINS];
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps(seed + (float)c);
    for (long i = 0; i < iters; i++) {
        #pragma GCC unroll 12
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    }
    __m256 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    return lanes[0] + lanes[7]; // returned so the loop is not dead code
}

static void usage(void) {
    printf("usage: cpu_peak [--threads-max N] [--repeats R] [--iters-m MILLIONS]\n"
           "  FMA peak on 1..N threads: threads, median s, GFLOP/s, implied GHz (tab-separated)\n");
}

int main(int argc, char** argv) {
    int threads_max = 2, repeats = 5, iters_m = 200; // iters in millions of rounds
    const bench_opt opts[] = {{"--threads-max", &threads_max, NULL, NULL},
                              {"--repeats", &repeats, NULL, NULL},
                              {"--iters-m", &iters_m, NULL, NULL}};
    int rc = bench_parse(argc, argv, "cpu_peak", opts, 3, usage);
    if (rc) return rc - 1;
    if (threads_max < 1 || repeats < 1 || repeats > 100 || iters_m < 1) {
        fprintf(stderr, "cpu_peak: --threads-max, --repeats (1..100) and --iters-m must be positive\n");
        return 1;
    }
    long iters = (long)iters_m * 1000000L;
    float sink = 0;
    printf("threads\tmedian_s\tgflops\tgflops_best\tghz\n");
    for (int t = 1; t <= threads_max; t++) {
        double times[100];
        for (int r = -1; r < repeats; r++) { // r = -1: warm-up (clock ramp, thread start)
            double t0 = dato_clock_s();
            #pragma omp parallel num_threads(t) reduction(+ : sink)
            sink += fma_chains(iters, (float)omp_get_thread_num());
            double dt = dato_clock_s() - t0;
            if (r >= 0) times[r] = dt;
        }
        qsort(times, (size_t)repeats, sizeof times[0], cmp_double);
        double flops = (double)t * (double)iters * CHAINS * 8 * 2, med = times[repeats / 2];
        double gflops = flops / med * 1e-9;
        printf("%d\t%.4f\t%.1f\t%.1f\t%.2f\n", t, med, gflops, flops / times[0] * 1e-9,
               gflops / (t * FLOPS_PER_CYCLE_PER_CORE));
    }
    fprintf(stderr, "cpu_peak: checksum %g\n", (double)sink);
    return 0;
}
