// MAC counts of the real SD1.5 and SDXL UNets (built on the null backend: no weights):
// the full SD1.5 step against ENGINE.md §11, partial steps by cache depth, and the exact
// saving of DaTo pruning, each against a formula written out by hand here.
#include <stdio.h>
#include <string.h>

#include "cost.h"
#include "dato.h"
#include "test_util.h"
#include "unet_denoiser.h"

#define G 1e9

// The default pruning level from the UNet's site layout (dato_default_max_level).
static int default_max_level(const dato_unet* u) {
    dato_site_layout sites;
    dato_unet_site_layout(u, &sites);
    return dato_default_max_level(&sites);
}


static int build(dato_unet* u, dato_backend* be, const char* model) {
    char path[128];
    snprintf(path, sizeof path, "tests/fixtures/manifests/%s_config.json", model);
    dato_error err = {{0}};
    dato_unet_config cfg;
    dato_status st = dato_unet_config_from_json(&cfg, path, &err);
    if (!st) st = dato_unet_build(u, &cfg, be, &err);
    CHECK(st == DATO_OK, "%s: %s", model, err.msg);
    return st == DATO_OK;
}

static void print_list(const dato_unet_macs* l) {
    const dato_layer_macs* e[2 * DATO_UNET_MAX_LAYERS + 3];
    int n = 0;
    e[n++] = &l->time_embed;
    for (int k = 0; k < l->n_branches; k++) e[n++] = &l->down[k];
    e[n++] = &l->mid;
    for (int j = 0; j < l->n_branches; j++) e[n++] = &l->up[j];
    e[n++] = &l->out;
    printf("  %-16s %9s %9s %9s %9s %9s  (GMAC)\n", "layer", "conv", "linear", "attn", "sim", "total");
    for (int i = 0; i < n; i++)
        printf("  %-16s %9.4f %9.4f %9.4f %9.4f %9.4f\n", e[i]->name, e[i]->macs.conv / G, e[i]->macs.linear / G,
               e[i]->macs.attention / G, e[i]->macs.similarity / G, e[i]->macs.total / G);
}

static void test_sd15(void) {
    dato_backend be;
    dato_backend_null_init(&be);
    dato_unet u;
    if (!build(&u, &be, "sd15")) return;
    dato_error err = {{0}};
    int nb = u.n_branches;
    CHECK(nb == 12, "sd15 has %d branches", nb);
    CHECK(default_max_level(&u) == 0, "sd15 default max level %d", default_max_level(&u));

    // Full step, batch 1, 64x64, 77 tokens: ENGINE.md §11 to its printed precision (0.05 G).
    dato_unet_macs list;
    dato_macs full;
    CHECK(dato_unet_layer_macs_list(&u, 1, 64, 64, 77, 0.0f, -1, 2, &list, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, nb + 1, 0.0f, -1, 2, &full, &err) == DATO_OK, "%s", err.msg);
    printf("sd15 per layer, batch 1, 64x64, seq 77, no pruning:\n");
    print_list(&list);
    double no_attn = full.conv + full.linear;
    printf("sd15 full step: conv %.4f linear %.4f attention %.4f total %.4f GMAC; %.4f without the attention "
           "matmuls\n", full.conv / G, full.linear / G, full.attention / G, full.total / G, no_attn / G);
    printf("  |diff| to ENGINE.md: conv %.4f linear %.4f attention %.4f total %.4f no-attn %.4f G\n",
           fabs(full.conv / G - 222.0), fabs(full.linear / G - 116.6), fabs(full.attention / G - 63.0),
           fabs(full.total / G - 401.6), fabs(no_attn / G - 338.6));
    CHECK(fabs(full.conv / G - 222.0) < 0.05, "conv %.4f G", full.conv / G);
    CHECK(fabs(full.linear / G - 116.6) < 0.05, "linear %.4f G", full.linear / G);
    CHECK(fabs(full.attention / G - 63.0) < 0.05, "attention %.4f G", full.attention / G);
    CHECK(fabs(full.total / G - 401.6) < 0.05, "total %.4f G", full.total / G);
    CHECK(fabs(no_attn / G - 338.6) < 0.05, "without attention matmuls %.4f G", no_attn / G);
    CHECK(full.similarity == 0.0, "similarity %g without pruning", full.similarity);

    // Batch multiplies everything.
    dato_macs full2;
    CHECK(dato_unet_step_macs(&u, 2, 64, 64, 77, nb + 1, 0.0f, -1, 2, &full2, &err) == DATO_OK, "%s", err.msg);
    CHECK(full2.total == 2 * full.total, "batch 2 total %.0f vs 2 x %.0f", full2.total, full.total);

    // Depth: 0 is free, each depth strictly cheaper than the next.
    dato_macs prev;
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, 0, 0.0f, -1, 2, &prev, &err) == DATO_OK, "%s", err.msg);
    CHECK(prev.total == 0.0, "depth 0 costs %g", prev.total);
    for (int d = 1; d <= nb + 1; d++) {
        dato_macs m;
        CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, d, 0.0f, -1, 2, &m, &err) == DATO_OK, "%s", err.msg);
        CHECK(m.total > prev.total, "depth %d (%.4f G) not above depth %d (%.4f G)", d, m.total / G, d - 1,
              prev.total / G);
        printf("  depth %2d: %8.4f GMAC\n", d, m.total / G);
        prev = m;
    }

    // Depth 1 by hand: time MLP + conv_in + output_blocks.11 (Res 640 -> 320, Transformer 320 at
    // 64x64, 1x1-conv projections) + conv_out.
    double N = 64 * 64, C = 320, S = 77, D = 768, T = 1280;
    double conv = 9 * 4 * C * N                                    // conv_in
                  + 9 * 2 * C * C * N + 9 * C * C * N + 2 * C * C * N // Res conv1, conv2, shortcut
                  + 2 * N * C * C                                    // proj_in, proj_out (1x1 convs)
                  + 9 * C * 4 * N;                                   // conv_out
    double linear = C * T + T * T                                    // time MLP
                    + T * C                                          // time_emb_proj
                    + 4 * N * C * C                                  // self q, k, v, out
                    + 2 * N * C * C + 2 * S * D * C                  // cross q, out; k, v
                    + 8 * N * C * C + 4 * N * C * C;                 // GEGLU
    double attention = 2 * N * N * C + 2 * N * S * C;
    dato_macs d1;
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, 1, 0.0f, -1, 2, &d1, &err) == DATO_OK, "%s", err.msg);
    printf("  depth 1 by hand: conv %.0f linear %.0f attention %.0f; counted %.0f %.0f %.0f\n", conv, linear,
           attention, d1.conv, d1.linear, d1.attention);
    CHECK(d1.conv == conv && d1.linear == linear && d1.attention == attention && d1.similarity == 0.0,
          "depth 1 differs from the hand count");

    // Pruning 0.5 at max_level 0 (patch 2) changes only the self-attention of the five 64x64 blocks
    // (input_blocks.1, .2, output_blocks.9, .10, .11): n = min(2048, 4096 - 1024) = 2048 pruned.
    double P = N / 4, kept = N - 2048;
    double d_linear = 5 * 4 * (N - kept) * C * C, d_attention = 5 * 2 * (N * N - kept * kept) * C;
    double similarity = 5 * (N * P * C + N * C);
    dato_macs pr;
    dato_unet_macs plist;
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, nb + 1, 0.5f, 0, 2, &pr, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_unet_layer_macs_list(&u, 1, 64, 64, 77, 0.5f, 0, 2, &plist, &err) == DATO_OK, "%s", err.msg);
    printf("  ratio 0.5, level 0: total %.4f G (saves %.4f G; similarity %.4f G)\n", pr.total / G,
           (full.total - pr.total) / G, pr.similarity / G);
    CHECK(pr.conv == full.conv, "pruning changed conv by %g", pr.conv - full.conv);
    CHECK(full.linear - pr.linear == d_linear, "linear saving %.0f, by hand %.0f", full.linear - pr.linear, d_linear);
    CHECK(full.attention - pr.attention == d_attention, "attention saving %.0f, by hand %.0f",
          full.attention - pr.attention, d_attention);
    CHECK(pr.similarity == similarity, "similarity %.0f, by hand %.0f", pr.similarity, similarity);
    CHECK(plist.n_clamped == 0, "%d clamped at ratio 0.5", plist.n_clamped);
    int changed = 0;
    for (int k = 0; k < nb; k++) changed += list.down[k].macs.total != plist.down[k].macs.total;
    for (int j = 0; j < nb; j++) changed += list.up[j].macs.total != plist.up[j].macs.total;
    CHECK(changed == 5 && plist.down[1].macs.similarity > 0 && plist.down[2].macs.similarity > 0 &&
              plist.up[9].macs.similarity > 0 && plist.up[10].macs.similarity > 0 && plist.up[11].macs.similarity > 0,
          "%d layers changed by pruning, expected the five 64x64 ones", changed);

    // Ratio 0.9 exceeds the cap N - N/4: clamped to 3072 in every one of the 5 blocks.
    CHECK(dato_unet_layer_macs_list(&u, 1, 64, 64, 77, 0.9f, 0, 2, &plist, &err) == DATO_OK, "%s", err.msg);
    CHECK(plist.n_clamped == 5, "%d clamped at ratio 0.9", plist.n_clamped);
    dato_macs a, b;
    dato_unet_macs_at_depth(&plist, nb + 1, &a, &err);
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, nb + 1, 0.75f, 0, 2, &b, &err) == DATO_OK, "%s", err.msg);
    CHECK(a.total == b.total, "ratio 0.9 (clamped) %.0f != ratio 0.75 (the cap) %.0f", a.total, b.total);

    // Bad arguments are errors, not crashes.
    dato_macs bad;
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, nb + 2, 0.0f, -1, 2, &bad, &err) == DATO_ERR_INVALID, "depth 14");
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, -1, 0.0f, -1, 2, &bad, &err) == DATO_ERR_INVALID, "depth -1");
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, 1, 1.0f, -1, 2, &bad, &err) == DATO_ERR_INVALID, "ratio 1");
    CHECK(dato_unet_step_macs(&u, 1, 63, 64, 77, 1, 0.0f, -1, 2, &bad, &err) == DATO_ERR_INVALID, "63x64");
    CHECK(dato_unet_step_macs(&u, 0, 64, 64, 77, 1, 0.0f, -1, 2, &bad, &err) == DATO_ERR_INVALID, "batch 0");
    CHECK(dato_unet_step_macs(&u, 1, 64, 64, 77, 1, 0.5f, -1, 0, &bad, &err) == DATO_ERR_INVALID, "patch 0");
    CHECK(dato_unet_step_macs(NULL, 1, 64, 64, 77, 1, 0.0f, -1, 2, &bad, &err) == DATO_ERR_INVALID, "NULL unet");
    dato_unet_free(&u);
}

static void test_sdxl(void) {
    dato_backend be;
    dato_backend_null_init(&be);
    dato_unet u;
    if (!build(&u, &be, "sdxl")) return;
    dato_error err = {{0}};
    int nb = u.n_branches;
    CHECK(default_max_level(&u) == 1, "sdxl default max level %d", default_max_level(&u));
    dato_macs full, lvl0, lvl1, dflt;
    CHECK(dato_unet_step_macs(&u, 1, 128, 128, 77, nb + 1, 0.0f, -1, 2, &full, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_unet_step_macs(&u, 1, 128, 128, 77, nb + 1, 0.5f, 0, 2, &lvl0, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_unet_step_macs(&u, 1, 128, 128, 77, nb + 1, 0.5f, 1, 2, &lvl1, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_unet_step_macs(&u, 1, 128, 128, 77, nb + 1, 0.5f, -1, 2, &dflt, &err) == DATO_OK, "%s", err.msg);
    printf("sdxl full step, batch 1, 128x128, seq 77: conv %.4f linear %.4f attention %.4f total %.4f GMAC\n",
           full.conv / G, full.linear / G, full.attention / G, full.total / G);
    printf("  ratio 0.5: max_level 0 total %.4f G, max_level 1 total %.4f G\n", lvl0.total / G, lvl1.total / G);
    CHECK(full.total > 0, "sdxl total %g", full.total);
    CHECK(lvl0.total == full.total, "max_level 0 changed sdxl by %g (level 0 has no attention)",
          lvl0.total - full.total);
    CHECK(lvl1.total < full.total && lvl1.similarity > 0, "max_level 1 saves nothing on sdxl");
    CHECK(dflt.total == lvl1.total, "default max level is not level 1 on sdxl");
    dato_unet_free(&u);
}

int main(void) {
    test_sd15();
    test_sdxl();
    return test_summary();
}
