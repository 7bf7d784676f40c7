// Stands in for cuda_conv_cudnn.cu in a build without cuDNN (engine/backends/cuda/CMakeLists.txt picks one):
// conv2d always runs on im2col, and asking for cuDNN is DATO_ERR_UNSUPPORTED.
#include "cuda_ops.h"

extern "C" int dato_backend_cuda_has_cudnn(void) { return 0; }

extern "C" dato_status cuda_cudnn_create(cuda_backend* cb, dato_error* err) {
    (void)err;
    cb->cudnn = NULL;
    return DATO_OK;
}

extern "C" void cuda_cudnn_destroy(cuda_backend* cb) { cb->cudnn = NULL; }

extern "C" dato_status cuda_cudnn_conv2d(cuda_backend* cb, dato_tensor* out, const dato_tensor* x,
                                         const dato_tensor* w, const dato_tensor* b, int stride_h, int stride_w,
                                         int pad_h, int pad_w, dato_error* err) {
    (void)cb, (void)out, (void)x, (void)w, (void)b, (void)stride_h, (void)stride_w, (void)pad_h, (void)pad_w;
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "conv2d: this build has no cuDNN (rebuild where CMake finds it)");
}
