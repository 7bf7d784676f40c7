// The embedded default model's feature network (tools/train_default.py's FeatNet, exported by
// export_featnet): a small CNN on grey (1, 28, 28) images whose fc1 output is the FID feature in
// the Fashion-MNIST domain and whose classifier checks that generated images show the prompted
// class. It sits behind the feature-extractor interface (extractor.h), so FID/KID code is shared.
//
// Exported folder DIR: config.json (architecture "dato-featnet", input, mean, std, stages,
// convs_per_stage, feature_dim, classes, class_names, test_accuracy) and model.safetensors
// (conv{i}.weight/bias with BatchNorm folded in, fc1.*, fc2.*). The network is built from the
// config: per stage, convs_per_stage x [conv3x3 pad 1 + bias, ReLU], then max-pool 2x2 stride 2;
// flatten (C, H, W) -> fc1 -> FEATURES (pre-activation) -> ReLU -> fc2 -> LOGITS.
#ifndef DATO_FEATNET_H
#define DATO_FEATNET_H

#include "extractor.h"

#define DATO_FEATNET_MAX_STAGES 8
#define DATO_FEATNET_MAX_CONVS_PER_STAGE 8
#define DATO_FEATNET_MAX_CLASSES 256
#define DATO_FEATNET_MAX_CHANNELS 4096
#define DATO_FEATNET_MAX_FEATURES 65536

typedef struct {
    int in_c, in_h, in_w;           // "input": [1, H, W]; grey only
    float mean, std;                // x = (v/255 - mean) / std for pixel v
    int n_stages;
    int stages[DATO_FEATNET_MAX_STAGES]; // output channels of each stage's convs
    int convs_per_stage;
    int feature_dim;                // fc1 outputs: the feature
    int classes;                    // fc2 outputs
    char class_names[DATO_FEATNET_MAX_CLASSES][64];
    float test_accuracy;            // as trained; -1 when the config has none
} dato_featnet_config;

// Reads and validates DIR/config.json-style JSON at path; errors name the file and field.
dato_status dato_featnet_config_read(dato_featnet_config* cfg, const char* path, dato_error* err);

// Opens the feature network in dir (config.json + model.safetensors) on be. name
// "dato-featnet-fashion-mnist-fc1", preprocessing "featnet", weights_hash of model.safetensors.
// preprocess takes uint8 (in_h, in_w, 1 or 3) images, RGB converted to grey as PIL's convert("L"),
// other sizes refused (no resizing). forward: features (B, feature_dim) of (B, 1, in_h, in_w) host
// tensors; the workspace is planned once per batch size.
dato_status dato_extractor_featnet_open(dato_feature_extractor* fx, const char* dir, dato_backend* be,
                                        dato_error* err);

// One forward of x (B, 1, in_h, in_w) host F32 (preprocessed): features (B, feature_dim) and logits
// (B, classes) host, each NULL if not wanted, and predicted (B) = argmax of the logits (first on a
// tie) or NULL. fx must come from dato_extractor_featnet_open.
dato_status dato_featnet_classify(dato_feature_extractor* fx, const dato_tensor* x, float* features, float* logits,
                                  int* predicted, dato_error* err);

// The config of a featnet extractor (class names, counts, test accuracy); NULL for any other extractor.
const dato_featnet_config* dato_featnet_config_of(const dato_feature_extractor* fx);

#endif
