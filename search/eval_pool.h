// Evaluation spread over processes (docs/DISTRIBUTED.md): rank 0 hands tasks to every rank from one
// dynamic queue over MPI, each rank takes the next task as soon as it is free, and the results come
// back by task index, so the caller applies them in task order whatever order they arrived in.
// Built without MPI (-DDATO_MPI=OFF), or run without a launcher, the same calls evaluate
// everything in this process.
//
//   every rank:  dato_eval_pool_init(&pool, &argc, &argv, &err);
//   rank 0:      dato_eval_pool_request(&pool, msg, ...)   // setup: every worker answers
//                dato_eval_pool_map(&pool, &local, tasks, n, ...)   // per generation
//   other ranks: dato_eval_pool_serve(&pool, &handlers, &err)   // until rank 0 closes
//   every rank:  dato_eval_pool_close(&pool, &err)   // on failure: dato_eval_pool_abort
//
// Rank 0 evaluates too: a second thread of it takes tasks from the same queue while the first one
// serves the messages (MPI_THREAD_FUNNELED: only that first thread calls MPI).
//
// A pool of one process can instead have lanes: in-process evaluators, each on a thread of its own
// with its own handlers (its own copy of the model, workspace and CPU threads), numbered 1..n as
// worker ranks are. A small model's UNet call is too little work to share among threads, so on a
// CPU one evaluation per core outruns every core on one evaluation (docs/DISTRIBUTED.md). Messages are raw
// bytes between ranks of one binary on hosts of one byte order. A worker silent past timeout_s on
// a task or a request is declared hung: the call fails naming the rank, and the job can then only
// end by dato_eval_pool_abort.
#ifndef DATO_EVAL_POOL_H
#define DATO_EVAL_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

// What a rank does with the messages of rank 0. On rank 0 only evaluate is used (by its second thread).
typedef struct {
    // A setup request: msg (bytes) in, reply (reply_bytes) out.
    dato_status (*request)(void* ctx, const void* msg, size_t bytes, void* reply, size_t reply_bytes,
                           dato_error* err);
    // One task of the caller's kind (what its bytes mean): task (task_bytes) in, result (result_bytes) out.
    dato_status (*evaluate)(void* ctx, int kind, const uint8_t* task, void* result, dato_error* err);
    void* ctx;
} dato_eval_handlers;

// Where and how long one task ran.
typedef struct {
    int rank;            // the rank that evaluated it
    double eval_s;       // evaluate's wall time on that rank
    double round_trip_s; // from rank 0 handing it out to rank 0 holding its result
} dato_eval_trace;

typedef struct {
    int rank, size;             // in the job (MPI_COMM_WORLD); 0 and 1 without MPI
    int local_rank, local_size; // among the ranks on this host: device choice, thread split
    double timeout_s;           // a worker silent this long is declared hung (default 600)
    int mpi;                    // 1 when MPI was initialized (a launcher started this process)
    int hung;                   // a worker stopped answering: only dato_eval_pool_abort ends the job
    int lanes;                  // in-process evaluators (dato_eval_pool_set_lanes), 0 with MPI
    const dato_eval_handlers* lane; // (lanes) their handlers, not owned
    char (*where)[96];          // (size + lanes) "rank R (host, pid P)" or "lane L (host, pid P)", for messages
    int* busy_task;             // (size) rank 0: the task each worker holds, -1 when idle
    double* busy_since;         // (size) rank 0: when it was handed out
    uint64_t map_seq;           // rank 0: the map call the busy tasks belong to
    uint8_t* buf;               // message buffer
    size_t buf_bytes;
    double poll_wait_ms;        // the sleep before the next poll for a message (backs off while idle)
} dato_eval_pool;

// Joins the job when a launcher (mpirun, srun) started this process and the build has MPI; else a
// pool of one. Fails when launched as several processes by a build without MPI (each would run the
// whole search alone).
dato_status dato_eval_pool_init(dato_eval_pool* pool, int* argc, char*** argv, dato_error* err);

// 1 when this build can run over MPI.
int dato_eval_pool_have_mpi(void);

// A pool of one process: gives it n lanes with their handlers (lanes, n; kept, not copied). From then
// on request goes to every lane as to every worker rank, and map hands every task to the lanes
// (rank 0's own handlers are not used: its thread only waits). Fails on a pool with MPI ranks.
dato_status dato_eval_pool_set_lanes(dato_eval_pool* pool, const dato_eval_handlers* lanes, int n, dato_error* err);

// The evaluators besides rank 0's own: its worker ranks (size - 1) or its lanes. Worker w (1..) is
// named by where[w], answers a request at replies + (w - 1) * reply_bytes and marks its tasks' trace w.
int dato_eval_pool_workers(const dato_eval_pool* pool);

// Rank 0: sends msg (bytes) to every worker (rank or lane) and gathers their replies into replies
// (workers, reply_bytes), worker w's at w - 1. Fails naming the worker on its error or silence.
dato_status dato_eval_pool_request(dato_eval_pool* pool, const void* msg, size_t bytes, void* replies,
                                   size_t reply_bytes, dato_error* err);

// Rank 0: evaluates tasks (n, task_bytes) of one kind into results (n, result_bytes) on every rank,
// rank 0's own share through local (NULL: rank 0 only dispatches; needs a worker), or on the lanes.
// trace (n) may be NULL.
// progress (may be NULL) is called on this thread after each task with the count done.
// On failure the results are incomplete and the workers still hold their tasks (close drains them).
dato_status dato_eval_pool_map(dato_eval_pool* pool, const dato_eval_handlers* local, int kind, const uint8_t* tasks,
                               int n, size_t task_bytes, void* results, size_t result_bytes, dato_eval_trace* trace,
                               void (*progress)(void* ctx, int done, int total), void* progress_ctx,
                               dato_error* err);

// Workers: answers rank 0's requests and tasks with handlers until rank 0 closes the pool. A
// handler's error goes back to rank 0 (which stops the run) and serving goes on.
dato_status dato_eval_pool_serve(dato_eval_pool* pool, const dato_eval_handlers* handlers, dato_error* err);

// Ends the pool on this rank. Rank 0 first waits (up to the timeout) for the tasks workers still
// hold, then releases them from serve. Fails, with pool->hung set, when a worker does not answer.
dato_status dato_eval_pool_close(dato_eval_pool* pool, dato_error* err);

// Ends the whole job now with exit code (MPI_Abort): the only way past a hung rank. For a program's
// main, after close failed; without MPI it frees the pool and returns.
void dato_eval_pool_abort(dato_eval_pool* pool, int code);

#endif
