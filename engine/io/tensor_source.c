#include "tensor_source.h"

static const dato_st_tensor* files_find(const void* ctx, const char* name) {
    return dato_weight_files_find(ctx, name);
}
static int files_count(const void* ctx) { return dato_weight_files_count(ctx); }
static const dato_st_tensor* files_at(const void* ctx, int i) { return dato_weight_files_tensor(ctx, i); }
static void files_release(const void* ctx, const dato_st_tensor* t) { dato_weight_files_release(ctx, t); }

dato_tensor_source dato_tensor_source_files(const dato_weight_files* wf) {
    return (dato_tensor_source){.ctx = wf, .label = wf->path, .find = files_find, .count = files_count, .at = files_at,
                                  .release = files_release};
}
