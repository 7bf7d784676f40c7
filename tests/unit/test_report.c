// The result files of a search run (search/report.h) for a synthetic front of 8 members, 4
// references, 2 members dropped by the re-measure and a confirmation of 4 rows, in a mkdtemp
// folder: every file exists, front.csv and confirm.csv parse back to the numbers written (%.9g:
// relative error <= 5e-9, and equal to the %.9g text exactly), front.json (version 2) parses with
// cJSON with its intervals, dropped members, confirmation and warnings, the schedules load back
// equal (dropped members' are not saved), the SVG has one <circle> per front member on a speedup
// axis with interval bars, the HTML shows the verdict, the warnings, the intervals, the pairs'
// spread and the dropped members' notes, escaped; two writes give the same bytes. A second report
// without a confirmation writes no confirm.csv and falls back to a latency axis. The knee of known
// shapes; bad input (a dominated member, an unordered interval, ...) is refused naming the field.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "genome.h"
#include "report.h"
#include "test_util.h"

#define N_FRONT 8
#define N_REFS 4
#define N_DROPPED 2
#define N_CONFIRM 4
#define STEPS 10
#define BRANCHES 3
#define BASE_LATENCY 0.1 // the baseline's seconds per image: latency ratios are latency_s / this
#define N_FILES 5

// ~12 KB each: kept off the stack
static dato_report_point front[N_FRONT], refs[N_REFS], dropped[N_DROPPED], confirm[N_CONFIRM], scratch[4];
static dato_schedule loaded;
static const char* const tricky_label = "front 3 <fast> & \"q\",x";
static const char* const file_names[N_FILES] = {"front.csv", "confirm.csv", "front.json", "front.svg", "report.html"};
static const char* const warnings[] = {"FID rests on 64 images < 2048 feature dimensions: it is biased upward",
                                       "2 of 8 members were dropped by the re-measure"};
static const char* const verdict = "The knee (front 3) is 3.05x faster than the baseline & within its FID interval";

static double max_csv_rel_err, max_json_rel_err;

// The paired-timing fields of a point at latency_s; a NaN ratio leaves it unpaired.
static void set_timing(dato_report_point* p, double ratio) {
    p->latency_ratio = ratio;
    p->ratio_range = isnan(ratio) ? (dato_interval){NAN, NAN} : (dato_interval){ratio * 0.95, ratio * 1.07};
    p->pairs = isnan(ratio) ? 0 : 5;
    p->speedup = 1 / ratio;
}

static void fill_point(dato_report_point* p, int i) {
    memset(p, 0, sizeof(*p));
    snprintf(p->label, sizeof(p->label), "front %d", i);
    p->schedule = (dato_schedule){.steps = STEPS, .n_branches = BRANCHES};
    snprintf(p->schedule.model, sizeof(p->schedule.model), "tiny-sd");
    p->schedule.genes[0] = (dato_gene){.depth = BRANCHES + 1, .ratio = 0};
    for (int k = 1; k < STEPS; k++)
        p->schedule.genes[k] = (dato_gene){.depth = (i + k) % (BRANCHES + 2),
                                           .ratio = dato_schedule_ratios[(i * k + k) % DATO_SCHEDULE_N_RATIOS]};
    // latency rises, FID falls: a convex front with irrational-looking values
    p->latency_s = 0.0123456789123 * (1 + i) + 1e-7 * i * i;
    p->fid = 12.3456789 + 40.0 / (1.0 + i) + 1e-9 / 3.0;
    p->fid_ci = i == 4 ? (dato_interval){NAN, NAN} : (dato_interval){p->fid - 1.5 - 0.1 * i, p->fid + 1.75};
    p->kid = i == 2 ? NAN : 1.5 + i / 3.0; // x 1000
    p->teacher = i == 1 ? NAN : 17.0 / 3.0 * (i + 1);
    p->teacher_ci = i == 1 ? (dato_interval){NAN, NAN} : (dato_interval){p->teacher * 0.9, p->teacher * 1.1};
    p->clip = i == 0 ? NAN : 31.0 - 1.0 / 3.0 * i;
    p->clip_ci = i == 0 ? (dato_interval){NAN, NAN} : (dato_interval){p->clip - 0.4, p->clip + 0.45};
    p->measured_latency_s = i % 3 == 0 ? NAN : p->latency_s;
    // member 5 unpaired: its speedup on the chart comes from the baseline's latency
    set_timing(p, i == 5 ? NAN : p->latency_s / BASE_LATENCY);
    p->images = 256;
    dato_schedule_counts c = dato_schedule_count(&p->schedule);
    p->full = c.full;
    p->partial = c.partial;
    p->reuse = c.reuse;
    p->mean_ratio = c.mean_ratio;
    snprintf(p->grid_png, sizeof(p->grid_png), "grids/front_%d.png", i);
    p->candidate = 3 * i + 1;
}

static void fill_ref(dato_report_point* p, const char* spec, double latency, double fid) {
    dato_error err;
    memset(p, 0, sizeof(*p));
    CHECK(dato_schedule_preset(&p->schedule, spec, STEPS, BRANCHES, &err) == DATO_OK, "%s", err.msg);
    snprintf(p->label, sizeof(p->label), "%s", spec);
    p->latency_s = latency;
    p->fid = fid;
    p->fid_ci = (dato_interval){fid - 2, fid + 2.5};
    p->kid = NAN;
    p->teacher = 0;
    p->teacher_ci = (dato_interval){NAN, NAN};
    p->clip = NAN;
    p->clip_ci = (dato_interval){NAN, NAN};
    p->measured_latency_s = NAN;
    set_timing(p, latency / BASE_LATENCY);
    p->images = 256;
    p->candidate = -1;
    dato_schedule_counts c = dato_schedule_count(&p->schedule);
    p->full = c.full;
    p->partial = c.partial;
    p->reuse = c.reuse;
    p->mean_ratio = c.mean_ratio;
    p->grid_png[0] = 0;
}

static char* read_text(const char* dir, const char* name) {
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    size_t n;
    unsigned char* bytes = read_bytes(path, &n);
    if (!bytes) return NULL;
    char* text = realloc(bytes, n + 1);
    if (!text) {
        free(bytes);
        return NULL;
    }
    text[n] = 0;
    return text;
}

static int count_of(const char* text, const char* needle) {
    int n = 0;
    for (const char* p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static int file_exists(const char* dir, const char* name) {
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

// Compares a number read back with the one written: NaN stays NaN; otherwise the value equals
// strtod of its %.9g text exactly and lies within 5e-9 relative of the original.
static void check_number(double got, double want, double* max_rel, const char* what, int i) {
    if (isnan(want)) {
        CHECK(isnan(got), "%s of row %d: want nan, got %.17g", what, i, got);
        return;
    }
    char text[64];
    snprintf(text, sizeof(text), "%.9g", want);
    double rel = fabs(got - want) / fmax(fabs(want), 1e-300);
    if (rel > *max_rel) *max_rel = rel;
    CHECK(got == strtod(text, NULL), "%s of row %d: %.17g is not %s", what, i, got, text);
    CHECK(rel <= 5e-9, "%s of row %d: relative error %g", what, i, rel);
}

// Splits one CSV line (RFC 4180 quoting, no line breaks inside fields) into at most max fields
// written into fields[k] (cap bytes each); returns the field count.
static int split_csv(const char* line, char fields[][128], int max) {
    int n = 0;
    const char* c = line;
    while (n < max) {
        size_t len = 0;
        if (*c == '"') {
            c++;
            while (*c && !(*c == '"' && c[1] != '"')) {
                if (*c == '"') c++; // a doubled quote
                if (len < 127) fields[n][len++] = *c;
                c++;
            }
            if (*c == '"') c++;
        } else {
            while (*c && *c != ',' && *c != '\n')
                if (len < 127) fields[n][len++] = *c++;
                else c++;
        }
        fields[n++][len] = 0;
        if (*c != ',') break;
        c++;
    }
    return n;
}

#define CSV_FIELDS 26

// front.csv or confirm.csv: the header, then one row per point with every column read back.
static void check_csv(const char* csv, const dato_report_point* points, int n_points, const char* prefix) {
    const char* header = "index,label,latency_s,fid,kid,measured_latency_s,speedup,full,partial,reuse,mean_ratio,"
                         "schedule_file,teacher,clip_score,fid_lo,fid_hi,teacher_lo,teacher_hi,clip_lo,clip_hi,"
                         "latency_ratio,ratio_lo,ratio_hi,pairs,images,candidate\n";
    CHECK(strncmp(csv, header, strlen(header)) == 0, "%s CSV header: %.300s", prefix, csv);
    CHECK(count_of(csv, "\n") == n_points + 1, "%s CSV has %d lines, want %d", prefix, count_of(csv, "\n"),
          n_points + 1);
    const char* line = strchr(csv, '\n');
    for (int i = 0; i < n_points && line; i++) {
        line++;
        char fields[32][128];
        int n = split_csv(line, fields, 32);
        CHECK(n == CSV_FIELDS, "%s row %d has %d fields", prefix, i, n);
        if (n != CSV_FIELDS) break;
        const dato_report_point* p = &points[i];
        CHECK(atoi(fields[0]) == i, "row %d: index %s", i, fields[0]);
        CHECK(strcmp(fields[1], p->label) == 0, "row %d: label '%s' vs '%s'", i, fields[1], p->label);
        const double want[] = {p->latency_s, p->fid, p->kid, p->measured_latency_s, p->speedup};
        const char* names[] = {"latency_s", "fid", "kid", "measured_latency_s", "speedup"};
        for (int k = 0; k < 5; k++) check_number(strtod(fields[2 + k], NULL), want[k], &max_csv_rel_err, names[k], i);
        CHECK(atoi(fields[7]) == p->full && atoi(fields[8]) == p->partial && atoi(fields[9]) == p->reuse,
              "row %d: counts %s %s %s", i, fields[7], fields[8], fields[9]);
        check_number(strtod(fields[10], NULL), p->mean_ratio, &max_csv_rel_err, "mean_ratio", i);
        char file[64];
        snprintf(file, sizeof(file), "schedules/%s_%d.json", prefix, i);
        CHECK(strcmp(fields[11], file) == 0, "row %d: schedule_file '%s'", i, fields[11]);
        const double more[] = {p->teacher,       p->clip,          p->fid_ci.lo,     p->fid_ci.hi,
                               p->teacher_ci.lo, p->teacher_ci.hi, p->clip_ci.lo,    p->clip_ci.hi,
                               p->latency_ratio, p->ratio_range.lo, p->ratio_range.hi};
        const char* more_names[] = {"teacher",    "clip_score", "fid_lo",        "fid_hi",   "teacher_lo", "teacher_hi",
                                    "clip_lo",    "clip_hi",    "latency_ratio", "ratio_lo", "ratio_hi"};
        for (int k = 0; k < 11; k++)
            check_number(strtod(fields[12 + k], NULL), more[k], &max_csv_rel_err, more_names[k], i);
        // unknown numbers are written "nan", never "-nan" or an empty field
        for (int k = 12; k < 23; k++)
            if (isnan(more[k - 12])) CHECK(strcmp(fields[k], "nan") == 0, "row %d: %s is '%s'", i, more_names[k - 12],
                                           fields[k]);
        CHECK(strcmp(fields[23], p->pairs == 5 ? "5" : "0") == 0 && atoi(fields[23]) == p->pairs, "row %d: pairs %s",
              i, fields[23]);
        CHECK(atoi(fields[24]) == p->images && p->images > 0, "row %d: images %s", i, fields[24]);
        CHECK(atoi(fields[25]) == p->candidate, "row %d: candidate %s, want %d", i, fields[25], p->candidate);
        line = strchr(line, '\n');
    }
}

static double json_number_or_nan(const cJSON* obj, const char* key) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(item) ? item->valuedouble : NAN;
}

// An interval as [lo, hi] with null for NaN.
static void check_json_interval(const cJSON* item, const char* key, dato_interval want, const char* prefix, int i) {
    const cJSON* a = cJSON_GetObjectItemCaseSensitive(item, key);
    CHECK(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 2, "%s %d: %s is not a pair", prefix, i, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2) return;
    const double ends[2] = {want.lo, want.hi};
    for (int k = 0; k < 2; k++) {
        const cJSON* e = cJSON_GetArrayItem(a, k);
        if (isnan(ends[k])) CHECK(cJSON_IsNull(e), "%s %d: %s[%d] is not null", prefix, i, key, k);
        else check_number(cJSON_IsNumber(e) ? e->valuedouble : NAN, ends[k], &max_json_rel_err, key, i);
    }
}

// prefix: the schedule file's ("front", "ref", "confirm"), or NULL for dropped members (no file).
static void check_json_points(const cJSON* array, const dato_report_point* points, int n, const char* prefix) {
    const char* what = prefix ? prefix : "dropped";
    CHECK(cJSON_IsArray(array) && cJSON_GetArraySize(array) == n, "%s: array of %d", what, n);
    for (int i = 0; i < n && i < cJSON_GetArraySize(array); i++) {
        const cJSON* item = cJSON_GetArrayItem(array, i);
        const dato_report_point* p = &points[i];
        const cJSON* label = cJSON_GetObjectItemCaseSensitive(item, "label");
        CHECK(cJSON_IsString(label) && strcmp(label->valuestring, p->label) == 0, "%s %d: label", what, i);
        check_number(json_number_or_nan(item, "latency_s"), p->latency_s, &max_json_rel_err, "latency_s", i);
        check_number(json_number_or_nan(item, "fid"), p->fid, &max_json_rel_err, "fid", i);
        check_number(json_number_or_nan(item, "kid"), p->kid, &max_json_rel_err, "kid", i);
        check_number(json_number_or_nan(item, "teacher"), p->teacher, &max_json_rel_err, "teacher", i);
        check_number(json_number_or_nan(item, "clip_score"), p->clip, &max_json_rel_err, "clip_score", i);
        check_number(json_number_or_nan(item, "measured_latency_s"), p->measured_latency_s, &max_json_rel_err,
                     "measured_latency_s", i);
        check_number(json_number_or_nan(item, "speedup"), p->speedup, &max_json_rel_err, "speedup", i);
        check_number(json_number_or_nan(item, "latency_ratio"), p->latency_ratio, &max_json_rel_err, "latency_ratio",
                     i);
        check_json_interval(item, "fid_ci", p->fid_ci, what, i);
        check_json_interval(item, "teacher_ci", p->teacher_ci, what, i);
        check_json_interval(item, "clip_ci", p->clip_ci, what, i);
        check_json_interval(item, "ratio_range", p->ratio_range, what, i);
        CHECK(json_number_or_nan(item, "full") == p->full && json_number_or_nan(item, "reuse") == p->reuse &&
              json_number_or_nan(item, "partial") == p->partial, "%s %d: counts", what, i);
        CHECK(json_number_or_nan(item, "candidate") == p->candidate, "%s %d: candidate", prefix, i);
        CHECK(json_number_or_nan(item, "pairs") == p->pairs && json_number_or_nan(item, "images") == p->images,
              "%s %d: pairs %g images %g", what, i, json_number_or_nan(item, "pairs"),
              json_number_or_nan(item, "images"));
        if (isnan(p->kid))
            CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(item, "kid")), "%s %d: NaN kid is not null", what, i);
        const cJSON* sf = cJSON_GetObjectItemCaseSensitive(item, "schedule_file");
        if (prefix) {
            char file[64];
            snprintf(file, sizeof(file), "schedules/%s_%d.json", prefix, i);
            CHECK(cJSON_IsString(sf) && strcmp(sf->valuestring, file) == 0, "%s %d: schedule_file", what, i);
        } else {
            CHECK(cJSON_IsNull(sf), "%s %d: a dropped member's schedule_file is not null", what, i);
        }
        const cJSON* grid = cJSON_GetObjectItemCaseSensitive(item, "grid_png");
        CHECK(cJSON_IsString(grid) && strcmp(grid->valuestring, p->grid_png) == 0, "%s %d: grid", what, i);
        const cJSON* note = cJSON_GetObjectItemCaseSensitive(item, "note");
        CHECK(cJSON_IsString(note) && strcmp(note->valuestring, p->note) == 0, "%s %d: note", what, i);
    }
}

static void check_json(const char* text, const dato_report* r) {
    cJSON* root = cJSON_Parse(text);
    CHECK(root != NULL, "front.json does not parse");
    if (!root) return;
    const cJSON* format = cJSON_GetObjectItemCaseSensitive(root, "format");
    CHECK(cJSON_IsString(format) && strcmp(format->valuestring, "dato-front") == 0, "format");
    CHECK(json_number_or_nan(root, "version") == 2, "version %g", json_number_or_nan(root, "version"));
    const cJSON* cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
    const cJSON* model = cJSON_GetObjectItemCaseSensitive(cfg, "model");
    CHECK(cJSON_IsString(model) && strcmp(model->valuestring, r->cfg->model) == 0, "config.model");
    CHECK(json_number_or_nan(cfg, "images") == r->cfg->images, "config.images");
    CHECK(json_number_or_nan(cfg, "screen_images") == 16 && json_number_or_nan(cfg, "confirm_images") == 512 &&
          json_number_or_nan(cfg, "pairs") == 5 && json_number_or_nan(cfg, "timing_images") == 4 &&
          json_number_or_nan(cfg, "bootstrap") == 200, "config: screening, confirmation, pairs, bootstrap");
    // a float written as the shortest text that reads back as the same float
    CHECK(strstr(text, "\"promote\": 0.3,") && (float)json_number_or_nan(cfg, "promote") == r->cfg->promote,
          "config.promote %.9g", json_number_or_nan(cfg, "promote"));
    CHECK(json_number_or_nan(cfg, "pop") == r->cfg->pop && json_number_or_nan(cfg, "gens") == r->cfg->gens, "pop");
    const cJSON* seed = cJSON_GetObjectItemCaseSensitive(cfg, "seed");
    CHECK(cJSON_IsString(seed) && strcmp(seed->valuestring, "18446744073709551557") == 0, "config.seed");
    const cJSON* run = cJSON_GetObjectItemCaseSensitive(root, "run");
    CHECK(json_number_or_nan(run, "knee_index") == r->knee_index, "run.knee_index");
    CHECK(json_number_or_nan(run, "fastest_ok_index") == r->fastest_ok_index, "run.fastest_ok_index");
    CHECK(fabs(json_number_or_nan(run, "fid_limit") - r->fid_limit) <= 5e-9 * r->fid_limit, "run.fid_limit %.17g",
          json_number_or_nan(run, "fid_limit"));
    CHECK(json_number_or_nan(run, "n_evaluations") == r->n_evaluations, "run.n_evaluations");
    CHECK(json_number_or_nan(run, "n_screened") == 420 && json_number_or_nan(run, "threads") == 3,
          "run.n_screened %g, run.threads %g", json_number_or_nan(run, "n_screened"),
          json_number_or_nan(run, "threads"));
    CHECK(json_number_or_nan(run, "hypervolume") == 0.8125 && json_number_or_nan(run, "confirm_images") == 512,
          "run.hypervolume, run.confirm_images");
    const cJSON* command = cJSON_GetObjectItemCaseSensitive(run, "command");
    CHECK(cJSON_IsString(command) && strcmp(command->valuestring, r->command) == 0, "run.command");
    const cJSON* v = cJSON_GetObjectItemCaseSensitive(run, "verdict");
    CHECK(cJSON_IsString(v) && strcmp(v->valuestring, verdict) == 0, "run.verdict");
    check_json_points(cJSON_GetObjectItemCaseSensitive(root, "front"), front, N_FRONT, "front");
    check_json_points(cJSON_GetObjectItemCaseSensitive(root, "refs"), refs, N_REFS, "ref");
    check_json_points(cJSON_GetObjectItemCaseSensitive(root, "dropped"), dropped, N_DROPPED, NULL);
    check_json_points(cJSON_GetObjectItemCaseSensitive(root, "confirmation"), confirm, N_CONFIRM, "confirm");
    const cJSON* w = cJSON_GetObjectItemCaseSensitive(root, "warnings");
    CHECK(cJSON_IsArray(w) && cJSON_GetArraySize(w) == 2, "warnings: array of 2");
    for (int k = 0; k < 2 && cJSON_IsArray(w) && k < cJSON_GetArraySize(w); k++) {
        const cJSON* s = cJSON_GetArrayItem(w, k);
        CHECK(cJSON_IsString(s) && strcmp(s->valuestring, warnings[k]) == 0, "warnings[%d]", k);
    }
    cJSON_Delete(root);
}

static void check_schedules(const char* dir) {
    const char* prefixes[3] = {"front", "ref", "confirm"};
    const dato_report_point* sets[3] = {front, refs, confirm};
    const int counts[3] = {N_FRONT, N_REFS, N_CONFIRM};
    for (int set = 0; set < 3; set++)
        for (int i = 0; i < counts[set]; i++) {
            char path[512];
            snprintf(path, sizeof(path), "%s/schedules/%s_%d.json", dir, prefixes[set], i);
            dato_error err;
            dato_status st = dato_schedule_load(&loaded, path, &err);
            CHECK(st == DATO_OK, "%s", err.msg);
            if (st) continue;
            const dato_schedule* s = &sets[set][i].schedule;
            int same = loaded.steps == s->steps && loaded.n_branches == s->n_branches &&
                       strcmp(loaded.model, s->model) == 0 && strcmp(loaded.sampler, s->sampler) == 0;
            for (int k = 0; same && k < s->steps; k++)
                same = loaded.genes[k].depth == s->genes[k].depth && loaded.genes[k].ratio == s->genes[k].ratio;
            CHECK(same, "%s differs from the schedule written", path);
        }
    // exactly those: a dropped member's schedule is not saved
    char path[512];
    snprintf(path, sizeof(path), "%s/schedules", dir);
    DIR* d = opendir(path);
    int files = 0;
    for (struct dirent* e; d && (e = readdir(d));) files += e->d_name[0] != '.';
    if (d) closedir(d);
    CHECK(files == N_FRONT + N_REFS + N_CONFIRM, "%d schedule files, want %d", files, N_FRONT + N_REFS + N_CONFIRM);
}

// The cx of the k-th <circle> of the SVG (NaN if none).
static double circle_x(const char* svg, int k) {
    const char* c = strstr(svg, "<circle cx=\"");
    for (int i = 0; i < k && c; i++) c = strstr(c + 1, "<circle cx=\"");
    return c ? strtod(c + strlen("<circle cx=\""), NULL) : NAN;
}

static void check_svg(const char* svg) {
    size_t n = strlen(svg);
    CHECK(strncmp(svg, "<svg", 4) == 0, "SVG start: %.20s", svg);
    CHECK(n >= 7 && strcmp(svg + n - 7, "</svg>\n") == 0, "SVG end");
    CHECK(count_of(svg, "<circle") == N_FRONT, "%d circles", count_of(svg, "<circle"));
    CHECK(strstr(svg, "speedup over the baseline (&#215;") && strstr(svg, ">FID<"), "axis labels");
    CHECK(count_of(svg, "stroke-dasharray") == 1 && strstr(svg, ">fastest-ok FID limit</text>"), "the FID limit's line");
    CHECK(!strstr(svg, "&times;"), "an HTML entity in the SVG (XML)");
    CHECK(strstr(svg, "tiny-sd, 64 images per evaluation"), "title");
    CHECK(count_of(svg, "<text") == count_of(svg, "</text>"), "unbalanced <text>");
    CHECK(!strstr(svg, "<fast>") && strstr(svg, "&lt;fast&gt;"), "SVG label not escaped");
    CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"), "SVG has a non-finite number");
    // interval bars: the front's 7 known FID intervals, the 4 references', the legend's
    int bars = count_of(svg, "stroke-width=\"1.2\"");
    CHECK(bars == (N_FRONT - 1) + N_REFS + 1, "%d interval bars, want %d", bars, N_FRONT - 1 + N_REFS + 1);
    // speedup on x: the fastest member (front 0) right of the slowest; the unpaired member 5 at the
    // baseline's latency over its own, between members 4 and 6
    double x0 = circle_x(svg, 0), x4 = circle_x(svg, 4), x5 = circle_x(svg, 5), x6 = circle_x(svg, 6),
           x7 = circle_x(svg, N_FRONT - 1);
    CHECK(x0 > x4 && x4 > x5 && x5 > x6 && x6 > x7, "circle x: %g %g %g %g %g", x0, x4, x5, x6, x7);
    CHECK(strstr(svg, "<title>front 0: 8.10&#215; faster, 12.346 ms, FID 52.346 [50.846, 54.096]</title>"),
          "front 0's tooltip");
}

static void check_html(const char* html, const char* svg) {
    CHECK(strstr(html, "front 3 &lt;fast&gt; &amp; &quot;q&quot;,x") != NULL, "HTML label not escaped");
    CHECK(!strstr(html, "<fast>") && !strstr(html, "<30k>") && !strstr(html, "< 2048"), "raw '<' text in the HTML");
    CHECK(strstr(html, "prompts/coco&lt;30k&gt;.txt") != NULL, "prompts file");
    CHECK(strstr(html, "<img src=\"grids/front_0.png\"") != NULL, "grid image");
    CHECK(strstr(html, "<img src=\"grids/confirm_knee.png\"") != NULL, "confirmation grid image");
    CHECK(count_of(html, "<img ") == N_FRONT + 2, "%d images", count_of(html, "<img "));
    CHECK(strstr(html, "--out &#39;results/a&amp;b&#39;") != NULL, "command");
    CHECK(strstr(html, "dato-export --run results/run1") != NULL, "export example");
    CHECK(strstr(html, svg) != NULL, "the SVG is not inline");
    CHECK(strstr(html, "1 h 02 min 05 s") != NULL, "elapsed");
    // the summary
    CHECK(strstr(html, "3 threads per rank"), "threads: the run's count, not the flag's");
    CHECK(strstr(html, "64 per evaluation, screened on 16 first (top 30% promoted), 256 per final re-score"),
          "images row");
    CHECK(strstr(html, "700 (420 of them scored on the screening images only)"), "evaluations row");
    CHECK(strstr(html, "512 fresh images"), "confirmation row");
    CHECK(strstr(html, "200 replicates"), "bootstrap row");
    CHECK(strstr(html, "5 interleaved baseline / member pairs of 4 images each"), "timing row");
    CHECK(strstr(html, "0.8125 of the front in (time ratio, FID / baseline FID), reference (1, 2)"), "hypervolume");
    // the verdict and the warnings come before the tables
    const char* v = strstr(html, "<p class=\"verdict\">The knee (front 3) is 3.05x faster than the baseline &amp; "
                                 "within its FID interval</p>");
    const char* w = strstr(html, "<ul class=\"warn\">");
    const char* w0 = strstr(html, "<li>FID rests on 64 images &lt; 2048 feature dimensions: it is biased upward</li>");
    const char* first_table = strstr(html, "<table class=\"points\">");
    CHECK(v && w && w0 && first_table && v < w && w < w0 && w0 < first_table, "verdict, warnings, then tables");
    CHECK(strstr(html, ".warn { background: #fff3b0"), "warnings' style");
    CHECK(strstr(html, "<th>KID ×10³</th>"), "KID column header");
    // the confirmation right after the summary, before the chart
    const char* conf = strstr(html, "<h2>Confirmation on 512 fresh images</h2>");
    const char* chart = strstr(html, "<h2>Front</h2>");
    CHECK(conf && chart && conf < first_table && first_table < chart, "confirmation section placement");
    CHECK(conf && strstr(conf, "schedules/confirm_2.json"), "confirmation schedule link");
    CHECK(strstr(html, "knee (front 3)<br><span class=\"note\">the knee of the front</span>"), "a pick's note");
    // FID, teacher and CLIP with their intervals; an unknown interval shows the value alone
    char want[256];
    snprintf(want, sizeof(want), "<td>%.2f <span class=\"ci\">[%.2f, %.2f]</span></td>", front[0].fid,
             front[0].fid_ci.lo, front[0].fid_ci.hi);
    CHECK(strstr(html, want), "FID with its interval: %s", want);
    snprintf(want, sizeof(want), "<td>%.2f</td><td>%.2f</td>", front[4].fid, front[4].kid);
    CHECK(strstr(html, want), "FID without an interval, then KID: %s", want);
    snprintf(want, sizeof(want), "<td>%.3f <span class=\"ci\">[%.3f, %.3f]</span></td>", front[2].teacher,
             front[2].teacher_ci.lo, front[2].teacher_ci.hi);
    CHECK(strstr(html, want), "teacher with its interval: %s", want);
    snprintf(want, sizeof(want), "<td>%.2f <span class=\"ci\">[%.2f, %.2f]</span></td>", front[1].clip,
             front[1].clip_ci.lo, front[1].clip_ci.hi);
    CHECK(strstr(html, want), "CLIP with its interval: %s", want);
    // the speedup with the pairs' spread: 1 / the greatest ratio to 1 / the least
    snprintf(want, sizeof(want), "<td>%.2f&times; <span class=\"ci\">(%.2f&ndash;%.2f, 5 pairs)</span></td>",
             front[0].speedup, 1 / front[0].ratio_range.hi, 1 / front[0].ratio_range.lo);
    CHECK(strstr(html, want), "speedup with the pairs: %s", want);
    CHECK(strstr(html, "<td>8.10&times; <span class=\"ci\">(7.57&ndash;8.53, 5 pairs)</span></td>"), "front 0 speedup");
    // the unpaired member: no speedup in the table (the chart takes it from the baseline's latency)
    snprintf(want, sizeof(want), "<td>%.3f</td><td>&ndash;</td><td>%.2f <span class=\"ci\">[", front[5].latency_s * 1e3,
             front[5].fid);
    CHECK(isnan(front[5].speedup) && strstr(html, want), "an unpaired member: %s", want);
    CHECK(count_of(html, "<td>256</td>") == N_FRONT + N_REFS + N_DROPPED, "images column: %d",
          count_of(html, "<td>256</td>"));
    CHECK(count_of(html, "<td>512</td>") == N_CONFIRM, "confirmation images column");
    // the dropped members with their notes, after the front and before the references
    const char* drop = strstr(html, "<h2>Dropped by the re-score and the re-measure</h2>");
    const char* refs_h = strstr(html, "<h2>References</h2>");
    const char* note = strstr(html, "<span class=\"note\">dominated by front 3 after the re-score</span>");
    const char* note2 = strstr(html, "<span class=\"note\">not faster than the baseline (ratio 1.02)</span>");
    CHECK(drop && refs_h && note && note2 && drop < note && note < note2 && note2 < refs_h, "dropped section");
    CHECK(strstr(html, "<h2>Front members</h2>") < drop, "dropped after the front");
}

static void check_knee(void) {
    dato_error err;
    int knee;
    // an L: down the FID arm, the corner, along the latency arm (any order finds the corner)
    const double lat[] = {0, 0.2, 1, 5, 10}, fid[] = {10, 5, 1, 0.5, 0};
    CHECK(dato_report_knee(lat, fid, 5, &knee, &err) == DATO_OK && knee == 2, "L knee %d", knee);
    const double lat_shuffled[] = {5, 1, 10, 0, 0.2}, fid_shuffled[] = {0.5, 1, 0, 10, 5};
    CHECK(dato_report_knee(lat_shuffled, fid_shuffled, 5, &knee, &err) == DATO_OK && knee == 1, "shuffled knee %d",
          knee);
    // scale does not matter: latency in seconds, FID in hundreds
    const double lat_s[] = {0.001, 0.002, 0.004, 0.008}, fid_big[] = {900, 300, 250, 240};
    CHECK(dato_report_knee(lat_s, fid_big, 4, &knee, &err) == DATO_OK && knee == 1, "scaled knee %d", knee);
    // no knee: too few points, a straight front, a concave front
    CHECK(dato_report_knee(lat, fid, 2, &knee, &err) == DATO_OK && knee == -1, "n = 2 knee %d", knee);
    const double line_lat[] = {0, 1, 2, 3}, line_fid[] = {3, 2, 1, 0};
    CHECK(dato_report_knee(line_lat, line_fid, 4, &knee, &err) == DATO_OK && knee == -1, "line knee %d", knee);
    const double concave_fid[] = {3, 2.9, 2.5, 0};
    CHECK(dato_report_knee(line_lat, concave_fid, 4, &knee, &err) == DATO_OK && knee == -1, "concave knee %d", knee);
    const double nan_fid[] = {3, NAN, 1, 0};
    CHECK(dato_report_knee(line_lat, nan_fid, 4, &knee, &err) == DATO_ERR_INVALID && strstr(err.msg, "point 1"),
          "NaN: %s", err.msg);
    // fastest within a FID limit
    CHECK(dato_report_fastest_within(lat, fid, 5, 1.0) == 2, "fastest within 1.0");
    CHECK(dato_report_fastest_within(lat, fid, 5, 100) == 0, "fastest within 100");
    CHECK(dato_report_fastest_within(lat, fid, 5, -1) == -1, "fastest within -1");
}

// A write of bad that must fail with status want and a message holding both needles.
static void expect_refused(const dato_report* bad, dato_status want, const char* needle, const char* needle2,
                           const char* what) {
    dato_error err = {{0}};
    dato_status st = dato_report_write(bad, &err);
    CHECK(st == want && strstr(err.msg, needle) && (!needle2 || strstr(err.msg, needle2)), "%s: status %d: %s", what,
          (int)st, err.msg);
}

static void check_errors(dato_report r) {
    dato_report bad = r;
    // a front out of latency order
    scratch[0] = front[1];
    scratch[1] = front[0];
    bad.front = scratch;
    bad.n_front = 2;
    bad.knee_index = bad.fastest_ok_index = -1;
    expect_refused(&bad, DATO_ERR_INVALID, "sorted", NULL, "unsorted");
    bad = r;
    bad.knee_index = N_FRONT;
    expect_refused(&bad, DATO_ERR_INVALID, "knee_index", NULL, "knee");
    bad = r;
    bad.knee_index = bad.fastest_ok_index = -1;
    bad.n_front = 1;
    bad.front = scratch;
    scratch[0] = front[0];
    scratch[0].schedule.genes[0].depth = 0; // step 0 must be full
    expect_refused(&bad, DATO_ERR_INVALID, "front member 0", NULL, "schedule");
    scratch[0] = front[0];
    scratch[0].fid = NAN;
    expect_refused(&bad, DATO_ERR_INVALID, "not finite", NULL, "NaN objective");

    // a dominated member: front 1 is faster and better than a slower front 3 made worse
    bad = r;
    bad.knee_index = bad.fastest_ok_index = -1;
    for (int i = 0; i < 4; i++) scratch[i] = front[i];
    scratch[3].fid = front[1].fid + 1;
    bad.front = scratch;
    bad.n_front = 4;
    expect_refused(&bad, DATO_ERR_INVALID, "front 1 dominates front 3", "(latency ", "dominated");
    // Every member paired: the ratio decides (the front is cut on it last, issue 18), latency_s may disagree
    for (int i = 0; i < 2; i++) scratch[i] = front[i];
    scratch[1].latency_ratio = scratch[0].latency_ratio * 0.9; // sorted by latency_s, yet faster paired
    bad.n_front = 2;
    expect_refused(&bad, DATO_ERR_INVALID, "sorted by latency ratio", NULL, "out of ratio order");
    scratch[0].latency_s = scratch[1].latency_s * 2; // sorted by the ratio, not by latency_s
    scratch[1].latency_ratio = scratch[0].latency_ratio * 1.1;
    dato_error ratio_err = {{0}};
    CHECK(dato_report_write(&bad, &ratio_err) == DATO_OK, "a ratio-ranked front out of latency_s's order: %s",
          ratio_err.msg);
    scratch[1].fid = scratch[0].fid + 1;
    expect_refused(&bad, DATO_ERR_INVALID, "front 0 dominates front 1", "(latency ratio ", "dominated by the ratio");
    // One member unpaired: latency_s decides
    scratch[0] = front[0];
    scratch[1] = front[1];
    scratch[1].fid = front[0].fid;
    scratch[0].latency_ratio = scratch[1].latency_ratio = NAN;
    expect_refused(&bad, DATO_ERR_INVALID, "front 0 dominates front 1", "(latency ", "dominated by latency");

    // intervals: lo > hi, or one end unknown, named with the member and the field
    bad = r;
    bad.knee_index = bad.fastest_ok_index = -1;
    bad.front = scratch;
    bad.n_front = 1;
    scratch[0] = front[0];
    scratch[0].teacher_ci = (dato_interval){5, 4};
    expect_refused(&bad, DATO_ERR_INVALID, "front member 0 ('front 0'): teacher_ci [5, 4]", NULL, "lo > hi");
    scratch[0] = front[0];
    scratch[0].clip_ci = (dato_interval){NAN, 31};
    expect_refused(&bad, DATO_ERR_INVALID, "front member 0", "clip_ci", "half-known interval");
    bad = r;
    for (int i = 0; i < N_CONFIRM; i++) scratch[i] = confirm[i];
    scratch[1].fid_ci = (dato_interval){31, 30};
    bad.confirm = scratch;
    expect_refused(&bad, DATO_ERR_INVALID, "confirmation row 1 ('deepcache:5'): fid_ci", NULL, "confirm interval");
    bad = r;
    for (int i = 0; i < N_REFS; i++) scratch[i] = refs[i];
    scratch[2].ratio_range = (dato_interval){0.9, 0.8};
    bad.refs = scratch;
    expect_refused(&bad, DATO_ERR_INVALID, "reference 2 ('tome:0.5'): ratio_range", NULL, "ratio range");

    // counts and lists
    bad = r;
    for (int i = 0; i < N_DROPPED; i++) scratch[i] = dropped[i];
    scratch[1].pairs = -1;
    bad.dropped = scratch;
    expect_refused(&bad, DATO_ERR_INVALID, "dropped member 1", "pairs = -1", "negative pairs");
    scratch[1] = dropped[1];
    scratch[0].images = -3;
    expect_refused(&bad, DATO_ERR_INVALID, "dropped member 0", "images = -3", "negative images");
    bad = r;
    bad.confirm = NULL;
    expect_refused(&bad, DATO_ERR_INVALID, "n_confirm = 4 but confirm is NULL", NULL, "NULL confirmation");
    bad = r;
    bad.n_dropped = -1;
    expect_refused(&bad, DATO_ERR_INVALID, "n_dropped = -1", NULL, "negative n_dropped");
    bad = r;
    bad.confirm_images = -1;
    expect_refused(&bad, DATO_ERR_INVALID, "confirm_images = -1", NULL, "negative confirm_images");
    const char* const holey[2] = {"fine", NULL};
    bad = r;
    bad.warnings = holey;
    expect_refused(&bad, DATO_ERR_INVALID, "warnings[1] is NULL", NULL, "NULL warning");
    bad = r;
    bad.warnings = NULL;
    expect_refused(&bad, DATO_ERR_INVALID, "n_warnings = 2", NULL, "NULL warnings");

    bad = r;
    bad.run_dir = "/nonexistent/dato_report_run";
    dato_error err;
    CHECK(dato_report_write(&bad, &err) == DATO_ERR_IO && strstr(err.msg, "/nonexistent"), "missing dir: %s",
          err.msg);
    printf("error message example: %s\n", err.msg);
    bad = r;
    for (int i = 0; i < 4; i++) scratch[i] = front[i];
    scratch[3].fid = front[1].fid + 1;
    bad.front = scratch;
    bad.n_front = 4;
    bad.knee_index = bad.fastest_ok_index = -1;
    dato_report_write(&bad, &err);
    printf("error message example: %s\n", err.msg);
}

static void remove_run(const char* dir) {
    char path[512];
    const char* prefixes[3] = {"front", "ref", "confirm"};
    const int counts[3] = {N_FRONT, N_REFS, N_CONFIRM};
    for (int set = 0; set < 3; set++)
        for (int i = 0; i < counts[set]; i++) {
            snprintf(path, sizeof(path), "%s/schedules/%s_%d.json", dir, prefixes[set], i);
            remove(path);
        }
    snprintf(path, sizeof(path), "%s/schedules", dir);
    rmdir(path);
    for (int k = 0; k < N_FILES; k++) {
        snprintf(path, sizeof(path), "%s/%s", dir, file_names[k]);
        remove(path);
    }
    rmdir(dir);
}

// Without a confirmation stage, warnings or verdict, and with no references (so no baseline to
// turn member 5's latency into a speedup): no confirm.csv, empty arrays, a latency axis.
static void check_without_confirmation(dato_report r) {
    char dir[] = "/tmp/dato_test_report_plain_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    r.run_dir = dir;
    r.confirm = NULL;
    r.n_confirm = 0;
    r.confirm_images = 0;
    r.dropped = NULL;
    r.n_dropped = 0;
    r.warnings = NULL;
    r.n_warnings = 0;
    r.verdict = NULL;
    r.refs = NULL;
    r.n_refs = 0;
    dato_error err;
    CHECK(dato_report_write(&r, &err) == DATO_OK, "%s", err.msg);
    CHECK(!file_exists(dir, "confirm.csv"), "confirm.csv written without a confirmation");
    CHECK(file_exists(dir, "front.csv") && file_exists(dir, "report.html"), "front.csv, report.html");
    char* json = read_text(dir, "front.json");
    cJSON* root = json ? cJSON_Parse(json) : NULL;
    CHECK(root != NULL, "front.json does not parse");
    const char* keys[3] = {"dropped", "confirmation", "warnings"};
    for (int k = 0; k < 3 && root; k++) {
        const cJSON* a = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        CHECK(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 0, "%s is not an empty array", keys[k]);
    }
    const cJSON* v = root ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "run"), "verdict")
                          : NULL;
    CHECK(cJSON_IsString(v) && v->valuestring[0] == 0, "an empty verdict");
    cJSON_Delete(root);
    char* html = read_text(dir, "report.html");
    CHECK(html && !strstr(html, "Confirmation on") && !strstr(html, "<h2>Verdict</h2>") &&
          !strstr(html, "class=\"warn\"") && !strstr(html, "Dropped by the re-measure"), "sections without content");
    CHECK(html && strstr(html, "<td>none</td>"), "confirmation: none");
    char* svg = read_text(dir, "front.svg");
    CHECK(svg && strstr(svg, "latency per image (ms)") && !strstr(svg, "speedup over"), "latency axis fallback");
    CHECK(svg && circle_x(svg, 0) < circle_x(svg, N_FRONT - 1), "latency axis: the fastest member left");
    CHECK(svg && !strstr(svg, "nan") && !strstr(svg, "inf"), "SVG has a non-finite number");
    free(json);
    free(html);
    free(svg);
    remove_run(dir);
}

int main(void) {
    for (int i = 0; i < N_FRONT; i++) fill_point(&front[i], i);
    snprintf(front[3].label, sizeof(front[3].label), "%s", tricky_label);
    fill_ref(&refs[0], "baseline", BASE_LATENCY, 24.0);
    fill_ref(&refs[1], "deepcache:5", 0.035, 30.5);
    fill_ref(&refs[2], "tome:0.5", 0.08, 22.25);
    fill_ref(&refs[3], "dato-paper", 0.05, 25.0);
    // dropped: one dominated after the re-score, one no faster than the baseline
    fill_point(&dropped[0], 9);
    snprintf(dropped[0].label, sizeof(dropped[0].label), "candidate 41");
    dropped[0].candidate = 41;
    snprintf(dropped[0].note, sizeof(dropped[0].note), "dominated by front 3 after the re-score");
    dropped[0].grid_png[0] = 0;
    fill_point(&dropped[1], 10);
    snprintf(dropped[1].label, sizeof(dropped[1].label), "candidate 57");
    dropped[1].candidate = 57;
    snprintf(dropped[1].note, sizeof(dropped[1].note), "not faster than the baseline (ratio 1.02)");
    dropped[1].grid_png[0] = 0;
    dropped[1].schedule = (dato_schedule){0}; // not saved, so not validated
    // the confirmation: the baseline, a preset, the picks, on 512 fresh images
    const dato_report_point* sources[N_CONFIRM] = {&refs[0], &refs[1], &front[3], &front[2]};
    const char* labels[N_CONFIRM] = {"baseline", "deepcache:5", "knee (front 3)", "fastest ok (front 2)"};
    const char* notes[N_CONFIRM] = {"", "", "the knee of the front", "the fastest within the baseline's bound"};
    for (int i = 0; i < N_CONFIRM; i++) {
        confirm[i] = *sources[i];
        snprintf(confirm[i].label, sizeof(confirm[i].label), "%s", labels[i]);
        snprintf(confirm[i].note, sizeof(confirm[i].note), "%s", notes[i]);
        confirm[i].fid += 0.5;
        confirm[i].fid_ci = (dato_interval){confirm[i].fid - 1, confirm[i].fid + 1.25};
        confirm[i].images = 512;
        confirm[i].grid_png[0] = 0;
    }
    snprintf(confirm[2].grid_png, sizeof(confirm[2].grid_png), "grids/confirm_knee.png");
    snprintf(confirm[3].grid_png, sizeof(confirm[3].grid_png), "grids/confirm_fastest.png");

    double lat[N_FRONT], fid[N_FRONT];
    for (int i = 0; i < N_FRONT; i++) {
        lat[i] = front[i].latency_s;
        fid[i] = front[i].fid;
    }
    dato_error err;
    int knee = -2;
    CHECK(dato_report_knee(lat, fid, N_FRONT, &knee, &err) == DATO_OK && knee >= 1 && knee < N_FRONT - 1,
          "front knee %d", knee);

    dato_search_config cfg = {.n_prompts = 8, .images = 64, .screen_images = 16, .promote = 0.3f,
                              .final_images = 256, .confirm_images = 512, .pairs = 5, .timing_images = 4,
                              .bootstrap = 200, .steps = STEPS, .guidance = 7.5f, .batch = 8,
                              .ref_mode = DATO_REF_BASELINE, .latency_mode = DATO_LATENCY_TABLE, .pop = 24, .gens = 30,
                              .seed = 18446744073709551557ull, .n_branches = BRANCHES, .threads = 0};
    snprintf(cfg.model, sizeof(cfg.model), "models/tiny-sd/");
    snprintf(cfg.model_hash, sizeof(cfg.model_hash), "fnv1a64:0123456789abcdef");
    snprintf(cfg.prompts_file, sizeof(cfg.prompts_file), "prompts/coco<30k>.txt");
    snprintf(cfg.sampler, sizeof(cfg.sampler), "ddim");
    snprintf(cfg.feature_net, sizeof(cfg.feature_net), "models/inception.safetensors");

    char dir[] = "/tmp/dato_test_report_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    dato_report r = {.cfg = &cfg, .run_dir = dir,
                     .command = "dato-search --model models/tiny-sd --pop 24 --gens 30 --out 'results/a&b'",
                     .export_example = "dato-export --run results/run1 --index 2 --out schedule.json",
                     .generation = 30, .n_evaluations = 700, .n_screened = 420, .threads = 3, .elapsed_s = 3725.5,
                     .front = front, .n_front = N_FRONT, .refs = refs, .n_refs = N_REFS, .dropped = dropped,
                     .n_dropped = N_DROPPED, .confirm = confirm, .n_confirm = N_CONFIRM, .confirm_images = 512,
                     .verdict = verdict, .warnings = warnings, .n_warnings = 2, .knee_index = knee,
                     .fid_limit = 1.1 * refs[0].fid,
                     .fastest_ok_index = dato_report_fastest_within(lat, fid, N_FRONT, 1.1 * refs[0].fid),
                     .hypervolume = 0.8125};
    CHECK(r.fastest_ok_index == 2, "fastest ok %d (FID limit %.2f)", r.fastest_ok_index, r.fid_limit);
    dato_status st = dato_report_write(&r, &err);
    CHECK(st == DATO_OK, "%s", err.msg);

    char* texts[N_FILES];
    for (int k = 0; k < N_FILES; k++) {
        texts[k] = read_text(dir, file_names[k]);
        CHECK(texts[k] != NULL, "%s/%s is missing", dir, file_names[k]);
    }
    if (texts[0]) check_csv(texts[0], front, N_FRONT, "front");
    if (texts[1]) check_csv(texts[1], confirm, N_CONFIRM, "confirm");
    if (texts[2]) check_json(texts[2], &r);
    check_schedules(dir);
    if (texts[3]) check_svg(texts[3]);
    if (texts[4] && texts[3]) check_html(texts[4], texts[3]);
    // no temporary files left behind: the five files, schedules/, . and ..
    DIR* d = opendir(dir);
    int entries = 0, temporaries = 0;
    for (struct dirent* e; d && (e = readdir(d));) {
        entries++;
        if (strstr(e->d_name, ".tmp")) temporaries++;
    }
    if (d) closedir(d);
    CHECK(entries == N_FILES + 3 && temporaries == 0, "%d entries, %d temporary files", entries, temporaries);

    // deterministic: a second write gives the same bytes
    CHECK(dato_report_write(&r, &err) == DATO_OK, "%s", err.msg);
    for (int k = 0; k < N_FILES; k++) {
        char* again = read_text(dir, file_names[k]);
        CHECK(again && texts[k] && strcmp(again, texts[k]) == 0, "%s changed on a second write", file_names[k]);
        free(again);
    }

    check_without_confirmation(r);
    check_knee();
    check_errors(r);
    printf("front knee %d, fastest ok %d; max relative error after %%.9g: CSV %.3g, JSON %.3g (tolerance 5e-9)\n",
           knee, r.fastest_ok_index, max_csv_rel_err, max_json_rel_err);
    if (getenv("DATO_KEEP_REPORT")) printf("kept %s\n", dir);
    else remove_run(dir);
    for (int k = 0; k < N_FILES; k++) free(texts[k]);
    return test_summary();
}
