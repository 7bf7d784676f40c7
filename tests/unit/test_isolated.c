// A parse in a forked child (engine/core/isolated.c): an answer comes back byte for byte (one
// larger than the parent's first buffer too), a parse's own refusal passes through, and a parse
// that crashes, exits without answering, loops past the deadline or answers too much is a
// DATO_ERR_FORMAT refusal naming the file, with this process unharmed.
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "isolated.h"
#include "test_util.h"

#define LABEL "/data/hostile.h5"
#define BIG ((size_t)1 << 20) // bytes; the parent's buffer starts at 64 KiB

// Bytes [from, from + n) of the answer the succeeding parse sends, into p.
static void pattern(uint8_t* p, size_t from, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((from + i) * 2654435761u >> 13);
}

// ctx: the number of bytes to answer, appended in chunks as a parser would.
static dato_status parse_answers(void* ctx, dato_bytes* answer, dato_error* err) {
    (void)err;
    size_t n = *(const size_t*)ctx;
    uint8_t chunk[4096];
    for (size_t done = 0; done < n; done += sizeof chunk) {
        size_t k = n - done < sizeof chunk ? n - done : sizeof chunk;
        pattern(chunk, done, k);
        dato_bytes_append(answer, chunk, k);
    }
    printf("the child's stdout goes to /dev/null\n");
    return DATO_OK;
}

static dato_status parse_refuses(void* ctx, dato_bytes* answer, dato_error* err) {
    (void)ctx;
    dato_bytes_append(answer, "partial", 7);
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "%s: dataset 'mu' is int8", LABEL);
}

static dato_status parse_crashes(void* ctx, dato_bytes* answer, dato_error* err) {
    (void)ctx, (void)answer, (void)err;
    raise(SIGSEGV);
    return DATO_OK;
}

static dato_status parse_exits(void* ctx, dato_bytes* answer, dato_error* err) {
    (void)ctx, (void)answer, (void)err;
    _exit(0); // a library that quits the process on its own
}

static dato_status parse_loops(void* ctx, dato_bytes* answer, dato_error* err) {
    (void)ctx, (void)answer, (void)err;
    for (;;) pause();
    return DATO_OK;
}

static dato_status run(dato_isolated_parse parse, size_t n, size_t max_answer, dato_bytes* answer, dato_error* err) {
    return dato_isolated_run(parse, &n, LABEL, "HDF5", 1000, max_answer, answer, err);
}

static void test_answers(void) {
    uint8_t* want = malloc(BIG); // (BIG) bytes, as parse_answers builds them
    pattern(want, 0, BIG);
    size_t sizes[3] = {0, 37, BIG};
    for (int i = 0; i < 3; i++) {
        dato_bytes got;
        dato_error err = {{0}};
        dato_status st = run(parse_answers, sizes[i], BIG, &got, &err);
        size_t diff = 0; // bytes that differ
        for (size_t j = 0; st == DATO_OK && j < got.len && j < sizes[i]; j++) diff += got.data[j] != want[j];
        printf("answer of %zu bytes: received %zu, %zu differ\n", sizes[i], got.len, diff);
        CHECK(st == DATO_OK && got.len == sizes[i] && diff == 0, "%s", err.msg);
        dato_bytes_free(&got);
    }
    free(want);
}

// A failure: the status, the answer left empty, and every word of the message.
static void expect_refused(const char* what, dato_isolated_parse parse, size_t max_answer, dato_status want,
                           const char* words0, const char* words1) {
    dato_bytes got;
    dato_error err = {{0}};
    double t0 = dato_clock_s();
    dato_status st = run(parse, 100, max_answer, &got, &err);
    double seconds = dato_clock_s() - t0;
    printf("%s: %.1f s, '%s'\n", what, seconds, err.msg);
    CHECK(st == want && got.data == NULL && got.len == 0 && strstr(err.msg, LABEL) && strstr(err.msg, words0) &&
              strstr(err.msg, words1) && seconds < 5,
          "%s: status %d, '%s', %.1f s", what, (int)st, err.msg, seconds);
}

int main(void) {
    test_answers();
    expect_refused("parse refuses", parse_refuses, 64, DATO_ERR_UNSUPPORTED, "dataset 'mu' is int8", "int8");
#ifdef __SANITIZE_ADDRESS__ // ASan's handler reports the SEGV and exits with status 1
    expect_refused("parse crashes", parse_crashes, 64, DATO_ERR_FORMAT, "HDF5 failed parsing it", "exit status 1");
#else
    expect_refused("parse crashes", parse_crashes, 64, DATO_ERR_FORMAT, "HDF5 crashed parsing it", "signal 11");
#endif
    expect_refused("parse exits", parse_exits, 64, DATO_ERR_FORMAT, "HDF5 exited without a full answer",
                   "exit status 0");
    expect_refused("parse loops", parse_loops, 64, DATO_ERR_FORMAT, "HDF5 gave no answer in 3 s", "damaged");
    expect_refused("answer too long", parse_answers, 99, DATO_ERR_FORMAT, "answer has 100 bytes",
                   "more than the 99 allowed");
    return test_summary();
}
