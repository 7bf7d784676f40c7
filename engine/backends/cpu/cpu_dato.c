// The DaTo token-pruning ops of the CPU backend (backend.h): the loops engine/runtime/dato.c ran on host
// memory before these ops existed, with the same arithmetic (the similarity's products from
// cpu_linear, the selection by dato_select_pruned, copies for gather and scatter), so a pruned
// UNet call gives the same bits as then. Rows run one after the other; cpu_linear threads each.
#include <math.h>

#include "cpu_ops.h"
#include "dato.h" // the reference pieces: dato_select_pruned, dato_scored

dato_status cpu_dato_similarity(dato_backend* be, dato_tensor* sim, dato_tensor* assign, dato_tensor* is_base,
                                const dato_tensor* x, const dato_tensor* base, dato_tensor* work, dato_error* err) {
    const char* op = "dato_similarity";
    DATO_TRY(dato_op_check_dato_similarity(sim, assign, is_base, x, base, work, DATO_DEV_CPU, err));
    int64_t B = x->shape[0], N = x->shape[1], C = x->shape[2], P = base->shape[1];
    const int32_t* bd = base->data;
    for (int64_t t = 0; t < B * P; t++)
        if (bd[t] < 0 || bd[t] >= N)
            return dato_fail(err, DATO_ERR_INVALID, "%s: base[%lld][%lld] = %d outside [0, %lld)", op,
                             (long long)(t / P), (long long)(t % P), bd[t], (long long)N);
    float* xn = work->data; // (N, C) normalized tokens of one row
    float* bn = xn + N * C; // (P, C) their base rows
    float* s = bn + P * C;  // (N, P) cosine similarities
    for (int64_t b = 0; b < B; b++) {
        const float* xb = (const float*)x->data + b * N * C; // (N, C)
        const int32_t* bb = bd + b * P;                      // (P)
        uint8_t* ib = (uint8_t*)is_base->data + b * N;       // (N)
        float* sb = (float*)sim->data + b * N;               // (N)
        int32_t* ab = (int32_t*)assign->data + b * N;        // (N)
        for (int64_t i = 0; i < N; i++) {
            double nn = 0;
            for (int64_t c = 0; c < C; c++) nn += (double)xb[i * C + c] * xb[i * C + c];
            float inv = nn > 0 ? (float)(1.0 / sqrt(nn)) : 0.0f;
            for (int64_t c = 0; c < C; c++) xn[i * C + c] = xb[i * C + c] * inv;
        }
        memset(ib, 0, (size_t)N);
        for (int64_t j = 0; j < P; j++) {
            memcpy(bn + j * C, xn + (int64_t)bb[j] * C, (size_t)C * sizeof(float));
            ib[bb[j]] = 1;
        }
        dato_tensor txn = dato_tensor_f32_2d(xn, N, C), tbn = dato_tensor_f32_2d(bn, P, C);
        dato_tensor ts = dato_tensor_f32_2d(s, N, P); // (N, P) = xn @ bn^T
        DATO_TRY(cpu_linear(be, &ts, &txn, &tbn, NULL, err));
        for (int64_t i = 0; i < N; i++) {
            const float* si = s + i * P;
            int64_t best = 0;
            for (int64_t j = 1; j < P; j++)
                if (si[j] > si[best]) best = j;
            sb[i] = si[best];
            ab[i] = ib[i] ? (int32_t)i : bb[best];
        }
    }
    return DATO_OK;
}

dato_status cpu_dato_select_keep(dato_backend* be, dato_tensor* keep, const dato_tensor* sim,
                                 const dato_tensor* is_base, int P, int n, dato_error* err) {
    const char* op = "dato_select_keep";
    DATO_TRY(dato_op_check_dato_select_keep(keep, sim, is_base, P, n, DATO_DEV_CPU, err));
    int64_t B = sim->shape[0], N = sim->shape[1];
    // dato_select_pruned's scratch in the backend's scratch: the sorted candidates, then the pruned indices.
    cpu_backend* cpu = be->impl;
    if ((size_t)N * (sizeof(dato_scored) + sizeof(int32_t)) > cpu->scratch_floats * sizeof(float))
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %lld tokens per row exceed the CPU backend's scratch", op,
                         (long long)N);
    dato_scored* order = (dato_scored*)cpu->scratch; // (N)
    int32_t* pruned = (int32_t*)(order + N);     // (N)
    for (int64_t b = 0; b < B; b++) {
        const float* sb = (const float*)sim->data + b * N;         // (N)
        const uint8_t* ib = (const uint8_t*)is_base->data + b * N; // (N)
        uint8_t* kb = (uint8_t*)keep->data + b * N;                // (N)
        int np = dato_select_pruned(sb, ib, (int)N, P, n, pruned, order);
        memset(kb, 1, (size_t)N);
        for (int k = 0; k < np; k++) kb[pruned[k]] = 0;
    }
    return DATO_OK;
}

dato_status cpu_dato_gather_kept(dato_backend* be, dato_tensor* pos, dato_tensor* x_kept, const dato_tensor* x,
                                 const dato_tensor* keep, dato_error* err) {
    (void)be;
    const char* op = "dato_gather_kept";
    DATO_TRY(dato_op_check_dato_gather_kept(pos, x_kept, x, keep, DATO_DEV_CPU, err));
    int64_t B = x->shape[0], N = x->shape[1], C = x->shape[2], Nk = x_kept->shape[1];
    for (int64_t b = 0; b < B; b++) {
        const float* xb = (const float*)x->data + b * N * C;    // (N, C)
        const uint8_t* kb = (const uint8_t*)keep->data + b * N; // (N)
        int32_t* pb = (int32_t*)pos->data + b * N;              // (N)
        float* xk = (float*)x_kept->data + b * Nk * C;          // (Nk, C)
        int64_t k = 0;
        for (int64_t i = 0; i < N; i++) {
            if (!kb[i]) {
                pb[i] = -1;
                continue;
            }
            pb[i] = (int32_t)k;
            if (k < Nk) memcpy(xk + k * C, xb + i * C, (size_t)C * sizeof(float));
            k++;
        }
        if (k != Nk)
            return dato_fail(err, DATO_ERR_INVALID, "%s: row %lld keeps %lld tokens, x_kept holds %lld", op,
                             (long long)b, (long long)k, (long long)Nk);
    }
    return DATO_OK;
}

dato_status cpu_dato_scatter_recover(dato_backend* be, dato_tensor* out, const dato_tensor* o_kept,
                                     const dato_tensor* pos, const dato_tensor* assign, dato_error* err) {
    (void)be;
    const char* op = "dato_scatter_recover";
    DATO_TRY(dato_op_check_dato_scatter_recover(out, o_kept, pos, assign, DATO_DEV_CPU, err));
    int64_t B = out->shape[0], N = out->shape[1], C = out->shape[2], Nk = o_kept->shape[1];
    for (int64_t b = 0; b < B; b++) {
        const int32_t* pb = (const int32_t*)pos->data + b * N;     // (N)
        const int32_t* ab = (const int32_t*)assign->data + b * N;  // (N)
        const float* ok = (const float*)o_kept->data + b * Nk * C; // (Nk, C)
        float* ob = (float*)out->data + b * N * C;                 // (N, C)
        for (int64_t i = 0; i < N; i++) {
            int32_t k = pb[i] >= 0 ? pb[i] : ab[i] >= 0 && ab[i] < N ? pb[ab[i]] : -1;
            if (k < 0 || k >= Nk)
                return dato_fail(err, DATO_ERR_INVALID, "%s: token %lld of row %lld has no kept row (pos %d, assign %d)",
                                 op, (long long)i, (long long)b, pb[i], ab[i]);
            memcpy(ob + i * C, ok + (int64_t)k * C, (size_t)C * sizeof(float));
        }
    }
    return DATO_OK;
}
