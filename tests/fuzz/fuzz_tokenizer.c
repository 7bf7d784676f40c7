// libFuzzer target for the tokenizer files (dato_tokenizer_open, engine/models/tokenizer.c) and
// the encoder running on what they define. dato_tokenizer_open takes a folder, so the input is
// split at its NUL bytes into the files of a scratch folder on tmpfs:
//   part 0   vocab.json, or tokenizer.json when part 1 is empty
//   part 1   merges.txt
//   part 2   tokenizer_config.json      (no file when empty)
//   part 3   special_tokens_map.json    (no file when empty)
//   part 4   a prompt, encoded when the folder opens
// Any bytes must be accepted or refused without a sanitizer report; an opened tokenizer encodes
// the prompt (or refuses it as invalid UTF-8) into bos, content ids >= 0, eos and pad ids, with
// the count in 2..max_len. Build and run: docs/FUZZING.md.
#include "fuzz_util.h"
#include "tokenizer.h"

static const char* const FILES[4] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const uint8_t* part[5];
    size_t len[5];
    fuzz_split(data, size, part, len, 5);
    fuzz_unlink("tokenizer.json");
    for (int i = 0; i < 4; i++) fuzz_unlink(FILES[i]);
    if (len[1]) {
        fuzz_file(0, FILES[0], part[0], len[0]);
        fuzz_file(1, FILES[1], part[1], len[1]);
    } else {
        fuzz_file(0, "tokenizer.json", part[0], len[0]);
    }
    for (int i = 2; i < 4; i++)
        if (len[i]) fuzz_file(i, FILES[i], part[i], len[i]);
    dato_tokenizer* t = NULL;
    dato_error err;
    if (dato_tokenizer_open(&t, fuzz_dir(), &err) != DATO_OK) {
        fuzz_check_error(&err, fuzz_dir());
        INVARIANT(t == NULL);
        return 0;
    }
    int max_len = dato_tokenizer_max_len(t), n = 0;
    INVARIANT(max_len >= 2 && max_len <= 65536);
    char* prompt = fuzz_text(part[4], len[4]);
    int32_t* ids = malloc((size_t)max_len * sizeof *ids); // (max_len)
    if (prompt && ids) {
        if (dato_tokenizer_encode(t, prompt, ids, &n, &err) == DATO_OK) {
            INVARIANT(n >= 2 && n <= max_len);
            INVARIANT(ids[0] == dato_tokenizer_bos_id(t) && ids[n - 1] == dato_tokenizer_eos_id(t));
            for (int i = 1; i < n - 1; i++) INVARIANT(ids[i] >= 0);
            for (int i = n; i < max_len; i++) INVARIANT(ids[i] == dato_tokenizer_pad_id(t));
        } else {
            fuzz_check_error(&err, "");
        }
    }
    free(ids);
    free(prompt);
    dato_tokenizer_free(t);
    return 0;
}
