// dato_latency_save's failure names the table's path, the temporary it writes through and the
// errno text (it said only "cannot write the latency table").
#include <errno.h>
#include <string.h>

#include "latency.h"
#include "test_util.h"

int main(void) {
    dato_latency_table t;
    memset(&t, 0, sizeof t);
    snprintf(t.key.model, sizeof t.key.model, "tiny");
    snprintf(t.key.device, sizeof t.key.device, "cpu");
    snprintf(t.key.sampler, sizeof t.key.sampler, "euler");
    dato_error err;
    const char* path = "/tmp/dato_test_latency_save_absent_dir/latency_table.json";
    dato_status st = dato_latency_save(&t, path, &err);
    printf("save into a missing folder: %s\n", err.msg);
    CHECK(st == DATO_ERR_IO && strstr(err.msg, path) && strstr(err.msg, "latency_table.json.tmp") &&
              strstr(err.msg, strerror(ENOENT)),
          "%s", err.msg);
    return test_summary();
}
