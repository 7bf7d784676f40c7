// libFuzzer target for the schedule JSON reader (dato_schedule_parse, engine/runtime/schedule.c;
// dato_schedule_load reads the file and calls it): any text must be accepted or refused without
// a sanitizer report, and an accepted schedule must be valid and survive a write and re-read
// unchanged. Build and run: docs/FUZZING.md.
#include "fuzz_util.h"
#include "schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    char* json = fuzz_text(data, size);
    dato_schedule* s = calloc(2, sizeof *s); // [0] parsed, [1] re-read from its JSON
    if (!json || !s) {
        free(json);
        free(s);
        return 0;
    }
    dato_error err;
    if (dato_schedule_parse(&s[0], json, "fuzz-input", &err) != DATO_OK) {
        fuzz_check_error(&err, "fuzz-input");
    } else {
        INVARIANT(dato_schedule_validate(&s[0], s[0].steps, s[0].n_branches, &err) == DATO_OK);
        INVARIANT(memchr(s[0].model, '\0', sizeof s[0].model) && memchr(s[0].sampler, '\0', sizeof s[0].sampler));
        dato_schedule_counts c = dato_schedule_count(&s[0]);
        INVARIANT(c.full + c.partial + c.reuse == s[0].steps && c.mean_ratio >= 0 && c.mean_ratio <= 0.7 + 1e-6);
        char* text = NULL;
        INVARIANT(dato_schedule_to_json(&s[0], &text, &err) == DATO_OK);
        INVARIANT(dato_schedule_parse(&s[1], text, "written", &err) == DATO_OK);
        INVARIANT(memcmp(&s[0], &s[1], sizeof s[0]) == 0);
        free(text);
    }
    free(s);
    free(json);
    return 0;
}
