// dato-search on the embedded default model, small (pop 6, 10 images, 10 steps, table latency), issue 23:
// - A runs 2 generations at --threads 1; B runs 1 generation on A's latency table, then resumes to 2
//   at --threads 5 (any thread count gives the same bits, so the resume must be allowed, the table's
//   key notwithstanding). Both end with the same population and archive bit for bit; every row of
//   front.csv and confirm.csv that both hold (the same candidate, or reference) is equal in every
//   column the clock does not set (which members the paired re-measure keeps, and their order, are
//   the clock's), and each front holds up by its own re-measure (sorted by the ratio, all faster
//   than the baseline, none dominated). A made the
//   reference cache's two entries (final and confirmation images); B took the references from them,
//   so the same files also say that a cached run writes what an uncached one does, and, as B's
//   resume has 5 lanes and at most 4 schedules to score a set, that a schedule scored in shares over
//   the lanes (over_pool) scores as one evaluator's whole run does (A has no lanes at 1 thread);
// - a model that ships A's entries (dato.json reference_cache) gives them to a run with an empty cache
//   of its own, which writes nothing there;
// - a run refused at start (an empty --latency-table) leaves no run folder behind;
// - a checkpoint whose config claims 2^31 - 1 images is refused naming --images, before any image;
// - an image size from the model's dato.json that the model cannot take is refused naming dato.json.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "search_runs.h"
#include "test_util.h"

// --ref baseline: FID against the baseline's own images, so that nothing here rests on the model's statistics file.
#define FLAGS_SAID "--pop 6 --images 10 --final-images 10 --confirm-images 10 --pairs 2 --steps 10 --seed 5 --ref baseline"
#define FLAGS FLAGS_SAID " --quiet"

static char search_exe[4096], tmpdir[256];

static int run(const char* cmd) { return search_test_run(tmpdir, cmd); }
static int err_has(const char* what) { return search_test_err_has(tmpdir, what); }

// A CSV file of a run folder read whole (no quoted fields in these files: labels are "front 3",
// "knee (front 1)"): rows[r][c] point into text; row 0 is the header.
#define MAX_ROWS 64
#define MAX_COLS 32
typedef struct {
    char* text;
    char* cell[MAX_ROWS][MAX_COLS];
    int rows, cols;
} csv;

static int csv_read(csv* t, const char* dir, const char* name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t n = 0;
    char* x = (char*)read_bytes(path, &n);
    memset(t, 0, sizeof *t);
    if (!x || !(t->text = realloc(x, n + 1))) {
        free(x);
        fprintf(stderr, "cannot read %s\n", path);
        return 0;
    }
    t->text[n] = 0;
    char* save = NULL;
    for (char* line = strtok_r(t->text, "\n", &save); line && t->rows < MAX_ROWS; line = strtok_r(NULL, "\n", &save)) {
        int c = 0;
        for (char* f = line; f && c < MAX_COLS; c++) {
            t->cell[t->rows][c] = f;
            if ((f = strchr(f, ','))) *f++ = 0;
        }
        if (!t->rows) t->cols = c;
        if (c != t->cols) return 0;
        t->rows++;
    }
    return t->rows > 0;
}

static int csv_col(const csv* t, const char* name) {
    for (int c = 0; c < t->cols; c++)
        if (!strcmp(t->cell[0][c], name)) return c;
    return -1;
}

// The columns that the clock sets (the final re-measure) or that follow the front's order, which
// the clock sets too (search/report.h): not compared between runs.
static int clock_column(const char* name) {
    static const char* const clock[] = {"measured_latency_s", "speedup", "latency_ratio", "ratio_lo", "ratio_hi",
                                        "index", "label", "schedule_file"};
    for (size_t i = 0; i < sizeof clock / sizeof *clock; i++)
        if (!strcmp(name, clock[i])) return 1;
    return 0;
}

// A row's identity: its candidate (what the clock does not move), a reference's label.
static const char* row_key(const csv* t, int r, char* buf, size_t n) {
    int cand = atoi(t->cell[r][csv_col(t, "candidate")]);
    if (cand >= 0) snprintf(buf, n, "candidate %d", cand);
    else snprintf(buf, n, "%s", t->cell[r][csv_col(t, "label")]);
    return buf;
}

// 1 when every row of name in folder a that b also holds (by row_key) is equal in every column the
// clock does not set; *refs counts the reference rows matched, *members the candidates'. Prints them.
static int same_rows(const char* a, const char* b, const char* name, int* refs, int* members) {
    csv x, y;
    int ok = csv_read(&x, a, name) && csv_read(&y, b, name) && x.cols == y.cols && csv_col(&x, "candidate") >= 0;
    *refs = *members = 0;
    for (int c = 0; ok && c < x.cols; c++) ok = !strcmp(x.cell[0][c], y.cell[0][c]);
    for (int r = 1; ok && r < x.rows; r++) {
        char kx[96], ky[96];
        int m = 1;
        while (m < y.rows && strcmp(row_key(&x, r, kx, sizeof kx), row_key(&y, m, ky, sizeof ky))) m++;
        if (m == y.rows) continue; // the other run's re-measure cut it
        for (int c = 0; ok && c < x.cols; c++)
            if (!clock_column(x.cell[0][c]) && strcmp(x.cell[r][c], y.cell[m][c])) {
                fprintf(stderr, "%s, %s: column %s: %s vs %s\n", name, kx, x.cell[0][c], x.cell[r][c], y.cell[m][c]);
                ok = 0;
            }
        if (atoi(x.cell[r][csv_col(&x, "candidate")]) >= 0) ++*members;
        else ++*refs;
    }
    printf("%s: %d reference rows and %d of %d candidate rows in both runs, equal but for the clock: %s\n", name,
           *refs, *members, x.rows - 1 - *refs, ok ? "yes" : "NO");
    free(x.text);
    free(y.text);
    return ok;
}

// 1 when dir/front.csv is a front by the re-measure: sorted by latency_ratio, every ratio below 1
// (faster than the baseline), no row dominating another in (latency_ratio, fid).
static int front_holds(const char* dir) {
    csv t;
    if (!csv_read(&t, dir, "front.csv")) return 0;
    int cr = csv_col(&t, "latency_ratio"), cf = csv_col(&t, "fid"), ok = cr >= 0 && cf >= 0;
    for (int i = 1; ok && i < t.rows; i++) {
        double ri = atof(t.cell[i][cr]), fi = atof(t.cell[i][cf]);
        ok = ri < 1 && (i == 1 || ri >= atof(t.cell[i - 1][cr]));
        for (int j = 1; ok && j < t.rows; j++) {
            double rj = atof(t.cell[j][cr]), fj = atof(t.cell[j][cf]);
            ok = j == i || !(rj <= ri && fj <= fi && (rj < ri || fj < fi));
        }
    }
    printf("%s/front.csv: %d members, sorted by the paired ratio, all faster than the baseline, none dominated: %s\n",
           dir, t.rows - 1, ok ? "yes" : "NO");
    free(t.text);
    return ok;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_search_front_resume PATH/dato-generate\n");
        return 1;
    }
    const char* slash = strrchr(argv[1], '/');
    snprintf(search_exe, sizeof search_exe, "%.*sdato-search", slash ? (int)(slash - argv[1] + 1) : 0, argv[1]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dato_front_resume_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    char cmd[16384], a[300], b[300], ca[512], cb[512], path[512];
    snprintf(a, sizeof a, "%s/a", tmpdir);
    snprintf(b, sizeof b, "%s/b", tmpdir);
    snprintf(ca, sizeof ca, "%s/checkpoint.h5", a);
    snprintf(cb, sizeof cb, "%s/checkpoint.h5", b);

    snprintf(cmd, sizeof cmd, "%s " FLAGS " --threads 1 --gens 2 --reference-cache %s/cache --out %s", search_exe,
             tmpdir, a);
    CHECK(run(cmd) == 0, "run A failed");
    snprintf(cmd, sizeof cmd, "ls %s/cache/refs-*.bin | wc -l | grep -qx 2", tmpdir);
    CHECK(system(cmd) == 0, "run A did not leave 2 reference cache entries in %s/cache", tmpdir);
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --threads 1 --gens 1 --latency-table %s/latency_table.json --out %s "
             "--reference-cache %s/cache", search_exe, a, b, tmpdir);
    CHECK(run(cmd) == 0, "run B (1 generation) failed");
    snprintf(cmd, sizeof cmd, "%s --resume %s --gens 2 --threads 5 --reference-cache %s/cache", search_exe, cb, tmpdir);
    CHECK(run(cmd) == 0, "--resume --threads 5 of a 1-thread run failed");
    CHECK(err_has("on the 10 final images: from the reference cache") &&
              err_has("on the 10 confirmation images: from the reference cache"),
          "the resumed run did not take its references from the cache");
    CHECK(search_test_same_result(ca, cb), "the resumed run's population or archive differs");
    int refs = 0, members = 0;
    CHECK(same_rows(a, b, "front.csv", &refs, &members), "front.csv differs between the run and the resumed run");
    CHECK(same_rows(a, b, "confirm.csv", &refs, &members) && refs == 7,
          "confirm.csv differs between the run and the resumed run, or lacks the baseline and the 6 presets");
    CHECK(front_holds(a) && front_holds(b), "a front.csv does not hold up by its own re-measure");

    // The model's own cache: a copy of the default model (its parts linked) shipping A's entries.
    char model[512], src[PATH_MAX], prompts[PATH_MAX];
    if (!realpath("models/fashion-sd", src)) snprintf(src, sizeof src, "models/fashion-sd");
    if (!realpath("datasets/fashion-mnist/eval_prompts.txt", prompts)) snprintf(prompts, sizeof prompts, "?");
    snprintf(model, sizeof model, "%s/shipping", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && for p in featnet model_index.json scheduler text_encoder tokenizer unet "
             "vae; do ln -s %s/$p %s/$p; done && cp -r %s/cache %s/refs && printf '{\"format\": "
             "\"dato-model-defaults\", \"version\": 1, \"height\": 28, \"width\": 28, \"guidance\": 4.0, "
             "\"eval_prompts\": \"%s\", \"feature_net\": \"featnet\", \"reference_cache\": \"refs\"}' > "
             "%s/dato.json", model, src, model, tmpdir, model, prompts, model);
    CHECK(system(cmd) == 0, "cannot make %s", model);
    snprintf(cmd, sizeof cmd, "%s " FLAGS_SAID " --model %s --threads 2 --gens 0 --out %s/m --reference-cache %s/own",
             search_exe, model, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "the run on the model shipping its cache failed");
    CHECK(err_has("on the 10 final images: from the reference cache (") && err_has("shipping/refs), the first batch") &&
              err_has("on the 10 confirmation images: from the reference cache ("),
          "the run did not take its references from the model's folder");
    snprintf(cmd, sizeof cmd, "test ! -e %s/own", tmpdir);
    CHECK(system(cmd) == 0, "a run that found the model's entries wrote its own");

    // A run refused at start leaves nothing: an empty latency table (a full disk's leftover).
    snprintf(path, sizeof path, "%s/empty.json", tmpdir);
    FILE* f = fopen(path, "w");
    if (f) fclose(f);
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --latency-table %s --out %s/c/run", search_exe, path, tmpdir);
    int rc = run(cmd);
    snprintf(path, sizeof path, "%s/c", tmpdir);
    CHECK(rc == 1 && err_has("empty.json") && access(path, F_OK) != 0, "an empty --latency-table: exit %d, %s %s", rc,
          path, access(path, F_OK) ? "absent" : "left behind");

    // A forged config: 2^31 - 1 images (sealed anew, as a crafted file would be).
    dato_checkpoint ck = {0};
    dato_error err = {{0}};
    snprintf(path, sizeof path, "%s/forged", tmpdir);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/forged/checkpoint.h5", tmpdir);
    int forged = dato_checkpoint_read(ca, &ck, &err) == DATO_OK;
    ck.cfg.images = INT_MAX;
    forged = forged && dato_checkpoint_write(path, &ck, &err) == DATO_OK;
    dato_checkpoint_free(&ck);
    CHECK(forged, "cannot forge a checkpoint: %s", err.msg);
    snprintf(cmd, sizeof cmd, "%s --resume %s --quiet", search_exe, path);
    CHECK(run(cmd) == 1 && err_has("--images 2147483647: expected 2..1000000"), "2^31 - 1 images were not refused");

    // The image size of a model's dato.json: a copy of the default model that asks for 14x14.
    snprintf(model, sizeof model, "%s/model14", tmpdir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && for p in featnet model_index.json scheduler text_encoder tokenizer unet "
             "vae; do ln -s %s/$p %s/$p; done && printf '{\"format\": \"dato-model-defaults\", \"version\": 1, "
             "\"height\": 14, \"width\": 14, \"steps\": 10, \"guidance\": 4.0, \"eval_prompts\": "
             "\"%s/../../datasets/fashion-mnist/eval_prompts.txt\", \"feature_net\": \"featnet\"}' > %s/dato.json",
             model, src, model, src, model);
    CHECK(system(cmd) == 0, "cannot make %s", model);
    snprintf(cmd, sizeof cmd, "%s --model %s --pop 4 --gens 0 --images 2 --final-images 2 --confirm-images 0 "
             "--pairs 1 --ref baseline --quiet --out %s/d", search_exe, model, tmpdir);
    CHECK(run(cmd) == 1 && err_has("dato.json (height 14, width 14)") && err_has("14x14"),
          "a 14x14 size from dato.json is not refused naming dato.json");

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
