// The CPU backend: the reference implementation of every op in backend.h, in C + OpenMP. This
// file holds the memory ops, the ops table, init and destroy; the ops live in cpu_conv.c,
// cpu_linear.c, cpu_gemm.c, cpu_norm.c, cpu_activation.c, cpu_attention.c, cpu_layout.c,
// cpu_pool.c and cpu_dato.c, each checking its arguments by the rule op_check.h shares with the
// CUDA backend.
//
// Threads: one pool, OpenMP's. GEMMs are our own (cpu_gemm.c): their bits do not depend on the
// thread count. OpenBLAS, which the metrics' double-precision algebra still uses, is set to one
// thread: letting its pthreads run between OpenMP loops halves the speed, as libgomp's idle
// threads spin for milliseconds after each region (OMP_WAIT_POLICY unset) and steal its cores.
//
// Convolutions: 3x3 stride-1 convs with 128 channels or more in and out run by Winograd
// (cpu_winograd.c), the others directly (cpu_conv.c); $DATO_CPU_CONV forces either.
//
// Instruction sets: the build's baseline is x86-64-v3 (AVX2 + FMA); attention has AVX-512
// kernels picked at run time; $DATO_CPU_ISA (generic, avx2, avx512) caps the level so that
// the lower paths run, and are tested, on any machine.
//
// The ops share the backend's scratch (conv2d's padded inputs, GEMM panels, attention blocks): a backend
// serves one calling thread at a time.
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_ops.h"

// ---- memory: host memory, 64-byte aligned -----------------------------------------------------

static void* cpu_alloc(dato_backend* be, size_t bytes) {
    (void)be;
    if (bytes > SIZE_MAX - 64) return NULL;
    size_t rounded = bytes == 0 ? 64 : (bytes + 63) / 64 * 64; // aligned_alloc wants a multiple
    return aligned_alloc(64, rounded);
}

static void cpu_free(dato_backend* be, void* p) {
    (void)be;
    free(p);
}

static void cpu_memcpy(dato_backend* be, void* dst, const void* src, size_t bytes) {
    (void)be;
    if (bytes) memcpy(dst, src, bytes);
}

static void cpu_synchronize(dato_backend* be) { (void)be; }

static size_t cpu_mem_available(dato_backend* be) {
    (void)be;
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

static const dato_backend_ops cpu_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .synchronize = cpu_synchronize,
    .alloc_host = cpu_alloc, // host memory is what the CPU computes on
    .free_host = cpu_free,
    .upload_async = cpu_memcpy,
    .mem_available = cpu_mem_available,
    .conv2d = cpu_conv2d,
    .group_norm_conv2d = cpu_group_norm_conv2d,
    .linear = cpu_linear,
    .geglu_linear = cpu_geglu_linear,
    .group_norm = cpu_group_norm,
    .layer_norm = cpu_layer_norm,
    .silu = cpu_silu,
    .gelu = cpu_gelu,
    .quick_gelu = cpu_quick_gelu,
    .geglu = cpu_geglu,
    .softmax = cpu_softmax,
    .relu = cpu_relu,
    .attention = cpu_attention,
    .upsample_nearest2x = cpu_upsample_nearest2x,
    .max_pool2d = cpu_max_pool2d,
    .avg_pool2d = cpu_avg_pool2d,
    .mean_hw = cpu_mean_hw,
    .concat_channels = cpu_concat_channels,
    .nchw_to_tokens = cpu_nchw_to_tokens,
    .tokens_to_nchw = cpu_tokens_to_nchw,
    .add = cpu_add,
    .add_channel_bias = cpu_add_channel_bias,
    .axpby = cpu_axpby,
    .copy = cpu_copy,
    .timestep_embedding = cpu_timestep_embedding,
    .dato_similarity = cpu_dato_similarity,
    .dato_select_keep = cpu_dato_select_keep,
    .dato_gather_kept = cpu_dato_gather_kept,
    .dato_scatter_recover = cpu_dato_scatter_recover,
};

// ---- init and destroy -----------------------------------------------------------------------------

static void cpu_destroy(dato_backend* be) {
    cpu_backend* cpu = be->impl;
    free(cpu->scratch);
    free(cpu->attn);
    free(cpu->pack);
    free(cpu->wino);
    free(cpu->wino_rows);
    free(cpu);
}

// The index of $var's value in names[n] (its choices, listed in the message), or *choice left as is
// when var is unset or empty; an unknown value is refused naming the variable.
static dato_status env_choice(const char* var, const char* const* names, int n, const char* expected, int* choice,
                              dato_error* err) {
    const char* set = getenv(var);
    if (!set || !*set) return DATO_OK;
    for (int i = 0; i < n; i++)
        if (strcmp(set, names[i]) == 0) {
            *choice = i;
            return DATO_OK;
        }
    return dato_fail(err, DATO_ERR_INVALID, "cpu backend: $%s is '%.32s': expected %s", var, set, expected);
}

// The best level the CPU has, capped by $DATO_CPU_ISA when it is set.
static dato_status detect_isa(cpu_isa* isa, dato_error* err) {
    static const char* const names[] = {"generic", "avx2", "avx512"}; // by cpu_isa
    *isa = CPU_ISA_GENERIC;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) *isa = CPU_ISA_AVX2;
    if (*isa == CPU_ISA_AVX2 && __builtin_cpu_supports("avx512f")) *isa = CPU_ISA_AVX512;
#endif
    int cap = *isa;
    DATO_TRY(env_choice("DATO_CPU_ISA", names, 3, "generic, avx2 or avx512", &cap, err));
    if ((cpu_isa)cap < *isa) *isa = (cpu_isa)cap;
    return DATO_OK;
}

// How 3x3 stride-1 convs run: $DATO_CPU_CONV (auto when unset).
static dato_status conv_mode_from_env(cpu_conv_mode* mode, dato_error* err) {
    static const char* const names[] = {"auto", "winograd", "direct"}; // by cpu_conv_mode
    int m = CPU_CONV_AUTO;
    DATO_TRY(env_choice("DATO_CPU_CONV", names, 3, "auto, winograd or direct", &m, err));
    *mode = (cpu_conv_mode)m;
    return DATO_OK;
}

dato_status dato_backend_cpu_init(dato_backend* be, int threads, dato_error* err) {
    if (!be) return dato_fail(err, DATO_ERR_INVALID, "cpu backend: be is NULL");
    *be = (dato_backend){0};
    if (threads > 0) omp_set_num_threads(threads);
    else threads = omp_get_max_threads();
    openblas_set_num_threads(1); // see the top of this file
    cpu_isa isa;
    DATO_TRY(detect_isa(&isa, err));
    cpu_conv_mode conv_mode;
    DATO_TRY(conv_mode_from_env(&conv_mode, err));
    cpu_backend* cpu = calloc(1, sizeof *cpu);
    if (!cpu) return dato_fail(err, DATO_ERR_NOMEM, "cpu backend: out of memory for its state");
    cpu->destroy = cpu_destroy;
    cpu->threads = threads;
    cpu->isa = isa;
    cpu->conv_mode = conv_mode;
    cpu->scratch_floats = (size_t)threads * CPU_SCRATCH_FLOATS_PER_THREAD;
    if (cpu->scratch_floats < CPU_SCRATCH_FLOATS_MIN) cpu->scratch_floats = CPU_SCRATCH_FLOATS_MIN;
    cpu->scratch = aligned_alloc(64, cpu->scratch_floats * sizeof(float));
    cpu->attn = aligned_alloc(64, (size_t)threads * CPU_ATTN_FLOATS_PER_THREAD * sizeof(float));
    cpu->pack = aligned_alloc(64, (size_t)threads * CPU_GEMM_PACK_FLOATS * sizeof(float));
    cpu->wino_floats = CPU_WINO_FLOATS;
    cpu->wino_fused_floats = CPU_WINO_FUSED_FLOATS;
    cpu->wino = aligned_alloc(64, cpu->wino_floats * sizeof(float)); // pages untouched until a Winograd conv
    cpu->wino_rows = aligned_alloc(64, (size_t)threads * CPU_WINO_THREAD_FLOATS * sizeof(float));
    if (!cpu->scratch || !cpu->attn || !cpu->pack || !cpu->wino || !cpu->wino_rows) {
        free(cpu->scratch);
        free(cpu->attn);
        free(cpu->pack);
        free(cpu->wino);
        free(cpu->wino_rows);
        free(cpu);
        return dato_fail(err, DATO_ERR_NOMEM, "cpu backend: out of memory for %d threads' scratch", threads);
    }
    *be = (dato_backend){.name = "cpu", .device = DATO_DEV_CPU, .ops = &cpu_ops, .impl = cpu};
    return DATO_OK;
}

// Destroys any backend: a backend with private state puts its destroy function as the first
// member of the struct impl points to (the CPU backend: cpu_backend.destroy); impl == NULL
// (the null backend) has nothing to free. be is zeroed after, so a second call does nothing.
void dato_backend_destroy(dato_backend* be) {
    if (!be) return;
    if (be->impl) {
        void (*destroy)(dato_backend*) = *(void (**)(dato_backend*))be->impl;
        if (destroy) destroy(be);
    }
    *be = (dato_backend){0};
}
