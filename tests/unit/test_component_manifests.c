// The text encoder and VAE parameter tables against the complete tensor manifests of the real
// SD1.5, SD2.1 and SDXL-base text encoders and VAE decoders (tools/make_component_manifests.py,
// made with transformers / diffusers on the meta device and checked against diffusers' own
// single-file converters). In both layouts, the diffusers folder's and the single file's, every
// tensor maps to one engine parameter with its shape, the loaders' name checks pass, the counts
// agree, and the config inferred from the single file equals the folder's config.
//
// Manifest rows: folder_name <TAB> single_file_name <TAB> folder_shape <TAB> single_file_shape,
// "-" for a tensor only the single file holds (SD2's 24th OpenCLIP layer and text_projection).
//
// The engine runs on the null backend: build allocates only the tables, and a load checks every
// name and shape first and then fails to allocate the weights (the null backend's alloc returns
// NULL), so DATO_ERR_NOMEM from a load means "every tensor was found with its shape".
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table_source.h"
#include "test_util.h"
#include "text_encoder.h"
#include "vae.h"

#define MANIFEST_DIR "tests/fixtures/manifests/"


// ---- manifests -------------------------------------------------------------------------------------

typedef struct {
    char folder[192]; // "-" when only the single file holds the tensor
    char single[192]; // with the checkpoint prefix
    int folder_ndim, single_ndim;
    int64_t folder_shape[4], single_shape[4];
} manifest_row;

typedef struct {
    manifest_row* rows; // (n)
    int n;
    long long folder_params; // elements over the folder's tensors
    table_source folder;     // the folder's tensors, by folder name
    table_source single;     // the single file's tensors (a fused in_proj once), by full name
} manifest;

static void parse_shape(char* text, int* ndim, int64_t* shape) {
    *ndim = 0;
    if (strcmp(text, "-") == 0) return;
    for (char* tok = strtok(text, ","); tok && *ndim < 4; tok = strtok(NULL, ",")) shape[(*ndim)++] = atoll(tok);
}

static long long numel_of(int ndim, const int64_t* shape) {
    long long n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

static void add_tensor(table_source* s, const char* name, int ndim, const int64_t* shape) {
    dato_st_tensor t = {.name = strdup(name), .dtype = DATO_ST_F32, .ndim = ndim, .numel = numel_of(ndim, shape)};
    memcpy(t.shape, shape, (size_t)ndim * sizeof *shape);
    t.nbytes = (size_t)t.numel * 4;
    s->t[s->n++] = t;
}

static int read_manifest(const char* path, manifest* m) {
    memset(m, 0, sizeof *m);
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    int cap = 1024;
    m->rows = calloc((size_t)cap, sizeof *m->rows);
    char line[1024];
    while (fgets(line, sizeof line, f) && m->n < cap) {
        if (line[0] == '#' || line[0] == '\n') continue;
        char *fn = strtok(line, "\t"), *sn = strtok(NULL, "\t"), *fs = strtok(NULL, "\t"), *ss = strtok(NULL, "\t\n");
        if (!fn || !sn || !fs || !ss) break;
        manifest_row* r = &m->rows[m->n++];
        snprintf(r->folder, sizeof r->folder, "%s", fn);
        snprintf(r->single, sizeof r->single, "%s", sn);
        parse_shape(fs, &r->folder_ndim, r->folder_shape);
        parse_shape(ss, &r->single_ndim, r->single_shape);
    }
    fclose(f);
    m->folder = (table_source){.t = calloc((size_t)m->n, sizeof(dato_st_tensor)), .label = "manifest(folder)"};
    m->single = (table_source){.t = calloc((size_t)m->n, sizeof(dato_st_tensor)), .label = "manifest(single file)"};
    for (int i = 0; i < m->n; i++) {
        const manifest_row* r = &m->rows[i];
        if (strcmp(r->folder, "-") != 0) {
            add_tensor(&m->folder, r->folder, r->folder_ndim, r->folder_shape);
            m->folder_params += numel_of(r->folder_ndim, r->folder_shape);
        }
        int seen = 0; // q, k and v rows share one fused tensor
        for (int j = 0; j < m->single.n && !seen; j++) seen = strcmp(m->single.t[j].name, r->single) == 0;
        if (!seen) add_tensor(&m->single, r->single, r->single_ndim, r->single_shape);
    }
    qsort(m->folder.t, (size_t)m->folder.n, sizeof *m->folder.t, table_cmp);
    qsort(m->single.t, (size_t)m->single.n, sizeof *m->single.t, table_cmp);
    return m->n;
}

static void free_manifest(manifest* m) {
    table_free(&m->folder);
    table_free(&m->single);
    free(m->rows);
}

static int same_shape(int na, const int64_t* a, int nb, const int64_t* b) {
    if (na != nb) return 0;
    for (int d = 0; d < na; d++)
        if (a[d] != b[d]) return 0;
    return 1;
}

// ---- text encoders ---------------------------------------------------------------------------------

// A parameter's shape in a layout's file: OpenCLIP fuses q/k/v (3 row blocks) and stores
// text_projection transposed.
static void te_file_shape(const dato_te_param* p, dato_te_layout layout, int64_t* shape) {
    shape[0] = p->shape[0];
    shape[1] = p->ndim > 1 ? p->shape[1] : 0;
    if (layout != DATO_TE_LAYOUT_OPENCLIP) return;
    if (p->oc_slice >= 0) shape[0] *= 3;
    if (p->oc_transposed) shape[0] = p->shape[1], shape[1] = p->shape[0];
}

static int te_configs_equal(const dato_te_config* a, const dato_te_config* b) {
    return a->vocab_size == b->vocab_size && a->width == b->width && a->intermediate == b->intermediate &&
           a->n_layers == b->n_layers && a->heads == b->heads && a->max_positions == b->max_positions &&
           a->act == b->act && a->eps == b->eps && a->projection_dim == b->projection_dim &&
           a->eos_token_id == b->eos_token_id;
}

// Every single-file row maps to a parameter of te (built for the single file's config) in layout,
// with its file shape; returns how many rows do.
static int te_single_rows_found(const dato_text_encoder* te, const manifest* m, const char* prefix,
                                dato_te_layout layout) {
    size_t plen = strlen(prefix);
    int found = 0;
    for (int i = 0; i < m->single.n; i++) {
        const dato_st_tensor* t = &m->single.t[i];
        if (strncmp(t->name, prefix, plen) != 0) continue;
        const dato_te_param* p = dato_text_encoder_find_param(te, layout, t->name + plen);
        int64_t want[2];
        if (p) te_file_shape(p, layout, want);
        if (p && same_shape(t->ndim, t->shape, p->ndim, want)) found++;
        else fprintf(stderr, "  single-file tensor %s: %s\n", t->name, p ? "shape differs" : "no parameter");
    }
    return found;
}

// Distinct names of te's parameters in layout (the fused in_proj counts once).
static int te_distinct_names(const dato_text_encoder* te, dato_te_layout layout) {
    int n = 0;
    for (int i = 0; i < te->n_params; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = strcmp(te->params[j].name[layout], te->params[i].name[layout]) == 0;
        n += !seen;
    }
    return n;
}

// single_extra_layers / single_projection: what the single file holds beyond the folder (SD2:
// OpenCLIP's 24th layer and its 1024-wide text_projection; -1 projection: as the folder).
static void check_text_encoder(const char* model, const char* component, const char* prefix, dato_te_layout layout,
                               int single_extra_layers, int single_projection, long long expected_params) {
    char cfg_path[256], man_path[256], what[64];
    snprintf(cfg_path, sizeof cfg_path, MANIFEST_DIR "%s_%s_config.json", model, component);
    snprintf(man_path, sizeof man_path, MANIFEST_DIR "%s_%s.tsv", model, component);
    snprintf(what, sizeof what, "%s %s", model, component);
    dato_error err = {{0}};
    dato_te_config cfg;
    dato_status st = dato_te_config_from_json(&cfg, cfg_path, &err);
    CHECK(st == DATO_OK, "%s: %s", what, err.msg);
    manifest m;
    int n_rows = read_manifest(man_path, &m);
    CHECK(n_rows > 0, "%s: cannot read %s", what, man_path);
    if (st || n_rows == 0) {
        free_manifest(&m);
        return;
    }
    dato_tensor_source folder = table_as_source(&m.folder), single = table_as_source(&m.single);
    // As dato_text_encoder_open_folder: a CLIPTextModel's config carries an unused projection_dim.
    if (!table_find(&m.folder, "text_projection.weight")) cfg.projection_dim = 0;
    dato_backend be;
    dato_backend_null_init(&be);
    dato_text_encoder te;
    st = dato_text_encoder_build(&te, &cfg, &be, &err);
    CHECK(st == DATO_OK, "%s: build: %s", what, err.msg);
    if (st) {
        free_manifest(&m);
        return;
    }
    long long table_params = 0;
    for (int i = 0; i < te.n_params; i++) table_params += numel_of(te.params[i].ndim, te.params[i].shape);
    printf("%s: folder %d tensors, %lld parameters; single file %d tensors; engine table %d parameters, %lld "
           "weights\n",
           what, m.folder.n, m.folder_params, m.single.n, te.n_params, table_params);
    CHECK(te.n_params == m.folder.n, "%s: %d parameters in the table, %d in the folder", what, te.n_params, m.folder.n);
    CHECK(table_params == m.folder_params, "%s: %lld weights vs %lld", what, table_params, m.folder_params);
    CHECK(m.folder_params == expected_params, "%s: %lld parameters, published %lld", what, m.folder_params,
          expected_params);

    // Each row with a folder name is one parameter: its shape, and its name and shape in the single file.
    size_t plen = strlen(prefix);
    int folder_ok = 0, pairs_ok = 0, n_pairs = 0;
    for (int i = 0; i < m.n; i++) {
        const manifest_row* r = &m.rows[i];
        if (strcmp(r->folder, "-") == 0) continue;
        const dato_te_param* p = dato_text_encoder_find_param(&te, DATO_TE_LAYOUT_HF, r->folder);
        if (p && same_shape(p->ndim, p->shape, r->folder_ndim, r->folder_shape)) folder_ok++;
        else fprintf(stderr, "  %s: folder tensor %s: %s\n", what, r->folder, p ? "shape differs" : "no parameter");
        n_pairs++;
        int64_t want[2];
        if (p) te_file_shape(p, layout, want);
        if (p && strncmp(r->single, prefix, plen) == 0 && strcmp(p->name[layout], r->single + plen) == 0 &&
            same_shape(p->ndim, want, r->single_ndim, r->single_shape))
            pairs_ok++;
        else if (p)
            fprintf(stderr, "  %s: %s: single-file name or shape differs (engine '%s%s', manifest '%s')\n", what,
                    r->folder, prefix, p->name[layout], r->single);
    }
    CHECK(folder_ok == m.folder.n, "%s: %d of %d folder tensors map with their shape", what, folder_ok, m.folder.n);
    CHECK(pairs_ok == n_pairs, "%s: %d of %d folder tensors have the manifest's single-file name and shape", what,
          pairs_ok, n_pairs);
    st = dato_text_encoder_load(&te, &folder, "", DATO_TE_LAYOUT_HF, &err);
    CHECK(st == DATO_ERR_NOMEM, "%s: the folder's name check: %s", what, err.msg);
    // The folder's config also finds all its tensors in the single file (SD2: its 24th layer unused).
    st = dato_text_encoder_load(&te, &single, prefix, layout, &err);
    CHECK(st == DATO_ERR_NOMEM, "%s: the single file for the folder's config: %s", what, err.msg);

    // The single file: config from shapes, then every tensor of it maps.
    dato_te_config inferred, want = cfg;
    want.n_layers += single_extra_layers;
    if (single_projection >= 0) want.projection_dim = single_projection;
    st = dato_te_config_infer(&inferred, &single, prefix, layout, NULL, &err);
    CHECK(st == DATO_OK, "%s: infer: %s", what, err.msg);
    CHECK(st == DATO_OK && te_configs_equal(&inferred, &want),
          "%s: inferred %d layers, width %d, %d heads, projection %d; expected %d, %d, %d, %d", what,
          inferred.n_layers, inferred.width, inferred.heads, inferred.projection_dim, want.n_layers, want.width,
          want.heads, want.projection_dim);
    dato_text_encoder te_single;
    st = dato_text_encoder_build(&te_single, &inferred, &be, &err);
    CHECK(st == DATO_OK, "%s: build from the inferred config: %s", what, err.msg);
    if (st == DATO_OK) {
        int found = te_single_rows_found(&te_single, &m, prefix, layout);
        int distinct = te_distinct_names(&te_single, layout);
        printf("%s: single file: %d of %d tensors map (%d parameters, %d distinct names)\n", what, found, m.single.n,
               te_single.n_params, distinct);
        CHECK(found == m.single.n, "%s: %d of %d single-file tensors map", what, found, m.single.n);
        CHECK(distinct == m.single.n, "%s: %d single-file names in the table, %d in the manifest", what, distinct,
              m.single.n);
        st = dato_text_encoder_load(&te_single, &single, prefix, layout, &err);
        CHECK(st == DATO_ERR_NOMEM, "%s: the single file's name check: %s", what, err.msg);
        // A missing tensor is reported by name (the last layer's MLP output).
        char hidden[256];
        snprintf(hidden, sizeof hidden, "%s%s", prefix, te_single.params[te_single.n_params - 1].name[layout]);
        m.single.hidden = hidden;
        st = dato_text_encoder_load(&te_single, &single, prefix, layout, &err);
        CHECK(st == DATO_ERR_NOT_FOUND && strstr(err.msg, hidden), "%s: missing tensor: %s", what, err.msg);
        m.single.hidden = NULL;
        dato_text_encoder_free(&te_single);
    }
    dato_text_encoder_free(&te);
    dato_backend_destroy(&be);
    free_manifest(&m);
}

// ---- VAE decoders ----------------------------------------------------------------------------------

#define VAE_PREFIX "first_stage_model."

static int vae_configs_equal(const dato_vae_config* a, const dato_vae_config* b) {
    int same = a->latent_channels == b->latent_channels && a->out_channels == b->out_channels &&
               a->n_levels == b->n_levels && a->layers_per_block == b->layers_per_block &&
               a->norm_groups == b->norm_groups && a->norm_eps == b->norm_eps &&
               a->scaling_factor == b->scaling_factor && a->shift_factor == b->shift_factor &&
               a->mid_attention == b->mid_attention && a->post_quant_conv == b->post_quant_conv;
    for (int i = 0; i < a->n_levels; i++) same = same && a->block_channels[i] == b->block_channels[i];
    return same;
}

static void check_vae(const char* model, float scaling_factor) {
    char cfg_path[256], man_path[256], what[64];
    snprintf(cfg_path, sizeof cfg_path, MANIFEST_DIR "%s_vae_config.json", model);
    snprintf(man_path, sizeof man_path, MANIFEST_DIR "%s_vae.tsv", model);
    snprintf(what, sizeof what, "%s vae", model);
    dato_error err = {{0}};
    dato_vae_config cfg;
    dato_status st = dato_vae_config_from_json(&cfg, cfg_path, &err);
    CHECK(st == DATO_OK, "%s: %s", what, err.msg);
    CHECK(cfg.scaling_factor == scaling_factor, "%s: scaling_factor %g, expected %g", what, cfg.scaling_factor,
          scaling_factor);
    manifest m;
    int n_rows = read_manifest(man_path, &m);
    CHECK(n_rows > 0, "%s: cannot read %s", what, man_path);
    if (st || n_rows == 0) {
        free_manifest(&m);
        return;
    }
    dato_tensor_source folder = table_as_source(&m.folder), single = table_as_source(&m.single);
    dato_backend be;
    dato_backend_null_init(&be);
    dato_vae v;
    st = dato_vae_build(&v, &cfg, &be, &err);
    CHECK(st == DATO_OK, "%s: build: %s", what, err.msg);
    if (st) {
        free_manifest(&m);
        return;
    }
    printf("%s: folder %d tensors, %lld parameters; single file %d tensors; engine table %d parameters, %zu weights\n",
           what, m.folder.n, m.folder_params, m.single.n, v.n_params, v.n_weights);
    CHECK(v.n_params == m.folder.n && v.n_params == m.single.n, "%s: %d parameters in the table, %d / %d in the manifest",
          what, v.n_params, m.folder.n, m.single.n);
    CHECK((long long)v.n_weights == m.folder_params, "%s: %zu weights vs %lld", what, v.n_weights, m.folder_params);
    CHECK(m.folder_params == 49490199LL, "%s: %lld parameters, expected 49,490,199", what, m.folder_params);

    // Each row is one parameter in both layouts; LDM's attention matrices are 1x1 convs.
    int pairs_ok = 0;
    for (int i = 0; i < m.n; i++) {
        const manifest_row* r = &m.rows[i];
        const dato_vae_param* p = dato_vae_find_param(&v, DATO_LAYOUT_DIFFUSERS, r->folder);
        const char* ldm = strncmp(r->single, VAE_PREFIX, strlen(VAE_PREFIX)) == 0 ? r->single + strlen(VAE_PREFIX) : "";
        int64_t conv[4] = {p ? p->shape[0] : 0, p ? p->shape[1] : 0, 1, 1};
        int ok = p && same_shape(p->ndim, p->shape, r->folder_ndim, r->folder_shape) &&
                 dato_vae_find_param(&v, DATO_LAYOUT_LDM, ldm) == p &&
                 (same_shape(p->ndim, p->shape, r->single_ndim, r->single_shape) ||
                  (p->matrix && same_shape(4, conv, r->single_ndim, r->single_shape)));
        if (ok) pairs_ok++;
        else fprintf(stderr, "  %s: %s / %s: %s\n", what, r->folder, r->single, p ? "name or shape differs" : "no parameter");
    }
    CHECK(pairs_ok == m.n, "%s: %d of %d rows map in both layouts", what, pairs_ok, m.n);
    st = dato_vae_load_weights(&v, &folder, DATO_LAYOUT_DIFFUSERS, "", &err);
    CHECK(st == DATO_ERR_NOMEM, "%s: the folder's name check: %s", what, err.msg);
    st = dato_vae_load_weights(&v, &single, DATO_LAYOUT_LDM, VAE_PREFIX, &err);
    CHECK(st == DATO_ERR_NOMEM, "%s: the single file's name check: %s", what, err.msg);
    // A missing tensor is reported by name.
    m.single.hidden = VAE_PREFIX "decoder.up.0.block.2.conv2.bias";
    st = dato_vae_load_weights(&v, &single, DATO_LAYOUT_LDM, VAE_PREFIX, &err);
    CHECK(st == DATO_ERR_NOT_FOUND && strstr(err.msg, m.single.hidden), "%s: missing tensor: %s", what, err.msg);
    m.single.hidden = NULL;

    dato_vae_config inferred;
    st = dato_vae_config_infer_ldm(&inferred, &single, VAE_PREFIX, cfg.scaling_factor, 0, &err);
    CHECK(st == DATO_OK, "%s: infer: %s", what, err.msg);
    CHECK(st == DATO_OK && vae_configs_equal(&inferred, &cfg), "%s: the inferred LDM config differs", what);

    dato_vae_free(&v);
    dato_backend_destroy(&be);
    free_manifest(&m);
}

int main(void) {
    check_text_encoder("sd15", "text_encoder", "cond_stage_model.transformer.", DATO_TE_LAYOUT_HF, 0, -1, 123060480LL);
    // SD2: the LDM file holds all 24 OpenCLIP layers and a (1024, 1024) text_projection; the
    // folder keeps 23 layers and no projection (see tools/make_component_manifests.py).
    check_text_encoder("sd21", "text_encoder", "cond_stage_model.model.", DATO_TE_LAYOUT_OPENCLIP, 1, 1024,
                       340387840LL);
    check_text_encoder("sdxl", "text_encoder", "conditioner.embedders.0.transformer.", DATO_TE_LAYOUT_HF, 0, -1,
                       123060480LL);
    check_text_encoder("sdxl", "text_encoder_2", "conditioner.embedders.1.model.", DATO_TE_LAYOUT_OPENCLIP, 0, -1,
                       694659840LL);
    check_vae("sd15", 0.18215f);
    check_vae("sd21", 0.18215f);
    check_vae("sdxl", 0.13025f);
    return test_summary();
}
