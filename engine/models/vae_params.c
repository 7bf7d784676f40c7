// The VAE decoder's parameter table: each parameter with its diffusers and its LDM name
// (ENGINE.md §9), its shape and the slot it fills. The shared loader (engine/io/param_table.h) and
// the random initializer walk it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae.h"

// A row as dato_param_push makes it, with the attention matrices' extras: the older diffusers
// name (legacy, "" for none) and the (C, C, 1, 1) conv form an LDM file stores (matrix).
static dato_status push_param(dato_param_builder* bld, const char* dname, const char* lname, const char* legacy,
                              int ndim, const int64_t* shape, int matrix, int gemm, dato_tensor* slot) {
    DATO_TRY(dato_param_push(bld, dname, lname, ndim, shape, gemm, slot));
    dato_param* p = &(*bld->params)[*bld->n - 1];
    int len = snprintf(p->legacy, sizeof p->legacy, "%s", legacy);
    if (len < 0 || (size_t)len >= sizeof p->legacy)
        return dato_fail(bld->err, DATO_ERR_INVALID, "vae: parameter name too long: %s", legacy);
    p->matrix = matrix;
    return DATO_OK;
}

typedef enum { K_NORM, K_CONV1, K_CONV3, K_MATRIX } affine_kind;

// Adds "<prefix>.<suffix>.weight" and ".bias" in both layouts (an empty prefix drops its dot). legacy: the old diffusers suffix or NULL.
static dato_status add_affine(dato_param_builder* bld, dato_affine* a, affine_kind kind, int cin, int cout,
                              const char* dprefix, const char* dsuffix, const char* lprefix, const char* lsuffix,
                              const char* legacy) {
    int64_t w[4] = {cout, cin, 3, 3}, b[1] = {cout};
    int ndim = kind == K_NORM ? 1 : kind == K_MATRIX ? 2 : 4;
    if (kind == K_CONV1) w[2] = w[3] = 1;
    char dn[128], ln[128], on[128] = "";
    static const char* const tails[2] = {"weight", "bias"};
    for (int t = 0; t < 2; t++) {
        const char* dsep = *dprefix ? "." : "";
        const char* lsep = *lprefix ? "." : "";
        snprintf(dn, sizeof dn, "%s%s%s.%s", dprefix, dsep, dsuffix, tails[t]);
        snprintf(ln, sizeof ln, "%s%s%s.%s", lprefix, lsep, lsuffix, tails[t]);
        if (legacy) snprintf(on, sizeof on, "%s%s%s.%s", dprefix, dsep, legacy, tails[t]);
        dato_status st = t == 0 ? push_param(bld, dn, ln, on, ndim, w, kind == K_MATRIX, kind != K_NORM, &a->w)
                                : push_param(bld, dn, ln, on, 1, b, 0, 0, &a->b);
        if (st) return st;
    }
    return DATO_OK;
}

static dato_status add_resblock(dato_param_builder* bld, dato_vae_resblock* r, int cin, int cout, const char* dp,
                                const char* lp) {
    r->cin = cin;
    r->cout = cout;
    dato_status st;
    if ((st = add_affine(bld, &r->norm1, K_NORM, cin, cin, dp, "norm1", lp, "norm1", NULL))) return st;
    if ((st = add_affine(bld, &r->conv1, K_CONV3, cin, cout, dp, "conv1", lp, "conv1", NULL))) return st;
    if ((st = add_affine(bld, &r->norm2, K_NORM, cout, cout, dp, "norm2", lp, "norm2", NULL))) return st;
    if ((st = add_affine(bld, &r->conv2, K_CONV3, cout, cout, dp, "conv2", lp, "conv2", NULL))) return st;
    if (cin != cout)
        if ((st = add_affine(bld, &r->conv_shortcut, K_CONV1, cin, cout, dp, "conv_shortcut", lp, "nin_shortcut", NULL)))
            return st;
    return DATO_OK;
}

dato_status dato_vae_build(dato_vae* v, const dato_vae_config* cfg, dato_backend* be, dato_error* err) {
    memset(v, 0, sizeof *v);
    dato_status st = dato_vae_config_validate(cfg, err);
    if (st) return st;
    v->cfg = *cfg;
    v->be = be;
    const dato_vae_config* c = &v->cfg;
    int nl = c->n_levels, top = c->block_channels[nl - 1], zc = c->latent_channels;
    dato_param_builder bld = {.params = &v->params, .n = &v->n_params, .numel = &v->n_weights,
                              .device = be->device, .what = "vae", .err = err};
    char dp[96], lp[96];

    if (c->post_quant_conv &&
        (st = add_affine(&bld, &v->post_quant_conv, K_CONV1, zc, zc, "", "post_quant_conv", "", "post_quant_conv", NULL)))
        goto fail;
    if ((st = add_affine(&bld, &v->conv_in, K_CONV3, zc, top, "decoder", "conv_in", "decoder", "conv_in", NULL))) goto fail;

    for (int k = 0; k < 2; k++) {
        snprintf(dp, sizeof dp, "decoder.mid_block.resnets.%d", k);
        snprintf(lp, sizeof lp, "decoder.mid.block_%d", k + 1);
        if ((st = add_resblock(&bld, &v->mid_res[k], top, top, dp, lp))) goto fail;
        if (k == 1 || !c->mid_attention) continue;
        const char* da = "decoder.mid_block.attentions.0";
        const char* la = "decoder.mid.attn_1";
        dato_vae_attention* at = &v->mid_attn;
        if ((st = add_affine(&bld, &at->norm, K_NORM, top, top, da, "group_norm", la, "norm", NULL))) goto fail;
        if ((st = add_affine(&bld, &at->q, K_MATRIX, top, top, da, "to_q", la, "q", "query"))) goto fail;
        if ((st = add_affine(&bld, &at->k, K_MATRIX, top, top, da, "to_k", la, "k", "key"))) goto fail;
        if ((st = add_affine(&bld, &at->v, K_MATRIX, top, top, da, "to_v", la, "v", "value"))) goto fail;
        if ((st = add_affine(&bld, &at->out, K_MATRIX, top, top, da, "to_out.0", la, "proj_out", "proj_attn")))
            goto fail;
    }

    // Up blocks: diffusers counts from the deepest level, LDM by level (up.{n-1-i}).
    int ch = top;
    for (int i = 0; i < nl; i++) {
        int level = nl - 1 - i, co = c->block_channels[level];
        dato_vae_up_block* ub = &v->up[i];
        ub->n_res = c->layers_per_block + 1;
        for (int j = 0; j < ub->n_res; j++) {
            snprintf(dp, sizeof dp, "decoder.up_blocks.%d.resnets.%d", i, j);
            snprintf(lp, sizeof lp, "decoder.up.%d.block.%d", level, j);
            if ((st = add_resblock(&bld, &ub->res[j], ch, co, dp, lp))) goto fail;
            ch = co;
        }
        ub->has_upsample = level > 0;
        if (ub->has_upsample) {
            snprintf(dp, sizeof dp, "decoder.up_blocks.%d.upsamplers.0", i);
            snprintf(lp, sizeof lp, "decoder.up.%d.upsample", level);
            if ((st = add_affine(&bld, &ub->upsample, K_CONV3, co, co, dp, "conv", lp, "conv", NULL))) goto fail;
        }
    }

    int c0 = c->block_channels[0];
    if ((st = add_affine(&bld, &v->norm_out, K_NORM, c0, c0, "decoder", "conv_norm_out", "decoder", "norm_out", NULL))) goto fail;
    if ((st = add_affine(&bld, &v->conv_out, K_CONV3, c0, c->out_channels, "decoder", "conv_out", "decoder", "conv_out",
                          NULL)))
        goto fail;
    return DATO_OK;
fail:
    dato_vae_free(v);
    return st;
}

const dato_vae_param* dato_vae_find_param(const dato_vae* v, dato_layout layout, const char* name) {
    return dato_param_find(v->params, v->n_params, layout, name);
}
