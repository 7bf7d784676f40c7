// Argument checks that every backend's ops share: the same rule and the same message whether the
// tensors live on the CPU or on a GPU.
#ifndef DATO_OP_CHECK_H
#define DATO_OP_CHECK_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

// DATO_OK if t is a tensor of dtype dt on device dev with data and shape (d0, d1); otherwise
// an error naming op and arg ("dato_select_keep: keep is F32, expected U8").
dato_status dato_op_check_rows(const char* op, const char* arg, const dato_tensor* t, dato_dtype dt, dato_device dev,
                               int64_t d0, int64_t d1, dato_error* err);

#ifdef __cplusplus
}
#endif

#endif
