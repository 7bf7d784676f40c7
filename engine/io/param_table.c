// Parameter tables: building rows, one weight block, and the loader every model shares (check
// names and shapes, convert F32/F16/BF16 to f32, take apart what a layout stores fused or
// transposed, convert GEMM weights to their dtype, upload).
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "param_table.h"
#include "rng.h"
#include "weight_dtype.h"

// ---- building ------------------------------------------------------------------------------------

dato_status dato_param_push(dato_param_builder* b, const char* name0, const char* name1, int ndim,
                            const int64_t* shape, int gemm, dato_tensor* slot) {
    if (*b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 128;
        dato_param* grown = realloc(*b->params, (size_t)cap * sizeof *grown);
        if (!grown) return dato_fail(b->err, DATO_ERR_NOMEM, "%s: cannot grow the parameter table", b->what);
        *b->params = grown;
        b->cap = cap;
    }
    dato_param* p = &(*b->params)[(*b->n)++];
    memset(p, 0, sizeof *p);
    const char* names[2] = {name0, name1};
    for (int l = 0; l < 2; l++) {
        int len = snprintf(p->name[l], sizeof p->name[l], "%s", names[l]);
        if (len < 0 || (size_t)len >= sizeof p->name[l])
            return dato_fail(b->err, DATO_ERR_INVALID, "%s: parameter name too long: %s", b->what, names[l]);
    }
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof *shape);
    p->gemm = gemm;
    p->oc_slice = -1;
    p->slot = slot;
    *slot = dato_tensor_make(NULL, DATO_F32, b->device, ndim, shape);
    if (b->numel) *b->numel += (size_t)dato_tensor_numel(slot);
    return DATO_OK;
}

const dato_param* dato_param_find(const dato_param* params, int n, int layout, const char* name) {
    for (int i = 0; i < n; i++)
        if (strcmp(params[i].name[layout], name) == 0 ||
            (layout == 0 && params[i].legacy[0] && strcmp(params[i].legacy, name) == 0))
            return &params[i];
    return NULL;
}

// ---- the weight block ---------------------------------------------------------------------------------

dato_status dato_params_set_gemm_dtype(dato_param_table t, dato_dtype dt, dato_error* err) {
    DATO_TRY(dato_weight_dtype_check(t.be, dt, t.what, err));
    if (*t.weights)
        return dato_fail(err, DATO_ERR_INVALID, "%s: the weight dtype must be set before the weights are loaded",
                         t.what);
    for (int i = 0; i < t.n; i++)
        if (t.params[i].gemm) t.params[i].slot->dtype = dt;
    *t.weight_dtype = dt;
    return DATO_OK;
}

dato_status dato_params_alloc(dato_param_table t, dato_error* err) {
    if (*t.weights) return DATO_OK;
    size_t bytes = 0;
    for (int i = 0; i < t.n; i++) {
        const dato_tensor* s = t.params[i].slot;
        bytes += dato_arena_bytes(s->dtype, (size_t)dato_tensor_numel(s));
    }
    *t.weights = t.be->ops->alloc(t.be, bytes);
    if (!*t.weights) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate %zu bytes of weights", t.what, bytes);
    dato_arena a = dato_arena_over(*t.weights, bytes);
    for (int i = 0; i < t.n; i++) {
        dato_tensor* s = t.params[i].slot;
        s->data = dato_arena_alloc(&a, dato_tensor_nbytes(s));
    }
    return DATO_OK;
}

// Host staging: n_f32 floats and n_half halves (either may be 0: no buffer).
static dato_status alloc_staging(const char* what, size_t n_f32, size_t n_half, float** f32, uint16_t** half,
                                 dato_error* err) {
    *f32 = n_f32 ? malloc(n_f32 * sizeof **f32) : NULL;
    *half = n_half ? malloc(n_half * sizeof **half) : NULL;
    if ((n_f32 && !*f32) || (n_half && !*half)) {
        free(*f32);
        free(*half);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate a staging buffer", what);
    }
    return DATO_OK;
}

// A norm's gamma: a 1-D "...norm....weight".
static int is_norm_gamma(const dato_param* p) {
    const char* n = p->name[0];
    size_t len = strlen(n);
    return p->ndim == 1 && len > 7 && strcmp(n + len - 7, ".weight") == 0 && strstr(n, "norm") != NULL;
}

dato_status dato_params_init_random(dato_param_table t, unsigned long long seed, float scale, dato_error* err) {
    DATO_TRY(dato_params_alloc(t, err));
    size_t max_n = 0, max_half = 0;
    for (int i = 0; i < t.n; i++) {
        const dato_tensor* s = t.params[i].slot;
        size_t n = (size_t)dato_tensor_numel(s);
        max_n = n > max_n ? n : max_n;
        if (s->dtype != DATO_F32) max_half = n > max_half ? n : max_half;
    }
    float* host;    // (max numel) f32 values
    uint16_t* half; // (max numel) their half copy, or NULL
    DATO_TRY(alloc_staging(t.what, max_n, max_half, &host, &half, err));
    dato_rng rng;
    for (int i = 0; i < t.n; i++) {
        const dato_param* p = &t.params[i];
        size_t n = (size_t)dato_tensor_numel(p->slot);
        dato_rng_seed_stream(&rng, seed, (uint64_t)i); // each tensor its own stream: order-independent
        float base = is_norm_gamma(p) ? 1.0f : 0.0f;
        for (size_t k = 0; k < n; k++) host[k] = base + scale * (float)dato_rng_normal(&rng);
        dato_weight_upload(t.be, p->slot->data, host, n, p->slot->dtype, half);
    }
    free(host);
    free(half);
    return DATO_OK;
}

// ---- loading ----------------------------------------------------------------------------------------

int dato_st_dim(const dato_st_tensor* t, int d) {
    return t->shape[d] > INT_MAX ? INT_MAX : (int)t->shape[d];
}

const char* dato_shape_text(int ndim, const int64_t* shape, char* buf, size_t n) {
    size_t off = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < ndim && off < n; d++)
        off += (size_t)snprintf(buf + off, n - off, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (off < n) snprintf(buf + off, n - off, ")");
    return buf;
}

const dato_st_tensor* dato_source_findf(const dato_tensor_source* src, const char* fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return len >= 0 && (size_t)len < sizeof name ? src->find(src->ctx, name) : NULL;
}

// The file's tensor for p, its full name (prefix, the layout's name less strip) in buf; a
// layout-0 file may hold it under its legacy name.
static const dato_st_tensor* find_row(const dato_param* p, const dato_param_names* nm, char* buf, size_t n) {
    const char* name = p->name[nm->layout];
    size_t strip = nm->strip ? strlen(nm->strip) : 0;
    if (strip && strncmp(name, nm->strip, strip) == 0) name += strip;
    snprintf(buf, n, "%s%s", nm->prefix, name);
    const dato_st_tensor* t = nm->src->find(nm->src->ctx, buf);
    if (!t && nm->layout == 0 && p->legacy[0]) {
        char alt[256];
        snprintf(alt, sizeof alt, "%s%s", nm->prefix, p->legacy);
        t = nm->src->find(nm->src->ctx, alt);
    }
    return t;
}

// In layout 1 a row may be a row block of a fused tensor or stored transposed.
static int is_fused(const dato_param* p, int layout) { return layout == 1 && p->oc_slice >= 0; }
static int is_transposed(const dato_param* p, int layout) { return layout == 1 && p->oc_transposed; }

// p's shape as the layout stores it: 3 row blocks tall when fused, (cols, rows) when transposed.
static void file_shape(const dato_param* p, int layout, int64_t* shape) {
    memcpy(shape, p->shape, sizeof p->shape);
    if (is_fused(p, layout)) shape[0] *= 3;
    if (is_transposed(p, layout)) shape[0] = p->shape[1], shape[1] = p->shape[0];
}

static int same_shape(const dato_st_tensor* t, int ndim, const int64_t* shape) {
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    return same;
}

dato_status dato_params_check(const dato_param* params, int n_params, const dato_param_names* nm,
                              dato_error* err) {
    const dato_tensor_source* src = nm->src;
    char name[256], s1[64], s2[64];
    for (int i = 0; i < n_params; i++) {
        const dato_param* p = &params[i];
        const dato_st_tensor* f = find_row(p, nm, name, sizeof name);
        if (!f) return dato_fail(err, DATO_ERR_NOT_FOUND, "%s: tensor '%s' is missing", src->label, name);
        int64_t want[4];
        file_shape(p, nm->layout, want);
        int64_t conv[4] = {p->shape[0], p->shape[1], 1, 1}; // a matrix stored as a 1x1 conv
        if (!same_shape(f, p->ndim, want) && !(p->matrix && same_shape(f, 4, conv)))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s' has shape %s, the config expects %s", src->label,
                             name, dato_shape_text(f->ndim, f->shape, s1, sizeof s1),
                             dato_shape_text(p->ndim, want, s2, sizeof s2));
    }
    if (!nm->strict) return DATO_OK;
    // Every tensor under prefix + strict must be one the model uses: an extra one means a config mismatch.
    char under[256];
    snprintf(under, sizeof under, "%s%s", nm->prefix, nm->strict);
    size_t plen = strlen(nm->prefix), ulen = strlen(under);
    int count = src->count(src->ctx);
    for (int i = 0; i < count; i++) {
        const dato_st_tensor* f = src->at(src->ctx, i);
        if (strncmp(f->name, under, ulen) != 0) continue;
        if (!dato_param_find(params, n_params, nm->layout, f->name + plen))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s' is not part of the configured %s", src->label,
                             f->name, nm->model);
    }
    return DATO_OK;
}

// Weights must be finite: one NaN or infinity would make every image black, with no error.
// x: (n) the file's tensor `name` in f32.
static dato_status check_finite(const char* label, const char* name, const float* x, size_t n, dato_error* err) {
    size_t i = dato_first_nonfinite(x, n);
    if (i == n) return DATO_OK;
    return dato_fail(err, DATO_ERR_FORMAT, "%s: tensor '%s': value %zu of %zu is %g (weights must be finite)", label,
                     name, i, n, (double)x[i]);
}

// A row the CPU backend converts straight into its f32 slot: no staging, no upload.
static int in_place(const dato_backend* be, const dato_param* p, int layout) {
    return be->device == DATO_DEV_CPU && p->slot->dtype == DATO_F32 && !is_fused(p, layout) &&
           !is_transposed(p, layout);
}

dato_status dato_params_load(dato_param_table t, const dato_param_names* nm, dato_error* err) {
    DATO_TRY(dato_params_check(t.params, t.n, nm, err));
    DATO_TRY(dato_params_alloc(t, err));
    int layout = nm->layout;
    char name[256];
    size_t max_file = 0, max_turn = 0, max_half = 0;
    for (int i = 0; i < t.n; i++) {
        const dato_param* p = &t.params[i];
        size_t n = (size_t)dato_tensor_numel(p->slot), fn = (size_t)find_row(p, nm, name, sizeof name)->numel;
        if (!in_place(t.be, p, layout)) max_file = fn > max_file ? fn : max_file;
        if (is_transposed(p, layout)) max_turn = n > max_turn ? n : max_turn;
        if (p->slot->dtype != DATO_F32) max_half = n > max_half ? n : max_half;
    }
    float* file;    // (max file numel) a tensor as the file holds it, in f32
    uint16_t* half; // (max numel) a row in its half dtype
    DATO_TRY(alloc_staging(t.what, max_file + max_turn, max_half, &file, &half, err));
    float* turn = max_turn ? file + max_file : NULL; // (max numel) a transposed row
    dato_status st = DATO_OK;
    for (int i = 0; i < t.n && !st; i++) {
        const dato_param* p = &t.params[i];
        const dato_st_tensor* f = find_row(p, nm, name, sizeof name);
        size_t n = (size_t)dato_tensor_numel(p->slot);
        if (in_place(t.be, p, layout)) {
            st = dato_st_tensor_to_f32(f, p->slot->data, n, err);
            if (!st) st = check_finite(nm->src->label, name, p->slot->data, n, err);
            if (nm->src->release) nm->src->release(nm->src->ctx, f); // its file pages beside its f32 copy: 1.5x the weights
            continue;
        }
        if ((st = dato_st_tensor_to_f32(f, file, (size_t)f->numel, err))) break;
        if (nm->src->release) nm->src->release(nm->src->ctx, f);
        if ((st = check_finite(nm->src->label, name, file, (size_t)f->numel, err))) break;
        const float* mine = file; // (n) the row's values
        if (is_fused(p, layout)) {
            mine = file + (size_t)p->oc_slice * n; // rows [s R, (s + 1) R) of the (3R, C) file tensor
        } else if (is_transposed(p, layout)) {
            int64_t rows = p->shape[0], cols = p->shape[1]; // the file's is (cols, rows)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = 0; c < cols; c++) turn[r * cols + c] = file[c * rows + r];
            mine = turn;
        }
        dato_weight_upload(t.be, p->slot->data, mine, n, p->slot->dtype, half);
    }
    free(file);
    free(half);
    return st;
}
