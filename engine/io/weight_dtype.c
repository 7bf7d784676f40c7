// GEMM weight dtypes: parsing, the backend check and the host conversion at upload.
#include <ctype.h>

#include "weight_dtype.h"

const char* dato_weight_dtype_flag(dato_dtype dt) {
    return dt == DATO_F16 ? "f16" : dt == DATO_BF16 ? "bf16" : "f32";
}

// 1 if a equals b ignoring ASCII case.
static int same_text(const char* a, const char* b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

dato_status dato_weight_dtype_parse(const char* s, dato_dtype* dt, dato_error* err) {
    static const dato_dtype all[] = {DATO_F32, DATO_F16, DATO_BF16};
    for (int i = 0; i < 3; i++)
        if (same_text(s, dato_weight_dtype_flag(all[i]))) {
            *dt = all[i];
            return DATO_OK;
        }
    return dato_fail(err, DATO_ERR_INVALID, "weight dtype '%s': expected f32, f16 or bf16", s);
}

dato_status dato_weight_dtype_check(const dato_backend* be, dato_dtype dt, const char* what, dato_error* err) {
    if (dt == DATO_F32) return DATO_OK;
    if (dt != DATO_F16 && dt != DATO_BF16)
        return dato_fail(err, DATO_ERR_INVALID, "%s: weight dtype %d is not F32, F16 or BF16", what, (int)dt);
    // Only the CUDA backend's linear and conv2d take half weights (engine/backends/cuda/cuda_gemm.cu).
    if (be->device != DATO_DEV_CUDA)
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "%s: --dtype %s needs the CUDA backend; the %s backend computes in F32", what,
                         dato_weight_dtype_flag(dt), be->name);
    return DATO_OK;
}

void dato_weight_upload(dato_backend* be, void* dst, const float* host, size_t n, dato_dtype dt, uint16_t* half) {
    if (dt == DATO_F32) {
        be->ops->upload(be, dst, host, n * sizeof *host);
        return;
    }
    for (size_t i = 0; i < n; i++) half[i] = dt == DATO_F16 ? dato_f32_to_f16(host[i]) : dato_f32_to_bf16(host[i]);
    be->ops->upload(be, dst, half, n * sizeof *half);
}
