// CLIP text encoder parity against transformers on tiny seeded models
// (tools/make_text_encoder_fixtures.py): every output the SD family uses, from diffusers
// folders and from single-file checkpoints in both the HF and the OpenCLIP layout.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "test_util.h"
#include "text_encoder.h"

#define DIR "tests/fixtures/text_encoder/"
#define TOL 1e-4

typedef struct {
    dato_safetensors io;
    int32_t* ids; // (B, L)
    int B, L;
} io_file;

static int io_open(io_file* f, const char* path) {
    dato_error err = {{0}};
    memset(f, 0, sizeof *f);
    if (dato_safetensors_open(&f->io, path, &err) != DATO_OK) {
        CHECK(0, "%s", err.msg);
        return 0;
    }
    const dato_st_tensor* t = dato_safetensors_find(&f->io, "ids");
    CHECK(t && t->dtype == DATO_ST_I32 && t->ndim == 2, "%s: ids must be (B, L) int32", path);
    if (!t || t->dtype != DATO_ST_I32 || t->ndim != 2) return 0;
    f->B = (int)t->shape[0], f->L = (int)t->shape[1];
    f->ids = malloc(t->nbytes);
    memcpy(f->ids, t->data, t->nbytes); // file data may be unaligned
    return 1;
}

static void io_close(io_file* f) {
    dato_safetensors_close(&f->io);
    free(f->ids);
}

// Runs one forward and compares hidden with ref_hidden and pooled with ref_pooled (either NULL
// to skip it). Hands the hidden output to *hidden_out (malloc'd) when that is not NULL.
static void check_forward(dato_text_encoder* te, const io_file* f, int skip, int final_norm, const char* ref_hidden,
                          const char* ref_pooled, const char* label, float** hidden_out) {
    int B = f->B, L = f->L, W = te->cfg.width;
    int P = te->projection.data ? te->cfg.projection_dim : W;
    float* hidden = calloc((size_t)B * L * W, sizeof *hidden);
    float* pooled = calloc((size_t)B * P, sizeof *pooled);
    dato_tensor th = dato_tensor_f32_3d(hidden, B, L, W), tp = dato_tensor_f32_2d(pooled, B, P);
    dato_error err = {{0}};
    dato_status st = dato_text_encoder_forward(te, f->ids, B, L, skip, final_norm, ref_hidden ? &th : NULL,
                                               ref_pooled ? &tp : NULL, &err);
    CHECK(st == DATO_OK, "%s: %s", label, err.msg);
    const char* names[2] = {ref_hidden, ref_pooled};
    float* got[2] = {hidden, pooled};
    for (int i = 0; i < 2; i++) {
        if (!names[i]) continue;
        size_t n = 0;
        float* ref = fixture_f32(&f->io, names[i], &n);
        CHECK(ref && n == (size_t)dato_tensor_numel(i ? &tp : &th), "%s: reference %s", label, names[i]);
        if (!ref || n != (size_t)dato_tensor_numel(i ? &tp : &th)) {
            free(ref);
            continue;
        }
        double e = test_rel_err(got[i], ref, n);
        printf("%-44s %-18s rel err %.2e\n", label, names[i], e);
        CHECK(e <= TOL, "%s: %s rel err %.3e > %g", label, names[i], e, TOL);
        free(ref);
    }
    if (hidden_out) *hidden_out = hidden;
    else free(hidden);
    free(pooled);
}

static int open_folder(dato_text_encoder* te, dato_backend* be, const char* dir) {
    dato_error err = {{0}};
    dato_status st = dato_text_encoder_open_folder(te, dir, be, &err);
    CHECK(st == DATO_OK, "%s: %s", dir, err.msg);
    return st == DATO_OK;
}

static int open_file(dato_text_encoder* te, dato_backend* be, dato_weight_files* wf, const char* path,
                     const char* prefix, dato_te_layout layout, const dato_te_hints* hints) {
    dato_error err = {{0}};
    dato_status st = dato_weight_files_open(wf, path, &err);
    if (!st) {
        dato_tensor_source src = dato_tensor_source_files(wf);
        st = dato_text_encoder_open_source(te, &src, prefix, layout, hints, be, &err);
    }
    CHECK(st == DATO_OK, "%s [%s]: %s", path, prefix, err.msg);
    return st == DATO_OK;
}

// SD1's CLIP ViT-L: last layer + final LN, SDXL's penultimate without it, pooled (legacy eos).
static void test_clip_l(dato_backend* be) {
    io_file f;
    if (!io_open(&f, DIR "clip_l/io.safetensors")) return;
    dato_text_encoder te;
    if (open_folder(&te, be, DIR "clip_l")) {
        CHECK(te.cfg.act == DATO_TE_ACT_QUICK_GELU && te.cfg.n_layers == 3 && te.cfg.heads == 4 &&
                  te.projection.data == NULL && te.cfg.eos_token_id == 2,
              "clip_l config: act %d layers %d heads %d eos %d", te.cfg.act, te.cfg.n_layers, te.cfg.heads,
              te.cfg.eos_token_id);
        check_forward(&te, &f, 0, 1, "last_hidden_state", "pooled", "clip_l folder (SD1)", NULL);
        void* ws = te.ws_block;
        check_forward(&te, &f, 1, 0, "hidden_states_m2", NULL, "clip_l folder (SDXL te1)", NULL);
        check_forward(&te, &f, 1, 0, NULL, "pooled", "clip_l folder, pooled only", NULL);
        CHECK(te.ws_block == ws, "the workspace was reallocated for the same (B, L)");
        dato_text_encoder_free(&te);
    }
    dato_te_hints hints = {.heads = 4};
    dato_weight_files wf;
    if (open_file(&te, be, &wf, DIR "ldm_sd1.safetensors", "cond_stage_model.transformer.", DATO_TE_LAYOUT_HF,
                  &hints)) {
        check_forward(&te, &f, 0, 1, "last_hidden_state", "pooled", "ldm_sd1 cond_stage_model.transformer.", NULL);
        dato_text_encoder_free(&te);
    }
    dato_weight_files_close(&wf);
    if (open_file(&te, be, &wf, DIR "clip_l_bare.safetensors", "", DATO_TE_LAYOUT_HF, &hints)) {
        check_forward(&te, &f, 0, 1, "last_hidden_state", "pooled", "clip_l_bare (no text_model.)", NULL);
        dato_text_encoder_free(&te);
    }
    dato_weight_files_close(&wf);
    if (open_file(&te, be, &wf, DIR "ldm_sdxl.safetensors", "conditioner.embedders.0.transformer.", DATO_TE_LAYOUT_HF,
                  &hints)) {
        check_forward(&te, &f, 1, 0, "hidden_states_m2", NULL, "ldm_sdxl embedders.0 (HF)", NULL);
        dato_text_encoder_free(&te);
    }
    dato_weight_files_close(&wf);
    io_close(&f);
}

// SD2's OpenCLIP ViT-H: the penultimate layer + final LN, from diffusers' cut folder, the full
// folder and the OpenCLIP single file (fused in_proj); both layouts must agree.
static void test_open_h(dato_backend* be) {
    io_file f;
    if (!io_open(&f, DIR "open_h/io.safetensors")) return;
    dato_text_encoder te;
    float *from_hf = NULL, *from_oc = NULL; // (B, L, W) penultimate + LN from each layout
    size_t n_hidden = 0;
    if (open_folder(&te, be, DIR "open_h")) {
        CHECK(te.cfg.act == DATO_TE_ACT_GELU, "open_h act %d", te.cfg.act);
        check_forward(&te, &f, 0, 1, "last_hidden_state", NULL, "open_h folder", NULL);
        check_forward(&te, &f, 1, 1, "penultimate_ln", NULL, "open_h folder, skip 1", &from_hf);
        n_hidden = (size_t)f.B * f.L * te.cfg.width;
        dato_text_encoder_free(&te);
    }
    if (open_folder(&te, be, DIR "open_h_sd2")) {
        CHECK(te.cfg.n_layers == 2, "open_h_sd2 layers %d", te.cfg.n_layers);
        check_forward(&te, &f, 0, 1, "penultimate_ln", NULL, "open_h_sd2 folder (SD2 as diffusers)", NULL);
        dato_text_encoder_free(&te);
    }
    dato_te_hints hints = {.heads = 4};
    dato_weight_files wf;
    if (open_file(&te, be, &wf, DIR "ldm_sd2.safetensors", "cond_stage_model.model.", DATO_TE_LAYOUT_OPENCLIP,
                  &hints)) {
        CHECK(te.cfg.act == DATO_TE_ACT_GELU && te.cfg.n_layers == 3 && te.projection.data == NULL,
              "ldm_sd2 inferred act %d layers %d", te.cfg.act, te.cfg.n_layers);
        check_forward(&te, &f, 1, 1, "penultimate_ln", NULL, "ldm_sd2 OpenCLIP (SD2 rule)", &from_oc);
        check_forward(&te, &f, 0, 1, "last_hidden_state", NULL, "ldm_sd2 OpenCLIP, skip 0", NULL);
        dato_text_encoder_free(&te);
    }
    dato_weight_files_close(&wf);
    if (from_hf && from_oc) {
        double e = test_rel_err(from_oc, from_hf, n_hidden);
        printf("%-44s %-18s rel err %.2e\n", "OpenCLIP file vs HF folder", "penultimate_ln", e);
        CHECK(e <= 1e-6, "the OpenCLIP and HF layouts differ: rel err %.3e", e);
    }
    free(from_hf);
    free(from_oc);
    io_close(&f);
}

// SDXL's OpenCLIP bigG with projection: penultimate without final LN + text_embeds, eos by
// first position (larger ids follow it).
static void test_open_g(dato_backend* be) {
    io_file f;
    if (!io_open(&f, DIR "open_g/io.safetensors")) return;
    dato_text_encoder te;
    if (open_folder(&te, be, DIR "open_g")) {
        CHECK(te.cfg.projection_dim == 16 && te.projection.data && te.cfg.eos_token_id == 500,
              "open_g projection %d eos %d", te.cfg.projection_dim, te.cfg.eos_token_id);
        check_forward(&te, &f, 1, 0, "hidden_states_m2", "text_embeds", "open_g folder (SDXL te2)", NULL);
        check_forward(&te, &f, 0, 1, "last_hidden_state", NULL, "open_g folder, skip 0", NULL);
        dato_text_encoder_free(&te);
    }
    dato_te_hints hints = {.heads = 4, .eps = 1e-6f, .eos_token_id = 500};
    dato_weight_files wf;
    if (open_file(&te, be, &wf, DIR "ldm_sdxl.safetensors", "conditioner.embedders.1.model.",
                  DATO_TE_LAYOUT_OPENCLIP, &hints)) {
        CHECK(te.cfg.projection_dim == 16, "ldm_sdxl embedders.1 projection %d", te.cfg.projection_dim);
        check_forward(&te, &f, 1, 0, "hidden_states_m2", "text_embeds", "ldm_sdxl embedders.1 (OpenCLIP)", NULL);
        dato_text_encoder_free(&te);
    }
    dato_weight_files_close(&wf);
    io_close(&f);
}

static void test_eos_positions(void) {
    int32_t ids[2 * 6] = {0, 5, 9, 9, 1, 1, /**/ 0, 7, 3, 4, 3, 8};
    int32_t pos[2];
    dato_te_eos_positions(ids, 2, 6, DATO_TE_LEGACY_EOS, pos); // first largest id
    CHECK(pos[0] == 2 && pos[1] == 5, "legacy eos positions %d %d", pos[0], pos[1]);
    dato_te_eos_positions(ids, 2, 6, 3, pos); // first 3; none in row 0: position 0
    CHECK(pos[0] == 0 && pos[1] == 2, "first-position eos %d %d", pos[0], pos[1]);
}

static void expect_error(dato_status st, dato_status want, const dato_error* err, const char* needle) {
    CHECK(st == want, "status %d, want %d (%s)", (int)st, (int)want, err->msg);
    CHECK(strstr(err->msg, needle) != NULL, "message '%s' lacks '%s'", err->msg, needle);
}

static void test_errors(dato_backend* be) {
    dato_error err = {{0}};
    dato_text_encoder te;
    if (!open_folder(&te, be, DIR "clip_l")) return;
    int32_t ids[2 * 4] = {0, 5, 999, 1, 0, 6, 7, 1000};
    float buf[2 * 4 * 32];
    dato_tensor h = dato_tensor_f32_3d(buf, 2, 4, 32), h_bad = dato_tensor_f32_3d(buf, 2, 4, 31);
    expect_error(dato_text_encoder_forward(&te, ids, 2, 4, 0, 1, &h, NULL, &err), DATO_ERR_INVALID, &err,
                 "id 1000 at position 7 is not in the vocabulary");
    ids[7] = 2;
    expect_error(dato_text_encoder_forward(&te, ids, 2, 4, 4, 1, &h, NULL, &err), DATO_ERR_INVALID, &err,
                 "skip 4 is not in 0..3");
    expect_error(dato_text_encoder_forward(&te, ids, 2, 4, 0, 1, &h_bad, NULL, &err), DATO_ERR_INVALID, &err,
                 "hidden (2, 4, 31) is not (2, 4, 32)");
    expect_error(dato_text_encoder_forward(&te, ids, 1, 78, 0, 1, NULL, NULL, &err), DATO_ERR_INVALID, &err,
                 "length 78 (1..77)");
    dato_tensor p_bad = dato_tensor_f32_2d(buf, 2, 16);
    expect_error(dato_text_encoder_forward(&te, ids, 2, 4, 0, 1, NULL, &p_bad, &err), DATO_ERR_INVALID, &err,
                 "pooled (2, 16) is not (2, 32)");
    CHECK(dato_text_encoder_forward(&te, ids, 2, 4, 3, 0, &h, NULL, &err) == DATO_OK, "skip = n_layers: %s", err.msg);
    dato_text_encoder_free(&te);

    // a single file under the wrong prefix or in the wrong layout
    dato_weight_files wf;
    CHECK(dato_weight_files_open(&wf, DIR "ldm_sd2.safetensors", &err) == DATO_OK, "%s", err.msg);
    dato_tensor_source src = dato_tensor_source_files(&wf);
    expect_error(dato_text_encoder_open_source(&te, &src, "cond_stage_model.transformer.", DATO_TE_LAYOUT_HF, NULL, be,
                                               &err),
                 DATO_ERR_FORMAT, &err, "no CLIP text encoder under 'cond_stage_model.transformer.'");
    dato_te_hints three = {.heads = 3};
    expect_error(dato_text_encoder_open_source(&te, &src, "cond_stage_model.model.", DATO_TE_LAYOUT_OPENCLIP, &three,
                                               be, &err),
                 DATO_ERR_INVALID, &err, "3 attention heads do not divide hidden_size 32");
    dato_weight_files_close(&wf);

    dato_te_config cfg;
    expect_error(dato_te_config_from_json_text(&cfg, "{\"vocab_size\": 10}", "cfg.json", &err), DATO_ERR_FORMAT, &err,
                 "cfg.json: field 'hidden_size' is missing");
    expect_error(dato_te_config_from_json_text(&cfg,
                                               "{\"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 16, "
                                               "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
                                               "\"max_position_embeddings\": 77, \"hidden_act\": \"relu\"}",
                                               "cfg.json", &err),
                 DATO_ERR_UNSUPPORTED, &err, "'relu' is not quick_gelu or gelu");
}

int main(void) {
    dato_backend be;
    dato_error err = {{0}};
    if (dato_backend_cpu_init(&be, 0, &err) != DATO_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_eos_positions();
    test_clip_l(&be);
    test_open_h(&be);
    test_open_g(&be);
    test_errors(&be);
    dato_backend_destroy(&be);
    return test_summary();
}
