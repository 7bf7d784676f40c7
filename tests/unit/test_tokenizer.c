// The CLIP tokenizer against transformers' CLIPTokenizer: every prompt of
// tests/fixtures/tokenizer/prompts.txt must give exactly the ids of expected.json (made by
// tools/make_tokenizer_fixtures.py) for SD1 (pad <|endoftext|>) and SD2 (pad "!"), plus the
// ENGINE.md §7 test vectors, truncation, padding and the error paths.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "../../engine/tokenizer.h"
#include "test_util.h"

#define FIXTURES "tests/fixtures/tokenizer/"
#define CLIP_DIR "models/clip_tokenizer" // the shipped CLIP vocabulary (SD1 configs; sd2/ for SD2)

// The prompts of prompts.txt, one per line, as pointers into buf.
static int split_lines(char* buf, size_t n, char** lines, int max_lines) {
    int count = 0;
    for (size_t start = 0, i = 0; i < n && count < max_lines; i++)
        if (buf[i] == '\n') buf[i] = 0, lines[count++] = buf + start, start = i + 1;
    return count;
}

static void check_corpus(dato_tokenizer* tok, const char* variant, const cJSON* expected, char** prompts,
                         int n_prompts) {
    const cJSON* ids = cJSON_GetObjectItem(expected, "ids");
    const cJSON* n_tokens = cJSON_GetObjectItem(expected, "n_tokens");
    CHECK(cJSON_GetArraySize(ids) == n_prompts, "%s: %d expected rows for %d prompts", variant,
          cJSON_GetArraySize(ids), n_prompts);
    CHECK(dato_tokenizer_pad_id(tok) == cJSON_GetObjectItem(expected, "pad_id")->valueint, "%s: pad id %d", variant,
          dato_tokenizer_pad_id(tok));
    CHECK(dato_tokenizer_bos_id(tok) == cJSON_GetObjectItem(expected, "bos_id")->valueint, "%s: bos", variant);
    CHECK(dato_tokenizer_eos_id(tok) == cJSON_GetObjectItem(expected, "eos_id")->valueint, "%s: eos", variant);
    int max_len = dato_tokenizer_max_len(tok), matched = 0, truncated = 0;
    int32_t got[77];
    for (int p = 0; p < n_prompts && p < cJSON_GetArraySize(ids); p++) {
        const cJSON* row = cJSON_GetArrayItem(ids, p);
        int n = -1;
        dato_error err = {{0}};
        dato_status st = dato_tokenizer_encode(tok, prompts[p], got, &n, &err);
        int same = st == DATO_OK && cJSON_GetArraySize(row) == max_len &&
                   n == cJSON_GetArrayItem(n_tokens, p)->valueint;
        int first_diff = -1;
        for (int i = 0; same && i < max_len; i++)
            if (got[i] != cJSON_GetArrayItem(row, i)->valueint) same = 0, first_diff = i;
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
    CHECK(dato_tokenizer_open(&tok, FIXTURES "no-such-folder", &err) == DATO_ERR_IO && !tok, "missing folder");
    CHECK(strstr(err.msg, "no-such-folder/vocab.json") != NULL, "message names the file: %s", err.msg);

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

int main(void) {
    size_t prompts_size = 0, expected_size = 0;
    char* prompts_text = (char*)read_bytes(FIXTURES "prompts.txt", &prompts_size);
    char* expected_text = (char*)read_bytes(FIXTURES "expected.json", &expected_size);
    CHECK(prompts_text && expected_text, "fixtures missing: run tools/make_tokenizer_fixtures.py");
    if (!prompts_text || !expected_text) return test_summary();
    static char* prompts[1024];
    int n_prompts = split_lines(prompts_text, prompts_size, prompts, 1024);
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
    dato_tokenizer_free(sd1);
    dato_tokenizer_free(sd2);
    check_errors();
    cJSON_Delete(expected);
    free(prompts_text);
    free(expected_text);
    return test_summary();
}
