// dato-search on the CUDA backend, small (pop 6, 10 images, 10 steps, 2 generations, 10 final
// images), beside the same search on the CPU: the CUDA run finishes with the backend recorded in
// its checkpoint and a final front; its baseline's final FID and KID, on the same prompts and
// noises, are the CPU run's within 1% (f32 on both: the images differ in their last bits only);
// with MPI, two ranks each take a device (one GPU each, or both the same one) and end with the
// one-process CUDA run's front, bit for bit (GPUs of one model). Exits 77 (skipped) without CUDA
// or a GPU.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cuda_device.h"
#include "eval_pool.h"
#include "search_runs.h"
#include "test_util.h"

#define FLAGS "--pop 6 --images 10 --final-images 10 --steps 10 --gens 2 --threads 2 --seed 5 --quiet"
#define TOL 0.01 // relative, final baseline FID and KID, CUDA vs CPU

static char tmpdir[256];

static int run(const char* cmd) { return search_test_run(tmpdir, cmd); }

// The final baseline scores of a finished run: (measured latency, FID, KID, teacher); 0 on failure.
static int final_baseline(const char* ckpt, double* scores, dato_search_backend* backend) {
    dato_checkpoint c = {0};
    dato_error err;
    int ok = dato_checkpoint_read(ckpt, &c, &err) == DATO_OK && c.n_final > 0;
    if (!ok) fprintf(stderr, "%s: %s\n", ckpt, c.n_final ? err.msg : "no final front");
    if (ok) memcpy(scores, c.final_baseline, sizeof c.final_baseline);
    if (ok) *backend = c.cfg.backend;
    dato_checkpoint_free(&c);
    return ok;
}

int main(int argc, char** argv) {
    if (dato_cuda_device_count() < 1) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: test_cuda_search PATH/dato-generate\n");
        return 1;
    }
    const char* slash = strrchr(argv[1], '/');
    char exe[4096], cmd[8192], path[512];
    snprintf(exe, sizeof exe, "%.*sdato-search", slash ? (int)(slash - argv[1] + 1) : 0, argv[1]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dato_cuda_search_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;

    double cpu[DATO_SEARCH_N_FINAL], gpu[DATO_SEARCH_N_FINAL];
    dato_search_backend bc = DATO_SEARCH_BACKEND_CUDA, bg = DATO_SEARCH_BACKEND_CPU;
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --out %s/cpu", exe, tmpdir);
    CHECK(run(cmd) == 0, "the CPU run failed");
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --backend cuda --out %s/cuda", exe, tmpdir);
    CHECK(run(cmd) == 0, "the CUDA run failed");
    snprintf(path, sizeof path, "%s/cpu/checkpoint.h5", tmpdir);
    int have_cpu = final_baseline(path, cpu, &bc);
    snprintf(path, sizeof path, "%s/cuda/checkpoint.h5", tmpdir);
    int have_gpu = final_baseline(path, gpu, &bg);
    CHECK(have_cpu && have_gpu, "a run left no final front");
    CHECK(bc == DATO_SEARCH_BACKEND_CPU && bg == DATO_SEARCH_BACKEND_CUDA, "backends recorded: %d, %d", (int)bc, (int)bg);
    if (have_cpu && have_gpu) {
        double fid_err = fabs(gpu[1] - cpu[1]) / fabs(cpu[1]), kid_err = fabs(gpu[2] - cpu[2]) / fabs(cpu[2]);
        printf("final baseline: FID cpu %.4f cuda %.4f (rel err %.2e), KID cpu %.4g cuda %.4g (rel err %.2e), "
               "ms/img cpu %.2f cuda %.2f\n", cpu[1], gpu[1], fid_err, cpu[2], gpu[2], kid_err, 1e3 * cpu[0],
               1e3 * gpu[0]);
        CHECK(fid_err <= TOL && kid_err <= TOL, "CUDA vs CPU: FID rel err %.2e, KID rel err %.2e (tol %g)", fid_err,
              kid_err, TOL);
    }
    // Two ranks, each on the device of its local rank.
    if (dato_eval_pool_have_mpi() && !system("command -v mpirun > /dev/null 2>&1")) {
        snprintf(cmd, sizeof cmd, "OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun --oversubscribe%s -np 2 %s "
                 FLAGS " --backend cuda --latency-table %s/cuda/latency_table.json --out %s/mpi",
                 geteuid() == 0 ? " --allow-run-as-root" : "", exe, tmpdir, tmpdir);
        CHECK(run(cmd) == 0, "mpirun -np 2 --backend cuda failed");
        char a[512], b[512];
        snprintf(a, sizeof a, "%s/cuda/checkpoint.h5", tmpdir);
        snprintf(b, sizeof b, "%s/mpi/checkpoint.h5", tmpdir);
        CHECK(search_test_same_result(a, b), "2 ranks on CUDA differ from one process on CUDA");
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
