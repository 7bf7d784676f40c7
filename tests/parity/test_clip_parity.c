// CLIP score (metrics/clip.h) against transformers and torchmetrics on two tiny seeded CLIP
// folders (tools/make_clip_fixtures.py): tiny (quick_gelu, legacy eos pooling, F16, one file,
// preprocessor_config.json) and tiny_gelu (gelu, first-eos pooling, BF16, two shards,
// processor_config.json, shortest edge 240). For three images (28x28 grey, 64x48 RGB, 512x512
// RGB) and three captions (the third longer than 77 tokens): the processor's pixel values bit for
// bit, the ids torchmetrics feeds, image and text embeddings, per-pair and overall CLIP scores.
// Also: a batch of two against batch one, and the errors of broken folders.
#define _GNU_SOURCE // mkdtemp, realpath, symlink
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip.h"
#include "fixture.h"
#include "image.h"
#include "test_util.h"

#define DIR "tests/fixtures/clip/"
#define TOL 1e-4
#define N_PAIRS 3

static const char* const IMAGE_FILES[N_PAIRS] = {DIR "images/grey28.png", DIR "images/rgb64x48.png",
                                                 DIR "images/rgb512.png"};

typedef struct {
    uint8_t* px; // (h, w, c)
    int h, w, c;
} test_image;

static uint64_t fnv1a64(const void* data, size_t n) {
    const unsigned char* b = data;
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

static int64_t fixture_i64_at(const dato_safetensors* st, const char* name, int i) {
    const dato_st_tensor* t = dato_safetensors_find(st, name);
    if (!t || t->dtype != DATO_ST_I64 || t->numel <= i) return 0;
    int64_t v;
    memcpy(&v, (const char*)t->data + (size_t)i * sizeof v, sizeof v);
    return v;
}

// The captions, one per line of captions.txt (split in place in *buf).
static int read_captions(char** buf, const char* caps[N_PAIRS]) {
    size_t n = 0;
    unsigned char* text = read_bytes(DIR "captions.txt", &n);
    if (!text) return 0;
    char* s = realloc(text, n + 1);
    s[n] = 0;
    *buf = s;
    int k = 0;
    for (char* line = strtok(s, "\n"); line && k < N_PAIRS; line = strtok(NULL, "\n")) caps[k++] = line;
    return k == N_PAIRS;
}

// max|got - ref| / max|ref| over n scores, printed with the label.
static double check_rel(const char* variant, const char* what, const float* got, const float* ref, size_t n) {
    double e = test_rel_err(got, ref, n);
    printf("%-10s %-26s rel err %.2e\n", variant, what, e);
    CHECK(e <= TOL, "%s: %s rel err %.3e > %g", variant, what, e, TOL);
    return e;
}

static void test_variant(dato_backend* be, const char* variant, const test_image* img, const char* const* caps) {
    char path[256];
    dato_error err = {{0}};
    dato_safetensors io;
    snprintf(path, sizeof path, DIR "io_%s.safetensors", variant);
    if (dato_safetensors_open(&io, path, &err) != DATO_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    dato_clip c;
    snprintf(path, sizeof path, DIR "%s", variant);
    dato_status st = dato_clip_open(&c, path, be, &err);
    CHECK(st == DATO_OK, "open %s: %s", path, err.msg);
    if (st) {
        dato_safetensors_close(&io);
        return;
    }
    int D = dato_clip_dim(&c), S = c.cfg.image_size, L = c.text_len;
    printf("%-10s vision %d wide, %d layers, patch %d, %s; text %d wide, eos %d; D %d; resize %d crop %dx%d\n", variant,
           c.cfg.width, c.cfg.n_layers, c.cfg.patch_size, c.cfg.act == DATO_TE_ACT_GELU ? "gelu" : "quick_gelu",
           c.text.cfg.width, c.text.cfg.eos_token_id, D, c.prep.shortest_edge, c.prep.crop_h, c.prep.crop_w);
    int gelu = strcmp(variant, "tiny_gelu") == 0;
    CHECK(c.cfg.act == (gelu ? DATO_TE_ACT_GELU : DATO_TE_ACT_QUICK_GELU) && c.text.cfg.act == c.cfg.act &&
              c.text.cfg.eos_token_id == (gelu ? 49407 : 2) && c.prep.shortest_edge == (gelu ? 240 : 224) && L == 77,
          "%s: config as written by the generator", variant);

    size_t n_ref = 0;
    float* ref_img = fixture_f32(&io, "image_embeds", &n_ref);
    CHECK(ref_img && n_ref == (size_t)N_PAIRS * D, "%s: image_embeds (%d, %d)", variant, N_PAIRS, D);
    float* ref_txt = fixture_f32(&io, "text_embeds", &n_ref);
    CHECK(ref_txt && n_ref == (size_t)N_PAIRS * D, "%s: text_embeds (%d, %d)", variant, N_PAIRS, D);
    float* window = fixture_f32(&io, "pixel_window", &n_ref);
    CHECK(window && n_ref == (size_t)N_PAIRS * 3 * 16 * 16, "%s: pixel_window", variant);
    const dato_st_tensor* ids_t = dato_safetensors_find(&io, "input_ids");
    CHECK(ids_t && ids_t->dtype == DATO_ST_I32 && ids_t->numel == N_PAIRS * L, "%s: input_ids (%d, %d)", variant, N_PAIRS, L);
    if (!ref_img || !ref_txt || !window || !ids_t || ids_t->numel != N_PAIRS * L) goto done;

    // pixel values: the processor's, bit for bit
    float* pixels = malloc((size_t)3 * S * S * sizeof *pixels); // (3, S, S)
    for (int i = 0; i < N_PAIRS; i++) {
        st = dato_clip_preprocess(&c, img[i].px, img[i].h, img[i].w, img[i].c, pixels, &err);
        CHECK(st == DATO_OK, "%s: preprocess image %d: %s", variant, i, err.msg);
        uint64_t h = fnv1a64(pixels, (size_t)3 * S * S * sizeof *pixels), want = (uint64_t)fixture_i64_at(&io, "pixel_fnv", i);
        double wmax = 0;
        for (int k = 0; k < 3; k++)
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++) {
                    double d = fabs((double)pixels[((size_t)k * S + 104 + y) * S + 104 + x] - window[((i * 3 + k) * 16 + y) * 16 + x]);
                    wmax = d > wmax ? d : wmax;
                }
        printf("%-10s pixels %dx%dx%d: fnv %s, window max abs err %.2e\n", variant, img[i].h, img[i].w, img[i].c,
               h == want ? "equal" : "DIFFERENT", wmax);
        CHECK(h == want && wmax == 0, "%s: image %d pixel values differ from the processor's", variant, i);
    }
    free(pixels);

    // ids as torchmetrics cuts them
    int32_t ids[77], ref_ids[77];
    for (int i = 0; i < N_PAIRS; i++) {
        int n_tok = 0;
        st = dato_clip_tokenize(&c, caps[i], ids, &n_tok, &err);
        memcpy(ref_ids, (const char*)ids_t->data + (size_t)i * L * sizeof(int32_t), sizeof ref_ids);
        int same = st == DATO_OK && memcmp(ids, ref_ids, sizeof ids) == 0;
        printf("%-10s caption %d: %d tokens, last id %d, ids %s\n", variant, i, n_tok, ids[n_tok - 1], same ? "equal" : "DIFFERENT");
        CHECK(same, "%s: caption %d ids differ (%s)", variant, i, err.msg);
    }

    // embeddings: the images one at a time (sizes differ), the captions as one batch
    float* got_img = calloc((size_t)N_PAIRS * D, sizeof *got_img); // (3, D)
    float* got_txt = calloc((size_t)N_PAIRS * D, sizeof *got_txt); // (3, D)
    for (int i = 0; i < N_PAIRS; i++) {
        st = dato_clip_image_embeds(&c, img[i].px, 1, img[i].h, img[i].w, img[i].c, got_img + (size_t)i * D, &err);
        CHECK(st == DATO_OK, "%s: image embeds %d: %s", variant, i, err.msg);
    }
    st = dato_clip_text_embeds(&c, caps, N_PAIRS, got_txt, &err);
    CHECK(st == DATO_OK, "%s: text embeds: %s", variant, err.msg);
    check_rel(variant, "image_embeds", got_img, ref_img, (size_t)N_PAIRS * D);
    check_rel(variant, "text_embeds", got_txt, ref_txt, (size_t)N_PAIRS * D);
    void *text_ws = c.text.ws_block, *text_out = c.text_out, *image_ws = c.ws_block;
    float again[N_PAIRS * 64];
    st = dato_clip_text_embeds(&c, caps, N_PAIRS, again, &err);
    CHECK(st == DATO_OK && memcmp(again, got_txt, (size_t)N_PAIRS * D * sizeof(float)) == 0 && c.text.ws_block == text_ws &&
              c.text_out == text_out && c.ws_block == image_ws,
          "%s: a second text call changed the result or reallocated a workspace", variant);

    // batch of two copies of the 64x48 image against batch one
    size_t bytes = (size_t)img[1].h * img[1].w * img[1].c;
    uint8_t* two = malloc(2 * bytes);
    memcpy(two, img[1].px, bytes);
    memcpy(two + bytes, img[1].px, bytes);
    float pair_out[2 * 64];
    st = dato_clip_image_embeds(&c, two, 2, img[1].h, img[1].w, img[1].c, pair_out, &err);
    double d0 = test_max_abs_diff(pair_out, got_img + D, (size_t)D), d1 = test_max_abs_diff(pair_out + D, got_img + D, (size_t)D);
    double scale = test_max_abs(got_img + D, (size_t)D);
    printf("%-10s batch 2 vs batch 1: max rel diff %.2e\n", variant, (d0 > d1 ? d0 : d1) / scale);
    CHECK(st == DATO_OK && d0 <= 1e-6 * scale && d1 <= 1e-6 * scale, "%s: batch 2: %s", variant, err.msg);
    free(two);

    // scores
    float raw[N_PAIRS], pair[N_PAIRS], mean;
    for (int i = 0; i < N_PAIRS; i++) {
        raw[i] = (float)(100.0 * dato_clip_cosine(got_img + (size_t)i * D, got_txt + (size_t)i * D, D));
        pair[i] = (float)dato_clip_score_pair(got_img + (size_t)i * D, got_txt + (size_t)i * D, D);
    }
    mean = (float)dato_clip_score_mean(got_img, got_txt, N_PAIRS, D);
    float* ref_raw = fixture_f32(&io, "score_raw", NULL);
    float* ref_pair = fixture_f32(&io, "score_pair", NULL);
    float* ref_score = fixture_f32(&io, "score", NULL);
    if (ref_raw && ref_pair && ref_score) {
        printf("%-10s scores %.4f %.4f %.4f (torchmetrics %.4f %.4f %.4f), CLIPScore %.5f (torchmetrics %.5f)\n", variant,
               raw[0], raw[1], raw[2], ref_raw[0], ref_raw[1], ref_raw[2], mean, ref_score[0]);
        check_rel(variant, "100 cos per pair", raw, ref_raw, N_PAIRS);
        check_rel(variant, "CLIPScore per pair", pair, ref_pair, N_PAIRS);
        check_rel(variant, "CLIPScore of the 3 pairs", &mean, ref_score, 1);
        int negative = 0;
        for (int i = 0; i < N_PAIRS; i++) negative |= ref_raw[i] < 0 && pair[i] == 0.0f;
        CHECK(negative, "%s: the fixture has a negative pair, clamped to 0 alone but not in the mean", variant);
    } else {
        CHECK(0, "%s: score references missing", variant);
    }
    free(ref_raw), free(ref_pair), free(ref_score);
    free(got_img), free(got_txt);
done:
    free(ref_img), free(ref_txt), free(window);
    dato_clip_free(&c);
    dato_safetensors_close(&io);
}

// ---- broken folders ----------------------------------------------------------------------------

static const char* const TINY_FILES[] = {"model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json",
                                         "special_tokens_map.json", "preprocessor_config.json", "config.json"};
#define N_TINY_FILES ((int)(sizeof TINY_FILES / sizeof TINY_FILES[0]))

// tiny/ in dir as symlinks, except `replaced` (written with `from` replaced by `to`, or left out
// when from is NULL).
static void make_folder(const char* dir, const char* replaced, const char* from, const char* to) {
    char src[PATH_MAX], dst[PATH_MAX + 64], rel[256];
    for (int i = 0; i < N_TINY_FILES; i++) {
        snprintf(rel, sizeof rel, DIR "tiny/%s", TINY_FILES[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, TINY_FILES[i]);
        unlink(dst);
        if (!realpath(rel, src)) continue;
        if (strcmp(TINY_FILES[i], replaced) != 0) {
            CHECK(symlink(src, dst) == 0, "symlink %s", dst);
            continue;
        }
        if (!from) continue;
        size_t n = 0;
        unsigned char* text = read_bytes(src, &n);
        char* s = text ? realloc(text, n + 1) : NULL;
        if (!s) continue;
        s[n] = 0;
        char* at = strstr(s, from);
        CHECK(at != NULL, "'%s' not in %s", from, rel);
        if (at) {
            FILE* f = fopen(dst, "wb");
            fwrite(s, 1, (size_t)(at - s), f);
            fputs(to, f);
            fputs(at + strlen(from), f);
            fclose(f);
        }
        free(s);
    }
}

static void expect_error(dato_backend* be, const char* dir, dato_status want, const char* what, const char* need1,
                         const char* need2) {
    dato_clip c;
    dato_error err = {{0}};
    dato_status st = dato_clip_open(&c, dir, be, &err);
    printf("%-28s %s\n", what, err.msg);
    CHECK(st == want && strstr(err.msg, need1) && (!need2 || strstr(err.msg, need2)), "%s: got %d: %s", what, (int)st, err.msg);
    if (st == DATO_OK) dato_clip_free(&c);
    CHECK(c.weights == NULL && c.tok == NULL, "%s: a failed open leaves the struct empty", what);
}

static void test_errors(dato_backend* be) {
    expect_error(be, DIR "no_such_model", DATO_ERR_NOT_FOUND, "missing folder:", "no_such_model", NULL);
    char dir[] = "/tmp/dato_test_clip_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        CHECK(0, "mkdtemp");
        return;
    }
    make_folder(dir, "config.json", "\"patch_size\": 14,", "");
    expect_error(be, dir, DATO_ERR_FORMAT, "missing vision field:", "config.json vision_config: field 'patch_size' is missing", NULL);
    make_folder(dir, "config.json", "\"vocab_size\": 49408", "\"vocab\": 49408");
    expect_error(be, dir, DATO_ERR_FORMAT, "missing text field:", "config.json text_config: field 'vocab_size' is missing", NULL);
    make_folder(dir, "config.json", "\"projection_dim\": 16,\n  \"text_config\"", "\"text_config\"");
    expect_error(be, dir, DATO_ERR_FORMAT, "missing projection_dim:", "config.json: field 'projection_dim' is missing", NULL);
    make_folder(dir, "config.json", "\"patch_size\": 14", "\"patch_size\": 16");
    expect_error(be, dir, DATO_ERR_FORMAT, "misshaped tensor:",
                 "tensor 'vision_model.embeddings.patch_embedding.weight' has shape (32, 3, 14, 14), the config expects "
                 "(32, 3, 16, 16)", "model.safetensors");
    make_folder(dir, "preprocessor_config.json", NULL, NULL);
    expect_error(be, dir, DATO_ERR_NOT_FOUND, "no image processor:", "preprocessor_config.json nor processor_config.json", NULL);
    make_folder(dir, "preprocessor_config.json", "\"resample\": 3", "\"resample\": 2");
    expect_error(be, dir, DATO_ERR_UNSUPPORTED, "bilinear resample:", "preprocessor_config.json: field 'resample'", NULL);
    make_folder(dir, "preprocessor_config.json", "\"height\": 224", "\"height\": 336");
    expect_error(be, dir, DATO_ERR_UNSUPPORTED, "crop != image_size:", "field 'crop_size' must give 224x224", NULL);
    make_folder(dir, "merges.txt", NULL, NULL);
    expect_error(be, dir, DATO_ERR_IO, "no merges.txt:", "merges.txt", NULL);
    char path[PATH_MAX + 64];
    for (int i = 0; i < N_TINY_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, TINY_FILES[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void) {
    dato_error err = {{0}};
    dato_backend be;
    if (dato_backend_cpu_init(&be, 0, &err) != DATO_OK) {
        printf("cpu init: %s\n", err.msg);
        return 1;
    }
    test_image img[N_PAIRS] = {{0}};
    int ok = 1;
    for (int i = 0; i < N_PAIRS; i++) {
        dato_status st = dato_png_read(IMAGE_FILES[i], &img[i].px, &img[i].h, &img[i].w, &img[i].c, &err);
        CHECK(st == DATO_OK, "%s", err.msg);
        ok &= st == DATO_OK;
    }
    char* cap_buf = NULL;
    const char* caps[N_PAIRS] = {0};
    int have_caps = read_captions(&cap_buf, caps);
    CHECK(have_caps, "%scaptions.txt: three lines", DIR);
    if (ok && have_caps) {
        CHECK(img[0].c == 1 && img[0].h == 28 && img[1].h == 64 && img[1].w == 48 && img[2].h == 512, "image sizes");
        test_variant(&be, "tiny", img, caps);
        test_variant(&be, "tiny_gelu", img, caps);
    }
    test_errors(&be);
    for (int i = 0; i < N_PAIRS; i++) free(img[i].px);
    free(cap_buf);
    dato_backend_destroy(&be);
    return test_summary();
}
