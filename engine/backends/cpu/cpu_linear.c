// linear on the CPU, out (M, N) = x (M, K) @ w (N, K)^T + bias: one team GEMM (cpu_gemm.c) with
// the bias added in its epilogue; and geglu_linear, the same GEMM on GEGLU of x, computed a block
// of A at a time as the GEMM reads it.
#include "cpu_ops.h"

// out (M, N) = A @ w (N, K)^T + b, A = x (M, K) or, with geglu, GEGLU of x (M, 2K).
static void linear_gemm(const cpu_backend* cpu, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                        const dato_tensor* b, int geglu) {
    int64_t n = w->shape[0], kdim = w->shape[1], lda = geglu ? 2 * kdim : kdim, m = dato_tensor_numel(x) / lda;
    if (m == 0) return;
    cpu_gemm_args g = {
        .m = (int)m, .n = (int)n, .k = (int)kdim,
        .a = x->data, .lda = (int)lda, .a_geglu = geglu,   // (M, K), or (M, 2K): [hidden, gate]
        .b = w->data, .ldb = (int)kdim, .b_transposed = 1, // (N, K)
        .c = out->data, .ldc = (int)n,                     // (M, N)
        .col_bias = b ? b->data : NULL,                    // (N)
    };
    #pragma omp parallel num_threads(cpu->threads)
    cpu_gemm_team(cpu, &g);
}

dato_status cpu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                       const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_linear(out, x, w, b, DATO_DEV_CPU, 0, err));
    linear_gemm(be->impl, out, x, w, b, 0);
    return DATO_OK;
}

dato_status cpu_geglu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                             const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_geglu_linear(out, x, w, b, DATO_DEV_CPU, err));
    linear_gemm(be->impl, out, x, w, b, 1);
    return DATO_OK;
}
