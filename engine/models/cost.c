// Analytic MAC counts of a UNet call: walks the layer list in forward order, tracking the
// spatial size, and counts each module's products (see cost.h for what counts and what does not).
#include "cost.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dato.h"
#include "unet_denoiser.h"

// Sizes and pruning shared by every module of one count. Products stay below 2^53: exact doubles.
typedef struct {
    const dato_unet_config* cfg;
    double B;            // batch rows
    double S;            // context tokens
    float ratio;
    int max_level, patch;
    int n_clamped;
} cost_ctx;

static void macs_add(dato_macs* a, const dato_macs* b) {
    a->conv += b->conv;
    a->linear += b->linear;
    a->attention += b->attention;
    a->similarity += b->similarity;
    a->total += b->total;
}

static void macs_finish(dato_macs* m) { m->total = m->conv + m->linear + m->attention + m->similarity; }

// Self-attention of one transformer block over N = H x W tokens of C channels at `level`,
// pruned per METHOD.md §4 when the block is prunable.
static void self_attention_macs(cost_ctx* cc, dato_macs* m, int level, double H, double W, double C) {
    double N = H * W, kept = N;
    if (cc->ratio > 0.0f && level <= cc->max_level) {
        double s = cc->patch, P = ceil(H / s) * ceil(W / s);
        double n = floorf(cc->ratio * (float)N + 1e-4f); // the runtime's rounding, in float (engine/runtime/dato.c)
        if (n > N - P) {
            n = N - P;
            cc->n_clamped++;
        }
        kept = N - n;
        m->similarity += cc->B * (N * P * C + N * C); // cosine products + token norms
    }
    m->linear += cc->B * 4 * kept * C * C;           // q, k, v, out
    m->attention += cc->B * 2 * kept * kept * C;     // QK^T, AV
}

// One Transformer2D of `depth` blocks on an H x W grid of C channels.
static void transformer_macs(cost_ctx* cc, dato_macs* m, const dato_transformer* tf, int level, double H, double W,
                             double C) {
    double N = H * W, B = cc->B, S = cc->S, D = cc->cfg->cross_attention_dim;
    double proj = B * 2 * N * C * C; // proj_in + proj_out
    if (cc->cfg->use_linear_projection) m->linear += proj;
    else m->conv += proj;
    for (int k = 0; k < tf->depth; k++) {
        self_attention_macs(cc, m, level, H, W, C);
        m->linear += B * (2 * N * C * C + 2 * S * D * C); // cross: q, out on N tokens; k, v on S context tokens
        m->attention += B * 2 * N * S * C;                // cross QK^T, AV
        m->linear += B * (N * C * 8 * C + N * 4 * C * C); // GEGLU C -> 8C, 4C -> C
    }
}

// One layer whose input is (cin, *h, *w); *h, *w become its output's size.
static dato_macs layer_macs(cost_ctx* cc, const dato_unet_layer* L, int64_t* h, int64_t* w) {
    dato_macs m = {0};
    double B = cc->B, T = cc->cfg->time_embed_dim;
    for (int i = 0; i < L->n_mods; i++) {
        const dato_unet_module* mod = &L->mods[i];
        double ci = mod->cin, co = mod->cout, HW = (double)*h * (double)*w;
        switch (mod->kind) {
        case DATO_MOD_CONV_IN:
            m.conv += B * 9 * ci * co * HW;
            break;
        case DATO_MOD_RES:
            m.conv += B * (9 * ci * co + 9 * co * co) * HW;
            if (mod->cin != mod->cout) m.conv += B * ci * co * HW; // 1x1 shortcut
            m.linear += B * T * co;                                // time_emb_proj
            break;
        case DATO_MOD_TRANSFORMER:
            transformer_macs(cc, &m, &mod->tf, L->level, (double)*h, (double)*w, co);
            break;
        case DATO_MOD_DOWNSAMPLE: // 3x3, stride 2, padding 1
            *h = (*h + 1) / 2;
            *w = (*w + 1) / 2;
            m.conv += B * 9 * ci * co * (double)*h * (double)*w;
            break;
        case DATO_MOD_UPSAMPLE: // nearest 2x, then 3x3
            *h *= 2;
            *w *= 2;
            m.conv += B * 9 * ci * co * (double)*h * (double)*w;
            break;
        }
    }
    macs_finish(&m);
    return m;
}

static void set_entry(dato_layer_macs* e, const char* name, dato_macs m) {
    snprintf(e->name, sizeof e->name, "%s", name);
    e->macs = m;
}

dato_status dato_unet_layer_macs_list(const dato_unet* u, int batch, int h, int w, int seq, float ratio, int max_level,
                                      int patch, dato_unet_macs* out, dato_error* err) {
    if (!u || !out) return dato_fail(err, DATO_ERR_INVALID, "cost: unet and out must not be NULL");
    const dato_unet_config* c = &u->cfg;
    int div = 1 << (c->n_levels - 1);
    if (batch < 1 || seq < 1 || h < 1 || w < 1 || h % div || w % div)
        return dato_fail(err, DATO_ERR_INVALID,
                         "cost: batch %d, seq %d, latent %dx%d: need positive sizes, latent a multiple of %d", batch,
                         seq, h, w, div);
    if (!(ratio >= 0.0f && ratio < 1.0f))
        return dato_fail(err, DATO_ERR_INVALID, "cost: prune ratio %g outside [0, 1)", (double)ratio);
    if (patch < 1) return dato_fail(err, DATO_ERR_INVALID, "cost: patch size %d < 1", patch);
    if (u->n_branches < 1 || u->n_branches > DATO_UNET_MAX_LAYERS)
        return dato_fail(err, DATO_ERR_INVALID, "cost: unet has %d branches (not built?)", u->n_branches);

    memset(out, 0, sizeof *out);
    out->n_branches = u->n_branches;
    dato_site_layout sites;
    dato_unet_site_layout(u, &sites);
    cost_ctx cc = {.cfg = c, .B = batch, .S = seq, .ratio = ratio,
                   .max_level = max_level < 0 ? dato_default_max_level(&sites) : max_level, .patch = patch};
    double B = batch, T = c->time_embed_dim, c0 = c->block_channels[0];

    dato_macs te = {.linear = B * (c0 * T + T * T)}; // time MLP: c0 -> T -> T
    if (c->add_embed_in) te.linear += B * ((double)c->add_embed_in * T + T * T); // SDXL add_embedding
    macs_finish(&te);
    set_entry(&out->time_embed, "time_embed", te);

    int64_t hh = h, ww = w;
    for (int k = 0; k < u->n_branches; k++)
        set_entry(&out->down[k], u->down[k].name, layer_macs(&cc, &u->down[k], &hh, &ww));
    set_entry(&out->mid, u->mid.name, layer_macs(&cc, &u->mid, &hh, &ww));
    for (int j = 0; j < u->n_branches; j++)
        set_entry(&out->up[j], u->up[j].name, layer_macs(&cc, &u->up[j], &hh, &ww));
    if (hh != h || ww != w)
        return dato_fail(err, DATO_ERR_INVALID, "cost: layer list maps %dx%d to %lldx%lld", h, w, (long long)hh,
                         (long long)ww);

    dato_macs head = {.conv = B * 9 * c0 * c->out_channels * (double)h * (double)w}; // conv_out 3x3
    macs_finish(&head);
    set_entry(&out->out, "out", head);
    out->n_clamped = cc.n_clamped;
    return DATO_OK;
}

dato_status dato_unet_macs_at_depth(const dato_unet_macs* list, int depth, dato_macs* out, dato_error* err) {
    if (!list || !out) return dato_fail(err, DATO_ERR_INVALID, "cost: list and out must not be NULL");
    int nb = list->n_branches;
    if (depth < 0 || depth > nb + 1)
        return dato_fail(err, DATO_ERR_INVALID, "cost: depth %d outside 0..%d", depth, nb + 1);
    memset(out, 0, sizeof *out);
    if (depth == 0) return DATO_OK; // the previous prediction is reused
    int full = depth == nb + 1, n_down = full ? nb : depth;
    macs_add(out, &list->time_embed.macs);
    for (int k = 0; k < n_down; k++) macs_add(out, &list->down[k].macs);
    if (full) macs_add(out, &list->mid.macs);
    for (int j = full ? 0 : nb - depth; j < nb; j++) macs_add(out, &list->up[j].macs);
    macs_add(out, &list->out.macs);
    return DATO_OK;
}

dato_status dato_unet_step_macs(const dato_unet* u, int batch, int h, int w, int seq, int depth, float ratio,
                                int max_level, int patch, dato_macs* out, dato_error* err) {
    dato_unet_macs list;
    DATO_TRY(dato_unet_layer_macs_list(u, batch, h, w, seq, ratio, max_level, patch, &list, err));
    return dato_unet_macs_at_depth(&list, depth, out, err);
}
