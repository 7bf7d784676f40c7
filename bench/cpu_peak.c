// The machine's FP32 peak: a loop of independent FMAs on 1 and on 2 threads (issue 22), 512-bit
// where the CPU has AVX-512F (zmm), else 256-bit (ymm). 12 accumulator chains cover the FMA latency
// (4 cycles) x throughput (2 per cycle) = 8 FMAs in flight with room to spare; each FMA is its
// lanes (16 or 8) x 2 flops.
//   cpu_peak [--threads-max 2] [--repeats 5] [--iters-m 200] [--isa avx2|avx512]   (rounds in millions)
// Prints the width used on stderr and one tab-separated line per thread count: threads, median s,
// GFLOP/s of the median and of the fastest repeat (a shared machine's other load only slows a
// repeat down), implied GHz of the median (GFLOP/s / (threads x 2 FMA pipes x lanes x 2 flops)).
#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "bench_util.h"

#define CHAINS 12

// iters rounds of CHAINS independent FMAs acc = acc * a + b; a < 1 keeps every acc bounded (-> b / (1 - a)).
__attribute__((target("avx2,fma"))) static float fma_chains_256(long iters, float seed) {
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

__attribute__((target("avx512f"))) static float fma_chains_512(long iters, float seed) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
    __m512 acc[CHAINS];
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps(seed + (float)c);
    for (long i = 0; i < iters; i++) {
        #pragma GCC unroll 12
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    }
    __m512 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    float lanes[16];
    _mm512_storeu_ps(lanes, s);
    return lanes[0] + lanes[15];
}

static void usage(void) {
    printf("usage: cpu_peak [--threads-max N] [--repeats R] [--iters-m MILLIONS] [--isa avx2|avx512]\n"
           "  FMA peak on 1..N threads: threads, median s, GFLOP/s, implied GHz (tab-separated);\n"
           "  --isa: the FMA width (default: avx512 where the CPU has AVX-512F, else avx2)\n");
}

int main(int argc, char** argv) {
    int threads_max = 2, repeats = 5, iters_m = 200; // iters in millions of rounds
    const char* isa = __builtin_cpu_supports("avx512f") ? "avx512" : "avx2";
    const bench_opt opts[] = {{"--threads-max", &threads_max, NULL, NULL},
                              {"--repeats", &repeats, NULL, NULL},
                              {"--iters-m", &iters_m, NULL, NULL},
                              {"--isa", NULL, &isa, NULL}};
    int rc = bench_parse(argc, argv, "cpu_peak", opts, 4, usage);
    if (rc) return rc - 1;
    int wide = strcmp(isa, "avx512") == 0;
    if (threads_max < 1 || repeats < 1 || repeats > 100 || iters_m < 1 || (!wide && strcmp(isa, "avx2") != 0)) {
        fprintf(stderr, "cpu_peak: --threads-max, --repeats (1..100) and --iters-m must be positive, --isa avx2 or avx512\n");
        return 1;
    }
    if (wide && !__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "cpu_peak: --isa avx512: this CPU has no AVX-512F\n");
        return 1;
    }
    int lanes = wide ? 16 : 8;
    fprintf(stderr, "cpu_peak: %s FMAs, %d lanes\n", isa, lanes);
    long iters = (long)iters_m * 1000000L;
    float sink = 0;
    printf("threads\tmedian_s\tgflops\tgflops_best\tghz\n");
    for (int t = 1; t <= threads_max; t++) {
        double times[100];
        for (int r = -1; r < repeats; r++) { // r = -1: warm-up (clock ramp, thread start)
            double t0 = dato_clock_s();
            #pragma omp parallel num_threads(t) reduction(+ : sink)
            sink += (wide ? fma_chains_512 : fma_chains_256)(iters, (float)omp_get_thread_num());
            double dt = dato_clock_s() - t0;
            if (r >= 0) times[r] = dt;
        }
        qsort(times, (size_t)repeats, sizeof times[0], cmp_double);
        double flops = (double)t * (double)iters * CHAINS * lanes * 2, med = times[repeats / 2];
        double gflops = flops / med * 1e-9;
        printf("%d\t%.4f\t%.1f\t%.1f\t%.2f\n", t, med, gflops, flops / times[0] * 1e-9,
               gflops / (t * 2.0 * lanes * 2)); // 2 FMA pipes x lanes x 2 flops per cycle
    }
    fprintf(stderr, "cpu_peak: checksum %g\n", (double)sink);
    return 0;
}
