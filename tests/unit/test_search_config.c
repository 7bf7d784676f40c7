// A thread change on resume: the engine's bits do not depend on the thread count (test_cpu_gemm
// checks the GEMM at 1, 2, 3 and 8 threads), so dato_search_config_check_resume allows any change,
// to and from 0 (all the cores) too, and the field table marks threads as not changing the answer.
#include <string.h>

#include "search_config.h"
#include "test_util.h"

int main(void) {
    const struct {
        int saved, now;
    } cases[] = {{1, 2}, {2, 1}, {1, 4}, {3, 3}, {2, 8}, {8, 4}, {0, 2}, {4, 0}, {5, 6}, {1, 64}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        dato_search_config a, b;
        memset(&a, 0, sizeof a);
        a.threads = cases[i].saved;
        b = a;
        b.threads = cases[i].now;
        dato_error err = {{0}};
        dato_status st = dato_search_config_check_resume(&a, &b, &err);
        CHECK(st == DATO_OK, "resume %d -> %d threads: status %d: %s", cases[i].saved, cases[i].now, (int)st, err.msg);
    }
    int found = 0;
    for (int i = 0; i < dato_search_config_n_fields; i++)
        if (strcmp(dato_search_config_fields[i].name, "threads") == 0) {
            found = 1;
            CHECK(dato_search_config_fields[i].answer == 0, "threads is marked as changing the answer");
        }
    CHECK(found, "threads is not in the field table (checkpoints store it)");
    printf("%zu thread changes resumed\n", sizeof cases / sizeof *cases);
    return test_summary();
}
