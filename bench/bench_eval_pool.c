// The master's own cost per evaluation in the evaluation pool (search/eval_pool.h): rank 0 hands
// out tasks of dato-search's message sizes whose evaluation does (almost) nothing, so what is left
// is dispatch, transport and the polling of rank 0, per task. Beside it, in the same run, the floor:
// a raw MPI ping-pong of the same two messages.
//
//   mpirun -np K bench_eval_pool [--tasks N] [--genome-bytes G] [--work-us U]
//
// K - 1 workers evaluate (rank 0 only dispatches; alone, it evaluates). Prints one markdown row.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clock.h"
#include "eval_pool.h"

#ifdef DATO_HAVE_MPI
#include <mpi.h>
#endif

static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

typedef struct {
    double work_s;
} work_ctx;

// A task of busy work (work_s): 4 result doubles, as dato-search's.
static dato_status busy(void* c, int kind, const uint8_t* task, void* out, dato_error* err) {
    (void)err;
    (void)kind;
    double* result = out;
    double t0 = dato_clock_s(), w = ((work_ctx*)c)->work_s;
    while (dato_clock_s() - t0 < w) {
    }
    for (int i = 0; i < 4; i++) result[i] = task[0] + i;
    return DATO_OK;
}

int main(int argc, char** argv) {
    int tasks = 2000, genome_bytes = 50;
    double work_us = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tasks")) tasks = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--genome-bytes")) genome_bytes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--work-us")) work_us = atof(argv[i + 1]);
    }
    if (tasks < 1 || genome_bytes < 1 || work_us < 0) {
        fprintf(stderr, "usage: mpirun -np K bench_eval_pool [--tasks N] [--genome-bytes G] [--work-us U]\n");
        return 2;
    }
    dato_eval_pool pool;
    dato_error err;
    if (dato_eval_pool_init(&pool, &argc, &argv, &err)) {
        fprintf(stderr, "bench_eval_pool: %s\n", err.msg);
        return 1;
    }
    work_ctx w = {work_us * 1e-6};
    dato_eval_handlers h = {.evaluate = busy, .ctx = &w};
    // The task message: seq, index, kind, result size (32 bytes) and the genome; the result: seq,
    // index, eval time (24 bytes) and 4 doubles.
    size_t task_msg = 32 + (size_t)genome_bytes, result_msg = 24 + 4 * sizeof(double);
    double pingpong_s = NAN;
#ifdef DATO_HAVE_MPI
    // The floor: blocking ping-pong of the same two messages between ranks 0 and 1.
    if (pool.mpi && pool.size > 1 && pool.rank <= 1) {
        uint8_t buf[4096] = {0};
        double t0 = dato_clock_s();
        for (int i = 0; i < tasks; i++) {
            if (pool.rank == 0) {
                MPI_Send(buf, (int)task_msg, MPI_BYTE, 1, 99, MPI_COMM_WORLD);
                MPI_Recv(buf, sizeof buf, MPI_BYTE, 1, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            } else {
                MPI_Recv(buf, sizeof buf, MPI_BYTE, 0, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(buf, (int)result_msg, MPI_BYTE, 0, 99, MPI_COMM_WORLD);
            }
        }
        pingpong_s = (dato_clock_s() - t0) / tasks;
    }
#endif
    int rc = 0;
    if (pool.rank != 0) {
        if (dato_eval_pool_serve(&pool, &h, &err)) {
            fprintf(stderr, "bench_eval_pool: %s\n", err.msg);
            rc = 1;
        }
        dato_eval_pool_close(&pool, &err);
        return rc;
    }
    uint8_t* genomes = calloc((size_t)tasks, (size_t)genome_bytes);
    double* results = malloc((size_t)tasks * 4 * sizeof(double));
    if (!genomes || !results) return 1;
    double c0 = cpu_s(), t0 = dato_clock_s();
    dato_status st = dato_eval_pool_map(&pool, pool.size > 1 ? NULL : &h, 0, genomes, tasks, (size_t)genome_bytes,
                                        results, 4 * sizeof(double), NULL, NULL, NULL, &err);
    double wall = dato_clock_s() - t0, cpu = cpu_s() - c0;
    if (st) {
        fprintf(stderr, "bench_eval_pool: %s\n", err.msg);
        rc = 1;
    }
    if (dato_eval_pool_close(&pool, &err)) {
        fprintf(stderr, "bench_eval_pool: %s\n", err.msg);
        rc = 1;
    }
    // | ranks | tasks | work us | task B | result B | tasks/s | wall us/task | rank 0 CPU us/task | ping-pong us |
    printf("| %d | %d | %.0f | %zu | %zu | %.0f | %.1f | %.1f | %.1f |\n", pool.size, tasks, work_us, task_msg,
           result_msg, tasks / wall, 1e6 * wall / tasks, 1e6 * cpu / tasks, 1e6 * pingpong_s);
    free(genomes);
    free(results);
    return rc;
}
