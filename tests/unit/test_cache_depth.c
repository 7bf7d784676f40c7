// Caching by depth (METHOD.md §2): a partial step at depth d runs exactly down layers 0..d-1,
// up layers B-d..B-1 and the output head, and reads the cache of the last full step. Counted
// with a backend whose conv2d counts its calls (every layer's convolutions are known from the
// layer list), on the tiny SD1.5- and SDXL-shaped fixture UNets.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test_util.h"
#include "unet_load.h"

typedef struct {
    dato_backend be;               // first: the ops receive &counting->be
    const dato_backend_ops* inner;
    dato_backend_ops ops;
    int conv_calls;
} counting_backend;

static dato_status count_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x, const dato_tensor* w,
                                const dato_tensor* b, int stride_h, int stride_w, int pad_h, int pad_w,
                                dato_error* err) {
    counting_backend* cb = (counting_backend*)be;
    cb->conv_calls++;
    return cb->inner->conv2d(be, out, x, w, b, stride_h, stride_w, pad_h, pad_w, err);
}

static dato_status count_group_norm_conv2d(dato_backend* be, dato_tensor* out, const dato_tensor* x,
                                           const dato_tensor* gamma, const dato_tensor* beta, int groups, float eps,
                                           int fuse_silu, const dato_tensor* w, const dato_tensor* b, int stride_h,
                                           int stride_w, int pad_h, int pad_w, dato_error* err) {
    counting_backend* cb = (counting_backend*)be;
    cb->conv_calls++;
    return cb->inner->group_norm_conv2d(be, out, x, gamma, beta, groups, eps, fuse_silu, w, b, stride_h, stride_w,
                                        pad_h, pad_w, err);
}

// Convolutions one layer runs: conv_in, down/upsample 1 each; a ResBlock 2, +1 for its shortcut.
static int layer_convs(const dato_unet_layer* L) {
    int n = 0;
    for (int i = 0; i < L->n_mods; i++) {
        const dato_unet_module* m = &L->mods[i];
        if (m->kind == DATO_MOD_RES) n += m->cin != m->cout ? 3 : 2;
        else if (m->kind != DATO_MOD_TRANSFORMER) n += 1;
    }
    return n;
}

static int expected_convs(const dato_unet* u, int depth) {
    int B = u->n_branches, n = 1; // conv_out
    int full = depth == B + 1, nd = full ? B : depth;
    for (int k = 0; k < nd; k++) n += layer_convs(&u->down[k]);
    if (full) n += layer_convs(&u->mid);
    for (int j = full ? 0 : B - depth; j < B; j++) n += layer_convs(&u->up[j]);
    return n;
}

static void check_model(const char* name) {
    char dir[128], io_path[256];
    snprintf(dir, sizeof dir, "tests/fixtures/unet/%s", name);
    snprintf(io_path, sizeof io_path, "%s/io.safetensors", dir);
    dato_error err = {{0}};
    dato_backend cpu;
    if (dato_backend_cpu_init(&cpu, 0, &err)) return;
    counting_backend cb = {.be = cpu, .inner = cpu.ops};
    cb.ops = *cpu.ops;
    cb.ops.conv2d = count_conv2d;
    cb.ops.group_norm_conv2d = count_group_norm_conv2d; // the CPU's fused GroupNorm + conv is a conv too
    cb.be.ops = &cb.ops;

    dato_unet u;
    dato_status st = dato_unet_open(&u, dir, &cb.be, NULL, &err);
    CHECK(st == DATO_OK, "%s: %s", name, err.msg);
    dato_safetensors io;
    if (st || dato_safetensors_open(&io, io_path, &err)) {
        dato_backend_destroy(&cpu);
        return;
    }
    const dato_st_tensor* xs = dato_safetensors_find(&io, "sample");
    const dato_st_tensor* cs = dato_safetensors_find(&io, "encoder_hidden_states");
    float* x = fixture_f32(&io, "sample", NULL);
    float* t = fixture_f32(&io, "timestep", NULL);
    float* c = fixture_f32(&io, "encoder_hidden_states", NULL);
    float* te = u.cfg.add_embed_in ? fixture_f32(&io, "text_embeds", NULL) : NULL;
    float* ids = u.cfg.add_embed_in ? fixture_f32(&io, "time_ids", NULL) : NULL;
    size_t ny = (size_t)(xs->numel);
    float *full = malloc(ny * sizeof *full), *y = malloc(ny * sizeof *y);
    dato_tensor tx = dato_tensor_f32_4d(x, xs->shape[0], xs->shape[1], xs->shape[2], xs->shape[3]);
    dato_tensor ty = dato_tensor_f32_4d(y, xs->shape[0], xs->shape[1], xs->shape[2], xs->shape[3]);
    dato_tensor tc = dato_tensor_f32_3d(c, cs->shape[0], cs->shape[1], cs->shape[2]);
    dato_tensor tt = dato_tensor_f32_2d(te, xs->shape[0], u.cfg.add_embed_in - 6 * u.cfg.addition_time_embed_dim);
    dato_tensor t_t = dato_tensor_f32_1d(t, xs->shape[0]), ids_t = dato_tensor_f32_2d(ids, xs->shape[0], 6);
    dato_net_inputs in = {.sample = &tx, .timesteps = &t_t, .context = &tc, .text_embeds = te ? &tt : NULL,
                           .time_ids = ids ? &ids_t : NULL};
    dato_unet_ws ws;
    st = dato_unet_ws_create(&ws, &u, (int)xs->shape[0], (int)xs->shape[2], (int)xs->shape[3], (int)cs->shape[1], 1,
                             &err);
    CHECK(st == DATO_OK, "%s", err.msg);

    // A partial step before any full step has no cache to read.
    dato_net_plan early = {.depth = 1};
    CHECK(!st && dato_unet_forward(&u, &ws, &early, &in, &ty, &err) == DATO_ERR_INVALID && strstr(err.msg, "cache"),
          "%s: a partial step before a full one was accepted", name);

    int B = u.n_branches, counts_ok = 1, reuse_ok = 1;
    for (int d = B + 1; d >= 1 && !st; d--) {
        dato_net_plan plan = {.depth = d, .write_cache = d == B + 1};
        cb.conv_calls = 0;
        st = dato_unet_forward(&u, &ws, &plan, &in, &ty, &err);
        int want = expected_convs(&u, d);
        if (cb.conv_calls != want) {
            fprintf(stderr, "%s depth %d: %d conv calls, expected %d\n", name, d, cb.conv_calls, want);
            counts_ok = 0;
        }
        if (d == B + 1) memcpy(full, y, ny * sizeof *y);
        else reuse_ok &= memcmp(full, y, ny * sizeof *y) == 0; // same inputs: the cache makes it exact
    }
    printf("%s: %d branches; conv calls per depth match the layer list: %s; partial steps reproduce the full step "
           "from the cache: %s\n",
           name, B, counts_ok ? "yes" : "NO", reuse_ok ? "yes" : "NO");
    CHECK(st == DATO_OK, "%s: %s", name, err.msg);
    CHECK(counts_ok, "%s: a partial step ran other layers than METHOD.md says", name);
    CHECK(reuse_ok, "%s: a partial step did not reuse the full step's cache exactly", name);
    CHECK(expected_convs(&u, 1) < expected_convs(&u, 2) && expected_convs(&u, B) < expected_convs(&u, B + 1),
          "%s: deeper steps must run more layers", name);

    dato_unet_ws_free(&ws, &u);
    free(full);
    free(y);
    free(x);
    free(t);
    free(c);
    free(te);
    free(ids);
    dato_safetensors_close(&io);
    dato_unet_free(&u);
    dato_backend_destroy(&cpu);
}

int main(void) {
    check_model("sd15");
    check_model("sdxl");
    return test_summary();
}
