// Argument checks shared by the backends (op_check.h).
#include "op_check.h"

dato_status dato_op_check_rows(const char* op, const char* arg, const dato_tensor* t, dato_dtype dt, dato_device dev,
                               int64_t d0, int64_t d1, dato_error* err) {
    if (!t) return dato_fail(err, DATO_ERR_INVALID, "%s: %s is NULL", op, arg);
    if (t->dtype != dt)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %s is %s, expected %s", op, arg, dato_dtype_name(t->dtype),
                         dato_dtype_name(dt));
    if (t->device != dev)
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s is not on the %s", op, arg,
                         dev == DATO_DEV_CPU ? "CPU" : "CUDA device");
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) {
        char s[96];
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s is %s, expected (%lld, %lld)", op, arg,
                         dato_shape_str(t, s, sizeof s), (long long)d0, (long long)d1);
    }
    if (!t->data && d0 * d1 > 0) return dato_fail(err, DATO_ERR_INVALID, "%s: %s has no data", op, arg);
    return DATO_OK;
}
