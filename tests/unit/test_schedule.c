// DaTo schedules as data: presets, DeepCache's full steps (its own code's, from a fixture), JSON
// round trips, and the messages of validation and of hostile JSON.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "schedule.h"
#include "test_util.h"

static dato_schedule sched, other; // ~8 KB each: kept off the stack

static double max_ratio_err;

static int contains(const char* msg, const char* part) { return strstr(msg, part) != NULL; }

// The error message of a failing parse must contain both parts.
static void check_rejected(const char* json, const char* part1, const char* part2) {
    dato_error err = {{0}};
    memset(&sched, 0x5a, sizeof(sched));
    other = sched;
    dato_status st = dato_schedule_parse(&sched, json, "hostile.json", &err);
    CHECK(st != DATO_OK, "accepted: %s", json);
    CHECK(contains(err.msg, part1) && contains(err.msg, part2), "message '%s' lacks '%s' / '%s'", err.msg, part1,
          part2);
    CHECK(memcmp(&sched, &other, sizeof(sched)) == 0, "output changed on error: %s", json);
}

static void check_preset_rejected(const char* spec) {
    dato_error err = {{0}};
    dato_status st = dato_schedule_preset(&sched, spec, 50, 12, &err);
    CHECK(st != DATO_OK, "preset '%s' accepted", spec);
    CHECK(contains(err.msg, spec), "message '%s' does not name the spec '%s'", err.msg, spec);
}

// to_json -> parse gives back the same bytes, and to_json of that gives the same text.
static void check_round_trip(const dato_schedule* s, const char* what) {
    char *text = NULL, *again = NULL;
    dato_error err = {{0}};
    CHECK(dato_schedule_to_json(s, &text, &err) == DATO_OK, "%s: %s", what, err.msg);
    if (!text) return;
    memset(&other, 0, sizeof(other));
    CHECK(dato_schedule_parse(&other, text, what, &err) == DATO_OK, "%s: %s", what, err.msg);
    CHECK(memcmp(s, &other, sizeof(other)) == 0, "%s: round trip differs", what);
    CHECK(dato_schedule_to_json(&other, &again, &err) == DATO_OK && again && strcmp(text, again) == 0,
          "%s: text differs on the second save", what);
    free(text);
    free(again);
}

static void check_counts(const dato_schedule* s, int full, int partial, int reuse, double mean_ratio,
                         const char* what) {
    dato_schedule_counts c = dato_schedule_count(s);
    CHECK(c.full == full && c.partial == partial && c.reuse == reuse, "%s: counts %d/%d/%d, expected %d/%d/%d", what,
          c.full, c.partial, c.reuse, full, partial, reuse);
    double e = fabs(c.mean_ratio - mean_ratio);
    max_ratio_err = e > max_ratio_err ? e : max_ratio_err;
    CHECK(e < 1e-6, "%s: mean ratio %.9f, expected %.9f", what, c.mean_ratio, mean_ratio);
}

static void check_preset(const char* spec, int steps, int n_branches) {
    dato_error err = {{0}};
    CHECK(dato_schedule_preset(&sched, spec, steps, n_branches, &err) == DATO_OK, "%s: %s", spec, err.msg);
    CHECK(dato_schedule_validate(&sched, steps, n_branches, &err) == DATO_OK, "%s: %s", spec, err.msg);
    CHECK(sched.genes[0].depth == n_branches + 1, "%s: step 0 not full", spec);
    check_round_trip(&sched, spec);
}

// Full-step indices of a deepcache preset must equal the given list, other steps partial_depth.
static void check_full_steps(const char* spec, int steps, int n_branches, int partial_depth, const int* expected,
                             int n_expected) {
    check_preset(spec, steps, n_branches);
    int n_full = 0, match = 1;
    for (int k = 0; k < steps; k++) {
        if (sched.genes[k].depth != n_branches + 1) {
            CHECK(sched.genes[k].depth == partial_depth && sched.genes[k].ratio == 0.0f, "%s: step %d depth %d, not %d",
                  spec, k, sched.genes[k].depth, partial_depth);
            continue;
        }
        match &= n_full < n_expected && expected[n_full] == k;
        n_full++;
    }
    CHECK(match && n_full == n_expected, "%s: full steps differ from DeepCache's", spec);
}

static void test_quad_center(void) {
    // Expected values: DeepCache's sample_from_quad_center (the loop quoted in engine/runtime/schedule.c)
    // run in Python 3 with numpy 2.4.6 on (total_numbers, n_samples = total // N, center, pow);
    // a grid of 4,860 such cases (steps 2..300, N 1..12, pow 1.01..4) matched bit for bit.
    static const struct {
        int total, n_samples, center;
        double power;
        int n;
        int indices[32];
    } cases[] = {
        {50, 10, 15, 1.4, 10, {0, 5, 9, 13, 17, 21, 26, 31, 37, 43}},
        {50, 16, 20, 1.2, 16, {0, 4, 7, 10, 13, 16, 19, 20, 23, 26, 29, 32, 36, 39, 42, 46}},
        {25, 5, 10, 1.5, 5, {0, 5, 10, 13, 19}},
        {10, 5, 3, 1.3, 5, {0, 2, 3, 5, 7}},
        {50, 10, 25, 1.2, 10, {0, 6, 11, 16, 21, 25, 29, 34, 39, 44}},
        {10, 3, 0, 1.2, 3, {0, 2, 6}},
        {50, 5, 5, 2.0, 5, {0, 4, 10, 20, 33}},
        // pow falls to 1 without a match: DeepCache raises ValueError
        {30, 30, 10, 1.4, -1, {0}},
        {30, 15, 15, 1.2, -1, {0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got[1001];
        int n = dato_deepcache_quad_center(got, cases[i].total, cases[i].n_samples, cases[i].center, cases[i].power);
        int same = n == cases[i].n;
        for (int j = 0; same && j < n; j++) same = got[j] == cases[i].indices[j];
        CHECK(same, "quad center (%d, %d, %d, %g): %d indices, differs from Python", cases[i].total,
              cases[i].n_samples, cases[i].center, cases[i].power, n);
    }
    // DeepCache's README example; then N not dividing the steps: DeepCache's pipeline asks for
    // ceil(50 / 3) = 17 and ceil(50 / 7) = 8 full steps (tests/fixtures/schedules/deepcache_full_steps.txt).
    const int full_50[] = {0, 5, 9, 13, 17, 21, 26, 31, 37, 43};
    check_full_steps("deepcache:5:center=15:pow=1.4", 50, 12, 1, full_50, 10);
    check_full_steps("deepcache:5:pow=1.4:branch=1:center=15", 50, 12, 2, full_50, 10);
    const int full_50_n3[] = {0, 3, 6, 8, 11, 13, 15, 17, 20, 22, 25, 28, 32, 35, 38, 42, 46};
    check_full_steps("deepcache:3:center=15:pow=1.4", 50, 12, 1, full_50_n3, 17);
    const int full_50_n7[] = {0, 6, 11, 15, 21, 27, 34, 42};
    check_full_steps("deepcache:7:center=15:pow=1.4:branch=3", 50, 12, 4, full_50_n7, 8);
    const int full_10[] = {0, 2, 3, 5, 7};
    check_full_steps("deepcache:2:center=3:pow=1.3", 10, 9, 1, full_10, 5);
    // N = 1 refreshes every step, uniform or not (DeepCache tests cache_interval == 1 first).
    const int all_10[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    check_full_steps("deepcache:1:center=3:pow=1.3", 10, 9, 1, all_10, 10);
}

// Every line of tests/fixtures/schedules/deepcache_full_steps.txt (tools/make_deepcache_fixtures.py
// runs DeepCache's own pipeline statements): the preset's full steps are DeepCache's, its other
// steps depth branch + 1 (branch set on every other line, clamped to B); where DeepCache raises,
// the preset is refused with a message naming the spec.
static void test_deepcache_fixture(void) {
    const char* path = "tests/fixtures/schedules/deepcache_full_steps.txt";
    const int B = 12;
    size_t n = 0;
    char* text = (char*)read_bytes(path, &n);
    char* z = text ? realloc(text, n + 1) : NULL;
    CHECK(z != NULL, "cannot read %s", path);
    if (!z) {
        free(text);
        return;
    }
    z[n] = 0;
    int cases = 0, not_dividing = 0, refused = 0, worst = 0;
    for (char *line = z, *next; *line; line = next) {
        next = line + strcspn(line, "\n");
        if (*next) *next++ = 0;
        if (line[0] == '#') continue;
        char* colon = strstr(line, " : ");
        int steps = 0, interval = 0;
        char center[32], power[32];
        int ok = colon && sscanf(line, "%d %d %31s %31s", &steps, &interval, center, power) == 4 && steps >= 1 &&
                 steps <= DATO_SCHEDULE_MAX_STEPS;
        CHECK(ok, "%s: bad line '%s'", path, line);
        if (!ok) continue;
        char spec[160];
        int branch = cases % 2 ? cases % 15 : -1, uniform = strcmp(center, "-") == 0;
        int len = uniform ? snprintf(spec, sizeof spec, "deepcache:%d", interval)
                          : snprintf(spec, sizeof spec, "deepcache:%d:center=%s:pow=%s", interval, center, power);
        if (branch >= 0) snprintf(spec + len, sizeof spec - (size_t)len, ":branch=%d", branch);
        int depth = branch < 0 ? 1 : (branch + 1 < B ? branch + 1 : B);
        cases++;
        not_dividing += !uniform && steps % interval != 0;
        dato_error err = {{0}};
        dato_status st = dato_schedule_preset(&sched, spec, steps, B, &err);
        if (strcmp(colon + 3, "raises") == 0) {
            refused++;
            CHECK(st != DATO_OK && contains(err.msg, spec) && contains(err.msg, "ValueError"),
                  "%s at %d steps: accepted where DeepCache raises ('%s')", spec, steps, err.msg);
            continue;
        }
        CHECK(st == DATO_OK, "%s at %d steps: %s", spec, steps, err.msg);
        if (st != DATO_OK) continue;
        unsigned char full[DATO_SCHEDULE_MAX_STEPS] = {0};
        char* p = colon + 3;
        for (char* end;; p = end) {
            long k = strtol(p, &end, 10);
            if (end == p) break;
            if (k >= 0 && k < steps) full[k] = 1;
        }
        int differ = 0;
        for (int k = 0; k < steps; k++)
            differ += sched.genes[k].depth != (full[k] ? B + 1 : depth) || sched.genes[k].ratio != 0.0f;
        worst = differ > worst ? differ : worst;
        CHECK(differ == 0, "%s at %d steps: %d steps differ from DeepCache's", spec, steps, differ);
    }
    free(z);
    CHECK(cases > 1000 && not_dividing > 100 && refused > 0, "%s: %d cases, %d with N not dividing, %d refused",
          path, cases, not_dividing, refused);
    printf("deepcache fixture: %d cases (%d non-uniform with N not dividing the steps, %d refused where DeepCache "
           "raises): at most %d steps differ (tolerance 0)\n",
           cases, not_dividing, refused, worst);
}

static void test_presets(void) {
    const int step_counts[2] = {50, 10}, branch_counts[2] = {12, 9};
    for (int c = 0; c < 2; c++) {
        int T = step_counts[c], B = branch_counts[c];
        char what[64];
        check_preset("baseline", T, B);
        check_counts(&sched, T, 0, 0, 0.0, "baseline");

        // DeepCache's default (cache_branch_id 0) partial step is depth 1; branch=b is depth b + 1,
        // and past the last branch depth B (every layer but the mid block), as DeepCacheSDHelper.
        static const struct {
            const char* spec;
            int branch;
        } uniform[] = {{"deepcache:5", 0}, {"deepcache:5:branch=0", 0}, {"deepcache:5:branch=1", 1},
                       {"deepcache:5:branch=8", 8}, {"deepcache:5:branch=11", 11}, {"deepcache:5:branch=40", 40}};
        for (size_t u = 0; u < sizeof(uniform) / sizeof(uniform[0]); u++) {
            check_preset(uniform[u].spec, T, B);
            check_counts(&sched, (T + 4) / 5, T - (T + 4) / 5, 0, 0.0, uniform[u].spec);
            int depth = uniform[u].branch + 1 < B ? uniform[u].branch + 1 : B;
            for (int k = 0; k < T; k++)
                CHECK(sched.genes[k].depth == (k % 5 == 0 ? B + 1 : depth), "%s (B=%d) step %d depth %d, not %d",
                      uniform[u].spec, B, k, sched.genes[k].depth, k % 5 == 0 ? B + 1 : depth);
        }

        check_preset("deepcache:3", T, B);
        check_counts(&sched, (T + 2) / 3, T - (T + 2) / 3, 0, 0.0, "deepcache:3");

        check_preset("tome:0.5", T, B);
        check_counts(&sched, T, 0, 0, 0.5, "tome:0.5");
        CHECK(sched.genes[T - 1].ratio == 0.5f, "tome ratio not canonical");
        check_preset("tome:0.7", T, B);
        check_counts(&sched, T, 0, 0, (double)0.7f, "tome:0.7");

        // dato-paper: full at 0, 2, 5 and k % 10 == 0; depth 2 / 1 in the first / second half;
        // ratio 0.3 + 0.1 * floor(5k / T) except 0 at step 0.
        check_preset("dato-paper", T, B);
        int full = 0;
        double ratio_sum = 0;
        for (int k = 0; k < T; k++) {
            int is_full = k == 0 || k == 2 || k == 5 || k % 10 == 0;
            full += is_full;
            int depth = is_full ? B + 1 : (2 * k < T ? 2 : 1);
            float ratio = k == 0 ? 0.0f : (float[]){0.3f, 0.4f, 0.5f, 0.6f, 0.7f}[5 * k / T];
            ratio_sum += ratio;
            CHECK(sched.genes[k].depth == depth && sched.genes[k].ratio == ratio, "dato-paper step %d: %d %g", k,
                  sched.genes[k].depth, (double)sched.genes[k].ratio);
        }
        snprintf(what, sizeof(what), "dato-paper T=%d", T);
        check_counts(&sched, full, T - full, 0, ratio_sum / T, what);
        CHECK(full == (T == 50 ? 7 : 3), "%s: %d full steps", what, full);
    }
    // A one-branch model: every branch is depth 1.
    check_preset("deepcache:2:branch=1", 4, 1);
    CHECK(sched.genes[1].depth == 1 && sched.genes[2].depth == 2, "one-branch deepcache depths");

    const char* bad[] = {"deepcache:0", "deepcache:-3", "deepcache:x", "deepcache:5:", "deepcache", "tome:0.8",
                         "tome:0.35", "tome:0", "tome:abc", "deepcache:5:center=50:pow=1.4",
                         "deepcache:5:center=-1:pow=1.4", "deepcache:5:center=10:pow=1.0",
                         "deepcache:5:center=10:pow=nan", "deepcache:5:center=10:pow=10.5", "deepcache:5:center=10",
                         "deepcache:5:pow=1.4:branch=1", "deepcache:5:branch=-1", "deepcache:5:branch=x",
                         "deepcache:5:branch=1:branch=2", "deepcache:5:cache_branch_id=0", "deepcache:5:branch",
                         "deepcache:2:center=25:pow=1.4", "deepcache:5:center=10:pow=1.4:branch=1:x=2", "foo",
                         "baseline:3", "", "dato-paper:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) check_preset_rejected(bad[i]);
    // The positional form is gone: its message says what to write instead.
    dato_error err = {{0}};
    CHECK(dato_schedule_preset(&sched, "deepcache:5:15:1.4", 50, 12, &err) != DATO_OK &&
              contains(err.msg, "deepcache:5:15:1.4") && contains(err.msg, "deepcache:N:center=C:pow=P[:branch=B]"),
          "positional form: '%s'", err.msg);
    CHECK(dato_schedule_preset(&sched, "deepcache:2:center=25:pow=1.4", 50, 12, &err) != DATO_OK &&
              contains(err.msg, "ValueError"),
          "DeepCache raises here: '%s'", err.msg);
}

static void test_validate(void) {
    dato_error err = {{0}};
    dato_schedule_preset(&sched, "deepcache:5", 50, 12, &err);
    CHECK(dato_schedule_validate(&sched, 25, 12, &err) != DATO_OK && contains(err.msg, "'steps'") &&
              contains(err.msg, "50") && contains(err.msg, "25"),
          "steps mismatch: %s", err.msg);
    CHECK(dato_schedule_validate(&sched, 50, 9, &err) != DATO_OK && contains(err.msg, "'n_branches'"),
          "n_branches mismatch: %s", err.msg);
    sched.genes[7].depth = 14;
    CHECK(dato_schedule_validate(&sched, 50, 12, &err) != DATO_OK && contains(err.msg, "step 7") &&
              contains(err.msg, "'depth'") && contains(err.msg, "0..13"),
          "depth: %s", err.msg);
    sched.genes[7].depth = -1;
    CHECK(dato_schedule_validate(&sched, 50, 12, &err) != DATO_OK && contains(err.msg, "step 7"), "depth: %s",
          err.msg);
    sched.genes[7].depth = 0;
    sched.genes[3].ratio = 0.35f;
    CHECK(dato_schedule_validate(&sched, 50, 12, &err) != DATO_OK && contains(err.msg, "step 3") &&
              contains(err.msg, "'ratio'") && contains(err.msg, "is not one of 0, 0.3, 0.4, 0.5, 0.6, 0.7"),
          "ratio: %s", err.msg);
    sched.genes[3].ratio = 0.3f + 5e-7f; // within the 1e-6 tolerance
    CHECK(dato_schedule_validate(&sched, 50, 12, &err) == DATO_OK, "ratio tolerance: %s", err.msg);
    sched.genes[0].depth = 12;
    CHECK(dato_schedule_validate(&sched, 50, 12, &err) != DATO_OK && contains(err.msg, "step 0") &&
              contains(err.msg, "'depth'") && contains(err.msg, "full"),
          "step 0: %s", err.msg);
    sched.genes[0].depth = 13;
    sched.steps = 1001;
    CHECK(dato_schedule_validate(&sched, 1001, 12, &err) != DATO_OK && contains(err.msg, "'steps'"), "steps: %s",
          err.msg);
}

// The one ratio table: its index within 1e-6, exact floats stored by every preset, the messages
// listing it.
static void test_ratio_table(void) {
    CHECK(DATO_SCHEDULE_N_RATIOS == 6 && dato_schedule_ratios[0] == 0.0f && dato_schedule_ratios[5] == 0.7f,
          "the table");
    for (int i = 0; i < DATO_SCHEDULE_N_RATIOS; i++)
        CHECK(dato_schedule_ratio_index(dato_schedule_ratios[i]) == i, "index of ratio %d", i);
    CHECK(dato_schedule_ratio_index(0.3 + 9e-7) == 1 && dato_schedule_ratio_index(0.3 + 2e-6) == -1 &&
              dato_schedule_ratio_index(0.35) == -1 && dato_schedule_ratio_index(-0.3) == -1,
          "tolerance 1e-6");
    dato_error err = {{0}};
    CHECK(dato_schedule_preset(&sched, "tome:0.4", 10, 12, &err) == DATO_OK &&
              sched.genes[9].ratio == dato_schedule_ratios[2],
          "tome:0.4 stores %.9g", (double)sched.genes[9].ratio);
    CHECK(dato_schedule_preset(&sched, "dato-paper", 50, 12, &err) == DATO_OK, "%s", err.msg);
    int in_table = 1;
    for (int k = 0; k < 50; k++) in_table &= dato_schedule_ratio_index(sched.genes[k].ratio) >= 0;
    CHECK(in_table && sched.genes[1].ratio == dato_schedule_ratios[1] && sched.genes[49].ratio == dato_schedule_ratios[5],
          "dato-paper ratios");
    CHECK(dato_schedule_preset(&sched, "tome:0.2", 10, 12, &err) != DATO_OK &&
              contains(err.msg, "is not one of 0.3, 0.4, 0.5, 0.6, 0.7"),
          "tome:0.2: %s", err.msg);
    check_rejected("{\"format\": \"dato-schedule\", \"version\": 1, \"steps\": 1, \"n_branches\": 2, "
                   "\"genes\": [{\"depth\": 3, \"ratio\": 0.25}]}",
                   "genes[0]", "is not one of 0, 0.3, 0.4, 0.5, 0.6, 0.7");
}

static void test_files(void) {
    dato_error err = {{0}};
    const char* mixed = "tests/fixtures/schedules/mixed_6steps_b12.json";
    CHECK(dato_schedule_load(&sched, mixed, &err) == DATO_OK, "%s", err.msg);
    CHECK(strcmp(sched.model, "sd15") == 0 && strcmp(sched.sampler, "pndm") == 0 && sched.height == 512,
          "mixed: header fields");
    CHECK(sched.genes[3].depth == 1 && sched.genes[3].ratio == 0.5f && sched.genes[5].ratio == 0.4f,
          "mixed: genes");
    check_counts(&sched, 2, 3, 1, (0.3 + 0.5 + 0.7 + 0.4) / 5, "mixed");
    check_round_trip(&sched, mixed);

    // Saving writes exactly the fixture's text (the fixture is in the writer's format).
    char path[128];
    snprintf(path, sizeof(path), "/tmp/dato_test_schedule_%ld.json", (long)getpid());
    CHECK(dato_schedule_save(&sched, path, &err) == DATO_OK, "%s", err.msg);
    size_t n_saved = 0, n_fixture = 0;
    unsigned char* saved = read_bytes(path, &n_saved);
    unsigned char* fixture = read_bytes(mixed, &n_fixture);
    CHECK(saved && fixture && n_saved == n_fixture && memcmp(saved, fixture, n_saved) == 0,
          "saved text differs from the fixture (%zu vs %zu bytes)", n_saved, n_fixture);
    free(saved);
    free(fixture);
    CHECK(dato_schedule_load(&other, path, &err) == DATO_OK && memcmp(&sched, &other, sizeof(other)) == 0,
          "save/load not bit-exact: %s", err.msg);
    remove(path);

    CHECK(dato_schedule_resolve(&sched, mixed, 6, 12, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_schedule_resolve(&sched, mixed, 10, 12, &err) != DATO_OK && contains(err.msg, mixed) &&
              contains(err.msg, "'steps'"),
          "resolve steps mismatch: %s", err.msg);
    const char* dc = "tests/fixtures/schedules/deepcache_3_branch1_10steps_b9.json";
    CHECK(dato_schedule_resolve(&sched, dc, 10, 9, &err) == DATO_OK, "%s", err.msg);
    CHECK(dato_schedule_preset(&other, "deepcache:3:branch=1", 10, 9, &err) == DATO_OK, "%s", err.msg);
    int same = 1;
    for (int k = 0; k < 10; k++) same &= sched.genes[k].depth == other.genes[k].depth;
    CHECK(same, "deepcache fixture differs from the deepcache:3:branch=1 preset");
    CHECK(dato_schedule_resolve(&sched, "tests/fixtures/schedules/missing.json", 10, 9, &err) != DATO_OK &&
              contains(err.msg, "missing.json"),
          "missing file: %s", err.msg);
    CHECK(dato_schedule_resolve(&sched, "tests/fixtures/schedules/bad_unknown_key.json", 2, 12, &err) != DATO_OK &&
              contains(err.msg, "genes[1]") && contains(err.msg, "'cache_interval'"),
          "bad fixture: %s", err.msg);
    CHECK(dato_schedule_resolve(&sched, "baseline", 10, 9, &err) == DATO_OK && sched.genes[9].depth == 10,
          "resolve preset: %s", err.msg);
}

#define HEAD "{\"format\": \"dato-schedule\", \"version\": 1, "

static void test_hostile_json(void) {
    const char* ok = HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, "
                          "{\"depth\": 1, \"ratio\": 0.30000001}]}";
    dato_error err = {{0}};
    CHECK(dato_schedule_parse(&sched, ok, "ok.json", &err) == DATO_OK, "%s", err.msg);
    CHECK(sched.genes[1].ratio == 0.3f && sched.model[0] == 0 && sched.height == 0, "canonical ratio / defaults");

    check_rejected("", "hostile.json", "not valid JSON");
    check_rejected("[1, 2]", "hostile.json", "object");
    check_rejected("{\"format\": \"dato-schedule\", \"version\": 1, \"steps\": 2", "hostile.json", "JSON");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [], \"foo\": 1}", "'foo'", "unknown");
    check_rejected(HEAD "\"steps\": 2, \"steps\": 2, \"n_branches\": 3, \"genes\": []}", "'steps'", "twice");
    check_rejected("{\"format\": \"other\", \"version\": 1}", "'format'", "dato-schedule");
    check_rejected("{\"format\": \"dato-schedule\", \"version\": 2, \"steps\": 1}", "'version'", "2");
    check_rejected("{\"format\": \"dato-schedule\", \"version\": \"1\"}", "'version'", "integer");
    check_rejected(HEAD "\"steps\": \"2\", \"n_branches\": 3, \"genes\": []}", "'steps'", "integer");
    check_rejected(HEAD "\"steps\": 2.5, \"n_branches\": 3, \"genes\": []}", "'steps'", "integer");
    check_rejected(HEAD "\"steps\": -2, \"n_branches\": 3, \"genes\": []}", "'steps'", "range");
    check_rejected(HEAD "\"steps\": 1001, \"n_branches\": 3, \"genes\": []}", "'steps'", "1001");
    check_rejected(HEAD "\"steps\": 1e300, \"n_branches\": 3, \"genes\": []}", "'steps'", "range");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": -1, \"genes\": []}", "'n_branches'", "range");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3}", "'genes'", "missing");
    check_rejected(HEAD "\"n_branches\": 3, \"genes\": []}", "'steps'", "missing");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": {}}", "'genes'", "array");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}]}", "'genes'",
                   "1 entries");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, 7]}", "genes[1]",
                   "object");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, "
                        "{\"depth\": \"2\", \"ratio\": 0}]}",
                   "genes[1]", "'depth'");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, "
                        "{\"depth\": -1, \"ratio\": 0}]}",
                   "genes[1]", "'depth'");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, "
                        "{\"depth\": 5, \"ratio\": 0}]}",
                   "genes[1]", "0..4");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, "
                        "{\"depth\": 1, \"ratio\": -0.3}]}",
                   "genes[1]", "'ratio'");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, "
                        "{\"depth\": 1, \"ratio\": \"0.3\"}]}",
                   "genes[1]", "'ratio'");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, "
                        "{\"depth\": 1}]}",
                   "genes[1]", "'ratio'");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}, "
                        "{\"depth\": 1, \"ratio\": 0.3, \"depth\": 2}]}",
                   "genes[1]", "twice");
    check_rejected(HEAD "\"steps\": 2, \"n_branches\": 3, \"genes\": [{\"depth\": 2, \"ratio\": 0}, "
                        "{\"depth\": 1, \"ratio\": 0}]}",
                   "step 0", "full");
    check_rejected(HEAD "\"model\": 5, \"steps\": 1, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}]}",
                   "'model'", "string");
    char long_model[600];
    snprintf(long_model, sizeof(long_model), HEAD "\"model\": \"%0300d\", \"steps\": 1, \"n_branches\": 3, "
             "\"genes\": [{\"depth\": 4, \"ratio\": 0}]}", 0);
    check_rejected(long_model, "'model'", "longer");

    // Strict to the last byte (docs/SCHEDULES.md): nothing but whitespace after the object, UTF-8
    // throughout; the message names the byte.
    check_rejected(HEAD "\"steps\": 1, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}]} \n{}",
                   "hostile.json", "byte 109: more text after the JSON object");
    check_rejected(HEAD "\"steps\": 1, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": 0}]}x",
                   "hostile.json", "byte 107: more text");
    check_rejected(HEAD "\"model\": \"sd\xff\", \"steps\": 1, \"n_branches\": 3, \"genes\": [{\"depth\": 4, "
                        "\"ratio\": 0}]}",
                   "hostile.json", "byte 54 (0xff) is not valid UTF-8");
    check_rejected(HEAD "\"model\": \"\xed\xa0\x80\", \"steps\": 1, \"n_branches\": 3, \"genes\": [{\"depth\": "
                        "4, \"ratio\": 0}]}", // a UTF-16 surrogate, which UTF-8 must not encode
                   "hostile.json", "byte 52 (0xed)");
    check_rejected("{\"format\": dato}", "hostile.json", "not valid JSON (at byte 11)");
    CHECK(dato_schedule_parse(&sched, HEAD "\"model\": \"caf\xc3\xa9\", \"steps\": 1, \"n_branches\": 3, "
                                       "\"genes\": [{\"depth\": 4, \"ratio\": 0}]}\r\n\t ",
                              "ok.json", &err) == DATO_OK && strcmp(sched.model, "caf\xc3\xa9") == 0,
          "UTF-8 model and trailing whitespace: %s", err.msg);
    // A NUL byte in a file would hide what follows it from the parser: the file reader refuses it.
    char path[128];
    snprintf(path, sizeof(path), "/tmp/dato_test_schedule_nul_%ld.json", (long)getpid());
    static const char with_nul[] = HEAD "\"steps\": 1, \"n_branches\": 3, \"genes\": [{\"depth\": 4, \"ratio\": "
                                        "0}]}\0junk";
    CHECK(write_bytes(path, with_nul, sizeof with_nul - 1), "cannot write %s", path);
    CHECK(dato_schedule_load(&sched, path, &err) == DATO_ERR_FORMAT && contains(err.msg, path) &&
              contains(err.msg, "byte 107 is NUL"),
          "NUL byte: %s", err.msg);
    printf("trailing NUL: %s\n", err.msg);
    remove(path);

    // A schedule with a hostile model name survives the writer's escaping.
    CHECK(dato_schedule_preset(&sched, "baseline", 3, 2, &err) == DATO_OK, "%s", err.msg);
    strcpy(sched.model, "a \"quoted\" \\ name\twith\ncontrol");
    check_round_trip(&sched, "escaped model name");
}

int main(void) {
    test_quad_center();
    test_deepcache_fixture();
    test_presets();
    test_validate();
    test_ratio_table();
    test_files();
    test_hostile_json();
    printf("schedule: max mean-ratio error %.3g (tolerance 1e-6)\n", max_ratio_err);
    return test_summary();
}
