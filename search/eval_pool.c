// Evaluation spread over processes (search/eval_pool.h).
//
// Messages, rank 0 <-> worker, each one MPI_BYTE buffer whose tag says what it is:
//   REQUEST  0 -> w   u64 reply_bytes, then the request
//   REPLY    w -> 0   the reply (reply_bytes)
//   TASK     0 -> w   u64 seq, i64 index, i32 kind, i32 0, u64 result_bytes, then the task
//   RESULT   w -> 0   u64 seq, i64 index, f64 eval_s, then the result (result_bytes)
//   FAILED   w -> 0   i64 index (-1: a request), then the error message
//   STOP     0 -> w   empty: return from serve
// Every wait polls (MPI_Iprobe, then a sleep of 10 us to 1 ms, see idle): blocking MPI calls spin a
// core, and an idle worker must leave its core to the ranks beside it; polling also gives the hang
// timeout a clock.
#include "eval_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "latency.h"

#ifdef DATO_HAVE_MPI
#include <mpi.h>
#endif

enum { TAG_REQUEST = 1, TAG_REPLY, TAG_TASK, TAG_RESULT, TAG_FAILED, TAG_STOP };
enum { IDLE = -1, HOLDS_REQUEST = -2 }; // busy_task values besides a task index

typedef struct {
    uint64_t seq;
    int64_t index;
    int32_t kind, pad;
    uint64_t result_bytes;
} task_header;

typedef struct {
    uint64_t seq;
    int64_t index;
    double eval_s;
} result_header;

int dato_eval_pool_have_mpi(void) {
#ifdef DATO_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

// ---- init -----------------------------------------------------------------------------------------------

// The job's size as the launcher announces it in the environment, 0 when no launcher started us.
static int launcher_size(void) {
    const char* vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}; // Open MPI's mpirun; PMI (MPICH, srun)
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char* v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

static dato_status alloc_ranks(dato_eval_pool* pool, dato_error* err) {
    pool->where = calloc((size_t)pool->size, sizeof *pool->where);
    pool->busy_task = malloc((size_t)pool->size * sizeof *pool->busy_task);
    pool->busy_since = calloc((size_t)pool->size, sizeof *pool->busy_since);
    if (!pool->where || !pool->busy_task || !pool->busy_since)
        return dato_fail(err, DATO_ERR_NOMEM, "evaluation pool: out of memory for %d ranks", pool->size);
    for (int r = 0; r < pool->size; r++) pool->busy_task[r] = IDLE;
    return DATO_OK;
}

// "rank R (host, pid P)" or "lane L (...)": what names an evaluator in messages.
static void where_of(char* out, const char* what, int n) {
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    snprintf(out, 96, "%s %d (%.60s, pid %ld)", what, n, host, (long)getpid());
}

dato_status dato_eval_pool_init(dato_eval_pool* pool, int* argc, char*** argv, dato_error* err) {
    *pool = (dato_eval_pool){.size = 1, .local_size = 1, .timeout_s = 600};
    int launched = launcher_size();
#ifdef DATO_HAVE_MPI
    if (launched) {
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return dato_fail(err, DATO_ERR_PEER, "MPI_Init_thread failed");
        pool->mpi = 1;
        if (provided < MPI_THREAD_FUNNELED)
            return dato_fail(err, DATO_ERR_UNSUPPORTED, "this MPI library gives no thread support "
                             "(MPI_THREAD_FUNNELED): rank 0 could not evaluate beside its messages");
        MPI_Comm_rank(MPI_COMM_WORLD, &pool->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &pool->size);
        MPI_Comm node;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, pool->rank, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &pool->local_rank);
        MPI_Comm_size(node, &pool->local_size);
        MPI_Comm_free(&node);
        DATO_TRY(alloc_ranks(pool, err));
        char mine[96];
        where_of(mine, "rank", pool->rank);
        MPI_Allgather(mine, 96, MPI_CHAR, pool->where, 96, MPI_CHAR, MPI_COMM_WORLD);
        return DATO_OK;
    }
#else
    (void)argc;
    (void)argv;
    if (launched > 1)
        return dato_fail(err, DATO_ERR_UNSUPPORTED, "started as one of %d processes, but this build has no MPI: "
                         "each would run the whole search alone (install libopenmpi-dev and rebuild with -DDATO_MPI=ON)",
                         launched);
#endif
    DATO_TRY(alloc_ranks(pool, err));
    where_of(pool->where[0], "rank", 0);
    return DATO_OK;
}

// ---- the queue of a map: rank 0's threads and the lanes --------------------------------------------------

// The tasks of one map call, shared by the threads that evaluate them: rank 0's evaluating thread
// beside its message thread, or the lanes.
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t progressed; // a task finished or failed
    int kind;
    const uint8_t* tasks;
    size_t task_bytes;
    uint8_t* results;
    size_t result_bytes;
    dato_eval_trace* trace;
    int n, next, done;
    int stop;                 // take no more tasks
    dato_status failed;       // the first failure of an evaluating thread
    int failed_task, failed_by;
    dato_error failed_err;
} map_queue;

// One evaluating thread: its handlers and the worker number its trace carries (0: rank 0's own).
typedef struct {
    map_queue* q;
    const dato_eval_handlers* h;
    int id;
} evaluator_thread;

static int take_task(map_queue* q) {
    pthread_mutex_lock(&q->mu);
    int i = q->stop || q->next >= q->n ? -1 : q->next++;
    pthread_mutex_unlock(&q->mu);
    return i;
}

static void* evaluate_in_thread(void* arg) {
    evaluator_thread* t = arg;
    map_queue* q = t->q;
    for (int i; (i = take_task(q)) >= 0;) {
        double t0 = dato_clock_s();
        dato_error e;
        dato_status st = t->h->evaluate(t->h->ctx, q->kind, q->tasks + (size_t)i * q->task_bytes,
                                        q->results + (size_t)i * q->result_bytes, &e);
        double dt = dato_clock_s() - t0;
        pthread_mutex_lock(&q->mu);
        if (st && !q->failed) {
            q->failed = st;
            q->failed_task = i;
            q->failed_by = t->id;
            q->failed_err = e;
        }
        if (st) q->stop = 1;
        else {
            if (q->trace) q->trace[i] = (dato_eval_trace){t->id, dt, dt};
            q->done++;
        }
        pthread_cond_signal(&q->progressed);
        pthread_mutex_unlock(&q->mu);
        if (st) break;
    }
    return NULL;
}

static void queue_init(map_queue* q, int kind, const uint8_t* tasks, int n, size_t task_bytes, void* results,
                       size_t result_bytes, dato_eval_trace* trace) {
    *q = (map_queue){.kind = kind, .tasks = tasks, .task_bytes = task_bytes, .results = results,
                     .result_bytes = result_bytes, .trace = trace, .n = n};
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->progressed, NULL);
}

static void queue_destroy(map_queue* q) {
    pthread_cond_destroy(&q->progressed);
    pthread_mutex_destroy(&q->mu);
}

// ---- lanes ----------------------------------------------------------------------------------------------------

dato_status dato_eval_pool_set_lanes(dato_eval_pool* pool, const dato_eval_handlers* lanes, int n, dato_error* err) {
    if (pool->size != 1 || n < 0 || (n && !lanes))
        return dato_fail(err, DATO_ERR_INVALID, "evaluation pool: %d lanes on a pool of %d ranks (lanes are for one "
                         "process)", n, pool->size);
    char (*where)[96] = realloc(pool->where, (size_t)(1 + n) * sizeof *where);
    if (!where) return dato_fail(err, DATO_ERR_NOMEM, "evaluation pool: out of memory for %d lanes", n);
    pool->where = where;
    for (int l = 1; l <= n; l++) where_of(pool->where[l], "lane", l);
    pool->lanes = n;
    pool->lane = lanes;
    return DATO_OK;
}

int dato_eval_pool_workers(const dato_eval_pool* pool) { return pool->size - 1 + pool->lanes; }

// A request answered by every lane in turn, on this thread. Not side by side: setting a lane up
// reads files through isolated child processes (engine/core/isolated.h), and a fork while another
// thread holds a lock (malloc's) leaves the child stuck on it.
static dato_status request_lanes(dato_eval_pool* pool, const void* msg, size_t bytes, void* replies, size_t reply_bytes,
                                 dato_error* err) {
    for (int l = 0; l < pool->lanes; l++) {
        const dato_eval_handlers* h = &pool->lane[l];
        dato_error e;
        dato_status st = h->request(h->ctx, msg, bytes, replies ? (uint8_t*)replies + (size_t)l * reply_bytes : NULL,
                                    reply_bytes, &e);
        if (st) return dato_fail(err, st, "%s: %s", pool->where[l + 1], e.msg);
    }
    return DATO_OK;
}

// Every task on the lanes, one thread each; this thread reports progress as they finish.
static dato_status map_lanes(dato_eval_pool* pool, map_queue* q, void (*progress)(void*, int, int), void* progress_ctx,
                             dato_error* err) {
    int n = pool->lanes;
    evaluator_thread* t = calloc((size_t)n, sizeof *t);
    pthread_t* th = calloc((size_t)n, sizeof *th);
    if (!t || !th) {
        free(t), free(th);
        return dato_fail(err, DATO_ERR_NOMEM, "evaluation pool: out of memory for %d lanes", n);
    }
    int started = 0;
    for (; started < n; started++) {
        t[started] = (evaluator_thread){q, &pool->lane[started], started + 1};
        if (pthread_create(&th[started], NULL, evaluate_in_thread, &t[started])) break;
    }
    if (!started) evaluate_in_thread(&t[0]); // no thread to be had: the first lane's work, here
    pthread_mutex_lock(&q->mu);
    for (int reported = 0; started;) {
        while (q->done == reported && !q->failed && q->done < q->n) pthread_cond_wait(&q->progressed, &q->mu);
        if (q->failed || q->done == q->n) break;
        reported = q->done;
        pthread_mutex_unlock(&q->mu);
        if (progress) progress(progress_ctx, reported, q->n);
        pthread_mutex_lock(&q->mu);
    }
    q->stop = 1;
    pthread_mutex_unlock(&q->mu);
    for (int l = 0; l < started; l++) pthread_join(th[l], NULL);
    free(t), free(th);
    if (q->failed)
        return dato_fail(err, DATO_ERR_PEER, "%s, task %d: %s", pool->where[q->failed_by], q->failed_task,
                         q->failed_err.msg);
    if (progress) progress(progress_ctx, q->n, q->n);
    return DATO_OK;
}

// ---- the single-process path -------------------------------------------------------------------------------

static dato_status map_here(const dato_eval_handlers* local, int kind, const uint8_t* tasks, int n, size_t task_bytes,
                            uint8_t* results, size_t result_bytes, dato_eval_trace* trace,
                            void (*progress)(void*, int, int), void* progress_ctx, const char* where,
                            dato_error* err) {
    for (int i = 0; i < n; i++) {
        double t0 = dato_clock_s();
        dato_error e;
        if (local->evaluate(local->ctx, kind, tasks + (size_t)i * task_bytes, results + (size_t)i * result_bytes, &e))
            return dato_fail(err, DATO_ERR_PEER, "%s, task %d: %s", where, i, e.msg);
        double dt = dato_clock_s() - t0;
        if (trace) trace[i] = (dato_eval_trace){0, dt, dt};
        if (progress) progress(progress_ctx, i + 1, n);
    }
    return DATO_OK;
}

#ifdef DATO_HAVE_MPI

// ---- rank 0: messages ---------------------------------------------------------------------------------------

// Sleeps between polls for a message: 10 us after one came or went, doubling to 1 ms while none
// comes, so a busy exchange answers in microseconds and an idle rank costs its core nothing.
static void idle(dato_eval_pool* pool) {
    pool->poll_wait_ms = pool->poll_wait_ms < 0.01 ? 0.01 : pool->poll_wait_ms * 2 > 1 ? 1 : pool->poll_wait_ms * 2;
    struct timespec t = {0, (long)(pool->poll_wait_ms * 1e6)};
    nanosleep(&t, NULL);
}

static dato_status grow_buffer(dato_eval_pool* pool, size_t bytes, dato_error* err) {
    if (bytes <= pool->buf_bytes) return DATO_OK;
    uint8_t* b = realloc(pool->buf, bytes);
    if (!b) return dato_fail(err, DATO_ERR_NOMEM, "evaluation pool: out of memory for a %zu-byte message", bytes);
    pool->buf = b;
    pool->buf_bytes = bytes;
    return DATO_OK;
}


// Sends a message; its answer is expected soon, so polling starts over at its shortest sleep.
static void send_bytes(dato_eval_pool* pool, const void* data, size_t bytes, int to, int tag) {
    MPI_Send(data, (int)bytes, MPI_BYTE, to, tag, MPI_COMM_WORLD);
    pool->poll_wait_ms = 0;
}

// Takes the next message from src (MPI_ANY_SOURCE: anyone) into pool->buf if one has arrived:
// 1 and its source, tag and size, or 0 when none is waiting.
static int poll_message(dato_eval_pool* pool, int src, int* from, int* tag, size_t* bytes, dato_error* err) {
    int flag = 0, count = 0;
    MPI_Status st;
    MPI_Iprobe(src, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    if (grow_buffer(pool, (size_t)count + 1, err)) return -1;
    MPI_Recv(pool->buf, count, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    pool->buf[count] = 0; // a FAILED message's text ends here
    pool->poll_wait_ms = 0;
    *from = st.MPI_SOURCE;
    *tag = st.MPI_TAG;
    *bytes = (size_t)count;
    return 1;
}

// The first worker holding a task or request for longer than the timeout: fails naming it.
static dato_status check_hung(dato_eval_pool* pool, dato_error* err) {
    double now = dato_clock_s();
    for (int r = 1; r < pool->size; r++) {
        if (pool->busy_task[r] == IDLE || now - pool->busy_since[r] <= pool->timeout_s) continue;
        pool->hung = 1;
        char what[64];
        if (pool->busy_task[r] == HOLDS_REQUEST) snprintf(what, sizeof what, "the setup request");
        else snprintf(what, sizeof what, "task %d", pool->busy_task[r]);
        return dato_fail(err, DATO_ERR_PEER, "%s has not answered for %.0f s (it holds %s): stopping the run",
                         pool->where[r], now - pool->busy_since[r], what);
    }
    return DATO_OK;
}

// A worker's FAILED message in pool->buf (bytes) as an error naming it.
static dato_status worker_failed(dato_eval_pool* pool, int from, size_t bytes, dato_error* err) {
    int64_t index = -1;
    if (bytes >= sizeof index) memcpy(&index, pool->buf, sizeof index);
    const char* text = bytes > sizeof index ? (const char*)pool->buf + sizeof index : "(no message)";
    pool->busy_task[from] = IDLE;
    if (index < 0) return dato_fail(err, DATO_ERR_PEER, "%s: %s", pool->where[from], text);
    return dato_fail(err, DATO_ERR_PEER, "%s, task %lld: %s", pool->where[from], (long long)index, text);
}

// Waits for the answers workers still owe from a call that failed (a worker takes a new message
// only after answering the last one), and drops them.
static dato_status drain(dato_eval_pool* pool, dato_error* err) {
    for (;;) {
        int holding = 0;
        for (int r = 1; r < pool->size; r++) holding |= pool->busy_task[r] != IDLE;
        if (!holding) return DATO_OK;
        int from, tag;
        size_t bytes;
        int m = poll_message(pool, MPI_ANY_SOURCE, &from, &tag, &bytes, err);
        if (m < 0) return DATO_ERR_NOMEM;
        if (m) pool->busy_task[from] = IDLE;
        else DATO_TRY(check_hung(pool, err));
        if (!m) idle(pool);
    }
}

static dato_status request_over_ranks(dato_eval_pool* pool, const void* msg, size_t bytes, void* replies,
                                      size_t reply_bytes, dato_error* err) {
    DATO_TRY(drain(pool, err));
    DATO_TRY(grow_buffer(pool, sizeof(uint64_t) + bytes, err));
    uint64_t rb = reply_bytes;
    memcpy(pool->buf, &rb, sizeof rb);
    memcpy(pool->buf + sizeof rb, msg, bytes);
    for (int r = 1; r < pool->size; r++) {
        send_bytes(pool, pool->buf, sizeof rb + bytes, r, TAG_REQUEST);
        pool->busy_task[r] = HOLDS_REQUEST;
        pool->busy_since[r] = dato_clock_s();
    }
    for (int left = pool->size - 1; left > 0;) {
        int from, tag;
        size_t got;
        int m = poll_message(pool, MPI_ANY_SOURCE, &from, &tag, &got, err);
        if (m < 0) return DATO_ERR_NOMEM;
        if (!m) {
            DATO_TRY(check_hung(pool, err));
            idle(pool);
            continue;
        }
        if (tag == TAG_FAILED) return worker_failed(pool, from, got, err);
        if (tag != TAG_REPLY || got != reply_bytes || pool->busy_task[from] != HOLDS_REQUEST)
            return dato_fail(err, DATO_ERR_PEER, "%s: unexpected message (tag %d, %zu bytes) to a setup request",
                             pool->where[from], tag, got);
        if (reply_bytes) memcpy((uint8_t*)replies + (size_t)(from - 1) * reply_bytes, pool->buf, reply_bytes);
        pool->busy_task[from] = IDLE;
        left--;
    }
    return DATO_OK;
}

// ---- rank 0: the map over ranks ----------------------------------------------------------------------------

// Hands worker r the next task, if any is left.
static void dispatch(dato_eval_pool* pool, map_queue* q, int r) {
    int i = take_task(q);
    if (i < 0) return;
    task_header h = {pool->map_seq, i, q->kind, 0, q->result_bytes};
    memcpy(pool->buf, &h, sizeof h);
    memcpy(pool->buf + sizeof h, q->tasks + (size_t)i * q->task_bytes, q->task_bytes);
    send_bytes(pool, pool->buf, sizeof h + q->task_bytes, r, TAG_TASK);
    pool->busy_task[r] = i;
    pool->busy_since[r] = dato_clock_s();
}

// A RESULT message in pool->buf (bytes) from worker r, into the queue.
static dato_status take_result(dato_eval_pool* pool, map_queue* q, int r, size_t bytes, dato_error* err) {
    result_header h;
    size_t want = sizeof h + q->result_bytes;
    if (bytes == want) memcpy(&h, pool->buf, sizeof h);
    if (bytes != want || h.seq != pool->map_seq || h.index != pool->busy_task[r])
        return dato_fail(err, DATO_ERR_PEER, "%s: a result that answers no task it holds (%zu bytes)",
                         pool->where[r], bytes);
    int i = (int)h.index;
    memcpy(q->results + (size_t)i * q->result_bytes, pool->buf + sizeof h, q->result_bytes);
    if (q->trace) q->trace[i] = (dato_eval_trace){r, h.eval_s, dato_clock_s() - pool->busy_since[r]};
    pool->busy_task[r] = IDLE;
    pthread_mutex_lock(&q->mu);
    q->done++;
    pthread_mutex_unlock(&q->mu);
    return DATO_OK;
}

static dato_status map_over_ranks(dato_eval_pool* pool, map_queue* q, const dato_eval_handlers* local,
                                  void (*progress)(void*, int, int), void* progress_ctx, dato_error* err) {
    DATO_TRY(drain(pool, err));
    DATO_TRY(grow_buffer(pool, sizeof(task_header) + q->task_bytes, err));
    pthread_t thread;
    evaluator_thread rank0 = {q, local, 0};
    int have_thread = local && !pthread_create(&thread, NULL, evaluate_in_thread, &rank0);
    if (local && !have_thread) return dato_fail(err, DATO_ERR_NOMEM, "evaluation pool: cannot start rank 0's thread");
    dato_status st = DATO_OK;
    pool->map_seq++;
    for (int r = 1; !st && r < pool->size; r++) dispatch(pool, q, r);
    for (int reported = 0; !st;) {
        pthread_mutex_lock(&q->mu);
        int done = q->done;
        dato_status failed = q->failed;
        pthread_mutex_unlock(&q->mu);
        if (failed) {
            st = dato_fail(err, DATO_ERR_PEER, "%s, task %d: %s", pool->where[q->failed_by], q->failed_task,
                           q->failed_err.msg);
            break;
        }
        if (done > reported && progress) progress(progress_ctx, done, q->n);
        reported = done;
        if (done == q->n) break;
        int from, tag;
        size_t bytes;
        int m = poll_message(pool, MPI_ANY_SOURCE, &from, &tag, &bytes, err);
        if (m < 0) st = DATO_ERR_NOMEM;
        else if (m && tag == TAG_RESULT) {
            st = take_result(pool, q, from, bytes, err);
            if (!st) dispatch(pool, q, from);
        } else if (m && tag == TAG_FAILED) {
            st = worker_failed(pool, from, bytes, err);
        } else if (m) {
            st = dato_fail(err, DATO_ERR_PEER, "%s: unexpected message (tag %d) during evaluation", pool->where[from], tag);
        } else {
            st = check_hung(pool, err);
            idle(pool);
        }
    }
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_mutex_unlock(&q->mu);
    if (have_thread) pthread_join(thread, NULL);
    return st;
}

#endif // DATO_HAVE_MPI

dato_status dato_eval_pool_request(dato_eval_pool* pool, const void* msg, size_t bytes, void* replies,
                                   size_t reply_bytes, dato_error* err) {
    if (pool->rank != 0) return dato_fail(err, DATO_ERR_INVALID, "evaluation pool: only rank 0 sends requests");
#ifdef DATO_HAVE_MPI
    if (pool->mpi && pool->size > 1) return request_over_ranks(pool, msg, bytes, replies, reply_bytes, err);
#endif
    return pool->lanes ? request_lanes(pool, msg, bytes, replies, reply_bytes, err) : DATO_OK;
}

dato_status dato_eval_pool_map(dato_eval_pool* pool, const dato_eval_handlers* local, int kind, const uint8_t* tasks,
                               int n, size_t task_bytes, void* results, size_t result_bytes, dato_eval_trace* trace,
                               void (*progress)(void* ctx, int done, int total), void* progress_ctx,
                               dato_error* err) {
    if (pool->rank != 0) return dato_fail(err, DATO_ERR_INVALID, "evaluation pool: only rank 0 hands out tasks");
    if (n < 0 || result_bytes < 1 || (n && (!tasks || !results)))
        return dato_fail(err, DATO_ERR_INVALID, "evaluation pool: %d tasks, %zu result bytes each", n, result_bytes);
    if (!local && dato_eval_pool_workers(pool) == 0)
        return dato_fail(err, DATO_ERR_INVALID, "evaluation pool: no rank to evaluate on (rank 0 only dispatches, "
                         "and there are no workers)");
    if (n == 0) return DATO_OK;
    if (dato_eval_pool_workers(pool)) { // over the ranks (MPI) or the lanes
        map_queue q;
        queue_init(&q, kind, tasks, n, task_bytes, results, result_bytes, trace);
#ifdef DATO_HAVE_MPI
        dato_status st = pool->lanes ? map_lanes(pool, &q, progress, progress_ctx, err)
                                     : map_over_ranks(pool, &q, local, progress, progress_ctx, err);
#else
        dato_status st = map_lanes(pool, &q, progress, progress_ctx, err);
#endif
        queue_destroy(&q);
        return st;
    }
    return map_here(local, kind, tasks, n, task_bytes, results, result_bytes, trace, progress, progress_ctx,
                    pool->where[0], err);
}

// ---- workers ------------------------------------------------------------------------------------------------

dato_status dato_eval_pool_serve(dato_eval_pool* pool, const dato_eval_handlers* handlers, dato_error* err) {
#ifdef DATO_HAVE_MPI
    if (!pool->mpi || pool->rank == 0)
        return dato_fail(err, DATO_ERR_INVALID, "evaluation pool: only workers serve");
    uint8_t* answer = NULL; // the reply or result being sent
    size_t answer_bytes = 0;
    dato_status st = DATO_OK;
    for (;;) {
        int from, tag;
        size_t bytes;
        int m = poll_message(pool, 0, &from, &tag, &bytes, err);
        if (m < 0) {
            st = DATO_ERR_NOMEM;
            break;
        }
        if (!m) {
            idle(pool);
            continue;
        }
        if (tag == TAG_STOP) break;
        int64_t index = -1;
        size_t need = 0;
        dato_error e;
        dato_status hs = DATO_OK;
        if (tag == TAG_REQUEST && bytes >= sizeof(uint64_t)) {
            uint64_t rb;
            memcpy(&rb, pool->buf, sizeof rb);
            need = rb ? rb : 1;
            if (need > answer_bytes) free(answer), answer = malloc(answer_bytes = need);
            hs = answer ? handlers->request(handlers->ctx, pool->buf + sizeof rb, bytes - sizeof rb, answer, rb, &e)
                        : dato_fail(&e, DATO_ERR_NOMEM, "out of memory for a %zu-byte reply", need);
            if (!hs) send_bytes(pool, answer, rb, 0, TAG_REPLY);
        } else if (tag == TAG_TASK && bytes >= sizeof(task_header)) {
            task_header h;
            memcpy(&h, pool->buf, sizeof h);
            index = h.index;
            need = sizeof(result_header) + h.result_bytes;
            if (need > answer_bytes) free(answer), answer = malloc(answer_bytes = need);
            double t0 = dato_clock_s();
            hs = answer ? handlers->evaluate(handlers->ctx, h.kind, pool->buf + sizeof h, answer + sizeof(result_header), &e)
                        : dato_fail(&e, DATO_ERR_NOMEM, "out of memory for a %zu-byte result", need);
            result_header r = {h.seq, h.index, dato_clock_s() - t0};
            if (!hs) {
                memcpy(answer, &r, sizeof r);
                send_bytes(pool, answer, need, 0, TAG_RESULT);
            }
        } else {
            hs = dato_fail(&e, DATO_ERR_PEER, "unexpected message (tag %d, %zu bytes) from rank 0", tag, bytes);
        }
        if (hs) { // tell rank 0, then wait for what it decides (a STOP)
            char msg[sizeof index + sizeof e.msg];
            memcpy(msg, &index, sizeof index);
            size_t len = strlen(e.msg) + 1;
            memcpy(msg + sizeof index, e.msg, len);
            send_bytes(pool, msg, sizeof index + len, 0, TAG_FAILED);
        }
    }
    free(answer);
    return st;
#else
    (void)pool;
    (void)handlers;
    return dato_fail(err, DATO_ERR_UNSUPPORTED, "evaluation pool: this build has no MPI");
#endif
}

// ---- the end -------------------------------------------------------------------------------------------------

static void free_pool(dato_eval_pool* pool) {
    free(pool->where);
    free(pool->busy_task);
    free(pool->busy_since);
    free(pool->buf);
    pool->where = NULL;
    pool->busy_task = NULL;
    pool->busy_since = NULL;
    pool->buf = NULL;
}

dato_status dato_eval_pool_close(dato_eval_pool* pool, dato_error* err) {
    dato_status st = DATO_OK;
    if (pool->hung) return dato_fail(err, DATO_ERR_PEER, "a rank does not answer: only aborting the job ends it");
#ifdef DATO_HAVE_MPI
    if (pool->mpi && pool->rank == 0 && !pool->hung) {
        st = drain(pool, err);
        if (!pool->hung)
            for (int r = 1; r < pool->size; r++) send_bytes(pool, NULL, 0, r, TAG_STOP);
    }
    if (pool->mpi && !pool->hung) MPI_Finalize();
#else
    (void)err;
#endif
    if (!pool->hung) free_pool(pool);
    return st;
}

void dato_eval_pool_abort(dato_eval_pool* pool, int code) {
#ifdef DATO_HAVE_MPI
    if (pool->mpi) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)code;
#endif
    free_pool(pool);
}
