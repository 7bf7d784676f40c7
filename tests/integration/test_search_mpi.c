// dato-search over MPI on the embedded default model (pop 6, 10 images, 10 steps, table latency,
// one thread per rank), against a one-process run A on the same latency table:
// - B, mpirun -np 3: the same population and archive, bit for bit, every rank having evaluated;
// - C, mpirun -np 3 with rank 1 killed (SIGKILL) mid-run: the job stops with the rank named, the
//   checkpoint stays readable, and resuming with mpirun -np 2 ends equal to A;
// - D, mpirun -np 3 with rank 2 stopped (SIGSTOP, a hang): rank 0 names it after --rank-timeout and
//   the job ends; resuming in one process ends equal to A.
// Skipped (77) when dato-search was built without MPI or mpirun is missing.
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "eval_pool.h"
#include "search_runs.h"
#include "test_util.h"

#define FLAGS "--pop 6 --images 10 --final-images 10 --confirm-images 10 --pairs 2 --steps 10 --threads 1 --seed 5 --quiet"

static char search_exe[4096], tmpdir[256], mpirun[512];

static int run(const char* cmd) { return search_test_run(tmpdir, cmd); }
static int err_has(const char* what) { return search_test_err_has(tmpdir, what); }

// A /proc file's bytes (its size reads as 0, so read to the end), NUL-terminated; NULL when unreadable.
static char* read_proc(const char* path, size_t* n) {
    FILE* f = fopen(path, "rb");
    char* buf = NULL;
    size_t cap = 0;
    *n = 0;
    while (f) {
        if (*n + 4097 > cap) {
            char* b = realloc(buf, cap = 2 * cap + 8192);
            if (!b) break;
            buf = b;
        }
        size_t got = fread(buf + *n, 1, 4096, f);
        *n += got;
        if (!got) break;
    }
    if (f) fclose(f);
    if (buf) buf[*n] = 0;
    return buf;
}

// The pid of the rank of a job whose command line names run_dir, 0 when there is none (yet).
static pid_t rank_pid(int rank, const char* run_dir) {
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR* d = opendir("/proc");
    pid_t found = 0;
    for (struct dirent* e; d && !found && (e = readdir(d));) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0) continue;
        char path[64];
        size_t n_cmd = 0, n_env = 0;
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        char* cmd = read_proc(path, &n_cmd);
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        char* env = read_proc(path, &n_env);
        int named = 0, ranked = 0; // both lists are NUL-separated strings
        for (size_t i = 0; cmd && i < n_cmd; i += strlen(cmd + i) + 1) named |= !strcmp(cmd + i, run_dir);
        for (size_t i = 0; env && i < n_env; i += strlen(env + i) + 1) ranked |= !strcmp(env + i, want);
        if (named && ranked) found = pid;
        free(cmd);
        free(env);
    }
    if (d) closedir(d);
    return found;
}

// Starts `mpirun -np 3 dato-search ... --out run_dir` in the background (stderr in tmpdir/err.txt);
// once its checkpoint holds generation 1 and the next generation is under way, sends sig to rank
// `rank`, then waits for the job: its exit code, or -1.
static int run_and_signal(const char* run_dir, const char* extra, int rank, int sig) {
    char cmd[8192], ckpt[512];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", run_dir);
    snprintf(cmd, sizeof cmd, "exec %s -np 3 %s " FLAGS " --gens 3 %s --out %s > %s/out.txt 2> %s/err.txt", mpirun,
             search_exe, extra, run_dir, tmpdir, tmpdir);
    pid_t job = fork();
    if (job == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char*)NULL);
        _exit(127);
    }
    int status = 0, signalled = 0;
    for (int i = 0; i < 3000; i++) { // 5 minutes at most
        usleep(100000);
        if (waitpid(job, &status, WNOHANG) == job) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (!signalled && search_test_generation(ckpt) >= 1) {
            usleep(300000); // into generation 2
            pid_t pid = rank_pid(rank, run_dir);
            if (pid > 0) {
                printf("rank %d (pid %d) gets signal %d at checkpoint generation %lld\n", rank, (int)pid, sig,
                       (long long)search_test_generation(ckpt));
                kill(pid, sig);
                signalled = 1;
            }
        }
    }
    kill(job, SIGKILL);
    waitpid(job, NULL, 0);
    return -1;
}

// run_dir/generations.csv: one row per generation 0..gens, each naming ranks ranks and counting
// every candidate as evaluated or an archive hit, with rank 0's own time less than the generation's.
static int generations_traced(const char* run_dir, int gens, int ranks) {
    char path[4200], line[512];
    snprintf(path, sizeof path, "%s/generations.csv", run_dir);
    FILE* f = fopen(path, "r");
    int rows = 0, good = 0;
    while (f && fgets(line, sizeof line, f)) {
        int g, r, cand, ev, hits;
        double eval_s, master_s, gen_s;
        if (sscanf(line, "%d,%d,%d,%d,%d,%lf,%lf,%lf", &g, &r, &cand, &ev, &hits, &eval_s, &master_s, &gen_s) != 8) continue;
        good += g == rows && r == ranks && ev + hits == cand && master_s >= 0 && master_s < gen_s && eval_s <= gen_s;
        rows++;
    }
    if (f) fclose(f);
    printf("%s: %d rows, %d consistent\n", path, rows, good);
    return rows == gens + 1 && good == rows;
}

// Ranks 0, 1 and 2 all appear in run_dir/evaluations.csv.
static int every_rank_evaluated(const char* run_dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/evaluations.csv", run_dir);
    FILE* f = fopen(path, "r");
    int seen[3] = {0}, gen, cand, rank;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "%d,%d,%d,", &gen, &cand, &rank) == 3 && rank >= 0 && rank < 3) seen[rank]++;
    if (f) fclose(f);
    printf("%s: evaluations by rank 0/1/2: %d/%d/%d\n", path, seen[0], seen[1], seen[2]);
    return seen[0] && seen[1] && seen[2];
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_search_mpi PATH/dato-generate\n");
        return 1;
    }
    if (!dato_eval_pool_have_mpi() || system("command -v mpirun > /dev/null 2>&1")) {
        printf("skipped: %s\n", dato_eval_pool_have_mpi() ? "no mpirun on PATH" : "built without MPI");
        return 77;
    }
    const char* slash = strrchr(argv[1], '/');
    snprintf(search_exe, sizeof search_exe, "%.*sdato-search", slash ? (int)(slash - argv[1] + 1) : 0, argv[1]);
    // Root may run mpirun only when asked; more ranks than cores need --oversubscribe; containers
    // often forbid the cross-process memory copy of the shared-memory transport.
    snprintf(mpirun, sizeof mpirun, "mpirun --oversubscribe%s", geteuid() == 0 ? " --allow-run-as-root" : "");
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dato_search_mpi_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    char cmd[8192], a[512], dir[300], ck[512], table[512];

    // A: one process, the latency table every run shares.
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 3 --out %s/a", search_exe, tmpdir);
    CHECK(run(cmd) == 0, "run A failed");
    snprintf(a, sizeof a, "%s/a/checkpoint.h5", tmpdir);
    snprintf(table, sizeof table, "--latency-table %s/a/latency_table.json", tmpdir);

    // B: three ranks.
    snprintf(cmd, sizeof cmd, "%s -np 3 %s " FLAGS " --gens 3 %s --out %s/b", mpirun, search_exe, table, tmpdir);
    CHECK(run(cmd) == 0, "run B (mpirun -np 3) failed");
    snprintf(ck, sizeof ck, "%s/b/checkpoint.h5", tmpdir);
    CHECK(search_test_same_result(a, ck), "mpirun -np 3 differs from the one-process run");
    snprintf(dir, sizeof dir, "%s/b", tmpdir);
    CHECK(every_rank_evaluated(dir), "not every rank evaluated");
    CHECK(generations_traced(dir, 3, 3), "generations.csv does not trace the run");

    // C: rank 1 killed mid-run, resumed on two ranks.
    snprintf(dir, sizeof dir, "%s/c", tmpdir);
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", dir);
    int rc = run_and_signal(dir, table, 1, SIGKILL);
    CHECK(rc != 0 && err_has("rank 1"), "a killed rank: exit code %d, or the rank is not named", rc);
    int64_t g = search_test_generation(ck);
    CHECK(g >= 1 && g < 3, "the killed run's checkpoint: generation %lld", (long long)g);
    snprintf(cmd, sizeof cmd, "%s -np 2 %s --resume %s --quiet", mpirun, search_exe, ck);
    CHECK(run(cmd) == 0, "resuming the killed run on 2 ranks failed");
    CHECK(search_test_same_result(a, ck), "kill + resume on 2 ranks differs from the one-process run");

    // D: rank 2 hangs; rank 0 gives up on it after 10 s (a healthy rank answers in about 1 s, 3 s
    // when the machine is loaded: the timeout must not catch it). Resumed in one process.
    snprintf(dir, sizeof dir, "%s/d", tmpdir);
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", dir);
    char extra[600];
    snprintf(extra, sizeof extra, "%s --rank-timeout 10", table);
    rc = run_and_signal(dir, extra, 2, SIGSTOP);
    CHECK(rc != 0 && err_has("rank 2") && err_has("has not answered"), "a hung rank: exit code %d, or not named", rc);
    CHECK(rank_pid(2, dir) == 0, "the hung rank outlived its job");
    g = search_test_generation(ck);
    CHECK(g >= 1 && g < 3, "the hung run's checkpoint: generation %lld", (long long)g);
    snprintf(cmd, sizeof cmd, "%s --resume %s --quiet", search_exe, ck);
    CHECK(run(cmd) == 0, "resuming the hung run in one process failed");
    CHECK(search_test_same_result(a, ck), "hang + resume differs from the one-process run");

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
