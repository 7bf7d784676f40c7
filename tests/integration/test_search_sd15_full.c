// The full-size SD1.5 architecture through the search (label slow): a tiny dato-search (pop 4, one
// generation, 4 DDIM steps, 128x128 images, 2 images per evaluation, seeded Inception weights) on
// the SD1.5-shaped random-weight diffusers folder of tools/make_sd15_random_folder.py, found at
// $DATO_SD15_FOLDER or /tmp/sd15-random; skipped (77) when it is absent. Checks that the run
// finishes, chose its batch from the device's memory, and wrote a front whose members each have a
// finite FID and a speedup, and that dato-export picks a schedule from it.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "search_runs.h"
#include "test_util.h"

static char tmpdir[256];

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_search_sd15_full PATH/dato-generate\n");
        return 1;
    }
    const char* folder = getenv("DATO_SD15_FOLDER") ? getenv("DATO_SD15_FOLDER") : "/tmp/sd15-random";
    char path[4200];
    snprintf(path, sizeof path, "%s/model_index.json", folder);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        printf("no %s (python3 tools/make_sd15_random_folder.py --out %s makes it): skipped\n", path, folder);
        return 77;
    }
    const char* slash = strrchr(argv[1], '/');
    int dir_len = slash ? (int)(slash - argv[1] + 1) : 0;
    char search[4096], export_[4096], cmd[12288], weights[512];
    snprintf(search, sizeof search, "%.*sdato-search", dir_len, argv[1]);
    snprintf(export_, sizeof export_, "%.*sdato-export", dir_len, argv[1]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dato_search_sd15_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;

    snprintf(weights, sizeof weights, "%s/inception.safetensors", tmpdir);
    CHECK(search_test_seeded_inception(weights), "writing seeded Inception weights to %s", weights);
    snprintf(cmd, sizeof cmd, "%s --model %s --fid-weights %s --ref baseline --pop 4 --gens 1 --images 2 "
             "--final-images 2 --confirm-images 2 --pairs 1 --steps 4 --sampler ddim --size 128 --threads 2 --seed 1 --prompts-file "
             "datasets/fashion-mnist/eval_prompts.txt --out %s/run", search, folder, weights, tmpdir);
    CHECK(search_test_run(tmpdir, cmd) == 0, "the SD1.5 search failed");
    CHECK(search_test_err_has(tmpdir, "per UNet call: its workspace and cache take"), "the batch choice was not said");
    char ck[512];
    snprintf(ck, sizeof ck, "%s/run/checkpoint.h5", tmpdir);
    dato_checkpoint c = {0};
    dato_error err = {{0}};
    CHECK(dato_checkpoint_read(ck, &c, &err) == DATO_OK, "%s", err.msg);
    CHECK(c.cfg.n_branches == 12 && c.cfg.height == 128 && c.cfg.extractor == DATO_EXTRACTOR_INCEPTION,
          "config: %d branches (SD1.5: 12), height %d", c.cfg.n_branches, c.cfg.height);
    int finite = 0;
    for (int i = 0; i < c.n_final; i++) finite += isfinite(c.final_scores[i * DATO_SEARCH_N_FINAL + 1]) &&
                                                 c.final_scores[i * DATO_SEARCH_N_FINAL] > 0;
    printf("SD1.5-shaped search: %d final members, %d with a finite FID and latency; baseline %.3f s/img, FID %.3f\n",
           c.n_final, finite, c.final_baseline[0], c.final_baseline[1]);
    CHECK(c.n_final > 0 && finite == c.n_final, "final front members without scores");
    dato_checkpoint_free(&c);
    snprintf(cmd, sizeof cmd, "%s %s --pick knee --out %s/knee.json", export_, ck, tmpdir);
    CHECK(search_test_run(tmpdir, cmd) == 0, "dato-export --pick knee failed");

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
