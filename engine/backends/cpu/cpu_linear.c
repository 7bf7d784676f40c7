// linear on the CPU, out (M, N) = x (M, K) @ w (N, K)^T + bias: one team GEMM (cpu_gemm.c) with
// the bias added in its epilogue; and geglu_linear, the same GEMM on GEGLU of x, computed a block
// of A at a time as the GEMM reads it.
#include "cpu_ops.h"

dato_status cpu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                       const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_linear(out, x, w, b, DATO_DEV_CPU, 0, err));
    int64_t n = w->shape[0], kdim = w->shape[1], m = dato_tensor_numel(x) / kdim;
    if (m == 0) return DATO_OK;

    const cpu_backend* cpu = be->impl;
    cpu_gemm_args g = {
        .m = (int)m, .n = (int)n, .k = (int)kdim,
        .a = x->data, .lda = (int)kdim,                    // (M, K)
        .b = w->data, .ldb = (int)kdim, .b_transposed = 1, // (N, K)
        .c = out->data, .ldc = (int)n,                     // (M, N)
        .col_bias = b ? b->data : NULL,                    // (N)
    };
    #pragma omp parallel num_threads(cpu->threads)
    cpu_gemm_team(cpu, &g);
    return DATO_OK;
}

dato_status cpu_geglu_linear(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                             const dato_tensor* b, dato_error* err) {
    DATO_TRY(dato_op_check_geglu_linear(out, x, w, b, DATO_DEV_CPU, err));
    int64_t n = w->shape[0], f = w->shape[1], m = dato_tensor_numel(x) / (2 * f);
    if (m == 0) return DATO_OK;

    const cpu_backend* cpu = be->impl;
    cpu_gemm_args g = {
        .m = (int)m, .n = (int)n, .k = (int)f,
        .a = x->data, .lda = (int)(2 * f), .a_geglu = 1,   // (M, 2F): [hidden, gate]
        .b = w->data, .ldb = (int)f, .b_transposed = 1,    // (N, F)
        .c = out->data, .ldc = (int)n,                     // (M, N)
        .col_bias = b ? b->data : NULL,                    // (N)
    };
    #pragma omp parallel num_threads(cpu->threads)
    cpu_gemm_team(cpu, &g);
    return DATO_OK;
}
