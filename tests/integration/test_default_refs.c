// The embedded model's shipped reference cache (models/fashion-sd/refs, dato.json reference_cache) is
// this build's: a search with the default search's final and confirmation sets (200 and 1,000
// images; --pop, --gens and --pairs do not change the references) and an empty cache of its own takes
// both sets' references from the model's folder, the first batch of the baseline and of every preset
// made again and equal bit for bit. When this fails, an engine change moved the bits: remake the
// entries with scripts/refresh-default-refs (about 10 minutes), or a user's first default search pays
// for them (docs/SEARCH.md, "The reference cache").
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "search_runs.h"
#include "test_util.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_default_refs PATH/dato-generate\n");
        return 1;
    }
    const char* slash = strrchr(argv[1], '/');
    char exe[2048], tmpdir[256] = "/tmp/dato_default_refs_XXXXXX", cmd[4096];
    snprintf(exe, sizeof exe, "%.*sdato-search", slash ? (int)(slash - argv[1] + 1) : 0, argv[1]);
    if (!mkdtemp(tmpdir)) return 1;

    snprintf(cmd, sizeof cmd, "%s --pop 4 --gens 0 --pairs 1 --reference-cache %s/cache --out %s/run", exe, tmpdir,
             tmpdir);
    CHECK(search_test_run(tmpdir, cmd) == 0, "the search failed");
    CHECK(search_test_err_has(tmpdir, "on the 200 final images: from the reference cache (") &&
              search_test_err_has(tmpdir, "fashion-sd/refs), the first batch of each made again and equal bit for bit") &&
              search_test_err_has(tmpdir, "on the 1000 confirmation images: from the reference cache ("),
          "the references did not come from models/fashion-sd/refs: run scripts/refresh-default-refs");
    snprintf(cmd, sizeof cmd, "test ! -e %s/cache", tmpdir);
    CHECK(system(cmd) == 0, "the run wrote entries of its own: the shipped ones were not enough");

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
