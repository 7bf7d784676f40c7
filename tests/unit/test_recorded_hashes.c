// The hashes dato's files record stay what those files hold: the shipped reference statistics name
// the default model's feature network by the hash dato_file_hash gives it (a changed basis refused
// every default search: "weights hash differs"), and FNV-1a 64 itself gives its published values.
#include <stdio.h>
#include <string.h>

#include "extractor.h"
#include "hash.h"
#include "stats_io.h"
#include "test_util.h"

int main(void) {
    dato_error err = {{0}};
    // FNV-1a 64 test vectors (Fowler, Noll, Vo): "" and "a".
    CHECK(dato_fnv1a64(DATO_FNV_OFFSET, "", 0) == 0xcbf29ce484222325ULL, "FNV-1a 64 of no bytes");
    CHECK(dato_fnv1a64(DATO_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cULL, "FNV-1a 64 of 'a': %016llx",
          (unsigned long long)dato_fnv1a64(DATO_FNV_OFFSET, "a", 1));

    char hash[64];
    CHECK(dato_file_hash("models/fashion-sd/featnet/model.safetensors", hash, sizeof hash, &err) == DATO_OK, "%s",
          err.msg);
    const char* sets[] = {"datasets/fashion-mnist/stats_test.h5", "datasets/fashion-mnist/stats_train.h5"};
    for (int i = 0; i < 2; i++) {
        dato_fid_stats stats = {0};
        dato_stats_meta meta;
        CHECK(dato_stats_read_h5(sets[i], &stats, &meta, &err) == DATO_OK, "%s", err.msg);
        printf("%s: weights_hash %s, the feature network's %s\n", sets[i], meta.weights_hash, hash);
        CHECK(strcmp(meta.weights_hash, hash) == 0, "%s records %s; the feature network hashes to %s", sets[i],
              meta.weights_hash, hash);
        dato_fid_stats_free(&stats);
    }
    return test_summary();
}
