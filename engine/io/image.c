// PNG files through libpng, image grids, and tensor -> pixel conversions. See image.h.
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// libpng's default limit on width and height; larger sides are refused before allocating.
#define DATO_PNG_MAX_SIDE 1000000
// What a PNG may decode to (256 MiB: 9459 x 9459 RGB): within the sides above a 42-byte header
// could otherwise make the reader allocate terabytes before its data turns out to be missing.
#define DATO_PNG_MAX_BYTES ((size_t)256 << 20)

// ---- libpng error handling ----------------------------------------------------------------------
// libpng reports an error by calling on_png_error, which must not return: it keeps the message
// and longjmps to the setjmp in write_png_stream / read_png_header / read_png_rows. Those helpers
// set nothing in their own frame after setjmp and the callers allocate all memory outside them,
// so no local is read after a longjmp that could have changed since setjmp (no volatile needed).

typedef struct {
    char msg[256];
} png_failure;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_failure* failure = png_get_error_ptr(png);
    snprintf(failure->msg, sizeof failure->msg, "%s", msg);
    png_longjmp(png, 1);
}

// Warnings (a bad sRGB chunk, an unknown chunk) do not stop reading or writing: stay quiet.
static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

// ---- writing ----------------------------------------------------------------------------------------

// A tEXt/iTXt keyword: 1-79 printable Latin-1 bytes, no leading, trailing or consecutive spaces.
static int valid_text_key(const char* key) {
    size_t n = strlen(key);
    if (n < 1 || n > 79 || key[0] == ' ' || key[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (!((ch >= 32 && ch <= 126) || ch >= 161)) return 0;
        if (ch == ' ' && key[i + 1] == ' ') return 0;
    }
    return 1;
}

static int is_ascii(const char* s) {
    for (; *s; s++)
        if ((unsigned char)*s >= 128) return 0;
    return 1;
}

// Creates "<path>.tmp<pid>.<k>" exclusively, with mode 0666 less the umask like any new file.
// tmp receives the name; its size n leaves room for the suffix.
static dato_status create_temp_file(const char* path, char* tmp, size_t n, FILE** out, dato_error* err) {
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(tmp, n, "%s.tmp%ld.%d", path, (long)getpid(), attempt);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) return dato_fail(err, DATO_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        *out = fdopen(fd, "wb");
        if (!*out) {
            int saved = errno;
            close(fd);
            unlink(tmp);
            return dato_fail(err, DATO_ERR_IO, "%s: cannot open %s: %s", path, tmp, strerror(saved));
        }
        return DATO_OK;
    }
    return dato_fail(err, DATO_ERR_IO, "%s: cannot create a temporary file: 100 names taken", path);
}

static int write_png_stream(png_structp png, png_infop info, FILE* f, int h, int w, int color_type,
                            png_textp text, int ntext, png_bytepp rows) {
    if (setjmp(png_jmpbuf(png))) return 0;
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    // Text goes before the image data, where PIL puts it and metadata readers find it first.
    if (ntext > 0) png_set_text(png, info, text, ntext);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    return 1;
}

dato_status dato_png_write(const char* path, const uint8_t* pixels, int h, int w, int channels,
                           const char* const* text_kv, dato_error* err) {
    if (!path || !pixels) return dato_fail(err, DATO_ERR_INVALID, "png write: NULL %s", path ? "pixels" : "path");
    if (h < 1 || w < 1 || h > DATO_PNG_MAX_SIDE || w > DATO_PNG_MAX_SIDE)
        return dato_fail(err, DATO_ERR_INVALID, "%s: image size %dx%d outside 1..%d", path, w, h, DATO_PNG_MAX_SIDE);
    if (channels != 1 && channels != 3)
        return dato_fail(err, DATO_ERR_INVALID, "%s: %d channels, expected 1 (gray) or 3 (RGB)", path, channels);
    int ntext = 0;
    while (text_kv && text_kv[2 * ntext]) {
        const char* key = text_kv[2 * ntext];
        if (!valid_text_key(key))
            return dato_fail(err, DATO_ERR_INVALID, "%s: invalid PNG text key '%s' (1-79 printable characters)", path, key);
        if (!text_kv[2 * ntext + 1]) return dato_fail(err, DATO_ERR_INVALID, "%s: PNG text key '%s' has no value", path, key);
        ntext++;
    }

    // Everything libpng needs is allocated here, outside the setjmp region.
    png_text* text = calloc(ntext > 0 ? (size_t)ntext : 1, sizeof *text);
    png_bytep* rows = malloc((size_t)h * sizeof *rows);
    size_t tmp_size = strlen(path) + 32;
    char* tmp = malloc(tmp_size);
    png_failure failure = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &failure, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!text || !rows || !tmp || !png || !info) {
        png_destroy_write_struct(&png, &info);
        free(text);
        free(rows);
        free(tmp);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory preparing the PNG writer", path);
    }
    for (int i = 0; i < ntext; i++) {
        const char* value = text_kv[2 * i + 1];
        text[i].compression = is_ascii(value) ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
        text[i].key = (png_charp)text_kv[2 * i];
        text[i].text = (png_charp)value;
        text[i].text_length = strlen(value);
    }
    size_t row_bytes = (size_t)w * (size_t)channels;
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(pixels + (size_t)y * row_bytes);

    FILE* f = NULL;
    dato_status st = create_temp_file(path, tmp, tmp_size, &f, err);
    if (st == DATO_OK) {
        int color_type = channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
        int written = write_png_stream(png, info, f, h, w, color_type, text, ntext, rows);
        int flushed = fflush(f) == 0 && !ferror(f);
        int write_errno = errno;
        int closed = fclose(f) == 0;
        if (!written) {
            st = dato_fail(err, DATO_ERR_IO, "%s: cannot write PNG: %s", path, failure.msg);
        } else if (!flushed || !closed) {
            st = dato_fail(err, DATO_ERR_IO, "%s: cannot write %s: %s", path, tmp, strerror(flushed ? errno : write_errno));
        } else if (rename(tmp, path) != 0) {
            st = dato_fail(err, DATO_ERR_IO, "%s: cannot rename %s onto it: %s", path, tmp, strerror(errno));
        }
        if (st != DATO_OK) unlink(tmp);
    }
    png_destroy_write_struct(&png, &info);
    free(text);
    free(rows);
    free(tmp);
    return st;
}

// ---- A1111 "parameters" text ------------------------------------------------------------------------
// The format is AUTOMATIC1111's (modules/processing.py create_infotext writes it,
// modules/infotext_utils.py parse_generation_parameters reads it): docs/PNG_METADATA.md.

// A1111's sampler names by dato_sampler_kind, and the schedule type nearest each timestep spacing
// (DDIM: timesteps 1, 1 + 1000/n, ... = leading with SD's steps_offset 1; SGM Uniform: trailing;
// Uniform: linspace, sigmas interpolated in log space where diffusers interpolates them linearly).
static const char* const A1111_SAMPLERS[] = {[DATO_SAMPLER_DDIM] = "DDIM", [DATO_SAMPLER_PNDM] = "PLMS",
                                             [DATO_SAMPLER_DPMPP_2M] = "DPM++ 2M", [DATO_SAMPLER_EULER] = "Euler",
                                             [DATO_SAMPLER_EULER_A] = "Euler a"};
static const char* const A1111_SCHEDULES[] = {[DATO_SPACING_LEADING] = "DDIM", [DATO_SPACING_TRAILING] = "SGM Uniform",
                                              [DATO_SPACING_LINSPACE] = "Uniform"};
#define COUNT(a) ((int)(sizeof a / sizeof a[0]))

// Files dato loads whole models from: "Model" drops these extensions (A1111's name_for_extra drops any
// file's; a folder such as sd-2.1 keeps its full name).
static const char* const WEIGHT_FILE_EXTENSIONS[] = {".safetensors", ".ckpt", ".pt", ".pth"};

// The code points Python's str.strip() removes (str.isspace), as inclusive ranges.
static const long PYTHON_SPACE[][2] = {{0x09, 0x0d}, {0x1c, 0x20}, {0x85, 0x85},     {0xa0, 0xa0},
                                       {0x1680, 0x1680}, {0x2000, 0x200a}, {0x2028, 0x2029},
                                       {0x202f, 0x202f}, {0x205f, 0x205f}, {0x3000, 0x3000}};

// json.dumps' short escapes for control bytes; the others become \u00XX.
static const char* const JSON_SHORT_ESCAPES[0x20] = {['\b'] = "\\b", ['\t'] = "\\t", ['\n'] = "\\n",
                                                     ['\f'] = "\\f", ['\r'] = "\\r"};

static int is_python_space(long c) {
    for (int i = 0; i < COUNT(PYTHON_SPACE); i++)
        if (c >= PYTHON_SPACE[i][0] && c <= PYTHON_SPACE[i][1]) return 1;
    return 0;
}

// The code point of the UTF-8 sequence at s (len > 0 bytes left) and its length in *n; -1 when the
// bytes are not UTF-8 (Python never holds such a string, so they are never space).
static long utf8_at(const unsigned char* s, size_t len, int* n) {
    static const long MIN[] = {0, 0x80, 0x800, 0x10000}; // by length: shortest form only
    static const unsigned char LEAD_BITS[] = {0x7f, 0x1f, 0x0f, 0x07};
    int k = s[0] < 0x80 ? 1 : s[0] < 0xc0 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
    if (!k || (size_t)k > len) return -1;
    long c = s[0] & LEAD_BITS[k - 1];
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return -1;
        c = c << 6 | (s[i] & 0x3f);
    }
    *n = k;
    return c >= MIN[k - 1] ? c : -1;
}

// Python's str.strip() on the text, in place.
static void strip_python_space(dato_text* t) {
    const unsigned char* s = (const unsigned char*)t->data;
    size_t begin = 0, end = t->len;
    int n = 0;
    long c;
    while (begin < end && (c = utf8_at(s + begin, end - begin, &n)) >= 0 && is_python_space(c)) begin += (size_t)n;
    while (end > begin) {
        size_t k = end - 1; // the start of the last code point: back over at most 3 continuation bytes
        while (k > begin && end - k < 4 && (s[k] & 0xc0) == 0x80) k--;
        if ((c = utf8_at(s + k, end - k, &n)) < 0 || (size_t)n != end - k || !is_python_space(c)) break;
        end = k;
    }
    memmove(t->data, t->data + begin, end - begin);
    t->len = end - begin;
    t->data[t->len] = 0;
}

// ", Key: value" as create_infotext joins a setting: the key alone when the value equals it, the value
// as json.dumps(value, ensure_ascii=False) writes it when it holds ',', ':' or '\n' (infotext_utils.quote).
static void append_setting(dato_text* t, const char* key, const char* value) {
    if (!value || !value[0]) return;
    if (!strcmp(key, value)) {
        dato_text_append(t, ", %s", key);
        return;
    }
    dato_text_append(t, ", %s: ", key);
    if (!strpbrk(value, ",:\n")) {
        dato_text_append(t, "%s", value);
        return;
    }
    dato_text_append(t, "\"");
    for (const unsigned char* c = (const unsigned char*)value; *c; c++) {
        if (*c == '"' || *c == '\\') dato_text_append(t, "\\%c", *c);
        else if (*c < 0x20 && JSON_SHORT_ESCAPES[*c]) dato_text_append(t, "%s", JSON_SHORT_ESCAPES[*c]);
        else if (*c < 0x20) dato_text_append(t, "\\u%04x", *c);
        else dato_text_append(t, "%c", *c);
    }
    dato_text_append(t, "\"");
}

// The fewest decimals that read back as the same float: 7 -> "7", 7.5f -> "7.5", 7.1f -> "7.1", the
// number the user typed, as A1111 shows the CFG scale its UI sent as a JSON number. 46 decimals
// suffice for every float.
static void format_float_shortest(char* out, size_t n, float v) {
    if (v == 0) v = 0; // -0 -> 0
    for (int d = 0; d <= 46; d++) {
        snprintf(out, n, "%.*f", d, (double)v);
        if (strtof(out, NULL) == v) return;
    }
}

// The model's name for "Model": the last path component (trailing '/' ignored) less a weight-file
// extension; "" for a path without one.
static void model_name(char* out, size_t n, const char* path) {
    size_t end = strlen(path);
    while (end > 0 && path[end - 1] == '/') end--;
    size_t begin = end;
    while (begin > 0 && path[begin - 1] != '/') begin--;
    for (int i = 0; i < COUNT(WEIGHT_FILE_EXTENSIONS); i++) {
        size_t e = strlen(WEIGHT_FILE_EXTENSIONS[i]);
        if (end - begin > e && !strncmp(path + end - e, WEIGHT_FILE_EXTENSIONS[i], e)) {
            end -= e;
            break;
        }
    }
    snprintf(out, n, "%.*s", (int)(end - begin < n ? end - begin : n - 1), path + begin);
}

dato_status dato_a1111_parameters(const dato_a1111_params* p, dato_text* out, dato_error* err) {
    *out = (dato_text){0};
    if (!p || !p->prompt) return dato_fail(err, DATO_ERR_INVALID, "A1111 parameters: no prompt (NULL)");
    if (p->steps < 1) return dato_fail(err, DATO_ERR_INVALID, "A1111 parameters: steps %d, expected >= 1", p->steps);
    if (p->width < 1 || p->height < 1)
        return dato_fail(err, DATO_ERR_INVALID, "A1111 parameters: size %dx%d, expected both >= 1", p->width, p->height);
    if ((int)p->sampler < 0 || (int)p->sampler >= COUNT(A1111_SAMPLERS))
        return dato_fail(err, DATO_ERR_INVALID, "A1111 parameters: sampler %d, expected 0..%d", (int)p->sampler,
                         COUNT(A1111_SAMPLERS) - 1);
    if ((int)p->spacing < 0 || (int)p->spacing >= COUNT(A1111_SCHEDULES))
        return dato_fail(err, DATO_ERR_INVALID, "A1111 parameters: timestep spacing %d, expected 0..%d", (int)p->spacing,
                         COUNT(A1111_SCHEDULES) - 1);
    if (!(p->guidance >= 0 && p->guidance <= 1e6f))
        return dato_fail(err, DATO_ERR_INVALID, "A1111 parameters: guidance %g, expected in [0, 1e6]", (double)p->guidance);
    char cfg[64], seed[24], size[32], model[1024];
    format_float_shortest(cfg, sizeof cfg, p->guidance);
    snprintf(seed, sizeof seed, "%llu", p->seed);
    snprintf(size, sizeof size, "%dx%d", p->width, p->height);
    model_name(model, sizeof model, p->model_path ? p->model_path : "");
    const char* const settings[][2] = {{"Sampler", A1111_SAMPLERS[p->sampler]},
                                       {"Schedule type", A1111_SCHEDULES[p->spacing]},
                                       {"CFG scale", cfg},
                                       {"Seed", seed},
                                       {"Size", size},
                                       {"Model hash", p->model_hash},
                                       {"Model", model},
                                       {"DaTo schedule", p->dato_schedule}, // an extra setting, after A1111's own
                                       {"Version", p->version}};
    DATO_TRY(dato_text_init(out, 256 + strlen(p->prompt), "A1111 parameters", err));
    dato_text_append(out, "%s\nNegative prompt: %s\nSteps: %d", p->prompt, p->negative_prompt ? p->negative_prompt : "",
                     p->steps);
    for (int i = 0; i < COUNT(settings); i++) append_setting(out, settings[i][0], settings[i][1]);
    if (out->failed) {
        dato_text_free(out);
        return dato_fail(err, DATO_ERR_NOMEM, "A1111 parameters: cannot allocate the text");
    }
    strip_python_space(out);
    return DATO_OK;
}

// ---- reading ----------------------------------------------------------------------------------------

// Reads the header and sets the transforms to 8-bit gray or RGB; *channels and *depth are what
// the rows will hold after the transforms.
static int read_png_header(png_structp png, png_infop info, FILE* f, png_uint_32* h, png_uint_32* w,
                           int* channels, int* depth) {
    if (setjmp(png_jmpbuf(png))) return 0;
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, DATO_PNG_MAX_SIDE, DATO_PNG_MAX_SIDE);
    // Every ancillary chunk (text, ICC profile, gamma, tRNS: all ignored here) is skipped unread:
    // libpng would otherwise allocate whatever length a text chunk's header claims (1.7 GB for a
    // 45-byte file), its size limit being only a warning when reading.
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(png, info);
    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (bit_depth == 16) png_set_scale_16(png);
    png_set_strip_alpha(png); // acts only on rows that have alpha (after the palette's tRNS expansion)
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    *h = png_get_image_height(png, info);
    *w = png_get_image_width(png, info);
    *channels = png_get_channels(png, info);
    *depth = png_get_bit_depth(png, info);
    return 1;
}

static int read_png_rows(png_structp png, png_infop info, png_bytepp rows) {
    if (setjmp(png_jmpbuf(png))) return 0;
    png_read_image(png, rows);
    png_read_end(png, info);
    return 1;
}

dato_status dato_png_read(const char* path, uint8_t** pixels, int* h, int* w, int* channels, dato_error* err) {
    if (!path || !pixels || !h || !w || !channels) return dato_fail(err, DATO_ERR_INVALID, "png read: NULL argument");
    *pixels = NULL;
    FILE* f = fopen(path, "rb");
    if (!f) return dato_fail(err, errno == ENOENT ? DATO_ERR_NOT_FOUND : DATO_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    png_byte signature[8];
    if (fread(signature, 1, 8, f) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
        fclose(f);
        return dato_fail(err, DATO_ERR_FORMAT, "%s: not a PNG file (bad signature)", path);
    }
    png_failure failure = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, on_png_error, on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory creating the PNG reader", path);
    }

    dato_status st = DATO_OK;
    png_uint_32 height = 0, width = 0;
    int nchannels = 0, depth = 0;
    uint8_t* buf = NULL;     // (height, width, nchannels)
    png_bytep* rows = NULL;  // height pointers into buf
    if (!read_png_header(png, info, f, &height, &width, &nchannels, &depth)) {
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: bad PNG: %s", path, failure.msg);
    } else if ((nchannels != 1 && nchannels != 3) || depth != 8) {
        st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: PNG decodes to %d channels of %d bits, expected 8-bit gray or RGB",
                       path, nchannels, depth);
    } else if ((size_t)height * width * nchannels > DATO_PNG_MAX_BYTES) {
        st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: a %ux%u PNG decodes to more than the %zu MiB this reader allows",
                       path, (unsigned)width, (unsigned)height, DATO_PNG_MAX_BYTES >> 20);
    } else {
        size_t row_bytes = (size_t)width * (size_t)nchannels;
        buf = malloc((size_t)height * row_bytes);
        rows = malloc((size_t)height * sizeof *rows);
        if (!buf || !rows) {
            st = dato_fail(err, DATO_ERR_NOMEM, "%s: out of memory for a %ux%u image", path, (unsigned)width, (unsigned)height);
        } else {
            for (png_uint_32 y = 0; y < height; y++) rows[y] = buf + (size_t)y * row_bytes;
            if (!read_png_rows(png, info, rows)) st = dato_fail(err, DATO_ERR_FORMAT, "%s: bad PNG data: %s", path, failure.msg);
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rows);
    if (st != DATO_OK) {
        free(buf);
        return st;
    }
    *pixels = buf;
    *h = (int)height;
    *w = (int)width;
    *channels = nchannels;
    return DATO_OK;
}

// ---- grids ------------------------------------------------------------------------------------------

dato_status dato_image_grid_size(int n, int h, int w, int cols, int pad, int* grid_h, int* grid_w, dato_error* err) {
    if (n < 1 || h < 1 || w < 1 || cols < 1 || pad < 0)
        return dato_fail(err, DATO_ERR_INVALID, "image grid: n %d, size %dx%d, cols %d, pad %d: need n, h, w, cols >= 1, pad >= 0",
                         n, w, h, cols, pad);
    int64_t rows = (n + (int64_t)cols - 1) / cols;
    int64_t gh = rows * h + (rows + 1) * (int64_t)pad;
    int64_t gw = (int64_t)cols * w + ((int64_t)cols + 1) * pad;
    if (gh > DATO_PNG_MAX_SIDE || gw > DATO_PNG_MAX_SIDE)
        return dato_fail(err, DATO_ERR_INVALID, "image grid: %lldx%lld is larger than %d on a side", (long long)gw, (long long)gh,
                         DATO_PNG_MAX_SIDE);
    if (grid_h) *grid_h = (int)gh;
    if (grid_w) *grid_w = (int)gw;
    return DATO_OK;
}

dato_status dato_image_grid(uint8_t* grid, const uint8_t* images, int n, int h, int w, int c, int cols, int pad, dato_error* err) {
    int grid_h, grid_w;
    dato_status st = dato_image_grid_size(n, h, w, cols, pad, &grid_h, &grid_w, err);
    if (st != DATO_OK) return st;
    if (!grid || !images) return dato_fail(err, DATO_ERR_INVALID, "image grid: NULL %s", grid ? "images" : "grid");
    if (c < 1 || c > 4) return dato_fail(err, DATO_ERR_INVALID, "image grid: %d channels, expected 1..4", c);
    size_t grid_row = (size_t)grid_w * (size_t)c; // bytes in one grid row
    size_t image_row = (size_t)w * (size_t)c;     // bytes in one image row
    memset(grid, 255, (size_t)grid_h * grid_row);
    for (int i = 0; i < n; i++) {
        const uint8_t* image = images + (size_t)i * (size_t)h * image_row; // (h, w, c)
        size_t top = (size_t)(i / cols) * (size_t)(h + pad) + (size_t)pad;
        size_t left = (size_t)(i % cols) * (size_t)(w + pad) + (size_t)pad;
        for (int y = 0; y < h; y++)
            memcpy(grid + (top + (size_t)y) * grid_row + left * (size_t)c, image + (size_t)y * image_row, image_row);
    }
    return DATO_OK;
}

// ---- tensors to pixels ------------------------------------------------------------------------------

// diffusers' last step in float32: clamp v to [0, 1], then (v * 255).round() with numpy's round
// half to even, which rintf does in the default rounding mode. NaN (torch keeps it) becomes 0.
static uint8_t unit_to_u8(float v) {
    if (!(v > 0.0f)) return 0;
    if (v > 1.0f) v = 1.0f;
    return (uint8_t)rintf(v * 255.0f);
}

// Checks that t is a CPU F32 tensor of shape (C, H, W) with C in 1..max_c and H, W >= 1.
static dato_status check_chw(const char* what, const dato_tensor* t, int max_c, const void* out, dato_error* err) {
    if (!t || !t->data || !out) return dato_fail(err, DATO_ERR_INVALID, "%s: NULL tensor, data or output", what);
    char shape[64];
    if (t->dtype != DATO_F32 || t->device != DATO_DEV_CPU)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: need an F32 CPU tensor, got %s on %s", what,
                         dato_dtype_name(t->dtype), t->device == DATO_DEV_CPU ? "CPU" : "CUDA");
    if (t->ndim != 3 || t->shape[0] < 1 || t->shape[0] > max_c || t->shape[1] < 1 || t->shape[2] < 1)
        return dato_fail(err, DATO_ERR_INVALID, "%s: shape %s, expected (C, H, W) with C in 1..%d", what,
                         dato_shape_str(t, shape, sizeof shape), max_c);
    return DATO_OK;
}

dato_status dato_image_from_float(const dato_tensor* x, uint8_t* out, dato_error* err) {
    dato_status st = check_chw("image from float", x, 4, out, err);
    if (st != DATO_OK) return st;
    int64_t c = x->shape[0], hw = x->shape[1] * x->shape[2];
    const float* src = x->data; // (C, H*W)
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t i = 0; i < hw; i++) out[i * c + ch] = unit_to_u8(src[ch * hw + i] * 0.5f + 0.5f);
    return DATO_OK;
}

// latent channel k contributes latent_rgb_factors[k][0..2] to R, G, B (SD1.x, AUTOMATIC1111's
// cheap approximation of the VAE decoder).
static const float latent_rgb_factors[4][3] = {
    {0.298f, 0.207f, 0.208f},
    {0.187f, 0.286f, 0.173f},
    {-0.158f, 0.189f, 0.264f},
    {-0.184f, -0.271f, -0.473f},
};

dato_status dato_latent_preview(const dato_tensor* latent, uint8_t* out, dato_error* err) {
    dato_status st = check_chw("latent preview", latent, 4, out, err);
    if (st != DATO_OK) return st;
    if (latent->shape[0] != 4) return dato_fail(err, DATO_ERR_INVALID, "latent preview: %lld latent channels, expected 4",
                                                (long long)latent->shape[0]);
    int64_t hw = latent->shape[1] * latent->shape[2];
    const float* z = latent->data; // (4, H*W)
    for (int64_t i = 0; i < hw; i++) {
        for (int rgb = 0; rgb < 3; rgb++) {
            float v = 0.0f;
            for (int k = 0; k < 4; k++) v += z[k * hw + i] * latent_rgb_factors[k][rgb];
            out[i * 3 + rgb] = unit_to_u8((v + 1.0f) * 0.5f);
        }
    }
    return DATO_OK;
}
