// dato-search on an SD-family diffusers folder (tests/fixtures/pipeline/sd15, the tiny SD1.5-layout
// model) scored with pytorch-fid's Inception-v3 (seeded random weights written here: the real file
// is not available): non-square images, a prompts file whose prompts do not divide the images
// evenly, every quality objective, an HDF5 reference made by dato-fid from images of the model;
// then a front member exported and applied with dato-generate, and a stopped run resumed bit for bit. Also
// the messages that tell a user what to give when the model ships no feature network.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "search_runs.h"
#include "test_util.h"

#define MODEL "tests/fixtures/pipeline/sd15"
#define FLAGS "--model " MODEL " --pop 4 --images 5 --final-images 4 --confirm-images 4 --pairs 2 --steps 6 --height 16 --width 24 --threads 2 " \
              "--seed 3 --quiet"

static char tmpdir[256];
static int run(const char* cmd) { return search_test_run(tmpdir, cmd); }
static int err_has(const char* what) { return search_test_err_has(tmpdir, what); }

static int file_has(const char* path, const char* what) { return search_test_file_has(path, what, 1); }

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_search_sd_inception PATH/dato-generate\n");
        return 1;
    }
    const char* generate = argv[1];
    const char* slash = strrchr(generate, '/');
    int dir_len = slash ? (int)(slash - generate + 1) : 0;
    char search[4096], export_[4096], fid[4096], cmd[8192], path[1024], weights[512], prompts[512], table[512];
    snprintf(search, sizeof search, "%.*sdato-search", dir_len, generate);
    snprintf(export_, sizeof export_, "%.*sdato-export", dir_len, generate);
    snprintf(fid, sizeof fid, "%.*sdato-fid", dir_len, generate);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dato_search_sd_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;

    // Seeded Inception weights, and three prompts for five images (2, 2, 1).
    snprintf(weights, sizeof weights, "%s/inception.safetensors", tmpdir);
    CHECK(search_test_seeded_inception(weights), "writing seeded Inception weights to %s", weights);
    snprintf(prompts, sizeof prompts, "%s/prompts.txt", tmpdir);
    FILE* f = fopen(prompts, "w");
    CHECK(f && fputs("a photo of a cat\na red car on a street\n\na bowl of fruit\n", f) >= 0 && !fclose(f), "prompts");

    // The model ships no feature network: the message says what to give.
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --prompts-file %s --out %s/none", search, prompts, tmpdir);
    CHECK(run(cmd) == 1 && err_has("--fid-weights"), "no extractor: not refused with the flag to give");
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --prompts-file %s --extractor inception --out %s/none", search, prompts, tmpdir);
    CHECK(run(cmd) == 1 && err_has("--extractor inception needs --fid-weights"), "inception without weights");
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --prompts-file %s --fid-weights %s --height 13 --out %s/none", search, prompts,
             weights, tmpdir);
    CHECK(run(cmd) == 1 && err_has("13x24") && err_has("multiples of 4"), "--height 13 (not a multiple of 4) accepted");
    struct stat sb;
    snprintf(path, sizeof path, "%s/none", tmpdir);
    CHECK(stat(path, &sb) != 0, "a run that could not start left %s behind", path);

    // A: teacher distance (the default objective), FID against the baseline's images, 2 generations.
    snprintf(cmd, sizeof cmd, "%s --model " MODEL " --pop 4 --images 5 --final-images 4 --confirm-images 4 --pairs 2 --steps 6 --height 16 "
             "--width 24 --threads 2 --seed 3 --gens 2 --prompts-file %s --fid-weights %s --ref baseline --out %s/a",
             search, prompts, weights, tmpdir);
    CHECK(run(cmd) == 0, "run A (teacher, Inception) failed");
    CHECK(err_has("16x24 images (h x w), 5 images over 3 prompts: 2 each for the first 2, 1 for the rest"),
          "the images' size and spread were not said");
    CHECK(err_has("pytorch-fid-inception-v3-pool3"), "the extractor was not named");
    snprintf(path, sizeof path, "%s/a/front.json", tmpdir);
    CHECK(file_has(path, "\"extractor\": \"inception\"") && file_has(path, "\"width\": 24") &&
              file_has(path, "\"preprocess\": \"pytorch-fid\""), "front.json lacks the extractor or the size");
    snprintf(path, sizeof path, "%s/a/grids/baseline.png", tmpdir);
    CHECK(stat(path, &sb) == 0, "no %s", path);

    // B: the same run stopped after 1 generation (A's latency table), resumed to 2: identical.
    snprintf(table, sizeof table, "%s/a/latency_table.json", tmpdir);
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --prompts-file %s --fid-weights %s --ref baseline "
             "--latency-table %s --out %s/b", search, prompts, weights, table, tmpdir);
    CHECK(run(cmd) == 0, "run B (1 generation) failed");
    snprintf(cmd, sizeof cmd, "%s --resume %s/b/checkpoint.h5 --gens 2 --quiet", search, tmpdir);
    CHECK(run(cmd) == 0, "resuming B failed");
    char a_ck[512], b_ck[512];
    snprintf(a_ck, sizeof a_ck, "%s/a/checkpoint.h5", tmpdir);
    snprintf(b_ck, sizeof b_ck, "%s/b/checkpoint.h5", tmpdir);
    CHECK(search_test_same_result(a_ck, b_ck), "stop + resume differs from the uninterrupted run");

    // A front member of A (the fastest: the knee needs three members), applied where people generate.
    snprintf(cmd, sizeof cmd, "%s %s --index 0 --out %s/knee.json", export_, a_ck, tmpdir);
    CHECK(run(cmd) == 0, "dato-export --index 0 failed");
    snprintf(cmd, sizeof cmd, "%s --model " MODEL " --prompt \"a photo of a cat\" --steps 6 --seed 3 --schedule "
             "%s/knee.json --out %s/knee.png", generate, tmpdir, tmpdir);
    CHECK(run(cmd) == 0, "dato-generate --schedule knee.json failed");

    // C: FID as the objective, against real-data statistics made by dato-fid (here: images of the model).
    snprintf(cmd, sizeof cmd, "mkdir -p %s/real && %s --model " MODEL " --prompt \"a red car on a street\" --steps 6 "
             "--num-images-per-prompt 4 --seed 9 --out %s/real/car.png && %s stats --images %s/real --weights %s --out %s/ref.h5",
             tmpdir, generate, tmpdir, fid, tmpdir, weights, tmpdir);
    CHECK(run(cmd) == 0, "making the reference statistics failed");
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --prompts-file %s --fid-weights %s --objective fid --ref %s/ref.h5 "
             "--latency-table %s --out %s/c", search, prompts, weights, tmpdir, table, tmpdir);
    CHECK(run(cmd) == 0, "run C (FID objective) failed");
    // A reference from another extractor is refused, naming the field.
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --prompts-file %s --fid-weights %s --preprocess clean --ref %s/ref.h5 "
             "--out %s/d", search, prompts, weights, tmpdir, tmpdir);
    CHECK(run(cmd) == 1 && err_has("preprocessing"), "statistics of another preprocessing accepted");

    // D: the CLIP score as the objective (the tiny CLIP fixture): every front member carries one.
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --prompts-file %s --fid-weights %s --ref baseline --objective clip "
             "--clip tests/fixtures/clip/tiny --latency-table %s --out %s/e", search, prompts, weights, table, tmpdir);
    CHECK(run(cmd) == 0, "run E (CLIP objective) failed");
    // Every front member (the front may lose members that the paired re-measure shows slower on a
    // loaded machine) and every confirmed schedule (the baseline and the presets are always there)
    // carries a CLIP score, in the clip_score column.
    const char* files[] = {"front.csv", "confirm.csv"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/e/%s", tmpdir, files[k]);
        size_t n = 0;
        char* csv = (char*)read_bytes(path, &n);
        char* text = csv ? realloc(csv, n + 1) : NULL;
        if (text) text[n] = 0;
        int rows = 0, scored = 0, col = -1;
        char* save = NULL;
        for (char* line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save), rows++) {
            int c = 0;
            double v = -1;
            for (char *f = line, *end; f; f = end ? end + 1 : NULL, c++) { // the fields of a CSV row without quotes
                end = strchr(f, ',');
                size_t len = end ? (size_t)(end - f) : strlen(f);
                if (!rows && len == 10 && !strncmp(f, "clip_score", 10)) col = c;
                if (rows && c == col) v = atof(f);
            }
            scored += rows && v >= 0 && v <= 100;
        }
        free(text ? text : csv);
        printf("CLIP objective: %s: %d rows, %d with a CLIP score in [0, 100]\n", files[k], rows - 1, scored);
        CHECK(col >= 0 && rows >= (k ? 3 : 1) && scored == rows - 1, "%s: rows without a CLIP score", files[k]);
    }
    snprintf(cmd, sizeof cmd, "%s " FLAGS " --gens 1 --prompts-file %s --fid-weights %s --objective clip --out %s/f", search,
             prompts, weights, tmpdir);
    CHECK(run(cmd) == 2 && err_has("--objective clip needs --clip"), "--objective clip without --clip accepted");

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
