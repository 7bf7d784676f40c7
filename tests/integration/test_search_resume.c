// dato-search on the embedded default model, small (pop 6, 10 images, 10 steps, table latency):
// - an uninterrupted 3-generation run;
// - the same run stopped after 1 generation and resumed with --gens 3;
// - the same run killed with SIGKILL in the middle of generation 2, then resumed;
// B and C reuse A's latency table (as two runs must, to be comparable). A, B and C evaluate on lanes
// (search/eval_pool.h: the default model's default), B's resume one candidate at a time
// (--workers 1), C's on 3 lanes of 2 threads. All three end with the
// same population and archive objectives, bit for bit, and the result files
// exist. Then: resuming with a changed prompt set is refused naming the prompts; a damaged
// checkpoint is refused naming the file; dato-export picks and writes a loadable schedule.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "genome.h"
#include "schedule.h"
#include "search_runs.h"
#include "test_util.h"

#define FLAGS "--pop 6 --images 10 --final-images 10 --confirm-images 10 --pairs 2 --steps 10 --threads 2 --seed 5 --quiet"

static char search_exe[4096], export_exe[4096], tmpdir[256];

static int run(const char* cmd) { return search_test_run(tmpdir, cmd); }
static int err_has(const char* what) { return search_test_err_has(tmpdir, what); }
static int same_result(const char* a, const char* b) { return search_test_same_result(a, b); }
static int64_t generation_of(const char* path) { return search_test_generation(path); }

static int file_exists(const char* dir, const char* name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0 && st.st_size > 0;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_search_resume PATH/dato-generate\n");
        return 1;
    }
    const char* slash = strrchr(argv[1], '/');
    int dir_len = slash ? (int)(slash - argv[1] + 1) : 0;
    snprintf(search_exe, sizeof search_exe, "%.*sdato-search", dir_len, argv[1]);
    snprintf(export_exe, sizeof export_exe, "%.*sdato-export", dir_len, argv[1]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dato_search_resume_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    char cmd[8192], a[512], b[512], c[512];

    // A: uninterrupted
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 3 --out %s/a", search_exe, tmpdir);
    CHECK(run(cmd) == 0, "run A failed");
    snprintf(a, sizeof a, "%s/a/checkpoint.h5", tmpdir);
    const char* outputs[] = {"front.csv", "front.json", "front.svg", "report.html", "latency_table.json",
                             "schedules/front_0.json", "grids/front_0.png", "grids/baseline.png"};
    for (size_t i = 0; i < sizeof outputs / sizeof *outputs; i++) {
        char d[512];
        snprintf(d, sizeof d, "%s/a", tmpdir);
        CHECK(file_exists(d, outputs[i]), "run A lacks %s", outputs[i]);
    }

    // B: 1 generation, then resumed to 3. Every run reuses A's latency table: a table calibrated
    // anew would time this machine anew, and the latencies (and so the search) would differ.
    char table[512];
    snprintf(table, sizeof table, "%s/a/latency_table.json", tmpdir);
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --latency-table %s --out %s/b", search_exe, table, tmpdir);
    CHECK(run(cmd) == 0, "run B (1 generation) failed");
    snprintf(b, sizeof b, "%s/b/checkpoint.h5", tmpdir);
    snprintf(cmd, sizeof cmd, "%s --resume %s --gens 3 --workers 1 --quiet", search_exe, b); // lanes, then none
    CHECK(run(cmd) == 0, "resuming B failed");
    CHECK(same_result(a, b), "stop + resume differs from the uninterrupted run");

    // C: killed with SIGKILL during generation 2 (after the generation-1 checkpoint), then resumed
    snprintf(c, sizeof c, "%s/c/checkpoint.h5", tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        snprintf(cmd, sizeof cmd, "%s/c", tmpdir);
        execl(search_exe, search_exe, "--pop", "6", "--images", "10", "--final-images", "10", "--confirm-images", "10",
              "--pairs", "2", "--steps", "10",
              "--threads", "2", "--seed", "5", "--quiet", "--gens", "3", "--latency-table", table, "--out", cmd,
              (char*)NULL);
        _exit(127);
    }
    int64_t g = -1;
    for (int i = 0; i < 6000 && g < 1; i++) { // wait (up to 10 min) for generation 1's checkpoint
        usleep(100000);
        g = generation_of(c);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) break;
    }
    usleep(300000); // into generation 2
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    printf("killed run C at checkpoint generation %lld\n", (long long)generation_of(c));
    CHECK(generation_of(c) >= 1, "run C's checkpoint is not readable after SIGKILL");
    // A run still going has no final front, and the teacher objective is no FID: --max-fid refuses.
    dato_checkpoint going = {0};
    dato_error gerr;
    if (dato_checkpoint_read(c, &going, &gerr) == DATO_OK && going.n_final == 0) {
        snprintf(cmd, sizeof cmd, "%s %s --pick fastest --max-fid 1e9", export_exe, c);
        CHECK(run(cmd) == 1 && err_has("no final front"), "--max-fid on a teacher run still going was not refused");
    } else {
        printf("run C had finished before the kill: the mid-run export check is skipped\n");
    }
    dato_checkpoint_free(&going);
    snprintf(cmd, sizeof cmd, "%s --resume %s --workers 3 --quiet", search_exe, c); // more lanes than threads
    CHECK(run(cmd) == 0, "resuming the killed run failed");
    CHECK(same_result(a, c), "kill -9 + resume differs from the uninterrupted run");

    // Refusals: a changed prompt set, a damaged checkpoint, a taken run folder.
    char prompts[512];
    snprintf(prompts, sizeof prompts, "%s/prompts.txt", tmpdir);
    FILE* f = fopen(prompts, "w");
    if (f) {
        fputs("a photo of a bag\na photo of a coat\n", f);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --objective fid --prompts-file %s --out %s/d", search_exe, prompts,
             tmpdir);
    CHECK(run(cmd) == 0, "run D failed");
    // --objective fid: objective 1 is the FID the archive also records; the teacher distance is beside it.
    char d[512];
    snprintf(d, sizeof d, "%s/d/checkpoint.h5", tmpdir);
    dato_checkpoint dk = {0};
    dato_error derr;
    int fid_rows = 0;
    if (dato_checkpoint_read(d, &dk, &derr) == DATO_OK && dk.cfg.objective == DATO_OBJECTIVE_FID)
        for (int64_t r = 0; r < dk.n_evaluations; r++) {
            const double* e = dk.arch_extras + r * DATO_SEARCH_N_EXTRA;
            fid_rows += dk.arch_objectives[2 * r + 1] == e[3] && e[4] >= 0;
        }
    CHECK(dk.n_evaluations > 0 && fid_rows == dk.n_evaluations, "--objective fid: %d of %lld rows optimize the FID",
          fid_rows, (long long)dk.n_evaluations);
    dato_checkpoint_free(&dk);
    snprintf(cmd, sizeof cmd, "printf 'a photo of a dress\\na photo of a coat\\n' > %s && %s --resume %s/d/checkpoint.h5 "
             "--gens 2 --quiet", prompts, search_exe, tmpdir);
    CHECK(run(cmd) == 1 && err_has("prompts"), "a changed prompt set was not refused by name");
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --out %s/a", search_exe, tmpdir);
    CHECK(run(cmd) == 1 && err_has("--resume"), "an existing run folder was overwritten");
    snprintf(cmd, sizeof cmd, "cp %s %s/bad.h5 && printf 'XXXX' | dd of=%s/bad.h5 bs=1 seek=4000 conv=notrunc 2>/dev/null"
             " && %s --resume %s/bad.h5 --quiet", a, tmpdir, tmpdir, search_exe, tmpdir);
    CHECK(run(cmd) == 1 && err_has("bad.h5"), "a damaged checkpoint was not refused naming the file");
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --ref nowhere.h5 --out %s/e", search_exe, tmpdir);
    CHECK(run(cmd) == 1 && err_has("nowhere.h5"), "a missing reference is not named");
    // --backend cuda: runs where a GPU is (tests/gpu/test_cuda_search.c checks it); elsewhere it
    // says why not and leaves no run folder.
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --backend cuda --out %s/f", search_exe, tmpdir);
    int cuda_rc = run(cmd);
    char cuda_dir[512];
    snprintf(cuda_dir, sizeof cuda_dir, "%s/f", tmpdir);
    CHECK(cuda_rc == 0 || (cuda_rc == 1 && err_has("backend cuda") && access(cuda_dir, F_OK) != 0),
          "--backend cuda without a GPU: exit %d", cuda_rc);

    // dato-export
    snprintf(cmd, sizeof cmd, "%s %s --list", export_exe, a);
    CHECK(run(cmd) == 0, "dato-export --list failed");
    snprintf(cmd, sizeof cmd, "%s %s --pick knee --out %s/knee.json", export_exe, a, tmpdir);
    int rc = run(cmd);
    snprintf(cmd, sizeof cmd, "%s %s --index 0 --out %s/first.json", export_exe, a, tmpdir);
    CHECK(rc == 0 || err_has("no front member"), "dato-export --pick knee failed");
    CHECK(run(cmd) == 0, "dato-export --index 0 failed");
    dato_schedule s;
    dato_error err;
    char path[512];
    snprintf(path, sizeof path, "%s/first.json", tmpdir);
    CHECK(dato_schedule_load(&s, path, &err) == DATO_OK && s.steps == 10, "exported schedule: %s", err.msg);
    snprintf(cmd, sizeof cmd, "%s %s --pick fastest", export_exe, a);
    CHECK(run(cmd) == 2 && err_has("--max-fid"), "--pick fastest without --max-fid accepted");
    // A finished run picks from its final front: the fastest member by re-measured latency.
    dato_checkpoint ck = {0};
    if (dato_checkpoint_read(a, &ck, &err) == DATO_OK && ck.n_final > 0) {
        // The default objective is the teacher distance; the baseline (the first genome evaluated)
        // scores exactly 0 against its own images.
        int teacher_rows = 0;
        for (int64_t r = 0; r < ck.n_evaluations; r++)
            teacher_rows += ck.arch_objectives[2 * r + 1] == ck.arch_extras[r * DATO_SEARCH_N_EXTRA + 4];
        CHECK(ck.cfg.objective == DATO_OBJECTIVE_TEACHER && teacher_rows == ck.n_evaluations,
              "teacher objective: %d of %lld rows", teacher_rows, (long long)ck.n_evaluations);
        CHECK(ck.arch_objectives[1] == 0.0 && ck.final_baseline[3] == 0.0, "baseline teacher distance %g / %g",
              ck.arch_objectives[1], ck.final_baseline[3]);
        int fastest = 0;
        for (int i = 1; i < ck.n_final; i++)
            if (ck.final_scores[i * DATO_SEARCH_N_FINAL] < ck.final_scores[fastest * DATO_SEARCH_N_FINAL]) fastest = i;
        snprintf(cmd, sizeof cmd, "%s %s --pick fastest --max-fid 1e9 --out %s/fast.json", export_exe, a, tmpdir);
        CHECK(run(cmd) == 0 && err_has("(final front)"), "dato-export --pick fastest on the final front failed");
        dato_genome_space space;
        dato_schedule want;
        snprintf(path, sizeof path, "%s/fast.json", tmpdir);
        CHECK(dato_genome_space_init(&space, ck.steps, ck.cfg.n_branches, &err) == DATO_OK &&
                  dato_genome_to_schedule(&space, ck.final_genomes + (size_t)fastest * ck.genome_bytes, &want, &err) ==
                      DATO_OK && dato_schedule_load(&s, path, &err) == DATO_OK &&
                  !memcmp(s.genes, want.genes, sizeof s.genes[0] * (size_t)s.steps),
              "--pick fastest did not export final row %d", fastest);
    } else {
        // On a loaded machine the paired re-measure may show every member no faster than the
        // baseline; the front is then empty, and front.json must list them as dropped.
        snprintf(path, sizeof path, "%s/a/front.json", tmpdir);
        int dropped = search_test_file_has(path, "\"dropped\": [\n    {", 0);
        printf("run A's final front is empty%s\n", dropped ? ": every member dropped by the paired re-measure" : "");
        CHECK(dropped, "run A's checkpoint has no final front and front.json lists no dropped member: %s", err.msg);
    }
    // Multi-fidelity (10 images: screening on 2): generation 0 fully scored, later children screened,
    // some promoted; the population holds only full-fidelity scores.
    int screened = 0, full = 0, later_full = 0;
    for (int64_t i = 0; i < ck.n_evaluations; i++) {
        double images = ck.arch_extras[i * ck.n_extra + DATO_EXTRA_IMAGES];
        screened += images == 2;
        full += images == 10;
        later_full += images == 10 && ck.arch_generations[i] > 0;
    }
    int infeasible = 0;
    for (int i = 0; i < ck.pop; i++) infeasible += ck.pop_violations[i] != 0;
    printf("archive: %d screened only, %d on all 10 images (%d of them after generation 0); %d infeasible in the "
           "population\n", screened, full, later_full, infeasible);
    CHECK(ck.cfg.screen_images == 2 && screened > 0 && later_full > 0 && screened + full == ck.n_evaluations,
          "screening: %d screened, %d full of %lld", screened, full, (long long)ck.n_evaluations);
    CHECK(infeasible == 0, "%d population members rest on the screening images", infeasible);
    dato_checkpoint_free(&ck);

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
