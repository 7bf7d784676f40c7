// The evaluation pool (search/eval_pool.h):
// - one process: every task evaluated here, results by index, progress after each, a failing task
//   named with its rank and index, no ranks to dispatch to refused;
// - lanes (in-process evaluators, each its own handlers): a request answered by each, 40 tasks
//   spread over three lanes and returned by index, a lane's failure named, the pool usable after;
// - with MPI (this test starts itself under `mpirun -np 3` when it can): setup requests answered by
//   every worker, 40 tasks of uneven cost spread over all three ranks and returned by index, a
//   worker's failure named, and the pool usable after it (the other worker's task drained).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "eval_pool.h"
#include "test_util.h"

#define KIND 7 // the kind every task is mapped with: it must reach evaluate on every rank
#define RESULT_BYTES (2 * sizeof(double))

typedef struct {
    int id;        // the rank, or the lane, whose handlers these are
    int fail_from; // tasks from this index on fail
    int progress_calls, progress_last;
} ctx_t;

// A task is its index (int32); its result is (index^2, the rank or lane that ran it). Task i sleeps
// (i % 5) ms, so ranks finish out of order.
static dato_status evaluate(void* c, int kind, const uint8_t* task, void* out, dato_error* err) {
    ctx_t* ctx = c;
    double* result = out;
    int32_t i;
    memcpy(&i, task, sizeof i);
    if (kind != KIND) return dato_fail(err, DATO_ERR_INVALID, "task kind %d, expected %d", kind, KIND);
    if (i >= ctx->fail_from) return dato_fail(err, DATO_ERR_INVALID, "task %d refuses", i);
    struct timespec t = {0, (long)(i % 5) * 1000000L};
    nanosleep(&t, NULL);
    result[0] = (double)i * i;
    result[1] = ctx->id;
    return DATO_OK;
}

static dato_status answer(void* c, const void* msg, size_t bytes, void* reply, size_t reply_bytes, dato_error* err) {
    ctx_t* ctx = c;
    if (bytes != 6 || memcmp(msg, "hello", 6) || reply_bytes != sizeof(int32_t))
        return dato_fail(err, DATO_ERR_INVALID, "unexpected request of %zu bytes", bytes);
    int32_t r = 10 * ctx->id;
    memcpy(reply, &r, sizeof r);
    return DATO_OK;
}

static void count_progress(void* c, int done, int total) {
    ctx_t* ctx = c;
    ctx->progress_calls += done > ctx->progress_last && done <= total;
    ctx->progress_last = done;
}

static int32_t tasks[64];
static double results[64 * 2];
static dato_eval_trace trace[64];

// Maps n tasks and checks every result against its index: the count of wrong ones.
static int wrong_results(int n) {
    int wrong = 0;
    for (int i = 0; i < n; i++)
        wrong += results[2 * i] != (double)i * i || results[2 * i + 1] != trace[i].rank || trace[i].eval_s < 0;
    return wrong;
}

static void one_process(void) {
    dato_eval_pool pool;
    dato_error err;
    CHECK(dato_eval_pool_init(&pool, NULL, NULL, &err) == DATO_OK && pool.size == 1 && pool.rank == 0,
          "a pool of one: %s", err.msg);
    ctx_t ctx = {.id = pool.rank, .fail_from = 1 << 30};
    dato_eval_handlers h = {.request = answer, .evaluate = evaluate, .ctx = &ctx};
    for (int i = 0; i < 64; i++) tasks[i] = i;
    CHECK(dato_eval_pool_request(&pool, "hello", 6, NULL, sizeof(int32_t), &err) == DATO_OK, "request: %s", err.msg);
    memset(results, 0xff, sizeof results);
    dato_status st = dato_eval_pool_map(&pool, &h, KIND, (const uint8_t*)tasks, 20, sizeof(int32_t), results, RESULT_BYTES, trace,
                                        count_progress, &ctx, &err);
    int wrong = wrong_results(20);
    printf("one process: 20 tasks, %d wrong, %d progress calls\n", wrong, ctx.progress_calls);
    CHECK(st == DATO_OK && wrong == 0 && ctx.progress_calls == 20, "map: %s", err.msg);
    ctx.fail_from = 7;
    st = dato_eval_pool_map(&pool, &h, KIND, (const uint8_t*)tasks, 20, sizeof(int32_t), results, RESULT_BYTES, NULL, NULL, NULL, &err);
    printf("a failing task: %s\n", err.msg);
    CHECK(st == DATO_ERR_PEER && strstr(err.msg, "rank 0") && strstr(err.msg, "task 7") && strstr(err.msg, "refuses"),
          "the failure is not named: %s", err.msg);
    CHECK(dato_eval_pool_map(&pool, NULL, KIND, (const uint8_t*)tasks, 4, sizeof(int32_t), results, RESULT_BYTES, NULL, NULL, NULL,
                             &err) == DATO_ERR_INVALID, "no rank to evaluate on was accepted");
    CHECK(dato_eval_pool_close(&pool, &err) == DATO_OK, "close: %s", err.msg);
}

static void lanes(void) {
    dato_eval_pool pool;
    dato_error err;
    CHECK(dato_eval_pool_init(&pool, NULL, NULL, &err) == DATO_OK, "a pool of one: %s", err.msg);
    ctx_t ctx[3], progress = {0};
    dato_eval_handlers h[3];
    for (int l = 0; l < 3; l++) {
        ctx[l] = (ctx_t){.id = l + 1, .fail_from = 1 << 30};
        h[l] = (dato_eval_handlers){.request = answer, .evaluate = evaluate, .ctx = &ctx[l]};
    }
    CHECK(dato_eval_pool_set_lanes(&pool, h, -1, &err) == DATO_ERR_INVALID, "-1 lanes accepted");
    CHECK(dato_eval_pool_set_lanes(&pool, h, 3, &err) == DATO_OK && dato_eval_pool_workers(&pool) == 3, "3 lanes: %s",
          err.msg);
    int32_t replies[3] = {0};
    CHECK(dato_eval_pool_request(&pool, "hello", 6, replies, sizeof(int32_t), &err) == DATO_OK && replies[0] == 10 &&
              replies[1] == 20 && replies[2] == 30, "request: replies %d, %d, %d: %s", replies[0], replies[1], replies[2],
          err.msg);
    for (int i = 0; i < 64; i++) tasks[i] = i;
    memset(results, 0xff, sizeof results);
    dato_status st = dato_eval_pool_map(&pool, NULL, KIND, (const uint8_t*)tasks, 40, sizeof(int32_t), results,
                                        RESULT_BYTES, trace, count_progress, &progress, &err);
    int wrong = wrong_results(40), by_lane[4] = {0};
    for (int i = 0; i < 40; i++) by_lane[trace[i].rank & 3]++;
    printf("3 lanes: 40 tasks, %d wrong, by lane 1/2/3: %d/%d/%d (rank 0: %d), %d progress calls\n", wrong, by_lane[1],
           by_lane[2], by_lane[3], by_lane[0], progress.progress_calls);
    CHECK(st == DATO_OK && wrong == 0 && by_lane[1] && by_lane[2] && by_lane[3] && !by_lane[0], "map: %s", err.msg);
    CHECK(progress.progress_calls >= 1 && progress.progress_last == 40, "progress ended at %d", progress.progress_last);
    ctx[1].fail_from = 0; // lane 2 fails every task
    st = dato_eval_pool_map(&pool, NULL, KIND, (const uint8_t*)tasks, 40, sizeof(int32_t), results, RESULT_BYTES, NULL,
                            NULL, NULL, &err);
    printf("a lane's failure: %s\n", err.msg);
    CHECK(st == DATO_ERR_PEER && strstr(err.msg, "lane 2") && strstr(err.msg, "refuses"), "the failure is not named: %s",
          err.msg);
    ctx[1].fail_from = 1 << 30;
    st = dato_eval_pool_map(&pool, NULL, KIND, (const uint8_t*)tasks, 10, sizeof(int32_t), results, RESULT_BYTES, trace,
                            NULL, NULL, &err);
    CHECK(st == DATO_OK && wrong_results(10) == 0, "the pool after a failure: %s", err.msg);
    CHECK(dato_eval_pool_close(&pool, &err) == DATO_OK, "close: %s", err.msg);
}

// Under mpirun: rank 0 drives, the others serve. Returns the exit code.
static int ranks(int* argc, char*** argv) {
    dato_eval_pool pool;
    dato_error err;
    if (dato_eval_pool_init(&pool, argc, argv, &err)) {
        fprintf(stderr, "init: %s\n", err.msg);
        return 1;
    }
    ctx_t ctx = {.id = pool.rank, .fail_from = 1 << 30};
    dato_eval_handlers h = {.request = answer, .evaluate = evaluate, .ctx = &ctx};
    if (pool.rank != 0) {
        ctx.fail_from = 100; // only the workers fail these
        dato_status st = dato_eval_pool_serve(&pool, &h, &err);
        if (st) fprintf(stderr, "serve: %s\n", err.msg);
        dato_eval_pool_close(&pool, &err);
        return st ? 1 : 0;
    }
    CHECK(pool.size == 3, "%d ranks, expected 3", pool.size);
    int32_t replies[2] = {0, 0};
    CHECK(dato_eval_pool_request(&pool, "hello", 6, replies, sizeof(int32_t), &err) == DATO_OK && replies[0] == 10 &&
              replies[1] == 20, "request: replies %d, %d: %s", replies[0], replies[1], err.msg);
    for (int i = 0; i < 64; i++) tasks[i] = i;
    dato_status st = dato_eval_pool_map(&pool, &h, KIND, (const uint8_t*)tasks, 40, sizeof(int32_t), results, RESULT_BYTES, trace,
                                        count_progress, &ctx, &err);
    int wrong = wrong_results(40), by_rank[3] = {0};
    for (int i = 0; i < 40; i++) by_rank[trace[i].rank]++;
    printf("3 ranks: 40 tasks, %d wrong, by rank 0/1/2: %d/%d/%d, %d progress calls\n", wrong, by_rank[0], by_rank[1],
           by_rank[2], ctx.progress_calls);
    CHECK(st == DATO_OK && wrong == 0 && by_rank[0] && by_rank[1] && by_rank[2], "map: %s", err.msg);
    CHECK(ctx.progress_calls >= 1 && ctx.progress_last == 40, "progress ended at %d", ctx.progress_last);
    // Tasks 100.. fail on the workers, which always get some.
    for (int i = 0; i < 30; i++) tasks[i] = 100 + i;
    st = dato_eval_pool_map(&pool, &h, KIND, (const uint8_t*)tasks, 30, sizeof(int32_t), results, RESULT_BYTES, trace, NULL, NULL, &err);
    printf("a worker's failure: %s\n", err.msg);
    CHECK(st == DATO_ERR_PEER && strstr(err.msg, "refuses") && (strstr(err.msg, "rank 1") || strstr(err.msg, "rank 2")),
          "a worker's failure is not named: %s", err.msg);
    for (int i = 0; i < 64; i++) tasks[i] = i;
    st = dato_eval_pool_map(&pool, &h, KIND, (const uint8_t*)tasks, 10, sizeof(int32_t), results, RESULT_BYTES, trace, NULL, NULL, &err);
    CHECK(st == DATO_OK && wrong_results(10) == 0, "the pool after a failure: %s", err.msg);
    CHECK(dato_eval_pool_close(&pool, &err) == DATO_OK, "close: %s", err.msg);
    return test_summary();
}

int main(int argc, char** argv) {
    if (argc > 1 && !strcmp(argv[1], "--ranks")) return ranks(&argc, &argv);
    one_process();
    lanes();
    if (!dato_eval_pool_have_mpi() || system("command -v mpirun > /dev/null 2>&1")) {
        printf("the MPI part is skipped: %s\n", dato_eval_pool_have_mpi() ? "no mpirun on PATH" : "built without MPI");
        return test_summary();
    }
    char self[4096], cmd[8300];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    snprintf(cmd, sizeof cmd, "mpirun --oversubscribe%s -np 3 %s --ranks", geteuid() == 0 ? " --allow-run-as-root" : "",
             self);
    int rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "the 3-rank part failed (exit %d)", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
    return test_summary();
}
