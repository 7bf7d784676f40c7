// The feature network (metrics/featnet.c) against PyTorch: tests/fixtures/featnet holds a
// seeded-random FeatNet exported by tools/train_default.py's export_featnet (BatchNorm with random
// statistics folded in) and the UNFOLDED net's features and logits on 16 Fashion-MNIST test images
// (tools/make_featnet_fixtures.py). Also: preprocessing (grey, and RGB -> grey as PIL's
// convert("L")), re-planning for a new batch size, and the errors of bad configs, missing or extra
// tensors and wrong image sizes.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "featnet.h"
#include "fixture.h"
#include "safetensors.h"
#include "test_util.h"

#define DIR "tests/fixtures/featnet/model"
#define REF "tests/fixtures/featnet/reference.safetensors"
#define N 16   // reference images
#define NRGB 4 // RGB variants
#define SIDE 28
#define FEATURES 64
#define CLASSES 10

// A raw copy of a U8 fixture tensor of n bytes, or NULL.
static void* fixture_raw(const dato_safetensors* st, const char* name, size_t nbytes) {
    const dato_st_tensor* t = dato_safetensors_find(st, name);
    if (!t || t->nbytes != nbytes) {
        fprintf(stderr, "%s: fixture tensor '%s' missing or not %zu bytes\n", st->path, name, nbytes);
        return NULL;
    }
    void* p = malloc(nbytes);
    memcpy(p, t->data, nbytes);
    return p;
}

// A config.json whose architecture, stages, std line and class_names are substituted.
static void write_config(const char* dir, const char* arch, const char* stages, const char* std_field,
                         const char* class_names) {
    char path[512], json[2048];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int n = snprintf(json, sizeof json,
                     "{\"architecture\": \"%s\", \"input\": [1, 28, 28], \"mean\": 0.286, %s \"stages\": %s,"
                     " \"convs_per_stage\": 2, \"feature_dim\": 64, \"classes\": 10, \"class_names\": %s,"
                     " \"test_accuracy\": 0.0}",
                     arch, std_field, stages, class_names);
    write_bytes(path, json, (size_t)n);
}

#define NAMES10 "[\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\", \"j\"]"
#define NAMES9 "[\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"i\"]"

// Writes dir/model.safetensors: the fixture's tensors without `drop` (or NULL), plus one named `extra` (or NULL).
static void write_weights(const char* dir, const dato_safetensors* model, const char* drop, const char* extra) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    dato_st_write_entry e[32];
    int64_t shapes[32][4];
    int n = 0;
    for (int i = 0; i < model->n_tensors && n < 31; i++) {
        const dato_st_tensor* t = &model->tensors[i];
        if (drop && strcmp(t->name, drop) == 0) continue;
        for (int d = 0; d < t->ndim; d++) shapes[n][d] = t->shape[d];
        e[n] = (dato_st_write_entry){t->name, DATO_F32, t->ndim, shapes[n], t->data};
        n++;
    }
    static const float one = 1.0f;
    if (extra) {
        shapes[n][0] = 1;
        e[n] = (dato_st_write_entry){extra, DATO_F32, 1, shapes[n], &one};
        n++;
    }
    dato_error err;
    if (dato_safetensors_write(path, e, n, NULL, &err)) fprintf(stderr, "%s\n", err.msg);
}

// Opening dir must fail with status want and a message containing needle.
static void expect_open_error(const char* dir, dato_backend* be, dato_status want, const char* needle, const char* what) {
    dato_feature_extractor fx;
    dato_error err = {{0}};
    dato_status st = dato_extractor_featnet_open(&fx, dir, be, &err);
    CHECK(st == want && strstr(err.msg, needle), "%s: got %s '%s', want %s naming '%s'", what, dato_status_name(st),
          err.msg, dato_status_name(want), needle);
    if (st == DATO_OK) fx.destroy(&fx);
}

int main(void) {
    dato_error err = {{0}};
    dato_backend be;
    if (dato_backend_cpu_init(&be, 1, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    dato_safetensors ref, model;
    if (dato_safetensors_open(&ref, REF, &err) || dato_safetensors_open(&model, DIR "/model.safetensors", &err)) {
        fprintf(stderr, "%s (run tools/make_featnet_fixtures.py)\n", err.msg);
        return 1;
    }
    uint8_t* images = fixture_raw(&ref, "images", N * SIDE * SIDE);            // (N, 28, 28)
    uint8_t* rgb = fixture_raw(&ref, "rgb", NRGB * SIDE * SIDE * 3);           // (NRGB, 28, 28, 3)
    uint8_t* rgb_luma = fixture_raw(&ref, "rgb_luma", NRGB * SIDE * SIDE);     // (NRGB, 28, 28)
    float* ref_inputs = fixture_f32(&ref, "inputs", NULL);                    // (N, 1, 28, 28)
    float* ref_features = fixture_f32(&ref, "features", NULL);                // (N, 64)
    float* ref_logits = fixture_f32(&ref, "logits", NULL);                    // (N, 10)
    if (!images || !rgb || !rgb_luma || !ref_inputs || !ref_features || !ref_logits) return 1;

    // ---- open ----
    dato_feature_extractor fx;
    dato_status st = dato_extractor_featnet_open(&fx, DIR, &be, &err);
    CHECK(st == DATO_OK, "open: %s", err.msg);
    if (st) return test_summary();
    char hash[128];
    dato_file_hash(DIR "/model.safetensors", hash, sizeof hash, &err);
    CHECK(strcmp(fx.name, "dato-featnet-fashion-mnist-fc1") == 0, "name '%s'", fx.name);
    CHECK(strcmp(fx.preprocessing, "featnet") == 0, "preprocessing '%s'", fx.preprocessing);
    CHECK(strcmp(fx.weights_hash, hash) == 0, "weights_hash '%s' vs '%s'", fx.weights_hash, hash);
    CHECK(fx.dim == FEATURES && fx.in_c == 1 && fx.in_h == SIDE && fx.in_w == SIDE, "dim %d, input (%d, %d, %d)", fx.dim,
          fx.in_c, fx.in_h, fx.in_w);
    const dato_featnet_config* cfg = dato_featnet_config_of(&fx);
    CHECK(cfg && cfg->n_stages == 2 && cfg->stages[0] == 8 && cfg->stages[1] == 16 && cfg->classes == CLASSES &&
              strcmp(cfg->class_names[9], "ankle boot") == 0,
          "config not as exported");

    // ---- preprocessing: grey, and RGB through PIL's luma ----
    float* x = malloc(N * SIDE * SIDE * sizeof *x);         // (N, 1, 28, 28)
    float* grey = malloc(SIDE * SIDE * sizeof *grey);       // (1, 28, 28)
    float* from_rgb = malloc(SIDE * SIDE * sizeof *from_rgb); // (1, 28, 28)
    for (int i = 0; i < N; i++) fx.preprocess(&fx, images + i * SIDE * SIDE, SIDE, SIDE, 1, x + i * SIDE * SIDE, &err);
    double prep_err = test_max_abs_diff(x, ref_inputs, N * SIDE * SIDE);
    printf("preprocess: max abs err %.3g vs featnet_input\n", prep_err);
    CHECK(prep_err <= 1e-6, "preprocess max abs err %g > 1e-6", prep_err);
    double rgb_err = 0;
    for (int i = 0; i < NRGB; i++) {
        fx.preprocess(&fx, rgb + i * SIDE * SIDE * 3, SIDE, SIDE, 3, from_rgb, &err);
        fx.preprocess(&fx, rgb_luma + i * SIDE * SIDE, SIDE, SIDE, 1, grey, &err);
        double e = test_max_abs_diff(from_rgb, grey, SIDE * SIDE);
        rgb_err = e > rgb_err ? e : rgb_err;
    }
    printf("RGB -> grey: max abs err %.3g vs PIL convert(\"L\")\n", rgb_err);
    CHECK(rgb_err == 0, "RGB preprocessing differs from PIL's luma by %g", rgb_err);

    // ---- features and logits vs the unfolded PyTorch net (on the reference inputs) ----
    float features[N * FEATURES], logits[N * CLASSES];
    int predicted[N];
    dato_tensor xt = dato_tensor_f32_4d(ref_inputs, N, 1, SIDE, SIDE);
    st = dato_featnet_classify(&fx, &xt, features, logits, predicted, &err);
    CHECK(st == DATO_OK, "classify: %s", err.msg);
    double f_abs = test_max_abs_diff(features, ref_features, N * FEATURES);
    double f_rel = test_rel_err(features, ref_features, N * FEATURES);
    double l_abs = test_max_abs_diff(logits, ref_logits, N * CLASSES);
    double l_rel = test_rel_err(logits, ref_logits, N * CLASSES);
    printf("features: max abs err %.3g, rel err %.3g (max |ref| %.3f)\n", f_abs, f_rel, test_max_abs(ref_features, N * FEATURES));
    printf("logits:   max abs err %.3g, rel err %.3g (max |ref| %.3f)\n", l_abs, l_rel, test_max_abs(ref_logits, N * CLASSES));
    CHECK(f_rel <= 1e-4, "features rel err %g > 1e-4", f_rel);
    CHECK(l_rel <= 1e-4, "logits rel err %g > 1e-4", l_rel);
    int agree = 0;
    for (int b = 0; b < N; b++) {
        int best = 0;
        for (int j = 1; j < CLASSES; j++) best = ref_logits[b * CLASSES + j] > ref_logits[b * CLASSES + best] ? j : best;
        agree += predicted[b] == best;
    }
    CHECK(agree == N, "predicted classes agree with PyTorch's argmax on %d of %d", agree, N);

    // ---- the extractor's forward on our own preprocessing, and a re-plan for batch 5 ----
    float f16[N * FEATURES], f5[5 * FEATURES];
    dato_tensor xp = dato_tensor_f32_4d(x, N, 1, SIDE, SIDE), ft = dato_tensor_f32_2d(f16, N, FEATURES);
    st = fx.forward(&fx, &xp, &ft, &err);
    CHECK(st == DATO_OK, "forward: %s", err.msg);
    double fwd_rel = test_rel_err(f16, ref_features, N * FEATURES);
    dato_tensor x5 = dato_tensor_f32_4d(x + 3 * SIDE * SIDE, 5, 1, SIDE, SIDE), ft5 = dato_tensor_f32_2d(f5, 5, FEATURES);
    st = fx.forward(&fx, &x5, &ft5, &err);
    CHECK(st == DATO_OK, "forward batch 5: %s", err.msg);
    double b5_err = test_max_abs_diff(f5, f16 + 3 * FEATURES, 5 * FEATURES);
    printf("forward from uint8: rel err %.3g; batch 5 vs rows 3..7 of batch 16: max abs err %.3g\n", fwd_rel, b5_err);
    CHECK(fwd_rel <= 1e-4, "forward rel err %g > 1e-4", fwd_rel);
    CHECK(b5_err <= 1e-5, "batch 5 differs from batch 16 rows by %g", b5_err);

    // ---- errors: images and tensors handed in ----
    st = fx.preprocess(&fx, images, 27, 28, 1, grey, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "27x28"), "27x28 image: %s '%s'", dato_status_name(st), err.msg);
    st = fx.preprocess(&fx, images, 28, 28, 2, grey, &err);
    CHECK(st == DATO_ERR_INVALID, "2-channel image: %s", dato_status_name(st));
    dato_tensor bad = dato_tensor_f32_4d(ref_inputs, 1, 1, 28, 27);
    st = dato_featnet_classify(&fx, &bad, NULL, logits, NULL, &err);
    CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "(1, 1, 28, 27)"), "bad input: %s '%s'", dato_status_name(st),
          err.msg);
    dato_tensor bad_features = dato_tensor_f32_2d(f5, N, 32);
    st = fx.forward(&fx, &xp, &bad_features, &err);
    CHECK(st == DATO_ERR_INVALID, "bad features tensor: %s", dato_status_name(st));
    fx.destroy(&fx);

    // ---- errors: configs and weight files ----
    char tmp[] = "/tmp/dato_featnet_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    write_weights(tmp, &model, NULL, NULL);
    write_config(tmp, "dato-featnet", "[8, 16]", "\"std\": 0.353,", NAMES10);
    expect_open_error(tmp, &be, DATO_OK, "", "valid copy");
    write_config(tmp, "resnet", "[8, 16]", "\"std\": 0.353,", NAMES10);
    expect_open_error(tmp, &be, DATO_ERR_FORMAT, "'architecture'", "bad architecture");
    write_config(tmp, "dato-featnet", "[8, \"x\"]", "\"std\": 0.353,", NAMES10);
    expect_open_error(tmp, &be, DATO_ERR_FORMAT, "'stages'[1]", "non-integer stage");
    write_config(tmp, "dato-featnet", "[8, 16, 16, 16, 16]", "\"std\": 0.353,", NAMES10);
    expect_open_error(tmp, &be, DATO_ERR_FORMAT, "'stages'", "too many pools for 28x28");
    write_config(tmp, "dato-featnet", "[8, 16]", "", NAMES10);
    expect_open_error(tmp, &be, DATO_ERR_FORMAT, "'std' is missing", "missing std");
    write_config(tmp, "dato-featnet", "[8, 16]", "\"std\": 0,", NAMES10);
    expect_open_error(tmp, &be, DATO_ERR_FORMAT, "'std'", "zero std");
    write_config(tmp, "dato-featnet", "[8, 16]", "\"std\": 0.353,", NAMES9);
    expect_open_error(tmp, &be, DATO_ERR_FORMAT, "'class_names'", "9 class names");
    write_config(tmp, "dato-featnet", "[8, 32]", "\"std\": 0.353,", NAMES10);
    expect_open_error(tmp, &be, DATO_ERR_FORMAT, "model.safetensors: tensor 'conv2.weight' has shape (16, 8, 3, 3), the config expects (32, 8, 3, 3)",
                      "stages not matching the weights");
    write_config(tmp, "dato-featnet", "[8, 16]", "\"std\": 0.353,", NAMES10);
    write_weights(tmp, &model, "fc2.bias", NULL);
    expect_open_error(tmp, &be, DATO_ERR_NOT_FOUND, "model.safetensors: tensor 'fc2.bias' is missing", "missing tensor");
    write_weights(tmp, &model, NULL, "conv4.weight");
    expect_open_error(tmp, &be, DATO_ERR_FORMAT, "model.safetensors: tensor 'conv4.weight' is not part of the configured featnet", "extra tensor");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    remove(path);
    expect_open_error(tmp, &be, DATO_ERR_IO, "model.safetensors", "no weights file");
    snprintf(path, sizeof path, "%s/config.json", tmp);
    remove(path);
    expect_open_error(tmp, &be, DATO_ERR_IO, "config.json", "no config");
    remove(tmp);

    free(images), free(rgb), free(rgb_luma), free(ref_inputs), free(ref_features), free(ref_logits);
    free(x), free(grey), free(from_rgb);
    dato_safetensors_close(&ref);
    dato_safetensors_close(&model);
    dato_backend_destroy(&be);
    return test_summary();
}
