// Image output: 8-bit PNG files (libpng), grids of images, and the conversions from model
// tensors to pixels. Pixels are always 8-bit, interleaved (H, W, C), C = 1 (gray) or 3 (RGB).
#ifndef DATO_IMAGE_H
#define DATO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "scheduler_config.h"
#include "status.h"
#include "tensor.h"
#include "text_buffer.h"

// Writes an 8-bit PNG. pixels: (h, w, channels), channels 1 (gray) or 3 (RGB).
// text_kv: NULL, or key, value, key, value, ..., NULL: one text chunk per pair (tEXt when the
// value is ASCII, iTXt when it has other bytes, which are then taken as UTF-8, as PIL does).
// Keys are 1-79 printable Latin-1 characters without leading, trailing or double spaces.
// The PNG is written to a temporary file in the same directory and renamed onto path, so a
// failure never leaves a partial file at path (an existing file there stays as it was).
dato_status dato_png_write(const char* path, const uint8_t* pixels, int h, int w, int channels,
                           const char* const* text_kv, dato_error* err);

// The settings of one image, as AUTOMATIC1111's webui records them in its "parameters" PNG text.
typedef struct {
    const char* prompt;            // as encoded, newlines kept
    const char* negative_prompt;   // NULL or "": none
    int steps;                     // >= 1
    dato_sampler_kind sampler;     // "Sampler": DDIM, PLMS, DPM++ 2M, Euler, Euler a
    dato_timestep_spacing spacing; // "Schedule type", the nearest A1111 has: leading DDIM, trailing SGM Uniform, linspace Uniform
    float guidance;                // "CFG scale", in [0, 1e6]
    unsigned long long seed;       // "Seed"
    int width, height;             // "Size: WxH", pixels
    const char* model_hash;        // "Model hash" (A1111's: the first 10 hex digits of the file's SHA-256); NULL: left out
    const char* model_path;        // "Model": the file's name without a weight-file extension, or the folder's; NULL: left out
    const char* dato_schedule;     // "DaTo schedule": a preset name or a schedule file; NULL: left out (the baseline)
    const char* version;           // "Version", e.g. "dato " DATO_VERSION; a bare "1.2.3" would switch on A1111's
                                   // back-compatibility options (infotext_versions.py); NULL: left out
} dato_a1111_params;

// The "parameters" text of p, byte for byte as A1111's create_infotext writes it (docs/PNG_METADATA.md):
//   <prompt>\nNegative prompt: <negative>\nSteps: 25, Sampler: Euler a, Schedule type: Uniform, CFG scale: 7.5,
//   Seed: 42, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned, DaTo schedule: fast, Version: dato 0.1.0
// (the settings on one line), values holding ',', ':' or a newline JSON-quoted, the whole stripped of
// surrounding whitespace, with one difference: the "Negative prompt:" line is there also when the
// negative prompt is empty (A1111 leaves it out; ComfyUI's importer needs it; A1111 reads both alike).
// Empty optional strings count as NULL. out is initialized here: on success it holds the text (free
// it with dato_text_free); on failure it is freed and err names the field at fault.
dato_status dato_a1111_parameters(const dato_a1111_params* p, dato_text* out, dato_error* err);

// Reads a PNG into a malloc'd (h, w, channels) 8-bit buffer that the caller frees.
// Gray files give channels 1, color and palette files give 3: palettes are expanded, 16-bit
// samples scaled to 8 bits, low-bit gray expanded, and alpha (or tRNS) dropped without
// compositing. Ancillary chunks (gamma, color profile, text, tRNS) are skipped unread; an image
// that decodes to more than 256 MiB is refused (DATO_ERR_UNSUPPORTED) before allocating.
dato_status dato_png_read(const char* path, uint8_t** pixels, int* h, int* w, int* channels,
                          dato_error* err);

// The size of a grid of n images of (h, w) in `cols` columns, ceil(n / cols) rows, with a
// pad-pixel border around and between the images:
//   grid_w = cols * w + (cols + 1) * pad, grid_h = rows * h + (rows + 1) * pad.
dato_status dato_image_grid_size(int n, int h, int w, int cols, int pad, int* grid_h, int* grid_w,
                                 dato_error* err);

// Lays out images (n, h, w, c) row-major into grid (grid_h, grid_w, c) as sized by
// dato_image_grid_size: image i lands in row i / cols, column i % cols. Borders and the cells
// left empty in the last row are 255 (white).
dato_status dato_image_grid(uint8_t* grid, const uint8_t* images, int n, int h, int w, int c,
                            int cols, int pad, dato_error* err);

// Converts a model image x, F32 (C, H, W) on the CPU with values in [-1, 1] (a pixel-space
// model's output or the VAE decoder's), to 8-bit out (H, W, C), C in 1..4, exactly as diffusers'
// VaeImageProcessor.postprocess does in float32: v = (x * 0.5 + 0.5).clamp(0, 1), then
// (v * 255).round() with numpy's round half to even (0 -> 127.5 -> 128). NaN gives 0.
dato_status dato_image_from_float(const dato_tensor* x, uint8_t* out, dato_error* err);

// A PREVIEW of an SD1.x latent without the VAE: the widely used linear map from the 4 latent
// channels to RGB (the "cheap approximation" of AUTOMATIC1111), then ((rgb + 1) / 2).clamp(0, 1)
// * 255 rounded as above. latent: F32 (4, h, w) on the CPU, in the scaled space the UNet sees;
// out: (h, w, 3). The colors are only roughly right and the image is 1/8 of the decoded size.
dato_status dato_latent_preview(const dato_tensor* latent, uint8_t* out, dato_error* err);

#endif
