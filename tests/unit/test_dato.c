// The DaTo pruning runtime on hand-made inputs with known answers (METHOD.md §3-4): the dynamics
// score, pooling, one base token per patch (argmax, ties to the lowest index), CFG-aligned base
// positions, the pruned-token count and choice (most similar first), and recovery: a pruned
// token receives the attention output of its most similar base token.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dato.h"
#include "test_util.h"
#include "unet_denoiser.h"

static const char* TINY =
    "{\"block_out_channels\": [4, 8], \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"norm_num_groups\": 4, \"attention_head_dim\": 1,"
    " \"cross_attention_dim\": 4, \"layers_per_block\": 1}";

static void test_pieces(void) {
    // diffscore: mean over channels of |a - b|
    float a[2 * 3] = {1, 2, 3, 4, 5, 6}, b[2 * 3] = {0, 4, 3, 4, 1, 0}, d[3];
    dato_diffscore(a, b, 1, 2, 3, d); // C = 2, HW = 3
    CHECK(d[0] == 0.5f && d[1] == 3.0f && d[2] == 3.0f, "diffscore %g %g %g", d[0], d[1], d[2]);
    // pooling 2x2
    float g[16], pooled[4];
    for (int i = 0; i < 16; i++) g[i] = (float)i;
    dato_pool_scores(g, 1, 4, 4, 2, pooled);
    CHECK(pooled[0] == 2.5f && pooled[1] == 4.5f && pooled[2] == 10.5f && pooled[3] == 12.5f, "pool %g %g %g %g",
          pooled[0], pooled[1], pooled[2], pooled[3]);
    // base choice: argmax per 2x2 patch, ties to the lowest index; a 3x3 grid has border patches
    float sc[16] = {0, 0, 9, 1, 0, 7, 3, 3, 0, 5, 1, 1, 5, 0, 1, 8};
    int32_t base[4];
    dato_choose_base(sc, 4, 4, 2, base);
    CHECK(base[0] == 5 && base[1] == 2 && base[2] == 9 && base[3] == 15, "bases %d %d %d %d", base[0], base[1],
          base[2], base[3]);
    float sc3[9] = {1, 1, 2, 1, 1, 1, 3, 3, 0};
    int32_t b3[4];
    dato_choose_base(sc3, 3, 3, 2, b3);
    CHECK(b3[0] == 0 && b3[1] == 2 && b3[2] == 6 && b3[3] == 8, "3x3 bases %d %d %d %d", b3[0], b3[1], b3[2], b3[3]);
    // prune selection: highest similarity first, ties to the lowest index, never a base token
    float sim[6] = {0.9f, 0.1f, 0.5f, 0.9f, 0.99f, 0.2f};
    uint8_t is_base[6] = {0, 1, 0, 0, 1, 0};
    int32_t pruned[6];
    dato_scored scratch[6];
    int n = dato_select_pruned(sim, is_base, 6, 2, 3, pruned, scratch);
    CHECK(n == 3 && pruned[0] == 0 && pruned[1] == 3 && pruned[2] == 2, "pruned %d: %d %d %d", n, pruned[0],
          pruned[1], pruned[2]);
    CHECK(dato_select_pruned(sim, is_base, 6, 2, 9, pruned, scratch) == 4, "clamp at N - P");
}

// Identity attention weights: q = k = v = x, one head.
static float eye[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, zero4[4];

static void test_runtime(void) {
    dato_error err = {{0}};
    dato_backend be;
    dato_unet_config cfg;
    dato_unet u;
    if (dato_backend_cpu_init(&be, 1, &err) || dato_unet_config_from_json_text(&cfg, TINY, "tiny", &err) ||
        dato_unet_build(&u, &cfg, &be, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    dato_affine id = {.w = dato_tensor_f32_2d(eye, 4, 4), .b = dato_tensor_f32_1d(zero4, 4)};
    dato_attention at = {.to_q = id, .to_k = id, .to_v = id, .to_out = id};
    dato_attn_site site = {.layer = "test", .level = 0, .h = 4, .w = 4, .heads = 1, .attn = &at,
                           .attend = dato_unet_self_attention};

    // Two recorded predictions whose difference gives the score grid of test_pieces (cond row),
    // and a different one for the uncond row.
    float sc[16] = {0, 0, 9, 1, 0, 7, 3, 3, 0, 5, 1, 1, 5, 0, 1, 8};
    float p0[2 * 4 * 16] = {0}, p1[2 * 4 * 16] = {0};
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 16; i++) {
            p1[(0 * 4 + c) * 16 + i] = (float)(15 - i); // uncond: scores decreasing with the index
            p1[(1 * 4 + c) * 16 + i] = sc[i];           // cond
        }
    dato_runtime* rt = NULL;
    dato_prune_config pc = dato_prune_config_default();
    CHECK(dato_unet_runtime_create(&rt, &u, 2, 1, 4, 4, &pc, &err) == DATO_OK, "%s", err.msg);
    if (!rt) return;
    dato_runtime_record(rt, p0);
    dato_runtime_record(rt, p1);
    dato_net_plan plan = {0};
    CHECK(dato_runtime_prepare(rt, 3, 0.0f, &plan, &err) == DATO_OK && plan.self_attn == NULL, "ratio 0 hooks");
    CHECK(dato_runtime_clamped(rt) == 0 && dato_runtime_warning(rt)[0] == 0, "a warning before any clamp");

    // Tokens: base b gets a unit axis; every other token points mostly at one chosen base.
    //   bases (from the scores): 5 -> e0, 2 -> e1, 9 -> e2, 15 -> e3.
    float x[2 * 16 * 4] = {0}, out[2 * 16 * 4];
    static const int axis_of[16] = {3, 1, 1, 0, 2, 0, 0, 1, 3, 2, 2, 0, 2, 3, 1, 3}; // most similar base's axis
    static const float off[16] = {0.5f, 0.4f, 0, 0.3f, 0.2f, 0, 0.6f, 0.1f, 0.7f, 0, 0.25f, 0.35f, 0.45f, 0.55f, 0.65f, 0};
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 16; i++) {
            x[(r * 16 + i) * 4 + axis_of[i]] = 1.0f;
            x[(r * 16 + i) * 4 + (axis_of[i] + 1) % 4] += off[i]; // smaller off: more similar
        }
    dato_tensor tx = dato_tensor_f32_3d(x, 2, 16, 4), to = dato_tensor_f32_3d(out, 2, 16, 4);
    size_t ws = 1 << 20;
    void* mem = malloc(ws);
    dato_arena arena = dato_arena_over(mem, ws);

    // ratio 0.9 asks for 14 of the 12 non-base tokens: clamped (and reported), every non-base token pruned.
    CHECK(dato_runtime_prepare(rt, 3, 0.9f, &plan, &err) == DATO_OK && plan.self_attn != NULL, "ratio 0.9 no hook");
    CHECK(plan.self_attn(plan.hook_ctx, &site, &to, &tx, &arena, &err) == DATO_OK, "%s", err.msg);
    int P = 0;
    const int32_t* b0 = dato_runtime_base(rt, 0, &P);
    const int32_t* b1 = dato_runtime_base(rt, 1, &P);
    CHECK(dato_runtime_clamped(rt) == 1, "the clamp was not reported");
    // Said to the caller (the library prints nothing): the ratio, the cap and the layer.
    CHECK(strstr(dato_runtime_warning(rt), "ratio 0.90") && strstr(dato_runtime_warning(rt), "the 12 non-base") &&
              strstr(dato_runtime_warning(rt), site.layer),
          "clamp warning '%s'", dato_runtime_warning(rt));
    CHECK(P == 4 && b1[0] == 5 && b1[1] == 2 && b1[2] == 9 && b1[3] == 15, "cond bases %d %d %d %d", b1[0], b1[1],
          b1[2], b1[3]);
    CHECK(memcmp(b0, b1, 4 * sizeof *b0) == 0, "the uncond row does not take its cond twin's base positions");
    // Expected: attention over the 4 base tokens (ascending index: 2, 5, 9, 15), then every token
    // gets the output of the base on its axis.
    static const int base_on_axis[4] = {5, 2, 9, 15};
    static const int kept[4] = {2, 5, 9, 15};
    double worst = 0;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 16; i++) {
            int src = base_on_axis[axis_of[i]];
            const float* q = x + (r * 16 + src) * 4;
            double w[4], sum = 0, m = -1e30;
            for (int j = 0; j < 4; j++) {
                const float* k = x + (r * 16 + kept[j]) * 4;
                w[j] = 0.5 * (q[0] * k[0] + q[1] * k[1] + q[2] * k[2] + q[3] * k[3]);
                m = w[j] > m ? w[j] : m;
            }
            for (int j = 0; j < 4; j++) sum += (w[j] = exp(w[j] - m));
            for (int c = 0; c < 4; c++) {
                double e = 0;
                for (int j = 0; j < 4; j++) e += w[j] / sum * x[(r * 16 + kept[j]) * 4 + c];
                double dd = fabs(e - out[(r * 16 + i) * 4 + c]);
                worst = dd > worst ? dd : worst;
            }
        }
    printf("ratio 0.9 (clamped), 16 tokens, 4 bases: recovered outputs max |diff| = %.2e (tol 1e-6)\n", worst);
    CHECK(worst <= 1e-6, "recovery: max diff %.2e", worst);

    // ratio 0.25: n = 4, the 4 non-base tokens most similar to their base (smallest offsets:
    // 7 (0.1), 4 (0.2), 10 (0.25), 3 (0.3)) are pruned; the others attend with the bases, so
    // their outputs differ from their base's.
    CHECK(dato_runtime_prepare(rt, 4, 0.25f, &plan, &err) == DATO_OK, "prepare");
    // The depth's blocks are known now, but 0.25 is not a schedule ratio: it has no graph of its own
    // (its tenths, 3, were 0.3's), so the plan is not replayable.
    CHECK(!plan.replayable, "ratio 0.25 replayable as variant %d", plan.variant);
    arena.top = 0;
    CHECK(plan.self_attn(plan.hook_ctx, &site, &to, &tx, &arena, &err) == DATO_OK, "%s", err.msg);
    static const int pruned_expected[4] = {7, 4, 10, 3};
    int ok = 1;
    for (int k = 0; k < 4; k++) {
        int i = pruned_expected[k], src = base_on_axis[axis_of[i]];
        ok &= memcmp(out + i * 4, out + src * 4, 4 * sizeof(float)) == 0;
    }
    ok &= memcmp(out + 0 * 4, out + 15 * 4, 4 * sizeof(float)) != 0; // token 0 is kept
    CHECK(ok, "ratio 0.25: the pruned set or its recovery is wrong");

    // Before two predictions exist: seeded random bases, one inside each patch, reproducible.
    CHECK(dato_runtime_reset(rt, 4, 2, pc.seed, &err) != DATO_OK && strstr(err.msg, "made for 1..2 rows"),
          "a reset to more rows than the runtime was made for: '%s'", err.msg);
    CHECK(dato_runtime_reset(rt, 2, 1, pc.seed, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_runtime_clamped(rt) == 0 && dato_runtime_warning(rt)[0] == 0, "a reset kept the last trajectory's clamp");
    CHECK(dato_runtime_prepare(rt, 0, 0.5f, &plan, &err) == DATO_OK, "prepare");
    CHECK(plan.replayable && plan.variant == 3 && plan.variant == dato_schedule_ratio_index(0.5f),
          "ratio 0.5: replayable %d, variant %d (its index in dato_schedule_ratios: 3)", plan.replayable, plan.variant);
    arena.top = 0;
    plan.self_attn(plan.hook_ctx, &site, &to, &tx, &arena, &err);
    int32_t first[4];
    memcpy(first, dato_runtime_base(rt, 1, &P), sizeof first);
    CHECK(dato_runtime_prepare(rt, 0, 0.5f, &plan, &err) == DATO_OK, "prepare");
    arena.top = 0;
    plan.self_attn(plan.hook_ctx, &site, &to, &tx, &arena, &err);
    const int32_t* again = dato_runtime_base(rt, 1, &P);
    static const int patch_of[16] = {0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3};
    CHECK(memcmp(first, again, sizeof first) == 0, "random bases are not reproducible");
    for (int p = 0; p < 4; p++) CHECK(patch_of[first[p]] == p, "random base %d outside its patch", first[p]);

    free(mem);
    dato_runtime_destroy(rt);
    dato_unet_free(&u);
    dato_backend_destroy(&be);
}

int main(void) {
    test_pieces();
    test_runtime();
    return test_summary();
}
