// The argument rule of every op, shared by the backends (op_check.h). Each op's check runs the
// per-tensor checks first (NULL, dims, dtype, device, data), then the shapes against each other,
// in the order the op's documentation in backend.h states them.
#include "op_check.h"

#include <limits.h>

// What the messages call a device's backend and the device itself.
static const char* const backend_name[] = {[DATO_DEV_CPU] = "CPU", [DATO_DEV_CUDA] = "CUDA"};
static const char* const device_name[] = {[DATO_DEV_CPU] = "CPU", [DATO_DEV_CUDA] = "CUDA device"};

// ---- one tensor --------------------------------------------------------------------------------

dato_status dato_op_check_tensor(const char* op, const char* arg, const dato_tensor* t, int ndim, dato_device dev,
                                 int half_ok, dato_error* err) {
    if (!t) return dato_fail(err, DATO_ERR_INVALID, "%s: %s is NULL", op, arg);
    if (t->ndim < 1 || t->ndim > DATO_MAX_DIMS)
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s has %d dims (1..%d allowed)", op, arg, t->ndim, DATO_MAX_DIMS);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0)
            return dato_fail(err, DATO_ERR_INVALID, "%s: %s has a negative dim %lld", op, arg, (long long)t->shape[i]);
    if (ndim > 0 && t->ndim != ndim) {
        char s[96];
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s %s has %d dims, expected %d", op, arg,
                         dato_shape_str(t, s, sizeof s), t->ndim, ndim);
    }
    int half = t->dtype == DATO_F16 || t->dtype == DATO_BF16;
    if (t->dtype != DATO_F32 && !(half_ok && half))
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %s is %s; the %s backend takes %s here", op, arg,
                         dato_dtype_name(t->dtype), backend_name[dev], half_ok ? "F32, F16 or BF16" : "F32 only");
    if (t->device != dev) return dato_fail(err, DATO_ERR_INVALID, "%s: %s is not on the %s", op, arg, device_name[dev]);
    if (!t->data && dato_tensor_numel(t) > 0) return dato_fail(err, DATO_ERR_INVALID, "%s: %s has no data", op, arg);
    return DATO_OK;
}

dato_status dato_op_check_same_shape(const char* op, const char* a_name, const dato_tensor* a, const char* b_name,
                                     const dato_tensor* b, dato_error* err) {
    if (dato_tensor_same_shape(a, b)) return DATO_OK;
    char sa[96], sb[96];
    return dato_fail(err, DATO_ERR_INVALID, "%s: %s %s does not match %s %s", op, a_name,
                     dato_shape_str(a, sa, sizeof sa), b_name, dato_shape_str(b, sb, sizeof sb));
}

dato_status dato_op_check_rows(const char* op, const char* arg, const dato_tensor* t, dato_dtype dt, dato_device dev,
                               int64_t d0, int64_t d1, dato_error* err) {
    if (!t) return dato_fail(err, DATO_ERR_INVALID, "%s: %s is NULL", op, arg);
    if (t->dtype != dt)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %s is %s, expected %s", op, arg, dato_dtype_name(t->dtype),
                         dato_dtype_name(dt));
    if (t->device != dev) return dato_fail(err, DATO_ERR_INVALID, "%s: %s is not on the %s", op, arg, device_name[dev]);
    if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) {
        char s[96];
        return dato_fail(err, DATO_ERR_INVALID, "%s: %s is %s, expected (%lld, %lld)", op, arg,
                         dato_shape_str(t, s, sizeof s), (long long)d0, (long long)d1);
    }
    if (!t->data && d0 * d1 > 0) return dato_fail(err, DATO_ERR_INVALID, "%s: %s has no data", op, arg);
    return DATO_OK;
}

// out and x of op: F32 tensors on dev with out_ndim and x_ndim dims (0: any).
static dato_status check_out_x(const char* op, const dato_tensor* out, int out_ndim, const dato_tensor* x, int x_ndim,
                               dato_device dev, dato_error* err) {
    DATO_TRY(dato_op_check_tensor(op, "out", out, out_ndim, dev, 0, err));
    return dato_op_check_tensor(op, "x", x, x_ndim, dev, 0, err);
}

// ---- dense layers ------------------------------------------------------------------------------

dato_status dato_op_check_linear(const dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                 const dato_tensor* b, dato_device dev, int half_weights, dato_error* err) {
    DATO_TRY(check_out_x("linear", out, 0, x, 0, dev, err));
    DATO_TRY(dato_op_check_tensor("linear", "weight", w, 0, dev, half_weights, err));
    if (b) DATO_TRY(dato_op_check_tensor("linear", "bias", b, 1, dev, 0, err));
    char sw[96], sx[96], so[96];
    // a 1x1 conv weight (N, K, 1, 1) is the same matrix (LDM's VAE attention stores them so)
    int is_matrix = w->ndim == 2 || (w->ndim == 4 && w->shape[2] == 1 && w->shape[3] == 1);
    if (!is_matrix)
        return dato_fail(err, DATO_ERR_INVALID, "linear: weight %s is not (N, K) or (N, K, 1, 1)",
                         dato_shape_str(w, sw, sizeof sw));
    int64_t n = w->shape[0], kdim = w->shape[1];
    if (n < 1 || kdim < 1)
        return dato_fail(err, DATO_ERR_INVALID, "linear: weight %s is empty", dato_shape_str(w, sw, sizeof sw));
    if (x->shape[x->ndim - 1] != kdim)
        return dato_fail(err, DATO_ERR_INVALID, "linear: weight %s does not match input features %lld of x %s",
                         dato_shape_str(w, sw, sizeof sw), (long long)x->shape[x->ndim - 1],
                         dato_shape_str(x, sx, sizeof sx));
    int64_t m = dato_tensor_numel(x) / kdim;
    if (out->shape[out->ndim - 1] != n || dato_tensor_numel(out) != m * n)
        return dato_fail(err, DATO_ERR_INVALID, "linear: out %s, expected %lld rows of %lld for x %s, weight %s",
                         dato_shape_str(out, so, sizeof so), (long long)m, (long long)n,
                         dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw));
    if (b && b->shape[0] != n)
        return dato_fail(err, DATO_ERR_INVALID, "linear: bias (%lld) does not match output features %lld",
                         (long long)b->shape[0], (long long)n);
    if (m > INT_MAX || n > INT_MAX || kdim > INT_MAX) // BLAS and cuBLAS take int sizes
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "linear: x %s, weight %s exceed the int sizes of the %s backend's GEMM",
                         dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw), backend_name[dev]);
    return DATO_OK;
}

dato_status dato_op_check_conv2d(const dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                 const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                                 dato_device dev, int half_weights, dato_error* err) {
    DATO_TRY(check_out_x("conv2d", out, 4, x, 4, dev, err));
    DATO_TRY(dato_op_check_tensor("conv2d", "weight", w, 4, dev, half_weights, err));
    if (b) DATO_TRY(dato_op_check_tensor("conv2d", "bias", b, 1, dev, 0, err));
    char sw[96], sx[96], so[96];
    int64_t batch = x->shape[0], ci = x->shape[1], h = x->shape[2], wd = x->shape[3];
    int64_t co = w->shape[0], kh = w->shape[2], kw = w->shape[3];
    if (w->shape[1] != ci)
        return dato_fail(err, DATO_ERR_INVALID, "conv2d: weight %s does not match input channels %lld",
                         dato_shape_str(w, sw, sizeof sw), (long long)ci);
    if (kh < 1 || kw < 1 || co < 1)
        return dato_fail(err, DATO_ERR_INVALID, "conv2d: weight %s is not (Co, Ci, kh, kw)",
                         dato_shape_str(w, sw, sizeof sw));
    if (stride_h < 1 || stride_w < 1 || pad_h < 0 || pad_w < 0 || pad_h >= kh || pad_w >= kw)
        return dato_fail(err, DATO_ERR_INVALID,
                         "conv2d: stride (%d, %d), pad (%d, %d) for kernel %lldx%lld (need stride >= 1, 0 <= pad < k)",
                         stride_h, stride_w, pad_h, pad_w, (long long)kh, (long long)kw);
    if (ci < 1 || h + 2 * pad_h < kh || wd + 2 * pad_w < kw)
        return dato_fail(err, DATO_ERR_INVALID, "conv2d: input %s is empty or smaller than the %lldx%lld kernel",
                         dato_shape_str(x, sx, sizeof sx), (long long)kh, (long long)kw);
    int64_t ho = (h + 2 * pad_h - kh) / stride_h + 1, wo = (wd + 2 * pad_w - kw) / stride_w + 1;
    if (out->shape[0] != batch || out->shape[1] != co || out->shape[2] != ho || out->shape[3] != wo)
        return dato_fail(err, DATO_ERR_INVALID,
                         "conv2d: out %s, expected (%lld, %lld, %lld, %lld) for input %s, weight %s",
                         dato_shape_str(out, so, sizeof so), (long long)batch, (long long)co, (long long)ho,
                         (long long)wo, dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw));
    if (b && b->shape[0] != co)
        return dato_fail(err, DATO_ERR_INVALID, "conv2d: bias (%lld) does not match output channels %lld",
                         (long long)b->shape[0], (long long)co);
    if (co > INT_MAX || ci * kh * kw > INT_MAX || ho * wo > INT_MAX) // BLAS and cuBLAS take int sizes
        return dato_fail(err, DATO_ERR_UNSUPPORTED,
                         "conv2d: input %s, weight %s exceed the int sizes of the %s backend's GEMM",
                         dato_shape_str(x, sx, sizeof sx), dato_shape_str(w, sw, sizeof sw), backend_name[dev]);
    return DATO_OK;
}

// ---- normalization -----------------------------------------------------------------------------

// out and x of a norm alike, gamma and beta 1-D: the tensors before their sizes are compared.
static dato_status check_norm_tensors(const char* op, const dato_tensor* out, const dato_tensor* x,
                                      const dato_tensor* gamma, const dato_tensor* beta, dato_device dev,
                                      dato_error* err) {
    DATO_TRY(check_out_x(op, out, 0, x, 0, dev, err));
    DATO_TRY(dato_op_check_tensor(op, "gamma", gamma, 1, dev, 0, err));
    DATO_TRY(dato_op_check_tensor(op, "beta", beta, 1, dev, 0, err));
    return dato_op_check_same_shape(op, "out", out, "x", x, err);
}

dato_status dato_op_check_group_norm(const dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                     const dato_tensor* beta, int groups, dato_device dev, dato_error* err) {
    DATO_TRY(check_norm_tensors("group_norm", out, x, gamma, beta, dev, err));
    char sx[96];
    if (x->ndim < 2)
        return dato_fail(err, DATO_ERR_INVALID, "group_norm: x %s is not (B, C, ...)",
                         dato_shape_str(x, sx, sizeof sx));
    int64_t c = x->shape[1];
    if (groups < 1 || c % groups != 0)
        return dato_fail(err, DATO_ERR_INVALID, "group_norm: %d groups do not divide the %lld channels of x %s", groups,
                         (long long)c, dato_shape_str(x, sx, sizeof sx));
    if (gamma->shape[0] != c || beta->shape[0] != c)
        return dato_fail(err, DATO_ERR_INVALID,
                         "group_norm: gamma (%lld) or beta (%lld) does not match the %lld channels",
                         (long long)gamma->shape[0], (long long)beta->shape[0], (long long)c);
    return DATO_OK;
}

dato_status dato_op_check_layer_norm(const dato_tensor* out, const dato_tensor* x, const dato_tensor* gamma,
                                     const dato_tensor* beta, dato_device dev, dato_error* err) {
    DATO_TRY(check_norm_tensors("layer_norm", out, x, gamma, beta, dev, err));
    int64_t c = x->shape[x->ndim - 1];
    if (gamma->shape[0] != c || beta->shape[0] != c)
        return dato_fail(err, DATO_ERR_INVALID,
                         "layer_norm: gamma (%lld) or beta (%lld) does not match the last dim %lld",
                         (long long)gamma->shape[0], (long long)beta->shape[0], (long long)c);
    return DATO_OK;
}

// ---- activations and elementwise ---------------------------------------------------------------

dato_status dato_op_check_unary(const char* op, const dato_tensor* out, const dato_tensor* x, dato_device dev,
                                dato_error* err) {
    DATO_TRY(check_out_x(op, out, 0, x, 0, dev, err));
    return dato_op_check_same_shape(op, "out", out, "x", x, err);
}

dato_status dato_op_check_geglu_linear(const dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                       const dato_tensor* b, dato_device dev, dato_error* err) {
    DATO_TRY(dato_op_check_tensor("geglu_linear", "x", x, 0, dev, 0, err));
    if (x->shape[x->ndim - 1] % 2 != 0) {
        char sx[96];
        return dato_fail(err, DATO_ERR_INVALID, "geglu_linear: x %s has an odd last dim, expected [hidden, gate]",
                         dato_shape_str(x, sx, sizeof sx));
    }
    dato_tensor gated = *x; // the shape GEGLU's output would have
    gated.shape[x->ndim - 1] /= 2;
    return dato_op_check_linear(out, &gated, w, b, dev, 0, err);
}

dato_status dato_op_check_geglu(const dato_tensor* out, const dato_tensor* x, dato_device dev, dato_error* err) {
    DATO_TRY(check_out_x("geglu", out, 0, x, 0, dev, err));
    int64_t two_f = x->shape[x->ndim - 1];
    int same_lead = out->ndim == x->ndim;
    for (int i = 0; same_lead && i < x->ndim - 1; i++) same_lead = out->shape[i] == x->shape[i];
    if (two_f % 2 != 0 || !same_lead || out->shape[out->ndim - 1] != two_f / 2) {
        char so[96], sx[96];
        return dato_fail(err, DATO_ERR_INVALID, "geglu: out %s is not x %s with its even last dim halved",
                         dato_shape_str(out, so, sizeof so), dato_shape_str(x, sx, sizeof sx));
    }
    return DATO_OK;
}

dato_status dato_op_check_lincomb(const char* op, const dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                  dato_device dev, dato_error* err) {
    DATO_TRY(dato_op_check_tensor(op, "out", out, 0, dev, 0, err));
    DATO_TRY(dato_op_check_tensor(op, "a", a, 0, dev, 0, err));
    DATO_TRY(dato_op_check_tensor(op, "b", b, 0, dev, 0, err));
    DATO_TRY(dato_op_check_same_shape(op, "a", a, "b", b, err));
    return dato_op_check_same_shape(op, "out", out, "a", a, err);
}

dato_status dato_op_check_add_channel_bias(const dato_tensor* x, const dato_tensor* v, dato_device dev,
                                           dato_error* err) {
    DATO_TRY(dato_op_check_tensor("add_channel_bias", "x", x, 4, dev, 0, err));
    DATO_TRY(dato_op_check_tensor("add_channel_bias", "v", v, 2, dev, 0, err));
    if (v->shape[0] != x->shape[0] || v->shape[1] != x->shape[1]) {
        char sx[96], sv[96];
        return dato_fail(err, DATO_ERR_INVALID, "add_channel_bias: v %s is not (B, C) for x %s",
                         dato_shape_str(v, sv, sizeof sv), dato_shape_str(x, sx, sizeof sx));
    }
    return DATO_OK;
}

dato_status dato_op_check_timestep_embedding(const dato_tensor* out, const dato_tensor* t, float freq_shift,
                                             float max_period, dato_device dev, dato_error* err) {
    DATO_TRY(dato_op_check_tensor("timestep_embedding", "out", out, 2, dev, 0, err));
    DATO_TRY(dato_op_check_tensor("timestep_embedding", "t", t, 0, dev, 0, err));
    int64_t batch = out->shape[0], dim = out->shape[1], half = dim / 2;
    if (dim % 2 != 0 || dim == 0)
        return dato_fail(err, DATO_ERR_INVALID, "timestep_embedding: dim %lld is not even and positive",
                         (long long)dim);
    if (dato_tensor_numel(t) != batch)
        return dato_fail(err, DATO_ERR_INVALID, "timestep_embedding: t holds %lld timesteps for %lld rows of out",
                         (long long)dato_tensor_numel(t), (long long)batch);
    if (!(max_period > 0.0f) || !((double)half - freq_shift != 0.0))
        return dato_fail(err, DATO_ERR_INVALID, "timestep_embedding: max_period %g, freq_shift %g for half dim %lld",
                         (double)max_period, (double)freq_shift, (long long)half);
    return DATO_OK;
}

// ---- attention ---------------------------------------------------------------------------------

dato_status dato_op_check_attention(const dato_tensor* out, const dato_tensor* q, const dato_tensor* k,
                                    const dato_tensor* v, int heads, int causal, dato_device dev, dato_error* err) {
    DATO_TRY(dato_op_check_tensor("attention", "out", out, 3, dev, 0, err));
    DATO_TRY(dato_op_check_tensor("attention", "q", q, 3, dev, 0, err));
    DATO_TRY(dato_op_check_tensor("attention", "k", k, 3, dev, 0, err));
    DATO_TRY(dato_op_check_tensor("attention", "v", v, 3, dev, 0, err));
    DATO_TRY(dato_op_check_same_shape("attention", "v", v, "k", k, err));
    DATO_TRY(dato_op_check_same_shape("attention", "out", out, "q", q, err));
    char sq[96], sk[96];
    int64_t batch = q->shape[0], nq = q->shape[1], nk = k->shape[1], channels = q->shape[2];
    if (k->shape[0] != batch || k->shape[2] != channels)
        return dato_fail(err, DATO_ERR_INVALID, "attention: k %s does not match q %s in batch or channels",
                         dato_shape_str(k, sk, sizeof sk), dato_shape_str(q, sq, sizeof sq));
    if (heads < 1 || channels % heads != 0 || channels == 0)
        return dato_fail(err, DATO_ERR_INVALID, "attention: %d heads do not divide the %lld channels of q %s", heads,
                         (long long)channels, dato_shape_str(q, sq, sizeof sq));
    if (nk == 0)
        return dato_fail(err, DATO_ERR_INVALID, "attention: k %s has no tokens", dato_shape_str(k, sk, sizeof sk));
    if (causal && nk != nq)
        return dato_fail(err, DATO_ERR_INVALID, "attention: causal needs as many keys as queries, k %s, q %s",
                         dato_shape_str(k, sk, sizeof sk), dato_shape_str(q, sq, sizeof sq));
    return DATO_OK;
}

// ---- layout and pooling ------------------------------------------------------------------------

dato_status dato_op_check_upsample_nearest2x(const dato_tensor* out, const dato_tensor* x, dato_device dev,
                                             dato_error* err) {
    DATO_TRY(check_out_x("upsample_nearest2x", out, 4, x, 4, dev, err));
    int64_t h = x->shape[2], w = x->shape[3];
    if (out->shape[0] != x->shape[0] || out->shape[1] != x->shape[1] || out->shape[2] != 2 * h ||
        out->shape[3] != 2 * w) {
        char so[96], sx[96];
        return dato_fail(err, DATO_ERR_INVALID, "upsample_nearest2x: out %s is not x %s with H and W doubled",
                         dato_shape_str(out, so, sizeof so), dato_shape_str(x, sx, sizeof sx));
    }
    return DATO_OK;
}

dato_status dato_op_check_pool2d(const char* op, const dato_tensor* out, const dato_tensor* x, int k, int stride,
                                 int pad, dato_device dev, dato_error* err) {
    DATO_TRY(check_out_x(op, out, 4, x, 4, dev, err));
    if (k < 1 || stride < 1 || pad < 0 || pad >= k)
        return dato_fail(err, DATO_ERR_INVALID, "%s: kernel %d, stride %d, pad %d (need k, stride >= 1, 0 <= pad < k)",
                         op, k, stride, pad);
    int64_t h = x->shape[2], w = x->shape[3];
    char sx[96], so[96];
    if (h + 2 * pad < k || w + 2 * pad < k)
        return dato_fail(err, DATO_ERR_INVALID, "%s: input %s is smaller than the %dx%d window", op,
                         dato_shape_str(x, sx, sizeof sx), k, k);
    int64_t ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
    if (out->shape[0] != x->shape[0] || out->shape[1] != x->shape[1] || out->shape[2] != ho || out->shape[3] != wo)
        return dato_fail(err, DATO_ERR_INVALID, "%s: out %s, expected (%lld, %lld, %lld, %lld) for input %s", op,
                         dato_shape_str(out, so, sizeof so), (long long)x->shape[0], (long long)x->shape[1],
                         (long long)ho, (long long)wo, dato_shape_str(x, sx, sizeof sx));
    return DATO_OK;
}

dato_status dato_op_check_mean_hw(const dato_tensor* out, const dato_tensor* x, dato_device dev, dato_error* err) {
    DATO_TRY(check_out_x("mean_hw", out, 2, x, 4, dev, err));
    char sx[96], so[96];
    if (out->shape[0] != x->shape[0] || out->shape[1] != x->shape[1])
        return dato_fail(err, DATO_ERR_INVALID, "mean_hw: out %s is not (B, C) of x %s",
                         dato_shape_str(out, so, sizeof so), dato_shape_str(x, sx, sizeof sx));
    if (x->shape[2] * x->shape[3] == 0)
        return dato_fail(err, DATO_ERR_INVALID, "mean_hw: x %s has no pixels", dato_shape_str(x, sx, sizeof sx));
    return DATO_OK;
}

dato_status dato_op_check_concat_channels(const dato_tensor* out, const dato_tensor* a, const dato_tensor* b,
                                          dato_device dev, dato_error* err) {
    DATO_TRY(dato_op_check_tensor("concat_channels", "out", out, 4, dev, 0, err));
    DATO_TRY(dato_op_check_tensor("concat_channels", "a", a, 4, dev, 0, err));
    DATO_TRY(dato_op_check_tensor("concat_channels", "b", b, 4, dev, 0, err));
    int64_t batch = a->shape[0], h = a->shape[2], w = a->shape[3];
    if (b->shape[0] != batch || b->shape[2] != h || b->shape[3] != w || out->shape[0] != batch ||
        out->shape[1] != a->shape[1] + b->shape[1] || out->shape[2] != h || out->shape[3] != w) {
        char so[96], sa[96], sb[96];
        return dato_fail(err, DATO_ERR_INVALID, "concat_channels: out %s is not cat(a %s, b %s, dim=1)",
                         dato_shape_str(out, so, sizeof so), dato_shape_str(a, sa, sizeof sa),
                         dato_shape_str(b, sb, sizeof sb));
    }
    return DATO_OK;
}

// nchw (B, C, H, W) against tokens (B, H*W, C); op and the names say which is out.
static dato_status check_tokens(const char* op, const char* nchw_name, const dato_tensor* nchw,
                                const char* tokens_name, const dato_tensor* tokens, dato_error* err) {
    int64_t batch = nchw->shape[0], c = nchw->shape[1], hw = nchw->shape[2] * nchw->shape[3];
    if (tokens->shape[0] == batch && tokens->shape[1] == hw && tokens->shape[2] == c) return DATO_OK;
    char sn[96], st[96];
    return dato_fail(err, DATO_ERR_INVALID, "%s: %s %s is not (B, H*W, C) for %s %s", op, tokens_name,
                     dato_shape_str(tokens, st, sizeof st), nchw_name, dato_shape_str(nchw, sn, sizeof sn));
}

dato_status dato_op_check_nchw_to_tokens(const dato_tensor* out, const dato_tensor* x, dato_device dev,
                                         dato_error* err) {
    DATO_TRY(check_out_x("nchw_to_tokens", out, 3, x, 4, dev, err));
    return check_tokens("nchw_to_tokens", "x", x, "out", out, err);
}

dato_status dato_op_check_tokens_to_nchw(const dato_tensor* out, const dato_tensor* x, dato_device dev,
                                         dato_error* err) {
    DATO_TRY(check_out_x("tokens_to_nchw", out, 4, x, 3, dev, err));
    return check_tokens("tokens_to_nchw", "out", out, "x", x, err);
}

// ---- DaTo token pruning --------------------------------------------------------------------------

// kept (B, Nk, C) named arg against full (B, N, C) named full_name: same B and C, Nk <= N.
static dato_status check_kept(const char* op, const char* arg, const dato_tensor* kept, const char* full_name,
                              const dato_tensor* full, dato_device dev, dato_error* err) {
    DATO_TRY(dato_op_check_tensor(op, arg, kept, 3, dev, 0, err));
    if (kept->shape[0] == full->shape[0] && kept->shape[2] == full->shape[2] && kept->shape[1] <= full->shape[1])
        return DATO_OK;
    char sk[96], sf[96];
    return dato_fail(err, DATO_ERR_INVALID, "%s: %s %s does not fit %s %s", op, arg,
                     dato_shape_str(kept, sk, sizeof sk), full_name, dato_shape_str(full, sf, sizeof sf));
}

dato_status dato_op_check_dato_similarity(const dato_tensor* sim, const dato_tensor* assign,
                                          const dato_tensor* is_base, const dato_tensor* x, const dato_tensor* base,
                                          const dato_tensor* work, dato_device dev, dato_error* err) {
    const char* op = "dato_similarity";
    DATO_TRY(dato_op_check_tensor(op, "x", x, 3, dev, 0, err));
    int64_t B = x->shape[0], N = x->shape[1], C = x->shape[2];
    if (!base || base->ndim != 2) return dato_fail(err, DATO_ERR_INVALID, "%s: base must be (B, P)", op);
    int64_t P = base->shape[1];
    if (P < 1 || P > N)
        return dato_fail(err, DATO_ERR_INVALID, "%s: P %lld outside [1, N = %lld]", op, (long long)P, (long long)N);
    DATO_TRY(dato_op_check_rows(op, "base", base, DATO_I32, dev, B, P, err));
    DATO_TRY(dato_op_check_rows(op, "sim", sim, DATO_F32, dev, B, N, err));
    DATO_TRY(dato_op_check_rows(op, "assign", assign, DATO_I32, dev, B, N, err));
    DATO_TRY(dato_op_check_rows(op, "is_base", is_base, DATO_U8, dev, B, N, err));
    DATO_TRY(dato_op_check_tensor(op, "work", work, 0, dev, 0, err));
    if (dato_tensor_numel(work) < B * N * C + P * (N + C))
        return dato_fail(err, DATO_ERR_INVALID, "%s: work holds %lld floats, needs B*N*C + P*(N + C) = %lld", op,
                         (long long)dato_tensor_numel(work), (long long)(B * N * C + P * (N + C)));
    return DATO_OK;
}

dato_status dato_op_check_dato_select_keep(const dato_tensor* keep, const dato_tensor* sim,
                                           const dato_tensor* is_base, int P, int n, dato_device dev,
                                           dato_error* err) {
    const char* op = "dato_select_keep";
    DATO_TRY(dato_op_check_tensor(op, "sim", sim, 2, dev, 0, err));
    int64_t B = sim->shape[0], N = sim->shape[1];
    DATO_TRY(dato_op_check_rows(op, "is_base", is_base, DATO_U8, dev, B, N, err));
    DATO_TRY(dato_op_check_rows(op, "keep", keep, DATO_U8, dev, B, N, err));
    if (P < 1 || P > N || n < 0 || n > N - P)
        return dato_fail(err, DATO_ERR_INVALID, "%s: P %d, n %d: need 1 <= P <= N = %lld and 0 <= n <= N - P", op, P,
                         n, (long long)N);
    return DATO_OK;
}

dato_status dato_op_check_dato_gather_kept(const dato_tensor* pos, const dato_tensor* x_kept, const dato_tensor* x,
                                           const dato_tensor* keep, dato_device dev, dato_error* err) {
    const char* op = "dato_gather_kept";
    DATO_TRY(dato_op_check_tensor(op, "x", x, 3, dev, 0, err));
    DATO_TRY(check_kept(op, "x_kept", x_kept, "x", x, dev, err));
    DATO_TRY(dato_op_check_rows(op, "keep", keep, DATO_U8, dev, x->shape[0], x->shape[1], err));
    return dato_op_check_rows(op, "pos", pos, DATO_I32, dev, x->shape[0], x->shape[1], err);
}

dato_status dato_op_check_dato_scatter_recover(const dato_tensor* out, const dato_tensor* o_kept,
                                               const dato_tensor* pos, const dato_tensor* assign, dato_device dev,
                                               dato_error* err) {
    const char* op = "dato_scatter_recover";
    DATO_TRY(dato_op_check_tensor(op, "out", out, 3, dev, 0, err));
    DATO_TRY(check_kept(op, "o_kept", o_kept, "out", out, dev, err));
    DATO_TRY(dato_op_check_rows(op, "pos", pos, DATO_I32, dev, out->shape[0], out->shape[1], err));
    return dato_op_check_rows(op, "assign", assign, DATO_I32, dev, out->shape[0], out->shape[1], err);
}
