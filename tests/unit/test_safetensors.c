// safetensors reader/writer and weight_files: round trips through the writer, a table of hostile
// files (each validation rule, every truncation of a valid file), sharded indexes and the
// directory lookup. All files live in a fresh mkdtemp directory that is removed at the end.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "test_util.h"
#include "weight_files.h"

// ---- helpers ------------------------------------------------------------------------------------

static const char* join(char* buf, size_t n, const char* dir, const char* name) {
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n) {
        fprintf(stderr, "path too long: %s/%s\n", dir, name);
        exit(1);
    }
    return buf;
}

// A safetensors file with the given header, header length field and data_size bytes of data.
static int write_raw(const char* path, const char* header, uint64_t len_field, size_t data_size) {
    size_t hn = strlen(header);
    size_t total = 8 + hn + data_size;
    unsigned char* buf = calloc(total, 1);
    if (!buf) return 0;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len_field >> (8 * i));
    memcpy(buf + 8, header, hn);
    for (size_t i = 0; i < data_size; i++) buf[8 + hn + i] = (unsigned char)(i * 7 + 1);
    int ok = write_bytes(path, buf, total);
    free(buf);
    return ok;
}

static int has(const char* msg, const char* needle) { return needle == NULL || strstr(msg, needle) != NULL; }

static int ends_with_str(const char* s, const char* suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

// F32 tensors of shape (2,) holding {i, i + 0.5}, for index and directory tests.
static dato_status write_simple(const char* path, const char* const* names, int n, dato_error* err) {
    float values[64][2];
    int64_t shape[1] = {2};
    dato_st_write_entry entries[64];
    for (int i = 0; i < n && i < 64; i++) {
        values[i][0] = (float)i;
        values[i][1] = (float)i + 0.5f;
        entries[i] = (dato_st_write_entry){names[i], DATO_F32, 1, shape, values[i]};
    }
    return dato_safetensors_write(path, entries, n, NULL, err);
}

// Removes path and, if it is a directory, everything under it.
static void remove_tree(const char* path) {
    DIR* d = opendir(path);
    if (d) {
        struct dirent* e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char child[1024];
            remove_tree(join(child, sizeof child, path, e->d_name));
        }
        closedir(d);
    }
    remove(path);
}

// ---- round trip -----------------------------------------------------------------------------------

static const float conv_w[6] = {1.5f, -2.25f, 3e-3f, 1e10f, -0.0f, 7.0f}; // (2, 3)
static const float half_v[4] = {1.0f, -0.5f, 65504.0f, 6.103515625e-05f}; // (4,), exact in f16
static const float bf_v[4] = {1.0f, -3.5f, 256.0f, 0.15625f};             // (2, 2), exact in bf16
static const float scalar_v[1] = {42.0f};                                  // ()

// Writes the reference file with five tensors and metadata.
static dato_status write_reference(const char* path, dato_error* err) {
    uint16_t half_bits[4], bf_bits[4];
    for (int i = 0; i < 4; i++) {
        half_bits[i] = dato_f32_to_f16(half_v[i]);
        bf_bits[i] = dato_f32_to_bf16(bf_v[i]);
    }
    const dato_st_write_entry entries[] = {
        {"unet.conv_in.weight", DATO_F32, 2, (const int64_t[]){2, 3}, conv_w},
        {"half \"quoted\\name\" \xc3\xa9", DATO_F16, 1, (const int64_t[]){4}, half_bits},
        {"bf.weight", DATO_BF16, 2, (const int64_t[]){2, 2}, bf_bits},
        {"scalar", DATO_F32, 0, NULL, scalar_v},
        {"empty", DATO_F16, 2, (const int64_t[]){0, 3}, NULL},
    };
    const char* meta[] = {"format", "pt", "note", "line\nbreak \"q\" \xc3\xa9", NULL};
    return dato_safetensors_write(path, entries, 5, meta, err);
}

static void test_round_trip(const char* dir) {
    char path[512];
    join(path, sizeof path, dir, "ref.safetensors");
    dato_error err = {{0}};
    dato_status s = write_reference(path, &err);
    CHECK(s == DATO_OK, "write: %s", err.msg);

    dato_safetensors st;
    s = dato_safetensors_open(&st, path, &err);
    CHECK(s == DATO_OK, "open: %s", err.msg);
    if (s != DATO_OK) return;
    CHECK(st.n_tensors == 5, "n_tensors %d", st.n_tensors);
    CHECK((8 + st.header_size) % 8 == 0, "data start %zu not 8-aligned", 8 + st.header_size);

    // Data order is the write order, packed with no gaps, starting 8-aligned.
    const char* order[] = {"unet.conv_in.weight", "half \"quoted\\name\" \xc3\xa9", "bf.weight", "scalar", "empty"};
    const unsigned char* expect_data = (const unsigned char*)st.map + 8 + st.header_size;
    for (int i = 0; i < st.n_tensors && i < 5; i++) {
        CHECK(!strcmp(st.tensors[i].name, order[i]), "tensor %d is '%s', want '%s'", i, st.tensors[i].name, order[i]);
        CHECK(st.tensors[i].data == expect_data, "tensor %d not packed", i);
        expect_data += st.tensors[i].nbytes;
    }
    CHECK(expect_data == (const unsigned char*)st.map + st.map_size, "data do not end at the file end");

    struct {
        const char* name;
        dato_st_dtype dtype;
        int ndim;
        int64_t shape[2];
        const float* values;
        int n;
    } want[] = {
        {"unet.conv_in.weight", DATO_ST_F32, 2, {2, 3}, conv_w, 6},
        {"half \"quoted\\name\" \xc3\xa9", DATO_ST_F16, 1, {4, 0}, half_v, 4},
        {"bf.weight", DATO_ST_BF16, 2, {2, 2}, bf_v, 4},
        {"scalar", DATO_ST_F32, 0, {0, 0}, scalar_v, 1},
        {"empty", DATO_ST_F16, 2, {0, 3}, NULL, 0},
    };
    double max_err = 0;
    for (int i = 0; i < 5; i++) {
        const dato_st_tensor* t = dato_safetensors_find(&st, want[i].name);
        CHECK(t != NULL, "find '%s'", want[i].name);
        if (!t) continue;
        CHECK(t->dtype == want[i].dtype, "'%s' dtype %s", t->name, dato_st_dtype_name(t->dtype));
        CHECK(t->ndim == want[i].ndim, "'%s' ndim %d", t->name, t->ndim);
        for (int d = 0; d < want[i].ndim; d++)
            CHECK(t->shape[d] == want[i].shape[d], "'%s' shape[%d] = %lld", t->name, d, (long long)t->shape[d]);
        CHECK(t->numel == want[i].n, "'%s' numel %lld", t->name, (long long)t->numel);
        CHECK(t->nbytes == (size_t)want[i].n * dato_st_dtype_size(t->dtype), "'%s' nbytes %zu", t->name, t->nbytes);
        CHECK(!strcmp(t->path, path), "'%s' path %s", t->name, t->path);
        float got[8] = {0};
        s = dato_st_tensor_to_f32(t, got, (size_t)want[i].n, &err);
        CHECK(s == DATO_OK, "to_f32 '%s': %s", t->name, err.msg);
        if (want[i].n) {
            double e = test_max_abs_diff(got, want[i].values, (size_t)want[i].n);
            max_err = e > max_err ? e : max_err;
        }
    }
    // -0.0 must survive the trip bit for bit.
    const dato_st_tensor* conv = dato_safetensors_find(&st, "unet.conv_in.weight");
    float neg_zero = 1.0f;
    if (conv) memcpy(&neg_zero, (const char*)conv->data + 4 * 4, 4);
    CHECK(neg_zero == 0.0f && signbit(neg_zero), "-0.0 became %g", neg_zero);
    printf("round trip: max |read - written| = %g (tolerance 0: all values exact in their dtype)\n", max_err);
    CHECK(max_err == 0, "max error %g", max_err);

    CHECK(dato_safetensors_find(&st, "missing") == NULL, "found a missing tensor");
    CHECK(dato_safetensors_find(&st, "") == NULL, "found the empty name");
    const char* fmt = dato_safetensors_metadata(&st, "format");
    const char* note = dato_safetensors_metadata(&st, "note");
    CHECK(fmt && !strcmp(fmt, "pt"), "metadata format = %s", fmt ? fmt : "(null)");
    CHECK(note && !strcmp(note, "line\nbreak \"q\" \xc3\xa9"), "metadata note = %s", note ? note : "(null)");
    CHECK(dato_safetensors_metadata(&st, "nope") == NULL, "found a missing metadata key");
    CHECK(st.n_metadata == 2, "n_metadata %d", st.n_metadata);
    dato_safetensors_close(&st);
    CHECK(st.tensors == NULL && st.map == NULL && st.n_tensors == 0, "close did not empty the struct");
    dato_safetensors_close(&st); // closing twice is harmless

    // The same bytes parsed from memory give the same tensors, pointing into the buffer.
    size_t n = 0;
    unsigned char* bytes = read_bytes(path, &n);
    s = dato_safetensors_parse(&st, bytes, n, "mem-label", &err);
    CHECK(s == DATO_OK, "parse: %s", err.msg);
    if (s == DATO_OK) {
        const dato_st_tensor* bf = dato_safetensors_find(&st, "bf.weight");
        CHECK(st.n_tensors == 5 && st.map == NULL, "parse: %d tensors", st.n_tensors);
        CHECK(bf && (const unsigned char*)bf->data >= bytes && (const unsigned char*)bf->data < bytes + n,
              "bf.weight does not point into the buffer");
        CHECK(!strcmp(st.path, "mem-label"), "label %s", st.path);
    }
    dato_safetensors_close(&st);
    free(bytes);
}

static void test_dtypes(const char* dir) {
    dato_dtype dt;
    CHECK(dato_st_dtype_to_dato(DATO_ST_F32, &dt) && dt == DATO_F32, "F32");
    CHECK(dato_st_dtype_to_dato(DATO_ST_F16, &dt) && dt == DATO_F16, "F16");
    CHECK(dato_st_dtype_to_dato(DATO_ST_BF16, &dt) && dt == DATO_BF16, "BF16");
    const dato_st_dtype others[] = {DATO_ST_F64, DATO_ST_I64, DATO_ST_I32, DATO_ST_I16, DATO_ST_I8,
                                    DATO_ST_U64, DATO_ST_U32, DATO_ST_U16, DATO_ST_U8, DATO_ST_BOOL,
                                    DATO_ST_F8_E4M3, DATO_ST_F8_E5M2};
    const size_t sizes[] = {8, 8, 4, 2, 1, 8, 4, 2, 1, 1, 1, 1};
    for (int i = 0; i < 12; i++) {
        CHECK(!dato_st_dtype_to_dato(others[i], &dt), "%s maps to an engine dtype", dato_st_dtype_name(others[i]));
        CHECK(dato_st_dtype_size(others[i]) == sizes[i], "%s size %zu", dato_st_dtype_name(others[i]),
              dato_st_dtype_size(others[i]));
    }
    CHECK(!strcmp(dato_st_dtype_name(DATO_ST_F8_E4M3), "F8_E4M3"), "F8_E4M3 name");

    // Non-float dtypes load, but converting them to f32 is refused with the tensor named.
    char path[512];
    join(path, sizeof path, dir, "ints.safetensors");
    CHECK(write_raw(path, "{\"token_ids\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 62, 8),
          "write %s", path);
    dato_safetensors st;
    dato_error err = {{0}};
    dato_status s = dato_safetensors_open(&st, path, &err);
    CHECK(s == DATO_OK, "open ints: %s", err.msg);
    const dato_st_tensor* t = s == DATO_OK ? dato_safetensors_find(&st, "token_ids") : NULL;
    CHECK(t && t->dtype == DATO_ST_I32, "token_ids");
    if (t) {
        float dst[2];
        s = dato_st_tensor_to_f32(t, dst, 2, &err);
        CHECK(s == DATO_ERR_UNSUPPORTED && has(err.msg, "token_ids") && has(err.msg, "I32") && has(err.msg, path),
              "I32 to f32: %s: %s", dato_status_name(s), err.msg);
    }
    dato_safetensors_close(&st);

    // A destination of the wrong size is refused.
    join(path, sizeof path, dir, "ref.safetensors");
    s = dato_safetensors_open(&st, path, &err);
    t = s == DATO_OK ? dato_safetensors_find(&st, "unet.conv_in.weight") : NULL;
    if (t) {
        float dst[8];
        s = dato_st_tensor_to_f32(t, dst, 5, &err);
        CHECK(s == DATO_ERR_INVALID && has(err.msg, "unet.conv_in.weight") && has(err.msg, "6 elements"),
              "short destination: %s", err.msg);
    }
    dato_safetensors_close(&st);
}

// ---- hostile files --------------------------------------------------------------------------------

typedef struct {
    const char* file;   // name in the temp directory
    const char* header; // the JSON header (its true length goes in the length field)
    size_t data_size;   // bytes of data after the header
    dato_status expect;
    const char* needle; // a substring of the message
    const char* tensor; // the tensor the message must name, or NULL
} hostile_case;

#define W(fields) "{\"w\":{" fields "}}"
#define F32_1 "\"dtype\":\"F32\",\"shape\":[1]"

static const hostile_case hostile_cases[] = {
    {"empty_header", "", 16, DATO_ERR_FORMAT, "not valid JSON", NULL},
    {"not_json", "{\"a\": ", 16, DATO_ERR_FORMAT, "not valid JSON", NULL},
    {"not_object", "[1, 2]", 16, DATO_ERR_FORMAT, "not a JSON object", NULL},
    {"string_header", "\"w\"", 16, DATO_ERR_FORMAT, "not a JSON object", NULL},
    {"trailing", "{} x", 16, DATO_ERR_FORMAT, "trailing bytes", NULL},
    {"two_objects", "{}{}", 16, DATO_ERR_FORMAT, "trailing bytes", NULL},
    {"bad_utf8", "{\"w\xff\":{}}", 16, DATO_ERR_FORMAT, "not valid UTF-8", NULL},
    {"overlong_utf8", "{\"w\xc0\xaf\":{}}", 16, DATO_ERR_FORMAT, "not valid UTF-8", NULL},
    {"surrogate_utf8", "{\"w\xed\xa0\x80\":{}}", 16, DATO_ERR_FORMAT, "not valid UTF-8", NULL},
    {"cut_utf8", "{\"w\":{}}\xe2\x82", 16, DATO_ERR_FORMAT, "not valid UTF-8", NULL},
    {"control_char", "{\"w\x01\":{}}", 16, DATO_ERR_FORMAT, "byte 3 (0x01)", NULL},
    {"entry_not_object", "{\"w\": 5}", 16, DATO_ERR_FORMAT, "entry is not an object", "'w'"},
    {"entry_array", "{\"w\": [0, 4]}", 16, DATO_ERR_FORMAT, "entry is not an object", "'w'"},
    {"dtype_missing", W("\"shape\":[1],\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT, "dtype is missing", "'w'"},
    {"dtype_number", W("\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT, "not a string", "'w'"},
    {"dtype_unknown", W("\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]"), 16, DATO_ERR_UNSUPPORTED,
     "unknown dtype 'Q7'", "'w'"},
    {"dtype_lowercase", W("\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]"), 16, DATO_ERR_UNSUPPORTED,
     "unknown dtype", "'w'"},
    {"dtype_twice", W(F32_1 ",\"dtype\":\"F16\",\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT,
     "field 'dtype' appears twice", "'w'"},
    {"shape_missing", W("\"dtype\":\"F32\",\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT, "shape is missing", "'w'"},
    {"shape_not_array", W("\"dtype\":\"F32\",\"shape\":1,\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT,
     "shape is missing or not an array", "'w'"},
    {"shape_negative", W("\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT,
     "shape[0] is not an integer", "'w'"},
    {"shape_fraction", W("\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT,
     "shape[1] is not an integer", "'w'"},
    {"shape_string", W("\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT,
     "shape[0] is not an integer", "'w'"},
    {"shape_2_53", W("\"dtype\":\"U8\",\"shape\":[9007199254740992],\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT,
     "shape[0] is not an integer in [0, 2^53)", "'w'"},
    {"shape_inf", W("\"dtype\":\"U8\",\"shape\":[1e999],\"data_offsets\":[0,4]"), 16, DATO_ERR_FORMAT,
     "shape[0] is not an integer", "'w'"},
    {"shape_9_dims", W("\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]"), 16, DATO_ERR_FORMAT,
     "9 dimensions, more than 8", "'w'"},
    {"numel_overflow",
     W("\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]"), 16,
     DATO_ERR_FORMAT, "element count of the shape overflows", "'w'"},
    {"bytes_overflow", W("\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]"), 16,
     DATO_ERR_FORMAT, "byte size of the shape overflows", "'w'"},
    {"offsets_missing", W(F32_1), 16, DATO_ERR_FORMAT, "data_offsets is missing", "'w'"},
    {"offsets_one", W(F32_1 ",\"data_offsets\":[4]"), 16, DATO_ERR_FORMAT, "not two integers", "'w'"},
    {"offsets_three", W(F32_1 ",\"data_offsets\":[0,4,8]"), 16, DATO_ERR_FORMAT, "not two integers", "'w'"},
    {"offsets_object", W(F32_1 ",\"data_offsets\":{\"0\":0,\"1\":4}"), 16, DATO_ERR_FORMAT, "not two integers", "'w'"},
    {"offsets_fraction", W(F32_1 ",\"data_offsets\":[0,4.5]"), 16, DATO_ERR_FORMAT, "not two integers", "'w'"},
    {"offsets_negative", W(F32_1 ",\"data_offsets\":[-4,0]"), 16, DATO_ERR_FORMAT, "not two integers", "'w'"},
    {"offsets_string", W(F32_1 ",\"data_offsets\":[\"0\",\"4\"]"), 16, DATO_ERR_FORMAT, "not two integers", "'w'"},
    {"offsets_huge", W(F32_1 ",\"data_offsets\":[0,1e300]"), 16, DATO_ERR_FORMAT, "not two integers", "'w'"},
    {"offsets_reversed", W("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]"), 16, DATO_ERR_FORMAT,
     "[8, 4] has begin > end", "'w'"},
    {"offsets_past_end", W("\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,20]"), 16, DATO_ERR_FORMAT,
     "end 20 is past the end of the data (16 bytes)", "'w'"},
    {"offsets_past_end_2_52", W("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[4503599627370495,4503599627370496]"),
     16, DATO_ERR_FORMAT, "past the end of the data", "'w'"},
    {"offsets_mismatch", W("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]"), 16, DATO_ERR_FORMAT,
     "span 12 bytes but F32 [2] needs 8", "'w'"},
    {"offsets_short", W("\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,6]"), 16, DATO_ERR_FORMAT,
     "span 6 bytes but BF16 [2, 3] needs 12", "'w'"},
    {"overlap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     16, DATO_ERR_FORMAT, "tensors 'a' and 'b' overlap", NULL},
    {"overlap_contained",
     "{\"big\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
     "\"small\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[10,12]}}",
     16, DATO_ERR_FORMAT, "tensors 'big' and 'small' overlap", NULL},
    {"overlap_same",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
     "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     16, DATO_ERR_FORMAT, "tensors 'a' and 'b' overlap", NULL},
    {"duplicate_name",
     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     16, DATO_ERR_FORMAT, "tensor 'w' appears twice", NULL},
    {"meta_not_object", "{\"__metadata__\":[1]}", 16, DATO_ERR_FORMAT, "__metadata__ is not an object", NULL},
    {"meta_string", "{\"__metadata__\":\"x\"}", 16, DATO_ERR_FORMAT, "__metadata__ is not an object", NULL},
    {"meta_number_value", "{\"__metadata__\":{\"ok\":\"1\",\"steps\":1000}}", 16, DATO_ERR_FORMAT,
     "value of 'steps' is not a string", NULL},
    {"meta_null_value", "{\"__metadata__\":{\"k\":null}}", 16, DATO_ERR_FORMAT, "value of 'k' is not a string", NULL},
    {"meta_repeat_key", "{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 16, DATO_ERR_FORMAT, "repeats key 'k'", NULL},
    {"meta_twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 16, DATO_ERR_FORMAT, "__metadata__ appears twice",
     NULL},
    // Accepted: gaps, space padding, empty tensors anywhere, unknown fields, integral floats.
    {"ok_gap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
     16, DATO_OK, NULL, NULL},
    {"ok_padded", W(F32_1 ",\"data_offsets\":[0,4]") "      \n ", 16, DATO_OK, NULL, NULL},
    {"ok_empty_inside",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"e\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
     "\"f\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
     16, DATO_OK, NULL, NULL},
    {"ok_unknown_field", W(F32_1 ",\"data_offsets\":[0,4],\"note\":[1,{}]"), 16, DATO_OK, NULL, NULL},
    {"ok_integral_floats", W("\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[4e0,12]"), 16, DATO_OK, NULL, NULL},
    {"ok_no_tensors", "{}", 0, DATO_OK, NULL, NULL},
    {"ok_only_metadata", "{\"__metadata__\":{\"format\":\"pt\"}}", 0, DATO_OK, NULL, NULL},
};

static void check_open(const char* path, dato_status expect, const char* needle, const char* tensor) {
    dato_safetensors st;
    dato_error err = {{0}};
    dato_status s = dato_safetensors_open(&st, path, &err);
    CHECK(s == expect, "%s: got %s, want %s: %s", path, dato_status_name(s), dato_status_name(expect), err.msg);
    if (expect != DATO_OK) {
        CHECK(has(err.msg, path) && has(err.msg, needle) && has(err.msg, tensor), "%s: message '%s' lacks '%s' / %s",
              path, err.msg, needle ? needle : "", tensor ? tensor : "");
        CHECK(st.tensors == NULL && st.path == NULL && st.map == NULL, "%s: failed open left state behind", path);
    }
    dato_safetensors_close(&st);
}

static void test_hostile(const char* dir) {
    char path[512];
    int n_cases = (int)(sizeof hostile_cases / sizeof hostile_cases[0]);
    for (int i = 0; i < n_cases; i++) {
        const hostile_case* c = &hostile_cases[i];
        join(path, sizeof path, dir, c->file);
        CHECK(write_raw(path, c->header, strlen(c->header), c->data_size), "write %s", path);
        check_open(path, c->expect, c->needle, c->tensor);
    }
    printf("hostile headers: %d cases\n", n_cases);

    // The length prefix itself.
    join(path, sizeof path, dir, "zero_bytes");
    CHECK(write_bytes(path, "", 0), "write %s", path);
    check_open(path, DATO_ERR_FORMAT, "0 bytes, shorter than the 8-byte header length", NULL);
    join(path, sizeof path, dir, "three_bytes");
    CHECK(write_bytes(path, "\x02\x00\x00", 3), "write %s", path);
    check_open(path, DATO_ERR_FORMAT, "3 bytes, shorter than", NULL);
    join(path, sizeof path, dir, "len_past_end");
    CHECK(write_raw(path, "{}", 3, 0), "write %s", path);
    check_open(path, DATO_ERR_FORMAT, "header length 3 runs past the end of the file (10 bytes)", NULL);
    join(path, sizeof path, dir, "len_2_40");
    CHECK(write_raw(path, "{}", (uint64_t)1 << 40, 16), "write %s", path);
    check_open(path, DATO_ERR_FORMAT, "header length 1099511627776 exceeds the limit", NULL);
    join(path, sizeof path, dir, "len_max");
    CHECK(write_raw(path, "{}", UINT64_MAX, 16), "write %s", path);
    check_open(path, DATO_ERR_FORMAT, "exceeds the limit", NULL);
    join(path, sizeof path, dir, "len_short"); // the header is cut: "{" then data bytes
    CHECK(write_raw(path, "{}", 1, 0), "write %s", path);
    check_open(path, DATO_ERR_FORMAT, "not valid JSON", NULL);
    check_open(dir, DATO_ERR_IO, "not a regular file", NULL);
    join(path, sizeof path, dir, "does_not_exist.safetensors");
    check_open(path, DATO_ERR_IO, "cannot open", NULL);

    // Every truncation of a valid file fails cleanly, from a file and from an exact-size buffer
    // (so that a sanitizer build sees any read past the end).
    join(path, sizeof path, dir, "ref.safetensors");
    size_t size = 0;
    unsigned char* bytes = read_bytes(path, &size);
    CHECK(bytes && size > 100, "read %s", path);
    int n_rejected = 0;
    for (size_t len = 0; bytes && len < size; len++) {
        char cut_path[512], label[64];
        join(cut_path, sizeof cut_path, dir, "truncated.safetensors");
        write_bytes(cut_path, bytes, len);
        dato_safetensors st;
        dato_error err = {{0}};
        dato_status s = dato_safetensors_open(&st, cut_path, &err);
        int ok = s == DATO_ERR_FORMAT && has(err.msg, cut_path);
        dato_safetensors_close(&st);

        unsigned char* exact = malloc(len ? len : 1);
        memcpy(exact, bytes, len);
        snprintf(label, sizeof label, "cut-at-%zu", len);
        s = dato_safetensors_parse(&st, exact, len, label, &err);
        ok = ok && s == DATO_ERR_FORMAT && has(err.msg, label);
        dato_safetensors_close(&st);
        free(exact);
        CHECK(ok, "truncated to %zu of %zu bytes: %s: %s", len, size, dato_status_name(s), err.msg);
        n_rejected += ok;
    }
    printf("truncations: %d of %zu rejected with a format error\n", n_rejected, size);
    free(bytes);
}

// ---- writer errors ----------------------------------------------------------------------------------

static void test_writer_errors(const char* dir) {
    char path[512];
    join(path, sizeof path, dir, "bad_write.safetensors");
    float v[2] = {1, 2};
    int64_t shape2[1] = {2};
    int64_t shape9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 2};
    int64_t negative[1] = {-2};
    dato_error err = {{0}};
    struct {
        dato_st_write_entry entries[2];
        int n;
        const char* needle;
    } cases[] = {
        {{{"w", DATO_F32, 1, shape2, v}, {"w", DATO_F32, 1, shape2, v}}, 2, "tensor 'w' given twice"},
        {{{"__metadata__", DATO_F32, 1, shape2, v}}, 1, "__metadata__"},
        {{{"w", DATO_F32, 9, shape9, v}}, 1, "ndim 9"},
        {{{"w", DATO_F32, 1, negative, v}}, 1, "shape[0] = -2"},
        {{{"w", DATO_F32, 1, shape2, NULL}}, 1, "data is NULL"},
        {{{"w\xff", DATO_F32, 1, shape2, v}}, 1, "not UTF-8"},
        {{{NULL, DATO_F32, 1, shape2, v}}, 1, "entry 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dato_status s = dato_safetensors_write(path, cases[i].entries, cases[i].n, NULL, &err);
        CHECK(s == DATO_ERR_INVALID && has(err.msg, cases[i].needle) && has(err.msg, path), "writer case %zu: %s: %s",
              i, dato_status_name(s), err.msg);
        CHECK(access(path, F_OK) != 0, "writer case %zu left a file", i);
    }
    const dato_st_write_entry ok_entry = {"w", DATO_F32, 1, shape2, v};
    dato_status s = dato_safetensors_write(path, &ok_entry, 1, (const char* const[]){"key", NULL, NULL}, &err);
    CHECK(s == DATO_ERR_INVALID && has(err.msg, "'key' has no value"), "metadata without value: %s", err.msg);

    join(path, sizeof path, dir, "no_such_dir/x.safetensors");
    s = dato_safetensors_write(path, &ok_entry, 1, NULL, &err);
    CHECK(s == DATO_ERR_IO && has(err.msg, "no_such_dir"), "write into a missing dir: %s", err.msg);

    // Zero tensors and no metadata is a valid (empty) file.
    join(path, sizeof path, dir, "empty.safetensors");
    s = dato_safetensors_write(path, NULL, 0, NULL, &err);
    CHECK(s == DATO_OK, "empty write: %s", err.msg);
    check_open(path, DATO_OK, NULL, NULL);
}

// ---- weight_files -------------------------------------------------------------------------------------

static void write_text(const char* path, const char* text) {
    CHECK(write_bytes(path, text, strlen(text)), "write %s", path);
}

static void check_wf_fails(const char* path, dato_status expect, const char* needle, const char* needle2) {
    dato_weight_files wf;
    dato_error err = {{0}};
    dato_status s = dato_weight_files_open(&wf, path, &err);
    CHECK(s == expect && has(err.msg, needle) && has(err.msg, needle2), "%s: got %s (want %s): %s", path,
          dato_status_name(s), dato_status_name(expect), err.msg);
    CHECK(wf.files == NULL && wf.tensors == NULL && wf.path == NULL, "%s: failed open left state behind", path);
    dato_weight_files_close(&wf);
}

static void test_weight_files(const char* dir) {
    char path[512], sub[512], idx[512];
    dato_error err = {{0}};
    dato_weight_files wf;

    // A single file: every tensor, found by name, in data order.
    join(path, sizeof path, dir, "ref.safetensors");
    dato_status s = dato_weight_files_open(&wf, path, &err);
    CHECK(s == DATO_OK, "open single: %s", err.msg);
    CHECK(dato_weight_files_count(&wf) == 5 && wf.n_files == 1, "single: %d tensors", dato_weight_files_count(&wf));
    for (int i = 0; i < dato_weight_files_count(&wf); i++) {
        const dato_st_tensor* t = dato_weight_files_tensor(&wf, i);
        CHECK(t && dato_weight_files_find(&wf, t->name) == t, "single: tensor %d not found by name", i);
    }
    CHECK(dato_weight_files_find(&wf, "nope") == NULL && dato_weight_files_tensor(&wf, 5) == NULL, "single: extras");
    dato_weight_files_close(&wf);

    // Many names: the hash table finds each one.
    enum { N_MANY = 60 };
    char many_names[N_MANY][32];
    const char* many[N_MANY];
    for (int i = 0; i < N_MANY; i++) {
        snprintf(many_names[i], sizeof many_names[i], "blocks.%d.attn.to_q.weight", i);
        many[i] = many_names[i];
    }
    join(path, sizeof path, dir, "many.safetensors");
    s = write_simple(path, many, N_MANY, &err);
    CHECK(s == DATO_OK, "write many: %s", err.msg);
    s = dato_weight_files_open(&wf, path, &err);
    CHECK(s == DATO_OK && dato_weight_files_count(&wf) == N_MANY, "open many: %s", err.msg);
    int found = 0;
    double max_err = 0;
    for (int i = 0; i < N_MANY && s == DATO_OK; i++) {
        const dato_st_tensor* t = dato_weight_files_find(&wf, many[i]);
        float got[2] = {0};
        if (t && dato_st_tensor_to_f32(t, got, 2, &err) == DATO_OK) {
            found++;
            float want[2] = {(float)i, (float)i + 0.5f};
            double e = test_max_abs_diff(got, want, 2);
            max_err = e > max_err ? e : max_err;
        }
    }
    printf("weight_files: %d of %d names found, max value error %g (tolerance 0)\n", found, N_MANY, max_err);
    CHECK(found == N_MANY && max_err == 0, "many: found %d, max error %g", found, max_err);
    dato_weight_files_close(&wf);

    // A sharded checkpoint: two shards and an index; the map order is the iteration order.
    join(sub, sizeof sub, dir, "sharded");
    CHECK(mkdir(sub, 0700) == 0, "mkdir %s", sub);
    const char* shard1[] = {"down.0.weight", "down.0.bias", "not_in_map"};
    const char* shard2[] = {"up.0.weight"};
    s = write_simple(join(path, sizeof path, sub, "model-00001-of-00002.safetensors"), shard1, 3, &err);
    CHECK(s == DATO_OK, "shard 1: %s", err.msg);
    s = write_simple(join(path, sizeof path, sub, "model-00002-of-00002.safetensors"), shard2, 1, &err);
    CHECK(s == DATO_OK, "shard 2: %s", err.msg);
    join(idx, sizeof idx, sub, "model.safetensors.index.json");
    write_text(idx, "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {\n"
                    "  \"down.0.weight\": \"model-00001-of-00002.safetensors\",\n"
                    "  \"up.0.weight\": \"model-00002-of-00002.safetensors\",\n"
                    "  \"down.0.bias\": \"model-00001-of-00002.safetensors\"}}\n");
    for (int via_dir = 0; via_dir < 2; via_dir++) {
        s = dato_weight_files_open(&wf, via_dir ? sub : idx, &err);
        CHECK(s == DATO_OK, "open index (via %s): %s", via_dir ? "dir" : "file", err.msg);
        CHECK(wf.n_files == 2 && dato_weight_files_count(&wf) == 3, "index: %d files, %d tensors", wf.n_files,
              dato_weight_files_count(&wf));
        const char* order[] = {"down.0.weight", "up.0.weight", "down.0.bias"};
        for (int i = 0; i < 3 && s == DATO_OK; i++) {
            const dato_st_tensor* t = dato_weight_files_tensor(&wf, i);
            CHECK(t && !strcmp(t->name, order[i]), "index order %d: %s", i, t ? t->name : "(null)");
        }
        const dato_st_tensor* up = dato_weight_files_find(&wf, "up.0.weight");
        const dato_st_tensor* bias = dato_weight_files_find(&wf, "down.0.bias");
        CHECK(up && has(up->path, "model-00002-of-00002"), "up.0.weight in %s", up ? up->path : "(null)");
        CHECK(bias && has(bias->path, "model-00001-of-00002"), "down.0.bias in %s", bias ? bias->path : "(null)");
        float got[2] = {0}, want[2] = {1.0f, 1.5f}; // down.0.bias is entry 1 of shard 1
        if (bias) dato_st_tensor_to_f32(bias, got, 2, &err);
        CHECK(test_max_abs_diff(got, want, 2) == 0, "down.0.bias = {%g, %g}", got[0], got[1]);
        CHECK(dato_weight_files_find(&wf, "not_in_map") == NULL, "a tensor outside the map was indexed");
        CHECK(via_dir == 0 || has(wf.path, "model.safetensors.index.json"), "dir resolved to %s", wf.path);
        dato_weight_files_close(&wf);
    }

    // Broken indexes.
    join(idx, sizeof idx, sub, "missing_name.safetensors.index.json");
    write_text(idx, "{\"weight_map\": {\"down.0.weight\": \"model-00001-of-00002.safetensors\","
                    " \"zz.weight\": \"model-00002-of-00002.safetensors\"}}");
    check_wf_fails(idx, DATO_ERR_NOT_FOUND, "'zz.weight'", "model-00002-of-00002.safetensors");
    join(idx, sizeof idx, sub, "missing_shard.safetensors.index.json");
    write_text(idx, "{\"weight_map\": {\"a\": \"model-00003-of-00003.safetensors\"}}");
    check_wf_fails(idx, DATO_ERR_IO, "model-00003-of-00003.safetensors", "cannot open");
    join(idx, sizeof idx, sub, "escape.safetensors.index.json");
    write_text(idx, "{\"weight_map\": {\"a\": \"../ref.safetensors\"}}");
    check_wf_fails(idx, DATO_ERR_FORMAT, "weight_map['a']", "escape.safetensors.index.json");
    join(idx, sizeof idx, sub, "absolute.safetensors.index.json");
    write_text(idx, "{\"weight_map\": {\"a\": \"/etc/passwd\"}}");
    check_wf_fails(idx, DATO_ERR_FORMAT, "weight_map['a']", NULL);
    join(idx, sizeof idx, sub, "no_map.safetensors.index.json");
    write_text(idx, "{\"metadata\": {}}");
    check_wf_fails(idx, DATO_ERR_FORMAT, "no \"weight_map\" object", "no_map.safetensors.index.json");
    join(idx, sizeof idx, sub, "not_string.safetensors.index.json");
    write_text(idx, "{\"weight_map\": {\"a\": 3}}");
    check_wf_fails(idx, DATO_ERR_FORMAT, "weight_map['a']", NULL);
    join(idx, sizeof idx, sub, "twice.safetensors.index.json");
    write_text(idx, "{\"weight_map\": {\"up.0.weight\": \"model-00002-of-00002.safetensors\","
                    " \"up.0.weight\": \"model-00002-of-00002.safetensors\"}}");
    check_wf_fails(idx, DATO_ERR_FORMAT, "'up.0.weight' is listed twice", "twice.safetensors.index.json");
    join(idx, sizeof idx, sub, "garbage.safetensors.index.json");
    write_text(idx, "{\"weight_map\": ");
    check_wf_fails(idx, DATO_ERR_FORMAT, "not a JSON object", "garbage.safetensors.index.json");

    // Directory lookup.
    const char* one[] = {"conv.weight"};
    join(sub, sizeof sub, dir, "unet");
    CHECK(mkdir(sub, 0700) == 0, "mkdir %s", sub);
    check_wf_fails(sub, DATO_ERR_NOT_FOUND, "no diffusion_pytorch_model.safetensors", sub);
    write_simple(join(path, sizeof path, sub, "diffusion_pytorch_model.fp16.safetensors"), one, 1, &err);
    s = dato_weight_files_open(&wf, sub, &err);
    CHECK(s == DATO_OK && wf.path && has(wf.path, "diffusion_pytorch_model.fp16.safetensors"),
          "fp16 only: %s", s == DATO_OK ? wf.path : err.msg);
    dato_weight_files_close(&wf);
    write_simple(join(path, sizeof path, sub, "diffusion_pytorch_model.safetensors"), one, 1, &err);
    s = dato_weight_files_open(&wf, sub, &err);
    CHECK(s == DATO_OK && wf.path && ends_with_str(wf.path, "/diffusion_pytorch_model.safetensors"),
          "full + fp16: %s", s == DATO_OK ? wf.path : err.msg);
    CHECK(s != DATO_OK || dato_weight_files_find(&wf, "conv.weight") != NULL, "conv.weight");
    dato_weight_files_close(&wf);
    write_simple(join(path, sizeof path, sub, "model.safetensors"), one, 1, &err);
    check_wf_fails(sub, DATO_ERR_FORMAT, "holds both", "model.safetensors");
    check_wf_fails(join(path, sizeof path, dir, "nothing_here"), DATO_ERR_IO, "cannot open", "nothing_here");
    // A broken shard is reported with the shard's own name.
    check_wf_fails(join(path, sizeof path, dir, "overlap"), DATO_ERR_FORMAT, "overlap", "'a'");
}

// Resident pages of this process (/proc/self/statm's second field), or -1.
static long resident_pages(void) {
    long size = -1, resident = -1;
    FILE* f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
        fclose(f);
    }
    return resident;
}

// dato_safetensors_release: a 1 MiB tensor between two small ones, at an offset that is not a page
// boundary. Read, its pages leave the process when released (statm's resident count drops by
// nearly its 256 pages), and every tensor reads back the same values after, the neighbours
// sharing its first and last pages included; through dato_weight_files too; a parsed buffer's
// tensors (no mapping) are left alone.
static void test_release(const char* dir) {
    enum { BIG = 1 << 18 }; // floats: 1 MiB
    char path[512];
    join(path, sizeof path, dir, "release.safetensors");
    static float big[BIG], small_a[37], small_c[53];
    for (int i = 0; i < BIG; i++) big[i] = (float)i * 0.5f - 7.0f;
    for (int i = 0; i < 37; i++) small_a[i] = (float)i + 0.25f;
    for (int i = 0; i < 53; i++) small_c[i] = -(float)i;
    const dato_st_write_entry entries[] = {
        {"a", DATO_F32, 1, (const int64_t[]){37}, small_a},
        {"big", DATO_F32, 1, (const int64_t[]){BIG}, big},
        {"c", DATO_F32, 1, (const int64_t[]){53}, small_c},
    };
    dato_error err = {{0}};
    CHECK(dato_safetensors_write(path, entries, 3, NULL, &err) == DATO_OK, "write: %s", err.msg);
    dato_safetensors st;
    if (dato_safetensors_open(&st, path, &err) != DATO_OK) {
        CHECK(0, "open: %s", err.msg);
        return;
    }
    const dato_st_tensor* t[3] = {dato_safetensors_find(&st, "a"), dato_safetensors_find(&st, "big"),
                                  dato_safetensors_find(&st, "c")};
    static float got[BIG];
    CHECK(t[0] && t[1] && t[2], "the three tensors are there");
    if (!t[0] || !t[1] || !t[2]) return;
    long before = resident_pages();
    CHECK(dato_st_tensor_to_f32(t[1], got, BIG, &err) == DATO_OK, "read big: %s", err.msg); // every page touched
    long touched = resident_pages();
    dato_safetensors_release(&st, t[1]);
    long released = resident_pages();
    printf("release: resident pages %ld, %ld after reading the 256-page tensor, %ld after releasing it\n", before,
           touched, released);
    CHECK(touched - released >= 250, "releasing a read 1 MiB tensor frees its pages: %ld -> %ld", touched, released);
    const float* want[3] = {small_a, big, small_c};
    size_t count[3] = {37, BIG, 53};
    for (int pass = 0; pass < 2; pass++) { // after the release, then after releasing all three through wf
        for (int k = 0; k < 3; k++) {
            CHECK(dato_st_tensor_to_f32(t[k], got, count[k], &err) == DATO_OK, "read: %s", err.msg);
            CHECK(memcmp(got, want[k], count[k] * sizeof(float)) == 0, "pass %d: tensor %s reads back the same", pass,
                  t[k]->name);
        }
        dato_weight_files wf;
        CHECK(dato_weight_files_open(&wf, path, &err) == DATO_OK, "wf open: %s", err.msg);
        for (int k = 0; k < 3; k++) dato_weight_files_release(&wf, dato_weight_files_find(&wf, t[k]->name));
        const dato_st_tensor* b = dato_weight_files_find(&wf, "big");
        CHECK(b && dato_st_tensor_to_f32(b, got, BIG, &err) == DATO_OK && memcmp(got, big, sizeof big) == 0,
              "big through weight files after its release");
        dato_weight_files_close(&wf);
    }
    dato_safetensors_release(&st, &(dato_st_tensor){.data = small_a, .nbytes = sizeof small_a}); // not in the file
    CHECK(small_a[36] == 36.25f, "a tensor outside the mapping is left alone");
    dato_safetensors_close(&st);
}

int main(void) {
    char dir[] = "/tmp/dato_test_safetensors_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip(dir);
    test_dtypes(dir);
    test_hostile(dir);
    test_writer_errors(dir);
    test_weight_files(dir);
    test_release(dir);
    remove_tree(dir);
    return test_summary();
}
