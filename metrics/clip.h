// CLIP score as torchmetrics' CLIPScore computes it (torchmetrics 1.9, transformers 5), on a CLIP
// model folder in transformers' layout (docs: metrics/README.md, "CLIP score"):
//
//   image (uint8, any size, grey or RGB) -> the CLIPProcessor's image processor
//     -> vision tower: patch conv (no bias) -> [class; patches] + positions -> pre_layrnorm
//        -> encoder layers (pre-LN, MHA, MLP with quick_gelu or gelu) -> post_layernorm of the
//        class token -> visual_projection (no bias)                               -> (D)
//   prompt -> CLIP BPE ids, cut to 77 as torchmetrics cuts them -> text tower and
//     text_projection (engine/models/text_encoder.h, pooled at the eos)                  -> (D)
//   score = 100 * cos(image, text): per pair max(score, 0); over N pairs max(mean score, 0).
//
// The image processor is transformers 5's CLIPImageProcessor, the torchvision backend that
// CLIPProcessor.from_pretrained picks when torchvision is installed (the PIL backend,
// CLIPImageProcessorPil, is what it falls back to without torchvision; it rounds differently).
// On torch uint8 (C, H, W) images, as torchmetrics passes them, it does, and this file redoes
// bit for bit:
//   grey -> RGB by repeating the channel;
//   resize so the shortest edge is size.shortest_edge (the long one int(s * long / short)) with
//     torchvision's bicubic antialiased resize, which on a CPU stays in uint8: ATen's
//     separable resampler with int16 weights (Keys a = -0.5, widened by in/out when shrinking),
//     the horizontal pass then the vertical, each rounded and clamped to uint8;
//   center crop (top = int((H - crop) / 2.0); zero padding when the crop is larger);
//   (x - 255 mean) / (255 std) in float32 (rescale fused into normalize).
// Prompts are tokenized without truncation and cut to the first 77 ids (no eos when longer),
// as torchmetrics does; the text tower then pools as transformers does for the config's
// eos_token_id (engine/models/text_encoder.h).
#ifndef DATO_CLIP_H
#define DATO_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "status.h"
#include "tensor.h"
#include "text_encoder.h"
#include "tokenizer.h"

#define DATO_CLIP_MAX_SIDE 16384 // largest image side accepted

// config.json: vision_config (with CLIPConfig's projection_dim).
typedef struct {
    int width;          // hidden_size W
    int intermediate;   // intermediate_size I
    int n_layers;       // num_hidden_layers
    int heads;          // num_attention_heads
    int image_size;     // S: the input is (3, S, S)
    int patch_size;     // P: G = S / P patches per side, T = G*G + 1 tokens
    dato_te_act act;    // hidden_act: quick_gelu (the default) or gelu
    float eps;          // layer_norm_eps (1e-5 by default)
    int projection_dim; // D: CLIPConfig.projection_dim, both projections' output
} dato_clip_vision_config;

// preprocessor_config.json (or processor_config.json's "image_processor"), with
// CLIPImageProcessor's defaults for absent fields.
typedef struct {
    int do_resize;
    int shortest_edge;      // > 0: resize the shortest edge to it; 0: to (resize_h, resize_w)
    int resize_h, resize_w;
    int do_center_crop;
    int crop_h, crop_w;
    int do_rescale;
    double rescale_factor;  // 1/255
    int do_normalize;
    float mean[3], std[3];  // image_mean, image_std
} dato_clip_image_prep;

typedef struct {
    dato_clip_vision_config cfg;
    dato_clip_image_prep prep;
    dato_backend* be;
    // text tower: text_model.* and text_projection, and the folder's tokenizer
    dato_text_encoder text;
    dato_tokenizer* tok;       // encodes text_len + 1 ids: one past the cut shows what torchmetrics keeps
    int text_len;              // L = text max_position_embeddings (77)
    // vision tower: views into one weight block on be
    dato_tensor patch_w;       // (W, 3, P, P) patch_embedding, no bias
    dato_tensor class_emb;     // (W)
    dato_tensor pos_emb;       // (T, W)
    dato_te_affine pre_ln;     // (W) each: pre_layrnorm
    dato_te_layer* layers;     // (n_layers): the same tensors as a text layer's
    dato_te_affine post_ln;    // (W) each: post_layernorm
    dato_tensor proj;          // (D, W) visual_projection, no bias
    void* weights;
    // image workspace, planned for ws_images images by a measuring pass on the null backend
    int ws_images;
    void* ws_block;            // on be
    size_t ws_bytes;
    float* pixels;             // (ws_images, 3, S, S) host: preprocessed images
    // text workspace, for ws_prompts prompts
    int ws_prompts;
    int32_t* ids;              // (ws_prompts, L) host
    int32_t* row;              // (L + 1) host: one prompt's ids before the cut
    void* text_out;            // (ws_prompts, D) on be
    // host scratch of the resize, grown to the largest image seen
    void* scratch;
    size_t scratch_bytes;
} dato_clip;

// Opens a CLIP model folder: config.json (a CLIPConfig: text_config, vision_config,
// projection_dim), model.safetensors or a sharded model.safetensors.index.json (F32, F16 or
// BF16; "vision_model.*", "visual_projection.weight", "text_model.*", "text_projection.weight";
// logit_scale and buffers ignored), vocab.json + merges.txt (+ the optional tokenizer configs),
// and preprocessor_config.json or processor_config.json. Errors name the file and the field or
// tensor. On failure c is left empty (dato_clip_free is safe).
dato_status dato_clip_open(dato_clip* c, const char* dir, dato_backend* be, dato_error* err);
void dato_clip_free(dato_clip* c);

// D: the size of an embedding (projection_dim).
int dato_clip_dim(const dato_clip* c);

// Plans the workspaces for batches of n_images images and n_prompts prompts (either may be 0 to
// leave it as it is). The embedding calls do it themselves when the batch changes; calling it
// up front keeps every later call of those sizes free of device allocation.
dato_status dato_clip_reserve(dato_clip* c, int n_images, int n_prompts, dato_error* err);

// One uint8 image (h, w, ch), ch 1 or 3, row-major, to the vision input out (3, S, S) exactly as
// the processor makes pixel_values. Grows the host scratch when the image is larger than any
// before it.
dato_status dato_clip_preprocess(dato_clip* c, const uint8_t* image, int h, int w, int ch, float* out,
                                 dato_error* err);

// out (n, D): unnormalized projected image embeddings (get_image_features) of images
// (n, h, w, ch), host memory.
dato_status dato_clip_image_embeds(dato_clip* c, const uint8_t* images, int n, int h, int w, int ch, float* out,
                                   dato_error* err);

// ids (L) of one prompt as torchmetrics feeds them: bos, content ids, eos, pad; a prompt of more
// than L - 2 content ids keeps its first L - 1 and no eos. *n_tokens (may be NULL) gets the count
// before padding, after the cut.
dato_status dato_clip_tokenize(dato_clip* c, const char* prompt, int32_t* ids, int* n_tokens, dato_error* err);

// out (n, D): unnormalized projected text embeddings (get_text_features) of n prompts.
dato_status dato_clip_text_embeds(dato_clip* c, const char* const* prompts, int n, float* out, dato_error* err);

// cos(img, txt) of two (d) embeddings, in double; 0 when either is zero (torchmetrics gives NaN).
double dato_clip_cosine(const float* img, const float* txt, int d);
// One pair's CLIP score, 100 * max(cos, 0): CLIPScore on that pair alone.
double dato_clip_score_pair(const float* img, const float* txt, int d);
// CLIPScore over n pairs (img (n, d), txt (n, d)): max(mean of 100 * cos, 0). torchmetrics
// clamps the mean, not each pair: a negative pair lowers it.
double dato_clip_score_mean(const float* img, const float* txt, int n, int d);

#endif
