// dato-search on the embedded default model, small (pop 6, 10 images, 10 steps, table latency), issue 23:
// - A runs 2 generations at --threads 1; B runs 1 generation on A's latency table, then resumes to 2
//   at --threads 5 (any thread count gives the same bits, so the resume must be allowed, the table's
//   key notwithstanding). Both end with the same population and archive bit for bit, and with the
//   same front.csv and confirm.csv in every column the clock does not measure, rows in the same
//   order (the front is ranked by the search's latency, not by the final re-measure). A made the
//   reference cache's two entries (final and confirmation images); B took the references from them,
//   so the same files also say that a cached run writes what an uncached one does;
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

// The columns of front.csv and confirm.csv that the clock sets (search/report.h): the final re-measure.
static int clock_column(const char* name) {
    static const char* const clock[] = {"measured_latency_s", "speedup", "latency_ratio", "ratio_lo", "ratio_hi"};
    for (size_t i = 0; i < sizeof clock / sizeof *clock; i++)
        if (!strcmp(name, clock[i])) return 1;
    return 0;
}

// Splits a CSV line (no quoted fields in these files: labels are "front 3", "knee (front 1)") in place.
static int split(char* line, char** fields, int max) {
    int n = 0;
    for (char* f = line; n < max; n++) {
        fields[n] = f;
        char* comma = strchr(f, ',');
        if (!comma) return n + 1;
        *comma = 0;
        f = comma + 1;
    }
    return n;
}

// 1 when the CSV files name in folders a and b hold the same rows, in the same order, equal in every
// column but the clock's. Prints what it compared.
static int same_csv(const char* a, const char* b, const char* name) {
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/%s", a, name);
    snprintf(pb, sizeof pb, "%s/%s", b, name);
    size_t na = 0, nb = 0;
    char *x = (char*)read_bytes(pa, &na), *y = (char*)read_bytes(pb, &nb);
    char *tx = x ? realloc(x, na + 1) : NULL, *ty = y ? realloc(y, nb + 1) : NULL;
    if (!tx || !ty) {
        free(tx ? tx : x);
        free(ty ? ty : y);
        fprintf(stderr, "cannot read %s or %s\n", pa, pb);
        return 0;
    }
    tx[na] = ty[nb] = 0;
    char *sx = NULL, *sy = NULL, *lx = strtok_r(tx, "\n", &sx), *ly = strtok_r(ty, "\n", &sy);
    char *header[64], *fx[64], *fy[64], head[1024];
    snprintf(head, sizeof head, "%s", lx ? lx : "");
    int cols = split(head, header, 64), rows = 0, ok = lx && ly && !strcmp(lx, ly), compared = 0;
    for (lx = strtok_r(NULL, "\n", &sx), ly = strtok_r(NULL, "\n", &sy); ok && (lx || ly);
         lx = strtok_r(NULL, "\n", &sx), ly = strtok_r(NULL, "\n", &sy), rows++) {
        if (!lx || !ly) {
            fprintf(stderr, "%s: row %d in one file only\n", name, rows);
            ok = 0;
            break;
        }
        int n = split(lx, fx, 64), m = split(ly, fy, 64);
        ok = n == cols && m == cols;
        for (int k = 0; ok && k < cols; k++) {
            if (clock_column(header[k])) continue;
            compared++;
            if (strcmp(fx[k], fy[k])) {
                fprintf(stderr, "%s row %d column %s: %s vs %s\n", name, rows, header[k], fx[k], fy[k]);
                ok = 0;
            }
        }
    }
    printf("%s: %d rows, %d values compared (clock columns skipped): %s\n", name, rows, compared,
           ok ? "identical" : "DIFFERENT");
    free(tx);
    free(ty);
    return ok && rows > 0;
}

// 1 when the latency_s column (the third) of dir/front.csv never falls: the front is ranked by it.
static int front_sorted(const char* dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/front.csv", dir);
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    double last = -1;
    int ok = fgets(line, sizeof line, f) != NULL;
    while (ok && fgets(line, sizeof line, f)) {
        char* fields[64];
        double v = split(line, fields, 64) > 2 ? strtod(fields[2], NULL) : -1;
        ok = v >= last;
        last = v;
    }
    fclose(f);
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
    CHECK(same_csv(a, b, "front.csv"), "front.csv differs between the run and the resumed run");
    CHECK(same_csv(a, b, "confirm.csv"), "confirm.csv differs between the run and the resumed run");
    CHECK(front_sorted(a) && front_sorted(b), "a front.csv is not sorted by latency_s");

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
