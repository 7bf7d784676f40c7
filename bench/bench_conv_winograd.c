// The CPU backend's 3x3 stride-1 convolutions, Winograd's F(4x4, 3x3) (cpu_winograd.c) against the
// direct conv (cpu_conv.c), at SD1.5's UNet and VAE shapes and the default model's: two backends in
// one process ($DATO_CPU_CONV = winograd and direct), the same tensors, called alternately so each
// round's ratio is paired. Each call: GroupNorm + SiLU fused (group_norm_conv2d, as in the UNets'
// resblocks) or the plain conv.
//   bench_conv_winograd [--threads 2] [--rounds 7] [--set sd|default|all]
// Prints one tab-separated line per shape: set, shape, B, Ci, Co, H=W, fused, direct ms (median),
// Winograd ms (median), direct GFLOP/s, Winograd's effective GFLOP/s (the direct conv's flops over
// its time), the median of the paired ratios and its range, and whether auto picks Winograd there.
#include "backend.h"
#include "bench_util.h"
#include "cpu/cpu_ops.h" // white box: the auto mode's choice

typedef struct {
    const char* set;
    const char* name;
    int batch, ci, co, hw, fused; // fused: GroupNorm (32 groups, or 16 where Ci % 32 != 0) + SiLU first
} conv_shape;

static const conv_shape SHAPES[] = {
    {"sd", "UNet 320 at 64x64 (resblock)", 2, 320, 320, 64, 1},
    {"sd", "UNet 960->320 at 64x64 (up block)", 2, 960, 320, 64, 1},
    {"sd", "UNet 640 at 32x32", 2, 640, 640, 32, 1},
    {"sd", "UNet 1920->640 at 32x32 (up block)", 2, 1920, 640, 32, 1},
    {"sd", "UNet 1280 at 16x16", 2, 1280, 1280, 16, 1},
    {"sd", "UNet 2560->1280 at 16x16 (up block)", 2, 2560, 1280, 16, 1},
    {"sd", "UNet 1280 at 8x8 (auto: direct)", 2, 1280, 1280, 8, 1},
    {"sd", "UNet upsampler 640 at 64x64", 2, 640, 640, 64, 0},
    {"sd", "VAE 512 at 64x64", 1, 512, 512, 64, 1},
    {"sd", "VAE 256 at 256x256", 1, 256, 256, 256, 1},
    {"sd", "VAE 128 at 512x512", 1, 128, 128, 512, 1},
    {"default", "default UNet 32 at 14x14, 40 rows (auto: direct)", 40, 32, 32, 14, 1},
    {"default", "default UNet 48 at 7x7, 40 rows (auto: direct)", 40, 48, 48, 7, 1},
    {"default", "128 at 14x14, 40 rows (auto's least channels)", 40, 128, 128, 14, 0},
};

static void usage(void) {
    printf("usage: bench_conv_winograd [--threads 2] [--rounds 7] [--set sd|default|all]\n"
           "  3x3 stride-1 convs on the CPU backend, Winograd against direct, alternated in paired rounds\n");
}

static dato_status open_mode(dato_backend* be, int threads, const char* mode, dato_error* err) {
    setenv("DATO_CPU_CONV", mode, 1);
    dato_status st = dato_backend_cpu_init(be, threads, err);
    unsetenv("DATO_CPU_CONV");
    return st;
}

int main(int argc, char** argv) {
    int threads = 2, rounds = 7;
    const char* set = "all";
    const bench_opt opts[] = {{"--threads", &threads, NULL, NULL}, {"--rounds", &rounds, NULL, NULL},
                              {"--set", NULL, &set, NULL}};
    int rc = bench_parse(argc, argv, "bench_conv_winograd", opts, 3, usage);
    if (rc) return rc == 1 ? 0 : 2;
    if (threads < 1 || rounds < 1 || rounds > 99 || (strcmp(set, "sd") && strcmp(set, "default") && strcmp(set, "all"))) {
        fprintf(stderr, "bench_conv_winograd: expected --threads >= 1, --rounds 1..99, --set sd|default|all\n");
        return 2;
    }
    dato_backend bes[2]; // direct, winograd
    dato_error err;
    if (open_mode(&bes[0], threads, "direct", &err) || open_mode(&bes[1], threads, "winograd", &err)) {
        fprintf(stderr, "bench_conv_winograd: %s\n", err.msg);
        return 1;
    }
    dato_backend auto_be;
    if (open_mode(&auto_be, threads, "auto", &err)) {
        fprintf(stderr, "bench_conv_winograd: %s\n", err.msg);
        return 1;
    }
    printf("set\tshape\tB\tCi\tCo\tHW\tfused\tdirect_ms\twinograd_ms\tdirect_GFLOPs\twinograd_eff_GFLOPs\tspeedup\t"
           "speedup_min\tspeedup_max\tauto\n");
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        const conv_shape* c = &SHAPES[s];
        if (strcmp(set, "all") && strcmp(set, c->set)) continue;
        size_t nx = (size_t)c->batch * c->ci * c->hw * c->hw, no = (size_t)c->batch * c->co * c->hw * c->hw;
        float* x = malloc(nx * sizeof(float));                       // (B, Ci, H, W)
        float* w = malloc((size_t)c->co * c->ci * 9 * sizeof(float)); // (Co, Ci, 3, 3)
        float* b = malloc((size_t)c->co * sizeof(float));             // (Co)
        float* gamma = malloc((size_t)c->ci * sizeof(float)), *beta = malloc((size_t)c->ci * sizeof(float)); // (Ci)
        float* out = malloc(no * sizeof(float));                      // (B, Co, H, W)
        if (!x || !w || !b || !gamma || !beta || !out) {
            fprintf(stderr, "bench_conv_winograd: out of memory for %s\n", c->name);
            return 1;
        }
        bench_fill_uniform(x, nx, 1), bench_fill_uniform(w, (size_t)c->co * c->ci * 9, 2);
        bench_fill_uniform(b, (size_t)c->co, 3), bench_fill_uniform(gamma, (size_t)c->ci, 4);
        bench_fill_uniform(beta, (size_t)c->ci, 5);
        dato_tensor tx = dato_tensor_f32_4d(x, c->batch, c->ci, c->hw, c->hw), tw = dato_tensor_f32_4d(w, c->co, c->ci, 3, 3);
        dato_tensor tb = dato_tensor_f32_1d(b, c->co), to = dato_tensor_f32_4d(out, c->batch, c->co, c->hw, c->hw);
        dato_tensor tg = dato_tensor_f32_1d(gamma, c->ci), tbe = dato_tensor_f32_1d(beta, c->ci);
        double ms[2][99], ratio[99];
        for (int r = -1; r < rounds; r++) // round -1: warm-up (first touch of the scratch)
            for (int m = 0; m < 2; m++) {
                dato_backend* be = &bes[m];
                double t0 = dato_clock_s();
                dato_status st = c->fused ? be->ops->group_norm_conv2d(be, &to, &tx, &tg, &tbe, c->ci % 32 ? 16 : 32, 1e-6f, 1, &tw, &tb, 1,
                                                                       1, 1, 1, &err)
                                          : be->ops->conv2d(be, &to, &tx, &tw, &tb, 1, 1, 1, 1, &err);
                if (st) {
                    fprintf(stderr, "bench_conv_winograd: %s: %s\n", c->name, err.msg);
                    return 1;
                }
                if (r >= 0) ms[m][r] = (dato_clock_s() - t0) * 1e3;
            }
        for (int r = 0; r < rounds; r++) ratio[r] = ms[0][r] / ms[1][r];
        double lo = ratio[0], hi = ratio[0];
        for (int r = 1; r < rounds; r++) lo = ratio[r] < lo ? ratio[r] : lo, hi = ratio[r] > hi ? ratio[r] : hi;
        qsort(ms[0], (size_t)rounds, sizeof(double), cmp_double), qsort(ms[1], (size_t)rounds, sizeof(double), cmp_double);
        qsort(ratio, (size_t)rounds, sizeof(double), cmp_double);
        double flop = 2.0 * (double)no * (double)c->ci * 9.0;
        cpu_winograd_plan pl;
        int takes = cpu_winograd_plan_conv(auto_be.impl, c->batch, c->ci, c->co, c->hw, c->hw, 3, 3, 1, 1, 1, 1, c->fused, &pl);
        printf("%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.2f\t%.1f\t%.1f\t%.2f\t%.2f\t%.2f\t%s\n", c->set, c->name, c->batch,
               c->ci, c->co, c->hw, c->fused, ms[0][rounds / 2], ms[1][rounds / 2], flop / ms[0][rounds / 2] / 1e6,
               flop / ms[1][rounds / 2] / 1e6, ratio[rounds / 2], lo, hi, takes ? "winograd" : "direct");
        fflush(stdout);
        free(x), free(w), free(b), free(gamma), free(beta), free(out);
    }
    dato_backend_destroy(&bes[0]), dato_backend_destroy(&bes[1]), dato_backend_destroy(&auto_be);
    return 0;
}
