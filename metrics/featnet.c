// The default model's feature network: config.json -> parameter table, loaded by the engine's one
// loader (param_table.h) into one weight block, then a sequential forward whose activations
// ping-pong between two workspace buffers sized for the largest layer output. Inputs and outputs
// are host memory; the forward uploads and downloads them, so the same code runs on any backend.
#include "featnet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "arena.h"
#include "file_util.h"
#include "json_fields.h"
#include "param_table.h"
#include "tensor_source.h"

#define MAX_CONVS (DATO_FEATNET_MAX_STAGES * DATO_FEATNET_MAX_CONVS_PER_STAGE)
#define MAX_SIDE 4096

// ---- config -------------------------------------------------------------------------------------

static dato_status config_parse(dato_featnet_config* cfg, const cJSON* root, const char* label, dato_error* err) {
    memset(cfg, 0, sizeof *cfg);
    const cJSON* arch = cJSON_GetObjectItemCaseSensitive(root, "architecture");
    if (!cJSON_IsString(arch) || strcmp(arch->valuestring, "dato-featnet") != 0)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'architecture' must be \"dato-featnet\"", label);
    int input[3], n_input;
    DATO_TRY(dato_json_int_list(root, "input", 1, MAX_SIDE, input, 3, &n_input, label, err));
    if (n_input != 3) return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'input': expected [C, H, W]", label);
    if (input[0] != 1)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: field 'input': %d channels, only grey (1) is supported", label,
                         input[0]);
    cfg->in_c = input[0], cfg->in_h = input[1], cfg->in_w = input[2];
    DATO_TRY(dato_json_number(root, "mean", &cfg->mean, 1, label, err));
    DATO_TRY(dato_json_number(root, "std", &cfg->std, 1, label, err));
    if (!(cfg->std > 0)) return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'std' = %g must be > 0", label, (double)cfg->std);
    DATO_TRY(dato_json_int_list(root, "stages", 1, DATO_FEATNET_MAX_CHANNELS, cfg->stages, DATO_FEATNET_MAX_STAGES,
                                &cfg->n_stages, label, err));
    if ((cfg->in_h >> cfg->n_stages) < 1 || (cfg->in_w >> cfg->n_stages) < 1)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'stages': %d 2x2 pools leave nothing of a %dx%d input", label,
                         cfg->n_stages, cfg->in_h, cfg->in_w);
    DATO_TRY(dato_json_int_in(root, "convs_per_stage", 1, DATO_FEATNET_MAX_CONVS_PER_STAGE, &cfg->convs_per_stage,
                              label, err));
    DATO_TRY(dato_json_int_in(root, "feature_dim", 1, DATO_FEATNET_MAX_FEATURES, &cfg->feature_dim, label, err));
    DATO_TRY(dato_json_int_in(root, "classes", 1, DATO_FEATNET_MAX_CLASSES, &cfg->classes, label, err));
    const cJSON* names = cJSON_GetObjectItemCaseSensitive(root, "class_names");
    if (!cJSON_IsArray(names) || cJSON_GetArraySize(names) != cfg->classes)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'class_names': expected a list of %d strings", label,
                         cfg->classes);
    for (int i = 0; i < cfg->classes; i++) {
        const cJSON* e = cJSON_GetArrayItem(names, i);
        if (!cJSON_IsString(e) || strlen(e->valuestring) >= sizeof cfg->class_names[i])
            return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'class_names'[%d]: expected a string under %zu bytes",
                             label, i, sizeof cfg->class_names[i]);
        snprintf(cfg->class_names[i], sizeof cfg->class_names[i], "%s", e->valuestring);
    }
    cfg->test_accuracy = -1;
    const cJSON* acc = cJSON_GetObjectItemCaseSensitive(root, "test_accuracy");
    if (acc && !cJSON_IsNull(acc)) {
        if (!cJSON_IsNumber(acc) || !(acc->valuedouble >= 0 && acc->valuedouble <= 1))
            return dato_fail(err, DATO_ERR_FORMAT, "%s: field 'test_accuracy': expected a number in [0, 1]", label);
        cfg->test_accuracy = (float)acc->valuedouble;
    }
    return DATO_OK;
}

dato_status dato_featnet_config_read(dato_featnet_config* cfg, const char* path, dato_error* err) {
    cJSON* root;
    DATO_TRY(dato_json_read_object(path, &root, err));
    dato_status st = config_parse(cfg, root, path, err);
    cJSON_Delete(root);
    return st;
}

// ---- the network --------------------------------------------------------------------------------

typedef struct {
    dato_featnet_config cfg;
    dato_backend* be;
    dato_param* params;            // the parameter table (param_table.h): conv{i}.*, fc1.*, fc2.*
    int n_params;
    void* weights;                 // one backend block holding every tensor below
    dato_dtype weight_dtype;       // F32: the table's GEMM weights are never converted
    int n_convs;
    dato_tensor conv_w[MAX_CONVS]; // (Cout, Cin, 3, 3), BatchNorm folded in
    dato_tensor conv_b[MAX_CONVS]; // (Cout)
    dato_tensor fc1_w;             // (feature_dim, C_last * side_h * side_w)
    dato_tensor fc1_b;             // (feature_dim)
    dato_tensor fc2_w;             // (classes, feature_dim)
    dato_tensor fc2_b;             // (classes)
    void* workspace;               // activations of a forward, planned for workspace_batch images
    size_t workspace_bytes;
    int64_t workspace_batch;
} featnet;

static int64_t side_after(int side, int n_stages) { return side >> n_stages; } // floor at each 2x2 pool

// One row of the table: a weight (gemm) or bias named prefix + suffix, the same in both layouts.
static dato_status push(dato_param_builder* b, const char* prefix, const char* suffix, int ndim, const int64_t* shape,
                        dato_tensor* slot) {
    char name[64];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    return dato_param_push(b, name, name, ndim, shape, ndim > 1, slot);
}

// The parameter table from the config, in file order: no memory yet.
static dato_status featnet_build(featnet* net, dato_error* err) {
    const dato_featnet_config* c = &net->cfg;
    dato_param_builder b = {.params = &net->params, .n = &net->n_params, .device = net->be->device,
                            .what = "featnet", .err = err};
    int cin = c->in_c, i = 0;
    char layer[32];
    for (int s = 0; s < c->n_stages; s++)
        for (int j = 0; j < c->convs_per_stage; j++, i++) {
            snprintf(layer, sizeof layer, "conv%d", i);
            DATO_TRY(push(&b, layer, ".weight", 4, (int64_t[]){c->stages[s], cin, 3, 3}, &net->conv_w[i]));
            DATO_TRY(push(&b, layer, ".bias", 1, (int64_t[]){c->stages[s]}, &net->conv_b[i]));
            cin = c->stages[s];
        }
    net->n_convs = i;
    int64_t flat = (int64_t)cin * side_after(c->in_h, c->n_stages) * side_after(c->in_w, c->n_stages);
    DATO_TRY(push(&b, "fc1", ".weight", 2, (int64_t[]){c->feature_dim, flat}, &net->fc1_w));
    DATO_TRY(push(&b, "fc1", ".bias", 1, (int64_t[]){c->feature_dim}, &net->fc1_b));
    DATO_TRY(push(&b, "fc2", ".weight", 2, (int64_t[]){c->classes, c->feature_dim}, &net->fc2_w));
    return push(&b, "fc2", ".bias", 1, (int64_t[]){c->classes}, &net->fc2_b);
}

// Floats per image of the largest conv or pool output.
static int64_t max_activation(const dato_featnet_config* c) {
    int64_t m = 0, h = c->in_h, w = c->in_w;
    for (int s = 0; s < c->n_stages; s++, h /= 2, w /= 2) {
        int64_t conv_out = c->stages[s] * h * w; // pool outputs are a quarter of it
        m = conv_out > m ? conv_out : m;
    }
    return m;
}

// Runs an op; a failure is reported with the layer it ran for.
#define LAYER(call, layer)                                                               \
    do {                                                                                 \
        dato_status st_ = (call);                                                        \
        if (st_ != DATO_OK) return dato_error_prefix(err, st_, "featnet %s: ", layer);  \
    } while (0)

// features_host (B, F) and logits_host (B, K), each NULL if not wanted, of x_host (B, 1, H, W).
static dato_status forward_impl(const featnet* net, dato_backend* be, dato_arena* a, int64_t batch,
                                const float* x_host, float* features_host, float* logits_host, dato_error* err) {
    const dato_featnet_config* c = &net->cfg;
    const dato_backend_ops* op = be->ops;
    dato_device dev = be->device;
    int64_t ping_floats = batch * max_activation(c);
    dato_tensor x = dato_arena_tensor(a, DATO_F32, dev, 4, (int64_t[]){batch, c->in_c, c->in_h, c->in_w});
    dato_tensor ping[2]; // (B * max activation) each: layer outputs alternate between them
    for (int i = 0; i < 2; i++) ping[i] = dato_arena_tensor(a, DATO_F32, dev, 1, (int64_t[]){ping_floats});
    dato_tensor features = dato_arena_tensor(a, DATO_F32, dev, 2, (int64_t[]){batch, c->feature_dim}); // (B, F)
    dato_tensor hidden = dato_arena_tensor(a, DATO_F32, dev, 2, (int64_t[]){batch, c->feature_dim});   // (B, F)
    dato_tensor logits = dato_arena_tensor(a, DATO_F32, dev, 2, (int64_t[]){batch, c->classes});       // (B, K)
    if (a->overflowed) return dato_fail(err, DATO_ERR_NOMEM, "featnet: workspace too small for batch %lld", (long long)batch);
    op->upload(be, x.data, x_host, dato_tensor_nbytes(&x));

    dato_tensor cur = x; // (B, C, H, W), the current layer output
    int next = 0, conv = 0;
    char layer[32];
    for (int s = 0; s < c->n_stages; s++) {
        for (int j = 0; j < c->convs_per_stage; j++, conv++) {
            dato_tensor out = dato_tensor_make(ping[next].data, DATO_F32, dev, 4,
                                               (int64_t[]){batch, c->stages[s], cur.shape[2], cur.shape[3]});
            snprintf(layer, sizeof layer, "conv%d", conv);
            LAYER(op->conv2d(be, &out, &cur, &net->conv_w[conv], &net->conv_b[conv], 1, 1, 1, 1, err), layer);
            LAYER(op->relu(be, &out, &out, err), layer);
            cur = out, next = 1 - next;
        }
        dato_tensor pooled = dato_tensor_make(ping[next].data, DATO_F32, dev, 4,
                                              (int64_t[]){batch, c->stages[s], cur.shape[2] / 2, cur.shape[3] / 2});
        snprintf(layer, sizeof layer, "pool%d", s);
        LAYER(op->max_pool2d(be, &pooled, &cur, 2, 2, 0, err), layer);
        cur = pooled, next = 1 - next;
    }
    // (B, C, h, w) is contiguous, so (B, C*h*w) is its (C, H, W)-order flatten
    dato_tensor flat = dato_tensor_make(cur.data, DATO_F32, dev, 2,
                                        (int64_t[]){batch, cur.shape[1] * cur.shape[2] * cur.shape[3]});
    LAYER(op->linear(be, &features, &flat, &net->fc1_w, &net->fc1_b, err), "fc1");
    LAYER(op->relu(be, &hidden, &features, err), "fc1 relu");
    LAYER(op->linear(be, &logits, &hidden, &net->fc2_w, &net->fc2_b, err), "fc2");
    if (features_host) op->download(be, features_host, features.data, dato_tensor_nbytes(&features));
    if (logits_host) op->download(be, logits_host, logits.data, dato_tensor_nbytes(&logits));
    op->synchronize(be);
    return DATO_OK;
}

#undef LAYER

// Plans the workspace for batch images when the batch size changes, then runs the forward.
static dato_status featnet_run(featnet* net, const dato_tensor* x, float* features, float* logits, dato_error* err) {
    const dato_featnet_config* c = &net->cfg;
    char sx[96];
    if (!x || x->ndim != 4 || x->dtype != DATO_F32 || x->device != DATO_DEV_CPU || !x->data || x->shape[0] < 1 ||
        x->shape[0] > INT32_MAX || x->shape[1] != c->in_c || x->shape[2] != c->in_h || x->shape[3] != c->in_w)
        return dato_fail(err, DATO_ERR_INVALID, "featnet: input %s is not a host F32 (B >= 1, %d, %d, %d) tensor",
                         x ? dato_shape_str(x, sx, sizeof sx) : "NULL", c->in_c, c->in_h, c->in_w);
    int64_t batch = x->shape[0];
    if (net->workspace_batch != batch) {
        // plan: the same forward on the null backend with a measuring arena
        dato_backend null_be;
        dato_backend_null_init(&null_be);
        dato_arena measure = dato_arena_measure();
        DATO_TRY(forward_impl(net, &null_be, &measure, batch, NULL, NULL, NULL, err));
        if (net->workspace) net->be->ops->free(net->be, net->workspace);
        net->workspace_batch = 0;
        net->workspace_bytes = measure.peak;
        net->workspace = net->be->ops->alloc(net->be, measure.peak);
        if (!net->workspace)
            return dato_fail(err, DATO_ERR_NOMEM, "featnet: cannot allocate a %zu-byte workspace for batch %lld",
                             measure.peak, (long long)batch);
        net->workspace_batch = batch;
    }
    dato_arena a = dato_arena_over(net->workspace, net->workspace_bytes);
    return forward_impl(net, net->be, &a, batch, x->data, features, logits, err);
}

// ---- the extractor --------------------------------------------------------------------------------

// PIL's Image.convert("L"): ITU-R 601-2 luma in 16-bit fixed point, rounded.
static uint8_t pil_luma(uint8_t r, uint8_t g, uint8_t b) {
    return (uint8_t)(((uint32_t)r * 19595 + (uint32_t)g * 38470 + (uint32_t)b * 7471 + 0x8000) >> 16);
}

static dato_status featnet_preprocess(dato_feature_extractor* fx, const uint8_t* img, int h, int w, int c, float* out,
                                      dato_error* err) {
    const dato_featnet_config* cfg = &((featnet*)fx->impl)->cfg;
    if (!img || !out) return dato_fail(err, DATO_ERR_INVALID, "featnet: NULL image or output");
    if (c != 1 && c != 3) return dato_fail(err, DATO_ERR_INVALID, "featnet: images must have 1 or 3 channels, not %d", c);
    if (h != cfg->in_h || w != cfg->in_w)
        return dato_fail(err, DATO_ERR_INVALID, "featnet: image is %dx%d (h x w), the network takes %dx%d (no resizing)",
                         h, w, cfg->in_h, cfg->in_w);
    for (int64_t i = 0; i < (int64_t)h * w; i++) {
        uint8_t v = c == 1 ? img[i] : pil_luma(img[3 * i], img[3 * i + 1], img[3 * i + 2]);
        out[i] = ((float)v / 255.0f - cfg->mean) / cfg->std; // featnet_input's f32 order of operations
    }
    return DATO_OK;
}

static dato_status featnet_forward(dato_feature_extractor* fx, const dato_tensor* x, dato_tensor* features,
                                   dato_error* err) {
    featnet* net = fx->impl;
    char sf[96];
    if (!features || features->ndim != 2 || features->dtype != DATO_F32 || features->device != DATO_DEV_CPU ||
        !features->data || !x || x->ndim < 1 || features->shape[0] != x->shape[0] ||
        features->shape[1] != net->cfg.feature_dim)
        return dato_fail(err, DATO_ERR_INVALID, "featnet: features %s are not a host F32 (B, %d) tensor matching the input",
                         features ? dato_shape_str(features, sf, sizeof sf) : "NULL", net->cfg.feature_dim);
    return featnet_run(net, x, features->data, NULL, err);
}

static void featnet_destroy(dato_feature_extractor* fx) {
    featnet* net = fx->impl;
    if (!net) return;
    if (net->weights) net->be->ops->free(net->be, net->weights);
    if (net->workspace) net->be->ops->free(net->be, net->workspace);
    free(net->params);
    free(net);
    fx->impl = NULL;
}

dato_status dato_extractor_featnet_open(dato_feature_extractor* fx, const char* dir, dato_backend* be,
                                        dato_error* err) {
    memset(fx, 0, sizeof *fx);
    char config_path[4096], weights_path[4096];
    DATO_TRY(dato_path_join(config_path, sizeof config_path, dir, "config.json", err));
    DATO_TRY(dato_path_join(weights_path, sizeof weights_path, dir, "model.safetensors", err));
    featnet* net = calloc(1, sizeof *net);
    if (!net) return dato_fail(err, DATO_ERR_NOMEM, "featnet: out of memory");
    net->be = be;
    *fx = (dato_feature_extractor){.preprocess = featnet_preprocess, .forward = featnet_forward,
                                   .destroy = featnet_destroy, .impl = net};
    dato_status st = dato_featnet_config_read(&net->cfg, config_path, err);
    if (!st) st = dato_file_hash(weights_path, fx->weights_hash, sizeof fx->weights_hash, err);
    if (!st) st = featnet_build(net, err);
    if (!st) {
        dato_weight_files wf;
        st = dato_weight_files_open(&wf, weights_path, err);
        if (!st) { // every tensor of the file must be a row: an extra one means a config mismatch
            dato_tensor_source src = dato_tensor_source_files(&wf);
            dato_param_names names = {.src = &src, .layout = 0, .prefix = "", .strict = "", .model = "featnet"};
            st = dato_params_load(DATO_PARAM_TABLE(net, "featnet"), &names, err);
            dato_weight_files_close(&wf);
        }
    }
    if (st) {
        featnet_destroy(fx);
        return st;
    }
    snprintf(fx->name, sizeof fx->name, "dato-featnet-fashion-mnist-fc1");
    snprintf(fx->preprocessing, sizeof fx->preprocessing, "featnet");
    fx->dim = net->cfg.feature_dim;
    fx->in_c = net->cfg.in_c, fx->in_h = net->cfg.in_h, fx->in_w = net->cfg.in_w;
    return DATO_OK;
}

const dato_featnet_config* dato_featnet_config_of(const dato_feature_extractor* fx) {
    return fx && fx->forward == featnet_forward && fx->impl ? &((const featnet*)fx->impl)->cfg : NULL;
}

dato_status dato_featnet_classify(dato_feature_extractor* fx, const dato_tensor* x, float* features, float* logits,
                                  int* predicted, dato_error* err) {
    if (!dato_featnet_config_of(fx)) return dato_fail(err, DATO_ERR_INVALID, "featnet: not a featnet extractor");
    featnet* net = fx->impl;
    int k = net->cfg.classes;
    int64_t batch = x && x->ndim == 4 ? x->shape[0] : 0;
    float* scores = logits; // (B, K): the caller's logits, or a temporary when only predictions are wanted
    if (!scores && predicted && batch > 0 && batch <= INT32_MAX) {
        scores = malloc((size_t)batch * k * sizeof *scores);
        if (!scores) return dato_fail(err, DATO_ERR_NOMEM, "featnet: cannot allocate logits for batch %lld", (long long)batch);
    }
    dato_status st = featnet_run(net, x, features, scores, err);
    if (!st && predicted)
        for (int64_t b = 0; b < batch; b++) {
            int best = 0;
            for (int j = 1; j < k; j++) best = scores[b * k + j] > scores[b * k + best] ? j : best;
            predicted[b] = best;
        }
    if (scores != logits) free(scores);
    return st;
}
