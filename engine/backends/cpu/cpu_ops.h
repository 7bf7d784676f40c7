// Private to the CPU backend: its state, a vectorizable exp, and the ops each file of engine/backends/cpu/
// implements (backend_cpu.c puts them in the table); their argument checks are op_check.h's.
#ifndef DATO_CPU_OPS_H
#define DATO_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "op_check.h"

// Fixed scratch sizes, allocated once at init: ops tile their work to fit them.
#define CPU_SCRATCH_FLOATS_PER_THREAD ((size_t)1 << 20) // conv2d's padded input: 4 MiB per thread,
#define CPU_SCRATCH_FLOATS_MIN ((size_t)4 << 20)        // 16 MiB at least
#define CPU_ATTN_FLOATS_PER_THREAD ((size_t)1 << 18) // attention blocks of one thread: 1 MiB
#define CPU_WINO_FLOATS ((size_t)24 << 20)             // Winograd convs' transformed tiles and weights: 96 MiB,
                                                       // touched only by the convs that take them,
#define CPU_WINO_THREAD_FLOATS ((size_t)1 << 19)       // and each thread's rows and blocks: 2 MiB
#define CPU_WINO_FUSED_FLOATS ((size_t)3 << 20)        // V of every tile, at most, for the fused form: 12 MiB
#define CPU_WINO_FUSED_TILES 32                        // and its tiles, at most
#define CPU_WINO_OB 12                                 // fused: output channels per block of U and M
#define CPU_WINO_KC 256                                // fused: input channels per K block of U, at most

// GEMM blocking (cpu_gemm.c, which says why these sizes): register tile MR x NR, blocks MC x KC
// of A and KC x NC of B; the panels: A's last partial MR rows, a packed KC x NC block of B, and an
// MC x KC block of A computed from its input (GEGLU's output, a_geglu): 2.8 MiB a thread.
#define CPU_GEMM_MR 6
#define CPU_GEMM_NR 16
#define CPU_GEMM_KC 512
#define CPU_GEMM_MC 72
#define CPU_GEMM_NC 1280
#define CPU_GEMM_PACK_FLOATS                                                                    \
    ((size_t)CPU_GEMM_MR * CPU_GEMM_KC + (size_t)CPU_GEMM_KC * CPU_GEMM_NC + (size_t)CPU_GEMM_MC * CPU_GEMM_KC) // per thread

// The instruction set the kernels use: the best the CPU has, or lower where $DATO_CPU_ISA says
// (generic, avx2 or avx512), so one binary's other paths can be tested on any machine.
typedef enum { CPU_ISA_GENERIC, CPU_ISA_AVX2, CPU_ISA_AVX512 } cpu_isa;

// Which 3x3 stride-1 convs run by Winograd (cpu_winograd.c): those where it pays (auto), every one
// that fits its scratch, or none ($DATO_CPU_CONV = auto, winograd or direct), so both paths can be
// tested on any model.
typedef enum { CPU_CONV_AUTO, CPU_CONV_WINOGRAD, CPU_CONV_DIRECT } cpu_conv_mode;

typedef struct {
    // First member by the convention of dato_backend_destroy (backend_cpu.c): every backend
    // with private state puts its destroy function first in its impl struct.
    void (*destroy)(dato_backend* be);
    int threads;       // OpenMP threads of every parallel region
    cpu_isa isa;       // AVX-512: attention's 16-float kernels, the GEMM's 6x32 kernel; AVX2: the GEMM's 6x16 kernel
    cpu_conv_mode conv_mode;
    float* scratch;    // (scratch_floats) conv2d's offset tables and padded input bands; dato_select_keep's sort
    size_t scratch_floats;
    float* attn;       // (threads, CPU_ATTN_FLOATS_PER_THREAD) per-thread attention blocks
    float* pack;       // (threads, CPU_GEMM_PACK_FLOATS) per-thread GEMM panels
    float* wino;       // (wino_floats) Winograd convs' blocks (cpu_winograd.c)
    size_t wino_floats;
    size_t wino_fused_floats; // V's limit for the fused Winograd form: CPU_WINO_FUSED_FLOATS (tests set 0)
    float* wino_rows;  // (threads, CPU_WINO_THREAD_FLOATS) each thread's rows and blocks of a Winograd conv
} cpu_backend;

static inline int cpu_threads(const dato_backend* be) { return ((const cpu_backend*)be->impl)->threads; }

// Elementwise loops below this size run on one thread: a parallel region costs microseconds.
#define CPU_PARALLEL_MIN 32768

// C (M, N) = A (M, K) @ B + bias, leading dimensions lda, ldb, ldc. A is read at lda, or gathered
// from conv2d's zero-padded input; B is (K, N), stored transposed (N, K), or gathered from that
// input; C is row-major, or stored transposed. The bias per row and/or per column is added once
// after the product. conv2d (cpu_conv.c) multiplies in either of two forms: its weights as A and
// its input's im2col matrix as a gathered B, or its output positions as a gathered A, the
// weights as B and the output as a transposed C.
typedef struct {
    int m, n, k;
    const float* a;              // (M, K) at lda, or with a_geglu (M, 2K) at lda; unused when a_x is set
    int lda, a_geglu;            // a_geglu: A = geglu(a): A[i][p] = a[i][p] gelu(a[i][K + p]) (cpu_geglu_row)
    const float* a_x;            // the padded input A gathers from, or NULL
    const int32_t* a_row_offset; // (M) A[i][p] = a_x[a_row_offset[i] + a_col_offset[p]]
    const int32_t* a_col_offset; // (K)
    const float* b;              // (K, N) at ldb, or (N, K) when b_transposed; unused when b_x is set
    int ldb, b_transposed;
    const float* b_x;            // the padded input B gathers from, or NULL
    const int32_t* b_row_offset; // (K) B[p][j] = b_x[b_row_offset[p] + b_col_offset[j]]
    const int32_t* b_col_offset; // (N rounded up to CPU_GEMM_NR) valid offsets past N
    float* c;                    // (M, N) at ldc; or, when c_transposed, (i, j) at c[c_row_offset[i] + j ldc]
    int ldc, c_transposed;
    const int32_t* c_row_offset; // (M) with c_transposed: where row i's first element sits
    const float* row_bias;       // (M) or NULL
    const float* col_bias;       // (N) or NULL
} cpu_gemm_args;

// cpu_gemm.c. Each element of C is one FMA chain over k in order, so the bits do not depend on
// the thread count, the blocking or the kernel (generic or AVX2).
// The GEMM shared by the team: called by every thread of an OpenMP parallel region (an
// orphaned `omp for`, with its barrier).
void cpu_gemm_team(const cpu_backend* cpu, const cpu_gemm_args* g);
// The whole GEMM on the calling thread (of a parallel region or not), in its own panels.
void cpu_gemm_one(const cpu_backend* cpu, const cpu_gemm_args* g);
// C (MR, N) = A (MR, K) @ B (K, N), or C += it with accumulate (each element's FMA chain continued
// from C, so K in blocks gives one block's bits): one MR-row slice of A at lda against B's rows
// read in place at ldb, no packing, on the calling thread; N a multiple of CPU_GEMM_NR. For
// Winograd's GEMMs (cpu_winograd.c), whose A is made a block at a time and whose B is reused whole.
void cpu_gemm_rows(cpu_isa isa, int k, const float* a, int lda, const float* b, int ldb, int n, float* c, int ldc,
                   int accumulate);
// 1 when a GEMM with a gathered A takes all of its K in one block (the packed panels of an N-wide
// B hold K rows): its transposed C is then written once, not loaded and stored per block.
int cpu_gemm_one_k_block(int k, int n);

// Bits of a float and back (compile to register moves, vectorize).
static inline uint32_t cpu_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float cpu_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// 2^x for any float x, relative error ~2e-7 (Cephes exp2f polynomial on [-0.5, 0.5]), in
// steps that vectorize when inlined into a loop (libm's exp2f does not; nor do float compares,
// which GCC will not if-convert without -fno-trapping-math, so the clamps work on the bits).
// x is clamped to [-127, 127] (-inf and negative NaNs to -127, +inf and positive NaNs to 127);
// below about 2^-126.5 the result is 0, so 2^-inf = 0 exactly.
static inline float cpu_exp2f(float x) {
    uint32_t u = cpu_f32_bits(x);
    u = u > 0xC2FE0000u ? 0xC2FE0000u : u;         // sign set and |x| > 127: -127
    u = (int32_t)u > 0x42FE0000 ? 0x42FE0000u : u; // sign clear and x > 127: 127
    x = cpu_bits_f32(u);
    float n = (x + 12582912.0f) - 12582912.0f; // round to nearest by adding 1.5 * 2^23
    float f = x - n;                           // in [-0.5, 0.5]
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    // 2^n: n + 127 + 1.5 * 2^23 holds n + 127 in its low mantissa bits; shift them into the exponent
    return p * cpu_bits_f32(cpu_f32_bits(n + 12583039.0f) << 23);
}

// e^x by cpu_exp2f.
static inline float cpu_expf(float x) { return cpu_exp2f(x * 1.44269504088896341f); }

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (outside, erf rounds to +-1 in float): a rational
// minimax fit (the one XLA and Eigen use for float), branch-free so loops vectorize where libm's
// erff does not; |x| is clamped on the bits, as in cpu_exp2f (NaN clamps to +-4). Max abs error
// 4.5e-7 against erf in double (libm's erff: 5.4e-8), measured over [-8, 8] in steps of 1e-6.
static inline float cpu_erff(float x) {
    uint32_t u = cpu_f32_bits(x), a = u & 0x7FFFFFFFu;
    a = a > 0x40800000u ? 0x40800000u : a; // |x| > 4: 4
    x = cpu_bits_f32(a | (u & 0x80000000u));
    float z = x * x;
    float p = -2.72614225801306e-10f;
    p = p * z + 2.77068142495902e-08f;
    p = p * z - 2.10102402082508e-06f;
    p = p * z - 5.69250639462346e-05f;
    p = p * z - 7.34990630326855e-04f;
    p = p * z - 2.95459980854025e-03f;
    p = p * z - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * z - 2.13374055278905e-04f;
    q = q * z - 1.68282697438203e-03f;
    q = q * z - 7.37332916720468e-03f;
    q = q * z - 1.42647390514189e-02f;
    return x * p / q;
}

// GEGLU of one row, o (F) = hidden (F) * gelu(gate (F)), exact GELU through cpu_erff: what
// cpu_geglu and the GEMM's GEGLU-staged A (cpu_gemm.c) both compute, so their bits agree.
static inline void cpu_geglu_row(float* o, const float* hidden, const float* gate, int64_t f) {
    #pragma omp simd
    for (int64_t i = 0; i < f; i++) o[i] = hidden[i] * (0.5f * gate[i] * (1.0f + cpu_erff(gate[i] * 0.70710678118654752f)));
}

// out[i] = x[i] * scale + shift, then SiLU if fuse_silu: GroupNorm's last step (cpu_norm.c), and
// the fused one of group_norm_conv2d as it copies the conv's input (cpu_conv.c), so their bits agree.
static inline void cpu_scale_shift(float* out, const float* x, int64_t n, float scale, float shift, int fuse_silu) {
    if (fuse_silu) {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float y = x[i] * scale + shift;
            out[i] = y / (1.0f + cpu_expf(-y));
        }
    } else {
        #pragma omp simd
        for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale + shift;
    }
}

// cpu_winograd.c: 3x3 stride-1 conv2d by Winograd's F(4x4, 3x3), in blocks that fit the backend's
// wino scratch. cpu_winograd_plan_conv fills the plan and returns 1 where the conv is to run so,
// else 0: the direct conv runs. The choice depends on the mode, the shape (norm: GroupNorm fused)
// and the scratch sizes, never on the thread count; neither the form nor the blocks change a bit.
typedef struct cpu_winograd_plan cpu_winograd_plan;
struct cpu_winograd_plan {
    int64_t batch, ci, co, h, w, ph, pw, ho, wo;
    int64_t th, tw;         // tiles per image: rows, columns
    int fused;              // U made per block of CPU_WINO_OB output channels (1), or stored per block of cb
    int64_t block_rows, tb; // tile rows per tile block; Tb = block_rows * tw tiles (fused: all of them)
    int64_t tb_ld;          // V's and M's row length: fused, Tb rounded up to whole GEMM panels
    int64_t kc;             // input channels per K block of U: fused, up to CPU_WINO_KC; blocked, Ci
    int64_t cb;             // blocked: output channels per block of U
    int64_t p;              // length of a column phase: tw + 1
    size_t norm;            // floats of GroupNorm's scale and shift (2 B Ci)
};
int cpu_winograd_plan_conv(const cpu_backend* cpu, int64_t batch, int64_t ci, int64_t co, int64_t h, int64_t w,
                           int64_t kh, int64_t kw, int stride_h, int stride_w, int64_t pad_h, int64_t pad_w, int norm,
                           cpu_winograd_plan* pl);
// out (B, Co, Ho, Wo) = conv2d(x, w (Co, Ci, 3, 3)) + b (or NULL), of group_norm(x) (and SiLU) when groups > 0.
void cpu_winograd_conv2d(const cpu_backend* cpu, const cpu_winograd_plan* pl, float* out, const float* x,
                         const float* w, const float* b, const float* gamma, const float* beta, int groups, float eps,
                         int silu);

// cpu_norm.c: GroupNorm of x (B, C, spatial) as a scale and shift per image and channel (B, C).
void cpu_group_norm_scale_shift(const cpu_backend* cpu, const float* x, int64_t batch, int64_t c, int64_t spatial,
                                int groups, float eps, const float* gamma, const float* beta, float* scale,
                                float* shift);

// ---- ops (each file implements its group; shapes and aliasing as in backend.h) ---------------

// cpu_conv.c
dato_status cpu_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                       const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w, dato_error* err);
dato_status cpu_group_norm_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                  const dato_tensor* beta, int groups, float eps, int fuse_silu, const dato_tensor* w,
                                  const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                                  dato_error* err);
// cpu_linear.c
dato_status cpu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                       const dato_tensor* b, dato_error* err);
dato_status cpu_geglu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                             const dato_tensor* b, dato_error* err);
// cpu_norm.c
dato_status cpu_group_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                           const dato_tensor* beta, int groups, float eps, int fuse_silu, dato_error* err);
dato_status cpu_layer_norm(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                           const dato_tensor* beta, float eps, dato_error* err);
// cpu_activation.c
dato_status cpu_silu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_gelu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_quick_gelu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_geglu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_softmax(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_relu(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
// cpu_pool.c
dato_status cpu_max_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                           dato_error* err);
dato_status cpu_avg_pool2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, int k, int stride, int pad,
                           int count_include_pad, dato_error* err);
dato_status cpu_mean_hw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
// cpu_attention.c
dato_status cpu_attention(dato_backend* be, dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                          const dato_tensor* v, int heads, float scale, int causal, dato_error* err);
// cpu_layout.c
dato_status cpu_upsample_nearest2x(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_concat_channels(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                dato_error* err);
dato_status cpu_nchw_to_tokens(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_tokens_to_nchw(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_add(dato_backend* be, dato_tensor* out, const dato_tensor* a, const dato_tensor* b, dato_error* err);
dato_status cpu_add_channel_bias(dato_backend* be, dato_tensor* x, const dato_tensor* v, dato_error* err);
dato_status cpu_axpby(dato_backend* be, dato_tensor* out, float alpha, const dato_tensor* a, float beta,
                      const dato_tensor* b, dato_error* err);
dato_status cpu_copy(dato_backend* be, dato_tensor* out, const dato_tensor* x, dato_error* err);
dato_status cpu_timestep_embedding(dato_backend* be, dato_tensor* out, const dato_tensor* t, int flip_sin_to_cos,
                                   float freq_shift, float max_period, dato_error* err);
// cpu_dato.c
dato_status cpu_dato_similarity(dato_backend* be, dato_tensor* sim, dato_tensor* assign, dato_tensor* is_base,
                                const dato_tensor* x, const dato_tensor* base, dato_tensor* work, dato_error* err);
dato_status cpu_dato_select_keep(dato_backend* be, dato_tensor* keep, const dato_tensor* sim,
                                 const dato_tensor* is_base, int P, int n, dato_error* err);
dato_status cpu_dato_gather_kept(dato_backend* be, dato_tensor* pos, dato_tensor* x_kept, const dato_tensor* x,
                                 const dato_tensor* keep, dato_error* err);
dato_status cpu_dato_scatter_recover(dato_backend* be, dato_tensor* out, const dato_tensor* o_kept,
                                     const dato_tensor* pos, const dato_tensor* assign, dato_error* err);

#endif
