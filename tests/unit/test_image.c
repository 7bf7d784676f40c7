// image.c: PNG write/read round trips (gray and RGB, odd sizes), text chunks found in the raw
// file, conversions on read (palette, 16-bit, alpha), errors that name the path, no temporary
// files left behind, grid layout, and the float -> uint8 conversion against values computed
// with torch + numpy exactly as diffusers' VaeImageProcessor does. Files live in a mkdtemp dir.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "test_util.h"

// ---- helpers ------------------------------------------------------------------------------------

static const char* join(char* buf, size_t n, const char* dir, const char* name) {
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n) {
        fprintf(stderr, "path too long: %s/%s\n", dir, name);
        exit(1);
    }
    return buf;
}

static int has(const char* msg, const char* needle) { return strstr(msg, needle) != NULL; }

// A deterministic test pattern value for pixel (y, x), channel c.
static uint8_t pattern(int y, int x, int c) { return (uint8_t)(y * 31 + x * 17 + c * 101 + 7); }

// Number of entries in dir other than . and .. (to find leftover temporary files).
static int count_entries(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

// Finds the first chunk of the given type in a PNG file's bytes: its data and length, and its
// index among the chunks. Returns 0 if absent or the file is malformed.
static int find_chunk(const unsigned char* png, size_t n, const char* type, const unsigned char** data, size_t* len,
                      int* index) {
    size_t pos = 8;
    for (int i = 0; pos + 12 <= n; i++) {
        size_t chunk_len = ((size_t)png[pos] << 24) | ((size_t)png[pos + 1] << 16) | ((size_t)png[pos + 2] << 8) | png[pos + 3];
        if (pos + 12 + chunk_len > n) return 0;
        if (memcmp(png + pos + 4, type, 4) == 0) {
            *data = png + pos + 8;
            *len = chunk_len;
            *index = i;
            return 1;
        }
        pos += 12 + chunk_len;
    }
    return 0;
}

// Writes a PNG with libpng's simplified API in one of its formats (used to make the palette,
// 16-bit and alpha files the reader must convert).
static int write_simplified(const char* path, int h, int w, png_uint_32 format, const void* pixels, const void* colormap,
                            int colormap_entries) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = (png_uint_32)w;
    image.height = (png_uint_32)h;
    image.format = format;
    image.colormap_entries = (png_uint_32)colormap_entries;
    int ok = png_image_write_to_file(&image, path, 0, pixels, 0, colormap);
    png_image_free(&image);
    return ok;
}

// ---- PNG write and read -----------------------------------------------------------------------

static void test_round_trip(const char* dir) {
    const int sizes[][3] = {{5, 7, 1}, {9, 13, 3}, {1, 1, 1}, {1, 1, 3}, {3, 1, 3}, {1, 4, 1}}; // h, w, c
    int max_diff = 0;
    char path[512];
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        int h = sizes[t][0], w = sizes[t][1], c = sizes[t][2];
        uint8_t* pixels = malloc((size_t)h * w * c); // (h, w, c)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < c; ch++) pixels[(y * w + x) * c + ch] = pattern(y, x, ch);
        char name[64];
        snprintf(name, sizeof name, "rt_%dx%dx%d.png", h, w, c);
        join(path, sizeof path, dir, name);
        dato_error err = {{0}};
        dato_status st = dato_png_write(path, pixels, h, w, c, NULL, &err);
        CHECK(st == DATO_OK, "write %s: %s", name, err.msg);
        uint8_t* back = NULL;
        int bh = 0, bw = 0, bc = 0;
        st = dato_png_read(path, &back, &bh, &bw, &bc, &err);
        CHECK(st == DATO_OK, "read %s: %s", name, err.msg);
        CHECK(bh == h && bw == w && bc == c, "%s read back as %dx%dx%d", name, bh, bw, bc);
        if (st == DATO_OK && bh == h && bw == w && bc == c) {
            for (int i = 0; i < h * w * c; i++) {
                int d = abs((int)back[i] - (int)pixels[i]);
                if (d > max_diff) max_diff = d;
            }
        }
        free(back);
        free(pixels);
    }
    printf("PNG round trip (gray and RGB, odd sizes): max |diff| = %d\n", max_diff);
    CHECK(max_diff == 0, "round trip changed pixels by up to %d", max_diff);
}

static void test_text_chunks(const char* dir) {
    char path[512];
    join(path, sizeof path, dir, "text.png");
    uint8_t pixels[2 * 3 * 3];
    for (int i = 0; i < 18; i++) pixels[i] = (uint8_t)(i * 13);
    const char* text_kv[] = {"parameters", "a cat, Steps: 20, Seed: 42", "prompt", "caf\xc3\xa9", NULL};
    dato_error err = {{0}};
    CHECK(dato_png_write(path, pixels, 2, 3, 3, text_kv, &err) == DATO_OK, "write with text: %s", err.msg);

    size_t n = 0;
    unsigned char* bytes = read_bytes(path, &n);
    CHECK(bytes != NULL, "cannot read back %s", path);
    if (!bytes) return;
    const unsigned char* data;
    size_t len;
    int text_at = -1, itxt_at = -1, idat_at = -1;
    const char want_text[] = "parameters\0a cat, Steps: 20, Seed: 42";
    CHECK(find_chunk(bytes, n, "tEXt", &data, &len, &text_at), "no tEXt chunk");
    if (text_at >= 0)
        CHECK(len == sizeof want_text - 1 && memcmp(data, want_text, len) == 0, "tEXt is '%.*s'", (int)len, (const char*)data);
    // iTXt: keyword, NUL, compression flag 0, method 0, empty language, NUL, empty translation, NUL, UTF-8 text.
    const char want_itxt[] = "prompt\0\0\0\0\0caf\xc3\xa9";
    CHECK(find_chunk(bytes, n, "iTXt", &data, &len, &itxt_at), "no iTXt chunk for the non-ASCII value");
    if (itxt_at >= 0)
        CHECK(len == sizeof want_itxt - 1 && memcmp(data, want_itxt, len) == 0, "iTXt has %zu bytes", len);
    CHECK(find_chunk(bytes, n, "IDAT", &data, &len, &idat_at), "no IDAT chunk");
    CHECK(text_at >= 0 && itxt_at >= 0 && text_at < idat_at && itxt_at < idat_at, "text chunks at %d, %d, IDAT at %d",
          text_at, itxt_at, idat_at);
    free(bytes);

    uint8_t* back = NULL;
    int h, w, c;
    CHECK(dato_png_read(path, &back, &h, &w, &c, &err) == DATO_OK && memcmp(back, pixels, 18) == 0,
          "file with text reads back wrong: %s", err.msg);
    free(back);

    const char* bad_keys[][3] = {{"", "v", NULL}, {" lead", "v", NULL}, {"two  spaces", "v", NULL}, {"tab\tkey", "v", NULL}};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        CHECK(dato_png_write(path, pixels, 2, 3, 3, bad_keys[i], &err) == DATO_ERR_INVALID, "key '%s' accepted", bad_keys[i][0]);
        CHECK(has(err.msg, path), "bad key error does not name the path: %s", err.msg);
    }
    const char* key_without_value[] = {"parameters", NULL};
    CHECK(dato_png_write(path, pixels, 2, 3, 3, key_without_value, &err) == DATO_ERR_INVALID && has(err.msg, "parameters"),
          "key without value: %s", err.msg);
}

// Palette, 16-bit, RGBA and gray+alpha files read back as 8-bit RGB or gray.
static void test_read_conversions(const char* dir) {
    char path[512];
    dato_error err = {{0}};
    uint8_t* back = NULL;
    int h, w, c, max_diff = 0;

    // Palette (with alpha in the palette: the reader drops it): 2x3 indexes into 4 RGBA entries.
    const uint8_t colormap[4][4] = {{255, 0, 0, 255}, {0, 200, 0, 128}, {1, 2, 3, 0}, {250, 251, 252, 255}};
    const uint8_t indexes[6] = {0, 1, 2, 3, 2, 1};
    join(path, sizeof path, dir, "palette.png");
    CHECK(write_simplified(path, 2, 3, PNG_FORMAT_RGBA_COLORMAP, indexes, colormap, 4), "cannot write %s", path);
    CHECK(dato_png_read(path, &back, &h, &w, &c, &err) == DATO_OK, "palette: %s", err.msg);
    CHECK(h == 2 && w == 3 && c == 3, "palette read as %dx%dx%d", h, w, c);
    if (back && c == 3)
        for (int i = 0; i < 6; i++)
            for (int ch = 0; ch < 3; ch++) {
                int d = abs((int)back[i * 3 + ch] - (int)colormap[indexes[i]][ch]);
                max_diff = d > max_diff ? d : max_diff;
            }
    free(back);
    back = NULL;

    // 16-bit RGB (libpng's linear format is 16-bit): 257 * k must come back as k exactly.
    uint16_t rgb16[2 * 2 * 3];
    for (int i = 0; i < 12; i++) rgb16[i] = (uint16_t)(257 * (i * 23 % 256));
    join(path, sizeof path, dir, "rgb16.png");
    CHECK(write_simplified(path, 2, 2, PNG_FORMAT_LINEAR_RGB, rgb16, NULL, 0), "cannot write %s", path);
    CHECK(dato_png_read(path, &back, &h, &w, &c, &err) == DATO_OK, "16-bit: %s", err.msg);
    CHECK(h == 2 && w == 2 && c == 3, "16-bit read as %dx%dx%d", h, w, c);
    if (back && c == 3)
        for (int i = 0; i < 12; i++) {
            int d = abs((int)back[i] - rgb16[i] / 257);
            max_diff = d > max_diff ? d : max_diff;
        }
    free(back);
    back = NULL;

    // RGBA and gray+alpha: alpha dropped, color kept as stored (no compositing).
    uint8_t rgba[3 * 2 * 4], ga[3 * 2 * 2];
    for (int i = 0; i < 24; i++) rgba[i] = (uint8_t)(i * 11 + 3);
    for (int i = 0; i < 12; i++) ga[i] = (uint8_t)(i * 19 + 1);
    join(path, sizeof path, dir, "rgba.png");
    CHECK(write_simplified(path, 3, 2, PNG_FORMAT_RGBA, rgba, NULL, 0), "cannot write %s", path);
    CHECK(dato_png_read(path, &back, &h, &w, &c, &err) == DATO_OK, "RGBA: %s", err.msg);
    CHECK(h == 3 && w == 2 && c == 3, "RGBA read as %dx%dx%d", h, w, c);
    if (back && c == 3)
        for (int i = 0; i < 6; i++)
            for (int ch = 0; ch < 3; ch++) {
                int d = abs((int)back[i * 3 + ch] - rgba[i * 4 + ch]);
                max_diff = d > max_diff ? d : max_diff;
            }
    free(back);
    back = NULL;
    join(path, sizeof path, dir, "gray_alpha.png");
    CHECK(write_simplified(path, 3, 2, PNG_FORMAT_GA, ga, NULL, 0), "cannot write %s", path);
    CHECK(dato_png_read(path, &back, &h, &w, &c, &err) == DATO_OK, "gray+alpha: %s", err.msg);
    CHECK(h == 3 && w == 2 && c == 1, "gray+alpha read as %dx%dx%d", h, w, c);
    if (back && c == 1)
        for (int i = 0; i < 6; i++) {
            int d = abs((int)back[i] - ga[i * 2]);
            max_diff = d > max_diff ? d : max_diff;
        }
    free(back);
    printf("PNG read conversions (palette, 16-bit, RGBA, gray+alpha): max |diff| = %d\n", max_diff);
    CHECK(max_diff == 0, "conversions off by up to %d", max_diff);
}

static void test_errors(const char* dir) {
    char path[512], name_buf[512];
    uint8_t pixels[4 * 4 * 3] = {0};
    dato_error err = {{0}};

    // An unwritable path: the directory does not exist.
    join(path, sizeof path, dir, "no/such/dir/out.png");
    CHECK(dato_png_write(path, pixels, 4, 4, 3, NULL, &err) == DATO_ERR_IO, "write into a missing directory succeeded");
    CHECK(has(err.msg, path), "unwritable path error does not name the path: %s", err.msg);
    printf("unwritable path error: %s\n", err.msg);

    join(path, sizeof path, dir, "bad_args.png");
    CHECK(dato_png_write(path, pixels, 4, 4, 2, NULL, &err) == DATO_ERR_INVALID && has(err.msg, path), "2 channels: %s", err.msg);
    CHECK(dato_png_write(path, pixels, 0, 4, 3, NULL, &err) == DATO_ERR_INVALID && has(err.msg, path), "height 0: %s", err.msg);
    CHECK(dato_png_write(path, NULL, 4, 4, 3, NULL, &err) == DATO_ERR_INVALID, "NULL pixels accepted");

    // Reading: a missing file, a file that is not a PNG, and every truncation of a valid PNG.
    uint8_t* back = NULL;
    int h, w, c;
    join(path, sizeof path, dir, "missing.png");
    CHECK(dato_png_read(path, &back, &h, &w, &c, &err) == DATO_ERR_NOT_FOUND && has(err.msg, path), "missing: %s", err.msg);
    join(path, sizeof path, dir, "not_png.png");
    write_bytes(path, "GIF89a not a png at all", 23);
    CHECK(dato_png_read(path, &back, &h, &w, &c, &err) == DATO_ERR_FORMAT && has(err.msg, path), "not a PNG: %s", err.msg);

    join(name_buf, sizeof name_buf, dir, "rt_9x13x3.png");
    size_t n = 0;
    unsigned char* good = read_bytes(name_buf, &n);
    CHECK(good != NULL && n > 8, "cannot read %s", name_buf);
    int truncations_failed = 0, truncations = 0;
    join(path, sizeof path, dir, "truncated.png");
    for (size_t cut = 0; good && cut < n; cut++) {
        write_bytes(path, good, cut);
        back = NULL;
        dato_status st = dato_png_read(path, &back, &h, &w, &c, &err);
        truncations++;
        if (st != DATO_OK && back == NULL && has(err.msg, path)) truncations_failed++;
        if (st == DATO_OK) free(back);
    }
    printf("truncated PNGs rejected with the path named: %d of %d\n", truncations_failed, truncations);
    CHECK(truncations_failed == truncations, "%d truncations not rejected properly", truncations - truncations_failed);
    // A flipped byte inside the image data is rejected.
    if (good) {
        const unsigned char* data;
        size_t len;
        int index;
        if (find_chunk(good, n, "IDAT", &data, &len, &index)) good[data - good + len / 2] ^= 0x55;
        write_bytes(path, good, n);
        CHECK(dato_png_read(path, &back, &h, &w, &c, &err) == DATO_ERR_FORMAT && has(err.msg, path), "corrupt IDAT: %s",
              err.msg);
        printf("corrupt IDAT error: %s\n", err.msg);
    }
    free(good);
}

// ---- A1111 "parameters" text --------------------------------------------------------------------

#define PARAMETERS_CASES "tests/fixtures/png_parameters/cases.json"

// A case's string field, or NULL when the case leaves it out.
static const char* case_string(const cJSON* c, const char* key) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int case_int(const cJSON* c, const char* key) {
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(c, key);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

// Every case of tools/make_png_parameters_fixtures.py, byte for byte: the texts A1111's create_infotext
// writes (with dato's Negative prompt line), which its parser and ComfyUI's importer read back.
static void test_a1111_cases(void) {
    static const char* const SPACINGS[] = {[DATO_SPACING_LEADING] = "leading", [DATO_SPACING_TRAILING] = "trailing",
                                           [DATO_SPACING_LINSPACE] = "linspace"};
    size_t n = 0;
    char* json = (char*)read_bytes(PARAMETERS_CASES, &n);
    CHECK(json != NULL, "cannot read %s (run from the repository root)", PARAMETERS_CASES);
    if (!json) return;
    cJSON* cases = cJSON_ParseWithLength(json, n);
    free(json);
    CHECK(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) >= 40, "%s: expected an array of >= 40 cases", PARAMETERS_CASES);
    int total = 0, wrong = 0;
    const cJSON* c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = case_string(c, "name"), *want = case_string(c, "expected");
        dato_a1111_params p = {.prompt = case_string(c, "prompt"), .negative_prompt = case_string(c, "negative_prompt"),
                               .steps = case_int(c, "steps"), .width = case_int(c, "width"), .height = case_int(c, "height"),
                               .model_hash = case_string(c, "model_hash"), .model_path = case_string(c, "model_path"),
                               .dato_schedule = case_string(c, "dato_schedule"), .version = case_string(c, "version")};
        const cJSON* g = cJSON_GetObjectItemCaseSensitive(c, "guidance");
        p.guidance = cJSON_IsNumber(g) ? (float)g->valuedouble : NAN;
        const char* seed = case_string(c, "seed"); // a string: JSON numbers stop being exact at 2^53
        p.seed = seed ? strtoull(seed, NULL, 10) : 0;
        dato_error err = {{0}};
        const char* sampler = case_string(c, "sampler");
        int ok = name && want && sampler && dato_sampler_kind_parse(sampler, &p.sampler, &err) == DATO_OK;
        const char* spacing = case_string(c, "spacing");
        p.spacing = (dato_timestep_spacing)-1;
        for (int k = 0; spacing && k < 3; k++)
            if (!strcmp(spacing, SPACINGS[k])) p.spacing = (dato_timestep_spacing)k;
        dato_text t;
        ok = ok && dato_a1111_parameters(&p, &t, &err) == DATO_OK;
        if (ok && strcmp(t.data, want)) {
            size_t at = 0;
            while (t.data[at] && t.data[at] == want[at]) at++;
            fprintf(stderr, "case %s differs at byte %zu:\n  got  '%s'\n  want '%s'\n", name, at, t.data, want);
            ok = 0;
        } else if (!ok) {
            fprintf(stderr, "case %s: %s\n", name ? name : "?", err.msg);
        }
        if (t.data) dato_text_free(&t);
        total++;
        wrong += !ok;
    }
    cJSON_Delete(cases);
    printf("A1111 parameters vs %s: %d of %d texts differ (bytes compared exactly)\n", PARAMETERS_CASES, wrong, total);
    CHECK(wrong == 0 && total >= 40, "%d of %d A1111 texts differ", wrong, total);
}

// The rules one at a time, and the errors.
static void test_a1111_rules(const char* dir) {
    dato_error err = {{0}};
    dato_text t;
    dato_a1111_params p = {.prompt = "a sneaker", .steps = 25, .sampler = DATO_SAMPLER_PNDM, .spacing = DATO_SPACING_LEADING,
                           .guidance = 4.0f, .seed = 1234, .width = 28, .height = 28, .model_path = "models/fashion-sd/"};
    CHECK(dato_a1111_parameters(&p, &t, &err) == DATO_OK, "default model: %s", err.msg);
    const char* want = "a sneaker\nNegative prompt: \nSteps: 25, Sampler: PLMS, Schedule type: DDIM, CFG scale: 4, "
                       "Seed: 1234, Size: 28x28, Model: fashion-sd";
    CHECK(t.data && !strcmp(t.data, want), "default model text '%s'", t.data);

    // Written into a PNG as the "parameters" tEXt chunk, the text comes back byte for byte.
    char path[512];
    join(path, sizeof path, dir, "parameters.png");
    uint8_t pixels[2 * 2] = {0, 64, 128, 255};
    const char* kv[] = {"parameters", t.data, NULL};
    CHECK(dato_png_write(path, pixels, 2, 2, 1, kv, &err) == DATO_OK, "write: %s", err.msg);
    size_t n = 0, len = 0;
    unsigned char* bytes = read_bytes(path, &n);
    const unsigned char* data = NULL;
    int index = -1;
    CHECK(bytes && find_chunk(bytes, n, "tEXt", &data, &len, &index) && len == strlen("parameters") + 1 + strlen(want) &&
              !memcmp(data, "parameters", 11) && !memcmp(data + 11, want, strlen(want)),
          "the parameters chunk does not hold the text");
    free(bytes);
    unlink(path);
    dato_text_free(&t);

    // Shortest CFG scale (numpy.format_float_positional of the float32), the Model name rule, empty
    // optional strings, -0.
    const struct {
        float guidance;
        const char *model_path, *want_tail;
    } tails[] = {{7.1f, "/m/v1-5.ckpt", "CFG scale: 7.1, Seed: 1234, Size: 28x28, Model: v1-5"},
                 {0.1f, "/m/sd-2.1/", "CFG scale: 0.1, Seed: 1234, Size: 28x28, Model: sd-2.1"},
                 {-0.0f, ".safetensors", "CFG scale: 0, Seed: 1234, Size: 28x28, Model: .safetensors"},
                 {1e6f, "", "CFG scale: 1000000, Seed: 1234, Size: 28x28"},
                 {0x1p-20f, "a.pt.pth", "CFG scale: 0.0000009536743, Seed: 1234, Size: 28x28, Model: a.pt"}};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        p.guidance = tails[i].guidance;
        p.model_path = tails[i].model_path;
        p.model_hash = "";
        CHECK(dato_a1111_parameters(&p, &t, &err) == DATO_OK, "tail %zu: %s", i, err.msg);
        const char* tail = t.data ? strstr(t.data, "CFG scale") : NULL;
        CHECK(tail && !strcmp(tail, tails[i].want_tail), "tail %zu: '%s', want '%s'", i, tail, tails[i].want_tail);
        if (t.data) dato_text_free(&t);
    }

    // Invalid settings: an error that names the field and the expected value, and no text.
    const dato_a1111_params base = {.prompt = "x", .steps = 1, .guidance = 1, .width = 1, .height = 1};
    dato_a1111_params bad[6];
    const char* const names[6] = {"no prompt", "steps 0", "size 0x1", "sampler 9", "timestep spacing -1", "guidance nan"};
    for (int i = 0; i < 6; i++) bad[i] = base;
    bad[0].prompt = NULL;
    bad[1].steps = 0;
    bad[2].width = 0;
    bad[3].sampler = (dato_sampler_kind)9;
    bad[4].spacing = (dato_timestep_spacing)-1;
    bad[5].guidance = NAN;
    for (int i = 0; i < 6; i++) {
        dato_status st = dato_a1111_parameters(&bad[i], &t, &err);
        CHECK(st == DATO_ERR_INVALID && t.data == NULL && has(err.msg, names[i] + (i == 0 ? 3 : 0)),
              "%s: status %d, '%s'", names[i], st, err.msg);
    }
    p.guidance = -1;
    CHECK(dato_a1111_parameters(&p, &t, &err) == DATO_ERR_INVALID && has(err.msg, "expected in [0, 1e6]"), "guidance -1: %s",
          err.msg);
    CHECK(dato_a1111_parameters(NULL, &t, &err) == DATO_ERR_INVALID, "NULL params accepted");
}

// ---- grids --------------------------------------------------------------------------------------

static void test_grid(void) {
    dato_error err = {{0}};
    int gh = 0, gw = 0;
    CHECK(dato_image_grid_size(3, 2, 3, 2, 1, &gh, &gw, &err) == DATO_OK && gh == 7 && gw == 9, "grid size %dx%d", gh, gw);
    CHECK(dato_image_grid_size(4, 5, 6, 4, 0, &gh, &gw, &err) == DATO_OK && gh == 5 && gw == 24, "grid size %dx%d", gh, gw);
    CHECK(dato_image_grid_size(1, 5, 6, 3, 2, &gh, &gw, &err) == DATO_OK && gh == 9 && gw == 26, "grid size %dx%d", gh, gw);
    CHECK(dato_image_grid_size(3, 2, 3, 0, 1, &gh, &gw, &err) == DATO_ERR_INVALID, "0 columns accepted");
    CHECK(dato_image_grid_size(3, 2, 3, 2, -1, &gh, &gw, &err) == DATO_ERR_INVALID, "negative pad accepted");
    CHECK(dato_image_grid_size(4, 600000, 600000, 2, 0, &gh, &gw, &err) == DATO_ERR_INVALID, "huge grid accepted");

    // 3 RGB images of 2x3 in 2 columns, pad 1: image i holds 10 * (i + 1) + channel + y * 3 + x.
    enum { N = 3, H = 2, W = 3, C = 3, COLS = 2, PAD = 1, GH = 7, GW = 9 };
    uint8_t images[N * H * W * C]; // (N, H, W, C)
    for (int i = 0; i < N; i++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int ch = 0; ch < C; ch++) images[((i * H + y) * W + x) * C + ch] = (uint8_t)(10 * (i + 1) + ch + y * 3 + x);
    uint8_t grid[GH * GW * C]; // (GH, GW, C)
    memset(grid, 0, sizeof grid);
    CHECK(dato_image_grid(grid, images, N, H, W, C, COLS, PAD, &err) == DATO_OK, "grid: %s", err.msg);
    // Expected, from the layout rule: rows 0, 3, 6 and columns 0, 4, 8 are border; cell (1, 1) is empty.
    int wrong = 0;
    for (int gy = 0; gy < GH; gy++)
        for (int gx = 0; gx < GW; gx++)
            for (int ch = 0; ch < C; ch++) {
                int row = (gy - 1) / 3, col = (gx - 1) / 4, y = (gy - 1) % 3, x = (gx - 1) % 4, i = row * COLS + col;
                int border = gy % 3 == 0 || gx % 4 == 0;
                int want = border || i >= N ? 255 : 10 * (i + 1) + ch + y * 3 + x;
                if (grid[(gy * GW + gx) * C + ch] != want) wrong++;
            }
    printf("grid 3 images in 2 columns, pad 1: %d wrong values\n", wrong);
    CHECK(wrong == 0, "%d grid values wrong", wrong);
    // Spot values: image 0 at (1, 1); image 1, y 1, x 2, channel 2 at (2, 7); image 2 at (4, 1); the empty cell.
    CHECK(grid[(1 * GW + 1) * C] == 10 && grid[(2 * GW + 7) * C + 2] == 27 && grid[(4 * GW + 1) * C] == 30 &&
              grid[(5 * GW + 6) * C + 1] == 255,
          "grid spots %d %d %d %d", grid[(1 * GW + 1) * C], grid[(2 * GW + 7) * C + 2], grid[(4 * GW + 1) * C],
          grid[(5 * GW + 6) * C + 1]);
    CHECK(dato_image_grid(grid, images, N, H, W, 5, COLS, PAD, &err) == DATO_ERR_INVALID, "5 channels accepted");
}

// ---- tensors to pixels ------------------------------------------------------------------------

static void test_from_float(void) {
    dato_error err = {{0}};
    // Inputs and outputs from torch 2.15 + numpy, as diffusers computes them:
    // ((x * 0.5 + 0.5).clamp(0, 1) * 255).round().astype("uint8"). The hex inputs make v * 255
    // land exactly on k + 0.5 in float32, where numpy rounds half to even.
    const float x[] = {-1.0f, 1.0f, 0.0f, -3.0f, 2.0f, 0.3f, -0.7f, -0x1.0101p-7f, 0x1.0101p-7f, 0x1.f9f9f8p-1f, 0x1.fdfdfcp-1f};
    const uint8_t want[] = {0, 255, 128, 0, 255, 166, 38, 126 /* 126.5 */, 128 /* 128.5 */, 254 /* 253.5 */, 254 /* 254.5 */};
    enum { N = sizeof x / sizeof x[0] };
    uint8_t got[N];
    dato_tensor t = dato_tensor_f32_3d((float*)x, 1, 1, N);
    CHECK(dato_image_from_float(&t, got, &err) == DATO_OK, "from float: %s", err.msg);
    int max_diff = 0;
    for (int i = 0; i < N; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d) fprintf(stderr, "x = %a: got %d, numpy %d\n", (double)x[i], got[i], want[i]);
        max_diff = d > max_diff ? d : max_diff;
    }
    printf("float -> uint8 vs numpy (ties included): max |diff| = %d\n", max_diff);
    CHECK(max_diff == 0, "float conversion differs from numpy by up to %d", max_diff);

    // A sweep x_i = (i - 512) / 400, i = 0..1024, against numpy's sums (round half away from zero
    // would give 130689 and 93732067).
    enum { M = 1025 };
    static float sweep[M];
    static uint8_t sweep_u8[M];
    for (int i = 0; i < M; i++) sweep[i] = ((float)i - 512.0f) / 400.0f;
    t = dato_tensor_f32_3d(sweep, 1, 1, M);
    CHECK(dato_image_from_float(&t, sweep_u8, &err) == DATO_OK, "sweep: %s", err.msg);
    long long sum = 0, weighted = 0;
    for (int i = 0; i < M; i++) {
        sum += sweep_u8[i];
        weighted += (long long)sweep_u8[i] * (i + 1);
    }
    printf("float -> uint8 sweep: sum %lld (numpy 130687), weighted %lld (numpy 93731041)\n", sum, weighted);
    CHECK(sum == 130687 && weighted == 93731041, "sweep sums %lld %lld", sum, weighted);

    // Layout: (C, H, W) in, (H, W, C) out; NaN gives 0.
    float chw[3 * 2 * 2] = {-1.0f, 1.0f, 0.0f, NAN, /* R */ 1.0f, 1.0f, -1.0f, -1.0f, /* G */ 0.0f, -1.0f, 1.0f, 0.0f /* B */};
    const uint8_t want_hwc[12] = {0, 255, 128, 255, 255, 0, 128, 0, 255, 0, 0, 128};
    uint8_t hwc[12];
    t = dato_tensor_f32_3d(chw, 3, 2, 2);
    CHECK(dato_image_from_float(&t, hwc, &err) == DATO_OK && memcmp(hwc, want_hwc, 12) == 0, "CHW -> HWC layout wrong");

    float four[4 * 5] = {0};
    dato_tensor bad = dato_tensor_f32_3d(four, 5, 2, 2);
    CHECK(dato_image_from_float(&bad, hwc, &err) == DATO_ERR_INVALID && has(err.msg, "(5, 2, 2)"), "5 channels: %s", err.msg);
    bad = dato_tensor_f32_2d(four, 2, 2);
    CHECK(dato_image_from_float(&bad, hwc, &err) == DATO_ERR_INVALID, "2-d tensor accepted");
}

static void test_latent_preview(void) {
    dato_error err = {{0}};
    const double factors[4][3] = {{0.298, 0.207, 0.208}, {0.187, 0.286, 0.173}, {-0.158, 0.189, 0.264}, {-0.184, -0.271, -0.473}};
    // (4, 2, 3): pixel 0 all zeros (-> 127.5 -> 128), pixels 1..4 a unit vector in one channel,
    // pixel 5 a mixture that saturates.
    enum { H = 2, W = 3, HW = H * W };
    float z[4 * HW] = {0}; // (4, H, W)
    for (int k = 0; k < 4; k++) z[k * HW + 1 + k] = 1.0f;
    const float mix[4] = {3.0f, 2.0f, -1.0f, -4.0f};
    for (int k = 0; k < 4; k++) z[k * HW + 5] = mix[k];
    uint8_t rgb[HW * 3]; // (H, W, 3)
    dato_tensor t = dato_tensor_f32_3d(z, 4, H, W);
    CHECK(dato_latent_preview(&t, rgb, &err) == DATO_OK, "preview: %s", err.msg);
    int max_diff = 0;
    for (int i = 0; i < HW; i++)
        for (int c = 0; c < 3; c++) {
            double v = 0;
            for (int k = 0; k < 4; k++) v += z[k * HW + i] * factors[k][c];
            v = (v + 1) / 2;
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            int want = (int)lround(v * 255);
            if (i == 0) want = 128; // 127.5 rounds half to even
            int d = abs((int)rgb[i * 3 + c] - want);
            max_diff = d > max_diff ? d : max_diff;
        }
    printf("latent preview vs the linear map in double: max |diff| = %d (pixel 1 = %d %d %d)\n", max_diff, rgb[3], rgb[4], rgb[5]);
    CHECK(max_diff == 0, "latent preview off by up to %d", max_diff);
    // Pixel 1 is channel 0 alone: (1 + 0.298, 1 + 0.207, 1 + 0.208) / 2 * 255 = 165.495, 153.89, 154.02.
    CHECK(rgb[3] == 165 && rgb[4] == 154 && rgb[5] == 154, "pixel 1 = %d %d %d", rgb[3], rgb[4], rgb[5]);
    float three[3 * HW] = {0};
    dato_tensor bad = dato_tensor_f32_3d(three, 3, H, W);
    CHECK(dato_latent_preview(&bad, rgb, &err) == DATO_ERR_INVALID && has(err.msg, "expected 4"), "3-channel latent: %s", err.msg);
}

int main(void) {
    char dir[] = "/tmp/dato_test_image_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip(dir);
    test_text_chunks(dir);
    test_read_conversions(dir);
    test_errors(dir);
    // 6 round trips, text, palette, rgb16, rgba, gray_alpha, not_png, truncated: no temporary files.
    int entries = count_entries(dir);
    printf("files in the test directory: %d (expected 13, no temporaries)\n", entries);
    CHECK(entries == 13, "%d files in %s, expected 13", entries, dir);
    test_a1111_cases();
    test_a1111_rules(dir);
    test_grid();
    test_from_float();
    test_latent_preview();

    DIR* d = opendir(dir);
    struct dirent* e;
    char path[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) unlink(join(path, sizeof path, dir, e->d_name));
    if (d) closedir(d);
    rmdir(dir);
    return test_summary();
}
