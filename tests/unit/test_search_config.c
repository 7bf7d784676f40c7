// The one rule for a thread change on resume (issue 23): dato_search_threads_same_bits, and the resume
// check that applies it. 1 to 4 threads give the same bits, so a resume may move within 1..4; any
// other change (to 8, from or to 0 = all the cores) is refused naming threads and both counts.
#include <string.h>

#include "search_config.h"
#include "test_util.h"

int main(void) {
    const struct {
        int saved, now, same;
    } cases[] = {{1, 2, 1}, {2, 1, 1}, {1, 4, 1}, {3, 3, 1}, {8, 8, 1}, {0, 0, 1},
                 {2, 8, 0}, {8, 4, 0}, {0, 2, 0}, {4, 0, 0}, {5, 6, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        dato_search_config a, b;
        memset(&a, 0, sizeof a);
        a.threads = cases[i].saved;
        b = a;
        b.threads = cases[i].now;
        dato_error err = {{0}};
        dato_status st = dato_search_config_check_resume(&a, &b, &err);
        char want[64];
        snprintf(want, sizeof want, "threads: checkpoint %d vs now %d", cases[i].saved, cases[i].now);
        CHECK(dato_search_threads_same_bits(cases[i].saved, cases[i].now) == cases[i].same, "%d -> %d threads",
              cases[i].saved, cases[i].now);
        CHECK(cases[i].same ? st == DATO_OK : st == DATO_ERR_INVALID && strstr(err.msg, want) != NULL,
              "resume %d -> %d threads: status %d: %s", cases[i].saved, cases[i].now, (int)st, err.msg);
        if (!cases[i].same) printf("%d -> %d threads: %s\n", cases[i].saved, cases[i].now, err.msg);
    }
    return test_summary();
}
