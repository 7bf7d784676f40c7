// The result files of a search run (search/report.h) for a synthetic front of 8 members and 4
// references in a mkdtemp folder: every file exists, front.csv parses back to the numbers written
// (%.9g: relative error <= 5e-9, and equal to the %.9g text exactly), front.json parses with cJSON,
// the schedules load back equal, the SVG has one <circle> per front member, the HTML escapes
// labels, two writes give the same bytes; the knee of known shapes; bad input is refused.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "genome.h"
#include "report.h"
#include "test_util.h"

#define N_FRONT 8
#define N_REFS 4
#define STEPS 10
#define BRANCHES 3

static dato_report_point front[N_FRONT], refs[N_REFS]; // ~12 KB each: kept off the stack
static dato_schedule loaded;
static const char* const tricky_label = "front 3 <fast> & \"q\",x";
static const char* const file_names[] = {"front.csv", "front.json", "front.svg", "report.html"};

static double max_csv_rel_err, max_json_rel_err;

static void fill_point(dato_report_point* p, int i) {
    snprintf(p->label, sizeof(p->label), "front %d", i);
    p->schedule = (dato_schedule){.steps = STEPS, .n_branches = BRANCHES};
    snprintf(p->schedule.model, sizeof(p->schedule.model), "tiny-sd");
    p->schedule.genes[0] = (dato_gene){.depth = BRANCHES + 1, .ratio = 0};
    for (int k = 1; k < STEPS; k++)
        p->schedule.genes[k] = (dato_gene){.depth = (i + k) % (BRANCHES + 2),
                                           .ratio = dato_genome_ratio_of_code((i * k + k) % DATO_GENOME_N_RATIO_CODES)};
    // latency rises, FID falls: a convex front with irrational-looking values
    p->latency_s = 0.0123456789123 * (1 + i) + 1e-7 * i * i;
    p->fid = 12.3456789 + 40.0 / (1.0 + i) + 1e-9 / 3.0;
    p->kid = i == 2 ? NAN : 0.001 * (i + 1) / 3.0;
    p->teacher = i == 1 ? NAN : 17.0 / 3.0 * (i + 1);
    p->clip = i == 0 ? NAN : 31.0 - 1.0 / 3.0 * i;
    p->measured_latency_s = i % 3 == 0 ? NAN : p->latency_s * 1.01;
    p->speedup = 0.1 / p->latency_s;
    dato_schedule_counts c = dato_schedule_count(&p->schedule);
    p->full = c.full;
    p->partial = c.partial;
    p->reuse = c.reuse;
    p->mean_ratio = c.mean_ratio;
    snprintf(p->grid_png, sizeof(p->grid_png), "grids/front_%d.png", i);
}

static void fill_ref(dato_report_point* p, const char* spec, double latency, double fid) {
    dato_error err;
    CHECK(dato_schedule_preset(&p->schedule, spec, STEPS, BRANCHES, &err) == DATO_OK, "%s", err.msg);
    snprintf(p->label, sizeof(p->label), "%s", spec);
    p->latency_s = latency;
    p->fid = fid;
    p->kid = NAN;
    p->teacher = 0;
    p->clip = NAN;
    p->measured_latency_s = NAN;
    p->speedup = 0.1 / latency;
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

static void check_csv(const char* csv) {
    const char* header = "index,label,latency_s,fid,kid,measured_latency_s,speedup,full,partial,reuse,mean_ratio,"
                         "schedule_file,teacher,clip_score\n";
    CHECK(strncmp(csv, header, strlen(header)) == 0, "CSV header: %.120s", csv);
    CHECK(count_of(csv, "\n") == N_FRONT + 1, "CSV has %d lines, want %d", count_of(csv, "\n"), N_FRONT + 1);
    const char* line = strchr(csv, '\n');
    for (int i = 0; i < N_FRONT && line; i++) {
        line++;
        char fields[16][128];
        int n = split_csv(line, fields, 16);
        CHECK(n == 14, "row %d has %d fields", i, n);
        if (n != 14) break;
        const dato_report_point* p = &front[i];
        CHECK(atoi(fields[0]) == i, "row %d: index %s", i, fields[0]);
        CHECK(strcmp(fields[1], p->label) == 0, "row %d: label '%s' vs '%s'", i, fields[1], p->label);
        const double want[] = {p->latency_s, p->fid, p->kid, p->measured_latency_s, p->speedup};
        const char* names[] = {"latency_s", "fid", "kid", "measured_latency_s", "speedup"};
        for (int k = 0; k < 5; k++) check_number(strtod(fields[2 + k], NULL), want[k], &max_csv_rel_err, names[k], i);
        CHECK(atoi(fields[7]) == p->full && atoi(fields[8]) == p->partial && atoi(fields[9]) == p->reuse,
              "row %d: counts %s %s %s", i, fields[7], fields[8], fields[9]);
        check_number(strtod(fields[10], NULL), p->mean_ratio, &max_csv_rel_err, "mean_ratio", i);
        char file[64];
        snprintf(file, sizeof(file), "schedules/front_%d.json", i);
        CHECK(strcmp(fields[11], file) == 0, "row %d: schedule_file '%s'", i, fields[11]);
        check_number(strtod(fields[12], NULL), p->teacher, &max_csv_rel_err, "teacher", i);
        check_number(strtod(fields[13], NULL), p->clip, &max_csv_rel_err, "clip_score", i);
        line = strchr(line, '\n');
    }
}

static double json_number_or_nan(const cJSON* obj, const char* key) {
    const cJSON* item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(item) ? item->valuedouble : NAN;
}

static void check_json_points(const cJSON* array, const dato_report_point* points, int n, const char* prefix) {
    CHECK(cJSON_IsArray(array) && cJSON_GetArraySize(array) == n, "%s: array of %d", prefix, n);
    for (int i = 0; i < n && i < cJSON_GetArraySize(array); i++) {
        const cJSON* item = cJSON_GetArrayItem(array, i);
        const cJSON* label = cJSON_GetObjectItemCaseSensitive(item, "label");
        CHECK(cJSON_IsString(label) && strcmp(label->valuestring, points[i].label) == 0, "%s %d: label", prefix, i);
        check_number(json_number_or_nan(item, "latency_s"), points[i].latency_s, &max_json_rel_err, "latency_s", i);
        check_number(json_number_or_nan(item, "fid"), points[i].fid, &max_json_rel_err, "fid", i);
        check_number(json_number_or_nan(item, "kid"), points[i].kid, &max_json_rel_err, "kid", i);
        check_number(json_number_or_nan(item, "teacher"), points[i].teacher, &max_json_rel_err, "teacher", i);
        check_number(json_number_or_nan(item, "measured_latency_s"), points[i].measured_latency_s, &max_json_rel_err,
                     "measured_latency_s", i);
        check_number(json_number_or_nan(item, "speedup"), points[i].speedup, &max_json_rel_err, "speedup", i);
        CHECK(json_number_or_nan(item, "full") == points[i].full && json_number_or_nan(item, "reuse") ==
              points[i].reuse && json_number_or_nan(item, "partial") == points[i].partial, "%s %d: counts", prefix, i);
        if (isnan(points[i].kid))
            CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(item, "kid")), "%s %d: NaN kid is not null", prefix, i);
        char file[64];
        snprintf(file, sizeof(file), "schedules/%s_%d.json", prefix, i);
        const cJSON* sf = cJSON_GetObjectItemCaseSensitive(item, "schedule_file");
        CHECK(cJSON_IsString(sf) && strcmp(sf->valuestring, file) == 0, "%s %d: schedule_file", prefix, i);
        const cJSON* grid = cJSON_GetObjectItemCaseSensitive(item, "grid_png");
        CHECK(cJSON_IsString(grid) && strcmp(grid->valuestring, points[i].grid_png) == 0, "%s %d: grid", prefix, i);
    }
}

static void check_json(const char* text, const dato_report* r) {
    cJSON* root = cJSON_Parse(text);
    CHECK(root != NULL, "front.json does not parse");
    if (!root) return;
    const cJSON* format = cJSON_GetObjectItemCaseSensitive(root, "format");
    CHECK(cJSON_IsString(format) && strcmp(format->valuestring, "dato-front") == 0, "format");
    CHECK(json_number_or_nan(root, "version") == 1, "version");
    const cJSON* cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
    const cJSON* model = cJSON_GetObjectItemCaseSensitive(cfg, "model");
    CHECK(cJSON_IsString(model) && strcmp(model->valuestring, r->cfg->model) == 0, "config.model");
    CHECK(json_number_or_nan(cfg, "images") == r->cfg->images, "config.images");
    CHECK(json_number_or_nan(cfg, "pop") == r->cfg->pop && json_number_or_nan(cfg, "gens") == r->cfg->gens, "pop");
    const cJSON* seed = cJSON_GetObjectItemCaseSensitive(cfg, "seed");
    CHECK(cJSON_IsString(seed) && strcmp(seed->valuestring, "18446744073709551557") == 0, "config.seed");
    const cJSON* run = cJSON_GetObjectItemCaseSensitive(root, "run");
    CHECK(json_number_or_nan(run, "knee_index") == r->knee_index, "run.knee_index");
    CHECK(json_number_or_nan(run, "fastest_ok_index") == r->fastest_ok_index, "run.fastest_ok_index");
    CHECK(json_number_or_nan(run, "n_evaluations") == r->n_evaluations, "run.n_evaluations");
    const cJSON* command = cJSON_GetObjectItemCaseSensitive(run, "command");
    CHECK(cJSON_IsString(command) && strcmp(command->valuestring, r->command) == 0, "run.command");
    check_json_points(cJSON_GetObjectItemCaseSensitive(root, "front"), front, N_FRONT, "front");
    check_json_points(cJSON_GetObjectItemCaseSensitive(root, "refs"), refs, N_REFS, "ref");
    cJSON_Delete(root);
}

static void check_schedules(const char* dir) {
    for (int set = 0; set < 2; set++) {
        const dato_report_point* points = set ? refs : front;
        int n = set ? N_REFS : N_FRONT;
        for (int i = 0; i < n; i++) {
            char path[512];
            snprintf(path, sizeof(path), "%s/schedules/%s_%d.json", dir, set ? "ref" : "front", i);
            dato_error err;
            dato_status st = dato_schedule_load(&loaded, path, &err);
            CHECK(st == DATO_OK, "%s", err.msg);
            if (st) continue;
            const dato_schedule* s = &points[i].schedule;
            int same = loaded.steps == s->steps && loaded.n_branches == s->n_branches &&
                       strcmp(loaded.model, s->model) == 0 && strcmp(loaded.sampler, s->sampler) == 0;
            for (int k = 0; same && k < s->steps; k++)
                same = loaded.genes[k].depth == s->genes[k].depth && loaded.genes[k].ratio == s->genes[k].ratio;
            CHECK(same, "%s differs from the schedule written", path);
        }
    }
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

static void check_errors(dato_report r) {
    dato_error err;
    dato_report bad = r;
    dato_report_point swapped[2] = {front[1], front[0]};
    bad.front = swapped;
    bad.n_front = 2;
    bad.knee_index = bad.fastest_ok_index = -1;
    CHECK(dato_report_write(&bad, &err) == DATO_ERR_INVALID && strstr(err.msg, "sorted"), "unsorted: %s", err.msg);
    bad = r;
    bad.knee_index = N_FRONT;
    CHECK(dato_report_write(&bad, &err) == DATO_ERR_INVALID && strstr(err.msg, "knee_index"), "knee: %s", err.msg);
    dato_report_point broken = front[0];
    broken.schedule.genes[0].depth = 0; // step 0 must be full
    bad = r;
    bad.front = &broken;
    bad.n_front = 1;
    bad.knee_index = bad.fastest_ok_index = -1;
    CHECK(dato_report_write(&bad, &err) == DATO_ERR_INVALID && strstr(err.msg, "front member 0"), "schedule: %s",
          err.msg);
    broken = front[0];
    broken.fid = NAN;
    bad.front = &broken;
    CHECK(dato_report_write(&bad, &err) == DATO_ERR_INVALID && strstr(err.msg, "not finite"), "NaN: %s", err.msg);
    bad = r;
    bad.run_dir = "/nonexistent/dato_report_run";
    CHECK(dato_report_write(&bad, &err) == DATO_ERR_IO && strstr(err.msg, "/nonexistent"), "missing dir: %s",
          err.msg);
    printf("error message example: %s\n", err.msg);
}

static void remove_run(const char* dir) {
    char path[512];
    for (int set = 0; set < 2; set++)
        for (int i = 0; i < (set ? N_REFS : N_FRONT); i++) {
            snprintf(path, sizeof(path), "%s/schedules/%s_%d.json", dir, set ? "ref" : "front", i);
            remove(path);
        }
    snprintf(path, sizeof(path), "%s/schedules", dir);
    rmdir(path);
    for (int k = 0; k < 4; k++) {
        snprintf(path, sizeof(path), "%s/%s", dir, file_names[k]);
        remove(path);
    }
    rmdir(dir);
}

int main(void) {
    for (int i = 0; i < N_FRONT; i++) fill_point(&front[i], i);
    snprintf(front[3].label, sizeof(front[3].label), "%s", tricky_label);
    fill_ref(&refs[0], "baseline", 0.1, 24.0);
    fill_ref(&refs[1], "deepcache:5", 0.035, 30.5);
    fill_ref(&refs[2], "tome:0.5", 0.08, 22.25);
    fill_ref(&refs[3], "dato-paper", 0.05, 25.0);

    double lat[N_FRONT], fid[N_FRONT];
    for (int i = 0; i < N_FRONT; i++) {
        lat[i] = front[i].latency_s;
        fid[i] = front[i].fid;
    }
    dato_error err;
    int knee = -2;
    CHECK(dato_report_knee(lat, fid, N_FRONT, &knee, &err) == DATO_OK && knee >= 1 && knee < N_FRONT - 1,
          "front knee %d", knee);

    dato_search_config cfg = {.n_prompts = 8, .images = 64, .final_images = 256, .steps = STEPS, .guidance = 7.5f,
                              .batch = 8, .ref_mode = DATO_REF_BASELINE, .latency_mode = DATO_LATENCY_TABLE,
                              .pop = 24, .gens = 30, .seed = 18446744073709551557ull, .n_branches = BRANCHES,
                              .threads = 2};
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
                     .generation = 30, .n_evaluations = 700, .elapsed_s = 3725.5, .front = front, .n_front = N_FRONT,
                     .refs = refs, .n_refs = N_REFS, .knee_index = knee,
                     .fastest_ok_index = dato_report_fastest_within(lat, fid, N_FRONT, 1.1 * refs[0].fid),
                     .hypervolume = 0.8125};
    CHECK(r.fastest_ok_index == 2, "fastest ok %d (FID limit %.2f)", r.fastest_ok_index, 1.1 * refs[0].fid);
    dato_status st = dato_report_write(&r, &err);
    CHECK(st == DATO_OK, "%s", err.msg);

    char* texts[4];
    for (int k = 0; k < 4; k++) {
        texts[k] = read_text(dir, file_names[k]);
        CHECK(texts[k] != NULL, "%s/%s is missing", dir, file_names[k]);
    }
    if (texts[0]) check_csv(texts[0]);
    if (texts[1]) check_json(texts[1], &r);
    check_schedules(dir);
    if (texts[2]) {
        const char* svg = texts[2];
        size_t n = strlen(svg);
        CHECK(strncmp(svg, "<svg", 4) == 0, "SVG start: %.20s", svg);
        CHECK(n >= 7 && strcmp(svg + n - 7, "</svg>\n") == 0, "SVG end");
        CHECK(count_of(svg, "<circle") == N_FRONT, "%d circles", count_of(svg, "<circle"));
        CHECK(strstr(svg, "latency per image (ms)") && strstr(svg, ">FID<"), "axis labels");
        CHECK(strstr(svg, "tiny-sd, 64 images per evaluation"), "title");
        CHECK(count_of(svg, "<text") == count_of(svg, "</text>"), "unbalanced <text>");
        CHECK(!strstr(svg, "<fast>") && strstr(svg, "&lt;fast&gt;"), "SVG label not escaped");
        CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"), "SVG has a non-finite number");
    }
    if (texts[3]) {
        const char* html = texts[3];
        CHECK(strstr(html, "front 3 &lt;fast&gt; &amp; &quot;q&quot;,x") != NULL, "HTML label not escaped");
        CHECK(!strstr(html, "<fast>") && !strstr(html, "<30k>"), "raw '<' text in the HTML");
        CHECK(strstr(html, "prompts/coco&lt;30k&gt;.txt") != NULL, "prompts file");
        CHECK(strstr(html, "<img src=\"grids/front_0.png\"") != NULL, "grid image");
        CHECK(count_of(html, "<img ") == N_FRONT, "%d images", count_of(html, "<img "));
        CHECK(strstr(html, "--out &#39;results/a&amp;b&#39;") != NULL, "command");
        CHECK(strstr(html, "dato-export --run results/run1") != NULL, "export example");
        CHECK(strstr(html, texts[2]) != NULL, "the SVG is not inline");
        CHECK(strstr(html, "1 h 02 min 05 s") != NULL, "elapsed");
    }
    // no temporary files left behind
    DIR* d = opendir(dir);
    int entries = 0, temporaries = 0;
    for (struct dirent* e; d && (e = readdir(d));) {
        entries++;
        if (strstr(e->d_name, ".tmp")) temporaries++;
    }
    if (d) closedir(d);
    CHECK(entries == 7 && temporaries == 0, "%d entries, %d temporary files", entries, temporaries);

    // deterministic: a second write gives the same bytes
    CHECK(dato_report_write(&r, &err) == DATO_OK, "%s", err.msg);
    for (int k = 0; k < 4; k++) {
        char* again = read_text(dir, file_names[k]);
        CHECK(again && texts[k] && strcmp(again, texts[k]) == 0, "%s changed on a second write", file_names[k]);
        free(again);
    }

    check_knee();
    check_errors(r);
    printf("front knee %d, fastest ok %d; max relative error after %%.9g: CSV %.3g, JSON %.3g (tolerance 5e-9)\n",
           knee, r.fastest_ok_index, max_csv_rel_err, max_json_rel_err);
    if (getenv("DATO_KEEP_REPORT")) printf("kept %s\n", dir);
    else remove_run(dir);
    for (int k = 0; k < 4; k++) free(texts[k]);
    return test_summary();
}
