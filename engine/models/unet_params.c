// The UNet's layer list and parameter table. Names are data: each module kind has a table of
// (diffusers suffix, LDM suffix, field, weight shape, bias shape); a module's prefixes in both
// layouts follow from its place in the layer list (ENGINE.md §9). The loader, the manifest
// tests and the random initializer all walk the same table.
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unet.h"

// Symbolic dimensions, resolved against a module's sizes.
enum { D_END = 0, D_CIN, D_COUT, D_TEMB, D_CTX, D_FF8, D_FF4, D_ADD_IN, D_K3, D_K1, D_PROJ1 };

typedef struct {
    int cin, cout, temb, ctx, add_in;
    int linear_proj; // D_PROJ1 dims vanish for Linear projections
} dims_t;

enum { NORM = 0, GEMM = 1 };

typedef struct {
    const char* diffusers; // suffix after the module prefix ("" = the prefix itself)
    const char* ldm;
    size_t field;          // offset of the dato_affine within the module's struct
    int gemm;              // GEMM: the weight feeds linear/conv2d (stored in the load dtype); NORM: a gamma
    int w[4];              // weight shape symbols
    int b[1];              // bias shape symbol, D_END when there is no bias
    int only_if_cin_ne_cout;
} affine_spec;

#define RES(f) offsetof(dato_resblock, f)
static const affine_spec RESBLOCK_SPEC[] = {
    {"norm1", "in_layers.0", RES(norm1), NORM, {D_CIN}, {D_CIN}, 0},
    {"conv1", "in_layers.2", RES(conv1), GEMM, {D_COUT, D_CIN, D_K3, D_K3}, {D_COUT}, 0},
    {"time_emb_proj", "emb_layers.1", RES(time_emb_proj), GEMM, {D_COUT, D_TEMB}, {D_COUT}, 0},
    {"norm2", "out_layers.0", RES(norm2), NORM, {D_COUT}, {D_COUT}, 0},
    {"conv2", "out_layers.3", RES(conv2), GEMM, {D_COUT, D_COUT, D_K3, D_K3}, {D_COUT}, 0},
    {"conv_shortcut", "skip_connection", RES(conv_shortcut), GEMM, {D_COUT, D_CIN, D_K1, D_K1}, {D_COUT}, 1},
};

#define TF(f) offsetof(dato_transformer, f)
static const affine_spec TRANSFORMER_SPEC[] = {
    {"norm", "norm", TF(norm), NORM, {D_COUT}, {D_COUT}, 0},
    {"proj_in", "proj_in", TF(proj_in), GEMM, {D_COUT, D_CIN, D_PROJ1, D_PROJ1}, {D_COUT}, 0},
    {"proj_out", "proj_out", TF(proj_out), GEMM, {D_COUT, D_CIN, D_PROJ1, D_PROJ1}, {D_COUT}, 0},
};

#define TB(f) offsetof(dato_transformer_block, f)
static const affine_spec TBLOCK_SPEC[] = {
    {"norm1", "norm1", TB(norm1), NORM, {D_COUT}, {D_COUT}, 0},
    {"attn1.to_q", "attn1.to_q", TB(attn1.to_q), GEMM, {D_COUT, D_CIN}, {D_END}, 0},
    {"attn1.to_k", "attn1.to_k", TB(attn1.to_k), GEMM, {D_COUT, D_CIN}, {D_END}, 0},
    {"attn1.to_v", "attn1.to_v", TB(attn1.to_v), GEMM, {D_COUT, D_CIN}, {D_END}, 0},
    {"attn1.to_out.0", "attn1.to_out.0", TB(attn1.to_out), GEMM, {D_COUT, D_CIN}, {D_COUT}, 0},
    {"norm2", "norm2", TB(norm2), NORM, {D_COUT}, {D_COUT}, 0},
    {"attn2.to_q", "attn2.to_q", TB(attn2.to_q), GEMM, {D_COUT, D_CIN}, {D_END}, 0},
    {"attn2.to_k", "attn2.to_k", TB(attn2.to_k), GEMM, {D_COUT, D_CTX}, {D_END}, 0},
    {"attn2.to_v", "attn2.to_v", TB(attn2.to_v), GEMM, {D_COUT, D_CTX}, {D_END}, 0},
    {"attn2.to_out.0", "attn2.to_out.0", TB(attn2.to_out), GEMM, {D_COUT, D_CIN}, {D_COUT}, 0},
    {"norm3", "norm3", TB(norm3), NORM, {D_COUT}, {D_COUT}, 0},
    {"ff.net.0.proj", "ff.net.0.proj", TB(ff_proj), GEMM, {D_FF8, D_CIN}, {D_FF8}, 0},
    {"ff.net.2", "ff.net.2", TB(ff_out), GEMM, {D_COUT, D_FF4}, {D_COUT}, 0},
};

// A bare conv or linear whose prefix is the whole name (conv_in, time_embed.0, ...).
static const affine_spec CONV3_SPEC[] = {{"", "", 0, GEMM, {D_COUT, D_CIN, D_K3, D_K3}, {D_COUT}, 0}};
static const affine_spec LINEAR_SPEC[] = {{"", "", 0, GEMM, {D_COUT, D_CIN}, {D_COUT}, 0}};
static const affine_spec NORM_SPEC[] = {{"", "", 0, NORM, {D_COUT}, {D_COUT}, 0}};
// Down/upsample convs: diffusers ".conv", LDM ".op" (down) or ".conv" (up).
static const affine_spec DOWNSAMPLE_SPEC[] = {{"conv", "op", 0, GEMM, {D_COUT, D_CIN, D_K3, D_K3}, {D_COUT}, 0}};
static const affine_spec UPSAMPLE_SPEC[] = {{"conv", "conv", 0, GEMM, {D_COUT, D_CIN, D_K3, D_K3}, {D_COUT}, 0}};

#define N_SPEC(s) ((int)(sizeof(s) / sizeof((s)[0])))

typedef struct {
    dato_unet* u;
    dato_param_builder rows; // into u->params
} builder;

static int resolve_dims(const int* sym, int max, const dims_t* d, int64_t* shape) {
    int n = 0;
    for (int i = 0; i < max && sym[i] != D_END; i++) {
        int64_t v = 0;
        switch (sym[i]) {
        case D_CIN: v = d->cin; break;
        case D_COUT: v = d->cout; break;
        case D_TEMB: v = d->temb; break;
        case D_CTX: v = d->ctx; break;
        case D_FF8: v = 8 * d->cout; break;
        case D_FF4: v = 4 * d->cout; break;
        case D_ADD_IN: v = d->add_in; break;
        case D_K3: v = 3; break;
        case D_K1: v = 1; break;
        case D_PROJ1:
            if (d->linear_proj) continue;
            v = 1;
            break;
        }
        shape[n++] = v;
    }
    return n;
}

// Joins prefix and suffix with a dot (either may be empty) and the ".weight"/".bias" tail.
static void join_name(char* out, size_t n, const char* prefix, const char* suffix, const char* tail) {
    snprintf(out, n, "%s%s%s%s", prefix, (*prefix && *suffix) ? "." : "", suffix, tail);
}

static dato_status add_spec(builder* bld, const affine_spec* spec, int n_spec, void* module, const dims_t* d,
                            const char* dprefix, const char* lprefix) {
    for (int i = 0; i < n_spec; i++) {
        const affine_spec* s = &spec[i];
        if (s->only_if_cin_ne_cout && d->cin == d->cout) continue;
        dato_affine* a = (dato_affine*)((char*)module + s->field);
        char dn[128], ln[128];
        int64_t shape[4];
        int nd = resolve_dims(s->w, 4, d, shape);
        join_name(dn, sizeof dn, dprefix, s->diffusers, ".weight");
        join_name(ln, sizeof ln, lprefix, s->ldm, ".weight");
        dato_status st = dato_param_push(&bld->rows, dn, ln, nd, shape, s->gemm, &a->w);
        if (st) return st;
        if (s->b[0] != D_END) {
            nd = resolve_dims(s->b, 1, d, shape);
            join_name(dn, sizeof dn, dprefix, s->diffusers, ".bias");
            join_name(ln, sizeof ln, lprefix, s->ldm, ".bias");
            if ((st = dato_param_push(&bld->rows, dn, ln, nd, shape, 0, &a->b))) return st;
        }
    }
    return DATO_OK;
}

static dims_t module_dims(const dato_unet_config* c, int cin, int cout) {
    return (dims_t){.cin = cin, .cout = cout, .temb = c->time_embed_dim, .ctx = c->cross_attention_dim,
                    .add_in = c->add_embed_in, .linear_proj = c->use_linear_projection};
}

static dato_status add_module(builder* bld, dato_unet_layer* layer, dato_module_kind kind, int cin, int cout,
                              int level, const char* dprefix, const char* lprefix, dato_transformer_block** tb_next) {
    dato_unet* u = bld->u;
    const dato_unet_config* c = &u->cfg;
    dato_unet_module* m = &layer->mods[layer->n_mods++];
    m->kind = kind;
    m->cin = cin;
    m->cout = cout;
    dims_t d = module_dims(c, cin, cout);
    switch (kind) {
    case DATO_MOD_CONV_IN: return add_spec(bld, CONV3_SPEC, N_SPEC(CONV3_SPEC), &m->conv, &d, dprefix, lprefix);
    case DATO_MOD_DOWNSAMPLE: return add_spec(bld, DOWNSAMPLE_SPEC, N_SPEC(DOWNSAMPLE_SPEC), &m->conv, &d, dprefix, lprefix);
    case DATO_MOD_UPSAMPLE: return add_spec(bld, UPSAMPLE_SPEC, N_SPEC(UPSAMPLE_SPEC), &m->conv, &d, dprefix, lprefix);
    case DATO_MOD_RES: return add_spec(bld, RESBLOCK_SPEC, N_SPEC(RESBLOCK_SPEC), &m->res, &d, dprefix, lprefix);
    case DATO_MOD_TRANSFORMER: {
        int mid = level < 0;
        dato_transformer* tf = &m->tf;
        tf->depth = mid ? c->mid_transformer_depth : c->transformer_depth[level];
        tf->heads = c->heads[mid ? c->n_levels - 1 : level];
        tf->blocks = *tb_next;
        *tb_next += tf->depth;
        dato_status st = add_spec(bld, TRANSFORMER_SPEC, N_SPEC(TRANSFORMER_SPEC), tf, &d, dprefix, lprefix);
        for (int k = 0; k < tf->depth && !st; k++) {
            char dp[96], lp[96];
            snprintf(dp, sizeof dp, "%s.transformer_blocks.%d", dprefix, k);
            snprintf(lp, sizeof lp, "%s.transformer_blocks.%d", lprefix, k);
            st = add_spec(bld, TBLOCK_SPEC, N_SPEC(TBLOCK_SPEC), &tf->blocks[k], &d, dp, lp);
        }
        return st;
    }
    }
    return DATO_OK;
}

static void layer_init(dato_unet_layer* l, const char* name, int level, int cin, int cout) {
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->level = level;
    l->cin = cin;
    l->cout = cout;
}

static int total_transformer_blocks(const dato_unet_config* c) {
    int n = c->mid_transformer_depth;
    for (int i = 0; i < c->n_levels; i++)
        if (c->level_has_attn[i]) n += c->transformer_depth[i] * (2 * c->layers_per_block + 1);
    return n;
}

dato_status dato_unet_build(dato_unet* u, const dato_unet_config* cfg, dato_backend* be, dato_error* err) {
    memset(u, 0, sizeof *u);
    dato_status st = dato_unet_config_validate(cfg, err);
    if (st) return st;
    u->cfg = *cfg;
    u->be = be;
    u->n_branches = dato_unet_n_branches(cfg);
    const dato_unet_config* c = &u->cfg;
    int lpb = c->layers_per_block, nl = c->n_levels, c0 = c->block_channels[0];

    u->tblocks = calloc((size_t)total_transformer_blocks(c) + 1, sizeof *u->tblocks);
    if (!u->tblocks) return dato_fail(err, DATO_ERR_NOMEM, "unet: cannot allocate transformer blocks");
    dato_transformer_block* tb = u->tblocks;
    builder bld = {.u = u, .rows = {.params = &u->params, .n = &u->n_params, .numel = &u->n_weights,
                                    .device = be->device, .what = "unet", .err = err}};
    char dp[96], lp[96], name[32];

    // Top-level MLPs and the output head.
    dims_t d = module_dims(c, c0, c->time_embed_dim);
    if ((st = add_spec(&bld, LINEAR_SPEC, 1, &u->time_1, &d, "time_embedding.linear_1", "time_embed.0"))) goto fail;
    d.cin = c->time_embed_dim;
    if ((st = add_spec(&bld, LINEAR_SPEC, 1, &u->time_2, &d, "time_embedding.linear_2", "time_embed.2"))) goto fail;
    if (c->add_embed_in) {
        d.cin = c->add_embed_in;
        if ((st = add_spec(&bld, LINEAR_SPEC, 1, &u->add_1, &d, "add_embedding.linear_1", "label_emb.0.0"))) goto fail;
        d.cin = c->time_embed_dim;
        if ((st = add_spec(&bld, LINEAR_SPEC, 1, &u->add_2, &d, "add_embedding.linear_2", "label_emb.0.2"))) goto fail;
    }

    // Down path: every layer pushes one skip.
    int skip_ch[DATO_UNET_MAX_LAYERS], n_skip = 0, k = 0, ch = c0;
    dato_unet_layer* L = &u->down[k];
    layer_init(L, "input_blocks.0", 0, c->in_channels, c0);
    if ((st = add_module(&bld, L, DATO_MOD_CONV_IN, c->in_channels, c0, 0, "conv_in", "input_blocks.0.0", &tb))) goto fail;
    skip_ch[n_skip++] = c0;
    k++;
    for (int i = 0; i < nl; i++) {
        int co = c->block_channels[i];
        for (int j = 0; j < lpb; j++, k++) {
            L = &u->down[k];
            snprintf(name, sizeof name, "input_blocks.%d", k);
            layer_init(L, name, i, ch, co);
            snprintf(dp, sizeof dp, "down_blocks.%d.resnets.%d", i, j);
            snprintf(lp, sizeof lp, "input_blocks.%d.0", k);
            if ((st = add_module(&bld, L, DATO_MOD_RES, ch, co, i, dp, lp, &tb))) goto fail;
            if (c->level_has_attn[i]) {
                snprintf(dp, sizeof dp, "down_blocks.%d.attentions.%d", i, j);
                snprintf(lp, sizeof lp, "input_blocks.%d.1", k);
                if ((st = add_module(&bld, L, DATO_MOD_TRANSFORMER, co, co, i, dp, lp, &tb))) goto fail;
            }
            ch = co;
            skip_ch[n_skip++] = ch;
        }
        if (i < nl - 1) {
            L = &u->down[k];
            snprintf(name, sizeof name, "input_blocks.%d", k);
            layer_init(L, name, i, ch, ch);
            snprintf(dp, sizeof dp, "down_blocks.%d.downsamplers.0", i);
            snprintf(lp, sizeof lp, "input_blocks.%d.0", k);
            if ((st = add_module(&bld, L, DATO_MOD_DOWNSAMPLE, ch, ch, i, dp, lp, &tb))) goto fail;
            skip_ch[n_skip++] = ch;
            k++;
        }
    }

    // Mid: Res, Transformer, Res at the deepest level.
    L = &u->mid;
    layer_init(L, "middle_block", nl - 1, ch, ch);
    if ((st = add_module(&bld, L, DATO_MOD_RES, ch, ch, nl - 1, "mid_block.resnets.0", "middle_block.0", &tb))) goto fail;
    if ((st = add_module(&bld, L, DATO_MOD_TRANSFORMER, ch, ch, -1, "mid_block.attentions.0", "middle_block.1", &tb)))
        goto fail;
    if ((st = add_module(&bld, L, DATO_MOD_RES, ch, ch, nl - 1, "mid_block.resnets.1", "middle_block.2", &tb))) goto fail;

    // Up path: every layer pops one skip; diffusers counts up blocks from the deepest level.
    k = 0;
    for (int ui = 0; ui < nl; ui++) {
        int i = nl - 1 - ui, co = c->block_channels[i];
        for (int j = 0; j <= lpb; j++, k++) {
            L = &u->up[k];
            snprintf(name, sizeof name, "output_blocks.%d", k);
            layer_init(L, name, i, ch, co);
            L->skip_channels = skip_ch[--n_skip];
            snprintf(dp, sizeof dp, "up_blocks.%d.resnets.%d", ui, j);
            snprintf(lp, sizeof lp, "output_blocks.%d.0", k);
            if ((st = add_module(&bld, L, DATO_MOD_RES, ch + L->skip_channels, co, i, dp, lp, &tb))) goto fail;
            if (c->level_has_attn[i]) {
                snprintf(dp, sizeof dp, "up_blocks.%d.attentions.%d", ui, j);
                snprintf(lp, sizeof lp, "output_blocks.%d.1", k);
                if ((st = add_module(&bld, L, DATO_MOD_TRANSFORMER, co, co, i, dp, lp, &tb))) goto fail;
            }
            if (j == lpb && i > 0) {
                snprintf(dp, sizeof dp, "up_blocks.%d.upsamplers.0", ui);
                snprintf(lp, sizeof lp, "output_blocks.%d.%d", k, L->n_mods);
                if ((st = add_module(&bld, L, DATO_MOD_UPSAMPLE, co, co, i, dp, lp, &tb))) goto fail;
            }
            ch = co;
        }
    }

    d = module_dims(c, c0, c0);
    if ((st = add_spec(&bld, NORM_SPEC, 1, &u->norm_out, &d, "conv_norm_out", "out.0"))) goto fail;
    d.cout = c->out_channels;
    if ((st = add_spec(&bld, CONV3_SPEC, 1, &u->conv_out, &d, "conv_out", "out.2"))) goto fail;
    return DATO_OK;
fail:
    dato_unet_free(u);
    return st;
}

const dato_unet_param* dato_unet_find_param(const dato_unet* u, dato_layout layout, const char* name) {
    return dato_param_find(u->params, u->n_params, layout, name);
}
