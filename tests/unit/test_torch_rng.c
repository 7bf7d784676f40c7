// torch's CPU generator and torch.randn (engine/core/torch_rng.c) against torch's own draws
// (tests/fixtures/noise/torch_randn.safetensors, tools/make_noise_fixtures.py): every tensor
// "<kernel>.seed<S>.n<N>" is torch.randn(N, generator=torch.Generator().manual_seed(S)) on that
// kernel's CPU capability, "<kernel>.seed<S>.sequence" successive draws of sizes sequence_sizes
// from one generator. Bit for bit: the max error must be 0. Also the initial latents of the
// pipeline fixtures (tests/fixtures/pipeline), drawn there with torch.randn((3, 4, 8, 8), generator).
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "safetensors.h"
#include "test_util.h"
#include "torch_rng.h"

#define FIX "tests/fixtures/noise/torch_randn.safetensors"

typedef struct {
    int draws;
    size_t values, differing_bits;
    double max_err;
} tally;

// x (n) against the reference, bit for bit.
static void compare(tally* t, const float* x, const float* ref, size_t n) {
    t->draws++;
    t->values += n;
    for (size_t i = 0; i < n; i++) t->differing_bits += memcmp(&x[i], &ref[i], sizeof *x) != 0;
    double e = test_max_abs_diff(x, ref, n);
    t->max_err = e > t->max_err ? e : t->max_err;
}

static void test_torch_draws(void) {
    dato_safetensors st;
    dato_error err;
    if (dato_safetensors_open(&st, FIX, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    static const char* const names[] = {"avx2", "scalar"};
    tally single[2] = {{0}}, sequence[2] = {{0}};
    const dato_st_tensor* sizes = dato_safetensors_find(&st, "sequence_sizes");
    CHECK(sizes && sizes->dtype == DATO_ST_I64, "%s: sequence_sizes (I64) missing", FIX);
    for (int i = 0; i < st.n_tensors && sizes; i++) {
        const dato_st_tensor* t = &st.tensors[i];
        char kernel_name[16], what[16];
        uint64_t seed;
        if (sscanf(t->name, "%15[a-z2].seed%" SCNu64 ".%15s", kernel_name, &seed, what) != 3) continue;
        dato_torch_kernel kernel = strcmp(kernel_name, "avx2") == 0 ? DATO_TORCH_AVX2 : DATO_TORCH_SCALAR;
        size_t n = 0;
        float* ref = fixture_f32(&st, t->name, &n);
        float* x = malloc((n ? n : 1) * sizeof *x);
        dato_torch_generator g;
        dato_torch_manual_seed(&g, seed);
        if (strcmp(what, "sequence") == 0) { // one generator, draw after draw
            size_t off = 0;
            for (int64_t k = 0; k < sizes->numel; k++) {
                int64_t m;
                memcpy(&m, (const char*)sizes->data + 8 * k, 8);
                if (off + (size_t)m <= n) dato_torch_randn(&g, kernel, x + off, (size_t)m);
                off += (size_t)m;
            }
            CHECK(off == n, "%s: sizes add up to %zu, not %zu", t->name, off, n);
            compare(&sequence[kernel], x, ref, n);
        } else {
            CHECK((size_t)strtoull(what + 1, NULL, 10) == n, "%s: %zu values", t->name, n);
            dato_torch_randn(&g, kernel, x, n);
            compare(&single[kernel], x, ref, n);
        }
        free(x);
        free(ref);
    }
    for (int k = 0; k < 2; k++) {
        printf("%-6s single draws: %d (%zu values), max error %g, %zu values with other bits\n", names[k],
               single[k].draws, single[k].values, single[k].max_err, single[k].differing_bits);
        printf("%-6s sequences:    %d (%zu values), max error %g, %zu values with other bits\n", names[k],
               sequence[k].draws, sequence[k].values, sequence[k].max_err, sequence[k].differing_bits);
        // 4 seeds x sizes 1..40, 100, 1000, 16384 (the scalar kernel: 16384 for one seed).
        CHECK(single[k].draws == (k == 0 ? 4 * 43 : 4 * 42 + 1) && sequence[k].draws == 1, "%s: fixture incomplete",
              names[k]);
        CHECK(single[k].differing_bits == 0 && sequence[k].differing_bits == 0, "%s: not bit-exact", names[k]);
    }
    dato_safetensors_close(&st);
}

// The pipeline fixtures' latents_in: torch.randn((3, 4, 8, 8), generator=torch.Generator().manual_seed(seed)).
static void test_pipeline_latents(void) {
    static const struct {
        const char* file;
        uint64_t seed;
    } cases[] = {{"tests/fixtures/pipeline/reference/sd15_negative.safetensors", 100},
                 {"tests/fixtures/pipeline/reference/sdxl_negative.safetensors", 200}};
    for (int c = 0; c < 2; c++) {
        dato_safetensors st;
        dato_error err;
        if (dato_safetensors_open(&st, cases[c].file, &err)) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        size_t n = 0;
        float* ref = fixture_f32(&st, "latents_in", &n);
        float* x = malloc((n ? n : 1) * sizeof *x);
        dato_torch_randn_latents(cases[c].seed, DATO_TORCH_AVX2, x, n);
        tally t = {0};
        if (ref) compare(&t, x, ref, n);
        printf("%s latents_in (seed %" PRIu64 ", %zu values): max error %g\n", cases[c].file, cases[c].seed, n,
               t.max_err);
        CHECK(ref && n == 3 * 4 * 8 * 8 && t.differing_bits == 0, "%s: latents_in differ", cases[c].file);
        free(x);
        free(ref);
        dato_safetensors_close(&st);
    }
}

int main(void) {
    test_torch_draws();
    test_pipeline_latents();
    return test_summary();
}
