// The CLIP BPE tokenizer: see tokenizer.h and docs/TOKENIZER.md for the rules it reproduces.
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <limits.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "file_util.h"

#define TABLE_MAX_BYTES (64u << 20) // vocab.json, merges.txt, tokenizer.json
#define CONFIG_MAX_BYTES (4u << 20)
#define DEFAULT_MAX_LEN 77
#define MAX_SPECIALS 16
#define SPECIAL_MAX_BYTES 64
// The word cache is direct-mapped: a fixed table, a new word evicts the one in its slot, so its
// memory (WORD_CACHE_SLOTS * ~90 bytes = 360 KiB) is planned at open and never grows.
#define WORD_CACHE_SLOTS 4096
#define WORD_CACHE_KEY_BYTES 32
#define WORD_CACHE_MAX_IDS 12

typedef struct {
    char content[SPECIAL_MAX_BYTES];
    int len;
    int32_t id;
    bool normalized; // matched in the normalized text (true) or in the raw text (false)
} special_token;

typedef struct {
    uint32_t offset; // into strings
    uint32_t len;
    int32_t id; // -1: empty slot
} vocab_slot;

typedef struct {
    uint64_t pair; // (left id << 32) | right id
    int32_t rank;  // -1: empty slot
    int32_t merged;
} merge_slot;

typedef struct {
    uint8_t key_len; // 0: empty slot
    uint8_t n_ids;
    char key[WORD_CACHE_KEY_BYTES];
    int32_t ids[WORD_CACHE_MAX_IDS];
} word_cache_slot;

struct dato_tokenizer {
    char* strings; // the vocabulary's tokens, NUL-separated
    vocab_slot* vocab;
    uint32_t vocab_mask;
    int vocab_size;
    merge_slot* merges;
    uint32_t merges_mask;
    int32_t byte_id[256];     // the byte symbol of each byte
    int32_t byte_end_id[256]; // the same + "</w>", for the last byte of a word
    special_token specials[MAX_SPECIALS];
    int n_specials;
    int32_t bos, eos, pad;
    int max_len;
    pcre2_code* split;
    pcre2_match_data* match;
    word_cache_slot* cache; // (WORD_CACHE_SLOTS)
    // encode scratch
    int32_t* content; // (max_len - 2) content ids of the prompt being encoded
    int n_content;    // content ids seen so far (may pass max_len - 2: the rest are dropped)
    int32_t* scratch; // BPE work space of one word of up to scratch_cap bytes, see grow_scratch
    size_t scratch_cap;
};

static uint32_t hash_bytes(const char* s, size_t n) {
    uint32_t h = 2166136261u; // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_pair(uint64_t pair) {
    pair ^= pair >> 33;
    pair *= 0xff51afd7ed558ccdull;
    pair ^= pair >> 33;
    return (uint32_t)pair;
}

static int32_t vocab_find(const dato_tokenizer* t, const char* s, size_t n) {
    for (uint32_t i = hash_bytes(s, n) & t->vocab_mask;; i = (i + 1) & t->vocab_mask) {
        const vocab_slot* slot = &t->vocab[i];
        if (slot->id < 0) return -1;
        if (slot->len == n && memcmp(t->strings + slot->offset, s, n) == 0) return slot->id;
    }
}

static const merge_slot* merge_find(const dato_tokenizer* t, int32_t left, int32_t right) {
    uint64_t pair = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint32_t i = hash_pair(pair) & t->merges_mask;; i = (i + 1) & t->merges_mask) {
        const merge_slot* slot = &t->merges[i];
        if (slot->rank < 0) return NULL;
        if (slot->pair == pair) return slot;
    }
}

static uint32_t table_size_for(size_t n) {
    uint32_t size = 16;
    while (size < 2 * n) size *= 2;
    return size;
}

// 1-based line of byte offset `at` in text.
static int line_of(const char* text, const char* at) {
    int line = 1;
    for (const char* p = text; p < at && *p; p++) line += *p == '\n';
    return line;
}

// Reads a file that must hold one JSON object. The text is freed as soon as it is parsed, so the
// tree is the only copy (tokenizer.json of the real vocabulary is 3.6 MB).
static dato_status parse_json_file(const char* path, size_t max_bytes, cJSON** out, dato_error* err) {
    *out = NULL;
    char* text;
    dato_status st = dato_read_text_file(path, &text, max_bytes, err);
    if (st != DATO_OK) return st;
    const char* end = NULL;
    cJSON* root = cJSON_ParseWithOpts(text, &end, 0);
    int line = !root && end ? line_of(text, end) : 0;
    free(text);
    if (!root) return dato_fail(err, DATO_ERR_FORMAT, "%s:%d: invalid JSON", path, line);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dato_fail(err, DATO_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    *out = root;
    return DATO_OK;
}

// GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other 68
// bytes for U+0100 + n in byte order. Writes the UTF-8 of byte b's symbol into out (NUL-ended).
static void byte_symbol(int b, char out[3]) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int c = 0; c < b; c++) n += !((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF));
        cp = 256 + n;
    }
    utf8proc_ssize_t len = utf8proc_encode_char(cp, (utf8proc_uint8_t*)out);
    out[len] = 0;
}

// The vocabulary from a JSON object of token -> id (vocab.json, or tokenizer.json's model.vocab;
// `where` names it in messages), then the 512 byte symbols every word starts from. A repeated key
// keeps its last id, as a JSON object read into a map does.
static dato_status build_vocab(dato_tokenizer* t, const cJSON* vocab, const char* where, dato_error* err) {
    if (!cJSON_IsObject(vocab))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: expected a JSON object of token -> id", where);
    size_t n = 0, bytes = 0;
    for (const cJSON* item = vocab->child; item; item = item->next) n++, bytes += strlen(item->string) + 1;
    if (n == 0 || n > (1u << 24))
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %zu entries (expected 1 .. 2^24)", where, n);
    t->strings = malloc(bytes);
    t->vocab_mask = table_size_for(n) - 1;
    t->vocab = malloc((size_t)(t->vocab_mask + 1) * sizeof(vocab_slot));
    if (!t->strings || !t->vocab) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate the vocabulary", where);
    for (uint32_t i = 0; i <= t->vocab_mask; i++) t->vocab[i].id = -1;
    size_t offset = 0;
    int max_id = -1;
    for (const cJSON* item = vocab->child; item; item = item->next) {
        double v = item->valuedouble;
        if (!cJSON_IsNumber(item) || v < 0 || v >= (double)(1 << 24) || v != (double)(int32_t)v)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: token '%.64s': id is not an integer in [0, 2^24)", where,
                             item->string);
        size_t len = strlen(item->string);
        memcpy(t->strings + offset, item->string, len + 1);
        uint32_t i = hash_bytes(item->string, len) & t->vocab_mask;
        while (t->vocab[i].id >= 0 &&
               !(t->vocab[i].len == len && memcmp(t->strings + t->vocab[i].offset, item->string, len) == 0))
            i = (i + 1) & t->vocab_mask;
        t->vocab[i] = (vocab_slot){(uint32_t)offset, (uint32_t)len, (int32_t)v};
        offset += len + 1;
        max_id = (int)v > max_id ? (int)v : max_id;
    }
    t->vocab_size = max_id + 1;
    for (int b = 0; b < 256; b++) {
        char symbol[3], with_end[8];
        byte_symbol(b, symbol);
        snprintf(with_end, sizeof with_end, "%s</w>", symbol);
        t->byte_id[b] = vocab_find(t, symbol, strlen(symbol));
        t->byte_end_id[b] = vocab_find(t, with_end, strlen(with_end));
        if (t->byte_id[b] < 0 || t->byte_end_id[b] < 0)
            return dato_fail(err, DATO_ERR_FORMAT, "%s: byte 0x%02x: symbol '%s' or '%s' missing", where, b, symbol,
                             with_end);
    }
    return DATO_OK;
}

static dato_status alloc_merges(dato_tokenizer* t, size_t n, const char* path, dato_error* err) {
    t->merges_mask = table_size_for(n) - 1;
    t->merges = malloc((size_t)(t->merges_mask + 1) * sizeof(merge_slot));
    if (!t->merges) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate the merge table", path);
    for (uint32_t i = 0; i <= t->merges_mask; i++) t->merges[i].rank = -1;
    return DATO_OK;
}

// A merge written as text (a merges.txt line, a tokenizer.json string) is "left right": one space,
// at neither end. Returns the length of left, or 0 if s is not of that form.
static size_t merge_split(const char* s) {
    const char* space = strchr(s, ' ');
    return space && space != s && space[1] && !strchr(space + 1, ' ') ? (size_t)(space - s) : 0;
}

// Names a merge in messages: "merges.txt:line" (field NULL) or "tokenizer.json: model.merges[index]".
static const char* merge_at(char* buf, size_t n, const char* path, const char* field, int index) {
    if (field) snprintf(buf, n, "%s: %s[%d]", path, field, index);
    else snprintf(buf, n, "%s:%d", path, index);
    return buf;
}

// Adds merge (left, right) at the given rank; left, right and left+right must all be in the
// vocabulary. A repeated pair takes its later rank, as tokenizers' merge map does.
static dato_status add_merge(dato_tokenizer* t, const char* left, size_t left_len, const char* right,
                             size_t right_len, int32_t rank, const char* path, const char* field, int index,
                             dato_error* err) {
    char merged[512], at[4352];
    if (left_len + right_len >= sizeof merged)
        return dato_fail(err, DATO_ERR_FORMAT, "%s: merge longer than %zu bytes",
                         merge_at(at, sizeof at, path, field, index), sizeof merged - 1);
    memcpy(merged, left, left_len);
    memcpy(merged + left_len, right, right_len);
    int32_t left_id = vocab_find(t, left, left_len), right_id = vocab_find(t, right, right_len);
    int32_t merged_id = vocab_find(t, merged, left_len + right_len);
    if (left_id < 0 || right_id < 0 || merged_id < 0) {
        const char* missing = left_id < 0 ? left : right_id < 0 ? right : merged;
        size_t missing_len = left_id < 0 ? left_len : right_id < 0 ? right_len : left_len + right_len;
        return dato_fail(err, DATO_ERR_FORMAT, "%s: token '%.*s' is not in the vocabulary",
                         merge_at(at, sizeof at, path, field, index), (int)(missing_len < 80 ? missing_len : 80),
                         missing);
    }
    uint64_t pair = ((uint64_t)(uint32_t)left_id << 32) | (uint32_t)right_id;
    uint32_t i = hash_pair(pair) & t->merges_mask;
    while (t->merges[i].rank >= 0 && t->merges[i].pair != pair) i = (i + 1) & t->merges_mask;
    t->merges[i] = (merge_slot){pair, rank, merged_id};
    return DATO_OK;
}

// merges.txt: tokenizers skips a "#version" first line and empty lines; every other line is a merge.
static dato_status load_merges_txt(dato_tokenizer* t, const char* path, dato_error* err) {
    char* text;
    dato_status st = dato_read_text_file(path, &text, TABLE_MAX_BYTES, err);
    if (st != DATO_OK) return st;
    size_t n_lines = 1;
    for (const char* p = text; *p; p++) n_lines += *p == '\n';
    st = alloc_merges(t, n_lines, path, err);
    int rank = 0, line = 0;
    char* next;
    for (char* p = text; st == DATO_OK && *p; p = next) {
        line++;
        char* end = strchr(p, '\n');
        next = end ? end + 1 : p + strlen(p);
        if (end) *end = 0;
        if (*p == 0 || (line == 1 && strncmp(p, "#version", 8) == 0)) continue;
        size_t left_len = merge_split(p);
        if (left_len == 0)
            st = dato_fail(err, DATO_ERR_FORMAT, "%s:%d: expected two tokens separated by one space, got '%.80s'",
                           path, line, p);
        else
            st = add_merge(t, p, left_len, p + left_len + 1, strlen(p + left_len + 1), rank++, path, NULL, line, err);
    }
    free(text);
    return st;
}

// tokenizer.json's model.merges: "left right" strings (tokenizers before 0.20) or [left, right] pairs.
static dato_status load_merges_json(dato_tokenizer* t, const cJSON* merges, const char* path, dato_error* err) {
    if (!cJSON_IsArray(merges)) return dato_fail(err, DATO_ERR_FORMAT, "%s: model.merges: expected an array", path);
    DATO_TRY(alloc_merges(t, (size_t)cJSON_GetArraySize(merges), path, err));
    int rank = 0;
    for (const cJSON* m = merges->child; m; m = m->next, rank++) {
        const cJSON *left = cJSON_GetArrayItem(m, 0), *right = cJSON_GetArrayItem(m, 1);
        size_t left_len = cJSON_IsString(m) ? merge_split(m->valuestring) : 0;
        if (left_len > 0) {
            const char* r = m->valuestring + left_len + 1;
            DATO_TRY(add_merge(t, m->valuestring, left_len, r, strlen(r), rank, path, "model.merges", rank, err));
        } else if (cJSON_GetArraySize(m) == 2 && cJSON_IsString(left) && cJSON_IsString(right)) {
            DATO_TRY(add_merge(t, left->valuestring, strlen(left->valuestring), right->valuestring,
                               strlen(right->valuestring), rank, path, "model.merges", rank, err));
        } else {
            return dato_fail(err, DATO_ERR_FORMAT, "%s: model.merges[%d]: expected \"left right\" or [left, right]",
                             path, rank);
        }
    }
    return DATO_OK;
}

// ---- tokenizer.json: is it CLIP's BPE? ----

// The item at a dotted path of object keys ("model.type"), or NULL.
static const cJSON* json_at(const cJSON* item, const char* path) {
    char key[64];
    while (item && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key) return NULL;
        memcpy(key, path, n), key[n] = 0;
        item = cJSON_GetObjectItemCaseSensitive(item, key);
        path += n + (path[n] == '.');
    }
    return item;
}

// Whether got holds want: every key of a wanted object (got may have more, such as trim_offsets),
// arrays item by item with the same length, any other value equal. On a mismatch, path (the field
// so far, size bytes) is extended to the first item that differs, and *got_at / *want_at point there.
static bool json_holds(const cJSON* got, const cJSON* want, char* path, size_t size, const cJSON** got_at,
                       const cJSON** want_at) {
    *got_at = got, *want_at = want;
    bool object = cJSON_IsObject(want) && cJSON_IsObject(got);
    bool array = cJSON_IsArray(want) && cJSON_IsArray(got) && cJSON_GetArraySize(got) == cJSON_GetArraySize(want);
    if (!object && !array)
        return got && !cJSON_IsObject(want) && !cJSON_IsArray(want) && cJSON_Compare(got, want, true);
    size_t len = strlen(path);
    int i = 0;
    for (const cJSON* w = want->child; w; w = w->next, i++) {
        if (object) snprintf(path + len, size - len, ".%s", w->string);
        else snprintf(path + len, size - len, "[%d]", i);
        if (!json_holds(object ? cJSON_GetObjectItemCaseSensitive(got, w->string) : cJSON_GetArrayItem(got, i), w, path,
                        size, got_at, want_at))
            return false;
    }
    path[len] = 0;
    return true;
}

// CLIP's split pattern as tokenizer.json spells it: transformers 5 writes the two special-token
// alternatives in front, 4.x's converter did not.
#define CLIP_PRE_TOKENIZER(specials)                                                                         \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" specials        \
    "'s|'t|'re|'ve|'m|'ll|'d|[\\\\p{L}]+|[\\\\p{N}]|[^\\\\s\\\\p{L}\\\\p{N}]+\"},\"behavior\":\"Removed\","   \
    "\"invert\":true},{\"type\":\"ByteLevel\",\"add_prefix_space\":false}]}"

// What encode implements, as JSON values a tokenizer.json may hold (written by transformers' CLIP
// converter, 4.x or 5.x). transformers 5's CLIPTokenizer keeps only the vocabulary, merges and
// added tokens of the file and rebuilds the rest as CLIP's, so both split patterns tokenize alike
// there; these rows refuse a file that describes another tokenizer.
static const struct {
    const char* field;
    const char* accepted[2]; // JSON values; an object needs only the keys listed
    bool optional;           // a missing field is fine (tokenizers' default is the accepted value)
    const char* what;        // for messages
} clip_fields[] = {
    {"model.type", {"\"BPE\""}, false, "a BPE model"},
    {"model.end_of_word_suffix", {"\"</w>\""}, false, "\"</w>\" on the last symbol of a word"},
    {"model.continuing_subword_prefix", {"\"\"", "null"}, true, "no subword prefix"},
    {"normalizer",
     {"{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},"
      "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"},{\"type\":\"Lowercase\"}]}"},
     false, "NFC, white space runs to \" \", lowercase"},
    {"pre_tokenizer", {CLIP_PRE_TOKENIZER("<\\\\|startoftext\\\\|>|<\\\\|endoftext\\\\|>|"), CLIP_PRE_TOKENIZER("")},
     false, "a split on CLIP's pattern, then ByteLevel without a prefix space"},
};

static dato_status check_clip_bpe(const cJSON* root, const char* path, dato_error* err) {
    for (size_t r = 0; r < sizeof clip_fields / sizeof clip_fields[0]; r++) {
        const char* field = clip_fields[r].field;
        const cJSON* got = json_at(root, field);
        if (!got && clip_fields[r].optional) continue;
        // A mismatch is reported where the first accepted value differs.
        char at[256], other_at[256];
        const cJSON *got_at, *want_at, *other_got, *other_want;
        cJSON* want = cJSON_Parse(clip_fields[r].accepted[0]);
        snprintf(at, sizeof at, "%s", field);
        bool ok = json_holds(got, want, at, sizeof at, &got_at, &want_at);
        if (!ok && clip_fields[r].accepted[1]) {
            cJSON* other = cJSON_Parse(clip_fields[r].accepted[1]);
            snprintf(other_at, sizeof other_at, "%s", field);
            ok = json_holds(got, other, other_at, sizeof other_at, &other_got, &other_want);
            cJSON_Delete(other);
        }
        if (!ok) {
            char* got_text = got_at ? cJSON_PrintUnformatted(got_at) : NULL;
            char* want_text = want_at ? cJSON_PrintUnformatted(want_at) : NULL;
            dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %s is %.100s; expected %.160s (CLIP's byte-level BPE: %s)", path,
                      at, got_at ? (got_text ? got_text : "?") : "missing", want_text ? want_text : "?",
                      clip_fields[r].what);
            cJSON_free(got_text);
            cJSON_free(want_text);
        }
        cJSON_Delete(want);
        if (!ok) return DATO_ERR_UNSUPPORTED;
    }
    return DATO_OK;
}

// ---- special tokens (transformers 5.x from_pretrained rules, see docs/TOKENIZER.md) ----

enum { ATTR_BOS, ATTR_EOS, ATTR_UNK, ATTR_SEP, ATTR_PAD, ATTR_CLS, ATTR_MASK, N_ATTRS };
static const char* const attr_names[N_ATTRS] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                "pad_token", "cls_token", "mask_token"};

typedef struct {
    bool set;
    char content[SPECIAL_MAX_BYTES];
    bool normalized;
} token_spec;

// A token given as a string (normalized false) or as an AddedToken dict. A dict's "normalized"
// defaults to !special, and special defaults to false in tokenizer_config.json and true in
// special_tokens_map.json.
static dato_status parse_token_spec(const cJSON* item, bool special_default, const char* path, const char* key,
                                    token_spec* out, dato_error* err) {
    if (!item || cJSON_IsNull(item)) return DATO_OK;
    const char* content = NULL;
    bool normalized = false;
    if (cJSON_IsString(item)) {
        content = item->valuestring;
    } else if (cJSON_IsObject(item)) {
        const cJSON* c = cJSON_GetObjectItemCaseSensitive(item, "content");
        if (!cJSON_IsString(c)) return dato_fail(err, DATO_ERR_FORMAT, "%s: %s: missing string 'content'", path, key);
        content = c->valuestring;
        const cJSON* special = cJSON_GetObjectItemCaseSensitive(item, "special");
        bool is_special = special ? cJSON_IsTrue(special) : special_default;
        const cJSON* norm = cJSON_GetObjectItemCaseSensitive(item, "normalized");
        normalized = norm ? cJSON_IsTrue(norm) : !is_special;
        static const char* const unsupported[] = {"lstrip", "rstrip", "single_word"};
        for (int i = 0; i < 3; i++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, unsupported[i])))
                return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %s: %s true is not supported", path, key,
                                 unsupported[i]);
    } else {
        return dato_fail(err, DATO_ERR_FORMAT, "%s: %s: expected a string or an AddedToken object", path, key);
    }
    size_t len = strlen(content);
    if (len == 0 || len >= SPECIAL_MAX_BYTES)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %s: content of %zu bytes (1 .. %d supported)", path, key,
                         len, SPECIAL_MAX_BYTES - 1);
    out->set = true;
    memcpy(out->content, content, len + 1);
    out->normalized = normalized;
    return DATO_OK;
}

// Adds a special token; the same content added again takes the later flags (tokenizers' add_tokens).
static dato_status add_special(dato_tokenizer* t, const token_spec* spec, const char* source, dato_error* err) {
    int len = (int)strlen(spec->content);
    int32_t id = vocab_find(t, spec->content, (size_t)len);
    if (id < 0)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: special token '%s' is not in the vocabulary", source,
                         spec->content);
    for (int i = 0; i < t->n_specials; i++)
        if (strcmp(t->specials[i].content, spec->content) == 0) {
            t->specials[i].normalized = spec->normalized;
            return DATO_OK;
        }
    if (t->n_specials == MAX_SPECIALS)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: more than %d special tokens", source, MAX_SPECIALS);
    special_token* s = &t->specials[t->n_specials++];
    memcpy(s->content, spec->content, (size_t)len + 1);
    s->len = len;
    s->id = id;
    s->normalized = spec->normalized;
    return DATO_OK;
}

// An optional config file: *out stays NULL when it does not exist.
static dato_status read_json(const char* path, cJSON** out, dato_error* err) {
    *out = NULL;
    return dato_is_file(path) ? parse_json_file(path, CONFIG_MAX_BYTES, out, err) : DATO_OK;
}

// added_tokens: tokenizer.json's list of added tokens (NULL without one); source names that file.
static dato_status load_specials(dato_tokenizer* t, const char* config_dir, const cJSON* added_tokens,
                                 const char* source, dato_error* err) {
    char config_path[4096] = "(defaults)", map_path[4096] = "(defaults)";
    cJSON *config = NULL, *map = NULL;
    dato_status st = DATO_OK;
    if (config_dir) {
        if ((st = dato_path_join(config_path, sizeof config_path, config_dir, "tokenizer_config.json", err)) ||
            (st = dato_path_join(map_path, sizeof map_path, config_dir, "special_tokens_map.json", err)) ||
            (st = read_json(config_path, &config, err)) || (st = read_json(map_path, &map, err)))
            goto done;
    }
    // CLIPTokenizer's constructor defaults, then tokenizer_config.json, then (only when the config
    // has no added_tokens_decoder) special_tokens_map.json on top.
    token_spec attrs[N_ATTRS] = {0};
    const char* defaults[N_ATTRS] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>", NULL, "<|endoftext|>"};
    for (int a = 0; a < N_ATTRS; a++)
        if (defaults[a]) attrs[a].set = true, strcpy(attrs[a].content, defaults[a]);
    const cJSON* decoder = config ? cJSON_GetObjectItemCaseSensitive(config, "added_tokens_decoder") : NULL;
    const cJSON* sources[2] = {config, decoder ? NULL : map};
    const char* source_paths[2] = {config_path, map_path};
    for (int s = 0; s < 2; s++) {
        if (!sources[s]) continue;
        for (int a = 0; a < N_ATTRS; a++) {
            const cJSON* item = cJSON_GetObjectItemCaseSensitive(sources[s], attr_names[a]);
            if (item && (st = parse_token_spec(item, s == 1, source_paths[s], attr_names[a], &attrs[a], err))) goto done;
        }
        static const char* const extras[] = {"additional_special_tokens", "extra_special_tokens"};
        for (int e = 0; e < 2; e++) {
            const cJSON* item = cJSON_GetObjectItemCaseSensitive(sources[s], extras[e]);
            if (item && cJSON_GetArraySize(item) > 0) {
                st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %s is not supported", source_paths[s], extras[e]);
                goto done;
            }
        }
    }
    // The added tokens come first; a named token with the same content takes their flags. They are
    // the config's added_tokens_decoder ({"id": AddedToken}) or, without one, tokenizer.json's
    // added_tokens ([{"id", "content", ...}]), as from_pretrained reads them.
    const cJSON* added = decoder ? decoder : added_tokens;
    const char* added_path = decoder ? config_path : source;
    const char* added_key = decoder ? "added_tokens_decoder" : "added_tokens";
    for (const cJSON* item = added ? added->child : NULL; item; item = item->next) {
        const cJSON* id_item = cJSON_GetObjectItemCaseSensitive(item, "id");
        double json_id = cJSON_IsNumber(id_item) ? id_item->valuedouble : -1;
        long id = decoder ? strtol(item->string, NULL, 10) : json_id >= 0 && json_id < (1 << 24) ? (long)json_id : -1;
        token_spec spec = {0};
        if ((st = parse_token_spec(item, false, added_path, added_key, &spec, err)) ||
            (st = add_special(t, &spec, added_path, err)))
            goto done;
        if (vocab_find(t, spec.content, strlen(spec.content)) != id) {
            st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: %s: token '%s' has id %ld, not its vocabulary id",
                           added_path, added_key, spec.content, id);
            goto done;
        }
        for (int a = 0; a < N_ATTRS; a++)
            if (attrs[a].set && strcmp(attrs[a].content, spec.content) == 0) attrs[a].normalized = spec.normalized;
    }
    for (int a = 0; a < N_ATTRS; a++)
        if (attrs[a].set && (st = add_special(t, &attrs[a], config_path, err))) goto done;
    const char* missing = !attrs[ATTR_BOS].set ? "bos_token" : !attrs[ATTR_EOS].set ? "eos_token" : !attrs[ATTR_PAD].set ? "pad_token" : NULL;
    if (missing) {
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: %s is null", config_path, missing);
        goto done;
    }
    t->bos = vocab_find(t, attrs[ATTR_BOS].content, strlen(attrs[ATTR_BOS].content));
    t->eos = vocab_find(t, attrs[ATTR_EOS].content, strlen(attrs[ATTR_EOS].content));
    t->pad = vocab_find(t, attrs[ATTR_PAD].content, strlen(attrs[ATTR_PAD].content));
    t->max_len = DEFAULT_MAX_LEN;
    const cJSON* max_len = config ? cJSON_GetObjectItemCaseSensitive(config, "model_max_length") : NULL;
    if (max_len) {
        double v = max_len->valuedouble;
        if (!cJSON_IsNumber(max_len) || v < 2 || v > 65536 || v != (double)(int)v) {
            st = dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: model_max_length must be an integer in [2, 65536]",
                           config_path);
            goto done;
        }
        t->max_len = (int)v;
    }
done:
    cJSON_Delete(config);
    cJSON_Delete(map);
    return st;
}

static dato_status grow_scratch(dato_tokenizer* t, size_t n, dato_error* err);

// The rest of open, whichever file gave the vocabulary and merges (source names it): the special
// tokens, the split pattern and the encode buffers.
static dato_status finish_open(dato_tokenizer* t, const char* source, const char* config_dir, const cJSON* added_tokens,
                               dato_error* err) {
    DATO_TRY(load_specials(t, config_dir, added_tokens, source, err));
    // CLIP's split pattern, case-sensitive as in tokenizers (the text is lowercased already; a
    // caseless match would also take "'ſ" as "'s"). The text has no white space left but " "
    // (normalization replaced every White_Space run), so " " stands for \s: PCRE2's \s differs
    // from Oniguruma's (U+180E).
    static const char pattern[] =
        "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^ \\p{L}\\p{N}]+";
    int code;
    PCRE2_SIZE at;
    t->split = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
    t->match = t->split ? pcre2_match_data_create_from_pattern(t->split, NULL) : NULL;
    t->cache = calloc(WORD_CACHE_SLOTS, sizeof(word_cache_slot));
    t->content = malloc((size_t)t->max_len * sizeof(int32_t));
    if (!t->split || !t->match || !t->cache || !t->content || grow_scratch(t, 256, err) != DATO_OK)
        return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot set up the split pattern and buffers", source);
    return DATO_OK;
}

static dato_status load_vocab_merges(dato_tokenizer* t, const char* vocab_path, const char* merges_path,
                                     const char* config_dir, dato_error* err) {
    cJSON* vocab;
    DATO_TRY(parse_json_file(vocab_path, TABLE_MAX_BYTES, &vocab, err));
    dato_status st = build_vocab(t, vocab, vocab_path, err);
    cJSON_Delete(vocab);
    if (st == DATO_OK) st = load_merges_txt(t, merges_path, err);
    return st ? st : finish_open(t, vocab_path, config_dir, NULL, err);
}

// tokenizer.json: CLIP's BPE (checked), its model's vocab and merges, its added_tokens.
static dato_status load_tokenizer_json(dato_tokenizer* t, const char* path, const char* config_dir, dato_error* err) {
    cJSON* root;
    DATO_TRY(parse_json_file(path, TABLE_MAX_BYTES, &root, err));
    const cJSON* model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON* added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    char where[4224];
    snprintf(where, sizeof where, "%s: model.vocab", path);
    dato_status st = check_clip_bpe(root, path, err);
    if (st == DATO_OK) st = build_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), where, err);
    if (st == DATO_OK) st = load_merges_json(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path, err);
    if (st == DATO_OK && added && !cJSON_IsArray(added))
        st = dato_fail(err, DATO_ERR_FORMAT, "%s: added_tokens: expected an array", path);
    if (st == DATO_OK) st = finish_open(t, path, config_dir, added, err);
    cJSON_Delete(root);
    return st;
}

// From vocab_path + merges_path, or from json_path when it is not NULL.
static dato_status open_from(dato_tokenizer** out, const char* vocab_path, const char* merges_path,
                             const char* json_path, const char* config_dir, dato_error* err) {
    *out = NULL;
    const char* source = json_path ? json_path : vocab_path;
    dato_tokenizer* t = calloc(1, sizeof *t);
    if (!t) return dato_fail(err, DATO_ERR_NOMEM, "%s: cannot allocate the tokenizer", source);
    dato_status st = json_path ? load_tokenizer_json(t, json_path, config_dir, err)
                               : load_vocab_merges(t, vocab_path, merges_path, config_dir, err);
    if (st != DATO_OK) {
        dato_tokenizer_free(t);
        return st;
    }
    *out = t;
    return DATO_OK;
}

dato_status dato_tokenizer_open_files(dato_tokenizer** out, const char* vocab_path, const char* merges_path,
                                      const char* config_dir, dato_error* err) {
    return open_from(out, vocab_path, merges_path, NULL, config_dir, err);
}

dato_status dato_tokenizer_open(dato_tokenizer** out, const char* dir, dato_error* err) {
    *out = NULL;
    char vocab[4096], merges[4096], json[4096];
    dato_status st;
    if ((st = dato_path_join(vocab, sizeof vocab, dir, "vocab.json", err)) ||
        (st = dato_path_join(merges, sizeof merges, dir, "merges.txt", err)) ||
        (st = dato_path_join(json, sizeof json, dir, "tokenizer.json", err)))
        return st;
    // A folder saved by transformers 5 may hold only tokenizer.json; vocab.json + merges.txt are
    // read when both are there, and when one is there without tokenizer.json (the read error then
    // names the missing one).
    bool have_vocab = dato_is_file(vocab), have_merges = dato_is_file(merges);
    if (!(have_vocab && have_merges) && dato_is_file(json)) return open_from(out, NULL, NULL, json, dir, err);
    if (!have_vocab && !have_merges)
        return dato_fail(err, DATO_ERR_NOT_FOUND,
                         "%s: no tokenizer: expected vocab.json + merges.txt, or tokenizer.json", dir);
    return open_from(out, vocab, merges, NULL, dir, err);
}

void dato_tokenizer_free(dato_tokenizer* t) {
    if (!t) return;
    free(t->strings);
    free(t->vocab);
    free(t->merges);
    pcre2_match_data_free(t->match);
    pcre2_code_free(t->split);
    free(t->cache);
    free(t->content);
    free(t->scratch);
    free(t);
}

dato_status dato_tokenizer_set_max_len(dato_tokenizer* t, int max_len, dato_error* err) {
    if (!t || max_len < 2 || max_len > 65536)
        return dato_fail(err, DATO_ERR_INVALID, "tokenizer: length %d is not in [2, 65536]", max_len);
    int32_t* content = realloc(t->content, (size_t)max_len * sizeof(int32_t));
    if (!content) return dato_fail(err, DATO_ERR_NOMEM, "tokenizer: cannot allocate %d ids", max_len);
    t->content = content;
    t->max_len = max_len;
    return DATO_OK;
}

int dato_tokenizer_max_len(const dato_tokenizer* t) { return t->max_len; }
int32_t dato_tokenizer_bos_id(const dato_tokenizer* t) { return t->bos; }
int32_t dato_tokenizer_eos_id(const dato_tokenizer* t) { return t->eos; }
int32_t dato_tokenizer_pad_id(const dato_tokenizer* t) { return t->pad; }
int dato_tokenizer_vocab_size(const dato_tokenizer* t) { return t->vocab_size; }

// ---- encode ----

static bool content_full(const dato_tokenizer* t) { return t->n_content >= t->max_len - 2; }

static void emit(dato_tokenizer* t, int32_t id) {
    if (!content_full(t)) t->content[t->n_content] = id;
    t->n_content++;
}

// A candidate merge of the symbol at pos with the next one; the heap pops the lowest rank,
// then the leftmost pos (tokenizers' word.rs order).
typedef struct {
    int32_t rank, pos, merged;
} merge_candidate;

static bool candidate_before(merge_candidate a, merge_candidate b) {
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(merge_candidate* heap, size_t* n, merge_candidate c) {
    size_t i = (*n)++;
    while (i > 0 && candidate_before(c, heap[(i - 1) / 2])) heap[i] = heap[(i - 1) / 2], i = (i - 1) / 2;
    heap[i] = c;
}

static merge_candidate heap_pop(merge_candidate* heap, size_t* n) {
    merge_candidate top = heap[0], last = heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && candidate_before(heap[child + 1], heap[child])) child++;
        if (!candidate_before(heap[child], last)) break;
        heap[i] = heap[child], i = child;
    }
    heap[i] = last;
    return top;
}

static void push_pair(const dato_tokenizer* t, merge_candidate* heap, size_t* n, const int32_t* id, int32_t pos,
                      int32_t next) {
    const merge_slot* merge = next >= 0 ? merge_find(t, id[pos], id[next]) : NULL;
    if (merge) heap_push(heap, n, (merge_candidate){merge->rank, pos, merge->merged});
}

static dato_status grow_scratch(dato_tokenizer* t, size_t n, dato_error* err) {
    if (n <= t->scratch_cap) return DATO_OK;
    // Per byte: id, prev, next (int32) and up to 3 heap entries (n initial pairs + 2 per merge).
    void* grown = realloc(t->scratch, n * (3 * sizeof(int32_t) + 3 * sizeof(merge_candidate)));
    if (!grown) return dato_fail(err, DATO_ERR_NOMEM, "tokenizer: cannot allocate BPE scratch for a %zu-byte word", n);
    t->scratch = grown, t->scratch_cap = n;
    return DATO_OK;
}

// BPE of one word (its bytes): byte symbols, "</w>" on the last, then repeatedly the adjacent pair
// of lowest merge rank (leftmost on ties) is merged, O(n log n) with a heap of candidates that
// are dropped when popped if their symbols have changed. Results of short words are cached.
static dato_status bpe_word(dato_tokenizer* t, const char* word, size_t n, dato_error* err) {
    uint32_t slot_index = hash_bytes(word, n) & (WORD_CACHE_SLOTS - 1);
    word_cache_slot* slot = &t->cache[slot_index];
    if (n <= WORD_CACHE_KEY_BYTES && slot->key_len == n && memcmp(slot->key, word, n) == 0) {
        for (int i = 0; i < slot->n_ids; i++) emit(t, slot->ids[i]);
        return DATO_OK;
    }
    if (n == 0) return DATO_OK;
    dato_status st = grow_scratch(t, n, err);
    if (st != DATO_OK) return st;
    int32_t* id = t->scratch;             // (n) symbol ids; a merged-away symbol keeps a stale one
    int32_t* prev = id + n;               // (n) previous live symbol, -1 at the start
    int32_t* next = prev + n;             // (n) next live symbol, -1 at the end; -2 once merged away
    merge_candidate* heap = (merge_candidate*)(next + n); // (3n)
    size_t heap_n = 0;
    for (size_t i = 0; i < n; i++) {
        id[i] = (i + 1 < n ? t->byte_id : t->byte_end_id)[(uint8_t)word[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, heap, &heap_n, id, (int32_t)i, (int32_t)i + 1);
    while (heap_n > 0) {
        merge_candidate c = heap_pop(heap, &heap_n);
        int32_t right = next[c.pos];
        if (right < 0) continue; // merged away, or now last
        const merge_slot* merge = merge_find(t, id[c.pos], id[right]);
        if (!merge || merge->rank != c.rank) continue; // the pair changed since it was pushed
        id[c.pos] = c.merged;
        next[c.pos] = next[right];
        if (next[right] >= 0) prev[next[right]] = c.pos;
        next[right] = -2;
        if (prev[c.pos] >= 0) push_pair(t, heap, &heap_n, id, prev[c.pos], c.pos);
        push_pair(t, heap, &heap_n, id, c.pos, next[c.pos]);
    }
    int m = 0;
    for (int32_t i = 0; i >= 0; i = next[i], m++) emit(t, id[i]);
    if (n <= WORD_CACHE_KEY_BYTES && m <= WORD_CACHE_MAX_IDS) {
        slot->key_len = (uint8_t)n;
        slot->n_ids = (uint8_t)m;
        memcpy(slot->key, word, n);
        m = 0;
        for (int32_t i = 0; i >= 0; i = next[i]) slot->ids[m++] = id[i];
    }
    return DATO_OK;
}

// Splits normalized text with the CLIP pattern and BPE-encodes each piece. A piece that is a
// special token's text (one not split out before) is further cut into "<|", name, "|>" by the
// GPT-2 split of tokenizers' ByteLevel step, which leaves every other piece whole.
static dato_status encode_pieces(dato_tokenizer* t, const char* text, size_t n, dato_error* err) {
    size_t offset = 0;
    while (offset < n && !content_full(t)) {
        int rc = pcre2_match(t->split, (PCRE2_SPTR)text, n, offset, PCRE2_NO_UTF_CHECK, t->match, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return dato_fail(err, DATO_ERR_INVALID, "tokenizer: split pattern failed (pcre2 error %d)", rc);
        PCRE2_SIZE* range = pcre2_get_ovector_pointer(t->match);
        const char* piece = text + range[0];
        size_t len = range[1] - range[0];
        dato_status st;
        bool special_text = (len == 15 && memcmp(piece, "<|startoftext|>", 15) == 0) ||
                            (len == 13 && memcmp(piece, "<|endoftext|>", 13) == 0);
        if (special_text) {
            if ((st = bpe_word(t, piece, 2, err)) || (st = bpe_word(t, piece + 2, len - 4, err)) ||
                (st = bpe_word(t, piece + len - 2, 2, err)))
                return st;
        } else if ((st = bpe_word(t, piece, len, err))) {
            return st;
        }
        offset = range[1];
    }
    return DATO_OK;
}

// The leftmost special token with the given normalized flag in text[0, n), longest first at a
// position (tokenizers' leftmost-longest match); NULL if none. *at gets its offset.
static const special_token* find_special(const dato_tokenizer* t, const char* text, size_t n, bool normalized,
                                         size_t* at) {
    for (size_t p = 0; p < n; p++) {
        const special_token* best = NULL;
        for (int i = 0; i < t->n_specials; i++) {
            const special_token* s = &t->specials[i];
            if (s->normalized == normalized && (size_t)s->len <= n - p && memcmp(text + p, s->content, s->len) == 0 &&
                (!best || s->len > best->len))
                best = s;
        }
        if (best) {
            *at = p;
            return best;
        }
    }
    return NULL;
}

static bool is_white_space(utf8proc_int32_t c) { // Unicode White_Space, as Oniguruma's \s
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Normalizes one raw segment (NFC, White_Space runs -> " ", lowercase per code point with
// Rust's full mapping: only U+0130 lowercases to two code points), then splits out the
// normalized special tokens and encodes the rest.
static dato_status encode_segment(dato_tokenizer* t, const char* raw, size_t n, dato_error* err) {
    if (n == 0) return DATO_OK;
    utf8proc_uint8_t* nfc = NULL;
    utf8proc_ssize_t nfc_len =
        utf8proc_map((const utf8proc_uint8_t*)raw, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (nfc_len < 0) return dato_fail(err, DATO_ERR_INVALID, "tokenizer: NFC failed: %s", utf8proc_errmsg(nfc_len));
    // Lowercasing grows a code point by at most 1 byte (2 -> 3), so 2x bounds the output.
    char* text = malloc(2 * (size_t)nfc_len + 1);
    if (!text) {
        free(nfc);
        return dato_fail(err, DATO_ERR_NOMEM, "tokenizer: cannot allocate %zu bytes", 2 * (size_t)nfc_len + 1);
    }
    size_t len = 0;
    bool in_space = false;
    for (utf8proc_ssize_t i = 0; i < nfc_len;) {
        utf8proc_int32_t c;
        i += utf8proc_iterate(nfc + i, nfc_len - i, &c);
        if (is_white_space(c)) {
            if (!in_space) text[len++] = ' ';
            in_space = true;
            continue;
        }
        in_space = false;
        if (c == 0x130) {
            memcpy(text + len, "i\xCC\x87", 3), len += 3;
            continue;
        }
        len += (size_t)utf8proc_encode_char(utf8proc_tolower(c), (utf8proc_uint8_t*)text + len);
    }
    free(nfc);
    dato_status st = DATO_OK;
    size_t start = 0, at;
    const special_token* s;
    while (st == DATO_OK && !content_full(t) && (s = find_special(t, text + start, len - start, true, &at))) {
        st = encode_pieces(t, text + start, at, err);
        emit(t, s->id);
        start += at + (size_t)s->len;
    }
    if (st == DATO_OK) st = encode_pieces(t, text + start, len - start, err);
    free(text);
    return st;
}

dato_status dato_tokenizer_encode(dato_tokenizer* t, const char* utf8, int32_t* ids, int* n_tokens, dato_error* err) {
    if (!t || !utf8 || !ids) return dato_fail(err, DATO_ERR_INVALID, "tokenizer: NULL argument");
    size_t n = strlen(utf8);
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t step = utf8proc_iterate((const utf8proc_uint8_t*)utf8 + i, (utf8proc_ssize_t)(n - i), &c);
        if (step < 0) return dato_fail(err, DATO_ERR_INVALID, "tokenizer: invalid UTF-8 at byte %zu of the prompt", i);
        i += (size_t)step;
    }
    t->n_content = 0;
    size_t start = 0, at;
    const special_token* s;
    dato_status st;
    while (!content_full(t) && (s = find_special(t, utf8 + start, n - start, false, &at))) {
        if ((st = encode_segment(t, utf8 + start, at, err))) return st;
        emit(t, s->id);
        start += at + (size_t)s->len;
    }
    if ((st = encode_segment(t, utf8 + start, n - start, err))) return st;
    int n_content = content_full(t) ? t->max_len - 2 : t->n_content;
    ids[0] = t->bos;
    memcpy(ids + 1, t->content, (size_t)n_content * sizeof(int32_t));
    ids[n_content + 1] = t->eos;
    for (int i = n_content + 2; i < t->max_len; i++) ids[i] = t->pad;
    if (n_tokens) *n_tokens = n_content + 2;
    return DATO_OK;
}
