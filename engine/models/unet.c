// The UNet forward over a plan, and its workspace. Every activation comes from one arena:
// each layer's output is carved first and kept (down outputs are the skip stack), the layer's
// temporaries are carved after it and released when it ends. The workspace size is found by
// running this same code on the null backend with a measuring arena.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unet.h"

typedef struct {
    const dato_unet* u;
    dato_backend* be;
    const dato_backend_ops* op;
    dato_arena* a;
    const dato_net_plan* plan;
    const dato_tensor* context;  // (B, S, X)
    const dato_tensor* temb;     // (B, T): SiLU(time embedding), as every ResBlock consumes it
    dato_error* err;
} fwd_ctx;

static dato_tensor tmp(fwd_ctx* f, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t shape[4] = {d0, d1, d2, d3};
    return dato_arena_tensor(f->a, DATO_F32, f->be->device, ndim, shape);
}

static dato_status check_arena(fwd_ctx* f, const char* where) {
    if (f->a->overflowed)
        return dato_fail(f->err, DATO_ERR_NOMEM, "unet: workspace too small at %s (planned %zu bytes)", where,
                         f->a->cap);
    return DATO_OK;
}

// A (rows, cols) view of a tensor's memory, for Linear layers over tokens.
static dato_tensor view2(const dato_tensor* t, int64_t rows, int64_t cols) {
    return dato_tensor_make(t->data, t->dtype, t->device, 2, (int64_t[]){rows, cols});
}
// ---- attention ------------------------------------------------------------------------------

dato_status dato_unet_attention(dato_backend* be, const dato_attention* at, int heads, dato_tensor* out,
                                const dato_tensor* x, const dato_tensor* kv, dato_arena* arena, dato_error* err) {
    const dato_backend_ops* op = be->ops;
    int64_t B = x->shape[0], Nq = x->shape[1], Nk = kv->shape[1], C = at->to_q.w.shape[0];
    size_t mark = dato_arena_mark(arena);
    int64_t sq[3] = {B, Nq, C}, sk[3] = {B, Nk, C};
    dato_tensor q = dato_arena_tensor(arena, DATO_F32, be->device, 3, sq); // (B, Nq, C)
    dato_tensor k = dato_arena_tensor(arena, DATO_F32, be->device, 3, sk); // (B, Nk, C)
    dato_tensor v = dato_arena_tensor(arena, DATO_F32, be->device, 3, sk); // (B, Nk, C)
    dato_tensor o = dato_arena_tensor(arena, DATO_F32, be->device, 3, sq); // (B, Nq, C)
    if (arena->overflowed) return dato_fail(err, DATO_ERR_NOMEM, "unet: workspace too small in attention");
    DATO_TRY(op->linear(be, &q, x, &at->to_q.w, NULL, err));
    DATO_TRY(op->linear(be, &k, kv, &at->to_k.w, NULL, err));
    DATO_TRY(op->linear(be, &v, kv, &at->to_v.w, NULL, err));
    DATO_TRY(op->attention(be, &o, &q, &k, &v, heads, 1.0f / sqrtf((float)(C / heads)), 0, err));
    DATO_TRY(op->linear(be, out, &o, &at->to_out.w, &at->to_out.b, err));
    dato_arena_release(arena, mark);
    return DATO_OK;
}

dato_status dato_unet_self_attention(const dato_attn_site* site, dato_backend* be, dato_tensor* out,
                                     const dato_tensor* x, dato_arena* arena, dato_error* err) {
    return dato_unet_attention(be, site->attn, site->heads, out, x, x, arena, err);
}

// ---- modules -----------------------------------------------------------------------------------

// out = conv (3x3, pad 1) of x after norm (GroupNorm, then SiLU): the backend's fused op where it has
// one; else the two ops, the normalized x in x itself when it is disposable, or in a temporary.
static dato_status norm_silu_conv(fwd_ctx* f, dato_tensor* out, const dato_tensor* x, int x_disposable,
                                  const dato_affine* norm, const dato_affine* conv, const char* where) {
    const dato_unet_config* c = &f->u->cfg;
    if (f->op->group_norm_conv2d)
        return f->op->group_norm_conv2d(f->be, out, x, &norm->w, &norm->b, c->norm_groups, c->norm_eps, 1, &conv->w,
                                        &conv->b, 1, 1, 1, 1, f->err);
    size_t mark = dato_arena_mark(f->a);
    dato_tensor hn = *x; // (B, C, H, W): x's memory, when disposable
    if (!x_disposable) {
        hn = tmp(f, 4, x->shape[0], x->shape[1], x->shape[2], x->shape[3]);
        DATO_TRY(check_arena(f, where));
    }
    DATO_TRY(f->op->group_norm(f->be, &hn, x, &norm->w, &norm->b, c->norm_groups, c->norm_eps, 1, f->err));
    DATO_TRY(f->op->conv2d(f->be, out, &hn, &conv->w, &conv->b, 1, 1, 1, 1, f->err));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// out (B, cout, H, W) = ResBlock(x (B, cin, H, W), temb).
static dato_status resblock_forward(fwd_ctx* f, const dato_unet_module* m, dato_tensor* out, const dato_tensor* x) {
    const dato_resblock* r = &m->res;
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
    size_t mark = dato_arena_mark(f->a);
    dato_tensor h = tmp(f, 4, B, m->cout, H, W);   // (B, cout, H, W)
    dato_tensor e = tmp(f, 2, B, m->cout, 0, 0);   // (B, cout)
    dato_tensor s = tmp(f, 4, B, m->cout, H, W);   // (B, cout, H, W) shortcut
    DATO_TRY(check_arena(f, "resblock"));
    DATO_TRY(norm_silu_conv(f, &h, x, 0, &r->norm1, &r->conv1, "resblock"));
    DATO_TRY(f->op->linear(f->be, &e, f->temb, &r->time_emb_proj.w, &r->time_emb_proj.b, f->err));
    DATO_TRY(f->op->add_channel_bias(f->be, &h, &e, f->err));
    DATO_TRY(norm_silu_conv(f, out, &h, 1, &r->norm2, &r->conv2, "resblock"));
    if (m->cin != m->cout) {
        DATO_TRY(f->op->conv2d(f->be, &s, x, &r->conv_shortcut.w, &r->conv_shortcut.b, 1, 1, 0, 0, f->err));
        DATO_TRY(f->op->add(f->be, out, out, &s, f->err));
    } else {
        DATO_TRY(f->op->add(f->be, out, out, x, f->err));
    }
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// out (B, C, H, W) = Transformer2D(x (B, C, H, W), context) + x.
static dato_status transformer_forward(fwd_ctx* f, const dato_unet_layer* layer, const dato_unet_module* m,
                                       dato_tensor* out, const dato_tensor* x) {
    const dato_transformer* tf = &m->tf;
    int64_t B = x->shape[0], C = m->cout, H = x->shape[2], W = x->shape[3], N = H * W;
    const dato_tensor* ctx = f->context;
    size_t mark = dato_arena_mark(f->a);
    dato_tensor g = tmp(f, 4, B, C, H, W);  // (B, C, H, W) normalized input
    dato_tensor tok = tmp(f, 3, B, N, C, 0);   // (B, N, C)
    dato_tensor h = tmp(f, 3, B, N, C, 0);     // (B, N, C) residual stream
    DATO_TRY(check_arena(f, layer->name));
    DATO_TRY(f->op->group_norm(f->be, &g, x, &tf->norm.w, &tf->norm.b, f->u->cfg.norm_groups, 1e-6f, 0, f->err));
    DATO_TRY(f->op->nchw_to_tokens(f->be, &tok, &g, f->err));
    dato_tensor pw = view2(&tf->proj_in.w, C, C);
    DATO_TRY(f->op->linear(f->be, &h, &tok, &pw, &tf->proj_in.b, f->err));

    for (int k = 0; k < tf->depth; k++) {
        const dato_transformer_block* tb = &tf->blocks[k];
        size_t bmark = dato_arena_mark(f->a);
        dato_tensor n = tmp(f, 3, B, N, C, 0);           // (B, N, C) normalized
        dato_tensor o = tmp(f, 3, B, N, C, 0);           // (B, N, C) sub-layer output
        dato_tensor p = tmp(f, 3, B, N, 8 * C, 0);       // (B, N, 8C) GEGLU projection
        dato_tensor gg = {0};                            // (B, N, 4C) gated hidden, unless fused
        if (!f->op->geglu_linear) gg = tmp(f, 3, B, N, 4 * C, 0);
        DATO_TRY(check_arena(f, layer->name));

        DATO_TRY(f->op->layer_norm(f->be, &n, &h, &tb->norm1.w, &tb->norm1.b, 1e-5f, f->err));
        if (f->plan->self_attn) {
            dato_attn_site site = {.layer = layer->name, .block = k, .level = layer->level, .h = (int)H,
                                   .w = (int)W, .heads = tf->heads, .attn = &tb->attn1,
                                   .attend = dato_unet_self_attention};
            DATO_TRY(f->plan->self_attn(f->plan->hook_ctx, &site, &o, &n, f->a, f->err));
        } else {
            DATO_TRY(dato_unet_attention(f->be, &tb->attn1, tf->heads, &o, &n, &n, f->a, f->err));
        }
        DATO_TRY(f->op->add(f->be, &h, &h, &o, f->err));

        DATO_TRY(f->op->layer_norm(f->be, &n, &h, &tb->norm2.w, &tb->norm2.b, 1e-5f, f->err));
        DATO_TRY(dato_unet_attention(f->be, &tb->attn2, tf->heads, &o, &n, ctx, f->a, f->err));
        DATO_TRY(f->op->add(f->be, &h, &h, &o, f->err));

        DATO_TRY(f->op->layer_norm(f->be, &n, &h, &tb->norm3.w, &tb->norm3.b, 1e-5f, f->err));
        DATO_TRY(f->op->linear(f->be, &p, &n, &tb->ff_proj.w, &tb->ff_proj.b, f->err));
        if (f->op->geglu_linear) {
            DATO_TRY(f->op->geglu_linear(f->be, &o, &p, &tb->ff_out.w, &tb->ff_out.b, f->err));
        } else {
            DATO_TRY(f->op->geglu(f->be, &gg, &p, f->err));
            DATO_TRY(f->op->linear(f->be, &o, &gg, &tb->ff_out.w, &tb->ff_out.b, f->err));
        }
        DATO_TRY(f->op->add(f->be, &h, &h, &o, f->err));
        dato_arena_release(f->a, bmark);
    }

    pw = view2(&tf->proj_out.w, C, C);
    DATO_TRY(f->op->linear(f->be, &tok, &h, &pw, &tf->proj_out.b, f->err));
    DATO_TRY(f->op->tokens_to_nchw(f->be, out, &tok, f->err));
    DATO_TRY(f->op->add(f->be, out, out, x, f->err));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

static dato_status module_forward(fwd_ctx* f, const dato_unet_layer* layer, const dato_unet_module* m,
                                  dato_tensor* out, const dato_tensor* x) {
    switch (m->kind) {
    case DATO_MOD_CONV_IN: return f->op->conv2d(f->be, out, x, &m->conv.w, &m->conv.b, 1, 1, 1, 1, f->err);
    case DATO_MOD_DOWNSAMPLE: return f->op->conv2d(f->be, out, x, &m->conv.w, &m->conv.b, 2, 2, 1, 1, f->err);
    case DATO_MOD_UPSAMPLE: {
        size_t mark = dato_arena_mark(f->a);
        dato_tensor up = tmp(f, 4, x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3]); // (B, C, 2H, 2W)
        DATO_TRY(check_arena(f, layer->name));
        DATO_TRY(f->op->upsample_nearest2x(f->be, &up, x, f->err));
        DATO_TRY(f->op->conv2d(f->be, out, &up, &m->conv.w, &m->conv.b, 1, 1, 1, 1, f->err));
        dato_arena_release(f->a, mark);
        return DATO_OK;
    }
    case DATO_MOD_RES: return resblock_forward(f, m, out, x);
    case DATO_MOD_TRANSFORMER: return transformer_forward(f, layer, m, out, x);
    }
    return dato_fail(f->err, DATO_ERR_INVALID, "unet: %s: unknown module kind", layer->name);
}

// Spatial size of a module's output given its input's.
static void module_out_hw(const dato_unet_module* m, int64_t* h, int64_t* w) {
    if (m->kind == DATO_MOD_DOWNSAMPLE) {
        *h = (*h + 1) / 2; // conv 3x3, stride 2, padding 1
        *w = (*w + 1) / 2;
    } else if (m->kind == DATO_MOD_UPSAMPLE) {
        *h *= 2;
        *w *= 2;
    }
}

// Runs one layer: out is carved here and kept; x (B, cin, H, W); skip (B, Cs, H, W) or NULL.
static dato_status layer_forward(fwd_ctx* f, const dato_unet_layer* L, dato_tensor* out, const dato_tensor* x,
                                 const dato_tensor* skip) {
    int64_t B = x->shape[0], H = x->shape[2], W = x->shape[3];
    int64_t oh = H, ow = W;
    for (int i = 0; i < L->n_mods; i++) module_out_hw(&L->mods[i], &oh, &ow);
    *out = tmp(f, 4, B, L->cout, oh, ow);
    size_t mark = dato_arena_mark(f->a);
    dato_tensor cat, cur = *x;
    if (skip) {
        cat = tmp(f, 4, B, x->shape[1] + skip->shape[1], H, W); // (B, cin + Cs, H, W): [h, skip]
        DATO_TRY(check_arena(f, L->name));
        DATO_TRY(f->op->concat_channels(f->be, &cat, x, skip, f->err));
        cur = cat;
    }
    for (int i = 0; i < L->n_mods; i++) {
        const dato_unet_module* m = &L->mods[i];
        int64_t mh = cur.shape[2], mw = cur.shape[3];
        module_out_hw(m, &mh, &mw);
        dato_tensor dst = i == L->n_mods - 1 ? *out : tmp(f, 4, B, m->cout, mh, mw);
        DATO_TRY(check_arena(f, L->name));
        DATO_TRY(module_forward(f, L, m, &dst, &cur));
        cur = dst;
    }
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

// (B, T) time embedding, SiLU applied (what the ResBlocks consume).
static dato_status time_embedding_forward(fwd_ctx* f, const dato_net_inputs* in, int64_t B, dato_tensor* temb) {
    const dato_unet* u = f->u;
    const dato_unet_config* c = &u->cfg;
    int64_t T = c->time_embed_dim, c0 = c->block_channels[0];
    *temb = tmp(f, 2, B, T, 0, 0);
    size_t mark = dato_arena_mark(f->a);
    dato_tensor sinus = tmp(f, 2, B, c0, 0, 0); // (B, c0)
    dato_tensor h = tmp(f, 2, B, T, 0, 0);      // (B, T)
    DATO_TRY(check_arena(f, "time_embed"));
    DATO_TRY(f->op->timestep_embedding(f->be, &sinus, in->timesteps, c->flip_sin_to_cos, c->freq_shift, 10000.0f, f->err));
    DATO_TRY(f->op->linear(f->be, &h, &sinus, &u->time_1.w, &u->time_1.b, f->err));
    DATO_TRY(f->op->silu(f->be, &h, &h, f->err));
    DATO_TRY(f->op->linear(f->be, temb, &h, &u->time_2.w, &u->time_2.b, f->err));

    if (c->add_embed_in) { // SDXL: MLP([pooled text, sinusoids of the 6 size/crop ids]) added to temb
        if (!in->text_embeds || !in->time_ids)
            return dato_fail(f->err, DATO_ERR_INVALID, "unet: this model needs text_embeds and time_ids (SDXL)");
        int64_t D = c->addition_time_embed_dim, P = in->text_embeds->shape[1];
        if (in->text_embeds->ndim != 2 || in->text_embeds->shape[0] != B || P + 6 * D != c->add_embed_in)
            return dato_fail(f->err, DATO_ERR_INVALID, "unet: text_embeds must be (%lld, %lld)", (long long)B,
                             (long long)(c->add_embed_in - 6 * D));
        dato_tensor ids = tmp(f, 2, B * 6, D, 0, 0);          // (B*6, D)
        dato_tensor cat = tmp(f, 4, B, c->add_embed_in, 1, 1); // (B, P + 6D, 1, 1)
        dato_tensor a = tmp(f, 2, B, T, 0, 0);                // (B, T)
        DATO_TRY(check_arena(f, "add_embedding"));
        if (dato_tensor_numel(in->time_ids) != B * 6)
            return dato_fail(f->err, DATO_ERR_INVALID, "unet: time_ids must be (%lld, 6)", (long long)B);
        dato_tensor flat = dato_tensor_make(in->time_ids->data, DATO_F32, f->be->device, 1, (int64_t[]){B * 6});
        DATO_TRY(f->op->timestep_embedding(f->be, &ids, &flat, c->flip_sin_to_cos, c->freq_shift, 10000.0f, f->err));
        dato_tensor te = dato_tensor_make(in->text_embeds->data, DATO_F32, f->be->device, 4, (int64_t[]){B, P, 1, 1});
        dato_tensor ie = dato_tensor_make(ids.data, DATO_F32, f->be->device, 4, (int64_t[]){B, 6 * D, 1, 1});
        DATO_TRY(f->op->concat_channels(f->be, &cat, &te, &ie, f->err));
        dato_tensor cat2 = view2(&cat, B, c->add_embed_in);
        DATO_TRY(f->op->linear(f->be, &h, &cat2, &u->add_1.w, &u->add_1.b, f->err));
        DATO_TRY(f->op->silu(f->be, &h, &h, f->err));
        DATO_TRY(f->op->linear(f->be, &a, &h, &u->add_2.w, &u->add_2.b, f->err));
        DATO_TRY(f->op->add(f->be, temb, temb, &a, f->err));
    }
    DATO_TRY(f->op->silu(f->be, temb, temb, f->err));
    dato_arena_release(f->a, mark);
    return DATO_OK;
}

static dato_status check_inputs(const dato_unet* u, const dato_net_inputs* in, const dato_tensor* out,
                                dato_error* err) {
    const dato_unet_config* c = &u->cfg;
    const dato_tensor *x = in->sample, *ctx = in->context;
    if (!x || x->ndim != 4 || x->shape[1] != c->in_channels)
        return dato_fail(err, DATO_ERR_INVALID, "unet: sample must be (B, %d, H, W)", c->in_channels);
    int64_t div = (int64_t)1 << (c->n_levels - 1);
    if (x->shape[2] % div || x->shape[3] % div)
        return dato_fail(err, DATO_ERR_INVALID, "unet: latent %lldx%lld is not a multiple of %lld",
                         (long long)x->shape[2], (long long)x->shape[3], (long long)div);
    if (!ctx || ctx->ndim != 3 || ctx->shape[0] != x->shape[0] || ctx->shape[2] != c->cross_attention_dim)
        return dato_fail(err, DATO_ERR_INVALID, "unet: context must be (%lld, S, %d)", (long long)x->shape[0],
                         c->cross_attention_dim);
    if (!in->timesteps || dato_tensor_numel(in->timesteps) != x->shape[0])
        return dato_fail(err, DATO_ERR_INVALID, "unet: timesteps must hold %lld values", (long long)x->shape[0]);
    if (!out || out->ndim != 4 || out->shape[0] != x->shape[0] || out->shape[1] != c->out_channels ||
        out->shape[2] != x->shape[2] || out->shape[3] != x->shape[3])
        return dato_fail(err, DATO_ERR_INVALID, "unet: out must be (B, %d, H, W) like the sample", c->out_channels);
    return DATO_OK;
}

// The forward on backend be over arena a; cache is NULL or one tensor per up layer.
static dato_status forward_impl(const dato_unet* u, dato_backend* be, dato_arena* a, dato_tensor* cache,
                                const dato_net_plan* plan, const dato_net_inputs* in, dato_tensor* out,
                                dato_error* err) {
    int nb = u->n_branches;
    if (plan->depth < 1 || plan->depth > nb + 1)
        return dato_fail(err, DATO_ERR_INVALID, "unet: plan depth %d outside 1..%d", plan->depth, nb + 1);
    int full = plan->depth == nb + 1;
    if (!full && !cache) return dato_fail(err, DATO_ERR_INVALID, "unet: a partial step needs the feature cache");
    if (full && plan->write_cache && !cache)
        return dato_fail(err, DATO_ERR_INVALID, "unet: write_cache on a workspace made without a cache");

    fwd_ctx f = {.u = u, .be = be, .op = be->ops, .a = a, .plan = plan, .context = in->context, .err = err};
    int64_t B = in->sample->shape[0];
    a->top = 0;
    a->overflowed = 0;
    dato_tensor temb;
    DATO_TRY(time_embedding_forward(&f, in, B, &temb));
    f.temb = &temb;

    int n_down = full ? nb : plan->depth;
    dato_tensor skips[DATO_UNET_MAX_LAYERS], h = *in->sample;
    for (int k = 0; k < n_down; k++) {
        DATO_TRY(layer_forward(&f, &u->down[k], &skips[k], &h, NULL));
        h = skips[k];
    }
    int first_up = 0;
    if (full) {
        dato_tensor m;
        DATO_TRY(layer_forward(&f, &u->mid, &m, &h, NULL));
        h = m;
    } else {
        first_up = nb - plan->depth;
        h = cache[first_up]; // the deep feature of the last full step
    }
    for (int j = first_up; j < nb; j++) {
        if (full && plan->write_cache) DATO_TRY(be->ops->copy(be, &cache[j], &h, err));
        dato_tensor o;
        DATO_TRY(layer_forward(&f, &u->up[j], &o, &h, &skips[nb - 1 - j]));
        h = o;
    }

    return norm_silu_conv(&f, out, &h, 0, &u->norm_out, &u->conv_out, "out");
}

dato_net_plan dato_unet_plan_full(const dato_unet* u) { return (dato_net_plan){.depth = u->n_branches + 1}; }

dato_status dato_unet_forward(const dato_unet* u, dato_unet_ws* ws, const dato_net_plan* plan,
                              const dato_net_inputs* in, dato_tensor* out, dato_error* err) {
    DATO_TRY(check_inputs(u, in, out, err));
    const dato_tensor* x = in->sample;
    if (x->shape[0] > ws->batch || x->shape[2] != ws->h || x->shape[3] != ws->w || in->context->shape[1] != ws->seq)
        return dato_fail(err, DATO_ERR_INVALID,
                         "unet: inputs (B=%lld, %lldx%lld, S=%lld) do not fit the workspace (B<=%d, %dx%d, S=%d)",
                         (long long)x->shape[0], (long long)x->shape[2], (long long)x->shape[3],
                         (long long)in->context->shape[1], ws->batch, ws->h, ws->w, ws->seq);
    int full = plan->depth == u->n_branches + 1;
    if (!full && ws->cache_valid != x->shape[0])
        return dato_fail(err, DATO_ERR_INVALID, "unet: partial step (depth %d, B=%lld) before a full step of that "
                         "batch filled the cache", plan->depth, (long long)x->shape[0]);
    // A smaller batch carves the same offsets as in a workspace of its own, and reads the cache's first rows.
    dato_tensor cache[DATO_UNET_MAX_LAYERS]; // (B, C_j, h_j, w_j) views
    for (int j = 0; j < u->n_branches; j++) {
        cache[j] = ws->cache[j];
        cache[j].shape[0] = x->shape[0];
    }
    dato_status st = forward_impl(u, u->be, &ws->arena, ws->cache_block ? cache : NULL, plan, in, out, err);
    if (st == DATO_OK && full && plan->write_cache) ws->cache_valid = (int)x->shape[0];
    return st;
}

dato_status dato_unet_forward_graphed(const dato_unet* u, dato_unet_ws* ws, const dato_net_plan* plan,
                                      const dato_net_inputs* in, dato_tensor* out, dato_unet_graphs* g,
                                      dato_error* err) {
    dato_backend* be = u->be;
    int d = plan->depth, v = plan->variant;
    if (!be->ops->capture_begin || (plan->self_attn && !plan->replayable) || d < 0 || d > DATO_UNET_MAX_LAYERS + 1 ||
        v < 0 || v >= DATO_NET_PLAN_VARIANTS)
        return dato_unet_forward(u, ws, plan, in, out, err);
    void** graph = &g->graph[d][v];
    const void* bound[6] = {ws->block, in->sample->data, in->timesteps ? in->timesteps->data : NULL,
                            in->context->data, in->text_embeds ? in->text_embeds->data : NULL, out->data};
    if (*graph && memcmp(bound, g->bound[d][v], sizeof bound)) { // other buffers: capture anew
        be->ops->graph_free(be, *graph);
        *graph = NULL;
    }
    if (!*graph) {
        if (g->runs[d][v]++ == 0) return dato_unet_forward(u, ws, plan, in, out, err);
        DATO_TRY(be->ops->capture_begin(be, err));
        dato_status st = dato_unet_forward(u, ws, plan, in, out, err);
        dato_error end_err;
        dato_status end = be->ops->capture_end(be, graph, st ? &end_err : err); // always ends the capture
        if (st || end) {
            if (*graph) be->ops->graph_free(be, *graph);
            *graph = NULL;
            return st ? st : end;
        }
        memcpy(g->bound[d][v], bound, sizeof bound);
    }
    return be->ops->graph_launch(be, *graph, err);
}

void dato_unet_graphs_free(dato_unet_graphs* g, dato_backend* be) {
    for (int d = 0; d < DATO_UNET_MAX_LAYERS + 2; d++)
        for (int v = 0; v < DATO_NET_PLAN_VARIANTS; v++)
            if (g->graph[d][v]) be->ops->graph_free(be, g->graph[d][v]);
    memset(g, 0, sizeof *g);
}

// The plan of a workspace: the cache tensors' shapes (the main-path input of each up layer), their
// bytes, and the workspace's peak, from a full step with cache writes on the null backend.
static dato_status plan_ws(const dato_unet* u, int batch, int h, int w, int seq, dato_tensor* cache_shapes,
                           size_t* cache_bytes, size_t* peak, dato_error* err) {
    if (batch < 1 || h < 1 || w < 1 || seq < 1)
        return dato_fail(err, DATO_ERR_INVALID, "unet: workspace needs batch, size and sequence >= 1");
    const dato_unet_config* c = &u->cfg;
    dato_device dev = u->be->device;
    int64_t ch = c->block_channels[c->n_levels - 1];
    int64_t hh = h >> (c->n_levels - 1), ww = w >> (c->n_levels - 1);
    *cache_bytes = 0;
    for (int j = 0; j < u->n_branches; j++) {
        const dato_unet_layer* L = &u->up[j];
        cache_shapes[j] = dato_tensor_make(NULL, DATO_F32, dev, 4, (int64_t[]){batch, ch, hh, ww});
        *cache_bytes += dato_arena_bytes(DATO_F32, (size_t)dato_tensor_numel(&cache_shapes[j]));
        for (int i = 0; i < L->n_mods; i++) module_out_hw(&L->mods[i], &hh, &ww);
        ch = L->cout;
    }
    dato_backend null_be;
    dato_backend_ops null_ops;
    dato_backend_null_init_like(&null_be, &null_ops, u->be); // the fused ops u->be has: no tensors for their parts
    dato_arena meas = dato_arena_measure();
    dato_tensor fake_cache[DATO_UNET_MAX_LAYERS];
    memcpy(fake_cache, cache_shapes, u->n_branches * sizeof *fake_cache);
    dato_tensor x = dato_tensor_make(NULL, DATO_F32, dev, 4, (int64_t[]){batch, c->in_channels, h, w});
    dato_tensor ctx = dato_tensor_make(NULL, DATO_F32, dev, 3, (int64_t[]){batch, seq, c->cross_attention_dim});
    dato_tensor te = dato_tensor_make(NULL, DATO_F32, dev, 2, (int64_t[]){batch, c->add_embed_in - 6 * c->addition_time_embed_dim});
    dato_tensor out = dato_tensor_make(NULL, DATO_F32, dev, 4, (int64_t[]){batch, c->out_channels, h, w});
    dato_tensor t = dato_tensor_make(NULL, DATO_F32, dev, 1, (int64_t[]){batch});
    dato_tensor ids = dato_tensor_make(NULL, DATO_F32, dev, 2, (int64_t[]){batch, 6});
    dato_net_inputs in = {.sample = &x, .timesteps = &t, .context = &ctx,
                           .text_embeds = c->add_embed_in ? &te : NULL, .time_ids = c->add_embed_in ? &ids : NULL};
    dato_net_plan plan = {.depth = u->n_branches + 1, .write_cache = 1};
    dato_status st = check_inputs(u, &in, &out, err);
    if (!st) st = forward_impl(u, &null_be, &meas, fake_cache, &plan, &in, &out, err);
    dato_backend_destroy(&null_be);
    *peak = meas.peak;
    return st;
}

dato_status dato_unet_ws_bytes(const dato_unet* u, int batch, int h, int w, int seq, size_t* ws_bytes,
                               size_t* cache_bytes, dato_error* err) {
    dato_tensor cache_shapes[DATO_UNET_MAX_LAYERS];
    return plan_ws(u, batch, h, w, seq, cache_shapes, cache_bytes, ws_bytes, err);
}

dato_status dato_unet_ws_create(dato_unet_ws* ws, const dato_unet* u, int batch, int h, int w, int seq,
                                int with_cache, dato_error* err) {
    memset(ws, 0, sizeof *ws);
    size_t peak = 0;
    DATO_TRY(plan_ws(u, batch, h, w, seq, ws->cache, &ws->cache_bytes, &peak, err));
    ws->batch = batch;
    ws->h = h;
    ws->w = w;
    ws->seq = seq;
    ws->block = u->be->ops->alloc(u->be, peak);
    if (!ws->block) return dato_fail(err, DATO_ERR_NOMEM, "unet: cannot allocate a %zu-byte workspace", peak);
    ws->arena = dato_arena_over(ws->block, peak);
    dato_status st = with_cache ? dato_unet_ws_add_cache(ws, u, err) : DATO_OK;
    if (st) dato_unet_ws_free(ws, u);
    return st;
}

dato_status dato_unet_ws_add_cache(dato_unet_ws* ws, const dato_unet* u, dato_error* err) {
    if (ws->cache_block) return DATO_OK;
    ws->cache_block = u->be->ops->alloc(u->be, ws->cache_bytes);
    if (!ws->cache_block)
        return dato_fail(err, DATO_ERR_NOMEM, "unet: cannot allocate a %zu-byte feature cache", ws->cache_bytes);
    dato_arena ca = dato_arena_over(ws->cache_block, ws->cache_bytes);
    for (int j = 0; j < u->n_branches; j++) // the planned shapes (data NULL) get their memory
        ws->cache[j] = dato_arena_tensor(&ca, DATO_F32, u->be->device, 4, ws->cache[j].shape);
    return DATO_OK;
}

void dato_unet_ws_free(dato_unet_ws* ws, const dato_unet* u) {
    if (ws->block) u->be->ops->free(u->be, ws->block);
    if (ws->cache_block) u->be->ops->free(u->be, ws->cache_block);
    memset(ws, 0, sizeof *ws);
}
