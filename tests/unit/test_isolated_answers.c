// The parent's side of the HDF5 readers that parse in a child (engine/core/isolated.h): the answers
// the child sends back, decoded by dato_checkpoint_decode_answer (search/checkpoint.c) and
// dato_stats_decode_answer (metrics/stats_io.c). Real answers (of tests/fuzz/corpus-checkpoint's
// files and tests/fixtures/fid/stats_dim4_h5py.h5) decode to what the file reader returns and encode
// back to the same bytes; every cut of them is refused naming the label and holding nothing; and
// the fuzzing findings of docs/FUZZING.md ("fuzz_checkpoint_answer", "fuzz_stats_answer").
// DATO_ANSWER_SEEDS=DIR also writes the fuzz seeds into DIR/corpus-checkpoint_answer and
// DIR/corpus-stats_answer (DIR = tests/fuzz regenerates them byte for byte).
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "file_seal.h"
#include "stats_io.h"
#include "test_util.h"

#define LABEL "test-answer"

static const char* seeds; // DATO_ANSWER_SEEDS, or NULL

static void write_seed(const char* folder, const char* name, const dato_bytes* answer) {
    if (!seeds) return;
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/%s", seeds, folder);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(write_bytes(path, answer->data, answer->len), "seed %s", path);
}

// A checkpoint file without its seal block (as the fuzz corpus keeps them) read as dato does.
static dato_status read_unsealed(const char* path, dato_checkpoint* c, dato_error* err) {
    size_t n = 0;
    unsigned char* body = read_bytes(path, &n);
    uint8_t* image = malloc(DATO_SEAL_BYTES + n); // (512 + n) the whole file
    if (!body || !image) {
        free(body);
        free(image);
        return dato_fail(err, DATO_ERR_IO, "%s: cannot read", path);
    }
    memcpy(image + DATO_SEAL_BYTES, body, n);
    dato_seal_image(image, DATO_SEAL_BYTES + n, DATO_CHECKPOINT_SEAL_MAGIC);
    dato_status st = dato_checkpoint_read_image(image, DATO_SEAL_BYTES + n, path, c, err);
    free(body);
    free(image);
    return st;
}

static int checkpoint_holds_nothing(const dato_checkpoint* c) {
    return !c->pop_genomes && !c->pop_objectives && !c->pop_violations && !c->arch_genomes && !c->arch_objectives &&
           !c->arch_extras && !c->arch_generations && !c->final_genomes && !c->final_scores;
}

// The answer of file: decodes to the checkpoint read from the file, encodes back the same, every cut refused.
static void test_checkpoint_answer(const char* file, const char* seed_name) {
    dato_checkpoint read, got;
    dato_error err;
    CHECK(read_unsealed(file, &read, &err) == DATO_OK, "%s", err.msg);
    dato_bytes answer = {0}, again = {0};
    dato_checkpoint_encode_answer(&read, &answer);
    write_seed("corpus-checkpoint_answer", seed_name, &answer);
    CHECK(dato_checkpoint_decode_answer(answer.data, answer.len, LABEL, &got, &err) == DATO_OK, "%s", err.msg);
    dato_checkpoint_encode_answer(&got, &again);
    CHECK(again.len == answer.len && memcmp(again.data, answer.data, answer.len) == 0,
          "%s: re-encoded answer differs (%zu vs %zu bytes)", file, again.len, answer.len);
    CHECK(got.n_evaluations == read.n_evaluations && got.n_final == read.n_final && got.pop == read.pop &&
              memcmp(got.arch_objectives, read.arch_objectives, (size_t)read.n_evaluations * 2 * sizeof(double)) == 0,
          "%s: decoded checkpoint differs", file);
    printf("%s: answer of %zu bytes (%lld evaluations, %d final), round trip exact\n", file, answer.len,
           (long long)got.n_evaluations, got.n_final);
    // every cut, and one byte too many: refused naming the label, holding nothing
    int refused = 0, cuts = 0;
    for (size_t len = 0; len <= answer.len + 1; len += len < sizeof read ? 997 : 1, cuts++) {
        dato_bytes longer = {0};
        dato_bytes_append(&longer, answer.data, answer.len);
        dato_bytes_append(&longer, "", 1);
        dato_checkpoint c;
        dato_status st = dato_checkpoint_decode_answer(longer.data, len, LABEL, &c, &err);
        if (len == answer.len) {
            CHECK(st == DATO_OK, "%s", err.msg);
            dato_checkpoint_free(&c);
        } else {
            refused += st == DATO_ERR_FORMAT && strstr(err.msg, LABEL) && checkpoint_holds_nothing(&c);
        }
        dato_bytes_free(&longer);
    }
    CHECK(refused == cuts - 1, "%s: %d of %d wrong lengths refused cleanly", file, refused, cuts - 1);
    dato_bytes_free(&answer);
    dato_bytes_free(&again);
    dato_checkpoint_free(&read);
    dato_checkpoint_free(&got);
}

// The answer of an HDF5 statistics file: decodes to what dato_stats_read_h5 returns, encodes back the
// same, every cut refused.
static void test_stats_answer(const char* file, const char* seed_name) {
    dato_fid_stats read, got;
    dato_stats_meta read_meta, got_meta;
    dato_error err;
    CHECK(dato_stats_read_h5(file, &read, &read_meta, &err) == DATO_OK, "%s", err.msg);
    dato_bytes answer = {0}, again = {0};
    dato_stats_encode_answer(&read, &read_meta, &answer);
    write_seed("corpus-stats_answer", seed_name, &answer);
    CHECK(dato_stats_decode_answer(answer.data, answer.len, LABEL, &got, &got_meta, &err) == DATO_OK, "%s", err.msg);
    dato_stats_encode_answer(&got, &got_meta, &again);
    CHECK(again.len == answer.len && memcmp(again.data, answer.data, answer.len) == 0, "%s: re-encoded answer differs",
          file);
    printf("%s: answer of %zu bytes (dim %d), round trip exact\n", file, answer.len, got.dim);
    int refused = 0;
    for (size_t len = 0; len < answer.len; len++) {
        dato_fid_stats s;
        dato_stats_meta m;
        dato_status st = dato_stats_decode_answer(answer.data, len, LABEL, &s, &m, &err);
        refused += st == DATO_ERR_FORMAT && strstr(err.msg, LABEL) && !s.mu && !s.sigma && !m.source[0];
    }
    CHECK(refused == (int)answer.len, "%s: %d of %zu cuts refused cleanly", file, refused, answer.len);
    dato_bytes_free(&answer);
    dato_bytes_free(&again);
    dato_fid_stats_free(&read);
    dato_fid_stats_free(&got);
}

// Fuzzing findings of fuzz_checkpoint_answer (docs/FUZZING.md), on the answer of going.h5 with one
// field of its head edited: each was accepted (the first three) or asked for 26 GB and more (the
// last) before the fix, and is now a DATO_ERR_FORMAT refusal naming label and the field.
enum { MODEL_UNTERMINATED, OBJECTIVE_UNKNOWN, VERSION_UNTERMINATED, EVALUATIONS_UNSENT, N_EDITS };
static const char* const EDIT_WANT[N_EDITS] = {"config field 'model' is not NUL-terminated",
                                               "config field 'objective' is 9, expected 0..",
                                               "version string not NUL-terminated",
                                               "its counts say 335007449224"};

static void edit_head(int edit, dato_checkpoint* head) {
    switch (edit) {
    case MODEL_UNTERMINATED: memset(head->cfg.model, 'a', sizeof head->cfg.model); break;
    case OBJECTIVE_UNKNOWN: head->cfg.objective = (dato_quality_objective)9; break;
    case VERSION_UNTERMINATED: memset(head->dato_version, 'x', sizeof head->dato_version); break;
    case EVALUATIONS_UNSENT: head->n_evaluations = (int64_t)1 << 32; break; // (12 evaluations sent)
    }
}

static void test_checkpoint_findings(const char* file) {
    dato_checkpoint read;
    dato_error err;
    CHECK(read_unsealed(file, &read, &err) == DATO_OK, "%s", err.msg);
    dato_bytes answer = {0};
    dato_checkpoint_encode_answer(&read, &answer);
    dato_checkpoint_free(&read);
    for (int edit = 0; edit < N_EDITS; edit++) {
        dato_bytes edited = {0};
        dato_bytes_append(&edited, answer.data, answer.len);
        static dato_checkpoint head; // (about 30 KB)
        memcpy(&head, edited.data, sizeof head);
        edit_head(edit, &head);
        memcpy(edited.data, &head, sizeof head);
        dato_checkpoint c;
        dato_status st = dato_checkpoint_decode_answer(edited.data, edited.len, LABEL, &c, &err);
        CHECK(st == DATO_ERR_FORMAT && strstr(err.msg, LABEL) && strstr(err.msg, EDIT_WANT[edit]) &&
                  checkpoint_holds_nothing(&c),
              "edit %d: status %d, '%s', expected '%s'", edit, (int)st, st ? err.msg : "", EDIT_WANT[edit]);
        printf("edit %d: %s\n", edit, st ? err.msg : "accepted");
        dato_checkpoint_free(&c);
        dato_bytes_free(&edited);
    }
    dato_bytes_free(&answer);
}

int main(void) {
    seeds = getenv("DATO_ANSWER_SEEDS");
    test_checkpoint_answer("tests/fuzz/corpus-checkpoint/going.h5", "going.bin");
    test_checkpoint_answer("tests/fuzz/corpus-checkpoint/finished.h5", "finished.bin");
    test_stats_answer("tests/fixtures/fid/stats_dim4_h5py.h5", "stats_dim4_h5py.bin");
    test_checkpoint_findings("tests/fuzz/corpus-checkpoint/going.h5");
    return test_summary();
}
