// The UNet parameter table against the complete tensor manifests of the real SD1.5, SD2.1 and
// SDXL-base UNets (tools/make_manifests.py, made with diffusers on the meta device): every
// tensor maps in both layouts with its shape, the LDM config inferred from shapes equals the
// diffusers config, and a missing, misshaped or unexpected tensor is reported by name.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table_source.h"
#include "test_util.h"
#include "unet.h"
#include "unet_load.h"

#define LDM_PREFIX "model.diffusion_model."


// Reads a manifest into two name tables: diffusers names and prefixed LDM names.
static int read_manifest(const char* path, table_source* dif, table_source* ldm, long long* params) {
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    int cap = 4096, n = 0;
    dif->t = calloc((size_t)cap, sizeof *dif->t);
    ldm->t = calloc((size_t)cap, sizeof *ldm->t);
    char line[1024];
    *params = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *dn = strtok(line, "\t"), *ln = strtok(NULL, "\t"), *sh = strtok(NULL, "\t\n");
        if (!dn || !ln || !sh || n == cap) break;
        dato_st_tensor t = {.dtype = DATO_ST_F32};
        long long numel = 1;
        for (char* tok = strtok(sh, ","); tok && t.ndim < 8; tok = strtok(NULL, ",")) {
            t.shape[t.ndim++] = atoll(tok);
            numel *= atoll(tok);
        }
        *params += numel;
        t.name = strdup(dn);
        dif->t[n] = t;
        char buf[512];
        snprintf(buf, sizeof buf, LDM_PREFIX "%s", ln);
        t.name = strdup(buf);
        ldm->t[n] = t;
        n++;
    }
    fclose(f);
    dif->n = ldm->n = n;
    qsort(dif->t, (size_t)n, sizeof *dif->t, table_cmp);
    qsort(ldm->t, (size_t)n, sizeof *ldm->t, table_cmp);
    return n;
}

static int configs_equal(const dato_unet_config* a, const dato_unet_config* b) {
    int same = a->in_channels == b->in_channels && a->out_channels == b->out_channels && a->n_levels == b->n_levels &&
               a->layers_per_block == b->layers_per_block && a->cross_attention_dim == b->cross_attention_dim &&
               a->use_linear_projection == b->use_linear_projection && a->time_embed_dim == b->time_embed_dim &&
               a->add_embed_in == b->add_embed_in && a->addition_time_embed_dim == b->addition_time_embed_dim &&
               a->mid_transformer_depth == b->mid_transformer_depth && a->norm_groups == b->norm_groups;
    for (int i = 0; i < a->n_levels; i++) {
        same = same && a->block_channels[i] == b->block_channels[i] && a->level_has_attn[i] == b->level_has_attn[i] &&
               a->heads[i] == b->heads[i];
        if (a->level_has_attn[i]) same = same && a->transformer_depth[i] == b->transformer_depth[i];
    }
    return same;
}

static void check_model(const char* model, long long expected_params) {
    char cfg_path[256], man_path[256];
    snprintf(cfg_path, sizeof cfg_path, "tests/fixtures/manifests/%s_config.json", model);
    snprintf(man_path, sizeof man_path, "tests/fixtures/manifests/%s_unet.tsv", model);
    dato_error err = {{0}};
    dato_unet_config cfg;
    dato_status st = dato_unet_config_from_json(&cfg, cfg_path, &err);
    CHECK(st == DATO_OK, "%s: %s", model, err.msg);
    if (st) return;
    dato_backend be;
    dato_backend_null_init(&be);
    dato_unet u;
    st = dato_unet_build(&u, &cfg, &be, &err);
    CHECK(st == DATO_OK, "%s: build: %s", model, err.msg);
    if (st) return;

    table_source dif = {.label = "manifest(diffusers)"}, ldm = {.label = "manifest(ldm)"};
    long long params = 0;
    int n = read_manifest(man_path, &dif, &ldm, &params);
    CHECK(n > 0, "%s: cannot read %s", model, man_path);
    printf("%s: manifest %d tensors, %lld parameters; model table %d tensors, %zu parameters\n", model, n, params,
           u.n_params, u.n_weights);
    CHECK(u.n_params == n, "%s: %d parameters in the table, %d in the manifest", model, u.n_params, n);
    CHECK((long long)u.n_weights == params, "%s: %zu weights vs %lld", model, u.n_weights, params);
    if (expected_params) CHECK(params == expected_params, "%s: %lld parameters, published %lld", model, params, expected_params);

    // Every manifest row is one parameter with both names and the shape.
    int pairs_ok = 0;
    for (int i = 0; i < dif.n; i++) {
        const dato_unet_param* p = dato_unet_find_param(&u, DATO_LAYOUT_DIFFUSERS, dif.t[i].name);
        if (p) pairs_ok++;
    }
    CHECK(pairs_ok == n, "%s: %d of %d diffusers names found", model, pairs_ok, n);
    dato_tensor_source sd = table_as_source(&dif), sl = table_as_source(&ldm);
    st = dato_unet_check_names(&u, &sd, DATO_LAYOUT_DIFFUSERS, "", 1, &err);
    CHECK(st == DATO_OK, "%s diffusers layout: %s", model, err.msg);
    st = dato_unet_check_names(&u, &sl, DATO_LAYOUT_LDM, LDM_PREFIX, 1, &err);
    CHECK(st == DATO_OK, "%s LDM layout: %s", model, err.msg);

    // The LDM config from shapes alone equals the diffusers config.
    dato_unet_config inferred;
    st = dato_unet_config_infer_ldm(&inferred, &sl, LDM_PREFIX, NULL, &err);
    CHECK(st == DATO_OK, "%s: infer: %s", model, err.msg);
    CHECK(st == DATO_OK && configs_equal(&inferred, &cfg), "%s: the inferred LDM config differs", model);

    // A missing tensor is named.
    // The first upsampler: output_blocks.2.1 after a plain up block, .2.2 after a cross-attention one (SDXL).
    ldm.hidden = strcmp(model, "sdxl") == 0 ? LDM_PREFIX "output_blocks.2.2.conv.weight"
                                            : LDM_PREFIX "output_blocks.2.1.conv.weight";
    st = dato_unet_check_names(&u, &sl, DATO_LAYOUT_LDM, LDM_PREFIX, 1, &err);
    CHECK(st == DATO_ERR_NOT_FOUND && strstr(err.msg, ldm.hidden), "%s: missing tensor: %s", model, err.msg);
    ldm.hidden = NULL;
    // A misshaped tensor is named with both shapes.
    dato_st_tensor* t = (dato_st_tensor*)table_find(&dif, "conv_in.weight");
    t->shape[0]++;
    st = dato_unet_check_names(&u, &sd, DATO_LAYOUT_DIFFUSERS, "", 1, &err);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "conv_in.weight") && strstr(err.msg, "expects"),
          "%s: misshaped tensor: %s", model, err.msg);
    t->shape[0]--;
    // A tensor the config does not know is rejected in strict mode, by name.
    dif.t = realloc(dif.t, (size_t)(dif.n + 1) * sizeof *dif.t);
    dif.t[dif.n++] = (dato_st_tensor){.name = strdup("zzz_unexpected.weight"), .ndim = 1, .shape = {4}};
    st = dato_unet_check_names(&u, &sd, DATO_LAYOUT_DIFFUSERS, "", 1, &err);
    CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, "zzz_unexpected.weight"), "%s: extra tensor: %s", model, err.msg);

    table_free(&dif);
    table_free(&ldm);
    dato_unet_free(&u);
    dato_backend_destroy(&be);
}

int main(void) {
    check_model("sd15", 859520964LL);
    check_model("sd21", 865910724LL);
    check_model("sdxl", 2567463684LL);
    return test_summary();
}
