// engine/backends/op_check.h, the argument rule the CPU and CUDA backends share, checked without a GPU:
// each case below runs once with CPU tensors and once with CUDA tensors and must give the same
// status and the same message on both (a message that names the op, the tensor and what was
// expected); then what differs by device: a tensor on the other device, and the half weights
// only the CUDA backend's linear and conv2d take. The checks read shapes, never data: the tensors
// point at one float.
#include <string.h>

#include "op_check.h"
#include "test_util.h"

static float buf[1];

static dato_tensor on(dato_tensor t, dato_device dev) {
    t.device = dev;
    return t;
}

static dato_tensor t2(dato_device dev, int64_t a, int64_t b) { return on(dato_tensor_f32_2d(buf, a, b), dev); }
static dato_tensor t3(dato_device dev, int64_t a, int64_t b, int64_t c) {
    return on(dato_tensor_f32_3d(buf, a, b, c), dev);
}
static dato_tensor t4(dato_device dev, int64_t a, int64_t b, int64_t c, int64_t d) {
    return on(dato_tensor_f32_4d(buf, a, b, c, d), dev);
}
static dato_tensor typed(dato_tensor t, dato_dtype dt) {
    t.dtype = dt;
    return t;
}

// ---- cases: one op's bad arguments on device dev ----------------------------------------------------

static dato_status conv_out(dato_device dev, dato_error* err) {
    dato_tensor out = t4(dev, 1, 4, 7, 8), x = t4(dev, 1, 16, 8, 8), w = t4(dev, 4, 16, 3, 3);
    return dato_op_check_conv2d(&out, &x, &w, NULL, 1, 1, 1, 1, dev, 0, err);
}
static dato_status conv_pad(dato_device dev, dato_error* err) {
    dato_tensor out = t4(dev, 1, 4, 8, 8), x = t4(dev, 1, 16, 8, 8), w = t4(dev, 4, 16, 1, 7);
    return dato_op_check_conv2d(&out, &x, &w, NULL, 1, 1, 3, 0, dev, 0, err);
}
static dato_status conv_bias(dato_device dev, dato_error* err) {
    dato_tensor out = t4(dev, 1, 4, 8, 8), x = t4(dev, 1, 16, 8, 8), w = t4(dev, 4, 16, 3, 3);
    dato_tensor b = on(dato_tensor_f32_1d(buf, 5), dev);
    return dato_op_check_conv2d(&out, &x, &w, &b, 1, 1, 1, 1, dev, 0, err);
}
static dato_status linear_k(dato_device dev, dato_error* err) {
    dato_tensor out = t2(dev, 3, 5), x = t2(dev, 3, 10), w = t2(dev, 5, 11);
    return dato_op_check_linear(&out, &x, &w, NULL, dev, 0, err);
}
static dato_status linear_out(dato_device dev, dato_error* err) {
    dato_tensor out = t3(dev, 2, 3, 5), x = t3(dev, 2, 4, 10), w = t4(dev, 5, 10, 1, 1); // a 1x1 conv weight
    return dato_op_check_linear(&out, &x, &w, NULL, dev, 0, err);
}
static dato_status group_norm_groups(dato_device dev, dato_error* err) {
    dato_tensor x = t4(dev, 1, 16, 8, 8), g = on(dato_tensor_f32_1d(buf, 16), dev);
    return dato_op_check_group_norm(&x, &x, &g, &g, 5, dev, err);
}
static dato_status layer_norm_gamma(dato_device dev, dato_error* err) {
    dato_tensor x = t2(dev, 3, 10), g = on(dato_tensor_f32_1d(buf, 9), dev);
    return dato_op_check_layer_norm(&x, &x, &g, &g, dev, err);
}
static dato_status attention_causal(dato_device dev, dato_error* err) {
    dato_tensor q = t3(dev, 2, 10, 12), k = t3(dev, 2, 7, 12);
    return dato_op_check_attention(&q, &q, &k, &k, 3, 1, dev, err);
}
static dato_status attention_v(dato_device dev, dato_error* err) {
    dato_tensor q = t3(dev, 2, 10, 12), k = t3(dev, 2, 7, 12), v = t3(dev, 2, 8, 12);
    return dato_op_check_attention(&q, &q, &k, &v, 3, 0, dev, err);
}
static dato_status silu_shape(dato_device dev, dato_error* err) {
    dato_tensor out = t2(dev, 4, 9), x = t2(dev, 4, 8);
    return dato_op_check_unary("silu", &out, &x, dev, err);
}
static dato_status geglu_odd(dato_device dev, dato_error* err) {
    dato_tensor out = t2(dev, 3, 4), x = t2(dev, 3, 9);
    return dato_op_check_geglu(&out, &x, dev, err);
}
static dato_status add_shape(dato_device dev, dato_error* err) {
    dato_tensor out = t2(dev, 3, 5), a = t2(dev, 3, 10);
    return dato_op_check_lincomb("add", &out, &a, &a, dev, err);
}
static dato_status channel_bias_v(dato_device dev, dato_error* err) {
    dato_tensor x = t4(dev, 2, 4, 3, 3), v = t2(dev, 2, 5);
    return dato_op_check_add_channel_bias(&x, &v, dev, err);
}
static dato_status tsemb_period(dato_device dev, dato_error* err) {
    dato_tensor out = t2(dev, 2, 6), t = on(dato_tensor_f32_1d(buf, 2), dev);
    return dato_op_check_timestep_embedding(&out, &t, 0.0f, 0.0f, dev, err);
}
static dato_status upsample_out(dato_device dev, dato_error* err) {
    dato_tensor out = t4(dev, 1, 2, 6, 5), x = t4(dev, 1, 2, 3, 3);
    return dato_op_check_upsample_nearest2x(&out, &x, dev, err);
}
static dato_status pool_out(dato_device dev, dato_error* err) {
    dato_tensor out = t4(dev, 1, 16, 4, 4), x = t4(dev, 1, 16, 8, 8);
    return dato_op_check_pool2d("max_pool2d", &out, &x, 3, 2, 0, dev, err);
}
static dato_status mean_hw_empty(dato_device dev, dato_error* err) {
    dato_tensor out = t2(dev, 1, 16), x = t4(dev, 1, 16, 0, 8);
    return dato_op_check_mean_hw(&out, &x, dev, err);
}
static dato_status concat_out(dato_device dev, dato_error* err) {
    dato_tensor out = t4(dev, 2, 6, 4, 4), a = t4(dev, 2, 3, 4, 4), b = t4(dev, 2, 2, 4, 4);
    return dato_op_check_concat_channels(&out, &a, &b, dev, err);
}
static dato_status tokens_x(dato_device dev, dato_error* err) {
    dato_tensor out = t4(dev, 2, 3, 4, 5), x = t3(dev, 2, 20, 4);
    return dato_op_check_tokens_to_nchw(&out, &x, dev, err);
}
static dato_status nchw_out_dims(dato_device dev, dato_error* err) {
    dato_tensor out = t4(dev, 2, 20, 3, 1), x = t4(dev, 2, 3, 4, 5);
    return dato_op_check_nchw_to_tokens(&out, &x, dev, err);
}
static dato_status similarity_work(dato_device dev, dato_error* err) {
    dato_tensor x = t3(dev, 2, 6, 4), work = t2(dev, 1, 50), sim = t2(dev, 2, 6);
    dato_tensor base = typed(t2(dev, 2, 3), DATO_I32), assign = typed(t2(dev, 2, 6), DATO_I32);
    dato_tensor is_base = typed(t2(dev, 2, 6), DATO_U8);
    return dato_op_check_dato_similarity(&sim, &assign, &is_base, &x, &base, &work, dev, err);
}
static dato_status select_keep_mask(dato_device dev, dato_error* err) {
    dato_tensor sim = t2(dev, 2, 6), is_base = typed(t2(dev, 2, 6), DATO_U8), keep = t2(dev, 2, 6);
    return dato_op_check_dato_select_keep(&keep, &sim, &is_base, 2, 1, dev, err);
}
static dato_status gather_kept_fit(dato_device dev, dato_error* err) {
    dato_tensor x = t3(dev, 2, 4, 4), x_kept = t3(dev, 2, 5, 4);
    dato_tensor keep = typed(t2(dev, 2, 4), DATO_U8), pos = typed(t2(dev, 2, 4), DATO_I32);
    return dato_op_check_dato_gather_kept(&pos, &x_kept, &x, &keep, dev, err);
}
static dato_status scatter_assign(dato_device dev, dato_error* err) {
    dato_tensor out = t3(dev, 2, 4, 4), o_kept = t3(dev, 2, 3, 4);
    dato_tensor pos = typed(t2(dev, 2, 4), DATO_I32), assign = typed(t2(dev, 2, 3), DATO_I32);
    return dato_op_check_dato_scatter_recover(&out, &o_kept, &pos, &assign, dev, err);
}

static const struct {
    dato_status (*run)(dato_device dev, dato_error* err);
    dato_status want;
    const char* msg; // the whole message, the same on both devices
} cases[] = {
    {conv_out, DATO_ERR_INVALID,
     "conv2d: out (1, 4, 7, 8), expected (1, 4, 8, 8) for input (1, 16, 8, 8), weight (4, 16, 3, 3)"},
    {conv_pad, DATO_ERR_INVALID,
     "conv2d: stride (1, 1), pad (3, 0) for kernel 1x7 (need stride >= 1, 0 <= pad < k)"},
    {conv_bias, DATO_ERR_INVALID, "conv2d: bias (5) does not match output channels 4"},
    {linear_k, DATO_ERR_INVALID, "linear: weight (5, 11) does not match input features 10 of x (3, 10)"},
    {linear_out, DATO_ERR_INVALID,
     "linear: out (2, 3, 5), expected 8 rows of 5 for x (2, 4, 10), weight (5, 10, 1, 1)"},
    {group_norm_groups, DATO_ERR_INVALID, "group_norm: 5 groups do not divide the 16 channels of x (1, 16, 8, 8)"},
    {layer_norm_gamma, DATO_ERR_INVALID, "layer_norm: gamma (9) or beta (9) does not match the last dim 10"},
    {attention_causal, DATO_ERR_INVALID,
     "attention: causal needs as many keys as queries, k (2, 7, 12), q (2, 10, 12)"},
    {attention_v, DATO_ERR_INVALID, "attention: v (2, 8, 12) does not match k (2, 7, 12)"},
    {silu_shape, DATO_ERR_INVALID, "silu: out (4, 9) does not match x (4, 8)"},
    {geglu_odd, DATO_ERR_INVALID, "geglu: out (3, 4) is not x (3, 9) with its even last dim halved"},
    {add_shape, DATO_ERR_INVALID, "add: out (3, 5) does not match a (3, 10)"},
    {channel_bias_v, DATO_ERR_INVALID, "add_channel_bias: v (2, 5) is not (B, C) for x (2, 4, 3, 3)"},
    {tsemb_period, DATO_ERR_INVALID, "timestep_embedding: max_period 0, freq_shift 0 for half dim 3"},
    {upsample_out, DATO_ERR_INVALID,
     "upsample_nearest2x: out (1, 2, 6, 5) is not x (1, 2, 3, 3) with H and W doubled"},
    {pool_out, DATO_ERR_INVALID, "max_pool2d: out (1, 16, 4, 4), expected (1, 16, 3, 3) for input (1, 16, 8, 8)"},
    {mean_hw_empty, DATO_ERR_INVALID, "mean_hw: x (1, 16, 0, 8) has no pixels"},
    {concat_out, DATO_ERR_INVALID,
     "concat_channels: out (2, 6, 4, 4) is not cat(a (2, 3, 4, 4), b (2, 2, 4, 4), dim=1)"},
    {tokens_x, DATO_ERR_INVALID, "tokens_to_nchw: x (2, 20, 4) is not (B, H*W, C) for out (2, 3, 4, 5)"},
    {nchw_out_dims, DATO_ERR_INVALID, "nchw_to_tokens: out (2, 20, 3, 1) has 4 dims, expected 3"},
    {similarity_work, DATO_ERR_INVALID, "dato_similarity: work holds 50 floats, needs B*N*C + P*(N + C) = 78"},
    {select_keep_mask, DATO_ERR_UNSUPPORTED, "dato_select_keep: keep is F32, expected U8"},
    {gather_kept_fit, DATO_ERR_INVALID, "dato_gather_kept: x_kept (2, 5, 4) does not fit x (2, 4, 4)"},
    {scatter_assign, DATO_ERR_INVALID, "dato_scatter_recover: assign is (2, 3), expected (2, 4)"},
};

// Every case: the same status and message on the CPU and on the CUDA device.
static void test_same_rule(void) {
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < 2; d++) {
            dato_device dev = d == 0 ? DATO_DEV_CPU : DATO_DEV_CUDA;
            dato_error err = {{0}};
            dato_status st = cases[i].run(dev, &err);
            CHECK(st == cases[i].want && strcmp(err.msg, cases[i].msg) == 0, "case %d on %s: status %d, '%s'", i,
                  d == 0 ? "CPU" : "CUDA", (int)st, err.msg);
        }
    }
    printf("%d cases, each the same status and message on both devices\n", n);
}

// What differs by device: where the tensors must be, and the half weights of linear and conv2d,
// which the CUDA backend takes (half_weights) and the CPU backend does not.
static void test_device_rules(void) {
    dato_error err = {{0}};
    dato_tensor dev_t = t2(DATO_DEV_CUDA, 4, 8), host_t = t2(DATO_DEV_CPU, 4, 8);
    CHECK(dato_op_check_unary("silu", &dev_t, &host_t, DATO_DEV_CUDA, &err) == DATO_ERR_INVALID &&
              strcmp(err.msg, "silu: x is not on the CUDA device") == 0,
          "host x on CUDA: '%s'", err.msg);
    CHECK(dato_op_check_unary("copy", &host_t, &dev_t, DATO_DEV_CPU, &err) == DATO_ERR_INVALID &&
              strcmp(err.msg, "copy: x is not on the CPU") == 0,
          "device x on the CPU: '%s'", err.msg);

    for (int d = 0; d < 2; d++) {
        dato_device dev = d == 0 ? DATO_DEV_CPU : DATO_DEV_CUDA;
        int half_weights = dev == DATO_DEV_CUDA; // what each backend passes
        dato_tensor out = t4(dev, 1, 4, 8, 8), x = t4(dev, 1, 16, 8, 8), w = typed(t4(dev, 4, 16, 3, 3), DATO_BF16);
        dato_status st = dato_op_check_conv2d(&out, &x, &w, NULL, 1, 1, 1, 1, dev, half_weights, &err);
        CHECK(half_weights ? st == DATO_OK
                           : st == DATO_ERR_UNSUPPORTED &&
                                 strcmp(err.msg, "conv2d: weight is BF16; the CPU backend takes F32 only here") == 0,
              "BF16 conv2d weight, half_weights %d: status %d, '%s'", half_weights, (int)st, err.msg);
        dato_tensor lo = t2(dev, 3, 5), lx = t2(dev, 3, 10), lw = typed(t2(dev, 5, 10), DATO_F16);
        st = dato_op_check_linear(&lo, &lx, &lw, NULL, dev, half_weights, &err);
        CHECK(half_weights ? st == DATO_OK
                           : st == DATO_ERR_UNSUPPORTED &&
                                 strcmp(err.msg, "linear: weight is F16; the CPU backend takes F32 only here") == 0,
              "F16 linear weight, half_weights %d: status %d, '%s'", half_weights, (int)st, err.msg);
    }
    // both backends' GEMMs take int sizes: 2^31 rows are refused on either, naming the backend
    for (int d = 0; d < 2; d++) {
        dato_device dev = d == 0 ? DATO_DEV_CPU : DATO_DEV_CUDA;
        dato_tensor out = t2(dev, (int64_t)1 << 31, 5), x = t2(dev, (int64_t)1 << 31, 10), w = t2(dev, 5, 10);
        char want[160];
        snprintf(want, sizeof want,
                 "linear: x (2147483648, 10), weight (5, 10) exceed the int sizes of the %s backend's GEMM",
                 d == 0 ? "CPU" : "CUDA");
        CHECK(dato_op_check_linear(&out, &x, &w, NULL, dev, 0, &err) == DATO_ERR_UNSUPPORTED &&
                  strcmp(err.msg, want) == 0,
              "2^31 rows: '%s'", err.msg);
    }
    // the bias and the activations stay F32 where the weights may be half
    dato_tensor lo = t2(DATO_DEV_CUDA, 3, 5), lx = t2(DATO_DEV_CUDA, 3, 10);
    dato_tensor lw = typed(t2(DATO_DEV_CUDA, 5, 10), DATO_F16), lx16 = typed(lx, DATO_F16);
    dato_tensor lb = typed(on(dato_tensor_f32_1d(buf, 5), DATO_DEV_CUDA), DATO_F16);
    CHECK(dato_op_check_linear(&lo, &lx, &lw, &lb, DATO_DEV_CUDA, 1, &err) == DATO_ERR_UNSUPPORTED &&
              strcmp(err.msg, "linear: bias is F16; the CUDA backend takes F32 only here") == 0,
          "F16 bias on CUDA: '%s'", err.msg);
    CHECK(dato_op_check_linear(&lo, &lx16, &lw, NULL, DATO_DEV_CUDA, 1, &err) == DATO_ERR_UNSUPPORTED &&
              strcmp(err.msg, "linear: x is F16; the CUDA backend takes F32 only here") == 0,
          "F16 x on CUDA: '%s'", err.msg);
}

int main(void) {
    test_same_rule();
    test_device_rules();
    return test_summary();
}
