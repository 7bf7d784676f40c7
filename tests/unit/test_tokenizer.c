// The CLIP tokenizer against transformers' CLIPTokenizer: every prompt of
// tests/fixtures/tokenizer/prompts.txt must give exactly the ids of expected.json (made by
// tools/make_tokenizer_fixtures.py) for SD1 (pad <|endoftext|>) and SD2 (pad "!"), plus the
// ENGINE.md §7 test vectors, truncation, padding and the error paths. Folders holding only
// tokenizer.json (json-sd1/, json-sd2/: written by transformers 5) must give the ids of
// expected_json.json on prompts.txt and the prompt files of datasets/; the full vocabulary as
// tokenizer.json must give the ids of vocab.json + merges.txt; a tokenizer.json that is not CLIP's
// BPE is refused naming the field; and a diffusers folder with such a tokenizer/ encodes as the
// original tests/fixtures/pipeline/sd15.
#define _GNU_SOURCE // mkdtemp, realpath, symlink
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "fixture.h"
#include "pipeline.h"
#include "tokenizer.h"
#include "test_util.h"

#define FIXTURES "tests/fixtures/tokenizer/"
#define CLIP_DIR "models/clip_tokenizer" // the shipped CLIP vocabulary (SD1 configs; sd2/ for SD2)
#define PIPELINE "tests/fixtures/pipeline/"
#define MAX_PROMPTS 1024

// The lines of buf (each ends with '\n'), one prompt each, as pointers into buf.
static int split_lines(char* buf, size_t n, char** lines, int max_lines) {
    int count = 0;
    for (size_t start = 0, i = 0; i < n && count < max_lines; i++)
        if (buf[i] == '\n') buf[i] = 0, lines[count++] = buf + start, start = i + 1;
    return count;
}

// Every prompt against transformers' ids: rows of max_len padded ids with their n_tokens
// (expected.json), or rows of the ids before padding (expected_json.json, no n_tokens).
static void check_corpus(dato_tokenizer* tok, const char* variant, const cJSON* expected, char** prompts,
                         int n_prompts) {
    const cJSON* ids = cJSON_GetObjectItem(expected, "ids");
    const cJSON* n_tokens = cJSON_GetObjectItem(expected, "n_tokens");
    CHECK(cJSON_GetArraySize(ids) == n_prompts, "%s: %d expected rows for %d prompts", variant,
          cJSON_GetArraySize(ids), n_prompts);
    int32_t pad = dato_tokenizer_pad_id(tok);
    CHECK(pad == cJSON_GetObjectItem(expected, "pad_id")->valueint, "%s: pad id %d", variant, pad);
    CHECK(dato_tokenizer_bos_id(tok) == cJSON_GetObjectItem(expected, "bos_id")->valueint, "%s: bos", variant);
    CHECK(dato_tokenizer_eos_id(tok) == cJSON_GetObjectItem(expected, "eos_id")->valueint, "%s: eos", variant);
    int max_len = dato_tokenizer_max_len(tok), matched = 0, truncated = 0;
    int32_t got[77];
    for (int p = 0; p < n_prompts && p < cJSON_GetArraySize(ids); p++) {
        const cJSON* row = cJSON_GetArrayItem(ids, p);
        int len = cJSON_GetArraySize(row), n = -1;
        int want_n = n_tokens ? cJSON_GetArrayItem(n_tokens, p)->valueint : len;
        dato_error err = {{0}};
        dato_status st = dato_tokenizer_encode(tok, prompts[p], got, &n, &err);
        int same = st == DATO_OK && len <= max_len && n == want_n;
        int first_diff = -1;
        for (int i = 0; same && i < max_len; i++)
            if (got[i] != (i < len ? cJSON_GetArrayItem(row, i)->valueint : pad)) same = 0, first_diff = i;
        matched += same;
        truncated += same && n == max_len;
        CHECK(same, "%s prompt %d '%.60s': status %d (%s), n %d, first differing id at %d", variant, p + 1,
              prompts[p], st, err.msg, n, first_diff);
    }
    printf("%s: %d / %d prompts match transformers exactly (%d of them truncated to %d)\n", variant, matched,
           n_prompts, truncated, max_len);
}

static void check_vector(dato_tokenizer* tok, const char* prompt, const int32_t* want, int n_want) {
    int32_t got[77];
    int n = 0;
    dato_error err = {{0}};
    CHECK(dato_tokenizer_encode(tok, prompt, got, &n, &err) == DATO_OK, "%s", err.msg);
    int same = n == n_want;
    for (int i = 0; same && i < n; i++) same = got[i] == want[i];
    for (int i = n_want; same && i < 77; i++) same = got[i] == dato_tokenizer_pad_id(tok);
    CHECK(same, "test vector '%s': %d tokens", prompt, n);
}

static void check_errors(void) {
    dato_tokenizer* tok = NULL;
    dato_error err = {{0}};
    CHECK(dato_tokenizer_open(&tok, FIXTURES "no-such-folder", &err) == DATO_ERR_NOT_FOUND && !tok, "missing folder");
    CHECK(strstr(err.msg, "no-such-folder: no tokenizer: expected vocab.json + merges.txt, or tokenizer.json"),
          "message names the folder and the files: %s", err.msg);

    // A merges file whose 3rd line (2nd merge) has three fields, then one naming an unknown token.
    const char* bad_merges[] = {"#version: 0.2\ni n\nt h e\n", "#version: 0.2\ni n\nq \xE2\x82\xAC\xE2\x82\xAC\n"};
    const char* bad_path = "/tmp/dato-test-tokenizer-bad-merges.txt";
    for (int i = 0; i < 2; i++) {
        CHECK(write_bytes(bad_path, bad_merges[i], strlen(bad_merges[i])), "write %s", bad_path);
        dato_status st = dato_tokenizer_open_files(&tok, CLIP_DIR "/vocab.json", bad_path, CLIP_DIR, &err);
        CHECK(st == DATO_ERR_FORMAT && !tok, "malformed merges %d: status %d", i, st);
        CHECK(strstr(err.msg, "dato-test-tokenizer-bad-merges.txt:3:") != NULL, "message names file and line: %s", err.msg);
        printf("malformed merges.txt %d: %s\n", i, err.msg);
    }
    remove(bad_path);

    CHECK(dato_tokenizer_open(&tok, CLIP_DIR, &err) == DATO_OK, "%s", err.msg);
    int32_t ids[77];
    const char* invalid[] = {"abc\xFF", "caf\xC3", "\xED\xA0\x80 surrogate", "\xC0\xAF overlong"};
    for (int i = 0; i < 4; i++) {
        dato_status st = dato_tokenizer_encode(tok, invalid[i], ids, NULL, &err);
        CHECK(st == DATO_ERR_INVALID && strstr(err.msg, "invalid UTF-8"), "invalid UTF-8 %d: status %d", i, st);
    }
    printf("invalid UTF-8: %s\n", err.msg);
    dato_tokenizer_free(tok);
}

// ---- tokenizer.json ----

static cJSON* read_json(const char* path) {
    char* text = fixture_text(path);
    cJSON* root = text ? cJSON_Parse(text) : NULL;
    free(text);
    return root;
}

// The prompts of expected_json.json's prompt_files ([path, count] pairs), in order, as pointers into
// texts (one buffer per file, at most 4 files); a .tsv line is a label, a tab, then the prompt.
static int read_prompt_files(const cJSON* files, char** texts, char** prompts) {
    int n = 0, f = 0;
    for (const cJSON* file = files ? files->child : NULL; file && f < 4; file = file->next, f++) {
        const char* path = cJSON_GetArrayItem(file, 0)->valuestring;
        int want = cJSON_GetArrayItem(file, 1)->valueint;
        size_t size = 0;
        texts[f] = (char*)read_bytes(path, &size);
        int count = texts[f] ? split_lines(texts[f], size, prompts + n, MAX_PROMPTS - n) : 0;
        CHECK(count == want, "%s: %d prompts, expected_json.json has %d (rerun tools/make_tokenizer_fixtures.py)",
              path, count, want);
        for (int i = n; i < n + count && strstr(path, ".tsv"); i++) {
            char* tab = strchr(prompts[i], '\t');
            if (tab) prompts[i] = tab + 1;
        }
        n += count;
    }
    return n;
}

// How many prompts two tokenizers of length 77 encode alike (status, count and every id).
static int same_ids(dato_tokenizer* a, dato_tokenizer* b, char** prompts, int n_prompts) {
    if (dato_tokenizer_max_len(a) != 77 || dato_tokenizer_max_len(b) != 77) return 0;
    int same = 0;
    for (int p = 0; p < n_prompts; p++) {
        int32_t x[77], y[77];
        int nx = -1, ny = -2;
        dato_error err;
        same += dato_tokenizer_encode(a, prompts[p], x, &nx, &err) == DATO_OK &&
                dato_tokenizer_encode(b, prompts[p], y, &ny, &err) == DATO_OK && nx == ny && !memcmp(x, y, sizeof x);
    }
    return same;
}

// Writes dir/tokenizer.json (the tree) and a copy of config_dir/tokenizer_config.json; 1 on success.
static int write_json_folder(const char* dir, const cJSON* tokenizer, const char* config_dir) {
    char path[PATH_MAX];
    char* text = cJSON_PrintUnformatted(tokenizer);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    int ok = text && write_bytes(path, text, strlen(text));
    cJSON_free(text);
    size_t n = 0;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", config_dir);
    unsigned char* config = read_bytes(path, &n);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    ok = ok && config && write_bytes(path, config, n);
    free(config);
    return ok;
}

// An entry of a temporary folder: a file the test writes (target NULL) or a link to target.
typedef struct {
    const char* name;
    const char* target;
} folder_entry;

static const folder_entry json_files[] = {{"tokenizer.json", NULL}, {"tokenizer_config.json", NULL}};

// Makes folder with a link to each entry's target (its absolute path); 1 on success.
static int make_links(const char* folder, const folder_entry* entries, int n) {
    char link[1024], target[PATH_MAX];
    int ok = mkdir(folder, 0755) == 0;
    for (int i = 0; i < n && ok; i++) {
        snprintf(link, sizeof link, "%s/%s", folder, entries[i].name);
        ok = realpath(entries[i].target, target) && symlink(target, link) == 0;
    }
    return ok;
}

// Removes the entries of folder, then folder.
static void remove_folder(const char* folder, const folder_entry* entries, int n) {
    char path[1024];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", folder, entries[i].name);
        unlink(path);
    }
    rmdir(folder);
}

// The full vocabulary as tokenizer.json: json-<variant>/tokenizer.json with models/clip_tokenizer's
// vocab.json and merges.txt in its model (the merges as "left right" strings, as tokenizers wrote
// them before 0.20; the fixtures hold [left, right] pairs) and its added tokens' ids looked up there.
// Every prompt must give the ids of vocab.json + merges.txt (reference, the same variant).
static void check_full_vocab(const char* tmp, const char* variant, dato_tokenizer* reference, char** prompts,
                             int n_prompts) {
    char path[1024], dir[512], config_dir[512];
    snprintf(config_dir, sizeof config_dir, FIXTURES "json-%s", variant);
    snprintf(path, sizeof path, "%s/tokenizer.json", config_dir);
    snprintf(dir, sizeof dir, "%s/full-%s", tmp, variant);
    cJSON* root = read_json(path);
    cJSON* vocab = read_json(CLIP_DIR "/vocab.json");
    char* merges_text = fixture_text(CLIP_DIR "/merges.txt");
    cJSON* model = cJSON_GetObjectItem(root, "model");
    CHECK(model && vocab && merges_text, "cannot read %s, %s/vocab.json or merges.txt", path, CLIP_DIR);
    if (!model || !vocab || !merges_text) {
        cJSON_Delete(root);
        cJSON_Delete(vocab);
        free(merges_text);
        return;
    }
    cJSON* merges = cJSON_CreateArray();
    int n_merges = 0;
    for (char* line = strtok(merges_text, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, "#version", 8) != 0) cJSON_AddItemToArray(merges, cJSON_CreateString(line)), n_merges++;
    free(merges_text);
    for (cJSON* added = cJSON_GetObjectItem(root, "added_tokens")->child; added; added = added->next) {
        const cJSON* in_vocab = cJSON_GetObjectItem(vocab, cJSON_GetObjectItem(added, "content")->valuestring);
        double id = in_vocab ? in_vocab->valuedouble : -1;
        cJSON_SetNumberValue(cJSON_GetObjectItem(added, "id"), id);
    }
    cJSON_ReplaceItemInObject(model, "vocab", vocab); // the model owns them now
    cJSON_ReplaceItemInObject(model, "merges", merges);
    int written = mkdir(dir, 0755) == 0 && write_json_folder(dir, root, config_dir);
    cJSON_Delete(root);
    dato_tokenizer* tok = NULL;
    dato_error err = {{0}};
    CHECK(written && dato_tokenizer_open(&tok, dir, &err) == DATO_OK, "%s: %s", dir, err.msg);
    if (tok) {
        int same = same_ids(tok, reference, prompts, n_prompts);
        printf("%s: the full vocabulary (%d tokens, %d string merges) as tokenizer.json: %d / %d prompts give the "
               "ids of vocab.json + merges.txt\n",
               variant, dato_tokenizer_vocab_size(tok), n_merges, same, n_prompts);
        CHECK(same == n_prompts && dato_tokenizer_pad_id(tok) == dato_tokenizer_pad_id(reference),
              "%s: %d / %d prompts alike", variant, same, n_prompts);
    }
    dato_tokenizer_free(tok);
    remove_folder(dir, json_files, 2);
}

// Sets the field at a dotted path of root (a number indexes an array) to a JSON value; NULL
// removes it. 1 on success.
static int json_set(cJSON* root, const char* field, const char* value) {
    char path[256];
    snprintf(path, sizeof path, "%s", field);
    char* key = strrchr(path, '.');
    cJSON* parent = root;
    if (key) {
        *key++ = 0;
        for (char* part = strtok(path, "."); part && parent; part = strtok(NULL, "."))
            parent = cJSON_IsArray(parent) ? cJSON_GetArrayItem(parent, atoi(part))
                                           : cJSON_GetObjectItemCaseSensitive(parent, part);
    } else {
        key = path;
    }
    if (!parent) return 0;
    if (!value) {
        if (cJSON_IsArray(parent)) cJSON_DeleteItemFromArray(parent, atoi(key));
        else cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
        return 1;
    }
    cJSON* item = cJSON_Parse(value);
    if (!item) return 0;
    if (cJSON_IsArray(parent)) // an index past the end appends
        return atoi(key) < cJSON_GetArraySize(parent) ? cJSON_ReplaceItemInArray(parent, atoi(key), item)
                                                      : cJSON_InsertItemInArray(parent, atoi(key), item);
    if (cJSON_GetObjectItemCaseSensitive(parent, key)) return cJSON_ReplaceItemInObjectCaseSensitive(parent, key, item);
    return cJSON_AddItemToObject(parent, key, item);
}

// Edits of json-sd1/tokenizer.json. What still describes CLIP's BPE opens and encodes as the
// fixture; the rest is refused with a message naming the file, the field and what was expected.
static const struct {
    const char* field;   // dotted path; a number indexes an array
    const char* value;   // its new JSON value; NULL removes it
    dato_status status;
    const char* message; // a part of the message (when refused)
} json_edits[] = {
    // transformers 4.x's converter: the split pattern without the special-token alternatives
    {"pre_tokenizer.pretokenizers.0.pattern.Regex",
     "\"'s|'t|'re|'ve|'m|'ll|'d|[\\\\p{L}]+|[\\\\p{N}]|[^\\\\s\\\\p{L}\\\\p{N}]+\"", DATO_OK, NULL},
    {"pre_tokenizer.pretokenizers.1.use_regex", NULL, DATO_OK, NULL}, // tokenizers before the field
    {"model.continuing_subword_prefix", "null", DATO_OK, NULL},
    {"model.type", "\"WordPiece\"", DATO_ERR_UNSUPPORTED,
     "tokenizer.json: model.type is \"WordPiece\"; expected \"BPE\""},
    {"model.end_of_word_suffix", NULL, DATO_ERR_UNSUPPORTED,
     "tokenizer.json: model.end_of_word_suffix is missing; expected \"</w>\""},
    {"normalizer.normalizers.2.type", "\"Strip\"", DATO_ERR_UNSUPPORTED,
     "tokenizer.json: normalizer.normalizers[2].type is \"Strip\"; expected \"Lowercase\""},
    {"normalizer.normalizers.3", "{\"type\":\"Strip\"}", DATO_ERR_UNSUPPORTED,
     "tokenizer.json: normalizer.normalizers is [{\"type\":\"NFC\"}"},
    {"pre_tokenizer.pretokenizers.1.add_prefix_space", "true", DATO_ERR_UNSUPPORTED,
     "tokenizer.json: pre_tokenizer.pretokenizers[1].add_prefix_space is true; expected false"},
    {"pre_tokenizer.pretokenizers.0.pattern.Regex", "\"\\\\w+\"", DATO_ERR_UNSUPPORTED,
     "tokenizer.json: pre_tokenizer.pretokenizers[0].pattern.Regex is \"\\\\w+\"; expected \"<\\\\|startoftext"},
    {"pre_tokenizer.pretokenizers", "[]", DATO_ERR_UNSUPPORTED,
     "tokenizer.json: pre_tokenizer.pretokenizers is []; expected [{\"type\":\"Split\""},
    {"model.vocab", "[]", DATO_ERR_FORMAT, "tokenizer.json: model.vocab: expected a JSON object of token -> id"},
    {"model.merges.3", "\"a b c\"", DATO_ERR_FORMAT,
     "tokenizer.json: model.merges[3]: expected \"left right\" or [left, right]"},
    {"model.merges.3", "[\"q\", \"\\u20ac\"]", DATO_ERR_FORMAT,
     "tokenizer.json: model.merges[3]: token '\xE2\x82\xAC' is not in the vocabulary"},
    {"added_tokens.0.id", "7", DATO_ERR_UNSUPPORTED,
     "tokenizer.json: added_tokens: token '<|startoftext|>' has id 7, not its vocabulary id"},
    {"added_tokens.1.lstrip", "true", DATO_ERR_UNSUPPORTED,
     "tokenizer.json: added_tokens: lstrip true is not supported"},
};

static void check_json_edits(const char* tmp, dato_tokenizer* fixture, char** prompts, int n_prompts) {
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, "%s/edited", tmp);
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    for (size_t e = 0; e < sizeof json_edits / sizeof json_edits[0]; e++) {
        cJSON* root = read_json(FIXTURES "json-sd1/tokenizer.json");
        int written = root && json_set(root, json_edits[e].field, json_edits[e].value) &&
                      write_json_folder(dir, root, FIXTURES "json-sd1");
        cJSON_Delete(root);
        dato_tokenizer* tok = NULL;
        dato_error err = {{0}};
        dato_status st = written ? dato_tokenizer_open(&tok, dir, &err) : DATO_ERR_IO;
        if (json_edits[e].status == DATO_OK) {
            int same = tok ? same_ids(tok, fixture, prompts, n_prompts) : 0;
            CHECK(st == DATO_OK && same == n_prompts, "%s edited: status %d (%s), %d / %d prompts as the fixture",
                  json_edits[e].field, st, err.msg, same, n_prompts);
        } else {
            CHECK(st == json_edits[e].status && !tok && strstr(err.msg, json_edits[e].message),
                  "%s edited: status %d, message: %s", json_edits[e].field, st, err.msg);
            printf("refused: %s\n", err.msg);
        }
        dato_tokenizer_free(tok);
    }
    // A file cut short is invalid JSON, named with its line.
    size_t n = 0;
    unsigned char* bytes = read_bytes(FIXTURES "json-sd1/tokenizer.json", &n);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    dato_tokenizer* tok = NULL;
    dato_error err = {{0}};
    dato_status st = bytes && write_bytes(path, bytes, n / 2) ? dato_tokenizer_open(&tok, dir, &err) : DATO_ERR_IO;
    CHECK(st == DATO_ERR_FORMAT && !tok && strstr(err.msg, "tokenizer.json:") && strstr(err.msg, ": invalid JSON"),
          "cut tokenizer.json: status %d, %s", st, err.msg);
    printf("refused: %s\n", err.msg);
    free(bytes);
    remove_folder(dir, json_files, 2);
}

// A folder with vocab.json + merges.txt (the full vocabulary) and tokenizer.json (json-sd1's, 1514
// tokens) is read from vocab.json + merges.txt, as before tokenizer.json was read at all.
static void check_preference(const char* tmp) {
    static const folder_entry links[] = {
        {"vocab.json", CLIP_DIR "/vocab.json"},
        {"merges.txt", CLIP_DIR "/merges.txt"},
        {"tokenizer.json", FIXTURES "json-sd1/tokenizer.json"},
        {"tokenizer_config.json", FIXTURES "json-sd1/tokenizer_config.json"},
    };
    enum { N_LINKS = sizeof links / sizeof links[0] };
    char folder[512];
    snprintf(folder, sizeof folder, "%s/both", tmp);
    int linked = make_links(folder, links, N_LINKS);
    dato_tokenizer* tok = NULL;
    dato_error err = {{0}};
    CHECK(linked && dato_tokenizer_open(&tok, folder, &err) == DATO_OK, "%s: %s", folder, err.msg);
    CHECK(tok && dato_tokenizer_vocab_size(tok) == 49408, "vocab.json + merges.txt beside tokenizer.json: vocab %d",
          tok ? dato_tokenizer_vocab_size(tok) : -1);
    dato_tokenizer_free(tok);
    remove_folder(folder, links, N_LINKS);
}

// A diffusers folder whose tokenizer/ holds only tokenizer.json + tokenizer_config.json: links to
// the parts of tests/fixtures/pipeline/sd15 and, as tokenizer/, to json-sd1 (that folder's
// vocabulary re-saved by transformers 5). It must open, give the ids diffusers used
// (reference/sd15_negative.json) and the conditioning of the original folder bit for bit.
static void check_pipeline(const char* tmp) {
    static const folder_entry links[] = {
        {"model_index.json", PIPELINE "sd15/model_index.json"}, {"scheduler", PIPELINE "sd15/scheduler"},
        {"text_encoder", PIPELINE "sd15/text_encoder"},         {"unet", PIPELINE "sd15/unet"},
        {"vae", PIPELINE "sd15/vae"},                           {"tokenizer", FIXTURES "json-sd1"},
    };
    enum { N_LINKS = sizeof links / sizeof links[0], B = 3 };
    char folder[512];
    snprintf(folder, sizeof folder, "%s/sd15", tmp);
    int linked = make_links(folder, links, N_LINKS);
    cJSON* ref = read_json(PIPELINE "reference/sd15_negative.json");
    CHECK(linked && ref, "cannot link %s or read the reference", folder);
    const char *prompts[B], *negatives[B];
    for (int i = 0; i < B && ref; i++) {
        prompts[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "prompt"), i)->valuestring;
        negatives[i] = cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "negative_prompt"), i)->valuestring;
    }
    dato_backend be;
    dato_error err = {{0}};
    dato_pipeline original, json;
    dato_status s_be = dato_backend_cpu_init(&be, 0, &err);
    dato_status s0 = s_be ? s_be : dato_pipeline_open(&original, PIPELINE "sd15", &be, NULL, &err);
    CHECK(s0 == DATO_OK, "%s", err.msg);
    dato_status s1 = s_be ? s_be : dato_pipeline_open(&json, folder, &be, NULL, &err);
    CHECK(s1 == DATO_OK, "%s: %s", folder, err.msg);
    if (!s0 && !s1 && linked && ref) {
        // 1. Token ids: diffusers' input_ids (prompts) and uncond_input_ids (negatives).
        int rows_same = 0;
        for (int k = 0; k < 2 * B; k++) {
            const cJSON* rows = cJSON_GetObjectItem(ref, k < B ? "input_ids" : "uncond_input_ids");
            const cJSON* row = cJSON_GetArrayItem(rows, k % B);
            int32_t ids[77];
            int same = dato_tokenizer_max_len(json.tokenizer[0]) == 77 && cJSON_GetArraySize(row) == 77 &&
                       dato_tokenizer_encode(json.tokenizer[0], k < B ? prompts[k] : negatives[k - B], ids, NULL,
                                             &err) == DATO_OK;
            for (int i = 0; same && i < 77; i++) same = ids[i] == cJSON_GetArrayItem(row, i)->valueint;
            rows_same += same;
        }
        // 2. Conditioning, against the folder with vocab.json + merges.txt.
        int H = cJSON_GetObjectItem(ref, "height")->valueint, W = cJSON_GetObjectItem(ref, "width")->valueint;
        dato_conditioning c0 = {0}, c1 = {0};
        dato_status e0 = dato_pipeline_encode(&original, prompts, negatives, B, H, W, &c0, &err);
        dato_status e1 = e0 ? e0 : dato_pipeline_encode(&json, prompts, negatives, B, H, W, &c1, &err);
        CHECK(e0 == DATO_OK && e1 == DATO_OK, "encode: %s", err.msg);
        double diff = e1 ? 1.0 : test_max_abs_diff(c0.context, c1.context, (size_t)2 * B * c0.seq * c0.dim);
        printf("pipeline sd15, tokenizer/ with only tokenizer.json: %d / %d rows of diffusers' ids; context max "
               "|diff| from the vocab.json folder %.1e (tol 0)\n",
               rows_same, 2 * B, diff);
        CHECK(rows_same == 2 * B && diff == 0, "pipeline: %d / %d id rows, context diff %.2e", rows_same, 2 * B, diff);
        dato_conditioning_free(&c0);
        dato_conditioning_free(&c1);
    }
    if (!s0) dato_pipeline_close(&original);
    if (!s1) dato_pipeline_close(&json);
    if (!s_be) dato_backend_destroy(&be);
    cJSON_Delete(ref);
    remove_folder(folder, links, N_LINKS);
}

// The tokenizer.json cases, in a temporary folder. sd1, sd2: the vocab.json + merges.txt tokenizers.
static void check_tokenizer_json(dato_tokenizer* sd1, dato_tokenizer* sd2) {
    cJSON* expected = read_json(FIXTURES "expected_json.json");
    CHECK(expected != NULL, "cannot read " FIXTURES "expected_json.json");
    char* texts[4] = {0};
    static char* prompts[MAX_PROMPTS];
    int n_prompts = read_prompt_files(cJSON_GetObjectItem(expected, "prompt_files"), texts, prompts);
    dato_tokenizer *json_sd1 = NULL, *json_sd2 = NULL;
    dato_error err = {{0}};
    CHECK(dato_tokenizer_open(&json_sd1, FIXTURES "json-sd1", &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_tokenizer_open(&json_sd2, FIXTURES "json-sd2", &err) == DATO_OK, "%s", err.msg);
    char tmp[] = "/tmp/dato-test-tokenizer-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    if (expected && json_sd1 && json_sd2) {
        CHECK(dato_tokenizer_vocab_size(json_sd1) == 1514 && dato_tokenizer_max_len(json_sd1) == 77,
              "json-sd1: vocab %d, max_len %d", dato_tokenizer_vocab_size(json_sd1), dato_tokenizer_max_len(json_sd1));
        check_corpus(json_sd1, "json-sd1", cJSON_GetObjectItem(expected, "sd1"), prompts, n_prompts);
        check_corpus(json_sd2, "json-sd2", cJSON_GetObjectItem(expected, "sd2"), prompts, n_prompts);
        check_full_vocab(tmp, "sd1", sd1, prompts, n_prompts);
        check_full_vocab(tmp, "sd2", sd2, prompts, n_prompts);
        check_json_edits(tmp, json_sd1, prompts, n_prompts);
        check_preference(tmp);
        check_pipeline(tmp);
    }
    rmdir(tmp);
    dato_tokenizer_free(json_sd1);
    dato_tokenizer_free(json_sd2);
    for (int f = 0; f < 4; f++) free(texts[f]);
    cJSON_Delete(expected);
}

int main(void) {
    size_t prompts_size = 0, expected_size = 0;
    char* prompts_text = (char*)read_bytes(FIXTURES "prompts.txt", &prompts_size);
    char* expected_text = (char*)read_bytes(FIXTURES "expected.json", &expected_size);
    CHECK(prompts_text && expected_text, "fixtures missing: run tools/make_tokenizer_fixtures.py");
    if (!prompts_text || !expected_text) return test_summary();
    static char* prompts[MAX_PROMPTS];
    int n_prompts = split_lines(prompts_text, prompts_size, prompts, MAX_PROMPTS);
    cJSON* expected = cJSON_ParseWithLength(expected_text, expected_size);
    CHECK(expected && cJSON_GetObjectItem(expected, "n_prompts")->valueint == n_prompts, "expected.json: %d prompts",
          n_prompts);

    dato_tokenizer *sd1 = NULL, *sd2 = NULL;
    dato_error err = {{0}};
    CHECK(dato_tokenizer_open(&sd1, CLIP_DIR, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_tokenizer_open_files(&sd2, CLIP_DIR "/vocab.json", CLIP_DIR "/merges.txt", CLIP_DIR "/sd2",
                                    &err) == DATO_OK,
          "%s", err.msg);
    if (sd1 && sd2 && expected) {
        CHECK(dato_tokenizer_vocab_size(sd1) == 49408 && dato_tokenizer_max_len(sd1) == 77, "vocab %d, max_len %d",
              dato_tokenizer_vocab_size(sd1), dato_tokenizer_max_len(sd1));
        CHECK(dato_tokenizer_bos_id(sd1) == 49406 && dato_tokenizer_eos_id(sd1) == 49407, "bos/eos");
        CHECK(dato_tokenizer_pad_id(sd1) == 49407 && dato_tokenizer_pad_id(sd2) == 0, "pad ids %d %d",
              dato_tokenizer_pad_id(sd1), dato_tokenizer_pad_id(sd2));
        check_corpus(sd1, "sd1", cJSON_GetObjectItem(expected, "sd1"), prompts, n_prompts);
        check_corpus(sd2, "sd2", cJSON_GetObjectItem(expected, "sd2"), prompts, n_prompts);

        // ENGINE.md §7 test vectors (the last two are apple/ml-stable-diffusion's).
        const int32_t cat[] = {49406, 320, 1125, 539, 320, 2368, 49407};
        const int32_t astronaut[] = {49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407};
        const int32_t apple[] = {49406, 3055, 19622, 5780, 10929, 5771, 525, 320, 20617, 1922, 631, 1953, 49407};
        for (int v = 0; v < 2; v++) {
            dato_tokenizer* tok = v ? sd2 : sd1;
            check_vector(tok, "a photo of a cat", cat, 7);
            check_vector(tok, "a photo of an astronaut riding a horse on mars", astronaut, 12);
            check_vector(tok, "Apple CoreML developer tools on a Macbook Air are fast", apple, 13);
        }

        // Truncation keeps bos, the first 75 content ids and eos; nothing is padded.
        char long_prompt[1024] = "";
        for (int i = 0; i < 100; i++) strcat(long_prompt, "cat ");
        int32_t ids[77];
        int n = 0;
        CHECK(dato_tokenizer_encode(sd2, long_prompt, ids, &n, &err) == DATO_OK, "%s", err.msg);
        int all_cat = 1;
        for (int i = 1; i < 76; i++) all_cat &= ids[i] == 2368;
        CHECK(n == 77 && ids[0] == 49406 && all_cat && ids[76] == 49407, "truncation: n %d, last %d", n, ids[76]);
        // The empty prompt is bos, eos and 75 pads.
        CHECK(dato_tokenizer_encode(sd2, "", ids, &n, &err) == DATO_OK && n == 2 && ids[0] == 49406 &&
                  ids[1] == 49407 && ids[2] == 0 && ids[76] == 0,
              "empty prompt: n %d", n);
        // "!" is a special token of SD2 (pad), so it is split out: "hello!!" differs between variants.
        int32_t a[77], b[77];
        CHECK(dato_tokenizer_encode(sd1, "hello!!", a, &n, &err) == DATO_OK && n == 4 && a[2] == 748, "sd1 hello!!");
        CHECK(dato_tokenizer_encode(sd2, "hello!!", b, &n, &err) == DATO_OK && n == 5 && b[2] == 0 && b[3] == 0,
              "sd2 hello!!");
    }
    if (sd1 && sd2) check_tokenizer_json(sd1, sd2);
    dato_tokenizer_free(sd1);
    dato_tokenizer_free(sd2);
    check_errors();
    cJSON_Delete(expected);
    free(prompts_text);
    free(expected_text);
    return test_summary();
}
